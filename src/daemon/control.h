/* control.h — the control socket server.
 *
 * Owns the listening socket, every client connection, the framing (one JSON
 * object per SOCK_SEQPACKET message, fds by SCM_RIGHTS), the peer check, and
 * the life of each call.  What a command does is the handler's business: the
 * daemon registers a table of commands; a handler may reply at once or keep
 * the call and reply later (e.g. once a disk is published).  The wire format
 * is specified in proto.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct json_object;
struct ctl_server;
struct ctl_call;

/* Returns 0 once the call has been, or will later be, completed with
 * ctl_call_reply()/ctl_call_error(); a negative errno makes the server reply
 * with that error (unless the handler already completed the call).  args is
 * the request's "args" object (never NULL); it lives only until the handler
 * returns: take a reference (json_object_get) to keep it. */
typedef int (*ctl_handler_t)(struct ctl_call *call, struct json_object *args, void *userdata);

struct ctl_command {
        const char *name;
        ctl_handler_t handler;
        unsigned max_fds;        /* fds the request may carry; more is an error */
};

/* Limits: at most 1024 connections (more are answered with EAGAIN and
 * closed), 256 pending calls per connection; a connection whose unsent
 * replies exceed 512 messages or 8 MiB is closed.  Peers are checked once,
 * when they connect (SO_PEERCRED, SO_PEERGROUPS): uid 0, or allowed_gid as
 * primary or supplementary group; others get one EPERM error (id 0) and are
 * closed.  Errors that answer no particular request carry id 0. */
struct ctl_server_config {
        const char *path;        /* socket path; its directory is created 0755.
                                  * A socket there that nobody answers on is
                                  * replaced; the new one is 0600, or 0660 with
                                  * group allowed_gid. */
        int listen_fd;           /* an inherited listening socket (AF_UNIX,
                                  * SOCK_SEQPACKET), or -1; the server owns it
                                  * once ctl_server_new() succeeds */
        gid_t allowed_gid;       /* besides root; (gid_t)-1 for none */
        const struct ctl_command *commands;
        size_t n_commands;
        void *userdata;          /* passed to handlers and callbacks */
        /* A connection closed; every call it had pending was cancelled. */
        void (*on_disconnect)(uint64_t conn_id, void *userdata);
};

int ctl_server_new(sd_event *ev, const struct ctl_server_config *cfg, struct ctl_server **ret);
/* Cancels pending calls, closes every connection (on_disconnect is called
 * for each); unlinks the socket only when unlink_socket, and never one that
 * was inherited (its path belongs to the socket unit).  Calls orphaned by
 * their client (see ctl_call_set_cancel) are freed too. */
void ctl_server_free(struct ctl_server *s, bool unlink_socket);
size_t ctl_server_n_connections(const struct ctl_server *s);

/* Completes the call; takes result (may be NULL for an empty object).  The
 * call is freed: do not use it afterwards.  A call whose client has gone is
 * completed silently. */
void ctl_call_reply(struct ctl_call *call, struct json_object *result);
/* error is a -errno; message is one human sentence. */
void ctl_call_error(struct ctl_call *call, int error, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* fds that came with the request.  take hands one over (the call closes any
 * left untaken when it completes). -EBADF for a bad index or a taken fd. */
size_t ctl_call_n_fds(const struct ctl_call *call);
int ctl_call_take_fd(struct ctl_call *call, size_t idx);

uint64_t ctl_call_connection(const struct ctl_call *call);
pid_t ctl_call_peer_pid(const struct ctl_call *call);
uid_t ctl_call_peer_uid(const struct ctl_call *call);

/* A pending call whose client disconnects gets cancel() before it is freed;
 * after that the handler's reference is gone (cancel may still call
 * ctl_call_reply/ctl_call_error on it, which then send nothing).  Setting
 * NULL clears it.  A pending call without a cancel callback outlives its
 * client: it stays valid until the handler completes it (silently) or the
 * server is freed. */
void ctl_call_set_cancel(struct ctl_call *call, void (*cancel)(struct ctl_call *call, void *data), void *data);
