/*
 * LD_PRELOAD shim that lets Debian's C xenstored (4.17) run without a
 * hypervisor: it stubs the control, grant-table and event-channel calls
 * xenstored makes at start-up and redirects the two /proc/xen files it reads
 * to files in XENSTORED_RUNDIR.  Only for tests and demonstrations.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Opaque handles: xenstored only passes them back to us. */
static int dummy_handle;
static int evtchn_fd = -1;
static uint32_t next_port = 16;

EXPORT void *xc_interface_open(void *logger, void *dombuild_logger, unsigned flags)
{
        (void)logger; (void)dombuild_logger; (void)flags;
        return &dummy_handle;
}

EXPORT int xc_interface_close(void *xch) { (void)xch; return 0; }

/* No domain other than dom0 exists; report none so nothing is reaped. */
EXPORT int xc_domain_getinfo(void *xch, uint32_t first, unsigned max, void *info)
{
        (void)xch; (void)first; (void)max; (void)info;
        return 0;
}

EXPORT void *xengnttab_open(void *logger, unsigned flags)
{
        (void)logger; (void)flags;
        return &dummy_handle;
}

EXPORT int xengnttab_close(void *xgt) { (void)xgt; return 0; }
EXPORT int xengnttab_set_max_grants(void *xgt, uint32_t n) { (void)xgt; (void)n; return 0; }

EXPORT void *xengnttab_map_grant_ref(void *xgt, uint32_t domid, uint32_t ref, int prot)
{
        (void)xgt; (void)domid; (void)ref; (void)prot;
        errno = ENOSYS;
        return NULL;
}

EXPORT int xengnttab_unmap(void *xgt, void *start, uint32_t count)
{
        (void)xgt; (void)start; (void)count;
        return 0;
}

static void *evtchn_open(void)
{
        if (evtchn_fd < 0)
                evtchn_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return evtchn_fd < 0 ? NULL : &dummy_handle;
}

EXPORT void *xenevtchn_open(void *logger, unsigned flags)
{
        (void)logger; (void)flags;
        return evtchn_open();
}

EXPORT void *xenevtchn_fdopen(void *logger, int fd, unsigned flags)
{
        (void)logger; (void)fd; (void)flags;
        return evtchn_open();
}

/* An eventfd nobody ever signals: xenstored polls it and never wakes. */
EXPORT int xenevtchn_fd(void *xce) { (void)xce; return evtchn_fd; }
EXPORT int xenevtchn_bind_virq(void *xce, unsigned virq) { (void)xce; (void)virq; return (int)next_port++; }

EXPORT int xenevtchn_bind_interdomain(void *xce, uint32_t domid, uint32_t port)
{
        (void)xce; (void)domid; (void)port;
        return (int)next_port++;
}

EXPORT int xenevtchn_notify(void *xce, uint32_t port) { (void)xce; (void)port; return 0; }
EXPORT int xenevtchn_unbind(void *xce, uint32_t port) { (void)xce; (void)port; return 0; }
EXPORT int xenevtchn_pending(void *xce) { (void)xce; errno = EAGAIN; return -1; }
EXPORT int xenevtchn_unmask(void *xce, uint32_t port) { (void)xce; (void)port; return 0; }

/* /proc/xen/xsd_port and /proc/xen/xsd_kva live in the private run dir. */
static const char *redirect(const char *path, char *buf, size_t len)
{
        const char *dir = getenv("XENSTORED_RUNDIR");
        const char *base;

        if (!dir || !path)
                return path;
        if (strcmp(path, "/proc/xen/xsd_port") == 0)
                base = "xsd_port";
        else if (strcmp(path, "/proc/xen/xsd_kva") == 0)
                base = "xsd_kva";
        else
                return path;
        if ((size_t)snprintf(buf, len, "%s/%s", dir, base) >= len)
                return path;
        return buf;
}

EXPORT int open(const char *path, int flags, ...)
{
        static int (*real_open)(const char *, int, ...);
        char buf[4096];
        mode_t mode = 0;

        if (!real_open)
                real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
        if (flags & (O_CREAT | O_TMPFILE)) {
                va_list ap;
                va_start(ap, flags);
                mode = va_arg(ap, mode_t);
                va_end(ap);
        }
        return real_open(redirect(path, buf, sizeof(buf)), flags, mode);
}
