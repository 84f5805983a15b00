/* test-loopctl.c — the xen-loopctl executable (XEN_LOOPCTL) against a fake
 * daemon: the real control server with handlers that record what they are
 * asked and answer with canned results.  Checks how xl disk specs become
 * attach arguments, the hotplug-script mode as libxl runs it, output
 * formats and exit statuses. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "control.h"
#include "proto.h"

static const char *loopctl, *block_loopd;
static char dir[64];
static char sock_path[128];
static char file_path[128];
static sd_event *ev;
static struct ctl_server *srv;

/* What the fake daemon was asked last. */
static char last_command[64];
static struct json_object *last_args;
static int n_calls;
static int last_n_fds;
static ino_t last_fd_ino;
static int last_fd_accmode;
static struct ctl_call *held_call;

static void record(const char *command, struct json_object *args, struct ctl_call *call)
{
        snprintf(last_command, sizeof(last_command), "%s", command);
        if (last_args)
                json_object_put(last_args);
        last_args = json_object_get(args);
        last_n_fds = (int)ctl_call_n_fds(call);
        n_calls++;
}

static const char *arg_str(const char *key)
{
        struct json_object *v;

        if (!last_args || !json_object_object_get_ex(last_args, key, &v))
                return NULL;
        return json_object_get_string(v);
}

static bool has_arg(const char *key)
{
        return last_args && json_object_object_get_ex(last_args, key, NULL);
}

static int64_t arg_int(const char *key)
{
        struct json_object *v;

        assert_true(json_object_object_get_ex(last_args, key, &v));
        return json_object_get_int64(v);
}

static struct json_object *parse_json(const char *s)
{
        struct json_object *o = json_tokener_parse(s);
        assert_non_null(o);
        return o;
}

static struct json_object *device_json(void)
{
        return parse_json("{\"device\": \"/dev/loop3\", \"major\": 7, \"minor\": 3, \"diskseq\": 41,"
                          " \"backing\": \"/srv/xen/base.img\", \"access\": \"r\", \"loop\": true,"
                          " \"held\": true, \"dead\": false, \"direct-io\": false, \"block-size\": 512,"
                          " \"offset\": 0, \"size-limit\": 0,"
                          " \"users\": [{\"name\": \"domain 3 disk 51712\", \"domid\": 3, \"devid\": 51712,"
                          "             \"access\": \"r\", \"holding\": true},"
                          "            {\"name\": \"domain 4 disk 51712\", \"domid\": 4, \"devid\": 51712,"
                          "             \"access\": \"r\", \"holding\": false}]}");
}

static int h_status(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("status", args, call);
        ctl_call_reply(call, parse_json("{\"version\": \"0.1.0\", \"protocol\": 1, \"pid\": 4242,"
                                        " \"home\": \"/local/domain/0\", \"devices\": 2, \"disks\": 3,"
                                        " \"fdstore\": true, \"xenstore\": \"connected\"}"));
        return 0;
}

static int h_list(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct json_object *res = json_object_new_object(), *devs = json_object_new_array();

        record("list", args, call);
        json_object_array_add(devs, device_json());
        json_object_array_add(devs, parse_json("{\"device\": \"/dev/loop12\", \"major\": 7, \"minor\": 12,"
                                               " \"diskseq\": 1099, \"backing\": \"/srv/xen/web-private.img\","
                                               " \"access\": \"w\", \"held\": false, \"dead\": false,"
                                               " \"users\": [{\"name\": \"web-root\", \"access\": \"w\","
                                               "             \"holding\": false}]}"));
        json_object_object_add(res, "devices", devs);
        ctl_call_reply(call, res);
        return 0;
}

static int h_attach(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("attach", args, call);
        if (arg_str("name") && strcmp(arg_str("name"), "busy") == 0) {
                ctl_call_error(call, -EBUSY, "Disk %s is in use read-write by domain 3.", arg_str("target"));
                return 0;
        }
        if (arg_str("name") && strcmp(arg_str("name"), "slow") == 0) {
                held_call = call;       /* never answered: the client times out */
                return 0;
        }
        ctl_call_reply(call, device_json());
        return 0;
}

static int h_detach(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("detach", args, call);
        ctl_call_reply(call, NULL);
        return 0;
}

static int h_hotplug_add(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("hotplug-add", args, call);
        if (strstr(arg_str("path"), "/666/")) {
                ctl_call_error(call, -ENOENT, "Cannot attach %s: /srv/missing.img does not exist.", arg_str("path"));
                return 0;
        }
        ctl_call_reply(call, parse_json("{\"physical-device\": \"7:3\", \"physical-device-path\": \"/dev/loop3\","
                                        " \"diskseq\": 41}"));
        return 0;
}

static int h_hotplug_remove(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("hotplug-remove", args, call);
        ctl_call_reply(call, NULL);
        return 0;
}

static void note_fd(struct ctl_call *call)
{
        struct stat st;
        int fd = ctl_call_take_fd(call, 0);

        assert_true(fd >= 0);
        assert_int_equal(fstat(fd, &st), 0);
        last_fd_ino = st.st_ino;
        last_fd_accmode = fcntl(fd, F_GETFL) & O_ACCMODE;
        close(fd);
}

static int h_add_fd(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("add-fd", args, call);
        note_fd(call);
        ctl_call_reply(call, parse_json("{\"fdset-id\": 3, \"fd\": 17}"));
        return 0;
}

static int h_remove_fd(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("remove-fd", args, call);
        ctl_call_reply(call, NULL);
        return 0;
}

static int h_query_fdsets(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("query-fdsets", args, call);
        ctl_call_reply(call, parse_json("{\"fdsets\": [{\"fdset-id\": 3, \"fds\": ["
                                        " {\"fd\": 17, \"opaque\": \"base image\", \"access\": \"r\","
                                        "  \"direct\": false, \"in-use\": true}]}]}"));
        return 0;
}

static int h_reconfigure(struct ctl_call *call, struct json_object *args, void *userdata)
{
        record("reconfigure", args, call);
        if (ctl_call_n_fds(call) > 0)
                note_fd(call);
        ctl_call_reply(call, device_json());
        return 0;
}

static const struct ctl_command commands[] = {
        { "status", h_status, 0 },
        { "list", h_list, 0 },
        { "attach", h_attach, 0 },
        { "detach", h_detach, 0 },
        { "hotplug-add", h_hotplug_add, 0 },
        { "hotplug-remove", h_hotplug_remove, 0 },
        { "add-fd", h_add_fd, 1 },
        { "remove-fd", h_remove_fd, 0 },
        { "query-fdsets", h_query_fdsets, 0 },
        { "reconfigure", h_reconfigure, 1 },
};

/* --- running the CLI ---------------------------------------------------- */

struct run {
        int status;              /* exit status, or -1 */
        char out[16384];
        char err[16384];
};

static void drain(int fd, char *buf, size_t size, size_t *len, bool *open_)
{
        ssize_t n;

        if (!*open_)
                return;
        n = read(fd, buf + *len, size - 1 - *len);
        if (n > 0) {
                *len += (size_t)n;
                buf[*len] = '\0';
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                *open_ = false;
        }
}

/* Runs the CLI as argv0 with args (NULL-terminated); env entries "K=V" set
 * and "K" unset variables; uid (when not -1) drops privileges first. */
static void run_as(struct run *r, uid_t uid, const char *const *env, const char *argv0, ...)
{
        const char *argv[32];
        size_t argc = 0, out_len = 0, err_len = 0;
        bool out_open = true, err_open = true;
        int out[2], errp[2], status;
        va_list ap;
        pid_t pid;

        argv[argc++] = argv0;
        va_start(ap, argv0);
        for (const char *a; (a = va_arg(ap, const char *));)
                argv[argc++] = a;
        va_end(ap);
        argv[argc] = NULL;

        memset(r, 0, sizeof(*r));
        r->status = -1;
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(errp, O_CLOEXEC), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(errp[1], 2) < 0)
                        _exit(120);
                setenv("XEN_LOOPD_SOCKET", sock_path, 1);
                unsetenv("XENBUS_PATH");
                unsetenv("XENBUS_TYPE");
                /* Never reach a real xenstore from a unit test. */
                setenv("XENSTORED_PATH", "/nonexistent/xenstored-socket", 1);
                for (size_t i = 0; env && env[i]; i++) {
                        const char *eq = strchr(env[i], '=');
                        if (eq) {
                                char key[64];
                                snprintf(key, sizeof(key), "%.*s", (int)(eq - env[i]), env[i]);
                                setenv(key, eq + 1, 1);
                        } else
                                unsetenv(env[i]);
                }
                if (uid != (uid_t)-1 && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 ||
                                         setresuid(uid, uid, uid) < 0))
                        _exit(121);
                execv(loopctl, (char *const *)argv);
                _exit(122);
        }
        close(out[1]);
        close(errp[1]);
        assert_int_equal(fcntl(out[0], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(fcntl(errp[0], F_SETFL, O_NONBLOCK), 0);

        for (int i = 0; i < 30000; i++) {
                pid_t w;

                assert_true(sd_event_run(ev, 1000) >= 0);
                drain(out[0], r->out, sizeof(r->out), &out_len, &out_open);
                drain(errp[0], r->err, sizeof(r->err), &err_len, &err_open);
                w = waitpid(pid, &status, WNOHANG);
                assert_true(w >= 0);
                if (w == pid) {
                        while (out_open)
                                drain(out[0], r->out, sizeof(r->out), &out_len, &out_open);
                        while (err_open)
                                drain(errp[0], r->err, sizeof(r->err), &err_len, &err_open);
                        assert_true(WIFEXITED(status));
                        r->status = WEXITSTATUS(status);
                        break;
                }
        }
        close(out[0]);
        close(errp[0]);
        if (r->status < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                fail_msg("xen-loopctl did not finish");
        }
}

#define RUN(r, ...) run_as((r), (uid_t)-1, NULL, "xen-loopctl", __VA_ARGS__, NULL)
#define RUN_ENV(r, env, argv0, ...) run_as((r), (uid_t)-1, (env), (argv0), __VA_ARGS__, NULL)

static void expect(const struct run *r, int status, const char *out, const char *err)
{
        if (r->status != status || (out && !strstr(r->out, out)) || (err && !strstr(r->err, err)))
                fail_msg("exit %d (expected %d)\nstdout: %s\nstderr: %s\nexpected stdout to have: %s\n"
                         "expected stderr to have: %s",
                         r->status, status, r->out, r->err, out ? out : "-", err ? err : "-");
}

static int setup(void **state)
{
        struct ctl_server_config cfg;
        int fd;

        strcpy(dir, "/tmp/test-loopctl-XXXXXX");
        assert_non_null(mkdtemp(dir));
        assert_int_equal(chmod(dir, 0755), 0);
        snprintf(sock_path, sizeof(sock_path), "%s/control", dir);
        snprintf(file_path, sizeof(file_path), "%s/disk.img", dir);
        fd = open(file_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(sd_event_new(&ev), 0);
        cfg = (struct ctl_server_config){
                .path = sock_path,
                .listen_fd = -1,
                .allowed_gid = (gid_t)-1,
                .commands = commands,
                .n_commands = sizeof(commands) / sizeof(commands[0]),
        };
        assert_int_equal(ctl_server_new(ev, &cfg, &srv), 0);
        n_calls = 0;
        last_command[0] = '\0';
        held_call = NULL;
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];

        ctl_server_free(srv, true);
        srv = NULL;
        ev = sd_event_unref(ev);
        if (last_args)
                json_object_put(last_args);
        last_args = NULL;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

/* --- tests -------------------------------------------------------------- */

static void test_usage(void **state)
{
        struct run r;

        RUN(&r, "--help");
        expect(&r, 0, "Exit status", NULL);
        assert_non_null(strstr(r.out, "3  the daemon is not reachable"));
        RUN(&r, "--version");
        expect(&r, 0, "xen-loopctl 0.1.0", NULL);
        run_as(&r, (uid_t)-1, NULL, "xen-loopctl", NULL);
        expect(&r, 2, NULL, "No command");
        RUN(&r, "frobnicate");
        expect(&r, 2, NULL, "Unknown command");
        RUN(&r, "--timeout", "soon", "status");
        expect(&r, 2, NULL, "--timeout");
        RUN(&r, "list", "--rw");
        expect(&r, 2, NULL, "--rw does not apply to list");
        RUN(&r, "detach");
        expect(&r, 2, NULL, "name");
        RUN(&r, "remove-fd");
        expect(&r, 2, NULL, "--fdset");
        RUN(&r, "attach");
        expect(&r, 2, NULL, "disk specification");
        /* add/remove are for the hotplug environment only. */
        RUN(&r, "add");
        expect(&r, 2, NULL, "XENBUS_PATH");
        assert_int_equal(n_calls, 0);
}

static void test_status(void **state)
{
        struct json_object *o;
        struct run r;
        char other[160];

        RUN(&r, "status");
        expect(&r, 0, "xen-loopd 0.1.0 is running (pid 4242), protocol 1.", NULL);
        assert_non_null(strstr(r.out, "fd store:  yes"));
        assert_string_equal(last_command, "status");

        RUN(&r, "status", "--json");
        expect(&r, 0, NULL, NULL);
        o = parse_json(r.out);
        assert_int_equal(json_object_get_int(json_object_object_get(o, "pid")), 4242);
        json_object_put(o);

        /* --socket wins over the environment. */
        snprintf(other, sizeof(other), "%s/elsewhere", dir);
        RUN(&r, "--socket", other, "status");
        snprintf(other, sizeof(other), "xen-loopd is not running (no control socket at %s/elsewhere).", dir);
        expect(&r, 3, NULL, other);
}

static void test_not_running(void **state)
{
        const char *const env[] = { "XEN_LOOPD_SOCKET=/nonexistent/control", NULL };
        struct run r;

        RUN_ENV(&r, env, "xen-loopctl", "list");
        expect(&r, 3, NULL, "xen-loopd is not running (no control socket at /nonexistent/control).");
        RUN_ENV(&r, env, "xen-loopctl", "attach", "/srv/img,,xvda");
        expect(&r, 3, NULL, "is not running");
}

static void test_permission(void **state)
{
        struct run r;

        if (geteuid() != 0)
                skip();
        /* The socket's mode keeps others out... */
        run_as(&r, 65534, NULL, "xen-loopctl", "status", NULL);
        expect(&r, 3, NULL, "Permission denied");
        /* ...and so does the daemon's own check. */
        assert_int_equal(chmod(sock_path, 0666), 0);
        run_as(&r, 65534, NULL, "xen-loopctl", "status", NULL);
        expect(&r, 3, NULL, "Permission denied: only root");
        assert_int_equal(n_calls, 0);
}

static void test_list(void **state)
{
        struct json_object *o;
        struct run r;
        char *line2;

        RUN(&r, "list");
        expect(&r, 0, NULL, NULL);
        assert_true(strncmp(r.out, "DEVICE", 6) == 0);
        line2 = strchr(r.out, '\n');
        assert_non_null(line2);
        *line2 = '\0';
        /* Header columns in order. */
        assert_true(strstr(r.out, "MAJ:MIN") < strstr(r.out, "DISKSEQ"));
        assert_true(strstr(r.out, "DISKSEQ") < strstr(r.out, "ACCESS"));
        assert_true(strstr(r.out, "ACCESS") < strstr(r.out, "HELD"));
        assert_true(strstr(r.out, "HELD") < strstr(r.out, "BACKING"));
        assert_true(strstr(r.out, "BACKING") < strstr(r.out, "USERS"));
        line2++;
        assert_non_null(strstr(line2, "/dev/loop3"));
        assert_non_null(strstr(line2, "7:3 "));
        assert_non_null(strstr(line2, " 41 "));
        assert_non_null(strstr(line2, " ro "));
        assert_non_null(strstr(line2, " yes "));
        assert_non_null(strstr(line2, "/srv/xen/base.img"));
        assert_non_null(strstr(line2, "3/51712*,4/51712"));
        assert_non_null(strstr(line2, "/dev/loop12"));
        assert_non_null(strstr(line2, " rw "));
        assert_non_null(strstr(line2, "web-root"));

        RUN(&r, "list", "--json");
        expect(&r, 0, NULL, NULL);
        o = parse_json(r.out);
        assert_int_equal(json_object_array_length(json_object_object_get(o, "devices")), 2);
        json_object_put(o);
}

static void test_attach_specs(void **state)
{
        struct run r;

        RUN(&r, "attach", "format=raw, vdev=xvdb, access=ro, direct-io-safe, target=/srv/a,b.img");
        expect(&r, 0, "Attached xvdb: /dev/loop3 (7:3, diskseq 41) backed by /srv/xen/base.img, read-only.", NULL);
        assert_string_equal(last_command, "attach");
        assert_string_equal(arg_str("name"), "xvdb");
        assert_string_equal(arg_str("target"), "/srv/a,b.img");
        assert_string_equal(arg_str("access"), "r");
        assert_true(json_object_get_boolean(json_object_object_get(last_args, "direct-io")));
        assert_false(has_arg("offset"));

        RUN(&r, "attach", "--name", "web", "/srv/img,raw,xvda,rw");
        expect(&r, 0, "Attached web:", NULL);
        assert_string_equal(arg_str("name"), "web");
        assert_string_equal(arg_str("target"), "/srv/img");
        assert_string_equal(arg_str("access"), "w");
        assert_false(json_object_get_boolean(json_object_object_get(last_args, "direct-io")));

        /* A relative target is under /dev, as in libxl. */
        RUN(&r, "attach", "vg/lv,,xvdc,r");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("target"), "/dev/vg/lv");
        assert_string_equal(arg_str("access"), "r");

        /* Several words make one disk, as with xl block-attach. */
        RUN(&r, "attach", "/srv/img,,xvdd", "access=ro");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("name"), "xvdd");
        assert_string_equal(arg_str("access"), "r");

        /* Deprecated prefixes are stripped; cdrom means read-only. */
        RUN(&r, "attach", "tap:aio:/srv/img,xvde,w");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("target"), "/srv/img");
        RUN(&r, "attach", "/srv/x.iso,,hdc,cdrom");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("access"), "r");

        /* Our own script is fine; backendtype=phy is what we are. */
        RUN(&r, "attach", "/srv/img,,xvdf,script=block-loopd,backendtype=phy");
        expect(&r, 0, NULL, NULL);

        RUN(&r, "attach", "--no-sharing-check", "--block-size", "4096", "--offset", "1048576", "--size-limit",
            "2097152", "/srv/img,,xvdg");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("access"), "w!");
        assert_int_equal(arg_int("block-size"), 4096);
        assert_int_equal(arg_int("offset"), 1048576);
        assert_int_equal(arg_int("size-limit"), 2097152);
        RUN(&r, "attach", "--no-sharing-check", "/srv/img,,xvdg,ro");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("access"), "r");

        RUN(&r, "attach", "--json", "/srv/img,,xvda");
        expect(&r, 0, "\"diskseq\": 41", NULL);
}

static void test_attach_refused(void **state)
{
        struct run r;
        int calls = n_calls;

        RUN(&r, "attach", "/srv/img.qcow2,qcow2,xvda");
        expect(&r, 2, NULL, "format=qcow2 is not supported");
        RUN(&r, "attach", "format=vhd, vdev=xvda, target=/srv/img.vhd");
        expect(&r, 2, NULL, "format=vhd is not supported");
        RUN(&r, "attach", "/srv/img,,xvda,backendtype=qdisk");
        expect(&r, 2, NULL, "backendtype=qdisk is not supported");
        RUN(&r, "attach", "iqn.2001-05.com.example:disk,,xvda,script=block-iscsi");
        expect(&r, 2, NULL, "script=block-iscsi is not supported");
        RUN(&r, "attach", "/srv/img");
        expect(&r, 2, NULL, "no vdev specified");
        RUN(&r, "attach", "/srv/img,,xvda,w!");
        expect(&r, 2, NULL, "unknown value for access");
        RUN(&r, "attach", ",,xvdc,cdrom");
        expect(&r, 2, NULL, "no target");
        RUN(&r, "attach", "--block-size", "-1", "/srv/img,,xvda");
        expect(&r, 2, NULL, "--block-size");
        assert_int_equal(n_calls, calls);

        /* The daemon's refusal: exit 1 with its sentence. */
        RUN(&r, "attach", "--name", "busy", "/srv/shared.img,,xvda");
        expect(&r, 1, NULL, "Disk /srv/shared.img is in use read-write by domain 3.");
}

static void test_timeout(void **state)
{
        struct run r;

        RUN(&r, "--timeout", "0.3", "attach", "--name", "slow", "/srv/img,,xvda");
        expect(&r, 3, NULL, "did not answer");
        assert_non_null(held_call);
}

static void test_detach(void **state)
{
        struct run r;

        RUN(&r, "detach", "web");
        expect(&r, 0, "Detached web.", NULL);
        assert_string_equal(last_command, "detach");
        assert_string_equal(arg_str("name"), "web");
        RUN(&r, "detach", "--name", "web2");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("name"), "web2");
}

static void test_fdsets(void **state)
{
        struct stat st;
        struct run r;

        assert_int_equal(stat(file_path, &st), 0);
        RUN(&r, "add-fd", "--fdset", "3", "--opaque", "base image", "--rw", file_path);
        expect(&r, 0, "fdset 3 fd 17", NULL);
        assert_string_equal(last_command, "add-fd");
        assert_int_equal(last_n_fds, 1);
        assert_int_equal(last_fd_ino, st.st_ino);
        assert_int_equal(last_fd_accmode, O_RDWR);
        assert_int_equal(arg_int("fdset-id"), 3);
        assert_string_equal(arg_str("opaque"), "base image");

        RUN(&r, "add-fd", file_path);
        expect(&r, 0, NULL, NULL);
        assert_int_equal(last_fd_accmode, O_RDONLY);
        assert_false(has_arg("fdset-id"));
        assert_false(has_arg("opaque"));

        RUN(&r, "add-fd", "/nonexistent/file");
        expect(&r, 1, NULL, "Cannot open /nonexistent/file");

        RUN(&r, "remove-fd", "--fdset", "3", "17");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(last_command, "remove-fd");
        assert_int_equal(arg_int("fdset-id"), 3);
        assert_int_equal(arg_int("fd"), 17);
        RUN(&r, "remove-fd", "4");
        expect(&r, 0, NULL, NULL);
        assert_int_equal(arg_int("fdset-id"), 4);
        assert_false(has_arg("fd"));

        RUN(&r, "query-fdsets");
        expect(&r, 0, "FDSET", NULL);
        assert_non_null(strstr(r.out, "base image"));
        RUN(&r, "query-fdsets", "--json");
        expect(&r, 0, "\"fdset-id\": 3", NULL);
}

static void test_reconfigure(void **state)
{
        struct stat st;
        struct run r;

        RUN(&r, "reconfigure", "web", "--direct-io", "on");
        expect(&r, 0, "Reconfigured web:", NULL);
        assert_string_equal(arg_str("name"), "web");
        assert_true(json_object_get_boolean(json_object_object_get(last_args, "direct-io")));
        assert_int_equal(last_n_fds, 0);

        assert_int_equal(stat(file_path, &st), 0);
        RUN(&r, "reconfigure", "backend/vbd/3/51712", "--backing", file_path);
        expect(&r, 0, NULL, NULL);
        assert_string_equal(arg_str("path"), "backend/vbd/3/51712");
        assert_false(has_arg("direct-io"));
        assert_int_equal(last_n_fds, 1);
        assert_int_equal(last_fd_ino, st.st_ino);
        assert_int_equal(last_fd_accmode, O_RDONLY);

        RUN(&r, "reconfigure", "web");
        expect(&r, 2, NULL, "--direct-io or --backing");
}

/* As libxl runs a disk's script: argv[0] is the script's path, one action,
 * XENBUS_* in the environment, stdin on /dev/null. */
static void test_hotplug(void **state)
{
        char link[160];
        const char *env[] = {
                "XENBUS_PATH=backend/vbd/3/51712", "XENBUS_TYPE=vbd", "XENBUS_BASE_PATH=backend",
                "script=/etc/xen/scripts/block-loopd", NULL,
        };
        struct run r;

        snprintf(link, sizeof(link), "%s/block-loopd", dir);
        assert_int_equal(symlink(loopctl, link), 0);

        RUN_ENV(&r, env, link, "add");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(last_command, "hotplug-add");
        assert_string_equal(arg_str("path"), "backend/vbd/3/51712");
        assert_string_equal(r.out, "");

        RUN_ENV(&r, env, link, "remove");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(last_command, "hotplug-remove");
        assert_string_equal(arg_str("path"), "backend/vbd/3/51712");

        /* Run as xen-loopctl too. */
        RUN_ENV(&r, env, "xen-loopctl", "add");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(last_command, "hotplug-add");

        RUN_ENV(&r, env, link, "add", "extra");
        expect(&r, 2, NULL, NULL);

        /* The daemon's failure: exit 1 with its sentence. */
        {
                const char *bad[] = { "XENBUS_PATH=backend/vbd/666/51712", "XENBUS_TYPE=vbd", NULL };
                RUN_ENV(&r, bad, link, "add");
                expect(&r, 1, NULL, "/srv/missing.img does not exist");
        }
        /* Not a vbd: refused without asking the daemon. */
        {
                const char *vif[] = { "XENBUS_PATH=backend/vif/3/0", "XENBUS_TYPE=vif", NULL };
                int calls = n_calls;
                RUN_ENV(&r, vif, link, "add");
                expect(&r, 1, NULL, "vbd devices only");
                assert_int_equal(n_calls, calls);
        }
}

static void test_hotplug_not_running(void **state)
{
        const char *env[] = {
                "XENBUS_PATH=backend/vbd/3/51712", "XENBUS_TYPE=vbd", "XEN_LOOPD_SOCKET=/nonexistent/control", NULL,
        };
        struct run r;

        /* add fails clearly (xenstore is unreachable here, so it can only
         * say so); remove has nothing to release. */
        RUN_ENV(&r, env, "block-loopd", "add");
        expect(&r, 1, NULL, "xen-loopd is not running: cannot attach backend/vbd/3/51712");
        RUN_ENV(&r, env, "block-loopd", "remove");
        expect(&r, 0, NULL, "nothing to release");
}

/* The installed hotplug script: the same client built without xl's disk
 * parser.  add and remove work as with xen-loopctl; attach is refused with
 * a pointer to xen-loopctl; and it loads no libxenlight. */
static void test_block_loopd_binary(void **state)
{
        const char *env[] = {
                "XENBUS_PATH=backend/vbd/3/51712", "XENBUS_TYPE=vbd", "XENBUS_BASE_PATH=backend", NULL,
        };
        const char *saved = loopctl;
        char cmd[600];
        struct run r;
        int rc;

        loopctl = block_loopd;
        RUN_ENV(&r, env, "/etc/xen/scripts/block-loopd", "add");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(last_command, "hotplug-add");
        assert_string_equal(arg_str("path"), "backend/vbd/3/51712");
        RUN_ENV(&r, env, "/etc/xen/scripts/block-loopd", "remove");
        expect(&r, 0, NULL, NULL);
        assert_string_equal(last_command, "hotplug-remove");

        RUN_ENV(&r, env, "block-loopd", "attach", "vdev=xvda, target=/srv/img");
        expect(&r, 2, NULL, "attach is xen-loopctl's");
        RUN_ENV(&r, env, "block-loopd", "status");
        expect(&r, 0, NULL, NULL);
        loopctl = saved;

        snprintf(cmd, sizeof(cmd), "ldd '%s' | grep -q -e libxenlight -e libxlutil", block_loopd);
        rc = system(cmd);
        assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_usage),
                T(test_status),
                T(test_not_running),
                T(test_permission),
                T(test_list),
                T(test_attach_specs),
                T(test_attach_refused),
                T(test_timeout),
                T(test_detach),
                T(test_fdsets),
                T(test_reconfigure),
                T(test_hotplug),
                T(test_hotplug_not_running),
                T(test_block_loopd_binary),
        };

        loopctl = getenv("XEN_LOOPCTL");
        if (!loopctl || access(loopctl, X_OK) < 0) {
                fprintf(stderr, "XEN_LOOPCTL must name the xen-loopctl executable.\n");
                return 1;
        }
        block_loopd = getenv("BLOCK_LOOPD");
        if (!block_loopd || access(block_loopd, X_OK) < 0) {
                fprintf(stderr, "BLOCK_LOOPD must name the block-loopd executable.\n");
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
