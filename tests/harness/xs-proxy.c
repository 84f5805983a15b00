/*
 * xs-proxy — sits between one xenstore client (the daemon under test) and
 * the test's xenstored, passing the wire protocol through message by
 * message, and breaks it on request, for tests of the client's failure
 * paths that the real xenstored cannot be made to show at the right moment.
 *
 *   xs-proxy --listen SOCK --upstream SOCK --control DIR
 *            [--ready-file FILE] [--log FILE]
 *
 * Each client connection gets its own upstream connection.  Files in DIR
 * switch faults on; the proxy looks at them for every message:
 *
 *   stall              while it exists, nothing is passed in either
 *                      direction (a xenstored that stops answering but
 *                      keeps its socket open);
 *   drop-after-commit  the next committing XS_TRANSACTION_END is passed on,
 *                      its reply swallowed and both connections closed (the
 *                      commit landed, the client never hears so); the file
 *                      is then removed and `stall` created, so that the
 *                      client stays cut off until the test says otherwise;
 *   fail-read          lines of "SUFFIX ERRNAME": an XS_READ whose path ends
 *                      in SUFFIX is answered XS_ERROR ERRNAME by the proxy
 *                      and not passed on, for as long as the file exists.
 *
 * Replies reach the client in the order of its requests, whether they come
 * from xenstored or from the proxy; watch events pass straight through.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xenstore_lib.h>

#define MAX_CLIENTS 16
#define MAX_SLOTS 4096
#define MSG_MAX (sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX)
#define BUF_SIZE (256 * 1024) /* oxenstored sends a long directory whole */

/* A request in flight: its reply comes from xenstored, or is the proxy's. */
struct slot {
        bool from_proxy;
        bool swallow;   /* drop-after-commit: close instead of passing it on */
        bool ready;
        char *msg;      /* the reply to send, once ready */
        size_t len;
};

struct side {
        int fd;
        char buf[BUF_SIZE];
        size_t len;
};

struct client {
        bool used;
        struct side c, u;       /* client, upstream */
        struct slot slots[MAX_SLOTS];
        size_t head, n;         /* ring of slots */
};

static struct {
        const char *listen, *upstream, *control;
        int lfd;
        struct client clients[MAX_CLIENTS];
} P = { .lfd = -1 };

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        fputs("xs-proxy: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static bool control_has(const char *name)
{
        char p[4096];

        snprintf(p, sizeof(p), "%s/%s", P.control, name);
        return access(p, F_OK) == 0;
}

/* The error a read of path (plen bytes) is to get from the fail-read
 * rules, one "SUFFIX ERRNAME" a line; false when none matches. */
static bool fail_read_rule(const char *path, size_t plen, char *err, size_t elen)
{
        char p[4096], line[512];
        bool found = false;
        FILE *f;

        snprintf(p, sizeof(p), "%s/fail-read", P.control);
        f = fopen(p, "re");
        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f)) {
                char *sp = strchr(line, ' ');
                size_t sl;

                if (!sp)
                        continue;
                *sp = '\0';
                sp[1 + strcspn(sp + 1, "\n")] = '\0';
                sl = strlen(line);
                if (sl && sp[1] && plen >= sl && memcmp(path + plen - sl, line, sl) == 0) {
                        snprintf(err, elen, "%.63s", sp + 1);
                        found = true;
                }
        }
        fclose(f);
        return found;
}

static void client_close(struct client *cl)
{
        if (cl->c.fd >= 0)
                close(cl->c.fd);
        if (cl->u.fd >= 0)
                close(cl->u.fd);
        for (size_t i = 0; i < cl->n; i++)
                free(cl->slots[(cl->head + i) % MAX_SLOTS].msg);
        memset(cl, 0, sizeof(*cl));
        cl->c.fd = cl->u.fd = -1;
}

static int write_all(int fd, const char *p, size_t len)
{
        while (len) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Sends the replies at the head that are ready; false when the client is
 * to be closed. */
static bool flush_slots(struct client *cl)
{
        while (cl->n) {
                struct slot *s = &cl->slots[cl->head];
                if (!s->ready)
                        break;
                if (s->swallow) {
                        char p[4096];
                        int fd;

                        snprintf(p, sizeof(p), "%s/stall", P.control);
                        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        if (fd >= 0)
                                close(fd);
                        logf_("swallowed the reply to a commit; closing the connection, stalled");
                        return false;
                }
                if (write_all(cl->c.fd, s->msg, s->len) < 0)
                        return false;
                free(s->msg);
                *s = (struct slot){ 0 };
                cl->head = (cl->head + 1) % MAX_SLOTS;
                cl->n--;
        }
        return true;
}

static struct slot *slot_push(struct client *cl)
{
        struct slot *s;

        if (cl->n == MAX_SLOTS)
                return NULL;
        s = &cl->slots[(cl->head + cl->n) % MAX_SLOTS];
        *s = (struct slot){ 0 };
        cl->n++;
        return s;
}

/* Whole messages at the front of a side's buffer, one at a time. */
static size_t msg_len(const struct side *sd)
{
        struct xsd_sockmsg h;

        if (sd->len < sizeof(h))
                return 0;
        memcpy(&h, sd->buf, sizeof(h));
        if (h.len > XENSTORE_PAYLOAD_MAX * 16)
                return (size_t)-1;
        return sd->len >= sizeof(h) + h.len ? sizeof(h) + h.len : 0;
}

static void consume(struct side *sd, size_t n)
{
        memmove(sd->buf, sd->buf + n, sd->len - n);
        sd->len -= n;
}

/* A request from the client: passed on, or answered here. */
static bool on_request(struct client *cl, const char *msg, size_t len)
{
        struct xsd_sockmsg h;
        const char *body = msg + sizeof(h);
        char err[64];
        struct slot *s;

        memcpy(&h, msg, sizeof(h));
        s = slot_push(cl);
        if (!s)
                return false;
        if (h.type == XS_READ && fail_read_rule(body, strnlen(body, h.len), err, sizeof(err))) {
                struct xsd_sockmsg r = { .type = XS_ERROR, .req_id = h.req_id, .tx_id = h.tx_id,
                                         .len = (uint32_t)strlen(err) + 1 };
                s->from_proxy = true;
                s->ready = true;
                s->len = sizeof(r) + r.len;
                s->msg = malloc(s->len);
                if (!s->msg)
                        return false;
                memcpy(s->msg, &r, sizeof(r));
                memcpy(s->msg + sizeof(r), err, r.len);
                logf_("answered a read of %.*s with %s", (int)strnlen(body, h.len), body, err);
                return flush_slots(cl);
        }
        if (h.type == XS_TRANSACTION_END && h.len >= 1 && body[0] == 'T' && control_has("drop-after-commit")) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/drop-after-commit", P.control);
                unlink(p);
                s->swallow = true;
                logf_("passing a commit on; its reply will be swallowed");
        }
        return write_all(cl->u.fd, msg, len) == 0;
}

/* A message from xenstored: a watch event passes; a reply fills the
 * oldest request waiting for xenstored. */
static bool on_upstream(struct client *cl, const char *msg, size_t len)
{
        struct xsd_sockmsg h;

        memcpy(&h, msg, sizeof(h));
        if (h.type == XS_WATCH_EVENT)
                return write_all(cl->c.fd, msg, len) == 0;
        for (size_t i = 0; i < cl->n; i++) {
                struct slot *s = &cl->slots[(cl->head + i) % MAX_SLOTS];
                if (s->from_proxy || s->ready)
                        continue;
                s->msg = malloc(len);
                if (!s->msg)
                        return false;
                memcpy(s->msg, msg, len);
                s->len = len;
                s->ready = true;
                return flush_slots(cl);
        }
        logf_("a reply nobody waits for (type %u)", h.type);
        return false;
}

/* Reads what a side has and handles every whole message; false to close. */
static bool pump(struct client *cl, bool upstream)
{
        struct side *sd = upstream ? &cl->u : &cl->c;
        ssize_t n = read(sd->fd, sd->buf + sd->len, sizeof(sd->buf) - sd->len);
        size_t m;

        if (sd->len == sizeof(sd->buf))
                return false; /* a message larger than any xenstored sends */
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0)
                return false;
        sd->len += (size_t)n;
        while ((m = msg_len(sd)) > 0) {
                if (m == (size_t)-1)
                        return false;
                if (!(upstream ? on_upstream(cl, sd->buf, m) : on_request(cl, sd->buf, m)))
                        return false;
                consume(sd, m);
        }
        return true;
}

static int connect_to(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

static void accept_client(void)
{
        int fd = accept4(P.lfd, NULL, NULL, SOCK_CLOEXEC), u;

        if (fd < 0)
                return;
        u = connect_to(P.upstream);
        if (u < 0) {
                logf_("cannot reach %s: %s", P.upstream, strerror(-u));
                close(fd);
                return;
        }
        for (size_t i = 0; i < MAX_CLIENTS; i++) {
                struct client *cl = &P.clients[i];
                if (cl->used)
                        continue;
                memset(cl, 0, sizeof(*cl));
                cl->used = true;
                cl->c.fd = fd;
                cl->u.fd = u;
                return;
        }
        logf_("too many clients");
        close(fd);
        close(u);
}

static int listen_on(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);
        (void)unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "listen", required_argument, NULL, 'L' },
                { "upstream", required_argument, NULL, 'U' },
                { "control", required_argument, NULL, 'C' },
                { "ready-file", required_argument, NULL, 'R' },
                { "log", required_argument, NULL, 'l' },
                {}
        };
        const char *ready = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 'L': P.listen = optarg; break;
                case 'U': P.upstream = optarg; break;
                case 'C': P.control = optarg; break;
                case 'R': ready = optarg; break;
                case 'l':
                        if (!freopen(optarg, "ae", stderr))
                                return 2;
                        setvbuf(stderr, NULL, _IOLBF, 0);
                        break;
                default:
                        return 2;
                }
        }
        if (!P.listen || !P.upstream || !P.control || optind < argc) {
                fprintf(stderr, "usage: xs-proxy --listen SOCK --upstream SOCK --control DIR "
                                "[--ready-file FILE] [--log FILE]\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < MAX_CLIENTS; i++)
                P.clients[i].c.fd = P.clients[i].u.fd = -1;
        P.lfd = listen_on(P.listen);
        if (P.lfd < 0) {
                logf_("cannot listen on %s: %s", P.listen, strerror(-P.lfd));
                return 1;
        }
        if (ready) {
                FILE *f = fopen(ready, "we");
                if (!f)
                        return 1;
                fprintf(f, "%d\n", (int)getpid());
                fclose(f);
        }
        for (;;) {
                struct pollfd p[1 + 2 * MAX_CLIENTS];
                struct client *who[1 + 2 * MAX_CLIENTS];
                size_t n = 0;
                bool stalled = control_has("stall");

                p[n] = (struct pollfd){ .fd = P.lfd, .events = POLLIN };
                who[n++] = NULL;
                for (size_t i = 0; i < MAX_CLIENTS && !stalled; i++) {
                        struct client *cl = &P.clients[i];
                        if (!cl->used)
                                continue;
                        p[n] = (struct pollfd){ .fd = cl->c.fd, .events = POLLIN };
                        who[n++] = cl;
                        p[n] = (struct pollfd){ .fd = cl->u.fd, .events = POLLIN };
                        who[n++] = cl;
                }
                /* The control files are looked at again at least every 50 ms. */
                if (poll(p, n, 50) < 0 && errno != EINTR)
                        return 1;
                if (p[0].revents & POLLIN)
                        accept_client();
                for (size_t i = 1; i < n; i++) {
                        struct client *cl = who[i];
                        if (!cl->used || !p[i].revents)
                                continue;
                        if (!pump(cl, p[i].fd == cl->u.fd))
                                client_close(cl);
                }
        }
}
