/* xsconn.h — the daemon's xenstore connection.
 *
 * Owns the connection to xenstored (its socket, or the kernel's xenbus
 * device in a domain without one), spoken directly in the wire protocol
 * (xswire.h) from the daemon's own event loop: no reader thread between a
 * reply and its caller, and several requests in flight at once
 * (xsconn_batch), which a disk's attach needs four round trips for instead
 * of eleven.  Also owns the watches (re-armed after a reconnect), the watch
 * events that arrive while a reply is awaited (dispatched from the event
 * loop, in order), and the reconnection after xenstored goes away.  Every
 * call returns 0 or -errno and notices a dead connection.
 *
 * Requests block the event loop until their reply comes, for at most the
 * timeout (xsconn_set_timeout, 10 s by default): a xenstored that stops
 * answering is then taken for gone (-ENOTCONN), and reconnected to. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>
#include <stdint.h>
#include <xenstore.h>

#include "xswire.h"

struct xsconn;

struct xsconn_ops {
        /* A watch fired. */
        void (*watch)(struct xsconn *x, const char *path, const char *token, void *userdata);
        /* The connection came up again after being lost (watches re-armed;
         * their initial events follow), or was just lost. */
        void (*state)(struct xsconn *x, bool connected, void *userdata);
};

/* Connects, or keeps trying in the background when xenstored does not
 * answer yet (ops->state tells when it does). */
int xsconn_new(sd_event *ev, const struct xsconn_ops *ops, void *userdata, struct xsconn **ret);
void xsconn_free(struct xsconn *x);
bool xsconn_connected(const struct xsconn *x);
/* How long a reply may take (usec, > 0). */
void xsconn_set_timeout(struct xsconn *x, uint64_t usec);

/* Registers a watch, kept across reconnects. */
int xsconn_watch(struct xsconn *x, const char *path, const char *token);

/* Reads path; *ret is malloc'ed and NUL-terminated (NUL bytes inside the
 * value are kept and reported through ret_len).  -ENOENT when absent,
 * -ENOTCONN while disconnected. */
int xsconn_read(struct xsconn *x, xs_transaction_t t, const char *path, char **ret, size_t *ret_len);
int xsconn_write(struct xsconn *x, xs_transaction_t t, const char *path, const char *value);
int xsconn_rm(struct xsconn *x, xs_transaction_t t, const char *path);
/* Lists a directory: *ret is one malloc'ed block (free it), *ret_n entries. */
int xsconn_directory(struct xsconn *x, xs_transaction_t t, const char *path, char ***ret, unsigned *ret_n);
bool xsconn_exists(struct xsconn *x, xs_transaction_t t, const char *path);

/* One request of a batch.  dir alone, or dir "/" node, is the path. */
struct xsconn_op {
        uint32_t type; /* XS_READ, XS_WRITE, XS_RM or XS_DIRECTORY */
        const char *dir, *node;
        const char *value; /* XS_WRITE */
        /* Results: r is 0 or -errno; data (XS_READ: the value,
         * NUL-terminated, len bytes) or ents/n_ents (XS_DIRECTORY: one
         * malloc'ed block) are freed by xsconn_ops_clear(). */
        int r;
        char *data;
        size_t len;
        char **ents;
        unsigned n_ents;
};

/* Sends every request, then takes every reply: one round trip for all.
 * Each op has its own result; the call fails (-ENOTCONN, -EBADMSG, ...)
 * only when the connection does, and then every op has that result. */
int xsconn_batch(struct xsconn *x, xs_transaction_t t, struct xsconn_op *ops, size_t n);
void xsconn_ops_clear(struct xsconn_op *ops, size_t n);

int xsconn_transaction_start(struct xsconn *x, xs_transaction_t *ret);
/* Commits (or aborts); -EAGAIN when the transaction must be retried: a
 * conflict, or a transaction xenstored did not know (ENOENT from the C
 * xenstored, EIO from oxenstored) — then the results of the requests made
 * in it, an abort's too, say nothing. */
int xsconn_transaction_end(struct xsconn *x, xs_transaction_t t, bool abort);

/* Our own domain's xenstore home: "/local/domain/<domid>", from our
 * domain's own `domid` node.  -ENOENT while it is not written, -EACCES, or
 * -EBADMSG for a value that is not a domid: never a guess. */
int xsconn_home(struct xsconn *x, char **ret);
