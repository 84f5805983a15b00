/* xs.h — the daemon's xenstore connection.
 *
 * Owns the libxenstore handle, its watch fd in the event loop, the watches
 * (re-armed after a reconnect) and the reconnection after xenstored goes
 * away.  Callers read and write through the helpers here, which turn
 * libxenstore's errno results into -errno and notice a dead connection. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>
#include <xenstore.h>

struct xs_conn;

struct xs_conn_ops {
        /* A watch fired. */
        void (*watch)(struct xs_conn *x, const char *path, const char *token, void *userdata);
        /* The connection came up again after being lost (watches re-armed;
         * their initial events follow), or was just lost. */
        void (*state)(struct xs_conn *x, bool connected, void *userdata);
};

/* Connects, or keeps trying in the background when xenstored does not
 * answer yet (ops->state tells when it does). */
int xs_conn_new(sd_event *ev, const struct xs_conn_ops *ops, void *userdata, struct xs_conn **ret);
void xs_conn_free(struct xs_conn *x);
bool xs_conn_connected(const struct xs_conn *x);

/* Registers a watch, kept across reconnects. */
int xs_conn_watch(struct xs_conn *x, const char *path, const char *token);

/* Reads path; *ret is malloc'ed and NUL-terminated (NUL bytes inside the
 * value are kept and reported through ret_len).  -ENOENT when absent,
 * -ENOTCONN while disconnected. */
int xs_conn_read(struct xs_conn *x, xs_transaction_t t, const char *path, char **ret, size_t *ret_len);
int xs_conn_write(struct xs_conn *x, xs_transaction_t t, const char *path, const char *value);
int xs_conn_rm(struct xs_conn *x, xs_transaction_t t, const char *path);
/* Lists a directory: *ret is one malloc'ed block (free it), *ret_n entries. */
int xs_conn_directory(struct xs_conn *x, xs_transaction_t t, const char *path, char ***ret, unsigned *ret_n);
bool xs_conn_exists(struct xs_conn *x, xs_transaction_t t, const char *path);

int xs_conn_transaction_start(struct xs_conn *x, xs_transaction_t *ret);
/* Commits (or aborts); -EAGAIN when the transaction must be retried. */
int xs_conn_transaction_end(struct xs_conn *x, xs_transaction_t t, bool abort);

/* Our own domain's xenstore home: "/local/domain/<domid>". */
int xs_conn_home(struct xs_conn *x, char **ret);
