/* test-control.c — the control socket server and client on a real socket in
 * a temporary directory, with a private sd-event loop driven by the test.
 * Raw clients (plain sockets in this process) check the wire behaviour
 * exactly; clients that block (ctl-client.c) run in a forked child while
 * the parent runs the loop.  Peer checks use setresuid() in a child and
 * are skipped unless run as root. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "control.h"
#include "ctl-client.h"
#include "proto.h"

#define SEC 1000000ULL

static char dir[64];
static char sock_path[128];
static sd_event *ev;
static struct ctl_server *srv;

/* What the handlers saw. */
static struct ctl_call *deferred[64];
static size_t n_deferred;
static bool defer_sets_cancel = true;
static bool cancel_replies;
static int n_cancelled;
static uint64_t disconnected[2048];
static size_t n_disconnected;
static int handler_calls;

/* --- handlers ----------------------------------------------------------- */

static int h_echo(struct ctl_call *call, struct json_object *args, void *userdata)
{
        assert_ptr_equal(userdata, &srv);
        handler_calls++;
        ctl_call_reply(call, json_object_get(args));
        return 0;
}

static void on_cancel(struct ctl_call *call, void *data)
{
        for (size_t i = 0; i < n_deferred; i++)
                if (deferred[i] == call)
                        deferred[i] = NULL;
        n_cancelled++;
        assert_ptr_equal(data, &n_cancelled);
        if (cancel_replies)
                ctl_call_error(call, -ECANCELED, "Cancelled.");
}

static int h_defer(struct ctl_call *call, struct json_object *args, void *userdata)
{
        handler_calls++;
        assert_true(n_deferred < 64);
        deferred[n_deferred++] = call;
        if (defer_sets_cancel)
                ctl_call_set_cancel(call, on_cancel, &n_cancelled);
        return 0;
}

static int h_fail(struct ctl_call *call, struct json_object *args, void *userdata)
{
        handler_calls++;
        return -EBUSY;
}

static int h_fail_msg(struct ctl_call *call, struct json_object *args, void *userdata)
{
        handler_calls++;
        ctl_call_error(call, -ENOSPC, "No space left for %s.", "the disk");
        return 0;
}

static int h_reply_then_fail(struct ctl_call *call, struct json_object *args, void *userdata)
{
        handler_calls++;
        ctl_call_reply(call, NULL);
        return -EIO;            /* ignored: the call is already complete */
}

/* Reads what fd 0 holds, takes nothing else; reports the count and the
 * peer. */
static int h_fds(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct json_object *res = json_object_new_object();
        char buf[64] = "";
        int fd;

        handler_calls++;
        json_object_object_add(res, "n", json_object_new_int((int)ctl_call_n_fds(call)));
        json_object_object_add(res, "uid", json_object_new_int((int)ctl_call_peer_uid(call)));
        json_object_object_add(res, "pid", json_object_new_int((int)ctl_call_peer_pid(call)));
        if (ctl_call_n_fds(call) > 0) {
                fd = ctl_call_take_fd(call, 0);
                assert_true(fd >= 0);
                assert_int_equal(ctl_call_take_fd(call, 0), -EBADF);
                /* Received with MSG_CMSG_CLOEXEC. */
                assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
                ssize_t n = read(fd, buf, sizeof(buf) - 1);
                if (n > 0)
                        buf[n] = '\0';
                close(fd);
        }
        assert_int_equal(ctl_call_take_fd(call, 99), -EBADF);
        json_object_object_add(res, "data", json_object_new_string(buf));
        ctl_call_reply(call, res);
        return 0;
}

static int h_big(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct json_object *v, *res = json_object_new_object();
        size_t size;
        char *s;

        handler_calls++;
        assert_true(json_object_object_get_ex(args, "size", &v));
        size = (size_t)json_object_get_int64(v);
        s = malloc(size + 1);
        assert_non_null(s);
        memset(s, 'b', size);
        s[size] = '\0';
        json_object_object_add(res, "data", json_object_new_string(s));
        free(s);
        ctl_call_reply(call, res);
        return 0;
}

static const struct ctl_command commands[] = {
        { "echo", h_echo, 0 },
        { "defer", h_defer, 2 },
        { "fail", h_fail, 0 },
        { "fail-msg", h_fail_msg, 0 },
        { "reply-then-fail", h_reply_then_fail, 0 },
        { "fds", h_fds, 3 },
        { "one-fd", h_fds, 1 },
        { "big", h_big, 0 },
};

static void on_disconnect(uint64_t conn_id, void *userdata)
{
        assert_ptr_equal(userdata, &srv);
        if (n_disconnected < 2048)
                disconnected[n_disconnected++] = conn_id;
}

static struct ctl_server_config config(const char *path, int listen_fd, gid_t gid)
{
        return (struct ctl_server_config){
                .path = path,
                .listen_fd = listen_fd,
                .allowed_gid = gid,
                .commands = commands,
                .n_commands = sizeof(commands) / sizeof(commands[0]),
                .userdata = &srv,
                .on_disconnect = on_disconnect,
        };
}

static int start_server(gid_t gid)
{
        struct ctl_server_config cfg = config(sock_path, -1, gid);
        return ctl_server_new(ev, &cfg, &srv);
}

static int setup(void **state)
{
        strcpy(dir, "/tmp/test-control-XXXXXX");
        assert_non_null(mkdtemp(dir));
        /* Unprivileged children must reach the socket. */
        assert_int_equal(chmod(dir, 0755), 0);
        snprintf(sock_path, sizeof(sock_path), "%s/run/xen-loopd/control", dir);
        assert_int_equal(sd_event_new(&ev), 0);
        n_deferred = 0;
        defer_sets_cancel = true;
        cancel_replies = false;
        n_cancelled = 0;
        n_disconnected = 0;
        handler_calls = 0;
        return 0;
}

static int teardown(void **state)
{
        char cmd[128];

        ctl_server_free(srv, true);
        srv = NULL;
        ev = sd_event_unref(ev);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

/* --- raw clients -------------------------------------------------------- */

static void pump_once(void)
{
        assert_true(sd_event_run(ev, 1000) >= 0);
}

static void pump(int rounds)
{
        for (int i = 0; i < rounds; i++)
                assert_true(sd_event_run(ev, 0) >= 0);
}

static bool readable(int fd)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, 0) > 0;
}

static void pump_until_readable(int fd)
{
        for (int i = 0; i < 5000 && !readable(fd); i++)
                pump_once();
        assert_true(readable(fd));
}

static int cl_connect_to(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

static int cl_connect(void)
{
        int fd = cl_connect_to(sock_path);
        pump(4);
        return fd;
}

static void cl_send_raw(int fd, const void *buf, size_t len, const int *fds, size_t n_fds)
{
        char control[CMSG_SPACE(sizeof(int) * 64)];
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds) {
                struct cmsghdr *cm;
                memset(control, 0, sizeof(control));
                mh.msg_control = control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

static void cl_send(int fd, uint32_t id, const char *command, const char *args, const int *fds, size_t n_fds)
{
        char buf[4096];

        if (args)
                snprintf(buf, sizeof(buf), "{\"xen-loopd\":1,\"id\":%u,\"command\":\"%s\",\"args\":%s}", id, command,
                         args);
        else
                snprintf(buf, sizeof(buf), "{\"xen-loopd\":1,\"id\":%u,\"command\":\"%s\"}", id, command);
        cl_send_raw(fd, buf, strlen(buf), fds, n_fds);
}

/* Receives one reply (pumping the loop); -ECONNRESET at EOF. */
static int cl_recv(int fd, struct proto_reply *rep)
{
        static char buf[PROTO_MAX_REPLY + 1];
        ssize_t n;

        pump_until_readable(fd);
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == ECONNRESET)
                n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);   /* a reply may wait behind the reset */
        if (n < 0 && errno == EAGAIN)
                return -ECONNRESET;
        if (n == 0)
                return -ECONNRESET;
        assert_true(n > 0);
        return proto_parse_reply(buf, (size_t)n, rep);
}

static void expect_ok(int fd, uint32_t id, struct json_object **ret_result)
{
        struct proto_reply rep;

        assert_int_equal(cl_recv(fd, &rep), 0);
        assert_int_equal(rep.id, id);
        if (!rep.ok)
                fail_msg("call %u failed: %s", id, rep.message);
        if (ret_result)
                *ret_result = json_object_get(rep.result);
        proto_reply_done(&rep);
}

static void expect_error(int fd, uint32_t id, int error, const char *substring)
{
        struct proto_reply rep;

        assert_int_equal(cl_recv(fd, &rep), 0);
        assert_int_equal(rep.id, id);
        assert_false(rep.ok);
        assert_int_equal(rep.error, error);
        if (substring && !strstr(rep.message, substring))
                fail_msg("\"%s\" does not contain \"%s\"", rep.message, substring);
        proto_reply_done(&rep);
}

static void expect_eof(int fd)
{
        struct proto_reply rep;
        assert_int_equal(cl_recv(fd, &rep), -ECONNRESET);
}

static void expect_nothing(int fd)
{
        pump(20);
        assert_false(readable(fd));
}

/* True once every copy of the pipe's write end is closed (ours first). */
static bool writers_gone(int rfd)
{
        char c;
        pump(10);
        return read(rfd, &c, 1) == 0;
}

static int64_t result_int(struct json_object *res, const char *key)
{
        struct json_object *v;
        assert_true(json_object_object_get_ex(res, key, &v));
        return json_object_get_int64(v);
}

/* --- tests -------------------------------------------------------------- */

static void test_socket_setup(void **state)
{
        char sub[160];
        struct stat st;

        assert_int_equal(start_server((gid_t)-1), 0);
        assert_int_equal(stat(sock_path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        snprintf(sub, sizeof(sub), "%s/run/xen-loopd", dir);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);

        /* A second server on a live socket must not steal it. */
        {
                struct ctl_server_config cfg = config(sock_path, -1, (gid_t)-1);
                struct ctl_server *other = NULL;
                assert_int_equal(ctl_server_new(ev, &cfg, &other), -EADDRINUSE);
                assert_null(other);
        }
        assert_int_equal(stat(sock_path, &st), 0);

        ctl_server_free(srv, true);
        srv = NULL;
        assert_int_equal(stat(sock_path, &st), -1);
        assert_int_equal(errno, ENOENT);
}

static void test_stale_socket_replaced(void **state)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char sub[160];
        int fd;

        /* A socket file nobody listens on, as a crashed daemon leaves. */
        snprintf(sub, sizeof(sub), "%s/run", dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        snprintf(sub, sizeof(sub), "%s/run/xen-loopd", dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        strcpy(sa.sun_path, sock_path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        close(fd);

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        cl_send(fd, 1, "echo", "{\"a\":1}", NULL, 0);
        expect_ok(fd, 1, NULL);
        close(fd);
}

static void test_not_a_socket_kept(void **state)
{
        char sub[160];
        struct stat st;
        int fd;

        snprintf(sub, sizeof(sub), "%s/run", dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        snprintf(sub, sizeof(sub), "%s/run/xen-loopd", dir);
        assert_int_equal(mkdir(sub, 0755), 0);
        fd = open(sock_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(start_server((gid_t)-1), -EEXIST);
        assert_int_equal(stat(sock_path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
}

static void test_group_socket_mode(void **state)
{
        struct stat st;

        if (geteuid() != 0)
                skip();
        assert_int_equal(start_server(65534), 0);
        assert_int_equal(stat(sock_path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0660);
        assert_int_equal(st.st_gid, 65534);
        assert_int_equal(st.st_uid, 0);
}

static void test_socket_activation(void **state)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct ctl_server_config cfg;
        char path[160];
        int lfd, fd;

        snprintf(path, sizeof(path), "%s/activated", dir);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

        /* Not listening yet: refused, and the fd stays ours. */
        cfg = config(path, lfd, (gid_t)-1);
        assert_int_equal(ctl_server_new(ev, &cfg, &srv), -ENOTSOCK);
        assert_int_equal(fcntl(lfd, F_GETFD), 0);

        assert_int_equal(listen(lfd, 16), 0);
        assert_int_equal(ctl_server_new(ev, &cfg, &srv), 0);
        assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
        assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
        fd = cl_connect_to(path);
        pump(4);
        cl_send(fd, 5, "echo", NULL, NULL, 0);
        expect_ok(fd, 5, NULL);
        close(fd);

        /* The server owns the fd now; the socket unit owns the path, which
         * stays even when asked to unlink. */
        ctl_server_free(srv, true);
        srv = NULL;
        assert_int_equal(fcntl(lfd, F_GETFD), -1);
        assert_int_equal(access(path, F_OK), 0);
}

static void test_dispatch(void **state)
{
        struct json_object *res, *v;
        int fd;

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        assert_int_equal(ctl_server_n_connections(srv), 1);

        cl_send(fd, 7, "echo", "{\"name\":\"web\",\"n\":[1,2]}", NULL, 0);
        expect_ok(fd, 7, &res);
        assert_true(json_object_object_get_ex(res, "name", &v));
        assert_string_equal(json_object_get_string(v), "web");
        json_object_put(res);

        /* No args: handlers get an empty object. */
        cl_send(fd, 8, "echo", NULL, NULL, 0);
        expect_ok(fd, 8, &res);
        assert_int_equal(json_object_object_length(res), 0);
        json_object_put(res);

        /* A handler's -errno becomes the error. */
        cl_send(fd, 9, "fail", NULL, NULL, 0);
        expect_error(fd, 9, -EBUSY, "fail");

        cl_send(fd, 10, "fail-msg", NULL, NULL, 0);
        expect_error(fd, 10, -ENOSPC, "No space left for the disk.");

        /* A reply wins over the return value; only one message is sent. */
        cl_send(fd, 11, "reply-then-fail", NULL, NULL, 0);
        expect_ok(fd, 11, NULL);
        expect_nothing(fd);

        cl_send(fd, 12, "fds", NULL, NULL, 0);
        expect_ok(fd, 12, &res);
        assert_int_equal(result_int(res, "uid"), (int64_t)getuid());
        assert_int_equal(result_int(res, "pid"), (int64_t)getpid());
        json_object_put(res);

        close(fd);
        pump(10);
        assert_int_equal(ctl_server_n_connections(srv), 0);
        assert_int_equal(n_disconnected, 1);
}

static void test_unknown_command(void **state)
{
        int fd;

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        cl_send(fd, 3, "no-such-command", NULL, NULL, 0);
        expect_error(fd, 3, -EOPNOTSUPP, "no-such-command");
        /* The connection stays usable. */
        cl_send(fd, 4, "echo", NULL, NULL, 0);
        expect_ok(fd, 4, NULL);
        close(fd);
        assert_int_equal(handler_calls, 1);
}

static void test_malformed(void **state)
{
        static const char *const bad[] = {
                "garbage",
                "{\"xen-loopd\":1,\"id\":1,\"command\":\"echo\"",
                "[]",
                "{\"xen-loopd\":1,\"id\":1,\"command\":\"echo\"}{}",
        };
        struct proto_reply rep;
        int fd;

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cl_send_raw(fd, bad[i], strlen(bad[i]), NULL, 0);
                expect_error(fd, 0, -EBADMSG, "Malformed request");
        }
        /* With a readable id, the error is addressed to it. */
        cl_send_raw(fd, "{\"xen-loopd\":1,\"id\":77}", 23, NULL, 0);
        expect_error(fd, 77, -EBADMSG, "command");
        cl_send_raw(fd, "{\"xen-loopd\":9,\"id\":78,\"command\":\"echo\"}", 40, NULL, 0);
        expect_error(fd, 78, -EPROTONOSUPPORT, "version");

        /* Malformed requests carrying fds: the fds are closed. */
        {
                int p[2];
                assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
                cl_send_raw(fd, "nope", 4, &p[1], 1);
                expect_error(fd, 0, -EBADMSG, NULL);
                close(p[1]);
                assert_true(writers_gone(p[0]));
                close(p[0]);
        }

        cl_send(fd, 5, "echo", NULL, NULL, 0);
        assert_int_equal(cl_recv(fd, &rep), 0);
        assert_true(rep.ok);
        proto_reply_done(&rep);
        assert_int_equal(handler_calls, 1);
        close(fd);
}

static void test_deferred_reply(void **state)
{
        struct json_object *res;
        int fd;

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();

        /* Pipelined: the deferred call does not hold up the others. */
        cl_send(fd, 1, "defer", NULL, NULL, 0);
        cl_send(fd, 2, "defer", NULL, NULL, 0);
        cl_send(fd, 3, "echo", "{\"x\":3}", NULL, 0);
        expect_ok(fd, 3, NULL);
        expect_nothing(fd);
        assert_int_equal(n_deferred, 2);

        res = json_object_new_object();
        json_object_object_add(res, "done", json_object_new_boolean(1));
        ctl_call_reply(deferred[1], res);
        expect_ok(fd, 2, &res);
        assert_true(json_object_get_boolean(json_object_object_get(res, "done")));
        json_object_put(res);

        ctl_call_error(deferred[0], -EROFS, "Read-only %s.", "image");
        expect_error(fd, 1, -EROFS, "Read-only image.");
        expect_nothing(fd);

        close(fd);
        pump(10);
        assert_int_equal(n_cancelled, 0);
}

static void test_disconnect_cancels(void **state)
{
        int fd, fd2, p[2];

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        fd2 = cl_connect();
        assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);

        cl_send(fd, 1, "defer", NULL, &p[1], 1);
        cl_send(fd, 2, "defer", NULL, NULL, 0);
        cl_send(fd2, 3, "defer", NULL, NULL, 0);
        pump(20);
        assert_int_equal(n_deferred, 3);
        close(p[1]);
        assert_false(writers_gone(p[0]));   /* the pending call holds it */

        close(fd);
        pump(20);
        assert_int_equal(n_cancelled, 2);
        assert_null(deferred[0]);
        assert_null(deferred[1]);
        assert_non_null(deferred[2]);
        assert_int_equal(n_disconnected, 1);
        assert_int_equal(ctl_server_n_connections(srv), 1);
        assert_true(writers_gone(p[0]));    /* untaken fds closed */
        close(p[0]);

        /* The other client is undisturbed. */
        ctl_call_reply(deferred[2], NULL);
        expect_ok(fd2, 3, NULL);

        /* A cancel callback may complete the call itself. */
        cancel_replies = true;
        cl_send(fd2, 4, "defer", NULL, NULL, 0);
        pump(10);
        assert_int_equal(n_deferred, 4);
        close(fd2);
        pump(20);
        assert_int_equal(n_cancelled, 3);
        assert_int_equal(n_disconnected, 2);
        assert_int_equal(ctl_server_n_connections(srv), 0);
}

static void test_orphaned_calls(void **state)
{
        int fd;

        defer_sets_cancel = false;
        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        cl_send(fd, 1, "defer", NULL, NULL, 0);
        cl_send(fd, 2, "defer", NULL, NULL, 0);
        pump(20);
        assert_int_equal(n_deferred, 2);
        close(fd);
        pump(20);
        assert_int_equal(n_disconnected, 1);
        assert_int_equal(n_cancelled, 0);

        /* Without a cancel callback the call outlives its client: the late
         * reply goes nowhere and frees it.  The other is freed with the
         * server (teardown), which valgrind checks. */
        assert_int_equal(ctl_call_connection(deferred[0]), 1);
        ctl_call_reply(deferred[0], json_object_new_object());
        pump(5);
}

static void test_fd_passing(void **state)
{
        struct json_object *res, *v;
        int fd, p[2], q[2], fds[3];

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
        assert_int_equal(write(p[1], "hello", 5), 5);
        close(p[1]);

        /* fd 0 is taken and read; the two others are left to the call,
         * which closes them when it completes. */
        fds[0] = p[0];
        fds[1] = q[1];
        fds[2] = q[1];
        cl_send(fd, 21, "fds", NULL, fds, 3);
        expect_ok(fd, 21, &res);
        assert_int_equal(result_int(res, "n"), 3);
        assert_true(json_object_object_get_ex(res, "data", &v));
        assert_string_equal(json_object_get_string(v), "hello");
        json_object_put(res);
        close(p[0]);
        close(q[1]);
        assert_true(writers_gone(q[0]));

        /* More than the command takes: refused, fds closed. */
        assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
        fds[0] = q[1];
        fds[1] = q[1];
        cl_send(fd, 22, "one-fd", NULL, fds, 2);
        expect_error(fd, 22, -EINVAL, "at most 1");
        cl_send(fd, 23, "echo", NULL, fds, 1);
        expect_error(fd, 23, -EINVAL, "at most 0");
        close(q[1]);
        assert_true(writers_gone(q[0]));
        close(q[0]);
        assert_int_equal(handler_calls, 1);
        close(fd);
}

static void test_too_many_fds(void **state)
{
        int fd, q[2], fds[PROTO_MAX_FDS + 4];

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
        for (size_t i = 0; i < PROTO_MAX_FDS + 4; i++)
                fds[i] = q[1];
        cl_send(fd, 31, "fds", NULL, fds, PROTO_MAX_FDS + 4);
        expect_error(fd, 31, -EINVAL, "Too many file descriptors");
        close(q[1]);
        assert_true(writers_gone(q[0]));
        close(q[0]);
        assert_int_equal(handler_calls, 0);

        /* Exactly PROTO_MAX_FDS is fine as far as the transport goes. */
        assert_int_equal(pipe2(q, O_CLOEXEC | O_NONBLOCK), 0);
        for (size_t i = 0; i < PROTO_MAX_FDS; i++)
                fds[i] = q[1];
        cl_send(fd, 32, "one-fd", NULL, fds, PROTO_MAX_FDS);
        expect_error(fd, 32, -EINVAL, "at most 1");
        close(q[1]);
        assert_true(writers_gone(q[0]));
        close(q[0]);
        close(fd);
}

static void test_oversized(void **state)
{
        int fd, other;
        char *big;

        assert_int_equal(start_server((gid_t)-1), 0);
        other = cl_connect();
        cl_send(other, 1, "defer", NULL, NULL, 0);
        fd = cl_connect();

        big = malloc(PROTO_MAX_MESSAGE + 1);
        assert_non_null(big);
        memset(big, ' ', PROTO_MAX_MESSAGE + 1);
        memcpy(big, "{\"xen-loopd\":1,\"id\":5,\"command\":\"echo\"}", 39);
        cl_send_raw(fd, big, PROTO_MAX_MESSAGE + 1, NULL, 0);
        free(big);
        expect_error(fd, 0, -EMSGSIZE, "too long");
        expect_eof(fd);
        close(fd);
        pump(10);
        assert_int_equal(handler_calls, 1);

        /* The other client and its pending call are untouched. */
        assert_int_equal(ctl_server_n_connections(srv), 1);
        assert_int_equal(n_cancelled, 0);
        cl_send(other, 2, "echo", NULL, NULL, 0);
        expect_ok(other, 2, NULL);
        ctl_call_reply(deferred[0], NULL);
        expect_ok(other, 1, NULL);
        close(other);
}

static void test_big_replies(void **state)
{
        struct json_object *res, *v;
        char args[64];
        int fd;

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        /* Larger than the default socket buffer. */
        snprintf(args, sizeof(args), "{\"size\":%d}", 600 * 1000);
        cl_send(fd, 1, "big", args, NULL, 0);
        expect_ok(fd, 1, &res);
        assert_true(json_object_object_get_ex(res, "data", &v));
        assert_int_equal(json_object_get_string_len(v), 600 * 1000);
        json_object_put(res);

        /* Larger than the protocol allows: an error instead. */
        snprintf(args, sizeof(args), "{\"size\":%d}", PROTO_MAX_REPLY);
        cl_send(fd, 2, "big", args, NULL, 0);
        expect_error(fd, 2, -EMSGSIZE, "too large");
        close(fd);
}

static void test_slow_reader_disconnected(void **state)
{
        struct json_object *res;
        size_t i;
        int fd;

        assert_int_equal(start_server((gid_t)-1), 0);
        fd = cl_connect();
        for (i = 0; i < 24; i++)
                cl_send(fd, (uint32_t)i + 1, "defer", NULL, NULL, 0);
        pump(50);
        assert_int_equal(n_deferred, 24);

        /* 24 replies of 500 kB that the client never reads: more than the
         * server queues for anyone. */
        for (i = 0; i < 24; i++) {
                char *s = malloc(500 * 1000 + 1);
                assert_non_null(s);
                memset(s, 'q', 500 * 1000);
                s[500 * 1000] = '\0';
                res = json_object_new_object();
                json_object_object_add(res, "data", json_object_new_string(s));
                free(s);
                ctl_call_reply(deferred[i], res);
        }
        pump(20);
        assert_int_equal(ctl_server_n_connections(srv), 0);
        assert_int_equal(n_disconnected, 1);
        close(fd);
}

static void test_connection_limit(void **state)
{
        enum { N = 1024 };
        struct rlimit rl;
        int *fds, extra;

        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur < 2 * N + 64) {
                rl.rlim_cur = rl.rlim_max;
                if (rl.rlim_cur < 2 * N + 64 || setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        skip();
        }
        assert_int_equal(start_server((gid_t)-1), 0);
        fds = calloc(N, sizeof(int));
        assert_non_null(fds);
        for (size_t i = 0; i < N; i++) {
                fds[i] = cl_connect_to(sock_path);
                if (i % 64 == 63)
                        pump(4);
        }
        pump(10);
        assert_int_equal(ctl_server_n_connections(srv), N);

        extra = cl_connect_to(sock_path);
        expect_error(extra, 0, -EAGAIN, "too many");
        expect_eof(extra);
        close(extra);
        assert_int_equal(ctl_server_n_connections(srv), N);

        /* Everyone else still works. */
        cl_send(fds[N - 1], 1, "echo", NULL, NULL, 0);
        expect_ok(fds[N - 1], 1, NULL);
        for (size_t i = 0; i < N; i++)
                close(fds[i]);
        free(fds);
        pump(N);
        for (int i = 0; i < 100 && ctl_server_n_connections(srv) > 0; i++)
                pump_once();
        assert_int_equal(ctl_server_n_connections(srv), 0);
}

/* --- clients in a child ------------------------------------------------- */

/* Runs fn in a child (as uid/gid when not -1) while the parent runs the
 * loop; returns the child's exit status. */
static int run_child(int (*fn)(void), uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups)
{
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (gid != (gid_t)-1 && (setgroups(n_groups, groups) < 0 || setresgid(gid, gid, gid) < 0))
                        _exit(90);
                if (uid != (uid_t)-1 && setresuid(uid, uid, uid) < 0)
                        _exit(91);
                _exit(fn());
        }
        for (int i = 0; i < 20000; i++) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                assert_true(r >= 0);
                if (r == pid) {
                        assert_true(WIFEXITED(status));
                        return WEXITSTATUS(status);
                }
                pump_once();
        }
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("child did not finish");
        return -1;
}

static int child_expect_refused(void)
{
        struct ctl_client *c;
        struct ctl_error e;
        int r;

        if (ctl_client_connect(sock_path, 5 * SEC, &c, &e) < 0)
                return 10;
        r = ctl_client_call(c, "echo", NULL, NULL, 0, 5 * SEC, NULL, &e);
        ctl_client_free(c);
        if (r != -EPERM || e.error != -EPERM || e.remote)
                return 11;
        if (!strstr(e.message, "Permission denied") || !strstr(e.message, "uid 65534"))
                return 12;
        return 0;
}

static int child_expect_allowed(void)
{
        struct ctl_client *c;
        struct ctl_error e;
        int r;

        if (ctl_client_connect(sock_path, 5 * SEC, &c, &e) < 0)
                return 10;
        r = ctl_client_call(c, "echo", NULL, NULL, 0, 5 * SEC, NULL, &e);
        ctl_client_free(c);
        return r == 0 ? 0 : 11;
}

static void test_permission_refused(void **state)
{
        if (geteuid() != 0)
                skip();
        assert_int_equal(start_server((gid_t)-1), 0);
        /* Let anyone reach the socket so that the peer check is what
         * refuses. */
        assert_int_equal(chmod(sock_path, 0666), 0);
        assert_int_equal(run_child(child_expect_refused, 65534, 65534, NULL, 0), 0);
        assert_int_equal(ctl_server_n_connections(srv), 0);
        assert_int_equal(handler_calls, 0);
        /* Refused connections never counted as connected. */
        assert_int_equal(n_disconnected, 0);
}

static void test_permission_group(void **state)
{
        const gid_t supplementary[] = { 100, 65534 };

        if (geteuid() != 0)
                skip();
        assert_int_equal(start_server(65534), 0);
        /* Primary group. */
        assert_int_equal(run_child(child_expect_allowed, 65534, 65534, NULL, 0), 0);
        /* Supplementary group (SO_PEERGROUPS). */
        assert_int_equal(run_child(child_expect_allowed, 65534, 12345, supplementary, 2), 0);
        /* Neither: refused, even though the socket lets it connect. */
        assert_int_equal(chmod(sock_path, 0666), 0);
        assert_int_equal(run_child(child_expect_refused, 65534, 12345, NULL, 0), 0);
        assert_int_equal(handler_calls, 2);
}

static int child_client_calls(void)
{
        struct json_object *args, *res = NULL, *v;
        struct ctl_client *c;
        struct ctl_error e;
        int p[2], r;

        if (ctl_client_connect(sock_path, 5 * SEC, &c, &e) < 0)
                return 10;
        args = json_object_new_object();
        json_object_object_add(args, "k", json_object_new_string("v"));
        if (ctl_client_call(c, "echo", args, NULL, 0, 5 * SEC, &res, &e) < 0)
                return 11;
        if (!json_object_object_get_ex(res, "k", &v) || strcmp(json_object_get_string(v), "v") != 0)
                return 12;
        json_object_put(res);

        /* fds travel with the request. */
        if (pipe2(p, O_CLOEXEC) < 0 || write(p[1], "xyz", 3) != 3)
                return 13;
        close(p[1]);
        if (ctl_client_call(c, "fds", NULL, &p[0], 1, 5 * SEC, &res, &e) < 0)
                return 14;
        if (!json_object_object_get_ex(res, "data", &v) || strcmp(json_object_get_string(v), "xyz") != 0)
                return 15;
        json_object_put(res);
        close(p[0]);

        /* The daemon's errors are "remote", with its message. */
        r = ctl_client_call(c, "fail-msg", NULL, NULL, 0, 5 * SEC, &res, &e);
        if (r != -ENOSPC || !e.remote || strcmp(e.message, "No space left for the disk.") != 0 || res)
                return 16;
        r = ctl_client_call(c, "nope", NULL, NULL, 0, 5 * SEC, NULL, &e);
        if (r != -EOPNOTSUPP || !e.remote)
                return 17;

        /* A call left pending times out; the connection is then spent. */
        r = ctl_client_call(c, "defer", NULL, NULL, 0, SEC / 5, NULL, &e);
        if (r != -ETIMEDOUT || e.remote)
                return 18;
        r = ctl_client_call(c, "echo", NULL, NULL, 0, SEC, NULL, &e);
        if (r != -ENOTCONN)
                return 19;
        ctl_client_free(c);
        return 0;
}

static void test_client(void **state)
{
        assert_int_equal(start_server((gid_t)-1), 0);
        assert_int_equal(run_child(child_client_calls, (uid_t)-1, (gid_t)-1, NULL, 0), 0);
        pump(20);
        /* The timed-out call was cancelled when the child went away. */
        assert_int_equal(n_deferred, 1);
        assert_int_equal(n_cancelled, 1);
        assert_int_equal(ctl_server_n_connections(srv), 0);
}

static void test_client_not_running(void **state)
{
        struct ctl_client *c = NULL;
        struct ctl_error e;
        char expected[256];

        assert_int_equal(ctl_client_connect(sock_path, SEC, &c, &e), -ENOENT);
        assert_null(c);
        assert_false(e.remote);
        snprintf(expected, sizeof(expected), "xen-loopd is not running (no control socket at %s).", sock_path);
        assert_string_equal(e.message, expected);

        /* A stale socket: nobody listens. */
        assert_int_equal(start_server((gid_t)-1), 0);
        {
                /* Keep the path, drop the listener. */
                char moved[160];
                snprintf(moved, sizeof(moved), "%s.moved", sock_path);
                assert_int_equal(rename(sock_path, moved), 0);
                ctl_server_free(srv, false);
                srv = NULL;
                assert_int_equal(rename(moved, sock_path), 0);
        }
        assert_int_equal(ctl_client_connect(sock_path, SEC, &c, &e), -ECONNREFUSED);
        assert_non_null(strstr(e.message, "is not running"));
}

static void test_client_permission(void **state)
{
        struct ctl_client *c = NULL;
        struct ctl_error e;
        pid_t pid;
        int status;

        if (geteuid() != 0)
                skip();
        assert_int_equal(start_server((gid_t)-1), 0);
        /* The socket is 0600: others cannot even connect. */
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(90);
                if (ctl_client_connect(sock_path, SEC, &c, &e) != -EACCES)
                        _exit(1);
                _exit(strstr(e.message, "Permission denied") && !e.remote ? 0 : 2);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_socket_setup),
                T(test_stale_socket_replaced),
                T(test_not_a_socket_kept),
                T(test_group_socket_mode),
                T(test_socket_activation),
                T(test_dispatch),
                T(test_unknown_command),
                T(test_malformed),
                T(test_deferred_reply),
                T(test_disconnect_cancels),
                T(test_orphaned_calls),
                T(test_fd_passing),
                T(test_too_many_fds),
                T(test_oversized),
                T(test_big_replies),
                T(test_slow_reader_disconnected),
                T(test_connection_limit),
                T(test_permission_refused),
                T(test_permission_group),
                T(test_client),
                T(test_client_not_running),
                T(test_client_permission),
        };

        /* A peer that vanishes must not kill the test with SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
