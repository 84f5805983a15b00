#include "fdstore.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "macro.h"

static int control_fd = -1;

bool fdstore_available(void)
{
        const char *e = getenv("NOTIFY_SOCKET");

        return e && *e;
}

static bool name_is_valid(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if (name[i] <= ' ' || name[i] >= 127 || name[i] == ':')
                        return false;
        return true;
}

/* One notification about one stored fd: FDSTORE with fd, or FDSTOREREMOVE
 * without. */
static int notify(const char *what, const char *name, const int *fd)
{
        char msg[300];
        int r;

        if (!fdstore_available())
                return 0;
        if (!name_is_valid(name))
                return -EINVAL;
        snprintf(msg, sizeof(msg), "%s=1\nFDNAME=%s", what, name);
        r = sd_pid_notify_with_fds(0, 0, msg, fd, fd ? 1 : 0);
        if (r < 0)
                return log_warning_errno(r, "Cannot tell the service manager %s for %s: %m.", what, name);
        return 0;
}

int fdstore_add(int fd, const char *name)
{
        return notify("FDSTORE", name, &fd);
}

int fdstore_remove(const char *name)
{
        return notify("FDSTOREREMOVE", name, NULL);
}

int fdstore_collect(struct fdstore_fd **ret, size_t *ret_n)
{
        char **names = NULL;
        struct fdstore_fd *fds;
        size_t k = 0;
        int n;

        *ret = NULL;
        *ret_n = 0;
        n = sd_listen_fds_with_names(1, &names);
        if (n <= 0)
                return n;
        fds = calloc((size_t)n, sizeof(*fds));
        if (!fds) {
                for (int i = 0; i < n; i++) {
                        safe_close(SD_LISTEN_FDS_START + i);
                        free(names[i]);
                }
                free(names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                /* A socket unit's listening socket is the control socket. */
                if (control_fd < 0 && sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0) {
                        control_fd = fd;
                        free(names[i]);
                        continue;
                }
                fds[k].fd = fd;
                fds[k].name = names[i];
                k++;
        }
        free(names);
        *ret = fds;
        *ret_n = k;
        return 0;
}

void fdstore_fds_free(struct fdstore_fd *fds, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                safe_close(fds[i].fd);
                free(fds[i].name);
        }
        free(fds);
}

int fdstore_control_socket(void)
{
        return control_fd;
}
