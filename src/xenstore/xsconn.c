#include "xsconn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"

struct watch {
        char *path, *token;
};

/* A watch event received while a reply was awaited, or read from the
 * socket; path and token follow the struct in the same allocation. */
struct event {
        struct list link;       /* in xsconn.events, oldest first */
        const char *token;
        char path[];
};

/* Bytes read but not yet taken as messages: room for several to start
 * with; grown for a message longer than that (a long directory from
 * oxenstored, bounded by xsw_peek). */
#define IN_SIZE (16 * XSW_MSG_MAX)
/* Requests of one batch not written yet. */
#define OUT_SIZE (4 * XSW_MSG_MAX)

struct xsconn {
        sd_event *event;
        int fd; /* -1 while disconnected */
        sd_event_source *io, *timer, *defer;
        const struct xsconn_ops *ops;
        void *userdata;
        struct watch *watches;
        size_t n_watches;
        unsigned retry_ms;
        bool up; /* connected and its watches set */
        bool was_connected;
        bool stream; /* a socket: a batch goes in one write() */
        char *out;              /* OUT_SIZE bytes */
        size_t out_len;
        uint32_t next_id;
        uint64_t timeout_usec;  /* for each reply; then the connection is given up */
        uint64_t deadline;      /* of the request in flight (CLOCK_MONOTONIC, usec) */
        char *in;
        size_t in_cap;
        size_t in_off, in_len; /* taken up to in_off, read up to in_len */
        struct list events;
};

#define RETRY_MIN_MS 50u
#define RETRY_MAX_MS 2000u
#define TIMEOUT_DEFAULT_USEC (10 * 1000000ULL)

/* A request starts: its reply is due within the timeout. */
static void start_deadline(struct xsconn *x)
{
        x->deadline = now_usec() + x->timeout_usec;
}

/* Waits for fd to be ready until the request's deadline: a xenstored that
 * stops answering without closing the socket must not hold the event loop
 * (and with it every disk and the control socket) for ever. */
static int wait_fd(struct xsconn *x, short events)
{
        struct pollfd p = { .fd = x->fd, .events = events };
        uint64_t now = now_usec();
        int r;

        if (now >= x->deadline)
                return -ETIMEDOUT;
        r = poll(&p, 1, (int)((x->deadline - now + 999) / 1000));
        if (r < 0 && errno != EINTR)
                return negative_errno();
        return r == 0 ? -ETIMEDOUT : 0;
}

static int connect_now(struct xsconn *x);

static void drop_events(struct xsconn *x)
{
        struct event *e, *tmp;

        list_foreach_entry_safe(e, tmp, &x->events, link)
                free(e);
        list_init(&x->events);
}

static int arm_timer(struct xsconn *x, uint64_t usec)
{
        uint64_t now;

        sd_event_now(x->event, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(x->timer, now + usec);
        /* One shot: a time source left on fires at every iteration once
         * its time has passed. */
        return sd_event_source_set_enabled(x->timer, SD_EVENT_ONESHOT);
}

static void disconnect(struct xsconn *x)
{
        if (x->fd < 0)
                return;
        x->io = sd_event_source_disable_unref(x->io);
        x->fd = safe_close(x->fd);
        x->in_off = x->in_len = 0;
        /* Events of the old connection: the rescan after reconnecting
         * looks at everything again. */
        drop_events(x);
        /* A connection that never came up (lost while its watches were
         * set) keeps backing off. */
        if (x->up)
                x->retry_ms = RETRY_MIN_MS;
        arm_timer(x, x->retry_ms * 1000ULL);
        if (x->up && x->ops->state) {
                x->up = false;
                x->ops->state(x, false, x->userdata);
        }
        x->up = false;
}

/* A failure of the connection itself (not of one request): torn down here
 * so that reconnection starts. */
static int conn_failed(struct xsconn *x, int r)
{
        if (x->fd >= 0) {
                if (r == -ETIMEDOUT)
                        log_warning("xenstored did not answer within %" PRIu64 " ms; reconnecting.",
                                    x->timeout_usec / 1000);
                else
                        log_warning_errno(r, "Lost the connection to xenstored (%m); reconnecting.");
                disconnect(x);
        }
        return -ENOTCONN;
}

/* Room at the end of the input: what was taken goes, once per read (not
 * once per message: a burst of events would be moved over and over), and a
 * first message longer than the buffer gets a buffer that holds it.  Called
 * only when no whole message is left to take. */
static int make_room(struct xsconn *x)
{
        struct xsd_sockmsg hdr;
        size_t need;
        char *p;
        int r;

        if (x->in_off > 0) {
                memmove(x->in, x->in + x->in_off, x->in_len - x->in_off);
                x->in_len -= x->in_off;
                x->in_off = 0;
        }
        if (x->in_len < x->in_cap)
                return 0;
        r = xsw_peek(x->in, x->in_len, &hdr);
        if (r < 0)
                return r;
        if (r > 0)
                return -ENOBUFS; /* a whole message nobody took */
        need = XSW_HEADER_SIZE + hdr.len;
        p = realloc(x->in, need);
        if (!p)
                return -ENOMEM;
        x->in = p;
        x->in_cap = need;
        return 0;
}

/* Reads what has arrived; with wait, blocks until something has.  -EAGAIN
 * when nothing is there, -ECONNRESET at the end of the stream. */
static int receive(struct xsconn *x, bool wait)
{
        int r = make_room(x);

        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = read(x->fd, x->in + x->in_len, x->in_cap - x->in_len);
                if (n > 0) {
                        x->in_len += (size_t)n;
                        return 0;
                }
                if (n == 0)
                        return -ECONNRESET;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return negative_errno();
                if (!wait)
                        return -EAGAIN;
                r = wait_fd(x, POLLIN);
                if (r < 0)
                        return r;
        }
}

/* Takes the first whole message off the input: 1 with *hdr and *body
 * (malloc'ed, NUL-terminated after hdr->len bytes), 0 when there is none
 * yet. */
static int take_msg(struct xsconn *x, struct xsd_sockmsg *hdr, char **body)
{
        size_t total;
        int r;

        r = xsw_peek(x->in + x->in_off, x->in_len - x->in_off, hdr);
        if (r <= 0)
                return r;
        *body = malloc(hdr->len + 1);
        if (!*body)
                return -ENOMEM;
        memcpy(*body, x->in + x->in_off + XSW_HEADER_SIZE, hdr->len);
        (*body)[hdr->len] = '\0';
        total = XSW_HEADER_SIZE + hdr->len;
        x->in_off += total;
        if (x->in_off == x->in_len)
                x->in_off = x->in_len = 0;
        return 1;
}

static int queue_event(struct xsconn *x, const char *body, size_t len)
{
        const char *path, *token;
        size_t plen, tlen;
        struct event *e;
        int r;

        r = xsw_watch_event(body, len, &path, &token);
        if (r < 0)
                return r;
        plen = strlen(path);
        tlen = strlen(token);
        e = malloc(sizeof(*e) + plen + tlen + 2);
        if (!e)
                return -ENOMEM;
        memcpy(e->path, path, plen + 1);
        memcpy(e->path + plen + 1, token, tlen + 1);
        e->token = e->path + plen + 1;
        list_append(&x->events, &e->link);
        sd_event_source_set_enabled(x->defer, SD_EVENT_ON);
        return 0;
}

/* Moves the watch events already received to the queue.  Anything else is
 * a reply nobody asked for. */
static int take_events(struct xsconn *x)
{
        for (;;) {
                _cleanup_free_ char *body = NULL;
                struct xsd_sockmsg hdr;
                int r = take_msg(x, &hdr, &body);
                if (r <= 0)
                        return r;
                if (hdr.type != XS_WATCH_EVENT)
                        return -EBADMSG;
                r = queue_event(x, body, hdr.len);
                if (r < 0)
                        return r;
        }
}

/* The next reply; watch events before it are queued. */
static int next_reply(struct xsconn *x, struct xsd_sockmsg *hdr, char **body)
{
        for (;;) {
                int r = take_msg(x, hdr, body);
                if (r < 0)
                        return r;
                if (r == 0) {
                        r = receive(x, true);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (hdr->type != XS_WATCH_EVENT)
                        return 0;
                r = queue_event(x, *body, hdr->len);
                *body = mfree(*body);
                if (r < 0)
                        return r;
        }
}

static int write_all(struct xsconn *x, const char *buf, size_t len)
{
        size_t off = 0;

        while (off < len) {
                ssize_t n = write(x->fd, buf + off, len - off);
                if (n >= 0) {
                        off += (size_t)n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN)
                        return negative_errno();
                int r = wait_fd(x, POLLOUT);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Requests on their way out.  The kernel's xenbus device takes one message
 * per write(); xenstored's socket is a stream, where a batch goes in one
 * write() (a system call, and a wake-up of xenstored, per batch). */
static int flush_out(struct xsconn *x)
{
        int r = write_all(x, x->out, x->out_len);

        x->out_len = 0;
        return r;
}

static int queue_msg(struct xsconn *x, uint32_t type, xs_transaction_t t, const struct xsw_part *parts,
                     size_t n_parts, uint32_t *ret_id)
{
        int len, r;

        if (OUT_SIZE - x->out_len < XSW_MSG_MAX && (r = flush_out(x)) < 0)
                return r;
        len = xsw_build(x->out + x->out_len, type, x->next_id, t, parts, n_parts);
        if (len < 0)
                return len;
        x->out_len += (size_t)len;
        *ret_id = x->next_id++;
        return x->stream ? 0 : flush_out(x);
}

static int send_msg(struct xsconn *x, uint32_t type, xs_transaction_t t, const struct xsw_part *parts,
                    size_t n_parts, uint32_t *ret_id)
{
        char buf[XSW_MSG_MAX];
        int len;

        len = xsw_build(buf, type, x->next_id, t, parts, n_parts);
        if (len < 0)
                return len;
        *ret_id = x->next_id++;
        return write_all(x, buf, (size_t)len);
}

/* Builds an op's body: its path, NUL-terminated, and a value to write. */
static size_t op_parts(const struct xsconn_op *op, struct xsw_part parts[4])
{
        size_t n = 0;

        parts[n++] = (struct xsw_part){ op->dir, strlen(op->dir) + !op->node };
        if (op->node) {
                parts[n++] = (struct xsw_part){ "/", 1 };
                parts[n++] = (struct xsw_part){ op->node, strlen(op->node) + 1 };
        }
        if (op->type == XS_WRITE)
                parts[n++] = (struct xsw_part){ op->value, strlen(op->value) };
        return n;
}

static int directory_parts(struct xsconn *x, xs_transaction_t t, struct xsconn_op *op);

/* Fills op's result from its reply; a malformed reply is the connection's
 * failure. */
static int decode(struct xsconn_op *op, const struct xsd_sockmsg *hdr, char **body)
{
        if (hdr->type == XS_ERROR) {
                op->r = xsw_error(*body, hdr->len);
                return 0;
        }
        if (hdr->type != op->type)
                return -EBADMSG;
        op->r = 0;
        switch (op->type) {
        case XS_READ:
                op->data = TAKE_PTR(*body);
                op->len = hdr->len;
                return 0;
        case XS_DIRECTORY:
                op->r = xsw_directory(*body, hdr->len, &op->ents, &op->n_ents);
                return op->r == -EBADMSG ? -EBADMSG : 0;
        default:
                return 0;
        }
}

int xsconn_batch(struct xsconn *x, xs_transaction_t t, struct xsconn_op *ops, size_t n)
{
        uint32_t id, next;
        size_t sent = 0;
        int r = 0;

        assert(x && (ops || n == 0));
        for (size_t i = 0; i < n; i++) {
                ops[i].r = -ENOTCONN;
                ops[i].data = NULL;
                ops[i].ents = NULL;
                ops[i].len = ops[i].n_ents = 0;
        }
        if (x->fd < 0)
                return -ENOTCONN;
        start_deadline(x);
        /* Ids go up by one per request sent; replies come in that order. */
        next = x->next_id;
        for (; sent < n; sent++) {
                struct xsw_part parts[4];
                r = queue_msg(x, ops[sent].type, t, parts, op_parts(&ops[sent], parts), &id);
                if (r == -E2BIG) {
                        ops[sent].r = -ENAMETOOLONG;
                        continue;
                }
                if (r < 0)
                        break;
                ops[sent].r = 1; /* awaiting its reply */
        }
        if (r >= 0 || r == -E2BIG) {
                int f = flush_out(x);
                if (f < 0)
                        r = f;
        }
        for (size_t i = 0; i < sent && r >= 0; i++) {
                _cleanup_free_ char *body = NULL;
                struct xsd_sockmsg hdr;

                if (ops[i].r != 1)
                        continue;
                r = next_reply(x, &hdr, &body);
                if (r >= 0 && hdr.req_id != next++)
                        r = -EBADMSG;
                if (r >= 0)
                        r = decode(&ops[i], &hdr, &body);
        }
        if (r >= 0)
                r = take_events(x);
        for (size_t i = 0; i < n && r >= 0; i++)
                if (ops[i].type == XS_DIRECTORY && ops[i].r == -E2BIG)
                        r = directory_parts(x, t, &ops[i]);
        if (r < 0) {
                r = conn_failed(x, r);
                xsconn_ops_clear(ops, n);
                for (size_t i = 0; i < n; i++)
                        ops[i].r = r;
        }
        return r;
}

void xsconn_ops_clear(struct xsconn_op *ops, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                ops[i].data = mfree(ops[i].data);
                ops[i].ents = mfree(ops[i].ents);
                ops[i].len = ops[i].n_ents = 0;
        }
}

/* One request, its reply in hdr and body; the connection's failure is
 * handled here. */
static int request(struct xsconn *x, uint32_t type, xs_transaction_t t, const struct xsw_part *parts,
                   size_t n_parts, struct xsd_sockmsg *hdr, char **body)
{
        uint32_t id;
        int r;

        if (x->fd < 0)
                return -ENOTCONN;
        start_deadline(x);
        r = send_msg(x, type, t, parts, n_parts, &id);
        if (r == -E2BIG)
                return -ENAMETOOLONG;
        if (r >= 0)
                r = next_reply(x, hdr, body);
        if (r >= 0 && hdr->req_id != id)
                r = -EBADMSG;
        if (r >= 0)
                r = take_events(x);
        if (r < 0) {
                *body = mfree(*body);
                return conn_failed(x, r);
        }
        if (hdr->type == XS_ERROR) {
                r = xsw_error(*body, hdr->len);
                *body = mfree(*body);
                return r;
        }
        if (hdr->type != type) {
                *body = mfree(*body);
                return conn_failed(x, -EBADMSG);
        }
        return 0;
}

/* A directory too long for one reply, read part by part (xenstored 4.9 and
 * later); started over when it changes in between. */
static int directory_parts(struct xsconn *x, xs_transaction_t t, struct xsconn_op *op)
{
        _cleanup_free_ char *names = NULL, *gen0 = NULL;
        size_t off = 0;
        int restarts = 0;

        for (;;) {
                _cleanup_free_ char *body = NULL;
                struct xsw_part parts[5];
                char offstr[24];
                const char *gen, *part;
                struct xsd_sockmsg hdr;
                size_t n = op_parts(op, parts), plen;
                bool last;
                int r;

                snprintf(offstr, sizeof(offstr), "%zu", off);
                parts[n++] = (struct xsw_part){ offstr, strlen(offstr) + 1 };
                r = request(x, XS_DIRECTORY_PART, t, parts, n, &hdr, &body);
                if (r == -ENOTCONN)
                        return r;
                if (r < 0) {
                        op->r = r == -ENOSYS ? -E2BIG : r;
                        return 0;
                }
                if (xsw_directory_part(body, hdr.len, &gen, &part, &plen, &last) < 0 || (!last && plen == 0))
                        return -EBADMSG;
                if (gen0 && strcmp(gen0, gen) != 0) {
                        if (++restarts > 8) {
                                op->r = -EAGAIN;
                                return 0;
                        }
                        gen0 = mfree(gen0);
                        off = 0;
                        continue;
                }
                if (!gen0 && !(gen0 = strdup(gen)))
                        return -ENOMEM;
                char *grown = realloc(names, off + plen);
                if (!grown && off + plen)
                        return -ENOMEM;
                names = grown;
                memcpy(names + off, part, plen);
                off += plen;
                if (last)
                        break;
        }
        op->r = xsw_directory(names, off, &op->ents, &op->n_ents);
        return op->r == -EBADMSG ? -EBADMSG : 0;
}

static int on_defer(sd_event_source *s, void *userdata)
{
        struct xsconn *x = userdata;

        /* A callback may make requests (more events queue behind) or lose
         * the connection (the queue is dropped). */
        struct event *e;

        while ((e = list_first_entry(&x->events, struct event, link))) {
                list_unlink(&e->link);
                x->ops->watch(x, e->path, e->token, x->userdata);
                free(e);
        }
        return sd_event_source_set_enabled(x->defer, SD_EVENT_OFF);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct xsconn *x = userdata;
        int r;

        do {
                r = receive(x, false);
                if (r >= 0)
                        r = take_events(x);
        } while (r >= 0);
        if (r != -EAGAIN && r < 0)
                conn_failed(x, r == -ECONNRESET ? -EPIPE : r);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct xsconn *x = userdata;

        if (x->fd >= 0)
                return 0;
        if (connect_now(x) < 0) {
                x->retry_ms = x->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : x->retry_ms * 2;
                arm_timer(x, x->retry_ms * 1000ULL);
                return 0;
        }
        log_info("Connected to xenstored%s.", x->was_connected ? " again" : "");
        x->was_connected = true;
        if (x->ops->state)
                x->ops->state(x, true, x->userdata);
        return 0;
}

/* Where libxenstore connects: xenstored's socket (XENSTORED_PATH, or the
 * run directory's socket), else the kernel's xenbus device. */
static int open_xenstore(void)
{
        const char *path = xs_daemon_socket(), *env;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int fd;

        if (path && stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                if (strlen(path) >= sizeof(sa.sun_path))
                        return -ENAMETOOLONG;
                strcpy(sa.sun_path, path);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return negative_errno();
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                        int r = negative_errno();
                        safe_close(fd);
                        return r;
                }
                return fd;
        }
        env = getenv("XENSTORED_PATH");
        path = env ? env : access("/dev/xen/xenbus", F_OK) == 0 ? "/dev/xen/xenbus" : "/proc/xen/xenbus";
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        return fd < 0 ? negative_errno() : fd;
}

static int watch_now(struct xsconn *x, const char *path, const char *token)
{
        _cleanup_free_ char *body = NULL;
        struct xsd_sockmsg hdr;
        struct xsw_part parts[] = {
                { path, strlen(path) + 1 },
                { token, strlen(token) + 1 },
        };

        return request(x, XS_WATCH, XBT_NULL, parts, ARRAY_SIZE(parts), &hdr, &body);
}

static int connect_now(struct xsconn *x)
{
        struct stat st;
        int r, fd;

        fd = open_xenstore();
        if (fd < 0)
                return fd;
        if (!x->in) {
                if (!(x->in = malloc(IN_SIZE))) {
                        safe_close(fd);
                        return -ENOMEM;
                }
                x->in_cap = IN_SIZE;
        }
        if (!x->out && !(x->out = malloc(OUT_SIZE))) {
                safe_close(fd);
                return -ENOMEM;
        }
        x->stream = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
        x->out_len = 0;
        r = sd_event_add_io(x->event, &x->io, fd, EPOLLIN, on_io, x);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        x->fd = fd;
        x->in_off = x->in_len = 0;
        for (size_t i = 0; i < x->n_watches && r >= 0; i++)
                r = watch_now(x, x->watches[i].path, x->watches[i].token);
        if (r < 0) {
                /* Not connected after all: no state change to report. */
                x->io = sd_event_source_disable_unref(x->io);
                x->fd = safe_close(x->fd);
                drop_events(x);
                return r;
        }
        x->up = true;
        return 0;
}

/* The event sources go before the fd the io source watches. */
void xsconn_free(struct xsconn *x)
{
        if (!x)
                return;
        sd_event_source_disable_unref(x->io);
        sd_event_source_disable_unref(x->timer);
        sd_event_source_disable_unref(x->defer);
        safe_close(x->fd);
        drop_events(x);
        free(x->in);
        free(x->out);
        for (size_t i = 0; i < x->n_watches; i++) {
                free(x->watches[i].path);
                free(x->watches[i].token);
        }
        free(x->watches);
        sd_event_unref(x->event);
        free(x);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct xsconn *, xsconn_free);

int xsconn_new(sd_event *ev, const struct xsconn_ops *ops, void *userdata, struct xsconn **ret)
{
        _cleanup_(xsconn_freep) struct xsconn *x = calloc(1, sizeof(*x));
        int r;

        assert(ev && ops && ret);
        if (!x)
                return -ENOMEM;
        x->fd = -1;
        x->timeout_usec = TIMEOUT_DEFAULT_USEC;
        list_init(&x->events);
        x->event = sd_event_ref(ev);
        x->ops = ops;
        x->userdata = userdata;
        r = sd_event_add_time(ev, &x->timer, CLOCK_MONOTONIC, 0, 0, on_timer, x);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(x->timer, SD_EVENT_OFF);
        r = sd_event_add_defer(ev, &x->defer, on_defer, x);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(x->defer, SD_EVENT_OFF);
        /* Not there yet: keep trying, as after losing it. */
        if (connect_now(x) < 0) {
                x->retry_ms = RETRY_MIN_MS;
                arm_timer(x, x->retry_ms * 1000ULL);
        } else
                x->was_connected = true;
        *ret = TAKE_PTR(x);
        return 0;
}

bool xsconn_connected(const struct xsconn *x) { return x->fd >= 0; }

void xsconn_set_timeout(struct xsconn *x, uint64_t usec)
{
        assert(x && usec > 0);
        x->timeout_usec = usec;
}

int xsconn_watch(struct xsconn *x, const char *path, const char *token)
{
        struct watch *w;

        assert(x && path && token);
        w = realloc(x->watches, (x->n_watches + 1) * sizeof(*w));
        if (!w)
                return -ENOMEM;
        x->watches = w;
        w = &x->watches[x->n_watches];
        w->path = strdup(path);
        w->token = strdup(token);
        if (!w->path || !w->token) {
                free(w->path);
                free(w->token);
                return -ENOMEM;
        }
        x->n_watches++;
        return x->fd >= 0 ? watch_now(x, path, token) : 0;
}

/* One op alone. */
static int single(struct xsconn *x, xs_transaction_t t, struct xsconn_op *op)
{
        int r = xsconn_batch(x, t, op, 1);

        return r < 0 ? r : op->r;
}

int xsconn_read(struct xsconn *x, xs_transaction_t t, const char *path, char **ret, size_t *ret_len)
{
        struct xsconn_op op = { .type = XS_READ, .dir = path };
        int r;

        assert(x && path && ret);
        r = single(x, t, &op);
        if (r < 0)
                return r;
        *ret = op.data;
        if (ret_len)
                *ret_len = op.len;
        return 0;
}

int xsconn_write(struct xsconn *x, xs_transaction_t t, const char *path, const char *value)
{
        struct xsconn_op op = { .type = XS_WRITE, .dir = path, .value = value };

        assert(x && path && value);
        return single(x, t, &op);
}

int xsconn_rm(struct xsconn *x, xs_transaction_t t, const char *path)
{
        struct xsconn_op op = { .type = XS_RM, .dir = path };

        assert(x && path);
        return single(x, t, &op);
}

int xsconn_directory(struct xsconn *x, xs_transaction_t t, const char *path, char ***ret, unsigned *ret_n)
{
        struct xsconn_op op = { .type = XS_DIRECTORY, .dir = path };
        int r;

        assert(x && path && ret && ret_n);
        r = single(x, t, &op);
        if (r < 0)
                return r;
        *ret = op.ents;
        *ret_n = op.n_ents;
        return 0;
}

bool xsconn_exists(struct xsconn *x, xs_transaction_t t, const char *path)
{
        _cleanup_free_ char *v = NULL;

        return xsconn_read(x, t, path, &v, NULL) == 0;
}

int xsconn_transaction_start(struct xsconn *x, xs_transaction_t *ret)
{
        _cleanup_free_ char *body = NULL;
        struct xsd_sockmsg hdr;
        struct xsw_part part = { "", 1 };
        uint32_t id;
        int r;

        assert(x && ret);
        r = request(x, XS_TRANSACTION_START, XBT_NULL, &part, 1, &hdr, &body);
        if (r < 0)
                return r;
        if (xsw_txid(body, hdr.len, &id) < 0)
                return conn_failed(x, -EBADMSG);
        *ret = id;
        return 0;
}

int xsconn_transaction_end(struct xsconn *x, xs_transaction_t t, bool abort)
{
        _cleanup_free_ char *body = NULL;
        struct xsd_sockmsg hdr;
        struct xsw_part part = { abort ? "F" : "T", 2 };
        int r;

        assert(x);
        r = request(x, XS_TRANSACTION_END, t, &part, 1, &hdr, &body);
        /* xenstored did not know the transaction (the C one says ENOENT,
         * oxenstored EIO): nothing was committed, and what was read in it
         * meant nothing; the caller starts over. */
        if (r == -ENOENT || r == -EIO)
                return -EAGAIN;
        return r;
}

int xsconn_home(struct xsconn *x, char **ret)
{
        _cleanup_free_ char *domid = NULL;
        unsigned long id;
        char *end;
        int r;

        assert(x && ret);
        /* A relative path resolves against our own domain.  No guess when
         * it cannot be read: dom0's home in a driver domain would serve
         * another domain's backends. */
        r = xsconn_read(x, XBT_NULL, "domid", &domid, NULL);
        if (r < 0)
                return r;
        errno = 0;
        id = strtoul(domid, &end, 10);
        if (errno || end == domid || *end || id >= 0x7FF0)
                return -EBADMSG;
        return asprintf(ret, "/local/domain/%lu", id) < 0 ? -ENOMEM : 0;
}
