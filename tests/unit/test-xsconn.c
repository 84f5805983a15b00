/* test-xsconn.c — the xenstore connection (xsconn.c) against a scripted fake
 * xenstored: a listening AF_UNIX socket in a temporary directory, named by
 * XENSTORED_PATH as libxenstore would take it, served by a thread that reads
 * each request, checks it byte for byte and writes the scripted replies and
 * watch events.  The test drives the client and a private sd-event loop.
 *
 * A script that goes wrong records the first failure and closes its end, so
 * the client is never left waiting; every wait of the script has a
 * deadline, and teardown can stop it at any point. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "xsconn.h"

#define WAIT_MS 5000

static char dir[64];
static char sock_path[128];
static sd_event *ev;
static struct xsconn *x;

/* --- the fake xenstored (its own thread) -------------------------------- */

static struct {
        pthread_t thread;
        bool running;
        void (*script)(void);
        int listen_fd, conn_fd;
        int go[2];   /* the test tells the script to go on */
        int stop[2]; /* teardown tells the script to give up */
        bool seen_id;
        uint32_t last_id;
        char body[XENSTORE_PAYLOAD_MAX + 1];
        char failure[512];
} srv = { .listen_fd = -1, .conn_fd = -1, .go = { -1, -1 }, .stop = { -1, -1 } };

static bool srv_failed(void)
{
        return srv.failure[0] != '\0';
}

/* Records the first failure and hangs up: the client then fails instead of
 * waiting. */
static void _printf_(2, 3) srv_fail(int line, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (srv_failed())
                return;
        n = snprintf(srv.failure, sizeof(srv.failure), "fake xenstored, line %d: ", line);
        va_start(ap, fmt);
        vsnprintf(srv.failure + n, sizeof(srv.failure) - (size_t)n, fmt, ap);
        va_end(ap);
        srv.conn_fd = safe_close(srv.conn_fd);
}

/* Waits until fd has events; false (a failure) on the deadline or a stop. */
static bool srv_wait(int line, int fd, short events)
{
        struct pollfd p[] = { { .fd = fd, .events = events }, { .fd = srv.stop[0], .events = POLLIN } };
        int n;

        if (srv_failed())
                return false;
        do
                n = poll(p, 2, WAIT_MS);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                srv_fail(line, "poll: %s", strerror(errno));
        else if (n == 0)
                srv_fail(line, "nothing came within %d ms", WAIT_MS);
        else if (p[1].revents)
                srv_fail(line, "stopped");
        return !srv_failed();
}

/* Reads exactly len bytes; 0 on EOF before the first. */
static ssize_t srv_read(int line, void *buf, size_t len)
{
        size_t off = 0;

        while (off < len) {
                if (!srv_wait(line, srv.conn_fd, POLLIN))
                        return -1;
                ssize_t n = read(srv.conn_fd, (char *)buf + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == ECONNRESET)
                        n = 0;
                if (n < 0) {
                        srv_fail(line, "read: %s", strerror(errno));
                        return -1;
                }
                if (n == 0) {
                        if (off == 0)
                                return 0;
                        srv_fail(line, "EOF inside a message");
                        return -1;
                }
                off += (size_t)n;
        }
        return (ssize_t)off;
}

/* The next request, which must be of type and have exactly that body. */
static struct xsd_sockmsg srv_expect(int line, uint32_t type, const char *body, size_t len)
{
        struct xsd_sockmsg h = { .type = XS_INVALID };
        ssize_t n;

        if (srv_failed())
                return h;
        n = srv_read(line, &h, sizeof(h));
        if (n == 0)
                srv_fail(line, "EOF, expected a request of type %u", type);
        if (n <= 0)
                return h;
        if (h.len > XENSTORE_PAYLOAD_MAX) {
                srv_fail(line, "request of %u bytes", h.len);
                return h;
        }
        if (h.len && srv_read(line, srv.body, h.len) <= 0) {
                srv_fail(line, "EOF inside a request");
                return h;
        }
        srv.body[h.len] = '\0';
        if (h.type != type)
                srv_fail(line, "request of type %u, expected %u", h.type, type);
        else if (h.len != len || memcmp(srv.body, body, len) != 0)
                srv_fail(line, "request body of %u bytes \"%s\" differs", h.len, srv.body);
        else if (srv.seen_id && h.req_id != srv.last_id + 1)
                srv_fail(line, "req_id %u after %u", h.req_id, srv.last_id);
        srv.seen_id = true;
        srv.last_id = h.req_id;
        return h;
}

static void srv_send(int line, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *body, size_t len)
{
        char buf[sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX + 1];
        struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = (uint32_t)len };
        size_t total = sizeof(h) + (len > XENSTORE_PAYLOAD_MAX ? 0 : len);

        if (srv_failed())
                return;
        memcpy(buf, &h, sizeof(h));
        memcpy(buf + sizeof(h), body, total - sizeof(h));
        if (send(srv.conn_fd, buf, total, MSG_NOSIGNAL) != (ssize_t)total)
                srv_fail(line, "send: %s", strerror(errno));
}

/* The client hung up (after a failure of the connection, or when freed). */
static void srv_expect_eof(int line)
{
        char c;
        ssize_t n = srv_read(line, &c, 1);

        if (n > 0)
                srv_fail(line, "a request, expected EOF");
        srv.conn_fd = safe_close(srv.conn_fd);
}

static void srv_accept(int line)
{
        srv.conn_fd = safe_close(srv.conn_fd);
        srv.seen_id = false; /* a new client counts from anew */
        if (!srv_wait(line, srv.listen_fd, POLLIN))
                return;
        srv.conn_fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (srv.conn_fd < 0)
                srv_fail(line, "accept: %s", strerror(errno));
}

/* Goes away as xenstored does when it stops: its socket file stays. */
static void srv_hangup(void)
{
        srv.conn_fd = safe_close(srv.conn_fd);
        srv.listen_fd = safe_close(srv.listen_fd);
}

static int listen_on(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        unlink(path);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
                return safe_close(fd);
        return fd;
}

static void srv_listen(int line)
{
        if (srv_failed())
                return;
        srv.listen_fd = listen_on(sock_path);
        if (srv.listen_fd < 0)
                srv_fail(line, "listen: %s", strerror(errno));
}

static void srv_wait_go(int line)
{
        char c;

        if (srv_wait(line, srv.go[0], POLLIN) && read(srv.go[0], &c, 1) != 1)
                srv_fail(line, "go: %s", strerror(errno));
}

#define EXPECT(type, lit) srv_expect(__LINE__, type, lit, sizeof(lit) - 1)
#define REPLY(req, type, lit) srv_send(__LINE__, type, (req).req_id, (req).tx_id, lit, sizeof(lit) - 1)
#define EVENT(lit) srv_send(__LINE__, XS_WATCH_EVENT, 0, 0, lit, sizeof(lit) - 1)
#define EXPECT_EOF() srv_expect_eof(__LINE__)
#define ACCEPT() srv_accept(__LINE__)
#define LISTEN() srv_listen(__LINE__)
#define WAIT_GO() srv_wait_go(__LINE__)
#define CHECK(cond)                                             \
        do {                                                    \
                if (!(cond))                                    \
                        srv_fail(__LINE__, "check: %s", #cond); \
        } while (0)

static void *srv_main(void *arg)
{
        srv.script();
        srv_hangup();
        return NULL;
}

static void srv_start(void (*script)(void))
{
        srv.script = script;
        assert_int_equal(pthread_create(&srv.thread, NULL, srv_main, NULL), 0);
        srv.running = true;
}

/* Joins the script; it must have gone as written. */
static void srv_finish(void)
{
        assert_true(srv.running);
        assert_int_equal(pthread_join(srv.thread, NULL), 0);
        srv.running = false;
        if (srv_failed())
                fail_msg("%s", srv.failure);
}

static void go(void)
{
        assert_int_equal(write(srv.go[1], "g", 1), 1);
}

/* --- the client's callbacks --------------------------------------------- */

#define MAX_EVENTS 64

static struct {
        char *path[MAX_EVENTS], *token[MAX_EVENTS];
        size_t n;
        bool in_call;   /* a call of ours is running */
        int during_call; /* watch callbacks run inside a call */
        int depth, reentered;
        int wrong; /* callbacks for another connection or userdata */
        void (*hook)(const char *path);
        bool states[16];
        size_t n_states;
} seen;

static void on_watch(struct xsconn *c, const char *path, const char *token, void *userdata)
{
        if (c != x || userdata != &seen || seen.n == MAX_EVENTS) {
                seen.wrong++;
                return;
        }
        seen.depth++;
        if (seen.depth > 1)
                seen.reentered++;
        if (seen.in_call)
                seen.during_call++;
        seen.path[seen.n] = strdup(path);
        seen.token[seen.n] = strdup(token);
        seen.n++;
        if (seen.hook)
                seen.hook(path);
        seen.depth--;
}

static void on_state(struct xsconn *c, bool connected, void *userdata)
{
        if (c != x || userdata != &seen || seen.n_states == ARRAY_SIZE(seen.states)) {
                seen.wrong++;
                return;
        }
        seen.states[seen.n_states++] = connected;
}

static const struct xsconn_ops ops = { .watch = on_watch, .state = on_state };

static void client_new(void)
{
        assert_int_equal(xsconn_new(ev, &ops, &seen, &x), 0);
        assert_non_null(x);
}

static void client_free(void)
{
        xsconn_free(x);
        x = NULL;
}

static void assert_event(size_t i, const char *path, const char *token)
{
        assert_true(i < seen.n);
        assert_string_equal(seen.path[i], path);
        assert_string_equal(seen.token[i], token);
}

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until cond holds, for ms at most. */
static bool run_until(bool (*cond)(void), unsigned ms)
{
        uint64_t end = now_ms() + ms;

        while (!cond() && now_ms() < end)
                assert_true(sd_event_run(ev, 10 * 1000) >= 0);
        return cond();
}

static void run_for(unsigned ms)
{
        uint64_t end = now_ms() + ms;

        while (now_ms() < end)
                assert_true(sd_event_run(ev, 10 * 1000) >= 0);
}

/* Nothing left to do: the loop settles (a readiness already reported may
 * still be dispatched once, finding nothing), and then no source fires
 * while nothing happens. */
static void assert_idle(void)
{
        int i, r = 1;

        for (i = 0; i < 10 && r != 0; i++)
                assert_true((r = sd_event_run(ev, 50 * 1000)) >= 0);
        assert_int_equal(r, 0);
        for (i = 0; i < 3; i++)
                assert_int_equal(sd_event_run(ev, 50 * 1000), 0);
}

/* Checks that a call failed with the connection and that the loss was
 * reported once. */
static void assert_lost(int r)
{
        assert_int_equal(r, -ENOTCONN);
        assert_false(xsconn_connected(x));
        assert_int_equal(seen.n_states, 1);
        assert_false(seen.states[0]);
}

/* --- setup -------------------------------------------------------------- */

static int setup(void **state)
{
        strcpy(dir, "/tmp/test-xs-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(sock_path, sizeof(sock_path), "%s/socket", dir);
        assert_int_equal(setenv("XENSTORED_PATH", sock_path, 1), 0);
        srv.listen_fd = listen_on(sock_path);
        assert_true(srv.listen_fd >= 0);
        assert_int_equal(pipe2(srv.go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(srv.stop, O_CLOEXEC), 0);
        srv.failure[0] = '\0';
        srv.seen_id = false;
        assert_int_equal(sd_event_new(&ev), 0);
        memset(&seen, 0, sizeof(seen));
        return 0;
}

static int teardown(void **state)
{
        int wrong = seen.wrong;

        if (srv.running) {
                /* A test that failed half way: stop the script. */
                assert_int_equal(write(srv.stop[1], "s", 1), 1);
                client_free();
                pthread_join(srv.thread, NULL);
                srv.running = false;
                if (srv_failed())
                        print_error("%s\n", srv.failure);
        }
        client_free();
        srv_hangup();
        for (int i = 0; i < 2; i++) {
                srv.go[i] = safe_close(srv.go[i]);
                srv.stop[i] = safe_close(srv.stop[i]);
        }
        ev = sd_event_unref(ev);
        for (size_t i = 0; i < seen.n; i++) {
                free(seen.path[i]);
                free(seen.token[i]);
        }
        memset(&seen, 0, sizeof(seen));
        unlink(sock_path);
        assert_int_equal(rmdir(dir), 0);
        unsetenv("XENSTORED_PATH");
        assert_int_equal(wrong, 0);
        return 0;
}

/* --- single requests ----------------------------------------------------- */

static void s_requests(void)
{
        struct xsd_sockmsg r;

        ACCEPT();
        r = EXPECT(XS_READ, "/local/domain/3/name\0");
        CHECK(r.tx_id == 0);
        REPLY(r, XS_READ, "web1");
        r = EXPECT(XS_WRITE, "/local/domain/3/name\0web2");
        REPLY(r, XS_WRITE, "OK\0");
        r = EXPECT(XS_READ, "/missing\0");
        REPLY(r, XS_ERROR, "ENOENT\0");
        r = EXPECT(XS_READ, "/nul\0");
        REPLY(r, XS_READ, "a\0b");
        r = EXPECT(XS_READ, "/empty\0");
        REPLY(r, XS_READ, "");
        r = EXPECT(XS_RM, "/gone\0");
        REPLY(r, XS_RM, "OK\0");
        r = EXPECT(XS_DIRECTORY, "/local/domain\0");
        REPLY(r, XS_DIRECTORY, "0\0" "3\0" "12\0");
        r = EXPECT(XS_READ, "/exists\0");
        REPLY(r, XS_READ, "1");
        r = EXPECT(XS_READ, "/exists-not\0");
        REPLY(r, XS_ERROR, "ENOENT\0");

        /* A transaction that must be retried, then one aborted. */
        r = EXPECT(XS_TRANSACTION_START, "\0");
        REPLY(r, XS_TRANSACTION_START, "17\0");
        r = EXPECT(XS_WRITE, "/t\0v");
        CHECK(r.tx_id == 17);
        REPLY(r, XS_WRITE, "OK\0");
        r = EXPECT(XS_TRANSACTION_END, "T\0");
        CHECK(r.tx_id == 17);
        REPLY(r, XS_ERROR, "EAGAIN\0");
        r = EXPECT(XS_TRANSACTION_START, "\0");
        REPLY(r, XS_TRANSACTION_START, "4294967295\0");
        r = EXPECT(XS_TRANSACTION_END, "F\0");
        CHECK(r.tx_id == UINT32_MAX);
        REPLY(r, XS_TRANSACTION_END, "OK\0");

        /* Our home, by our domid; never a guess when it cannot be read. */
        r = EXPECT(XS_READ, "domid\0");
        REPLY(r, XS_READ, "5");
        r = EXPECT(XS_READ, "domid\0");
        REPLY(r, XS_ERROR, "ENOENT\0");
        r = EXPECT(XS_READ, "domid\0");
        REPLY(r, XS_ERROR, "EACCES\0");
        r = EXPECT(XS_READ, "domid\0");
        REPLY(r, XS_READ, "5x");
        EXPECT_EOF();
}

static void test_requests(void **state)
{
        char *v = NULL, **ents = NULL;
        size_t len = 0;
        unsigned n = 0;
        xs_transaction_t t = 0;

        client_new();
        assert_true(xsconn_connected(x));
        srv_start(s_requests);

        assert_int_equal(xsconn_read(x, XBT_NULL, "/local/domain/3/name", &v, &len), 0);
        assert_string_equal(v, "web1");
        assert_int_equal(len, 4);
        free(v);
        assert_int_equal(xsconn_write(x, XBT_NULL, "/local/domain/3/name", "web2"), 0);
        v = NULL;
        assert_int_equal(xsconn_read(x, XBT_NULL, "/missing", &v, &len), -ENOENT);
        assert_null(v);
        /* NUL bytes inside a value are kept, and counted. */
        assert_int_equal(xsconn_read(x, XBT_NULL, "/nul", &v, &len), 0);
        assert_int_equal(len, 3);
        assert_memory_equal(v, "a\0b", 4);
        free(v);
        assert_int_equal(xsconn_read(x, XBT_NULL, "/empty", &v, NULL), 0);
        assert_string_equal(v, "");
        free(v);
        assert_int_equal(xsconn_rm(x, XBT_NULL, "/gone"), 0);
        assert_int_equal(xsconn_directory(x, XBT_NULL, "/local/domain", &ents, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(ents[0], "0");
        assert_string_equal(ents[1], "3");
        assert_string_equal(ents[2], "12");
        assert_null(ents[3]);
        free(ents);
        assert_true(xsconn_exists(x, XBT_NULL, "/exists"));
        assert_false(xsconn_exists(x, XBT_NULL, "/exists-not"));

        assert_int_equal(xsconn_transaction_start(x, &t), 0);
        assert_int_equal(t, 17);
        assert_int_equal(xsconn_write(x, t, "/t", "v"), 0);
        assert_int_equal(xsconn_transaction_end(x, t, false), -EAGAIN);
        assert_int_equal(xsconn_transaction_start(x, &t), 0);
        assert_int_equal(t, UINT32_MAX);
        assert_int_equal(xsconn_transaction_end(x, t, true), 0);

        assert_int_equal(xsconn_home(x, &v), 0);
        assert_string_equal(v, "/local/domain/5");
        free(v);
        v = NULL;
        assert_int_equal(xsconn_home(x, &v), -ENOENT);
        assert_int_equal(xsconn_home(x, &v), -EACCES);
        assert_int_equal(xsconn_home(x, &v), -EBADMSG);
        assert_null(v);

        /* Request errors are not the connection's. */
        assert_true(xsconn_connected(x));
        assert_int_equal(seen.n_states, 0);
        client_free();
        srv_finish();
}

/* --- a transaction xenstored does not know ------------------------------- */

static void s_unknown_transaction(void)
{
        struct xsd_sockmsg r;

        ACCEPT();
        /* oxenstored: EIO for every request in it, the commit included. */
        r = EXPECT(XS_READ, "/be\0");
        CHECK(r.tx_id == 41);
        REPLY(r, XS_ERROR, "EIO\0");
        r = EXPECT(XS_TRANSACTION_END, "T\0");
        REPLY(r, XS_ERROR, "EIO\0");
        r = EXPECT(XS_TRANSACTION_END, "F\0");
        REPLY(r, XS_ERROR, "EIO\0");
        /* The C xenstored: ENOENT. */
        r = EXPECT(XS_READ, "/be\0");
        REPLY(r, XS_ERROR, "ENOENT\0");
        r = EXPECT(XS_TRANSACTION_END, "F\0");
        REPLY(r, XS_ERROR, "ENOENT\0");
        r = EXPECT(XS_TRANSACTION_END, "T\0");
        REPLY(r, XS_ERROR, "ENOENT\0");
        /* Other failures of a commit stay what they are. */
        r = EXPECT(XS_TRANSACTION_END, "T\0");
        REPLY(r, XS_ERROR, "EACCES\0");
        EXPECT_EOF();
}

static void test_unknown_transaction(void **state)
{
        char *v = NULL;

        client_new();
        srv_start(s_unknown_transaction);
        assert_int_equal(xsconn_read(x, 41, "/be", &v, NULL), -EIO);
        assert_int_equal(xsconn_transaction_end(x, 41, false), -EAGAIN);
        assert_int_equal(xsconn_transaction_end(x, 41, true), -EAGAIN);
        /* A read that says "gone" in it; the abort tells it meant nothing. */
        assert_int_equal(xsconn_read(x, 42, "/be", &v, NULL), -ENOENT);
        assert_int_equal(xsconn_transaction_end(x, 42, true), -EAGAIN);
        assert_int_equal(xsconn_transaction_end(x, 42, false), -EAGAIN);
        assert_int_equal(xsconn_transaction_end(x, 43, false), -EACCES);
        assert_null(v);
        assert_true(xsconn_connected(x));
        assert_int_equal(seen.n_states, 0);
        client_free();
        srv_finish();
}

/* --- batches ------------------------------------------------------------ */

static void s_batch(void)
{
        struct xsd_sockmsg r[8];

        ACCEPT();
        /* Every request comes before any reply is sent: one round trip. */
        r[0] = EXPECT(XS_READ, "/vm/1/name\0");
        r[1] = EXPECT(XS_WRITE, "/ro\0" "1");
        r[2] = EXPECT(XS_READ, "/nope\0");
        r[3] = EXPECT(XS_DIRECTORY, "/d\0");
        r[4] = EXPECT(XS_RM, "/e/f\0");
        r[5] = EXPECT(XS_DIRECTORY, "/none\0");
        r[6] = EXPECT(XS_WRITE, "/w/n\0");
        r[7] = EXPECT(XS_READ, "/odd\0");
        REPLY(r[0], XS_READ, "web");
        REPLY(r[1], XS_ERROR, "EACCES\0");
        REPLY(r[2], XS_ERROR, "ENOENT\0");
        REPLY(r[3], XS_DIRECTORY, "x\0" "yy\0");
        REPLY(r[4], XS_RM, "OK\0");
        REPLY(r[5], XS_ERROR, "ENOENT\0");
        REPLY(r[6], XS_WRITE, "OK\0");
        REPLY(r[7], XS_ERROR, "EWHATEVER\0");

        /* The stream is still in step. */
        r[0] = EXPECT(XS_READ, "/after\0");
        REPLY(r[0], XS_READ, "ok");
        EXPECT_EOF();
}

static void test_batch(void **state)
{
        static char long_path[XENSTORE_PAYLOAD_MAX + 10];
        struct xsconn_op o[] = {
                { .type = XS_READ, .dir = "/vm/1", .node = "name" },
                { .type = XS_WRITE, .dir = "/ro", .value = "1" },
                { .type = XS_READ, .dir = long_path }, /* never sent */
                { .type = XS_READ, .dir = "/nope" },
                { .type = XS_DIRECTORY, .dir = "/d" },
                { .type = XS_RM, .dir = "/e", .node = "f" },
                { .type = XS_DIRECTORY, .dir = "/none" },
                { .type = XS_WRITE, .dir = "/w", .node = "n", .value = "" },
                { .type = XS_READ, .dir = "/odd" },
        };
        char *v;

        memset(long_path, 'p', sizeof(long_path) - 1);
        long_path[0] = '/';
        client_new();
        srv_start(s_batch);

        seen.in_call = true;
        assert_int_equal(xsconn_batch(x, XBT_NULL, o, ARRAY_SIZE(o)), 0);
        seen.in_call = false;
        assert_int_equal(o[0].r, 0);
        assert_string_equal(o[0].data, "web");
        assert_int_equal(o[0].len, 3);
        assert_int_equal(o[1].r, -EACCES);
        assert_null(o[1].data);
        assert_int_equal(o[2].r, -ENAMETOOLONG);
        assert_int_equal(o[3].r, -ENOENT);
        assert_null(o[3].data);
        assert_int_equal(o[4].r, 0);
        assert_int_equal(o[4].n_ents, 2);
        assert_string_equal(o[4].ents[0], "x");
        assert_string_equal(o[4].ents[1], "yy");
        assert_null(o[4].ents[2]);
        assert_int_equal(o[5].r, 0);
        assert_int_equal(o[6].r, -ENOENT);
        assert_null(o[6].ents);
        assert_int_equal(o[7].r, 0);
        assert_int_equal(o[8].r, -EIO); /* a name we do not know */
        xsconn_ops_clear(o, ARRAY_SIZE(o));
        assert_null(o[0].data);
        assert_null(o[4].ents);

        assert_int_equal(xsconn_read(x, XBT_NULL, "/after", &v, NULL), 0);
        assert_string_equal(v, "ok");
        free(v);
        assert_int_equal(seen.n_states, 0);
        client_free();
        srv_finish();
}

/* --- watch events ------------------------------------------------------- */

static void s_events(void)
{
        struct xsd_sockmsg r[3];

        ACCEPT();
        r[0] = EXPECT(XS_WATCH, "/w\0tok\0");
        REPLY(r[0], XS_WATCH, "OK\0");
        EVENT("/w\0tok\0"); /* the initial event, as xenstored sends it */

        r[0] = EXPECT(XS_READ, "/r1\0");
        r[1] = EXPECT(XS_READ, "/r2\0");
        r[2] = EXPECT(XS_READ, "/r3\0");
        REPLY(r[0], XS_READ, "1");
        EVENT("/w/a\0tok\0");
        REPLY(r[1], XS_READ, "2");
        EVENT("/w/b\0tok\0");
        EVENT("/w/c\0tok\0" "extra");
        REPLY(r[2], XS_READ, "3");
        EVENT("/w/d\0tok\0");

        /* The callback of /w/a reads: an event comes before that reply. */
        r[0] = EXPECT(XS_READ, "/w/a/x\0");
        EVENT("/w/e\0tok\0");
        REPLY(r[0], XS_READ, "in");
        EXPECT_EOF();
}

static char *hook_value;

static void read_from_callback(const char *path)
{
        if (strcmp(path, "/w/a") == 0 && !hook_value)
                xsconn_read(x, XBT_NULL, "/w/a/x", &hook_value, NULL);
}

static bool six_events(void)
{
        return seen.n >= 6;
}

static void test_events_in_batch(void **state)
{
        struct xsconn_op o[] = {
                { .type = XS_READ, .dir = "/r1" },
                { .type = XS_READ, .dir = "/r2" },
                { .type = XS_READ, .dir = "/r3" },
        };

        client_new();
        srv_start(s_events);
        seen.hook = read_from_callback;

        seen.in_call = true;
        assert_int_equal(xsconn_watch(x, "/w", "tok"), 0);
        assert_int_equal(xsconn_batch(x, XBT_NULL, o, ARRAY_SIZE(o)), 0);
        seen.in_call = false;
        assert_string_equal(o[0].data, "1");
        assert_string_equal(o[1].data, "2");
        assert_string_equal(o[2].data, "3");
        xsconn_ops_clear(o, ARRAY_SIZE(o));
        /* Nothing delivered from inside the calls... */
        assert_int_equal(seen.n, 0);

        /* ...but from the loop, in the order they came, the callback's own
         * request included. */
        assert_true(run_until(six_events, WAIT_MS));
        assert_int_equal(seen.n, 6);
        assert_event(0, "/w", "tok");
        assert_event(1, "/w/a", "tok");
        assert_event(2, "/w/b", "tok");
        assert_event(3, "/w/c", "tok");
        assert_event(4, "/w/d", "tok");
        assert_event(5, "/w/e", "tok");
        assert_int_equal(seen.during_call, 0);
        assert_int_equal(seen.reentered, 0);
        assert_non_null(hook_value);
        assert_string_equal(hook_value, "in");
        hook_value = mfree(hook_value);
        assert_idle();
        assert_int_equal(seen.n_states, 0);
        client_free();
        srv_finish();
}

/* --- directories too long for one reply -------------------------------- */

/* 1000 names of 8 bytes: over two parts' worth. */
static char big[9000];
static size_t big_len;

static void make_big(void)
{
        big_len = 0;
        for (int i = 0; i < 1000; i++)
                big_len += (size_t)sprintf(big + big_len, "dev-%04d", i) + 1;
}

static struct xsd_sockmsg expect_part(int line, const char *path, size_t off)
{
        char body[256];
        int n = snprintf(body, sizeof(body), "%s%c%zu", path, '\0', off);

        return srv_expect(line, XS_DIRECTORY_PART, body, (size_t)n + 1);
}

/* Replies as xenstored does: the generation, the names from off that fit,
 * and the end marker (an empty name) if the last is in.  Returns the
 * names' bytes. */
static size_t reply_part(int line, struct xsd_sockmsg r, const char *gen, size_t off)
{
        char body[XENSTORE_PAYLOAD_MAX];
        size_t glen = strlen(gen) + 1, n = 0;
        bool last;

        memcpy(body, gen, glen);
        while (off + n < big_len) {
                size_t l = strlen(big + off + n) + 1;
                if (glen + n + l + 1 > XENSTORE_PAYLOAD_MAX)
                        break;
                n += l;
        }
        memcpy(body + glen, big + off, n);
        last = off + n == big_len;
        if (last)
                body[glen + n] = '\0';
        srv_send(line, XS_DIRECTORY_PART, r.req_id, r.tx_id, body, glen + n + last);
        return n;
}

static void s_directory_parts(void)
{
        struct xsd_sockmsg r;
        size_t off, n;

        ACCEPT();
        r = EXPECT(XS_DIRECTORY, "/big\0");
        REPLY(r, XS_ERROR, "E2BIG\0");
        r = expect_part(__LINE__, "/big", 0);
        n = reply_part(__LINE__, r, "5", 0);
        CHECK(n < big_len);
        /* The directory changed in between: its generation says so. */
        r = expect_part(__LINE__, "/big", n);
        reply_part(__LINE__, r, "6", n);
        for (off = 0; off < big_len && !srv_failed(); off += n) {
                r = expect_part(__LINE__, "/big", off);
                n = reply_part(__LINE__, r, "6", off);
        }
        EXPECT_EOF();
}

static void test_directory_parts(void **state)
{
        char **ents = NULL, name[16];
        unsigned n = 0;

        make_big();
        client_new();
        srv_start(s_directory_parts);
        assert_int_equal(xsconn_directory(x, XBT_NULL, "/big", &ents, &n), 0);
        assert_int_equal(n, 1000);
        for (unsigned i = 0; i < n; i++) {
                snprintf(name, sizeof(name), "dev-%04u", i);
                assert_string_equal(ents[i], name);
        }
        assert_null(ents[n]);
        free(ents);
        assert_int_equal(seen.n_states, 0);
        client_free();
        srv_finish();
}

static void s_directory_parts_batch(void)
{
        struct xsd_sockmsg r[4];

        ACCEPT();
        r[0] = EXPECT(XS_READ, "/a\0");
        r[1] = EXPECT(XS_DIRECTORY, "/big2\0");
        r[2] = EXPECT(XS_DIRECTORY, "/old\0");
        r[3] = EXPECT(XS_READ, "/b\0");
        REPLY(r[0], XS_READ, "A");
        REPLY(r[1], XS_ERROR, "E2BIG\0");
        REPLY(r[2], XS_ERROR, "E2BIG\0");
        REPLY(r[3], XS_READ, "B");
        /* In a transaction: the parts are read in it too. */
        r[0] = expect_part(__LINE__, "/big2", 0);
        CHECK(r[0].tx_id == 33);
        REPLY(r[0], XS_DIRECTORY_PART, "1\0" "x\0" "\0");
        /* A xenstored without XS_DIRECTORY_PART. */
        r[0] = expect_part(__LINE__, "/old", 0);
        REPLY(r[0], XS_ERROR, "ENOSYS\0");

        /* A directory that keeps changing: given up after 8 restarts. */
        r[0] = EXPECT(XS_DIRECTORY, "/churn\0");
        REPLY(r[0], XS_ERROR, "E2BIG\0");
        for (int i = 0; i < 9 && !srv_failed(); i++) {
                char gen[16];
                size_t n;

                r[0] = expect_part(__LINE__, "/churn", 0);
                snprintf(gen, sizeof(gen), "%d", 2 * i);
                n = reply_part(__LINE__, r[0], gen, 0);
                r[0] = expect_part(__LINE__, "/churn", n);
                snprintf(gen, sizeof(gen), "%d", 2 * i + 1);
                reply_part(__LINE__, r[0], gen, n);
        }
        EXPECT_EOF();
}

static void test_directory_parts_batch(void **state)
{
        struct xsconn_op o[] = {
                { .type = XS_READ, .dir = "/a" },
                { .type = XS_DIRECTORY, .dir = "/big2" },
                { .type = XS_DIRECTORY, .dir = "/old" },
                { .type = XS_READ, .dir = "/b" },
        };
        char **ents = NULL;
        unsigned n = 0;

        make_big();
        client_new();
        srv_start(s_directory_parts_batch);
        assert_int_equal(xsconn_batch(x, 33, o, ARRAY_SIZE(o)), 0);
        assert_int_equal(o[0].r, 0);
        assert_string_equal(o[0].data, "A");
        assert_int_equal(o[1].r, 0);
        assert_int_equal(o[1].n_ents, 1);
        assert_string_equal(o[1].ents[0], "x");
        assert_int_equal(o[2].r, -E2BIG);
        assert_int_equal(o[3].r, 0);
        assert_string_equal(o[3].data, "B");
        xsconn_ops_clear(o, ARRAY_SIZE(o));

        assert_int_equal(xsconn_directory(x, XBT_NULL, "/churn", &ents, &n), -EAGAIN);
        assert_true(xsconn_connected(x));
        client_free();
        srv_finish();
}

/* --- a long directory in one reply, as oxenstored sends it -------------- */

/* Names "<from>\0" .. "<to>\0", as a directory of domids reads. */
static char *domids(unsigned from, unsigned to, size_t *len)
{
        char *v = malloc((to - from + 1) * 11);
        size_t n = 0;

        assert_non_null(v);
        for (unsigned i = from; i <= to; i++)
                n += (size_t)sprintf(v + n, "%u", i) + 1;
        *len = n;
        return v;
}

/* Writes a message whole, however long (the client reads meanwhile). */
static void srv_send_all(int line, uint32_t type, uint32_t req_id, const void *body, size_t len)
{
        struct xsd_sockmsg h = { .type = type, .req_id = req_id, .len = (uint32_t)len };
        const char *parts[] = { (const char *)&h, body };
        size_t lens[] = { sizeof(h), len };

        for (int i = 0; i < 2; i++)
                for (size_t off = 0; off < lens[i] && !srv_failed();) {
                        ssize_t n;
                        if (!srv_wait(line, srv.conn_fd, POLLOUT))
                                return;
                        n = send(srv.conn_fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                                continue;
                        if (n < 0) {
                                srv_fail(line, "send: %s", strerror(errno));
                                return;
                        }
                        off += (size_t)n;
                }
}

#define N_AFTER 40

static void s_directory_whole(void)
{
        _cleanup_free_ char *dir4096 = NULL, *all = NULL;
        struct xsd_sockmsg r[3];
        size_t len;

        ACCEPT();
        r[0] = EXPECT(XS_READ, "/a\0");
        r[1] = EXPECT(XS_DIRECTORY, "/backend/vbd\0");
        r[2] = EXPECT(XS_READ, "/b\0");
        EVENT("/w/before\0tok\0");
        REPLY(r[0], XS_READ, "A");
        /* 4096 guests: 19,877 bytes in one reply, then a burst of events
         * and the batch's last reply behind it. */
        dir4096 = domids(1, 4096, &len);
        srv_send_all(__LINE__, XS_DIRECTORY, r[1].req_id, dir4096, len);
        for (int i = 0; i < N_AFTER; i++) {
                char event[32];
                int n = snprintf(event, sizeof(event), "/w/%d%ctok", i, '\0');
                srv_send(__LINE__, XS_WATCH_EVENT, 0, 0, event, (size_t)n + 1);
        }
        REPLY(r[2], XS_READ, "B");

        /* Every domid there can be: longer than the client's buffer. */
        r[0] = EXPECT(XS_DIRECTORY, "/all\0");
        all = domids(0, 32751, &len);
        CHECK(len <= XSW_DIRECTORY_MAX);
        srv_send_all(__LINE__, XS_DIRECTORY, r[0].req_id, all, len);

        /* Over the bound: refused from the header, the connection ends. */
        r[0] = EXPECT(XS_DIRECTORY, "/over\0");
        srv_send(__LINE__, XS_DIRECTORY, r[0].req_id, 0, "", XSW_DIRECTORY_MAX + 1);
        EXPECT_EOF();
}

static bool all_after(void)
{
        return seen.n == N_AFTER + 1;
}

static void test_directory_whole(void **state)
{
        struct xsconn_op o[] = {
                { .type = XS_READ, .dir = "/a" },
                { .type = XS_DIRECTORY, .dir = "/backend/vbd" },
                { .type = XS_READ, .dir = "/b" },
        };
        char **ents = NULL, name[16];
        unsigned n = 0;

        client_new();
        srv_start(s_directory_whole);
        assert_int_equal(xsconn_batch(x, XBT_NULL, o, ARRAY_SIZE(o)), 0);
        assert_int_equal(o[0].r, 0);
        assert_string_equal(o[0].data, "A");
        assert_int_equal(o[1].r, 0);
        assert_int_equal(o[1].n_ents, 4096);
        for (unsigned i = 0; i < o[1].n_ents; i++) {
                snprintf(name, sizeof(name), "%u", i + 1);
                assert_string_equal(o[1].ents[i], name);
        }
        assert_int_equal(o[2].r, 0);
        assert_string_equal(o[2].data, "B");
        xsconn_ops_clear(o, ARRAY_SIZE(o));
        /* The events around it, every one, in order. */
        assert_true(run_until(all_after, WAIT_MS));
        assert_event(0, "/w/before", "tok");
        for (int i = 0; i < N_AFTER; i++) {
                snprintf(name, sizeof(name), "/w/%d", i);
                assert_event((size_t)i + 1, name, "tok");
        }

        assert_int_equal(xsconn_directory(x, XBT_NULL, "/all", &ents, &n), 0);
        assert_int_equal(n, 32752);
        assert_string_equal(ents[0], "0");
        assert_string_equal(ents[9999], "9999");
        assert_string_equal(ents[32751], "32751");
        assert_null(ents[n]);
        free(ents);
        assert_int_equal(seen.n_states, 0);

        ents = NULL;
        assert_lost(xsconn_directory(x, XBT_NULL, "/over", &ents, &n));
        assert_null(ents);
        client_free();
        srv_finish();
}

/* --- replies that end the connection ----------------------------------- */

/* What the client asks, and what the fake answers instead of a reply. */
enum bad_kind {
        BAD_ID,             /* a reply with another req_id */
        BAD_ORDER,          /* a batch's replies swapped */
        BAD_TYPE,           /* a reply of another type */
        BAD_UNKNOWN_TYPE,   /* a type that does not exist */
        BAD_OVERSIZED,      /* a body over XENSTORE_PAYLOAD_MAX */
        BAD_DIRECTORY,      /* a directory's last name unterminated */
        BAD_TXID,           /* a transaction id that is no number */
        BAD_EVENT,          /* a watch event instead, its token
                             * unterminated */
        BAD_PART,           /* a directory part unterminated */
        BAD_PART_EMPTY,     /* a directory part with no names and no end */
        BAD_WATCH_REPLY,    /* the reply to a watch of another type */
        N_BAD,
};

/* One wrong message each: the client hangs up at the first, so a second
 * could meet a closed socket. */
static void s_bad(void)
{
        struct xsd_sockmsg r, r2;

        for (int k = 0; k < N_BAD && !srv_failed(); k++) {
                ACCEPT();
                switch (k) {
                case BAD_ID:
                        r = EXPECT(XS_READ, "/a\0");
                        r.req_id++;
                        REPLY(r, XS_READ, "v");
                        break;
                case BAD_ORDER:
                        r = EXPECT(XS_READ, "/a\0");
                        r2 = EXPECT(XS_READ, "/b\0");
                        CHECK(r2.req_id != r.req_id);
                        REPLY(r2, XS_READ, "b");
                        break;
                case BAD_TYPE:
                        r = EXPECT(XS_READ, "/a\0");
                        REPLY(r, XS_WRITE, "OK\0");
                        break;
                case BAD_UNKNOWN_TYPE:
                        r = EXPECT(XS_READ, "/a\0");
                        REPLY(r, XS_TYPE_COUNT, "v");
                        break;
                case BAD_OVERSIZED:
                        r = EXPECT(XS_READ, "/a\0");
                        /* The header alone: it must be refused as it is. */
                        srv_send(__LINE__, XS_READ, r.req_id, 0, "", XENSTORE_PAYLOAD_MAX + 1);
                        break;
                case BAD_DIRECTORY:
                        r = EXPECT(XS_DIRECTORY, "/a\0");
                        REPLY(r, XS_DIRECTORY, "x\0y");
                        break;
                case BAD_TXID:
                        r = EXPECT(XS_TRANSACTION_START, "\0");
                        REPLY(r, XS_TRANSACTION_START, "x\0");
                        break;
                case BAD_EVENT:
                        r = EXPECT(XS_READ, "/a\0");
                        EVENT("/w\0tok");
                        break;
                case BAD_PART:
                case BAD_PART_EMPTY:
                        r = EXPECT(XS_DIRECTORY, "/a\0");
                        REPLY(r, XS_ERROR, "E2BIG\0");
                        r = expect_part(__LINE__, "/a", 0);
                        if (k == BAD_PART)
                                REPLY(r, XS_DIRECTORY_PART, "7\0" "x\0" "y");
                        else
                                REPLY(r, XS_DIRECTORY_PART, "7\0");
                        break;
                case BAD_WATCH_REPLY:
                        r = EXPECT(XS_WATCH, "/w\0tok\0");
                        REPLY(r, XS_READ, "OK\0");
                        break;
                }
                /* The client hangs up at once. */
                EXPECT_EOF();
        }
}

static void test_bad_replies(void **state)
{
        srv_start(s_bad);
        for (int k = 0; k < N_BAD; k++) {
                struct xsconn_op o[] = { { .type = XS_READ, .dir = "/a" }, { .type = XS_READ, .dir = "/b" } };
                char **ents = NULL, *v = NULL;
                xs_transaction_t t = 0;
                unsigned n;
                int r;

                print_message("bad reply %d\n", k);
                seen.n_states = 0;
                client_new();
                assert_true(xsconn_connected(x));
                switch (k) {
                case BAD_ORDER:
                        r = xsconn_batch(x, XBT_NULL, o, 2);
                        /* Every op has the connection's result. */
                        assert_int_equal(o[0].r, -ENOTCONN);
                        assert_int_equal(o[1].r, -ENOTCONN);
                        assert_null(o[0].data);
                        assert_null(o[1].data);
                        break;
                case BAD_DIRECTORY:
                case BAD_PART:
                case BAD_PART_EMPTY:
                        r = xsconn_directory(x, XBT_NULL, "/a", &ents, &n);
                        assert_null(ents);
                        break;
                case BAD_TXID:
                        r = xsconn_transaction_start(x, &t);
                        break;
                case BAD_WATCH_REPLY:
                        r = xsconn_watch(x, "/w", "tok");
                        break;
                default:
                        r = xsconn_read(x, XBT_NULL, "/a", &v, NULL);
                        assert_null(v);
                        break;
                }
                assert_lost(r);
                /* Later calls fail at once, without a word to xenstored. */
                assert_int_equal(xsconn_read(x, XBT_NULL, "/a", &v, NULL), -ENOTCONN);
                assert_int_equal(xsconn_batch(x, XBT_NULL, o, 2), -ENOTCONN);
                assert_int_equal(o[0].r, -ENOTCONN);
                assert_int_equal(seen.n_states, 1);
                client_free();
        }
        srv_finish();
        assert_int_equal(seen.n, 0);
}

/* A message nobody asked for, noticed by the loop. */
static void s_unsolicited(void)
{
        ACCEPT();
        WAIT_GO();
        srv_send(__LINE__, XS_READ, 1234, 0, "surprise", 8);
        EXPECT_EOF();
}

static bool lost(void)
{
        return seen.n_states >= 1;
}

static void test_unsolicited_reply(void **state)
{
        client_new();
        srv_start(s_unsolicited);
        go();
        assert_true(run_until(lost, WAIT_MS));
        assert_lost(-ENOTCONN);
        client_free();
        srv_finish();
}

/* --- losing xenstored, and finding it again ---------------------------- */

static void s_reconnect(void)
{
        struct xsd_sockmsg r;

        ACCEPT();
        r = EXPECT(XS_WATCH, "/a\0ta\0");
        REPLY(r, XS_WATCH, "OK\0");
        r = EXPECT(XS_WATCH, "/b\0tb\0");
        REPLY(r, XS_WATCH, "OK\0");
        WAIT_GO();
        srv_hangup(); /* the socket file stays: connecting is refused */

        WAIT_GO();
        LISTEN();
        ACCEPT();
        /* Both watches again, in their order; their initial events. */
        r = EXPECT(XS_WATCH, "/a\0ta\0");
        REPLY(r, XS_WATCH, "OK\0");
        EVENT("/a\0ta\0");
        r = EXPECT(XS_WATCH, "/b\0tb\0");
        REPLY(r, XS_WATCH, "OK\0");
        EVENT("/b\0tb\0");
        r = EXPECT(XS_READ, "/after\0");
        REPLY(r, XS_READ, "yes");
        EXPECT_EOF();
}

static bool back(void)
{
        return seen.n_states >= 2 && seen.n >= 2;
}

static void test_reconnect(void **state)
{
        char *v = NULL;

        client_new();
        srv_start(s_reconnect);
        assert_int_equal(xsconn_watch(x, "/a", "ta"), 0);
        assert_int_equal(xsconn_watch(x, "/b", "tb"), 0);
        assert_idle();

        go();
        assert_true(run_until(lost, WAIT_MS));
        assert_lost(-ENOTCONN);
        assert_int_equal(xsconn_read(x, XBT_NULL, "/after", &v, NULL), -ENOTCONN);

        /* Retries are refused meanwhile: nothing to report. */
        run_for(300);
        assert_int_equal(seen.n_states, 1);
        assert_false(xsconn_connected(x));

        go();
        assert_true(run_until(back, 10 * 1000));
        assert_int_equal(seen.n_states, 2);
        assert_true(seen.states[1]);
        assert_true(xsconn_connected(x));
        assert_int_equal(seen.n, 2);
        assert_event(0, "/a", "ta");
        assert_event(1, "/b", "tb");
        assert_idle();

        assert_int_equal(xsconn_read(x, XBT_NULL, "/after", &v, NULL), 0);
        assert_string_equal(v, "yes");
        free(v);
        client_free();
        srv_finish();
}

/* xenstored not there yet when the client starts: no socket file at all. */
static void s_late(void)
{
        struct xsd_sockmsg r;

        WAIT_GO();
        LISTEN();
        ACCEPT();
        r = EXPECT(XS_WATCH, "/w\0tok\0");
        REPLY(r, XS_WATCH, "OK\0");
        EXPECT_EOF();
}

static bool up(void)
{
        return seen.n_states >= 1;
}

static bool up_again(void)
{
        return seen.n_states >= 2 && xsconn_connected(x);
}

static void test_connect_later(void **state)
{
        char *v = NULL;

        srv_hangup();
        assert_int_equal(unlink(sock_path), 0);
        client_new();
        assert_false(xsconn_connected(x));
        /* Kept, and sent once connected. */
        assert_int_equal(xsconn_watch(x, "/w", "tok"), 0);
        assert_int_equal(xsconn_read(x, XBT_NULL, "/a", &v, NULL), -ENOTCONN);
        srv_start(s_late);
        run_for(200);
        assert_int_equal(seen.n_states, 0);

        go();
        assert_true(run_until(up, 10 * 1000));
        assert_int_equal(seen.n_states, 1);
        assert_true(seen.states[0]);
        assert_true(xsconn_connected(x));
        assert_idle();
        client_free();
        srv_finish();
}

/* A xenstored that takes a request and never answers, its socket open. */
static void s_silent(void)
{
        struct xsd_sockmsg r;

        ACCEPT();
        r = EXPECT(XS_READ, "/a\0");
        (void)r;
        EXPECT_EOF(); /* the client gives up and hangs up */
        /* It reconnects, and this time gets its answer. */
        ACCEPT();
        r = EXPECT(XS_READ, "/b\0");
        REPLY(r, XS_READ, "B");
        EXPECT_EOF();
}

static void test_reply_deadline(void **state)
{
        char *v = NULL;

        client_new();
        xsconn_set_timeout(x, 300 * 1000);
        srv_start(s_silent);
        assert_int_equal(xsconn_read(x, XBT_NULL, "/a", &v, NULL), -ENOTCONN);
        assert_null(v);
        assert_false(xsconn_connected(x));
        assert_lost(-ENOTCONN);
        assert_true(run_until(up_again, 10 * 1000));
        assert_int_equal(xsconn_read(x, XBT_NULL, "/b", &v, NULL), 0);
        assert_string_equal(v, "B");
        free(v);
        client_free();
        srv_finish();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_requests),
                T(test_unknown_transaction),
                T(test_batch),
                T(test_events_in_batch),
                T(test_directory_parts),
                T(test_directory_parts_batch),
                T(test_directory_whole),
                T(test_bad_replies),
                T(test_unsolicited_reply),
                T(test_reconnect),
                T(test_connect_later),
                T(test_reply_deadline),
        };

        /* A write to a socket xenstored closed must fail, not kill. */
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
