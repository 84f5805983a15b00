/*
 * LD_PRELOAD shim that lets Debian's OCaml xenstored (oxenstored, 4.17) run
 * without a hypervisor.  It
 *  - retries setrlimit(RLIMIT_NOFILE) at the hard limit: oxenstored raises
 *    its soft limit to a fixed value and treats EPERM as fatal;
 *  - stubs the control and event-channel calls it makes (xc_interface_open,
 *    xc_domain_getinfolist, xc_map_foreign_range, xenevtchn_*);
 *  - rewrites its compiled-in run directory (/var/run/xenstored: the socket)
 *    to XENSTORED_RUNDIR.
 * Its config file (a private copy of /etc/xen/oxenstored.conf) names the
 * port and kva files, the pid file and the logs.  Only for tests and
 * demonstrations.
 */

/* glibc's headers would turn open() into open64() under the build's
 * _FILE_OFFSET_BITS=64; the program calls either: define both. */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenevtchn.h>

#define EXPORT __attribute__((visibility("default")))

#define COMPILED_RUNDIR "/var/run/xenstored"

static int dummy_handle;
static int evtchn_fd = -1;
static uint32_t next_port = 16;

static void *next_sym(const char *name)
{
        void *p = dlsym(RTLD_NEXT, name);

        if (!p) {
                fprintf(stderr, "oxsd-preload: no symbol %s\n", name);
                abort();
        }
        return p;
}

/* ------------------------------------------------------------ rlimit */

/* oxenstored asks for a fixed number of fds; where that is above the hard
 * limit (an unprivileged container, a lower nr_open), take the hard limit. */
EXPORT int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
        int (*real)(__rlimit_resource_t, const struct rlimit *) = next_sym("setrlimit");
        struct rlimit cur, capped;

        if (real(res, rl) == 0)
                return 0;
        if (res != RLIMIT_NOFILE || errno != EPERM || getrlimit(res, &cur) < 0)
                return -1;
        capped.rlim_max = cur.rlim_max;
        capped.rlim_cur = rl->rlim_cur < cur.rlim_max ? rl->rlim_cur : cur.rlim_max;
        return real(res, &capped);
}

EXPORT int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl)
{
        struct rlimit r = { .rlim_cur = rl->rlim_cur, .rlim_max = rl->rlim_max };

        return setrlimit(res, &r);
}

/* ------------------------------------------------------------ xenctrl */

EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                       unsigned open_flags)
{
        (void)logger; (void)dombuild_logger; (void)open_flags;
        return (xc_interface *)&dummy_handle;
}

EXPORT int xc_interface_close(xc_interface *xch) { (void)xch; return 0; }

/* Every ordinary domain exists and runs: oxenstored asks about domains it
 * was told of, and drops those missing from the answer. */
EXPORT int xc_domain_getinfolist(xc_interface *xch, uint32_t first, unsigned int max, xc_domaininfo_t *info)
{
        unsigned n = 0;

        (void)xch;
        for (; n < max && first + n < DOMID_FIRST_RESERVED; n++) {
                memset(&info[n], 0, sizeof(info[n]));
                info[n].domain = (domid_t)(first + n);
                info[n].flags = XEN_DOMINF_running;
        }
        return (int)n;
}

/* A domain's ring page: a blank page nobody else writes. */
EXPORT void *xc_map_foreign_range(xc_interface *xch, uint32_t dom, int size, int prot, unsigned long mfn)
{
        void *p;

        (void)xch; (void)dom; (void)mfn;
        p = mmap(NULL, (size_t)size, prot | PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

/* ------------------------------------------------------------ event channels */

static xenevtchn_handle *evtchn_open(void)
{
        if (evtchn_fd < 0)
                evtchn_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return evtchn_fd < 0 ? NULL : (xenevtchn_handle *)&dummy_handle;
}

EXPORT xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned flags)
{
        (void)logger; (void)flags;
        return evtchn_open();
}

EXPORT xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *logger, int fd, unsigned flags)
{
        (void)logger; (void)fd; (void)flags;
        return evtchn_open();
}

EXPORT int xenevtchn_close(xenevtchn_handle *xce) { (void)xce; return 0; }
/* An eventfd nobody signals: oxenstored polls it and never wakes. */
EXPORT int xenevtchn_fd(xenevtchn_handle *xce) { (void)xce; return evtchn_fd; }

EXPORT xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
        (void)xce; (void)virq;
        return (xenevtchn_port_or_error_t)next_port++;
}

EXPORT xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                            evtchn_port_t port)
{
        (void)xce; (void)domid; (void)port;
        return (xenevtchn_port_or_error_t)next_port++;
}

EXPORT int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return 0; }
EXPORT int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return 0; }

EXPORT xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
        (void)xce;
        errno = EAGAIN;
        return -1;
}

EXPORT int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return 0; }

/* ------------------------------------------------------------ paths */

/* path under /var/run/xenstored → the same under XENSTORED_RUNDIR. */
static const char *redirect(const char *path, char *buf, size_t len)
{
        const char *dir = getenv("XENSTORED_RUNDIR");
        size_t n = strlen(COMPILED_RUNDIR);

        if (!dir || !path || strncmp(path, COMPILED_RUNDIR, n) != 0 || (path[n] != '/' && path[n] != '\0'))
                return path;
        if ((size_t)snprintf(buf, len, "%s%s", dir, path + n) >= len)
                return path;
        return buf;
}

static mode_t open_mode(int flags, va_list ap)
{
        return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

#define OPEN_WRAPPER(name)                                                        \
        EXPORT int name(const char *path, int flags, ...)                         \
        {                                                                         \
                int (*real)(const char *, int, ...) = next_sym(#name);            \
                char buf[PATH_MAX];                                               \
                va_list ap;                                                       \
                mode_t mode;                                                      \
                va_start(ap, flags);                                              \
                mode = open_mode(flags, ap);                                      \
                va_end(ap);                                                       \
                return real(redirect(path, buf, sizeof(buf)), flags, mode);       \
        }

OPEN_WRAPPER(open)
OPEN_WRAPPER(open64)

EXPORT int unlink(const char *path)
{
        int (*real)(const char *) = next_sym("unlink");
        char buf[PATH_MAX];

        return real(redirect(path, buf, sizeof(buf)));
}

EXPORT int mkdir(const char *path, mode_t mode)
{
        int (*real)(const char *, mode_t) = next_sym("mkdir");
        char buf[PATH_MAX];

        return real(redirect(path, buf, sizeof(buf)), mode);
}

EXPORT int chmod(const char *path, mode_t mode)
{
        int (*real)(const char *, mode_t) = next_sym("chmod");
        char buf[PATH_MAX];

        return real(redirect(path, buf, sizeof(buf)), mode);
}

/* The listening socket: an AF_UNIX address under the compiled-in dir. */
EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
        int (*real)(int, const struct sockaddr *, socklen_t) = next_sym("bind");
        const struct sockaddr_un *su = (const struct sockaddr_un *)sa;
        struct sockaddr_un moved = { .sun_family = AF_UNIX };
        char path[sizeof(su->sun_path) + 1], buf[PATH_MAX];
        const char *to;

        if (!sa || sa->sa_family != AF_UNIX || len <= offsetof(struct sockaddr_un, sun_path))
                return real(fd, sa, len);
        memset(path, 0, sizeof(path));
        memcpy(path, su->sun_path, len - offsetof(struct sockaddr_un, sun_path));
        to = redirect(path, buf, sizeof(buf));
        if (to == path)
                return real(fd, sa, len);
        if (strlen(to) >= sizeof(moved.sun_path)) {
                errno = ENAMETOOLONG;
                return -1;
        }
        strcpy(moved.sun_path, to);
        return real(fd, (const struct sockaddr *)&moved, sizeof(moved));
}
