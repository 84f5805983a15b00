/* control.c — the control socket server (see control.h).
 *
 * Ownership: the server owns its listening socket and every connection; a
 * connection owns its pending calls and its queue of unsent replies; a call
 * owns the fds that came with its request until a handler takes them.  A
 * pending call whose client goes away is cancelled (if the handler set a
 * cancel callback) and freed, or, without one, kept as an orphan that is
 * completed silently and freed when the handler finishes with it.
 *
 * Connections are never freed from inside a handler or a reply: a failed
 * send only marks the connection dead and schedules its close on a defer
 * source, so the caller's stack never holds a dangling pointer. */
#include "control.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-daemon.h>

#include "list.h"
#include "log.h"
#include "macro.h"
#include "proto.h"

#define CTL_MAX_CONNECTIONS 1024
#define CTL_MAX_PENDING_CALLS 256        /* per connection */
#define CTL_MAX_QUEUED_MESSAGES 512      /* unsent replies per connection */
#define CTL_MAX_QUEUED_BYTES (8u * 1024 * 1024)
#define CTL_MESSAGES_PER_WAKEUP 32       /* fairness between clients */
#define CTL_ACCEPT_PAUSE_USEC 100000     /* after EMFILE and friends */

struct out_msg {
        struct list link;                /* in conn->out */
        char *text;
        size_t len;
};

struct ctl_conn {
        struct ctl_server *server;
        struct list link;                /* in server->conns */
        uint64_t id;
        int fd;
        sd_event_source *io;
        sd_event_source *defer_close;
        struct ucred cred;
        struct list calls;               /* pending */
        size_t n_calls;
        struct list out;                 /* unsent replies, oldest first */
        size_t n_out, out_bytes;
        int sndbuf;                      /* as the kernel reports it; 0 = unknown */
        bool closing;                    /* reads no more; closes once the queue is sent */
        bool dead;                       /* close scheduled or under way: send nothing */
};

struct ctl_call {
        struct ctl_server *server;
        struct ctl_conn *conn;           /* NULL once the client has gone */
        struct list link;                /* in conn->calls, or server->orphans */
        uint32_t id;
        uint64_t conn_id;
        pid_t pid;
        uid_t uid;
        int fds[PROTO_MAX_FDS];
        size_t n_fds;
        void (*cancel)(struct ctl_call *call, void *data);
        void *cancel_data;
        bool in_handler;                 /* the dispatcher frees it afterwards */
        bool cancelling;                 /* the canceller frees it afterwards */
        bool completed;
        bool orphan;
};

struct ctl_server {
        sd_event *event;
        sd_event_source *listen_source;
        sd_event_source *accept_timer;
        int listen_fd;
        char *path;
        bool bound;                      /* we created the socket at path */
        gid_t allowed_gid;
        const struct ctl_command *commands;
        size_t n_commands;
        void *userdata;
        void (*on_disconnect)(uint64_t conn_id, void *userdata);
        struct list conns;
        size_t n_conns;
        struct list orphans;
        uint64_t next_conn_id;
        char *buf;                       /* receive buffer, PROTO_MAX_MESSAGE */
};

static void conn_schedule_close(struct ctl_conn *c);
static void conn_update_events(struct ctl_conn *c);
static int close_drained(int fd);

static void close_fds(int *fds, size_t n)
{
        for (size_t i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/* --- sending ------------------------------------------------------------ */

/* A reply larger than the socket's send buffer fails with EMSGSIZE; grow the
 * buffer for it (SO_SNDBUFFORCE as root, else up to wmem_max). */
static void conn_fit_sndbuf(struct ctl_conn *c, size_t len)
{
        socklen_t sl = sizeof(c->sndbuf);
        int want;

        if (c->sndbuf == 0 && getsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &c->sndbuf, &sl) < 0)
                c->sndbuf = 0;
        if (c->sndbuf > 0 && len + 1024 < (size_t)c->sndbuf)
                return;
        want = (int)(len + 64 * 1024);
        if (setsockopt(c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
                (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
        sl = sizeof(c->sndbuf);
        if (getsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &c->sndbuf, &sl) < 0)
                c->sndbuf = 0;
}

static int send_message(int fd, const char *buf, size_t len)
{
        ssize_t n;

        do
                n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();
        if ((size_t)n != len)
                return -EIO;             /* SEQPACKET sends whole messages or nothing */
        return 0;
}

/* Sends (or queues) text, which it takes. */
static void conn_send(struct ctl_conn *c, char *text)
{
        _cleanup_free_ char *t = text;
        struct out_msg *m;
        size_t len;
        int r;

        if (!t || c->dead)
                return;
        len = strlen(t);
        if (len > 60 * 1024)
                conn_fit_sndbuf(c, len);

        if (list_is_empty(&c->out)) {
                r = send_message(c->fd, t, len);
                if (r == 0)
                        return;
                if (r != -EAGAIN) {
                        log_debug_errno(r, "Control connection %" PRIu64 ": cannot send: %m", c->id);
                        conn_schedule_close(c);
                        return;
                }
        }

        if (c->n_out >= CTL_MAX_QUEUED_MESSAGES || c->out_bytes + len > CTL_MAX_QUEUED_BYTES) {
                log_warning("Control connection %" PRIu64 " (pid %d) does not read its replies; disconnecting it.",
                            c->id, (int)c->cred.pid);
                conn_schedule_close(c);
                return;
        }
        m = malloc(sizeof(*m));
        if (!m) {
                log_error("Out of memory queueing a reply; disconnecting control connection %" PRIu64 ".", c->id);
                conn_schedule_close(c);
                return;
        }
        *m = (struct out_msg){ .text = TAKE_PTR(t), .len = len };
        list_append(&c->out, &m->link);
        c->n_out++;
        c->out_bytes += len;
        conn_update_events(c);
}

static void out_msg_pop(struct ctl_conn *c)
{
        struct out_msg *m = list_first_entry(&c->out, struct out_msg, link);

        list_unlink(&m->link);
        c->n_out--;
        c->out_bytes -= m->len;
        free(m->text);
        free(m);
}

static int conn_flush(struct ctl_conn *c)
{
        struct out_msg *m;

        while ((m = list_first_entry(&c->out, struct out_msg, link))) {
                int r = send_message(c->fd, m->text, m->len);
                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                out_msg_pop(c);
        }
        return 0;
}

/* Formats and sends an error that answers no particular call (id may be 0). */
static void conn_send_error(struct ctl_conn *c, uint32_t id, int error, const char *fmt, ...) _printf_(4, 5);
static void conn_send_error(struct ctl_conn *c, uint32_t id, int error, const char *fmt, ...)
{
        char msg[PROTO_MAX_ERROR_MESSAGE];
        char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (proto_format_error(id, error, msg, &text) < 0) {
                conn_schedule_close(c);
                return;
        }
        conn_send(c, text);
}

/* --- calls -------------------------------------------------------------- */

static void call_unlink(struct ctl_call *call)
{
        if (call->conn) {
                list_unlink(&call->link);
                call->conn->n_calls--;
                call->conn = NULL;
        } else if (call->orphan) {
                list_unlink(&call->link);
                call->orphan = false;
        }
}

static void call_free(struct ctl_call *call)
{
        if (!call)
                return;
        call_unlink(call);
        close_fds(call->fds, call->n_fds);
        free(call);
}

/* Sends text (taken; NULL sends nothing) and frees the call unless the
 * dispatcher or the canceller is still using it. */
static void call_complete(struct ctl_call *call, char *text)
{
        struct ctl_conn *c = call->conn;

        if (call->completed) {
                log_error("Control call %" PRIu32 " completed twice; ignoring the second reply.", call->id);
                free(text);
                return;
        }
        call->completed = true;
        if (c && !c->dead && text)
                conn_send(c, text);
        else
                free(text);
        /* Closes the fds nobody took now rather than when the call is freed. */
        close_fds(call->fds, call->n_fds);
        if (call->in_handler || call->cancelling)
                return;
        call_free(call);
}

static bool call_client_gone(const struct ctl_call *call)
{
        return !call->conn || call->conn->dead;
}

void ctl_call_reply(struct ctl_call *call, struct json_object *result)
{
        char *text = NULL;
        int r;

        if (!call) {
                if (result)
                        json_object_put(result);
                return;
        }
        if (call_client_gone(call) || call->completed) {
                if (result)
                        json_object_put(result);
                call_complete(call, NULL);
                return;
        }
        r = proto_format_reply(call->id, result, &text);
        if (r == -EMSGSIZE) {
                log_warning("Reply to control call %" PRIu32 " exceeds %d bytes; sending an error instead.",
                            call->id, PROTO_MAX_REPLY);
                r = proto_format_error(call->id, -EMSGSIZE, "The reply is too large for the control protocol.",
                                       &text);
        } else if (r == -EINVAL) {
                log_error("Reply to control call %" PRIu32 " is not a JSON object; sending an error instead.",
                          call->id);
                r = proto_format_error(call->id, -EIO, "Internal error: malformed reply.", &text);
        }
        if (r < 0) {
                /* The client would wait for ever: better drop it. */
                log_error_errno(r, "Cannot format a control reply: %m.");
                conn_schedule_close(call->conn);
                text = NULL;
        }
        call_complete(call, text);
}

static void call_verror(struct ctl_call *call, int error, const char *fmt, va_list ap) _printf_(3, 0);
static void call_verror(struct ctl_call *call, int error, const char *fmt, va_list ap)
{
        char msg[PROTO_MAX_ERROR_MESSAGE];
        char *text = NULL;

        if (call_client_gone(call) || call->completed) {
                call_complete(call, NULL);
                return;
        }
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (proto_format_error(call->id, error, msg, &text) < 0) {
                conn_schedule_close(call->conn);
                text = NULL;
        }
        call_complete(call, text);
}

void ctl_call_error(struct ctl_call *call, int error, const char *fmt, ...)
{
        assert(fmt);
        va_list ap;

        if (!call)
                return;
        va_start(ap, fmt);
        call_verror(call, error, fmt, ap);
        va_end(ap);
}

size_t ctl_call_n_fds(const struct ctl_call *call)
{
        return call ? call->n_fds : 0;
}

int ctl_call_take_fd(struct ctl_call *call, size_t idx)
{
        if (!call || idx >= call->n_fds || call->fds[idx] < 0)
                return -EBADF;
        return TAKE_FD(call->fds[idx]);
}

uint64_t ctl_call_connection(const struct ctl_call *call)
{
        return call ? call->conn_id : 0;
}

pid_t ctl_call_peer_pid(const struct ctl_call *call)
{
        return call ? call->pid : 0;
}

uid_t ctl_call_peer_uid(const struct ctl_call *call)
{
        return call ? call->uid : (uid_t)-1;
}

void ctl_call_set_cancel(struct ctl_call *call, void (*cancel)(struct ctl_call *call, void *data), void *data)
{
        if (!call)
                return;
        call->cancel = cancel;
        call->cancel_data = cancel ? data : NULL;
}

/* --- connections -------------------------------------------------------- */

static void conn_free(struct ctl_conn *c)
{
        struct ctl_server *s;
        struct ctl_call *call;
        uint64_t id;

        if (!c)
                return;
        s = c->server;
        id = c->id;
        c->dead = true;
        c->io = sd_event_source_disable_unref(c->io);
        c->defer_close = sd_event_source_disable_unref(c->defer_close);

        /* Pop one at a time: a cancel callback may complete other calls. */
        while ((call = list_first_entry(&c->calls, struct ctl_call, link))) {
                call_unlink(call);
                if (call->cancel) {
                        call->cancelling = true;
                        call->cancel(call, call->cancel_data);
                        call_free(call);
                } else {
                        call->orphan = true;
                        list_prepend(&s->orphans, &call->link);
                        close_fds(call->fds, call->n_fds);
                }
        }
        while (!list_is_empty(&c->out))
                out_msg_pop(c);
        c->fd = close_drained(c->fd);
        list_unlink(&c->link);
        s->n_conns--;
        free(c);

        if (s->on_disconnect)
                s->on_disconnect(id, s->userdata);
}

static int on_defer_close(sd_event_source *src, void *userdata)
{
        conn_free(userdata);
        return 0;
}

static void conn_schedule_close(struct ctl_conn *c)
{
        int r;

        if (!c || c->defer_close)
                return;
        c->dead = true;
        (void)sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
        r = sd_event_add_defer(c->server->event, &c->defer_close, on_defer_close, c);
        if (r < 0) {
                /* Without a defer source, the hang-up will never be noticed:
                 * shut the socket so the peer at least sees EOF. */
                log_error_errno(r, "Cannot schedule closing control connection %" PRIu64 ": %s", c->id,
                                strerror(-r));
                (void)shutdown(c->fd, SHUT_RDWR);
        }
}

static void conn_update_events(struct ctl_conn *c)
{
        uint32_t events = 0;

        if (c->dead || !c->io)
                return;
        /* While replies wait, read no new requests: a client that does not
         * read slows itself down instead of growing our queue. */
        if (!c->closing && list_is_empty(&c->out))
                events |= EPOLLIN;
        if (!list_is_empty(&c->out))
                events |= EPOLLOUT;
        if (events == 0) {
                conn_schedule_close(c);
                return;
        }
        (void)sd_event_source_set_io_events(c->io, events);
}

static const struct ctl_command *find_command(const struct ctl_server *s, const char *name)
{
        for (size_t i = 0; i < s->n_commands; i++)
                if (s->commands[i].name && strcmp(s->commands[i].name, name) == 0)
                        return &s->commands[i];
        return NULL;
}

static void conn_dispatch(struct ctl_conn *c, const char *buf, size_t len, int *fds, size_t n_fds)
{
        struct ctl_server *s = c->server;
        struct proto_request req = { 0 };
        const struct ctl_command *cmd;
        struct ctl_call *call;
        char err[256];
        uint32_t id = 0;
        int r;

        r = proto_parse_request(buf, len, &req, &id, err, sizeof(err));
        if (r < 0) {
                close_fds(fds, n_fds);
                conn_send_error(c, id, r, "Malformed request: %s.", err);
                return;
        }

        cmd = find_command(s, req.command);
        if (!cmd) {
                close_fds(fds, n_fds);
                conn_send_error(c, req.id, -EOPNOTSUPP, "Unknown command \"%s\".", req.command);
                goto out;
        }
        if (n_fds > cmd->max_fds) {
                close_fds(fds, n_fds);
                conn_send_error(c, req.id, -EINVAL,
                                "Command \"%s\" takes at most %u file descriptors; the request carried %zu.",
                                cmd->name, cmd->max_fds, n_fds);
                goto out;
        }
        if (c->n_calls >= CTL_MAX_PENDING_CALLS) {
                close_fds(fds, n_fds);
                conn_send_error(c, req.id, -EAGAIN,
                                "Too many calls pending on this connection (at most %d); try again later.",
                                CTL_MAX_PENDING_CALLS);
                goto out;
        }

        call = calloc(1, sizeof(*call));
        if (!call) {
                close_fds(fds, n_fds);
                conn_send_error(c, req.id, -ENOMEM, "Out of memory.");
                goto out;
        }
        *call = (struct ctl_call){
                .server = s,
                .conn = c,
                .id = req.id,
                .conn_id = c->id,
                .pid = c->cred.pid,
                .uid = c->cred.uid,
                .n_fds = n_fds,
                .in_handler = true,
        };
        memcpy(call->fds, fds, n_fds * sizeof(int));
        list_prepend(&c->calls, &call->link);
        c->n_calls++;

        r = cmd->handler(call, req.args, s->userdata);

        call->in_handler = false;
        if (call->completed)
                call_free(call);
        else if (r < 0)
                ctl_call_error(call, r, "command \"%s\" failed: %s", cmd->name, strerror(-r));
        /* Otherwise the call stays pending until the handler completes it. */
out:
        proto_request_done(&req);
}

/* Reads one message; returns 1 if one was handled, 0 when there is none
 * now, -ECONNRESET or another -errno when the connection must close. */
static int conn_read_one(struct ctl_conn *c)
{
        struct ctl_server *s = c->server;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
        } control;
        struct iovec iov = { .iov_base = s->buf, .iov_len = PROTO_MAX_MESSAGE };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        int fds[PROTO_MAX_FDS];
        size_t n_fds = 0;
        ssize_t n;

        n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                        return 0;
                return negative_errno();
        }

        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const int *p = (const int *)CMSG_DATA(cm);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, p + i, sizeof(int));
                        if (n_fds < PROTO_MAX_FDS)
                                fds[n_fds++] = fd;
                        else
                                safe_close(fd);
                }
        }

        if (n == 0 && !(mh.msg_flags & MSG_TRUNC)) {
                close_fds(fds, n_fds);
                return -ECONNRESET;     /* EOF; SEQPACKET has no empty messages worth keeping */
        }
        if (mh.msg_flags & MSG_TRUNC) {
                close_fds(fds, n_fds);
                log_warning("Control connection %" PRIu64 " (pid %d) sent a message over %d bytes; closing it.",
                            c->id, (int)c->cred.pid, PROTO_MAX_MESSAGE);
                conn_send_error(c, 0, -EMSGSIZE, "Message too long: at most %d bytes; closing the connection.",
                                PROTO_MAX_MESSAGE);
                c->closing = true;
                conn_update_events(c);
                return 1;
        }
        if (mh.msg_flags & MSG_CTRUNC) {
                struct proto_request req = { 0 };
                uint32_t id = 0;

                /* The kernel already closed the fds that did not fit. */
                close_fds(fds, n_fds);
                /* Only for the id, so the client can tell which call failed. */
                if (proto_parse_request(s->buf, (size_t)n, &req, &id, NULL, 0) == 0)
                        proto_request_done(&req);
                conn_send_error(c, id, -EINVAL, "Too many file descriptors: a request carries at most %d.",
                                PROTO_MAX_FDS);
                return 1;
        }
        conn_dispatch(c, s->buf, (size_t)n, fds, n_fds);
        return 1;
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct ctl_conn *c = userdata;
        int r;

        /* The peer has gone: requests it left unread are not worth starting,
         * and the pending ones are cancelled by conn_free(). */
        if (revents & (EPOLLHUP | EPOLLERR)) {
                conn_free(c);
                return 0;
        }

        if (revents & EPOLLOUT) {
                r = conn_flush(c);
                if (r < 0) {
                        conn_free(c);
                        return 0;
                }
        }

        if ((revents & EPOLLIN) && !c->closing && list_is_empty(&c->out)) {
                for (int i = 0; i < CTL_MESSAGES_PER_WAKEUP; i++) {
                        r = conn_read_one(c);
                        if (r < 0) {
                                conn_free(c);
                                return 0;
                        }
                        if (r == 0 || c->dead || c->closing || !list_is_empty(&c->out))
                                break;
                }
        }

        if (!c->dead) {
                if (c->closing && list_is_empty(&c->out)) {
                        conn_free(c);
                        return 0;
                }
                conn_update_events(c);
        }
        return 0;
}

/* --- peers -------------------------------------------------------------- */

static bool groups_contain(const gid_t *groups, size_t n, gid_t gid)
{
        for (size_t i = 0; i < n; i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

/* Fallback for kernels without SO_PEERGROUPS (before 4.13): the groups the
 * process has now, which is the best that can be had. */
static int proc_groups_contain(pid_t pid, gid_t gid)
{
        _cleanup_free_ char *line = NULL;
        char path[64];
        size_t sz = 0;
        FILE *f;
        int r = 0;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        while (getline(&line, &sz, f) > 0) {
                char *p, *end;
                if (strncmp(line, "Groups:", 7) != 0)
                        continue;
                p = line + 7;
                for (;;) {
                        unsigned long v;
                        errno = 0;
                        v = strtoul(p, &end, 10);
                        if (end == p || errno)
                                break;
                        if ((gid_t)v == gid) {
                                r = 1;
                                break;
                        }
                        p = end;
                }
                break;
        }
        fclose(f);
        return r;
}

static bool peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = 64 * sizeof(gid_t);

        if (cred->gid == gid)
                return true;
        for (int attempt = 0; attempt < 4; attempt++) {
                gid_t *g = realloc(groups, len ? len : sizeof(gid_t));
                if (!g)
                        return false;
                groups = g;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
                        return groups_contain(groups, len / sizeof(gid_t), gid);
                if (errno == ERANGE)
                        continue;       /* len now holds the size needed */
                if (errno == ENOPROTOOPT)
                        return proc_groups_contain(cred->pid, gid) > 0;
                return false;
        }
        return false;
}

/* Closing a socket with unread messages makes the peer's next recv() fail
 * with ECONNRESET before it sees our last reply (the reason we close); read
 * what is there first.  Bounded: a flooding peer is not worth more.  fds in
 * those messages are closed by the kernel, since we take no control data. */
static int close_drained(int fd)
{
        char c;

        for (int i = 0; i < 64; i++)
                if (recv(fd, &c, 1, MSG_DONTWAIT | MSG_TRUNC) <= 0)
                        break;
        return safe_close(fd);
}

/* Answers a connection we will not serve, and closes it. */
static void refuse(int fd, int error, const char *message)
{
        _cleanup_free_ char *text = NULL;

        if (proto_format_error(0, error, message, &text) == 0)
                (void)send_message(fd, text, strlen(text));
        close_drained(fd);
}

static void server_accept_one(struct ctl_server *s, int fd)
{
        struct ucred cred = { 0 };
        socklen_t sl = sizeof(cred);
        struct ctl_conn *c;
        char msg[256];
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
                log_warning_errno(negative_errno(), "Cannot read control peer credentials: %m");
                refuse(fd, -EPERM, "Permission denied: the peer's credentials cannot be read.");
                return;
        }
        if (cred.uid != 0 && !(s->allowed_gid != (gid_t)-1 && peer_in_group(fd, &cred, s->allowed_gid))) {
                if (s->allowed_gid != (gid_t)-1)
                        snprintf(msg, sizeof(msg),
                                 "Permission denied: uid %u is not root and not in group %u, which may use xen-loopd.",
                                 (unsigned)cred.uid, (unsigned)s->allowed_gid);
                else
                        snprintf(msg, sizeof(msg), "Permission denied: only root may use xen-loopd (peer uid %u).",
                                 (unsigned)cred.uid);
                log_notice("Refused control connection from pid %d uid %u.", (int)cred.pid, (unsigned)cred.uid);
                refuse(fd, -EPERM, msg);
                return;
        }
        if (s->n_conns >= CTL_MAX_CONNECTIONS) {
                log_warning("Refused control connection from pid %d: %d connections already open.", (int)cred.pid,
                            CTL_MAX_CONNECTIONS);
                snprintf(msg, sizeof(msg), "xen-loopd has too many control connections (%d); try again later.",
                         CTL_MAX_CONNECTIONS);
                refuse(fd, -EAGAIN, msg);
                return;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                refuse(fd, -ENOMEM, "xen-loopd is out of memory.");
                return;
        }
        *c = (struct ctl_conn){ .server = s, .id = s->next_conn_id++, .fd = fd, .cred = cred };
        list_init(&c->calls);
        list_init(&c->out);
        r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_conn_io, c);
        if (r < 0) {
                log_error_errno(r, "Cannot watch a control connection: %m.");
                free(c);
                refuse(fd, r, "xen-loopd cannot take this connection now.");
                return;
        }
        (void)sd_event_source_set_description(c->io, "control-connection");
        list_prepend(&s->conns, &c->link);
        s->n_conns++;
        log_debug("Control connection %" PRIu64 " from pid %d uid %u.", c->id, (int)cred.pid, (unsigned)cred.uid);
}

static int on_accept_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct ctl_server *s = userdata;

        s->accept_timer = sd_event_source_disable_unref(s->accept_timer);
        (void)sd_event_source_set_enabled(s->listen_source, SD_EVENT_ON);
        return 0;
}

/* Out of fds or memory: stop accepting for a moment rather than spin. */
static void server_pause_accept(struct ctl_server *s)
{
        uint64_t now;

        if (s->accept_timer)
                return;
        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0 ||
            sd_event_add_time(s->event, &s->accept_timer, CLOCK_MONOTONIC, now + CTL_ACCEPT_PAUSE_USEC, 0,
                              on_accept_timer, s) < 0)
                return;
        (void)sd_event_source_set_enabled(s->listen_source, SD_EVENT_OFF);
}

static int on_listen_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct ctl_server *s = userdata;

        for (int i = 0; i < 64; i++) {
                int cfd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        log_warning_errno(negative_errno(), "Cannot accept a control connection: %m");
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                                server_pause_accept(s);
                        break;
                }
                server_accept_one(s, cfd);
        }
        return 0;
}

/* --- the listening socket ---------------------------------------------- */

static int mkdir_parents(const char *path, mode_t mode)
{
        _cleanup_free_ char *p = strdup(path);
        char *slash;

        if (!p)
                return -ENOMEM;
        slash = strrchr(p, '/');
        if (!slash || slash == p)
                return 0;
        *slash = '\0';
        for (char *q = p + 1; *q; q++) {
                if (*q != '/')
                        continue;
                *q = '\0';
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *q = '/';
        }
        if (mkdir(p, mode) < 0) {
                if (errno != EEXIST)
                        return negative_errno();
                return 0;
        }
        /* Exactly mode, whatever the umask. */
        if (chmod(p, mode) < 0)
                return negative_errno();
        return 0;
}

static int sockaddr_for(const char *path, struct sockaddr_un *sa, socklen_t *sl)
{
        size_t len = strlen(path);

        if (len == 0 || len >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
        memcpy(sa->sun_path, path, len);
        *sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
}

/* Removes a socket at path that nobody answers on; -EADDRINUSE when a server
 * is listening there, -EEXIST when it is not a socket. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa, socklen_t sl)
{
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (const struct sockaddr *)sa, sl) == 0)
                return -EADDRINUSE;
        if (errno == EAGAIN || errno == EPROTOTYPE)
                return -EADDRINUSE;     /* a full backlog, or another kind of socket: someone is there */
        if (errno != ECONNREFUSED && errno != ENOENT)
                return negative_errno();
        if (unlink(path) < 0 && errno != ENOENT)
                return negative_errno();
        log_info("Removed stale control socket %s.", path);
        return 0;
}

static int server_bind(struct ctl_server *s)
{
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa;
        socklen_t sl;
        mode_t old_umask;
        int r;

        r = sockaddr_for(s->path, &sa, &sl);
        if (r < 0)
                return log_error_errno(r, "Control socket path %s is too long.", s->path);
        r = mkdir_parents(s->path, 0755);
        if (r < 0)
                return log_error_errno(r, "Cannot create the directory of %s: %m.", s->path);
        r = remove_stale_socket(s->path, &sa, sl);
        if (r == -EADDRINUSE)
                return log_error_errno(r, "Another xen-loopd is listening on %s.", s->path);
        if (r == -EEXIST)
                return log_error_errno(r, "%s exists and is not a socket; not removing it.", s->path);
        if (r < 0)
                return log_error_errno(r, "Cannot check %s: %m.", s->path);

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot create the control socket: %m");
        /* The socket is born 0600: there is no moment at which others could
         * connect. */
        old_umask = umask(0177);
        r = bind(fd, (struct sockaddr *)&sa, sl) < 0 ? negative_errno() : 0;
        umask(old_umask);
        if (r < 0)
                return log_error_errno(r, "Cannot bind the control socket to %s: %m.", s->path);
        if (s->allowed_gid != (gid_t)-1) {
                if (chown(s->path, (uid_t)-1, s->allowed_gid) < 0 || chmod(s->path, 0660) < 0) {
                        r = negative_errno();
                        (void)unlink(s->path);
                        return log_error_errno(r, "Cannot give group %u access to %s: %m.",
                                               (unsigned)s->allowed_gid, s->path);
                }
        }
        if (listen(fd, SOMAXCONN) < 0) {
                r = negative_errno();
                (void)unlink(s->path);
                return log_error_errno(r, "Cannot listen on %s: %m.", s->path);
        }
        s->listen_fd = TAKE_FD(fd);
        s->bound = true;
        return 0;
}

static int server_adopt(struct ctl_server *s, int fd)
{
        int flags;

        if (sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) <= 0)
                return log_error_errno(-ENOTSOCK, "The inherited control socket (fd %d) is not a listening "
                                                  "AF_UNIX SOCK_SEQPACKET socket.", fd);
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(negative_errno(), "Cannot make the control socket non-blocking: %m");
        flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
                return log_error_errno(negative_errno(), "Cannot set close-on-exec on the control socket: %m");
        s->listen_fd = fd;
        return 0;
}

void ctl_server_free(struct ctl_server *s, bool unlink_socket)
{
        if (!s)
                return;
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        s->accept_timer = sd_event_source_disable_unref(s->accept_timer);
        while (!list_is_empty(&s->conns))
                conn_free(list_first_entry(&s->conns, struct ctl_conn, link));
        /* Handlers that kept orphaned calls must not use them after this. */
        while (!list_is_empty(&s->orphans))
                call_free(list_first_entry(&s->orphans, struct ctl_call, link));
        /* An inherited socket's path belongs to whoever made it (systemd). */
        if (unlink_socket && s->bound && s->path)
                (void)unlink(s->path);
        s->listen_fd = safe_close(s->listen_fd);
        free(s->buf);
        free(s->path);
        sd_event_unref(s->event);
        free(s);
}

int ctl_server_new(sd_event *ev, const struct ctl_server_config *cfg, struct ctl_server **ret)
{
        struct ctl_server *s;
        int r;

        if (!ev || !cfg || !ret || (!cfg->path && cfg->listen_fd < 0) || (cfg->n_commands && !cfg->commands))
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (struct ctl_server){
                .event = sd_event_ref(ev),
                .listen_fd = -1,
                .allowed_gid = cfg->allowed_gid,
                .commands = cfg->commands,
                .n_commands = cfg->n_commands,
                .userdata = cfg->userdata,
                .on_disconnect = cfg->on_disconnect,
                .next_conn_id = 1,
        };
        list_init(&s->conns);
        list_init(&s->orphans);
        s->buf = malloc(PROTO_MAX_MESSAGE);
        if (!s->buf || (cfg->path && !(s->path = strdup(cfg->path)))) {
                r = -ENOMEM;
                goto fail;
        }

        if (cfg->listen_fd >= 0)
                r = server_adopt(s, cfg->listen_fd);
        else
                r = server_bind(s);
        if (r < 0)
                goto fail;

        r = sd_event_add_io(ev, &s->listen_source, s->listen_fd, EPOLLIN, on_listen_io, s);
        if (r < 0)
                goto fail_listen;
        (void)sd_event_source_set_description(s->listen_source, "control-listen");
        *ret = s;
        return 0;

fail_listen:
        if (cfg->listen_fd < 0) {
                (void)unlink(s->path);
                safe_close(s->listen_fd);
        }
fail:
        /* An inherited fd stays the caller's on failure. */
        free(s->buf);
        free(s->path);
        sd_event_unref(s->event);
        free(s);
        return r;
}

size_t ctl_server_n_connections(const struct ctl_server *s)
{
        return s ? s->n_conns : 0;
}
