/*
 * blkback-emu — plays the part of Linux xen-blkback (drivers/block/
 * xen-blkback/xenbus.c) toward the toolstack and hotplug side, for tests.
 *
 * It watches <home>/backend/vbd.  A new vbd in state 1 (Initialising) is
 * switched to 2 (InitWait).  Once `physical-device` ("%x:%x") appears, the
 * block device it names is opened through a private device node (never
 * /dev), read-only for mode "r" and read-write otherwise, non-exclusively,
 * whatever the frontend does: upstream blkback opens it from its watch on
 * that node.  If a `diskseq` node is present it must equal BLKGETDISKSEQ of
 * the opened device (upstream has no such check; a device published with a
 * wrong diskseq is a bug either way).  Connected (4) is written only once
 * the device is open and the frontend has connected.  Like every shipping
 * kernel, it never writes `opened`.
 *
 * The guest side (--guest):
 *   running   a running guest's blkfront, as in a hot-plug: it connects
 *             (frontend state 3) as soon as the backend is in InitWait, so
 *             the backend reaches 4 as soon as the device is there too;
 *   building  a domain being built: nothing connects until someone writes
 *             the frontend's state 3 or 4 (the test, as the guest boots);
 *   none      no PV drivers: the frontend never connects.
 *
 * State 5, or `online` 0 with state 5/6, closes the device and writes 6; the
 * directory disappearing closes it too.
 *
 * Watch events are drained first and each touched device is looked at once,
 * so the cost per event does not grow with the number of devices.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xenstore.h>

#include "hashmap.h"
#include "log.h"
#include "macro.h"

#ifndef BLKGETDISKSEQ
#define BLKGETDISKSEQ _IOR(0x12, 128, __u64)
#endif

#define WATCH_TOKEN "blkback-emu"
#define FRONTEND_TOKEN "blkback-emu-frontend"
#define HOLD_OFF_POLL_MS 50

enum guest_mode { GUEST_RUNNING, GUEST_BUILDING, GUEST_NONE };

struct domain;

struct vbd {
        char *path;             /* <home>/backend/vbd/<domid>/<devid>; map key */
        const char *rel;        /* the same, relative to <home> */
        struct domain *dom;
        struct vbd *dom_prev, *dom_next;
        struct vbd *dirty_next;
        struct vbd *pending_next;
        bool dirty;
        bool pending;           /* waiting for --hold-off to go away */
        bool initwait;          /* we switched it to InitWait */
        bool failed;            /* refused; nothing more until it goes */
        bool closed;            /* torn down; nothing more until it goes */
        bool connected;         /* we wrote Connected */
        char *fe_state;         /* <frontend>/state, watched in building mode */
        unsigned major, minor;
        bool have_pdev;
        int fd;
};

struct domain {
        char *key;              /* decimal domid, as in the path */
        struct vbd *vbds;
};

static struct {
        struct xs_handle *xs;
        const char *home;
        char *base;             /* <home>/backend/vbd */
        size_t base_len;
        enum guest_mode guest;
        const char *hold_off;
        const char *hold_close;
        const char *ready_file;
        char *node_dir;
        struct hashmap *vbds;   /* path -> struct vbd */
        struct hashmap *doms;   /* domid string -> struct domain */
        struct hashmap *fes;    /* <frontend>/state -> struct vbd (building mode) */
        struct vbd *dirty;
        struct vbd *pending;
} E;

static char *xs_get(const char *dir, const char *node)
{
        _cleanup_free_ char *p = NULL;
        unsigned len;

        if (asprintf(&p, "%s/%s", dir, node) < 0)
                return NULL;
        return xs_read(E.xs, XBT_NULL, p, &len);
}

static int xs_put(const char *dir, const char *node, const char *value)
{
        _cleanup_free_ char *p = NULL;

        if (asprintf(&p, "%s/%s", dir, node) < 0)
                return -ENOMEM;
        if (!xs_write(E.xs, XBT_NULL, p, value, strlen(value)))
                return negative_errno();
        return 0;
}

/* Writes into a device's directory only while it exists, in a transaction,
 * as the kernel's xenbus_switch_state() does: a write after the toolstack
 * removed the directory would create it anew.  -ENOENT when it is gone. */
static int xs_put_dev(const char *dir, const char *node, const char *value)
{
        _cleanup_free_ char *p = NULL;

        if (asprintf(&p, "%s/%s", dir, node) < 0)
                return -ENOMEM;
        for (int i = 0; i < 16; i++) {
                xs_transaction_t t = xs_transaction_start(E.xs);
                unsigned len;
                char *cur;

                if (t == XBT_NULL)
                        return negative_errno();
                cur = xs_read(E.xs, t, dir, &len);
                if (!cur) {
                        xs_transaction_end(E.xs, t, true);
                        return -ENOENT;
                }
                free(cur);
                if (!xs_write(E.xs, t, p, value, strlen(value))) {
                        int r = negative_errno();
                        xs_transaction_end(E.xs, t, true);
                        return r;
                }
                if (xs_transaction_end(E.xs, t, false))
                        return 0;
                if (errno != EAGAIN)
                        return negative_errno();
        }
        return -EAGAIN;
}

static bool node_exists_in(xs_transaction_t t, const char *path)
{
        unsigned len;
        char *v = xs_read(E.xs, t, path, &len);

        free(v);
        return v != NULL;
}

static bool node_exists(const char *path)
{
        unsigned len;
        char *v = xs_read(E.xs, XBT_NULL, path, &len);

        free(v);
        return v != NULL;
}

static bool hold_off_active(void)
{
        return E.hold_off && access(E.hold_off, F_OK) == 0;
}

static bool hold_close_active(void)
{
        return E.hold_close && access(E.hold_close, F_OK) == 0;
}

static void mark_dirty(struct vbd *v)
{
        if (v->dirty)
                return;
        v->dirty = true;
        v->dirty_next = E.dirty;
        E.dirty = v;
}

static void close_bdev(struct vbd *v)
{
        if (v->fd >= 0)
                log_info("%s: closing %x:%x", v->rel, v->major, v->minor);
        v->fd = safe_close(v->fd);
}

static struct vbd *vbd_get(const char *domid, const char *devid, bool create)
{
        _cleanup_free_ char *path = NULL;
        struct domain *d;
        struct vbd *v;

        if (asprintf(&path, "%s/%s/%s", E.base, domid, devid) < 0)
                return NULL;
        v = hashmap_get(E.vbds, path);
        if (v || !create)
                return v;

        d = hashmap_get(E.doms, domid);
        if (!d) {
                d = calloc(1, sizeof(*d));
                if (!d || !(d->key = strdup(domid)) || hashmap_put(E.doms, d->key, d) < 0) {
                        if (d)
                                free(d->key);
                        free(d);
                        return NULL;
                }
        }
        v = calloc(1, sizeof(*v));
        if (!v)
                return NULL;
        v->fd = -1;
        v->path = TAKE_PTR(path);
        v->rel = v->path + strlen(E.home) + 1;
        if (hashmap_put(E.vbds, v->path, v) < 0) {
                free(v->path);
                free(v);
                return NULL;
        }
        v->dom = d;
        v->dom_next = d->vbds;
        if (d->vbds)
                d->vbds->dom_prev = v;
        d->vbds = v;
        return v;
}

static void vbd_forget(struct vbd *v)
{
        struct domain *d = v->dom;

        close_bdev(v);
        log_info("%s: gone", v->rel);
        if (v->fe_state) {
                hashmap_remove(E.fes, v->fe_state);
                (void)xs_unwatch(E.xs, v->fe_state, FRONTEND_TOKEN);
                free(v->fe_state);
        }
        hashmap_remove(E.vbds, v->path);
        if (v->dom_prev)
                v->dom_prev->dom_next = v->dom_next;
        else
                d->vbds = v->dom_next;
        if (v->dom_next)
                v->dom_next->dom_prev = v->dom_prev;
        if (!d->vbds) {
                hashmap_remove(E.doms, d->key);
                free(d->key);
                free(d);
        }
        /* Unlink from the work lists; they are short-lived, so a scan is fine. */
        for (struct vbd **p = &E.dirty; *p; p = &(*p)->dirty_next)
                if (*p == v) {
                        *p = v->dirty_next;
                        break;
                }
        for (struct vbd **p = &E.pending; *p; p = &(*p)->pending_next)
                if (*p == v) {
                        *p = v->pending_next;
                        break;
                }
        free(v->path);
        free(v);
}

/* As xenbus_dev_fatal(): "<errno> <message>" under <home>/error/<nodename>,
 * then the device is given up (state 6 here, so toolstacks stop waiting). */
static void vbd_fail(struct vbd *v, int err, const char *fmt, ...) _printf_(3, 4);
static void vbd_fail(struct vbd *v, int err, const char *fmt, ...)
{
        _cleanup_free_ char *msg = NULL, *text = NULL, *epath = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return;
        log_error("%s: refusing device: %s", v->rel, msg);
        close_bdev(v);
        v->failed = true;
        if (asprintf(&text, "%d %s", -err, msg) >= 0 &&
            asprintf(&epath, "%s/error/%s", E.home, v->rel) >= 0)
                xs_put(epath, "error", text);
        xs_put_dev(v->path, "state", "6");
}

static int parse_pdev(const char *s, unsigned *ret_major, unsigned *ret_minor)
{
        unsigned ma, mi;
        int n = -1;

        if (sscanf(s, "%x:%x%n", &ma, &mi, &n) != 2 || n < 0 || s[n] != '\0' ||
            strspn(s, "0123456789abcdef:") != strlen(s))
                return -EINVAL;
        *ret_major = ma;
        *ret_minor = mi;
        return 0;
}

static int parse_diskseq(const char *s, uint64_t *ret)
{
        char *end;

        if (!*s || strspn(s, "0123456789abcdef") != strlen(s))
                return -EINVAL;
        errno = 0;
        *ret = strtoull(s, &end, 16);
        if (errno || *end)
                return -EINVAL;
        return 0;
}

/* Opens major:minor through a node of our own, unlinked at once. */
static int open_bdev(unsigned ma, unsigned mi, bool rw)
{
        _cleanup_free_ char *node = NULL;
        int fd, r;

        if (asprintf(&node, "%s/%x-%x", E.node_dir, ma, mi) < 0)
                return -ENOMEM;
        (void)unlink(node);
        if (mknod(node, S_IFBLK | 0600, makedev(ma, mi)) < 0)
                return negative_errno();
        fd = open(node, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
        r = fd < 0 ? negative_errno() : fd;
        (void)unlink(node);
        return r;
}

static void write_connected(struct vbd *v, int fd, bool rw)
{
        uint64_t bytes = 0;
        int lss = 512, pss = 512;
        char buf[32];
        xs_transaction_t t;

        (void)ioctl(fd, BLKGETSIZE64, &bytes);
        (void)ioctl(fd, BLKSSZGET, &lss);
        (void)ioctl(fd, BLKPBSZGET, &pss);

        /* As blkback's connect(): geometry first, then Connected. */
        for (;;) {
                _cleanup_free_ char *p1 = NULL, *p2 = NULL, *p3 = NULL, *p4 = NULL;

                t = xs_transaction_start(E.xs);
                if (t == XBT_NULL)
                        break;
                /* Not into a directory the toolstack removed meanwhile. */
                if (!node_exists_in(t, v->path) ||
                    asprintf(&p1, "%s/sectors", v->path) < 0 ||
                    asprintf(&p2, "%s/info", v->path) < 0 ||
                    asprintf(&p3, "%s/sector-size", v->path) < 0 ||
                    asprintf(&p4, "%s/physical-sector-size", v->path) < 0) {
                        xs_transaction_end(E.xs, t, true);
                        break;
                }
                snprintf(buf, sizeof(buf), "%" PRIu64, bytes / 512);
                xs_write(E.xs, t, p1, buf, strlen(buf));
                snprintf(buf, sizeof(buf), "%d", rw ? 0 : 4 /* VDISK_READONLY */);
                xs_write(E.xs, t, p2, buf, strlen(buf));
                snprintf(buf, sizeof(buf), "%d", lss);
                xs_write(E.xs, t, p3, buf, strlen(buf));
                snprintf(buf, sizeof(buf), "%d", pss);
                xs_write(E.xs, t, p4, buf, strlen(buf));
                if (xs_transaction_end(E.xs, t, false) || errno != EAGAIN)
                        break;
        }
        xs_put_dev(v->path, "state", "4");
}

static void vbd_open(struct vbd *v)
{
        _cleanup_free_ char *mode = NULL, *seq = NULL;
        uint64_t want = 0, have = 0;
        bool rw;
        int fd, r;

        mode = xs_get(v->path, "mode");
        if (!mode) {
                vbd_fail(v, -EINVAL, "reading mode");
                return;
        }
        /* blkback: read-only unless the mode contains 'w'. */
        rw = strchr(mode, 'w') != NULL;

        seq = xs_get(v->path, "diskseq");
        if (seq && parse_diskseq(seq, &want) < 0) {
                vbd_fail(v, -EINVAL, "malformed diskseq \"%s\"", seq);
                return;
        }

        fd = open_bdev(v->major, v->minor, rw);
        if (fd < 0) {
                vbd_fail(v, fd, "opening %x:%x %s: %s", v->major, v->minor,
                         rw ? "read-write" : "read-only", strerror(-fd));
                return;
        }
        v->fd = fd;

        if (seq) {
                if (ioctl(fd, BLKGETDISKSEQ, &have) < 0) {
                        r = negative_errno();
                        vbd_fail(v, r, "BLKGETDISKSEQ on %x:%x: %s", v->major, v->minor, strerror(-r));
                        return;
                }
                if (have != want) {
                        vbd_fail(v, -ESTALE, "diskseq of %x:%x is %" PRIx64 ", xenstore says %" PRIx64,
                                 v->major, v->minor, have, want);
                        return;
                }
        }

        log_info("%s: opened %x:%x %s%s%s", v->rel, v->major, v->minor,
                 rw ? "read-write" : "read-only", seq ? " diskseq " : "", seq ?: "");
}

/* The frontend directory, from the backend's `frontend` node. */
static char *frontend_dir(const struct vbd *v)
{
        return xs_get(v->path, "frontend");
}

/* blkfront's side in running mode: rings granted, state Initialised (3),
 * once the backend is in InitWait.  Into the frontend's directory only
 * while it exists. */
static void frontend_switch(const struct vbd *v, const char *state)
{
        _cleanup_free_ char *fe = frontend_dir(v);

        if (fe && xs_put_dev(fe, "state", state) == 0)
                log_info("%s: frontend %s", v->rel, state);
}

/* Whether the frontend has connected its rings (state 3 or 4). */
static bool frontend_connected(const struct vbd *v)
{
        _cleanup_free_ char *fe = NULL, *st = NULL;

        if (E.guest == GUEST_NONE)
                return false;
        fe = frontend_dir(v);
        if (!fe)
                return false;
        st = xs_get(fe, "state");
        return st && (strcmp(st, "3") == 0 || strcmp(st, "4") == 0);
}

/* In building mode the guest connects later: watch its frontend's state,
 * as blkback watches the other end. */
static void watch_frontend(struct vbd *v)
{
        _cleanup_free_ char *fe = NULL;

        if (E.guest != GUEST_BUILDING || v->fe_state)
                return;
        fe = frontend_dir(v);
        if (!fe || asprintf(&v->fe_state, "%s/state", fe) < 0) {
                v->fe_state = NULL;
                return;
        }
        if (hashmap_put(E.fes, v->fe_state, v) < 0 || !xs_watch(E.xs, v->fe_state, FRONTEND_TOKEN)) {
                hashmap_remove(E.fes, v->fe_state);
                free(v->fe_state);
                v->fe_state = NULL;
                log_warning("%s: cannot watch the frontend", v->rel);
        }
}

/* Connected once the device is open and the frontend is there. */
static void maybe_connect(struct vbd *v)
{
        _cleanup_free_ char *mode = NULL;

        if (v->fd < 0 || v->connected || v->failed || v->closed || !frontend_connected(v))
                return;
        mode = xs_get(v->path, "mode");
        write_connected(v, v->fd, mode && strchr(mode, 'w'));
        v->connected = true;
        log_info("%s: Connected", v->rel);
        if (E.guest == GUEST_RUNNING)
                frontend_switch(v, "4");
}

static void vbd_update(struct vbd *v)
{
        _cleanup_free_ char *state = NULL, *online = NULL, *pdev = NULL;
        unsigned ma, mi;

        state = xs_get(v->path, "state");
        if (!state) {
                if (!node_exists(v->path))
                        vbd_forget(v);
                return;
        }

        if (v->initwait && strcmp(state, "1") == 0) {
                /* Removed and written again within one transaction: a new
                 * device under the old name. */
                log_info("%s: re-created", v->rel);
                close_bdev(v);
                v->initwait = v->failed = v->closed = v->have_pdev = v->connected = false;
        }
        if (!v->initwait && !v->failed && !v->closed && strcmp(state, "1") == 0) {
                if (xs_put_dev(v->path, "state", "2") < 0) {
                        log_warning("%s: cannot switch to InitWait", v->rel);
                        return;
                }
                v->initwait = true;
                free(state);
                state = strdup("2");
                if (!state)
                        return;
                log_info("%s: InitWait", v->rel);
                if (E.guest == GUEST_RUNNING)
                        frontend_switch(v, "3");
                watch_frontend(v);
        }

        /* Teardown, as the toolstack asks for it. */
        online = xs_get(v->path, "online");
        if (strcmp(state, "5") == 0 && v->fd >= 0 && hold_close_active()) {
                /* Still flushing the guest's writes: the device stays open. */
                if (!v->pending) {
                        v->pending = true;
                        v->pending_next = E.pending;
                        E.pending = v;
                        log_info("%s: holding off the close of %x:%x", v->rel, v->major, v->minor);
                }
                return;
        }
        if (strcmp(state, "5") == 0 ||
            (online && strcmp(online, "0") == 0 && strcmp(state, "6") == 0)) {
                close_bdev(v);
                v->closed = true;
                if (strcmp(state, "6") != 0) {
                        xs_put_dev(v->path, "state", "6");
                        log_info("%s: Closed", v->rel);
                }
                return;
        }

        if (!v->initwait || v->failed || v->closed || v->connected)
                return;

        pdev = xs_get(v->path, "physical-device");
        if (!pdev)
                return;
        if (parse_pdev(pdev, &ma, &mi) < 0) {
                vbd_fail(v, -EINVAL, "malformed physical-device \"%s\"", pdev);
                return;
        }
        if (v->have_pdev && (ma != v->major || mi != v->minor)) {
                /* blkback refuses to switch devices under a vbd. */
                log_warning("%s: changing physical device (from %x:%x to %x:%x) not supported",
                            v->rel, v->major, v->minor, ma, mi);
                return;
        }
        v->major = ma;
        v->minor = mi;
        v->have_pdev = true;
        if (v->fd >= 0)
                return maybe_connect(v);

        if (hold_off_active()) {
                if (!v->pending) {
                        v->pending = true;
                        v->pending_next = E.pending;
                        E.pending = v;
                        log_info("%s: holding off %x:%x", v->rel, ma, mi);
                }
                return;
        }
        vbd_open(v);
        maybe_connect(v);
}

/* Forgets every device of a domain whose directory went away. */
static void domain_gone(const char *domid)
{
        struct domain *d = hashmap_get(E.doms, domid);

        while (d) {
                struct vbd *v = d->vbds;
                bool last = !v->dom_next;

                vbd_forget(v);          /* frees d with the last device */
                if (last)
                        break;
        }
}

static void scan_domain(const char *domid)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ char **devs = NULL;
        unsigned n = 0;

        if (asprintf(&path, "%s/%s", E.base, domid) < 0)
                return;
        devs = xs_directory(E.xs, XBT_NULL, path, &n);
        for (unsigned i = 0; devs && i < n; i++) {
                struct vbd *v = vbd_get(domid, devs[i], true);
                if (v)
                        mark_dirty(v);
        }
}

static void scan_all(void)
{
        _cleanup_free_ char **doms = NULL;
        unsigned n = 0;

        doms = xs_directory(E.xs, XBT_NULL, E.base, &n);
        for (unsigned i = 0; doms && i < n; i++)
                scan_domain(doms[i]);
}

/* Only these nodes change what blkback does; the rest is noise. */
static bool interesting_leaf(const char *leaf)
{
        static const char *const names[] = { "state", "online", "physical-device", "diskseq", "mode" };

        for (size_t i = 0; i < ARRAY_SIZE(names); i++)
                if (strcmp(leaf, names[i]) == 0)
                        return true;
        return false;
}

static void handle_event(const char *path)
{
        char domid[16], devid[32];
        const char *rest, *slash, *leaf;
        size_t l;

        if (strncmp(path, E.base, E.base_len) != 0)
                return;
        rest = path + E.base_len;
        if (*rest == '\0') {
                /* The whole tree: on removal forget everything. */
                if (!node_exists(E.base)) {
                        struct hashmap_iter it = HASHMAP_ITER_INIT;
                        struct domain *d;
                        while (hashmap_iterate(E.doms, &it, (void **)&d, NULL)) {
                                domain_gone(d->key);
                                it = HASHMAP_ITER_INIT;
                        }
                }
                return;
        }
        if (*rest != '/')
                return;
        rest++;
        slash = strchr(rest, '/');
        l = slash ? (size_t)(slash - rest) : strlen(rest);
        if (l == 0 || l >= sizeof(domid))
                return;
        memcpy(domid, rest, l);
        domid[l] = '\0';
        if (!slash) {
                /* A domain directory: created (its devices report on their
                 * own) or removed with all its devices (one event only). */
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s/%s", E.base, domid) >= 0 && !node_exists(p))
                        domain_gone(domid);
                return;
        }
        rest = slash + 1;
        slash = strchr(rest, '/');
        l = slash ? (size_t)(slash - rest) : strlen(rest);
        if (l == 0 || l >= sizeof(devid))
                return;
        memcpy(devid, rest, l);
        devid[l] = '\0';
        leaf = slash ? slash + 1 : NULL;
        if (leaf && (strchr(leaf, '/') || !interesting_leaf(leaf)))
                return;

        struct vbd *v = vbd_get(domid, devid, true);
        if (v)
                mark_dirty(v);
}

static void process_dirty(void)
{
        while (E.dirty) {
                struct vbd *v = E.dirty;

                E.dirty = v->dirty_next;
                v->dirty = false;
                vbd_update(v);          /* may free v */
        }
}

static void retry_pending(void)
{
        struct vbd *list;

        if (!E.pending || hold_off_active() || hold_close_active())
                return;
        list = E.pending;
        E.pending = NULL;
        while (list) {
                struct vbd *v = list;

                list = v->pending_next;
                v->pending = false;
                mark_dirty(v);
        }
}

static void shutdown_all(void)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct vbd *v;

        while (hashmap_iterate(E.vbds, &it, (void **)&v, NULL))
                close_bdev(v);
}

static int drain_watches(void)
{
        char **w;

        while ((w = xs_check_watch(E.xs))) {
                if (strcmp(w[XS_WATCH_TOKEN], WATCH_TOKEN) == 0)
                        handle_event(w[XS_WATCH_PATH]);
                else if (strcmp(w[XS_WATCH_TOKEN], FRONTEND_TOKEN) == 0) {
                        struct vbd *v = hashmap_get(E.fes, w[XS_WATCH_PATH]);
                        if (v)
                                mark_dirty(v);
                }
                free(w);
        }
        if (errno != EAGAIN)
                return log_error_errno(negative_errno(), "reading watch events: %m");
        return 0;
}

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: blkback-emu [OPTIONS]\n"
                "  --home PATH         xenstore home of the backend domain (/local/domain/0)\n"
                "  --guest running|building|none\n"
                "                      the guest's frontend: connects at InitWait (default),\n"
                "                      once its state is written 3 or 4, or never\n"
                "  --hold-off FILE     open no device while FILE exists\n"
                "  --hold-close FILE   on Closing, keep an open device open while FILE exists\n"
                "  --ready-file FILE   create FILE once the watch is in place\n"
                "  --log FILE          append the log to FILE instead of stderr\n");
}

static int parse_args(int argc, char **argv)
{
        static const struct option opts[] = {
                { "home", required_argument, NULL, 'H' },
                { "guest", required_argument, NULL, 'g' },
                { "hold-off", required_argument, NULL, 'o' },
                { "hold-close", required_argument, NULL, 'c' },
                { "ready-file", required_argument, NULL, 'R' },
                { "log", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        E.home = "/local/domain/0";
        E.guest = GUEST_RUNNING;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'H':
                        E.home = optarg;
                        break;
                case 'g':
                        if (strcmp(optarg, "running") == 0)
                                E.guest = GUEST_RUNNING;
                        else if (strcmp(optarg, "building") == 0)
                                E.guest = GUEST_BUILDING;
                        else if (strcmp(optarg, "none") == 0)
                                E.guest = GUEST_NONE;
                        else {
                                fprintf(stderr, "blkback-emu: --guest takes running, building or none\n");
                                return -EINVAL;
                        }
                        break;
                case 'o':
                        E.hold_off = optarg;
                        break;
                case 'c':
                        E.hold_close = optarg;
                        break;
                case 'R':
                        E.ready_file = optarg;
                        break;
                case 'l': {
                        int fd = open(optarg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
                                fprintf(stderr, "blkback-emu: %s: %m\n", optarg);
                                return -EINVAL;
                        }
                        safe_close(fd);
                        setvbuf(stderr, NULL, _IOLBF, 0);
                        break;
                }
                case 'h':
                        usage(stdout);
                        exit(EXIT_SUCCESS);
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return -EINVAL;
        }
        if (E.home[0] != '/' || E.home[strlen(E.home) - 1] == '/') {
                fprintf(stderr, "blkback-emu: --home must be an absolute xenstore path\n");
                return -EINVAL;
        }
        return 0;
}

static int make_node_dir(void)
{
        const char *tmp = getenv("TMPDIR");

        if (asprintf(&E.node_dir, "%s/blkback-emu.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
                return -ENOMEM;
        if (!mkdtemp(E.node_dir))
                return log_error_errno(negative_errno(), "mkdtemp %s: %m", E.node_dir);
        return 0;
}

int main(int argc, char **argv)
{
        _cleanup_close_ int sfd = -1;
        sigset_t mask;
        int r, ret = EXIT_FAILURE;

        log_set_prefix("blkback-emu");
        if (parse_args(argc, argv) < 0)
                return 2;
        signal(SIGPIPE, SIG_IGN);

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return log_error_errno(negative_errno(), "signalfd: %m"), EXIT_FAILURE;

        if (asprintf(&E.base, "%s/backend/vbd", E.home) < 0)
                return EXIT_FAILURE;
        E.base_len = strlen(E.base);
        E.vbds = hashmap_new(hash_string, equal_string);
        E.doms = hashmap_new(hash_string, equal_string);
        E.fes = hashmap_new(hash_string, equal_string);
        if (!E.vbds || !E.doms || !E.fes)
                return EXIT_FAILURE;
        if (make_node_dir() < 0)
                return EXIT_FAILURE;

        E.xs = xs_open(XS_OPEN_SOCKETONLY);
        if (!E.xs) {
                log_error("cannot reach xenstored (XENSTORED_PATH=%s): %m",
                          getenv("XENSTORED_PATH") ?: "unset");
                goto out;
        }
        if (!xs_watch(E.xs, E.base, WATCH_TOKEN)) {
                log_error("watching %s: %m", E.base);
                goto out;
        }
        scan_all();
        process_dirty();

        if (E.ready_file) {
                int fd = open(E.ready_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0) {
                        log_error("%s: %m", E.ready_file);
                        goto out;
                }
                dprintf(fd, "%d\n", (int)getpid());
                close(fd);
        }
        log_info("watching %s (guest %s%s%s)", E.base,
                 E.guest == GUEST_RUNNING ? "running" : E.guest == GUEST_BUILDING ? "building" : "none",
                 E.hold_off ? ", hold-off " : "", E.hold_off ?: "");

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = xs_fileno(E.xs), .events = POLLIN },
                        { .fd = sfd, .events = POLLIN },
                };

                r = poll(p, 2, E.pending ? HOLD_OFF_POLL_MS : -1);
                if (r < 0 && errno != EINTR) {
                        log_error("poll: %m");
                        goto out;
                }
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                                log_info("signal %u, exiting", si.ssi_signo);
                                ret = EXIT_SUCCESS;
                                goto out;
                        }
                }
                if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                        log_error("lost the xenstored connection");
                        goto out;
                }
                if (drain_watches() < 0)
                        goto out;
                retry_pending();
                process_dirty();
        }

out:
        shutdown_all();
        if (E.xs)
                xs_close(E.xs);
        if (E.node_dir)
                (void)rmdir(E.node_dir);
        return ret;
}
