/* loopctl.c — xen-loopctl, the command-line client of xen-loopd, and (as
 * `block-loopd add|remove`, or `xen-loopctl add|remove` with XENBUS_PATH
 * set) the block hotplug script libxl and `xl devd` run for a disk whose
 * script= names it.  It only asks the daemon; it never touches loop devices,
 * and it never waits for blkback. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* block-loopd is this program built without xl's disk parser
 * (LOOPCTL_DISK_SPECS 0): libxlutil, libxenlight and their chain of Xen
 * libraries cost every hotplug script run about a millisecond to load, and
 * only `attach` needs them. */
#ifndef LOOPCTL_DISK_SPECS
#define LOOPCTL_DISK_SPECS 1
#endif

#include <json-c/json.h>
#if LOOPCTL_DISK_SPECS
#include <libxlutil.h>
#endif
#include <xenstore.h>

#include "access.h"
#include "config.h"
#include "ctl-client.h"
#include "log.h"
#include "macro.h"
#include "proto.h"

enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,         /* the daemon (or a local step) reported a failure */
        EXIT_USAGE = 2,
        EXIT_UNREACHABLE = 3,    /* not running, permission denied, no answer */
};

#define USEC_PER_SEC 1000000ULL
#define DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)  /* well inside libxl's 40 s */

static const char *arg_socket;
static uint64_t arg_timeout = DEFAULT_TIMEOUT_USEC;
static bool arg_json;
static const char *arg_name;
static const char *arg_path;
static int64_t arg_fdset = -1;
static const char *arg_opaque;
static bool arg_rw;
static bool arg_no_sharing_check;
static int arg_direct_io = -1;   /* -1: not given */
static const char *arg_backing;
static uint64_t arg_block_size, arg_offset, arg_size_limit;
static bool arg_block_size_set, arg_offset_set, arg_size_limit_set;
static const char *program = "xen-loopctl";

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: %s [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "Client of xen-loopd, the loop device helper for Xen block backends.\n"
                "\n"
                "Commands:\n"
                "  status                      Exit 0 once the daemon answers; print a summary\n"
                "  list [--json]               Loop devices held or shared, with their users\n"
                "%s"
                "  detach NAME                 Release what attach set up\n"
                "  add-fd [--fdset N] [--opaque S] [--rw] PATH\n"
                "                              Open PATH and pass the fd to an fd set\n"
                "  remove-fd --fdset N [FD]    Remove one fd, or the whole set\n"
                "  query-fdsets [--json]       List the fd sets\n"
                "  reconfigure NAME|PATH [--direct-io on|off] [--backing FILE]\n"
                "                              Change a held device (new backing: read-only disks)\n"
                "  add | remove                Block hotplug script (needs XENBUS_PATH; also when\n"
                "                              run as block-loopd)\n"
                "\n"
                "Options:\n"
                "  --socket PATH   Control socket (default: $XEN_LOOPD_SOCKET, else %s)\n"
                "  --timeout SECS  How long to wait for the daemon (default 30; 0: for ever)\n"
                "  --json          Print the daemon's JSON result\n"
                "  -h --help       Show this help\n"
                "  --version       Show the version\n"
                "\n"
                "Exit status:\n"
                "  0  success\n"
                "  1  the command failed (reported by the daemon, or a local error such as an\n"
                "     unreadable file); hotplug mode exits 1 on every failure\n"
                "  2  usage error\n"
                "  3  the daemon is not reachable (not running, permission denied, no answer)\n",
                program,
                LOOPCTL_DISK_SPECS ?
                "  attach [--name N] SPEC...   Set up and hold a loop device for an xl disk spec\n"
                "                              (xl-disk-configuration(5); format=raw only).\n"
                "                              Options: --block-size N, --offset N, --size-limit N,\n"
                "                              --no-sharing-check (access w!); N defaults to vdev\n" :
                "  (attach: xen-loopctl; this build has no xl disk parser)\n",
                XEN_LOOPD_DEFAULT_SOCKET);
}

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "%s: ", program);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help'.\n", program);
        return EXIT_USAGE;
}

/* Logs what failed (%m: errno as it was) and gives the exit status. */
static int failed(const char *fmt, ...) _printf_(1, 2);
static int failed(const char *fmt, ...)
{
        char buf[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        log_error("%s", buf);
        return EXIT_FAILED;
}

static const char *socket_path(void)
{
        const char *e;

        if (arg_socket)
                return arg_socket;
        e = getenv("XEN_LOOPD_SOCKET");
        if (e && *e)
                return e;
        return XEN_LOOPD_DEFAULT_SOCKET;
}

static int parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!s || !*s || *s == '-' || *s == '+')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_timeout(const char *s, uint64_t *ret)
{
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || *end || !(v >= 0) || v > 86400.0 * 365)
                return -EINVAL;
        *ret = v == 0 ? UINT64_MAX : (uint64_t)(v * (double)USEC_PER_SEC + 0.5);
        return 0;
}

/* Prints a failed call's message and maps it to the exit status. */
static int report(const struct ctl_error *err)
{
        log_error("%s", err->message);
        return err->remote ? EXIT_FAILED : EXIT_UNREACHABLE;
}

/* One call on a fresh connection. */
static int call(const char *command, struct json_object *args, const int *fds, size_t n_fds,
                struct json_object **ret, struct ctl_error *err)
{
        struct ctl_client *c = NULL;
        int r;

        r = ctl_client_connect(socket_path(), arg_timeout, &c, err);
        if (r < 0) {
                if (args)
                        json_object_put(args);
                return r;
        }
        r = ctl_client_call(c, command, args, fds, n_fds, arg_timeout, ret, err);
        ctl_client_free(c);
        return r;
}

/* One call, with the arguments the caller built (built: false when that
 * ran out of memory; args is dropped then).  EXIT_OK, or the exit status of
 * the failure, reported. */
static int request(const char *command, struct json_object *args, bool built, const int *fds, size_t n_fds,
                   struct json_object **ret)
{
        struct ctl_error err;

        if (!built) {
                json_object_put(args);
                return failed("Out of memory.");
        }
        if (call(command, args, fds, n_fds, ret, &err) < 0)
                return report(&err);
        return EXIT_OK;
}

static void print_json(struct json_object *o)
{
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
}

static const char *get_str(struct json_object *o, const char *key, const char *def)
{
        struct json_object *v;

        if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return def;
}

static bool get_int(struct json_object *o, const char *key, int64_t *ret)
{
        struct json_object *v;

        if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int)) {
                *ret = json_object_get_int64(v);
                return true;
        }
        return false;
}

static int get_bool(struct json_object *o, const char *key)
{
        struct json_object *v;

        if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean))
                return json_object_get_boolean(v);
        return -1;
}

static struct json_object *get_array(struct json_object *o, const char *key)
{
        struct json_object *v;

        if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array))
                return v;
        return NULL;
}

/* --- status ------------------------------------------------------------- */

static int cmd_status(int argc, char **argv)
{
        _cleanup_json_ struct json_object *res = NULL;
        int64_t n;
        int b, status;

        if (argc > 1)
                return usage_error("status takes no arguments.");
        status = request("status", NULL, true, NULL, 0, &res);
        if (status != EXIT_OK)
                return status;
        if (arg_json) {
                print_json(res);
                return EXIT_OK;
        }
        printf("xen-loopd %s is running", get_str(res, "version", "(unknown version)"));
        if (get_int(res, "pid", &n))
                printf(" (pid %" PRId64 ")", n);
        if (get_int(res, "protocol", &n))
                printf(", protocol %" PRId64, n);
        printf(".\n");
        if (json_object_object_get_ex(res, "xenstore", NULL) || json_object_object_get_ex(res, "home", NULL))
                printf("  xenstore:  %s, home %s\n", get_str(res, "xenstore", "?"), get_str(res, "home", "?"));
        if (get_int(res, "devices", &n))
                printf("  devices:   %" PRId64 "\n", n);
        if (get_int(res, "disks", &n))
                printf("  disks:     %" PRId64 "\n", n);
        b = get_bool(res, "fdstore");
        if (b >= 0)
                printf("  fd store:  %s\n", b ? "yes" : "no");
        return EXIT_OK;
}

/* --- list --------------------------------------------------------------- */

#define LIST_COLUMNS 7

static char *device_users(struct json_object *dev)
{
        struct json_object *users = get_array(dev, "users");
        int64_t others;
        char *buf = NULL;
        size_t sz = 0;
        FILE *f;

        f = open_memstream(&buf, &sz);
        if (!f)
                return NULL;
        for (size_t i = 0; users && i < json_object_array_length(users); i++) {
                struct json_object *u = json_object_array_get_idx(users, i);
                int64_t domid, devid;

                if (i > 0)
                        fputc(',', f);
                if (get_int(u, "domid", &domid) && get_int(u, "devid", &devid))
                        fprintf(f, "%" PRId64 "/%" PRId64, domid, devid);
                else
                        fputs(get_str(u, "name", "?"), f);
                if (get_bool(u, "holding") == 1)
                        fputc('*', f);
        }
        /* Users of others, counted only (the daemon shows a peer that is
         * not root its own). */
        if (get_int(dev, "other-users", &others) && others > 0)
                fprintf(f, "%s+%" PRId64 " other(s)", users && json_object_array_length(users) ? "," : "", others);
        else if (!users || json_object_array_length(users) == 0)
                fputc('-', f);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

/* The last column is not padded: backing paths and user lists can be long. */
static void print_row(const char *const *cells, const size_t *width)
{
        for (size_t c = 0; c + 1 < LIST_COLUMNS; c++)
                printf("%-*s  ", (int)width[c], cells[c] ? cells[c] : "?");
        printf("%s\n", cells[LIST_COLUMNS - 1] ? cells[LIST_COLUMNS - 1] : "?");
}

/* Runs command, which takes no arguments and answers a listing in its
 * result's field.  Returns the exit status when that is all (an error, the
 * --json output, or an empty listing: say_none is printed), or -1 with the
 * listing's items in *ret_items (n of them, owned by *ret_res). */
static int call_listing(int argc, const char *command, const char *field, const char *say_none,
                        struct json_object **ret_res, struct json_object **ret_items, size_t *ret_n)
{
        int status;

        if (argc > 1)
                return usage_error("%s takes no arguments.", command);
        status = request(command, NULL, true, NULL, 0, ret_res);
        if (status != EXIT_OK)
                return status;
        if (arg_json) {
                print_json(*ret_res);
                return EXIT_OK;
        }
        *ret_items = get_array(*ret_res, field);
        *ret_n = *ret_items ? json_object_array_length(*ret_items) : 0;
        if (*ret_n == 0) {
                printf("%s\n", say_none);
                return EXIT_OK;
        }
        return -1;
}

/* The cells of device d's row (a cell may be NULL: out of memory). */
static char **list_row(struct json_object *d)
{
        int64_t maj = -1, min = -1, seq = -1;
        const char *access = get_str(d, "access", "?");
        enum access a;
        int held = get_bool(d, "held"), dead = get_bool(d, "dead");
        char **row = calloc(LIST_COLUMNS, sizeof(char *));

        if (!row)
                return NULL;
        (void)get_int(d, "major", &maj);
        (void)get_int(d, "minor", &min);
        (void)get_int(d, "diskseq", &seq);
        row[0] = strdup(get_str(d, "device", "?"));
        if (asprintf(&row[1], "%" PRId64 ":%" PRId64, maj, min) < 0)
                row[1] = NULL;
        if (seq >= 0 ? asprintf(&row[2], "%" PRId64, seq) < 0 : !(row[2] = strdup("-")))
                row[2] = NULL;
        row[3] = strdup(access_parse(access, false, &a) == 0 ? access_alias(a) : access);
        row[4] = strdup(dead == 1 ? "dead" : held == 1 ? "yes" : held == 0 ? "no" : "?");
        row[5] = strdup(get_str(d, "backing", "?"));
        row[6] = device_users(d);
        return row;
}

static int cmd_list(int argc, char **argv)
{
        static const char *const headers[LIST_COLUMNS] = {
                "DEVICE", "MAJ:MIN", "DISKSEQ", "ACCESS", "HELD", "BACKING", "USERS",
        };
        _cleanup_json_ struct json_object *res = NULL;
        struct json_object *devs;
        int status;
        size_t n, width[LIST_COLUMNS];
        char ***cells;
        bool any_holding = false;

        status = call_listing(argc, "list", "devices", "No loop devices are held or shared.", &res, &devs, &n);
        if (status >= 0)
                return status;

        cells = calloc(n, sizeof(*cells));
        if (!cells)
                return failed("Out of memory.");
        for (size_t c = 0; c < LIST_COLUMNS; c++)
                width[c] = strlen(headers[c]);
        for (size_t i = 0; i < n; i++) {
                cells[i] = list_row(json_object_array_get_idx(devs, i));
                if (!cells[i])
                        break;
                if (strchr(cells[i][6] ? cells[i][6] : "", '*'))
                        any_holding = true;
                for (size_t c = 0; c < LIST_COLUMNS; c++) {
                        if (!cells[i][c])
                                cells[i][c] = strdup("?");
                        if (cells[i][c] && strlen(cells[i][c]) > width[c])
                                width[c] = strlen(cells[i][c]);
                }
        }

        print_row(headers, width);
        for (size_t i = 0; i < n; i++)
                if (cells[i])
                        print_row((const char *const *)cells[i], width);
        if (any_holding)
                printf("(* xen-loopd holds the device for this user: its backend has not opened it yet, "
                       "or it is a direct attach)\n");

        for (size_t i = 0; i < n; i++) {
                if (!cells[i])
                        continue;
                for (size_t c = 0; c < LIST_COLUMNS; c++)
                        free(cells[i][c]);
                free(cells[i]);
        }
        free(cells);
        return EXIT_OK;
}

/* --- attach / detach ---------------------------------------------------- */

static bool is_read_only(const char *mode)
{
        enum access a;

        return access_parse(mode, false, &a) == 0 && a == ACCESS_RO;
}

/* The device a call answered: its JSON with --json, else one sentence. */
static int print_device(const char *verb, const char *name, struct json_object *d)
{
        int64_t maj = -1, min = -1, seq = -1;

        if (arg_json) {
                print_json(d);
                return EXIT_OK;
        }
        (void)get_int(d, "major", &maj);
        (void)get_int(d, "minor", &min);
        (void)get_int(d, "diskseq", &seq);
        printf("%s %s: %s (%" PRId64 ":%" PRId64, verb, name, get_str(d, "device", "?"), maj, min);
        if (seq >= 0)
                printf(", diskseq %" PRId64, seq);
        printf(") backed by %s, %s.\n", get_str(d, "backing", "?"),
               is_read_only(get_str(d, "access", "r")) ? "read-only" : "read-write");
        return EXIT_OK;
}

#if LOOPCTL_DISK_SPECS
static bool script_is_ours(const char *script)
{
        return !script || !*script || proto_script_is_loopd(script);
}

/* Parses specs as `xl block-attach` does (xlu_disk_parse, all the words
 * together) and turns the disk into attach arguments.  Returns an exit
 * status; *ret gets the arguments on success. */
static int disk_spec_to_args(int n, char **specs, struct json_object **ret)
{
        _cleanup_json_ struct json_object *args = NULL;
        _cleanup_free_ char *target = NULL;
        libxl_device_disk disk;
        XLU_Config *cfg;
        const char *name;
        enum access access;
        int r, status = EXIT_USAGE;

        cfg = xlu_cfg_init(stderr, "command line");
        if (!cfg)
                return failed("Out of memory.");
        libxl_device_disk_init(&disk);
        r = xlu_disk_parse(cfg, n, (const char *const *)specs, &disk);
        if (r == EINVAL)
                goto out;        /* xlu_disk_parse printed what is wrong */
        if (r) {
                log_error_errno(-r, "Cannot parse the disk specification: %m.");
                status = EXIT_FAILED;
                goto out;
        }

        if (disk.format == LIBXL_DISK_FORMAT_EMPTY || !disk.pdev_path || !*disk.pdev_path) {
                log_error("The disk specification has no target: an empty drive cannot be attached.");
                goto out;
        }
        if (disk.format != LIBXL_DISK_FORMAT_RAW && disk.format != LIBXL_DISK_FORMAT_UNKNOWN) {
                log_error("format=%s is not supported: xen-loopd attaches raw images and block devices only.",
                          libxl_disk_format_to_string(disk.format));
                goto out;
        }
        if (disk.backend != LIBXL_DISK_BACKEND_UNKNOWN && disk.backend != LIBXL_DISK_BACKEND_PHY) {
                log_error("backendtype=%s is not supported: xen-loopd provides loop devices for blkback "
                          "(backendtype=phy).",
                          libxl_disk_backend_to_string(disk.backend));
                goto out;
        }
        if (!script_is_ours(disk.script)) {
                log_error("script=%s is not supported: the target is for that script to interpret, not a file "
                          "xen-loopd can attach.",
                          disk.script);
                goto out;
        }
        if (libxl_defbool_is_default(disk.colo_enable) ? false : libxl_defbool_val(disk.colo_enable)) {
                log_error("COLO disks are not supported by xen-loopd.");
                goto out;
        }

        /* As libxl does for phy disks: a relative target is under /dev. */
        if (disk.pdev_path[0] == '/')
                target = strdup(disk.pdev_path);
        else if (asprintf(&target, "/dev/%s", disk.pdev_path) < 0)
                target = NULL;
        name = arg_name ? arg_name : disk.vdev;
        access = !disk.readwrite ? ACCESS_RO : arg_no_sharing_check ? ACCESS_RW_FORCE : ACCESS_RW;
        status = EXIT_FAILED;
        if (!target || !name) {
                log_error("Out of memory.");
                goto out;
        }

        args = json_object_new_object();
        if (!args || proto_add_field(args, "name", json_object_new_string(name)) < 0 ||
            proto_add_field(args, "target", json_object_new_string(target)) < 0 ||
            proto_add_field(args, "access", json_object_new_string(access_mode(access))) < 0 ||
            /* Without direct-io-safe the daemon's own setting applies. */
            (disk.direct_io_safe && proto_add_field(args, "direct-io", json_object_new_boolean(true)) < 0) ||
            (arg_block_size_set && proto_add_field(args, "block-size", json_object_new_int64((int64_t)arg_block_size)) < 0) ||
            (arg_offset_set && proto_add_field(args, "offset", json_object_new_int64((int64_t)arg_offset)) < 0) ||
            (arg_size_limit_set && proto_add_field(args, "size-limit", json_object_new_int64((int64_t)arg_size_limit)) < 0)) {
                log_error("Out of memory.");
                goto out;
        }
        *ret = TAKE_PTR(args);
        status = EXIT_OK;
out:
        libxl_device_disk_dispose(&disk);
        xlu_cfg_destroy(cfg);
        return status;
}

static int cmd_attach(int argc, char **argv)
{
        _cleanup_json_ struct json_object *res = NULL;
        struct json_object *args = NULL;
        _cleanup_free_ char *name = NULL;
        int status;

        if (argc < 2)
                return usage_error("attach needs an xl disk specification, e.g. 'vdev=xvda, access=r, target=/srv/img'.");
        status = disk_spec_to_args(argc - 1, argv + 1, &args);
        if (status != EXIT_OK)
                return status;
        name = strdup(get_str(args, "name", "?"));
        status = request("attach", args, name != NULL, NULL, 0, &res);
        return status != EXIT_OK ? status : print_device("Attached", name, res);
}
#endif

static int cmd_detach(int argc, char **argv)
{
        struct json_object *args;
        const char *name = arg_name;
        int status;

        if (argc > 2 || (argc == 2 && name))
                return usage_error("detach takes one name.");
        if (argc == 2)
                name = argv[1];
        if (!name)
                return usage_error("detach needs the name given to attach.");
        args = json_object_new_object();
        status = request("detach", args, args && proto_add_field(args, "name", json_object_new_string(name)) >= 0,
                         NULL, 0, NULL);
        if (status != EXIT_OK)
                return status;
        if (!arg_json)
                printf("Detached %s.\n", name);
        else
                printf("{ }\n");
        return EXIT_OK;
}

/* --- fd sets ------------------------------------------------------------ */

static int cmd_add_fd(int argc, char **argv)
{
        _cleanup_json_ struct json_object *res = NULL;
        _cleanup_close_ int fd = -1;
        struct json_object *args;
        int64_t set = -1, n = -1;
        int status;

        if (argc != 2)
                return usage_error("add-fd takes one PATH to open.");
        fd = open(argv[1], (arg_rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return failed("Cannot open %s: %m", argv[1]);
        args = json_object_new_object();
        status = request("add-fd", args,
                         args && (arg_fdset < 0 || proto_add_field(args, "fdset-id", json_object_new_int64(arg_fdset)) >= 0) &&
                                 (!arg_opaque || proto_add_field(args, "opaque", json_object_new_string(arg_opaque)) >= 0),
                         &fd, 1, &res);
        if (status != EXIT_OK)
                return status;
        if (arg_json) {
                print_json(res);
                return EXIT_OK;
        }
        (void)get_int(res, "fdset-id", &set);
        (void)get_int(res, "fd", &n);
        printf("fdset %" PRId64 " fd %" PRId64 "\n", set, n);
        return EXIT_OK;
}

static int cmd_remove_fd(int argc, char **argv)
{
        struct json_object *args;
        uint64_t set, fd = UINT64_MAX;
        int i = 1;

        if (arg_fdset >= 0)
                set = (uint64_t)arg_fdset;
        else if (argc > 1 && parse_u64(argv[i], &set) == 0)
                i++;
        else
                return usage_error("remove-fd needs --fdset N.");
        if (argc - i > 1)
                return usage_error("remove-fd takes at most one FD.");
        if (argc - i == 1 && (parse_u64(argv[i], &fd) < 0 || fd > INT32_MAX))
                return usage_error("Invalid fd number \"%s\".", argv[i]);
        args = json_object_new_object();
        return request("remove-fd", args,
                       args && proto_add_field(args, "fdset-id", json_object_new_int64((int64_t)set)) >= 0 &&
                               (fd == UINT64_MAX || proto_add_field(args, "fd", json_object_new_int64((int64_t)fd)) >= 0),
                       NULL, 0, NULL);
}

static int cmd_query_fdsets(int argc, char **argv)
{
        _cleanup_json_ struct json_object *res = NULL;
        struct json_object *sets;
        int status;
        size_t n;

        status = call_listing(argc, "query-fdsets", "fdsets", "No fd sets.", &res, &sets, &n);
        if (status >= 0)
                return status;
        printf("%-6s  %-5s  %-6s  %-6s  %-6s  %s\n", "FDSET", "FD", "ACCESS", "DIRECT", "IN-USE", "OPAQUE");
        for (size_t i = 0; i < n; i++) {
                struct json_object *set = json_object_array_get_idx(sets, i), *fds = get_array(set, "fds");
                int64_t id = -1;

                (void)get_int(set, "fdset-id", &id);
                for (size_t j = 0; fds && j < json_object_array_length(fds); j++) {
                        struct json_object *f = json_object_array_get_idx(fds, j);
                        int64_t fd = -1;

                        (void)get_int(f, "fd", &fd);
                        printf("%-6" PRId64 "  %-5" PRId64 "  %-6s  %-6s  %-6s  %s\n", id, fd, get_str(f, "access", "?"),
                               get_bool(f, "direct") == 1 ? "yes" : "no", get_bool(f, "in-use") == 1 ? "yes" : "no",
                               get_str(f, "opaque", ""));
                }
        }
        return EXIT_OK;
}

/* --- reconfigure -------------------------------------------------------- */

static int cmd_reconfigure(int argc, char **argv)
{
        _cleanup_json_ struct json_object *res = NULL;
        _cleanup_close_ int fd = -1;
        struct json_object *args;
        const char *key = NULL, *value = NULL;
        int status;

        if (arg_name && arg_path)
                return usage_error("reconfigure takes a name or a path, not both.");
        if (argc > 2 || (argc == 2 && (arg_name || arg_path)))
                return usage_error("reconfigure takes one NAME or backend PATH.");
        if (arg_name)
                key = "name", value = arg_name;
        else if (arg_path)
                key = "path", value = arg_path;
        else if (argc == 2)
                /* Backend paths (backend/vbd/3/51712) have slashes; names do not. */
                key = strchr(argv[1], '/') ? "path" : "name", value = argv[1];
        else
                return usage_error("reconfigure needs a NAME or a backend PATH.");
        if (arg_direct_io < 0 && !arg_backing)
                return usage_error("reconfigure needs --direct-io or --backing.");

        if (arg_backing) {
                fd = open(arg_backing, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return failed("Cannot open %s: %m", arg_backing);
        }
        args = json_object_new_object();
        status = request("reconfigure", args,
                         args && proto_add_field(args, key, json_object_new_string(value)) >= 0 &&
                                 (arg_direct_io < 0 ||
                                  proto_add_field(args, "direct-io", json_object_new_boolean(arg_direct_io)) >= 0) &&
                                 (!arg_backing ||
                                  proto_add_field(args, "backing-path", json_object_new_string(arg_backing)) >= 0),
                         fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, &res);
        return status != EXIT_OK ? status : print_device("Reconfigured", value, res);
}

/* --- hotplug script ----------------------------------------------------- */

static void xs_freep(struct xs_handle **h)
{
        if (*h)
                xs_close(*h);
}

/* The longest hotplug-error written here: under oxenstored's limit on a
 * value (quota-maxsize, 2048 bytes), the lower of the two xenstoreds'. */
#define HOTPLUG_ERROR_MAX 1536
_Static_assert(HOTPLUG_ERROR_MAX < 2048, "hotplug-error must fit every xenstored");

/* Leaves hotplug-error/hotplug-status=error in the backend directory, as
 * libxl expects of a failed script, unless an error is already there (the
 * daemon writes its own).  Nothing is created if the directory is gone. */
static void hotplug_write_error(const char *be, const char *message)
{
        _cleanup_(xs_freep) struct xs_handle *h = NULL;
        _cleanup_free_ char *err_path = NULL, *status_path = NULL;

        if (asprintf(&err_path, "%s/hotplug-error", be) < 0 || asprintf(&status_path, "%s/hotplug-status", be) < 0) {
                log_error("Out of memory.");
                return;
        }
        h = xs_open(0);
        if (!h) {
                log_error("Cannot open xenstore to report the error: %m.");
                return;
        }
        for (int attempt = 0; attempt < 16; attempt++) {
                _cleanup_free_ char *dir = NULL, *old_err = NULL, *old_status = NULL;
                xs_transaction_t t = xs_transaction_start(h);
                unsigned len;

                if (t == XBT_NULL) {
                        log_error("Cannot start a xenstore transaction: %m.");
                        return;
                }
                dir = xs_read(h, t, be, &len);
                if (!dir) {
                        xs_transaction_end(h, t, true);
                        log_debug("%s is gone; not reporting the error there.", be);
                        return;
                }
                old_err = xs_read(h, t, err_path, &len);
                old_status = xs_read(h, t, status_path, &len);
                if (old_err && *old_err && old_status && strcmp(old_status, "error") == 0) {
                        xs_transaction_end(h, t, true);
                        return;
                }
                if ((!old_err || !*old_err) && !xs_write(h, t, err_path, message, strlen(message))) {
                        log_error("Cannot write %s: %m.", err_path);
                        xs_transaction_end(h, t, true);
                        return;
                }
                if (!xs_write(h, t, status_path, "error", 5)) {
                        log_error("Cannot write %s: %m.", status_path);
                        xs_transaction_end(h, t, true);
                        return;
                }
                if (xs_transaction_end(h, t, false))
                        return;
                if (errno != EAGAIN) {
                        log_error("Cannot commit the hotplug error to xenstore: %m.");
                        return;
                }
        }
        log_error("Cannot commit the hotplug error to xenstore: too much contention.");
}

static int cmd_hotplug(int argc, char **argv)
{
        const char *action = argv[0], *be = getenv("XENBUS_PATH"), *type = getenv("XENBUS_TYPE");
        bool add = strcmp(action, "add") == 0;
        struct json_object *args;
        struct ctl_error err;
        char msg[HOTPLUG_ERROR_MAX];

        if (argc > 1)
                return usage_error("%s takes no arguments: it is run as a hotplug script.", action);
        if (!be || !*be)
                return usage_error("%s is the block hotplug script action: XENBUS_PATH must name the backend.", action);

        if (type && *type && strcmp(type, "vbd") != 0) {
                snprintf(msg, sizeof(msg), "xen-loopd handles vbd devices only, not %s (%s).", type, be);
                log_error("%s", msg);
                if (add)
                        hotplug_write_error(be, msg);
                return EXIT_FAILED;
        }

        args = json_object_new_object();
        if (!args || proto_add_field(args, "path", json_object_new_string(be)) < 0) {
                json_object_put(args);
                log_error("Out of memory.");
                return EXIT_FAILED;
        }
        if (call(add ? "hotplug-add" : "hotplug-remove", args, NULL, 0, NULL, &err) == 0)
                return EXIT_OK;

        if (!err.remote && (err.error == -ENOENT || err.error == -ECONNREFUSED || err.error == -ENOTDIR)) {
                if (!add) {
                        /* Nothing is held without the daemon: a loop device
                         * it set up autoclears once blkback closes it. */
                        log_warning("xen-loopd is not running: nothing to release for %s.", be);
                        return EXIT_OK;
                }
                snprintf(msg, sizeof(msg), "xen-loopd is not running: cannot attach %s", be);
        } else
                snprintf(msg, sizeof(msg), "%s", err.message);
        log_error("%s", msg);
        hotplug_write_error(be, msg);
        return EXIT_FAILED;
}

/* --- main --------------------------------------------------------------- */

/* Each command option's setter: 0, or the exit status of a usage error. */
static int set_json(const char *arg) { arg_json = true; return 0; }
static int set_name(const char *arg) { arg_name = arg; return 0; }
static int set_path(const char *arg) { arg_path = arg; return 0; }
static int set_opaque(const char *arg) { arg_opaque = arg; return 0; }
static int set_rw(const char *arg) { arg_rw = true; return 0; }
static int set_no_sharing_check(const char *arg) { arg_no_sharing_check = true; return 0; }
static int set_backing(const char *arg) { arg_backing = arg; return 0; }

static int set_fdset(const char *arg)
{
        uint64_t u;

        if (parse_u64(arg, &u) < 0 || u > INT32_MAX)
                return usage_error("Invalid --fdset \"%s\".", arg);
        arg_fdset = (int64_t)u;
        return 0;
}

static int set_direct_io(const char *arg)
{
        if (strcmp(arg, "on") == 0 || strcmp(arg, "yes") == 0 || strcmp(arg, "1") == 0)
                arg_direct_io = 1;
        else if (strcmp(arg, "off") == 0 || strcmp(arg, "no") == 0 || strcmp(arg, "0") == 0)
                arg_direct_io = 0;
        else
                return usage_error("Invalid --direct-io \"%s\": give on or off.", arg);
        return 0;
}

/* A size option: at most max; *set records that it was given. */
static int set_size(const char *option, const char *arg, uint64_t max, uint64_t *ret, bool *set)
{
        if (parse_u64(arg, ret) < 0 || *ret > max)
                return usage_error("Invalid --%s \"%s\".", option, arg);
        *set = true;
        return 0;
}

static int set_block_size(const char *arg)
{
        return set_size("block-size", arg, UINT32_MAX, &arg_block_size, &arg_block_size_set);
}

static int set_offset(const char *arg)
{
        return set_size("offset", arg, INT64_MAX, &arg_offset, &arg_offset_set);
}

static int set_size_limit(const char *arg)
{
        return set_size("size-limit", arg, INT64_MAX, &arg_size_limit, &arg_size_limit_set);
}

/* The command options, the one place each is described: its letter is
 * what commands[].options lists. */
static const struct {
        const char *name;
        bool has_arg;
        char letter;
        int (*set)(const char *arg);
} cmd_options[] = {
        /* What is printed. */
        { "json", false, 'j', set_json },
        /* Which attachment or disk. */
        { "name", true, 'n', set_name },
        { "path", true, 'p', set_path },
        /* The fd set an fd joins, and how the fd is opened. */
        { "fdset", true, 'f', set_fdset },
        { "opaque", true, 'o', set_opaque },
        { "rw", false, 'w', set_rw },
        /* How attach sets the device up. */
        { "no-sharing-check", false, '!', set_no_sharing_check },
        { "block-size", true, 'B', set_block_size },
        { "offset", true, 'O', set_offset },
        { "size-limit", true, 'S', set_size_limit },
        /* What reconfigure changes. */
        { "direct-io", true, 'd', set_direct_io },
        { "backing", true, 'b', set_backing },
};

enum {
        OPT_SOCKET = 0x100,
        OPT_TIMEOUT,
        OPT_VERSION,
        OPT_COMMAND_OPTION,      /* + the index in cmd_options */
};

static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *options;     /* the command options it takes, by letter */
} commands[] = {
        { "status", cmd_status, "j" },
        { "list", cmd_list, "j" },
#if LOOPCTL_DISK_SPECS
        { "attach", cmd_attach, "jnBOS!" },
#endif
        { "detach", cmd_detach, "jn" },
        { "add-fd", cmd_add_fd, "jfow" },
        { "remove-fd", cmd_remove_fd, "f" },
        { "query-fdsets", cmd_query_fdsets, "j" },
        { "reconfigure", cmd_reconfigure, "jnpdb" },
        { "add", cmd_hotplug, "" },
        { "remove", cmd_hotplug, "" },
};

/* Which command options were given, by letter. */
static char given[ARRAY_SIZE(cmd_options) + 1];

static void note_given(char letter)
{
        if (!strchr(given, letter) && strlen(given) + 1 < sizeof(given))
                given[strlen(given)] = letter;
}

static const char *option_name(char letter)
{
        for (size_t i = 0; i < ARRAY_SIZE(cmd_options); i++)
                if (cmd_options[i].letter == letter)
                        return cmd_options[i].name;
        return "?";
}

/* getopt's table: the global options, then cmd_options. */
static void build_options(struct option *o)
{
        static const struct option global[] = {
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
        };
        size_t n = 0;

        for (size_t i = 0; i < ARRAY_SIZE(global); i++)
                o[n++] = global[i];
        for (size_t i = 0; i < ARRAY_SIZE(cmd_options); i++)
                o[n++] = (struct option){ cmd_options[i].name,
                                          cmd_options[i].has_arg ? required_argument : no_argument, NULL,
                                          OPT_COMMAND_OPTION + (int)i };
        o[n] = (struct option){};
}

/* 0 once every option is read, -1 to exit with *ret_status. */
static int parse_options(int argc, char **argv, int *ret_status)
{
        struct option options[4 + ARRAY_SIZE(cmd_options) + 1];
        int c;

        build_options(options);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                *ret_status = EXIT_OK;
                switch (c) {
                case OPT_SOCKET:
                        arg_socket = optarg;
                        break;
                case OPT_TIMEOUT:
                        if (parse_timeout(optarg, &arg_timeout) < 0)
                                *ret_status = usage_error("Invalid --timeout \"%s\": give seconds.", optarg);
                        break;
                case 'h':
                        usage(stdout);
                        return -1;
                case OPT_VERSION:
                        printf("xen-loopctl %s (control protocol %d)\n", PACKAGE_VERSION, PROTO_VERSION);
                        return -1;
                default:
                        if (c < OPT_COMMAND_OPTION || c >= OPT_COMMAND_OPTION + (int)ARRAY_SIZE(cmd_options)) {
                                *ret_status = usage_error("Invalid option.");
                                break;
                        }
                        *ret_status = cmd_options[c - OPT_COMMAND_OPTION].set(optarg);
                        note_given(cmd_options[c - OPT_COMMAND_OPTION].letter);
                }
                if (*ret_status != EXIT_OK)
                        return -1;
        }
        return 0;
}

int main(int argc, char **argv)
{
        const char *base = strrchr(argv[0] ? argv[0] : "", '/');
        int status;

        base = base ? base + 1 : (argv[0] ? argv[0] : "xen-loopctl");
        if (strcmp(base, "block-loopd") == 0)
                program = "block-loopd";
        log_set_prefix(program);

        if (parse_options(argc, argv, &status) < 0)
                return status;
        if (optind >= argc)
                return usage_error("No command given.");
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
                if (strcmp(argv[optind], commands[i].name) != 0)
                        continue;
                for (const char *g = given; *g; g++)
                        if (!strchr(commands[i].options, *g))
                                return usage_error("--%s does not apply to %s.", option_name(*g),
                                                   commands[i].name);
                return commands[i].run(argc - optind, argv + optind);
        }
        if (!LOOPCTL_DISK_SPECS && strcmp(argv[optind], "attach") == 0)
                return usage_error("attach is xen-loopctl's: %s is built without xl's disk parser.", program);
        return usage_error("Unknown command \"%s\".", argv[optind]);
}
