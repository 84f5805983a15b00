#include "xs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

struct watch {
        char *path, *token;
};

struct xs_conn {
        sd_event *event;
        struct xs_handle *h;
        sd_event_source *io, *timer;
        const struct xs_conn_ops *ops;
        void *userdata;
        struct watch *watches;
        size_t n_watches;
        unsigned retry_ms;
        bool was_connected;
};

/* libxenstore does not wake its watch fd when xenstored goes away; its
 * reader thread dies and later calls fail.  A cheap local check at this
 * period notices that even when the daemon is idle. */
#define LIVENESS_USEC (500 * 1000ULL)
#define RETRY_MIN_MS 50u
#define RETRY_MAX_MS 2000u

static int connect_now(struct xs_conn *x);
static void disconnect(struct xs_conn *x);

static bool is_connection_error(int e)
{
        /* EINVAL is left out: xenstored answers it for a bad path, too. */
        return e == EBADF || e == EPIPE || e == ECONNRESET || e == ENOTCONN ||
               e == ECONNREFUSED || e == EIO;
}

/* Maps a failed libxenstore call's errno; a dead connection is torn down
 * here so that reconnection starts. */
static int fail(struct xs_conn *x)
{
        int e = errno ? errno : EIO;

        if (x->h && is_connection_error(e)) {
                log_warning("Lost the connection to xenstored (%s); reconnecting.", strerror(e));
                disconnect(x);
                return -ENOTCONN;
        }
        return -e;
}

static int arm_timer(struct xs_conn *x, uint64_t usec)
{
        uint64_t now;

        sd_event_now(x->event, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(x->timer, now + usec);
        return sd_event_source_set_enabled(x->timer, SD_EVENT_ON);
}

static void disconnect(struct xs_conn *x)
{
        if (!x->h)
                return;
        x->io = sd_event_source_disable_unref(x->io);
        xs_close(x->h);
        x->h = NULL;
        x->retry_ms = RETRY_MIN_MS;
        arm_timer(x, x->retry_ms * 1000ULL);
        if (x->ops->state)
                x->ops->state(x, false, x->userdata);
}

static int on_watch_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct xs_conn *x = userdata;
        char **w;

        /* Dispatch what is queued; a callback may drop the connection. */
        for (;;) {
                if (!x->h)
                        return 0;
                errno = EAGAIN;
                w = xs_check_watch(x->h);
                if (!w)
                        break;
                x->ops->watch(x, w[XS_WATCH_PATH], w[XS_WATCH_TOKEN], x->userdata);
                free(w);
        }
        /* xs_check_watch fails with anything but EAGAIN only once its
         * reader thread has died with the connection. */
        if (errno != EAGAIN) {
                log_warning("Lost the connection to xenstored; reconnecting.");
                disconnect(x);
        }
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct xs_conn *x = userdata;

        if (x->h) {
                on_watch_fd(NULL, -1, 0, x);
                if (x->h)
                        arm_timer(x, LIVENESS_USEC);
                return 0;
        }
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

static int connect_now(struct xs_conn *x)
{
        struct xs_handle *h;
        int r, fd;

        h = xs_open(0);
        if (!h)
                return negative_errno();
        for (size_t i = 0; i < x->n_watches; i++)
                if (!xs_watch(h, x->watches[i].path, x->watches[i].token)) {
                        r = negative_errno();
                        xs_close(h);
                        return r;
                }
        fd = xs_fileno(h);
        if (fd < 0) {
                r = negative_errno();
                xs_close(h);
                return r;
        }
        r = sd_event_add_io(x->event, &x->io, fd, EPOLLIN, on_watch_fd, x);
        if (r < 0) {
                xs_close(h);
                return r;
        }
        x->h = h;
        arm_timer(x, LIVENESS_USEC);
        return 0;
}

int xs_conn_new(sd_event *ev, const struct xs_conn_ops *ops, void *userdata, struct xs_conn **ret)
{
        struct xs_conn *x = calloc(1, sizeof(*x));
        int r;

        if (!x)
                return -ENOMEM;
        x->event = sd_event_ref(ev);
        x->ops = ops;
        x->userdata = userdata;
        r = sd_event_add_time(ev, &x->timer, CLOCK_MONOTONIC, 0, 0, on_timer, x);
        if (r < 0)
                goto fail;
        sd_event_source_set_enabled(x->timer, SD_EVENT_OFF);
        /* Not there yet: keep trying, as after losing it. */
        if (connect_now(x) < 0) {
                x->retry_ms = RETRY_MIN_MS;
                arm_timer(x, x->retry_ms * 1000ULL);
        } else
                x->was_connected = true;
        *ret = x;
        return 0;
fail:
        xs_conn_free(x);
        return r;
}

void xs_conn_free(struct xs_conn *x)
{
        if (!x)
                return;
        sd_event_source_disable_unref(x->io);
        sd_event_source_disable_unref(x->timer);
        if (x->h)
                xs_close(x->h);
        for (size_t i = 0; i < x->n_watches; i++) {
                free(x->watches[i].path);
                free(x->watches[i].token);
        }
        free(x->watches);
        sd_event_unref(x->event);
        free(x);
}

bool xs_conn_connected(const struct xs_conn *x) { return x->h != NULL; }

int xs_conn_watch(struct xs_conn *x, const char *path, const char *token)
{
        struct watch *w;

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
        if (x->h && !xs_watch(x->h, path, token))
                return fail(x);
        return 0;
}

int xs_conn_read(struct xs_conn *x, xs_transaction_t t, const char *path, char **ret, size_t *ret_len)
{
        unsigned len;
        char *v;

        if (!x->h)
                return -ENOTCONN;
        errno = 0;
        v = xs_read(x->h, t, path, &len);
        if (!v)
                return fail(x);
        *ret = v; /* libxenstore NUL-terminates */
        if (ret_len)
                *ret_len = len;
        return 0;
}

int xs_conn_write(struct xs_conn *x, xs_transaction_t t, const char *path, const char *value)
{
        if (!x->h)
                return -ENOTCONN;
        errno = 0;
        if (!xs_write(x->h, t, path, value, strlen(value)))
                return fail(x);
        return 0;
}

int xs_conn_rm(struct xs_conn *x, xs_transaction_t t, const char *path)
{
        if (!x->h)
                return -ENOTCONN;
        errno = 0;
        if (!xs_rm(x->h, t, path))
                return fail(x);
        return 0;
}

int xs_conn_directory(struct xs_conn *x, xs_transaction_t t, const char *path, char ***ret, unsigned *ret_n)
{
        char **d;

        if (!x->h)
                return -ENOTCONN;
        errno = 0;
        d = xs_directory(x->h, t, path, ret_n);
        if (!d)
                return fail(x);
        *ret = d;
        return 0;
}

bool xs_conn_exists(struct xs_conn *x, xs_transaction_t t, const char *path)
{
        _cleanup_free_ char *v = NULL;

        return xs_conn_read(x, t, path, &v, NULL) == 0;
}

int xs_conn_transaction_start(struct xs_conn *x, xs_transaction_t *ret)
{
        xs_transaction_t t;

        if (!x->h)
                return -ENOTCONN;
        errno = 0;
        t = xs_transaction_start(x->h);
        if (t == XBT_NULL)
                return fail(x);
        *ret = t;
        return 0;
}

int xs_conn_transaction_end(struct xs_conn *x, xs_transaction_t t, bool abort)
{
        if (!x->h)
                return -ENOTCONN;
        errno = 0;
        if (!xs_transaction_end(x->h, t, abort))
                return fail(x);
        return 0;
}

int xs_conn_home(struct xs_conn *x, char **ret)
{
        _cleanup_free_ char *domid = NULL;
        unsigned long id = 0;
        char *end;
        int r;

        /* A relative path resolves against our own domain; dom0 may lack
         * the node, in which case it is dom0. */
        r = xs_conn_read(x, XBT_NULL, "domid", &domid, NULL);
        if (r == 0) {
                errno = 0;
                id = strtoul(domid, &end, 10);
                if (errno || end == domid || *end || id >= 0x7FF0)
                        return -EBADMSG;
        } else if (r != -ENOENT && r != -EACCES)
                return r;
        return asprintf(ret, "/local/domain/%lu", id) < 0 ? -ENOMEM : 0;
}
