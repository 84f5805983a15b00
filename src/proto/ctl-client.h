/* ctl-client.h — the client side of the control protocol, for xen-loopctl
 * and the tests: connect to the daemon, make a call (optionally passing fds),
 * wait for its reply with a timeout.  Owns one connection; calls are made one
 * at a time and block (the socket itself is non-blocking, so every wait is
 * bounded by the call's timeout).  Not thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct ctl_client;

/* Why a call failed, in a form ready to print. */
struct ctl_error {
        int error;               /* -errno */
        /* true: the daemon ran the command and reported this failure;
         * false: the daemon could not be reached or asked (not running,
         * permission denied, timeout, connection lost, protocol error). */
        bool remote;
        char message[1024];      /* one sentence, without a trailing newline */
};

/* Connects to the daemon's socket at path.  When nothing listens there,
 * returns -ENOENT/-ECONNREFUSED with "xen-loopd is not running (no control
 * socket at PATH)"; when the socket may not be opened, -EACCES with
 * "permission denied …".  A refusal by the daemon itself (its peer check)
 * only shows on the first call, as -EPERM. timeout_usec bounds the wait
 * when the daemon's backlog is full (0: do not wait). */
int ctl_client_connect(const char *path, uint64_t timeout_usec, struct ctl_client **ret, struct ctl_error *err);
void ctl_client_free(struct ctl_client *c);

/* Makes one call.  args is taken (NULL for none); fds are sent with the
 * request and stay the caller's.  On success returns 0 and *ret_result (may
 * be NULL if not wanted) is the reply's result object, owned by the caller.
 * Otherwise returns a -errno and fills err (may be NULL).  A call that times
 * out leaves the connection unusable for further calls (-ETIMEDOUT). */
int ctl_client_call(struct ctl_client *c, const char *command, struct json_object *args, const int *fds,
                    size_t n_fds, uint64_t timeout_usec, struct json_object **ret_result, struct ctl_error *err);

/* The connection's socket, e.g. to poll it or to test peer checks. */
int ctl_client_fd(const struct ctl_client *c);
