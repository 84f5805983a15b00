/* ctl-client.c — the client side of the control protocol (see ctl-client.h). */
#include "ctl-client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "macro.h"
#include "proto.h"
#include "time-util.h"

struct ctl_client {
        int fd;
        char *path;
        uint32_t next_id;
        bool broken;             /* a call timed out or the stream is lost */
        char *buf;               /* PROTO_MAX_REPLY + 1 */
};

static int fail(struct ctl_error *err, int error, bool remote, const char *fmt, ...) _printf_(4, 5);
static int fail(struct ctl_error *err, int error, bool remote, const char *fmt, ...)
{
        va_list ap;

        if (error > 0)
                error = -error;
        if (error == 0)
                error = -EIO;
        if (err) {
                err->error = error;
                err->remote = remote;
                va_start(ap, fmt);
                vsnprintf(err->message, sizeof(err->message), fmt, ap);
                va_end(ap);
        }
        return error;
}

/* Waits for events on fd until deadline (UINT64_MAX: for ever).
 * Returns the revents, or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int timeout_ms = -1, r;

                if (deadline != UINT64_MAX) {
                        uint64_t n = now_usec();
                        if (n >= deadline)
                                return -ETIMEDOUT;
                        uint64_t ms = (deadline - n + 999) / 1000;
                        timeout_ms = ms > INT32_MAX ? INT32_MAX : (int)ms;
                }
                r = poll(&p, 1, timeout_ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r > 0)
                        return p.revents;
        }
}

static uint64_t deadline_for(uint64_t timeout_usec)
{
        if (timeout_usec == UINT64_MAX)
                return UINT64_MAX;
        return now_usec() + timeout_usec;
}

void ctl_client_free(struct ctl_client *c)
{
        if (!c)
                return;
        safe_close(c->fd);
        free(c->buf);
        free(c->path);
        free(c);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct ctl_client *, ctl_client_free);

int ctl_client_connect(const char *path, uint64_t timeout_usec, struct ctl_client **ret, struct ctl_error *err)
{
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_(ctl_client_freep) struct ctl_client *c = NULL;
        uint64_t deadline;
        socklen_t sl;
        size_t len;

        if (!path || !ret)
                return fail(err, -EINVAL, false, "No control socket path given.");
        len = strlen(path);
        if (len == 0 || len >= sizeof(sa.sun_path))
                return fail(err, -ENAMETOOLONG, false, "Invalid control socket path \"%s\".", path);
        memcpy(sa.sun_path, path, len);
        sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);

        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return fail(err, negative_errno(), false, "Cannot create a socket: %s.", strerror(errno));

        deadline = deadline_for(timeout_usec);
        while (connect(fd, (struct sockaddr *)&sa, sl) < 0) {
                int e = errno;
                if (e == EINTR)
                        continue;
                if (e == EAGAIN) {
                        /* The daemon's backlog is full: it is busy, not gone. */
                        struct timespec ts = { 0, 10 * 1000 * 1000 };
                        if (now_usec() >= deadline)
                                return fail(err, -ETIMEDOUT, false,
                                            "xen-loopd is too busy: timed out connecting to %s.", path);
                        nanosleep(&ts, NULL);
                        continue;
                }
                if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
                        return fail(err, -e, false, "xen-loopd is not running (no control socket at %s).", path);
                if (e == EACCES || e == EPERM)
                        return fail(err, -e, false, "Permission denied: cannot connect to the xen-loopd control socket %s.",
                                    path);
                return fail(err, -e, false, "Cannot connect to %s: %s.", path, strerror(e));
        }

        c = calloc(1, sizeof(*c));
        if (c) {
                c->fd = -1;
                c->buf = malloc(PROTO_MAX_REPLY + 1);
                c->path = strdup(path);
        }
        if (!c || !c->buf || !c->path)
                return fail(err, -ENOMEM, false, "Out of memory.");
        c->fd = TAKE_FD(fd);
        c->next_id = 1;
        *ret = TAKE_PTR(c);
        return 0;
}

int ctl_client_fd(const struct ctl_client *c)
{
        return c ? c->fd : -EBADF;
}

static int send_request(struct ctl_client *c, const char *text, const int *fds, size_t n_fds, uint64_t deadline)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
        } control;
        struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                struct cmsghdr *cm;

                memset(&control, 0, sizeof(control));
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }

        for (;;) {
                int r;

                if (sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return negative_errno();
                r = wait_fd(c->fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
}

/* Receives one reply, or a negative errno (-ECONNRESET at EOF). */
static int recv_reply(struct ctl_client *c, uint64_t deadline, struct proto_reply *rep)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * PROTO_MAX_FDS)];
        } control;

        bool reset = false;

        for (;;) {
                struct iovec iov = { .iov_base = c->buf, .iov_len = PROTO_MAX_REPLY + 1 };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                ssize_t n;
                int r;

                n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        /* The daemon closed with our request unread; the
                         * reply it left (why it closed) may still be
                         * queued behind the reported reset. */
                        if (errno == ECONNRESET && !reset) {
                                reset = true;
                                continue;
                        }
                        if (errno != EAGAIN && errno != EWOULDBLOCK)
                                return negative_errno();
                        if (reset)
                                return -ECONNRESET;
                        r = wait_fd(c->fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                /* Replies carry no fds; close any that came. */
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                                for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
                                        int fd;
                                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                                        safe_close(fd);
                                }
                if (n == 0)
                        return -ECONNRESET;
                if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > PROTO_MAX_REPLY)
                        return -EMSGSIZE;
                return proto_parse_reply(c->buf, (size_t)n, rep);
        }
}

/* Whether a call may be made at all. */
static int call_check(const struct ctl_client *c, const char *command, const int *fds, size_t n_fds,
                      struct ctl_error *err)
{
        if (!c || !command || (n_fds > 0 && !fds))
                return fail(err, -EINVAL, false, "Invalid call.");
        if (n_fds > PROTO_MAX_FDS)
                return fail(err, -EINVAL, false, "A request carries at most %d file descriptors.", PROTO_MAX_FDS);
        if (c->broken)
                return fail(err, -ENOTCONN, false, "The connection to xen-loopd was lost.");
        return 0;
}

/* A failure to receive the reply to command; the connection is broken. */
static int recv_failed(struct ctl_client *c, const char *command, int r, int send_error, struct ctl_error *err)
{
        c->broken = true;
        switch (r) {
        case -ETIMEDOUT:
                return fail(err, r, false, "xen-loopd did not answer \"%s\" in time.", command);
        case -ECONNRESET:
        case -EPIPE:
                if (send_error < 0 && send_error != -EPIPE && send_error != -ECONNRESET)
                        return fail(err, send_error, false, "Cannot send the \"%s\" request: %s.", command,
                                    strerror(-send_error));
                return fail(err, -ECONNRESET, false, "xen-loopd closed the connection before answering \"%s\".",
                            command);
        case -EMSGSIZE:
                return fail(err, r, false, "The reply to \"%s\" is too large.", command);
        case -EPROTONOSUPPORT:
                return fail(err, r, false, "xen-loopd speaks another version of the control protocol.");
        default:
                return fail(err, r, false, "Malformed reply from xen-loopd: %s.", strerror(-r));
        }
}

/* Receives until the reply to call id comes (into rep), skipping late
 * replies to earlier calls.  After a failed send (send_error), only what
 * the daemon left already is read. */
static int wait_reply(struct ctl_client *c, const char *command, uint32_t id, uint64_t deadline, int send_error,
                      struct proto_reply *rep, struct ctl_error *err)
{
        int r;

        for (;;) {
                r = recv_reply(c, send_error < 0 ? now_usec() : deadline, rep);
                if (r == -ETIMEDOUT && send_error < 0)
                        r = -ECONNRESET;
                if (r < 0)
                        return recv_failed(c, command, r, send_error, err);
                /* id 0 answers no request: the connection itself failed
                 * (refused peer, too many clients, a message we mangled). */
                if (rep->id == 0 && id != 0 && !rep->ok) {
                        c->broken = true;
                        r = fail(err, rep->error, false, "%s", rep->message);
                        proto_reply_done(rep);
                        return r;
                }
                if (rep->id == id)
                        return 0;
                proto_reply_done(rep);    /* a late reply to an earlier call */
        }
}

int ctl_client_call(struct ctl_client *c, const char *command, struct json_object *args, const int *fds,
                    size_t n_fds, uint64_t timeout_usec, struct json_object **ret_result, struct ctl_error *err)
{
        _cleanup_free_ char *text = NULL;
        struct proto_reply rep = { 0 };
        uint64_t deadline;
        uint32_t id;
        int r, send_error;

        if (ret_result)
                *ret_result = NULL;
        r = call_check(c, command, fds, n_fds, err);
        if (r < 0) {
                json_object_put(args);
                return r;
        }

        id = c->next_id++;
        if (c->next_id == 0)
                c->next_id = 1;          /* 0 is for errors that answer no request */
        r = proto_format_request(id, command, args, &text);
        if (r < 0)
                return fail(err, r, false, "Cannot build the \"%s\" request: %s.", command, strerror(-r));

        deadline = deadline_for(timeout_usec);
        send_error = send_request(c, text, fds, n_fds, deadline);
        if (send_error == -ETIMEDOUT) {
                c->broken = true;
                return fail(err, -ETIMEDOUT, false, "xen-loopd did not accept the \"%s\" request in time.", command);
        }
        /* On EPIPE/ECONNRESET the daemon may have left a reason (e.g. a
         * refused peer): read it before giving up. */
        r = wait_reply(c, command, id, deadline, send_error, &rep, err);
        if (r < 0)
                return r;
        if (!rep.ok) {
                r = fail(err, rep.error, true, "%s", rep.message);
                proto_reply_done(&rep);
                return r;
        }
        if (ret_result)
                *ret_result = json_object_get(rep.result);
        proto_reply_done(&rep);
        return 0;
}
