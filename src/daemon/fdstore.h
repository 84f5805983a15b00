/* fdstore.h — the service manager's file descriptor store.
 *
 * Every fd the daemon holds for someone else (loop devices waiting for
 * blkback, fds a toolstack passed in) is stashed under a name as soon as it
 * is held and removed when it is let go, so a restart or crash of the daemon
 * loses none of them.  Owns the list of fds handed back at start-up until
 * each is claimed or closed.  Without a service manager (no NOTIFY_SOCKET)
 * every call succeeds and does nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

bool fdstore_available(void);

/* Names are at most 255 printable ASCII characters without ':'. */
int fdstore_add(int fd, const char *name);
int fdstore_remove(const char *name);

struct fdstore_fd {
        int fd;
        char *name;
};

/* The fds the service manager handed back (sd_listen_fds_with_names()),
 * other than the first listening SOCK_SEQPACKET socket, which is the
 * control socket of a socket unit (see fdstore_control_socket()).  The caller owns
 * the fds and the array; free it with fdstore_fds_free(), which closes the
 * fds not set to -1. */
int fdstore_collect(struct fdstore_fd **ret, size_t *ret_n);
void fdstore_fds_free(struct fdstore_fd *fds, size_t n);

/* The socket handed over for the control socket, or -1. */
int fdstore_control_socket(void);
