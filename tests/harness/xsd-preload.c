/*
 * LD_PRELOAD shim that lets Debian's C xenstored (4.17) run without a
 * hypervisor: it stubs the control, grant-table and event-channel calls
 * xenstored makes at start-up and redirects the two /proc/xen files it reads
 * to files in XENSTORED_RUNDIR.  Only for tests and demonstrations.
 */

/* The build defines _FILE_OFFSET_BITS=64, which makes glibc's headers turn
 * open() into open64(); xenstored calls the plain symbol, so define both. */
#undef _FILE_OFFSET_BITS

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

/*
 * Every ordinary domid "exists", so that permissions naming a guest (libxl
 * makes the guest own its frontend directory) are kept rather than refused.
 * xenstored only reads domid and the state flags here: fill those (the first
 * 16 bytes of xc_dominfo_t, a stable layout).  It asks about one domain at a
 * time; it never enumerates, and it only reaps domains on VIRQ_DOM_EXC, which
 * never fires.
 */
#define DOMID_FIRST_RESERVED 0x7FF0U

EXPORT int xc_domain_getinfo(void *xch, uint32_t first, unsigned max, void *info)
{
        (void)xch;
        if (max < 1 || !info || first >= DOMID_FIRST_RESERVED)
                return 0;
        memset(info, 0, 16);
        memcpy(info, &first, sizeof(first));
        return 1;
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

static int redirected_open(const char *sym, const char *path, int flags, mode_t mode)
{
        int (*real)(const char *, int, ...);
        char buf[4096];

        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, sym);
        if (!real) {
                errno = ENOSYS;
                return -1;
        }
        return real(redirect(path, buf, sizeof(buf)), flags, mode);
}

static mode_t open_mode(int flags, va_list ap)
{
        return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

EXPORT int open(const char *path, int flags, ...)
{
        va_list ap;
        mode_t mode;

        va_start(ap, flags);
        mode = open_mode(flags, ap);
        va_end(ap);
        return redirected_open("open", path, flags, mode);
}

EXPORT int open64(const char *path, int flags, ...)
{
        va_list ap;
        mode_t mode;

        va_start(ap, flags);
        mode = open_mode(flags, ap);
        va_end(ap);
        return redirected_open("open64", path, flags, mode);
}
