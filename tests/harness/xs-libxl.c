/*
 * xs-libxl — writes and tears down vbd backends the way libxl 4.17 does
 * (libxl__device_disk_add / libxl__initiate_device_generic_remove /
 * libxl__device_destroy), so tests drive hotplug scripts and the daemon with
 * the same xenstore traffic a real toolstack produces.
 *
 *   add     --domid D (--devid N | --vdev V) [--vdev V] --params P
 *           [--mode r|w|w!] [--script S | --no-script] [--cdrom] [--pv]
 *           [--backend-domid B] [--home H]
 *   remove  --domid D --devid N [--stage close|destroy] [--force]
 *           [--timeout S] [--backend-domid B] [--home H]
 *   domain  --domid D [--name NAME]      the guest's own directories
 *   wait    PATH VALUE [--timeout S]     until PATH holds VALUE
 *   wait-gone PATH [--timeout S]         until PATH does not exist
 *   read    PATH                         print the value, exit 1 if absent
 *   exists  PATH                         exit 0 if PATH exists, else 1
 *
 * `remove --stage close` exits 0 once the backend is Closed (6), 2 when the
 * backend was already gone, 3 when it did not close in time even after the
 * forced retry; libxl runs the hotplug script `remove` only after 0.
 */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

#include "libxl-emu.h"
#include "macro.h"

#define LIBXL_INIT_TIMEOUT 10
#define LIBXL_DESTROY_TIMEOUT 10

enum {
        EXIT_GONE = 2,
        EXIT_TIMEOUT = 3,
        EXIT_EXISTS = 4,
};

static struct xs_handle *xs;

static const char *prog = "xs-libxl";

static void _printf_(1, 2) die_msg(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", prog);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static char *_printf_(1, 2) xasprintf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0) {
                die_msg("out of memory");
                exit(EXIT_FAILURE);
        }
        return s;
}

static void xs_disconnect(void)
{
        /* Also ends libxenstore's reader thread. */
        if (xs)
                xs_close(xs);
        xs = NULL;
}

static void xs_connect(void)
{
        xs = xs_open(XS_OPEN_SOCKETONLY);
        if (!xs) {
                die_msg("cannot reach xenstored (XENSTORED_PATH=%s): %m",
                        getenv("XENSTORED_PATH") ?: "unset");
                exit(EXIT_FAILURE);
        }
        atexit(xs_disconnect);
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Waits through a watch until PATH holds VALUE (or, with VALUE NULL, is
 * absent).  Returns 0, -ETIMEDOUT, -ENOENT if it vanished while a value was
 * wanted and vanish_fails is set, or another -errno.
 */
static int wait_node(const char *path, const char *value, bool vanish_fails, int timeout_s)
{
        static unsigned seq;
        char token[32];
        long long deadline = now_ms() + (long long)timeout_s * 1000;
        int r = -ETIMEDOUT;

        snprintf(token, sizeof(token), "xs-libxl-%u", seq++);
        if (!xs_watch(xs, path, token))
                return negative_errno();

        for (;;) {
                unsigned len;
                char *v = xs_read(xs, XBT_NULL, path, &len);
                bool done;
                long long left;

                if (!v && errno != ENOENT) {
                        r = negative_errno();
                        break;
                }
                done = value ? (v && strcmp(v, value) == 0) : !v;
                if (!done && value && !v && vanish_fails) {
                        r = -ENOENT;
                        break;
                }
                free(v);
                if (done) {
                        r = 0;
                        break;
                }
                left = deadline - now_ms();
                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                struct pollfd p = { .fd = xs_fileno(xs), .events = POLLIN };
                if (poll(&p, 1, (int)left) < 0 && errno != EINTR) {
                        r = negative_errno();
                        break;
                }
                char **w;
                while ((w = xs_check_watch(xs)))
                        free(w);
        }
        xs_unwatch(xs, path, token);
        return r;
}

/* libxl__device_disk_dev_number(), for the names tests use. */

/* The inverse for xvd names; other devids are written as numbers, which
 * libxl accepts as a vdev too. */
static const char *devid_to_vdev(long devid, char *buf, size_t n)
{
        long disk, part;
        char letters[8];
        int i = (int)sizeof(letters) - 1;

        if ((devid >> 8) == 202) {
                disk = (devid >> 4) & 15;
                part = devid & 15;
        } else if (devid & (1L << 28)) {
                disk = (devid >> 8) & 0xfffff;
                part = devid & 255;
        } else {
                snprintf(buf, n, "%ld", devid);
                return buf;
        }
        letters[i] = '\0';
        for (disk++; disk > 0 && i > 0; disk = (disk - 1) / 26)
                letters[--i] = (char)('a' + (disk - 1) % 26);
        if (part)
                snprintf(buf, n, "xvd%s%ld", letters + i, part);
        else
                snprintf(buf, n, "xvd%s", letters + i);
        return buf;
}

struct opts {
        const char *home;
        long domid, devid, backend_domid;
        const char *vdev, *params, *mode, *script, *stage, *name;
        bool no_script, cdrom, pv, force;
        int timeout;
};

static int cmd_add(struct opts *o)
{
        _cleanup_free_ char *script = NULL;
        char vdev_buf[32];
        struct libxl_disk d = {};
        int r;

        if (o->domid < 0 || !o->params || (o->devid < 0 && !o->vdev)) {
                die_msg("add needs --domid, --params and --devid or --vdev");
                return EXIT_FAILURE;
        }
        if (o->devid < 0 && (o->devid = libxl_vdev_to_devid(o->vdev)) < 0) {
                die_msg("invalid or unsupported virtual disk identifier %s", o->vdev);
                return EXIT_FAILURE;
        }
        if (strcmp(o->mode, "r") != 0 && strcmp(o->mode, "w") != 0 && strcmp(o->mode, "w!") != 0) {
                die_msg("--mode must be r, w or w!");
                return EXIT_FAILURE;
        }
        if (!o->no_script && !(script = libxl_script_path(o->script))) {
                die_msg("out of memory");
                return EXIT_FAILURE;
        }
        d = (struct libxl_disk){
                .domid = (uint32_t)o->domid,
                .devid = (uint32_t)o->devid,
                .backend_domid = (uint32_t)o->backend_domid,
                /* libxl writes `dev` from the vdev; without one, name the devid. */
                .vdev = o->vdev ?: devid_to_vdev(o->devid, vdev_buf, sizeof(vdev_buf)),
                .params = o->params,
                .mode = o->mode,
                .script = script,
                .cdrom = o->cdrom,
                .pv = o->pv,
        };
        if (libxl_disk_paths(&d, o->home) < 0) {
                die_msg("out of memory");
                return EXIT_FAILURE;
        }
        r = libxl_disk_add(xs, &d);
        if (r == -EEXIST)
                die_msg("device already exists in xenstore: %s", d.lx);
        else if (r < 0)
                die_msg("writing %s: %s", d.be, strerror(-r));
        else
                printf("%s\n", d.be);
        libxl_disk_paths_free(&d);
        return r == -EEXIST ? EXIT_EXISTS : r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static int destroy(const char *fe, const char *be, const char *lx)
{
        int r = libxl_disk_destroy(xs, fe, be, lx);

        if (r < 0) {
                die_msg("removing %s: %s", be, strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int cmd_remove(struct opts *o)
{
        _cleanup_free_ char *fe = NULL, *be = NULL, *lx = NULL, *state_p = NULL;
        bool do_close, do_destroy, force = o->force;
        int r;

        if (o->domid < 0 || o->devid < 0) {
                die_msg("remove needs --domid and --devid");
                return EXIT_FAILURE;
        }
        do_close = !o->stage || strcmp(o->stage, "close") == 0;
        do_destroy = !o->stage || strcmp(o->stage, "destroy") == 0;
        if (!do_close && !do_destroy) {
                die_msg("--stage must be close or destroy");
                return EXIT_FAILURE;
        }
        fe = xasprintf("/local/domain/%ld/device/vbd/%ld", o->domid, o->devid);
        be = xasprintf("%s/backend/vbd/%ld/%ld", o->home, o->domid, o->devid);
        lx = xasprintf("/libxl/%ld/device/vbd/%ld", o->domid, o->devid);
        state_p = xasprintf("%s/state", be);

        if (do_close) {
                for (;;) {
                        r = libxl_disk_start_close(xs, fe, be, force);
                        if (r == 1) {
                                fprintf(stderr, "%s: backend %s already removed, cleanup frontend only\n",
                                        prog, be);
                                if (!do_destroy)
                                        return EXIT_GONE;
                                break;
                        }
                        if (r < 0) {
                                die_msg("closing %s: %s", be, strerror(-r));
                                return EXIT_FAILURE;
                        }
                        r = wait_node(state_p, "6", true, o->timeout);
                        if (r == 0)
                                break;
                        if (r == -ETIMEDOUT && !force) {
                                /* libxl's FORCE_AUTO: drop the frontend, retry once. */
                                fprintf(stderr, "%s: %s did not close in %d s, forcing\n",
                                        prog, be, o->timeout);
                                force = true;
                                continue;
                        }
                        die_msg("backend %s did not reach state 6: %s", be, strerror(-r));
                        /* After a forced timeout libxl destroys without running
                         * the hotplug script. */
                        if (do_destroy && r == -ETIMEDOUT)
                                destroy(fe, be, lx);
                        return r == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_FAILURE;
                }
        }
        if (do_destroy)
                return destroy(fe, be, lx);
        return EXIT_SUCCESS;
}

static int cmd_domain(struct opts *o)
{
        int r;

        if (o->domid <= 0) {
                die_msg("domain needs --domid (not 0)");
                return EXIT_FAILURE;
        }
        r = libxl_domain_create(xs, (uint32_t)o->domid, o->name);
        if (r < 0) {
                die_msg("writing /local/domain/%ld: %s", o->domid, strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static int cmd_wait(const char *path, const char *value, int timeout)
{
        int r = wait_node(path, value, false, timeout);

        if (r == -ETIMEDOUT) {
                unsigned len;
                _cleanup_free_ char *v = xs_read(xs, XBT_NULL, path, &len);
                if (value)
                        die_msg("timed out after %d s waiting for %s = \"%s\" (it is %s%s%s)",
                                timeout, path, value, v ? "\"" : "", v ?: "absent", v ? "\"" : "");
                else
                        die_msg("timed out after %d s waiting for %s to go", timeout, path);
                return EXIT_FAILURE;
        }
        if (r < 0) {
                die_msg("waiting for %s: %s", path, strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

static void usage(FILE *f)
{
        fputs("Usage:\n"
              "  xs-libxl add --domid D (--devid N | --vdev V) --params P [--mode r|w|w!]\n"
              "               [--script S | --no-script] [--cdrom] [--pv] [--backend-domid B] [--home H]\n"
              "  xs-libxl remove --domid D --devid N [--stage close|destroy] [--force]\n"
              "               [--timeout S] [--home H]\n"
              "  xs-libxl domain --domid D [--name NAME]\n"
              "  xs-libxl wait PATH VALUE [--timeout S]\n"
              "  xs-libxl wait-gone PATH [--timeout S]\n"
              "  xs-libxl read PATH\n"
              "  xs-libxl exists PATH\n", f);
}

static long parse_long(const char *s, const char *what)
{
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || !*s || *end || v < 0) {
                die_msg("invalid %s: %s", what, s);
                exit(EXIT_FAILURE);
        }
        return v;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
                { "domid", required_argument, NULL, 'd' },
                { "devid", required_argument, NULL, 'n' },
                { "vdev", required_argument, NULL, 'v' },
                { "params", required_argument, NULL, 'p' },
                { "mode", required_argument, NULL, 'm' },
                { "script", required_argument, NULL, 's' },
                { "no-script", no_argument, NULL, 'S' },
                { "cdrom", no_argument, NULL, 'c' },
                { "pv", no_argument, NULL, 'P' },
                { "backend-domid", required_argument, NULL, 'b' },
                { "home", required_argument, NULL, 'H' },
                { "stage", required_argument, NULL, 'g' },
                { "force", no_argument, NULL, 'f' },
                { "timeout", required_argument, NULL, 't' },
                { "name", required_argument, NULL, 'N' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct opts o = {
                .home = NULL, .domid = -1, .devid = -1, .backend_domid = 0,
                .mode = "w", .script = "block", .timeout = -1,
        };
        const char *cmd;
        int c;

        if (argc < 2) {
                usage(stderr);
                return EXIT_FAILURE;
        }
        cmd = argv[1];
        if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
                usage(stdout);
                return EXIT_SUCCESS;
        }
        optind = 2;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                switch (c) {
                case 'd': o.domid = parse_long(optarg, "domid"); break;
                case 'n': o.devid = parse_long(optarg, "devid"); break;
                case 'v': o.vdev = optarg; break;
                case 'p': o.params = optarg; break;
                case 'm': o.mode = optarg; break;
                case 's': o.script = optarg; break;
                case 'S': o.no_script = true; break;
                case 'c': o.cdrom = true; break;
                case 'P': o.pv = true; break;
                case 'b': o.backend_domid = parse_long(optarg, "backend domid"); break;
                case 'H': o.home = optarg; break;
                case 'g': o.stage = optarg; break;
                case 'f': o.force = true; break;
                case 't': o.timeout = (int)parse_long(optarg, "timeout"); break;
                case 'N': o.name = optarg; break;
                case 'h': usage(stdout); return EXIT_SUCCESS;
                default: usage(stderr); return EXIT_FAILURE;
                }
        }
        if (!o.home) {
                static char home[40];
                snprintf(home, sizeof(home), "/local/domain/%ld", o.backend_domid);
                o.home = home;
        }

        if (strcmp(cmd, "add") == 0 || strcmp(cmd, "remove") == 0 || strcmp(cmd, "domain") == 0) {
                if (optind != argc) {
                        usage(stderr);
                        return EXIT_FAILURE;
                }
                if (o.timeout < 0)
                        o.timeout = LIBXL_DESTROY_TIMEOUT;
                xs_connect();
                if (cmd[0] == 'a')
                        return cmd_add(&o);
                if (cmd[0] == 'r')
                        return cmd_remove(&o);
                return cmd_domain(&o);
        }
        if (strcmp(cmd, "wait") == 0 || strcmp(cmd, "wait-gone") == 0) {
                bool gone = strcmp(cmd, "wait-gone") == 0;
                if (argc - optind != (gone ? 1 : 2)) {
                        usage(stderr);
                        return EXIT_FAILURE;
                }
                if (o.timeout < 0)
                        o.timeout = LIBXL_INIT_TIMEOUT;
                xs_connect();
                return cmd_wait(argv[optind], gone ? NULL : argv[optind + 1], o.timeout);
        }
        if (strcmp(cmd, "read") == 0 || strcmp(cmd, "exists") == 0) {
                unsigned len;
                char *v;

                if (argc - optind != 1) {
                        usage(stderr);
                        return EXIT_FAILURE;
                }
                xs_connect();
                v = xs_read(xs, XBT_NULL, argv[optind], &len);
                if (!v) {
                        if (cmd[0] == 'r')
                                die_msg("%s: %m", argv[optind]);
                        return EXIT_FAILURE;
                }
                if (cmd[0] == 'r')
                        printf("%s\n", v);
                free(v);
                return EXIT_SUCCESS;
        }
        die_msg("unknown command %s", cmd);
        usage(stderr);
        return EXIT_FAILURE;
}
