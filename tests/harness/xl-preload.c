/*
 * LD_PRELOAD shim that lets Debian's real `xl` (libxenlight 4.17) run its
 * device commands without a hypervisor.  It answers the hypercall-backed
 * libxenctrl calls that `xl block-attach`, `block-detach`, `block-list` and
 * `xl devd` make; everything else (xenstore, hotplug scripts, the stored
 * domain configuration) is the real thing.  Only for tests.
 *
 * Environment:
 *   XL_PRELOAD_DOMAINS   a directory with one file per running fake domain,
 *                        named by its domid and holding its UUID
 *                        (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); domain 0
 *                        always exists.
 *   XL_PRELOAD_SELF_DOMID
 *                        the domid xl believes it runs in: its read of the
 *                        relative node "domid" answers this, so `xl devd`
 *                        serves /local/domain/<N>/backend as a driver
 *                        domain's would (every connection to the test's
 *                        xenstored is dom0's, whose home that read resolves
 *                        against otherwise).
 *   XL_PRELOAD_STATE_DELAY_MS
 *                        sleep this long before each xs_read() of a path
 *                        ending in "/state": a toolstack that looks late
 *                        (a busy dom0), without depending on the scheduler.
 */

/* xenctrl.h's types only; nothing of libxenctrl is linked. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenstore.h>

#define EXPORT __attribute__((visibility("default")))

/* Opaque: xl only passes it back to us. */
static int dummy_handle;

EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                       unsigned open_flags)
{
        (void)logger; (void)dombuild_logger; (void)open_flags;
        return (xc_interface *)&dummy_handle;
}

EXPORT int xc_interface_close(xc_interface *xch) { (void)xch; return 0; }

EXPORT int xc_get_max_cpus(xc_interface *xch)
{
        long n = sysconf(_SC_NPROCESSORS_CONF);

        (void)xch;
        return n > 0 ? (int)n : 1;
}

EXPORT const char *xc_domain_get_native_protocol(xc_interface *xch, uint32_t domid)
{
        (void)xch; (void)domid;
        return "x86_64-abi"; /* XEN_IO_PROTO_ABI_X86_64 */
}

/* libxl_domain_info() asks for every domain's security label: XSM (FLASK)
 * is off, as on a default Xen. */
EXPORT int xc_flask_sid_to_context(xc_interface *xch, int sid, char *buf, uint32_t size)
{
        (void)xch; (void)sid; (void)buf; (void)size;
        errno = ENOSYS;
        return -1;
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into 16 bytes; false if malformed. */
static bool parse_uuid(const char *s, uint8_t out[16])
{
        int i = 0;

        while (i < 16) {
                unsigned v;

                if (*s == '-') {
                        s++;
                        continue;
                }
                if (sscanf(s, "%2x", &v) != 1 || !s[1])
                        return false;
                out[i++] = (uint8_t)v;
                s += 2;
        }
        return *s == '\0' || *s == '\n';
}

/* Fills info for DOMID when that fake domain exists. */
static bool domain_info(uint32_t domid, xc_domaininfo_t *info)
{
        const char *dir = getenv("XL_PRELOAD_DOMAINS");
        uint8_t uuid[16] = { 0 };
        char path[4096], buf[64] = "";
        FILE *f;

        if (domid != 0) {
                if (!dir || (size_t)snprintf(path, sizeof(path), "%s/%u", dir, domid) >= sizeof(path))
                        return false;
                f = fopen(path, "re");
                if (!f)
                        return false;
                if (!fgets(buf, sizeof(buf), f) || !parse_uuid(buf, uuid)) {
                        fclose(f);
                        fprintf(stderr, "xl-preload: %s does not hold a UUID\n", path);
                        return false;
                }
                fclose(f);
        }
        memset(info, 0, sizeof(*info));
        info->domain = (domid_t)domid;
        /* A PV domain that runs. */
        info->flags = XEN_DOMINF_running;
        info->tot_pages = info->max_pages = 32768;
        info->nr_online_vcpus = 1;
        info->max_vcpu_id = 0;
        memcpy(info->handle, uuid, sizeof(uuid));
        return true;
}

static int domid_cmp(const void *a, const void *b)
{
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

/* The existing domains from FIRST on, in domid order, at most MAX, as the
 * hypervisor lists them. */
EXPORT int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                                 xc_domaininfo_t *info)
{
        const char *dir = getenv("XL_PRELOAD_DOMAINS");
        uint32_t ids[1024];
        unsigned n = 0, k, i;
        struct dirent *e;
        DIR *d;

        (void)xch;
        ids[n++] = 0;
        d = dir ? opendir(dir) : NULL;
        while (d && (e = readdir(d)) && n < sizeof(ids) / sizeof(ids[0])) {
                char *end;
                unsigned long v = strtoul(e->d_name, &end, 10);

                if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && !*end && v < DOMID_FIRST_RESERVED)
                        ids[n++] = (uint32_t)v;
        }
        if (d)
                closedir(d);
        qsort(ids, n, sizeof(ids[0]), domid_cmp);
        for (i = 0, k = 0; i < n && k < max_domains; i++)
                if (ids[i] >= first_domain && domain_info(ids[i], &info[k]))
                        k++;
        return (int)k;
}

/* From the environment, read once at start (see the top of this file). */
static long state_delay_ms;
static const char *self_domid;

static bool is_state_path(const char *path)
{
        size_t len = path ? strlen(path) : 0;

        return len >= 6 && strcmp(path + len - 6, "/state") == 0;
}

EXPORT void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
        static void *(*real)(struct xs_handle *, xs_transaction_t, const char *, unsigned int *);

        if (self_domid && path && strcmp(path, "domid") == 0) {
                char *v = strdup(self_domid);

                if (v && len)
                        *len = (unsigned)strlen(v);
                return v;
        }
        if (!real) {
                real = (void *(*)(struct xs_handle *, xs_transaction_t, const char *, unsigned int *))
                        dlsym(RTLD_NEXT, "xs_read");
                if (!real) {
                        errno = ENOSYS;
                        return NULL;
                }
        }
        if (state_delay_ms > 0 && is_state_path(path)) {
                struct timespec ts = { state_delay_ms / 1000, (state_delay_ms % 1000) * 1000000L };

                nanosleep(&ts, NULL);
        }
        return real(h, t, path, len);
}

/* NAME's value as a number in [0, max]; -1 (after saying why) if it is not
 * one, 0 if unset or empty. */
static long env_number(const char *name, long max)
{
        const char *v = getenv(name);
        char *end;
        long n;

        if (!v || !*v)
                return 0;
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || *end || n < 0 || n > max) {
                fprintf(stderr, "xl-preload: %s=\"%s\" is not a number from 0 to %ld\n", name, v, max);
                return -1;
        }
        return n;
}

/* Reads the settings, and keeps this library out of the environment of the
 * hotplug scripts xl runs: they are ordinary programs (XL_PRELOAD_* stay
 * in their environment, without effect). */
__attribute__((constructor)) static void init(void)
{
        const char *self = getenv("XL_PRELOAD_SELF_DOMID");

        state_delay_ms = env_number("XL_PRELOAD_STATE_DELAY_MS", 60000);
        if (self && *self && env_number("XL_PRELOAD_SELF_DOMID", DOMID_FIRST_RESERVED - 1) < 0)
                state_delay_ms = -1;
        if (state_delay_ms < 0)
                _exit(2);
        self_domid = self && *self ? self : NULL;
        unsetenv("LD_PRELOAD");
}
