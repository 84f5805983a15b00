#include "vbd.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "control.h"
#include "crashpoint.h"
#include "fdset.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "xsvalue.h"

/* XenbusState values blkback and the toolstack write. */
enum {
        XB_INITIALISING = 1,
        XB_INITWAIT = 2,
        XB_CONNECTED = 4,
        XB_CLOSING = 5,
        XB_CLOSED = 6,
};

#define PUBLISH_RETRIES 32
/* hotplug-error, and every value the daemon writes, must fit oxenstored's
 * limit (quota-maxsize, 2048 bytes), the lower of the two xenstoreds'. */
#define ERROR_MAX 512
#define XS_VALUE_MAX 2048
_Static_assert(ERROR_MAX <= XS_VALUE_MAX, "hotplug-error must fit every xenstored");

struct pending {
        struct pending *next;
        struct vbd *vbd;
        struct ctl_call *call;
        bool remove;
};

struct vbd {
        char *path;                 /* <home>/backend/vbd/<domid>/<devid> */
        uint32_t domid, devid;
        enum vbd_state state;
        bool requested;             /* block-loopd add ran: publish it, whatever its script */
        bool prepare_failed;        /* preparing it failed: the add will try again, and report */
        bool publish_due;           /* to be published: its add ran, or it is a watch-mode disk */
        bool maybe_published;       /* a publication may be in xenstore: undone before letting go */
        bool saw_teardown;          /* released because the toolstack tore it down */
        bool found_by_scan;         /* met in a rescan: may be published by an earlier run */
        bool dirty;
        struct vbd *dirty_next;
        struct cache_user *user;
        void *fdset_token;          /* the fd set fd the disk was set up from */
        struct pending *pending;
        char *error;                /* the hotplug-error we wrote */
};

struct vbd_manager {
        sd_event *event;
        struct xs_conn *xs;
        struct cache *cache;
        struct vbd_config cfg;
        char *home;
        char *base;                 /* <home>/backend/vbd */
        size_t base_len;
        struct hashmap *by_path;    /* path -> struct vbd */
        struct vbd *dirty;          /* evaluated from the defer source, */
        struct vbd **dirty_tail;    /* in the order events came */
        sd_event_source *defer;
        bool rescan;
        bool scanned;               /* the first full scan is done */
        size_t counts[_VBD_STATE_MAX];
};

static const char *const state_names[_VBD_STATE_MAX] = {
        [VBD_NEW] = "new",
        [VBD_FOREIGN] = "foreign",
        [VBD_WAITING] = "waiting",
        [VBD_PREPARED] = "prepared",
        [VBD_HELD] = "held",
        [VBD_CONNECTED] = "connected",
        [VBD_FAILED] = "failed",
        [VBD_RELEASED] = "released",
};

const char *vbd_state_name(enum vbd_state s)
{
        return s < _VBD_STATE_MAX ? state_names[s] : "invalid";
}

static void set_state(struct vbd_manager *m, struct vbd *v, enum vbd_state s)
{
        m->counts[v->state]--;
        m->counts[s]++;
        v->state = s;
}

/* ---- records ---------------------------------------------------------- */

/* Splits a path below the base into domid, devid and the node below the
 * device (NULL for the device directory itself).  Returns the number of
 * components understood: 0 (the base or above), 1 (a domain directory),
 * 2 (a device) or -1 (not ours, or malformed). */
static int split_path(const struct vbd_manager *m, const char *path, uint32_t *domid,
                      uint32_t *devid, const char **node, size_t *dev_path_len)
{
        const char *p, *slash;

        if (strncmp(path, m->base, m->base_len) != 0)
                return strncmp(m->base, path, strlen(path)) == 0 ? 0 : -1;
        p = path + m->base_len;
        if (*p == '\0')
                return 0;
        if (*p++ != '/')
                return -1;
        slash = strchr(p, '/');
        if (!xsv_parse_u32(p, slash ? (size_t)(slash - p) : strlen(p), domid))
                return -1;
        if (!slash)
                return 1;
        p = slash + 1;
        slash = strchr(p, '/');
        if (!xsv_parse_u32(p, slash ? (size_t)(slash - p) : strlen(p), devid))
                return -1;
        *dev_path_len = slash ? (size_t)(slash - path) : strlen(path);
        *node = slash ? slash + 1 : NULL;
        return 2;
}

static struct vbd *vbd_get(struct vbd_manager *m, const char *path, size_t len, uint32_t domid,
                           uint32_t devid, bool create)
{
        char key[PATH_MAX];
        struct vbd *v;

        if (len >= sizeof(key))
                return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        v = hashmap_get(m->by_path, key);
        if (v || !create)
                return v;
        v = calloc(1, sizeof(*v));
        if (!v)
                return NULL;
        v->path = strdup(key);
        if (!v->path || hashmap_put(m->by_path, v->path, v) < 0) {
                free(v->path);
                free(v);
                return NULL;
        }
        v->domid = domid;
        v->devid = devid;
        v->state = VBD_NEW;
        m->counts[VBD_NEW]++;
        return v;
}

static void complete_pending(struct vbd *v, bool remove, int error, const char *msg);

/* Lets go of the device and of the fd set fd it came from. */
static void drop_user(struct vbd_manager *m, struct vbd *v)
{
        if (v->user)
                cache_release(m->cache, v->user);
        v->user = NULL;
        if (v->fdset_token && m->cfg.release_fdset)
                m->cfg.release_fdset(m->cfg.fdset_userdata, v->fdset_token);
        v->fdset_token = NULL;
}

static void vbd_forget(struct vbd_manager *m, struct vbd *v)
{
        drop_user(m, v);
        complete_pending(v, false, -ENODEV, "the backend directory was removed before the disk was set up");
        complete_pending(v, true, 0, NULL);
        /* A record is forgotten only outside the dirty list walk. */
        if (v->dirty) {
                struct vbd **p;
                for (p = &m->dirty; *p; p = &(*p)->dirty_next)
                        if (*p == v) {
                                *p = v->dirty_next;
                                if (m->dirty_tail == &v->dirty_next)
                                        m->dirty_tail = p;
                                break;
                        }
        }
        hashmap_remove(m->by_path, v->path);
        m->counts[v->state]--;
        free(v->error);
        free(v->path);
        free(v);
}

/* ---- pending control calls -------------------------------------------- */

static void pending_cancel(struct ctl_call *call, void *data)
{
        struct pending *p = data, **pp;

        for (pp = &p->vbd->pending; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        free(p);
}

static int add_pending(struct vbd *v, struct ctl_call *call, bool remove)
{
        struct pending *p = calloc(1, sizeof(*p));

        if (!p)
                return -ENOMEM;
        p->vbd = v;
        p->call = call;
        p->remove = remove;
        p->next = v->pending;
        v->pending = p;
        ctl_call_set_cancel(call, pending_cancel, p);
        return 0;
}

static struct json_object *publish_result(const struct vbd *v)
{
        const struct loop_device *d = &v->user->entry->dev;
        struct json_object *o = json_object_new_object();
        char physdev[32];

        if (!o)
                return NULL;
        snprintf(physdev, sizeof(physdev), "%x:%x", major(d->devnum), minor(d->devnum));
        json_object_object_add(o, "path", json_object_new_string(v->path));
        json_object_object_add(o, "physical-device", json_object_new_string(physdev));
        json_object_object_add(o, "physical-device-path", json_object_new_string(d->node));
        json_object_object_add(o, "diskseq", json_object_new_uint64(d->diskseq));
        return o;
}

static void reply_call(struct ctl_call *call, const struct vbd *v, int error, const char *msg)
{
        if (error < 0)
                ctl_call_error(call, error, "%s", msg ? msg : strerror(-error));
        else if (v && v->user)
                ctl_call_reply(call, publish_result(v));
        else
                ctl_call_reply(call, NULL);
}

/* Completes the add (or remove) calls waiting on v. */
static void complete_pending(struct vbd *v, bool remove, int error, const char *msg)
{
        struct pending **pp = &v->pending;

        while (*pp) {
                struct pending *p = *pp;
                if (p->remove != remove) {
                        pp = &p->next;
                        continue;
                }
                *pp = p->next;
                ctl_call_set_cancel(p->call, NULL, NULL);
                reply_call(p->call, v, error, msg);
                free(p);
        }
}

/* ---- xenstore helpers ------------------------------------------------- */

static int read_node(struct vbd_manager *m, xs_transaction_t t, const struct vbd *v,
                     const char *node, char **ret, size_t *ret_len)
{
        char path[PATH_MAX];

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", v->path, node) >= sizeof(path))
                return -ENAMETOOLONG;
        return xs_conn_read(m->xs, t, path, ret, ret_len);
}

#define OP_WRITE(v, n, val) ((struct xs_op){ .type = XS_WRITE, .dir = (v)->path, .node = (n), .value = (val) })
#define OP_RM(v, n) ((struct xs_op){ .type = XS_RM, .dir = (v)->path, .node = (n) })

/* Looks at a change's results before it is committed: a negative return
 * aborts it. */
typedef int (*backend_check_t)(struct xs_op *ops, size_t n, void *data);

/* Changes a disk's directory in one transaction, only while the directory
 * exists (a write would otherwise create it anew for a disk that is gone),
 * retrying while xenstored asks to.  ops[0] is left free: it becomes the
 * read of the directory itself, sent with the others in one batch.  Any
 * failed op aborts, but a read or removal of a node that is not there;
 * check (optional) looks at what was read first.  Returns 0, -ENOENT when
 * the directory is gone, or check's or xenstore's -errno. */
static int backend_change(struct vbd_manager *m, struct vbd *v, struct xs_op *ops, size_t n,
                          backend_check_t check, void *data)
{
        int r = -EAGAIN;

        ops[0] = (struct xs_op){ .type = XS_READ, .dir = v->path };
        for (int i = 0; i < PUBLISH_RETRIES && r == -EAGAIN; i++) {
                xs_transaction_t t;

                r = xs_conn_transaction_start(m->xs, &t);
                if (r < 0)
                        return r;
                r = xs_conn_batch(m->xs, t, ops, n);
                if (r >= 0)
                        r = ops[0].r;
                if (r >= 0 && check)
                        r = check(ops, n, data);
                for (size_t k = 1; k < n && r >= 0; k++)
                        if (ops[k].r < 0 && !(ops[k].type != XS_WRITE && ops[k].r == -ENOENT))
                                r = ops[k].r;
                xs_ops_clear(ops, n);
                if (r < 0) {
                        /* -EAGAIN: the transaction was unknown to
                         * xenstored, and so is what was read in it. */
                        if (xs_conn_transaction_end(m->xs, t, true) == -EAGAIN) {
                                r = -EAGAIN;
                                continue;
                        }
                        return r;
                }
                r = xs_conn_transaction_end(m->xs, t, false);
        }
        return r;
}

/* ---- what evaluating a disk reads ----------------------------------------- */

/* The nodes of a disk's directory its evaluation looks at, read in one
 * round trip.  Each read costs xenstored time (which grows with the size of
 * its store), so only what the common case needs is read; the rare cases
 * (a directory gone, a disk being closed) take a second look. */
enum {
        SNAP_SCRIPT,
        SNAP_STATE,
        SNAP_OPENED,
        SNAP_PARAMS,
        SNAP_MODE,
        _SNAP_MAX,
};

#define SNAP(n) (1u << (n))

struct snapshot {
        struct xs_op ops[_SNAP_MAX];
        int8_t idx[_SNAP_MAX]; /* into ops, -1 when not read */
};

static void snapshot_clear(struct snapshot *s)
{
        xs_ops_clear(s->ops, _SNAP_MAX);
}

/* Reads what mask names.  -ENOTCONN when xenstored is not there; each
 * node's own result is for snap_value(). */
static int read_snapshot(struct vbd_manager *m, const struct vbd *v, unsigned mask, struct snapshot *s)
{
        static const char *const names[_SNAP_MAX] = {
                [SNAP_SCRIPT] = "script", [SNAP_STATE] = "state", [SNAP_OPENED] = "opened",
                [SNAP_PARAMS] = "params", [SNAP_MODE] = "mode",
        };
        size_t n = 0;

        for (int k = 0; k < _SNAP_MAX; k++) {
                s->idx[k] = -1;
                if (!(mask & SNAP(k)))
                        continue;
                s->idx[k] = (int8_t)n;
                s->ops[n++] = (struct xs_op){ .type = XS_READ, .dir = v->path, .node = names[k] };
        }
        for (size_t k = n; k < _SNAP_MAX; k++)
                s->ops[k] = (struct xs_op){ 0 };
        return xs_conn_batch(m->xs, XBT_NULL, s->ops, n);
}

/* A node's value (NULL when absent or not read); its -errno in *r. */
static const char *snap_value(const struct snapshot *s, int k, int *r)
{
        const struct xs_op *op = s->idx[k] < 0 ? NULL : &s->ops[s->idx[k]];

        if (r)
                *r = op ? op->r : -ENOENT;
        return op && op->r == 0 ? op->data : NULL;
}

/* A small decimal node; def when absent or not a number. */
static int snap_int(const struct snapshot *s, int k, int def)
{
        const char *v = snap_value(s, k, NULL);
        int n;

        return v && xsv_parse_int(v, &n) ? n : def;
}

/* Reads a small decimal node; def when absent or not a number. */
static int read_int(struct vbd_manager *m, const struct vbd *v, const char *node, int def)
{
        _cleanup_free_ char *s = NULL;
        int n;

        if (read_node(m, XBT_NULL, v, node, &s, NULL) < 0 || !xsv_parse_int(s, &n))
                return def;
        return n;
}

/* 1 when the disk's directory exists, 0 when xenstored says it does not,
 * -errno when that cannot be told (a failed read is not a removal). */
static int dir_state(struct vbd_manager *m, const struct vbd *v)
{
        _cleanup_free_ char *val = NULL;
        int r = xs_conn_read(m->xs, XBT_NULL, v->path, &val, NULL);

        return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

struct backend_state {
        int state;
        int online;
        int opened;
};

/* From a snapshot with SNAP_STATE (and SNAP_OPENED when wanted): `online`
 * only counts with Closing or Closed (it is 1 otherwise), and `opened` only
 * while blkback is not Connected.  -ENOENT when the directory is gone. */
static int backend_state(struct vbd_manager *m, const struct vbd *v, const struct snapshot *snap,
                         struct backend_state *ret)
{
        int r;

        snap_value(snap, SNAP_STATE, &r);
        if (r == -ENOENT) {
                r = dir_state(m, v);
                if (r == 0)
                        return -ENOENT;
                if (r < 0)
                        return r;
        } else if (r < 0)
                return r;
        ret->state = snap_int(snap, SNAP_STATE, -1);
        ret->online = 1;
        if (ret->state == XB_CLOSING || ret->state == XB_CLOSED)
                ret->online = read_int(m, v, "online", 1);
        ret->opened = 0;
        if (ret->state != XB_CONNECTED)
                ret->opened = snap_int(snap, SNAP_OPENED, 0);
        return 0;
}

static int read_backend_state(struct vbd_manager *m, const struct vbd *v, bool want_opened,
                              struct backend_state *ret)
{
        _cleanup_(snapshot_clear) struct snapshot snap = { 0 };
        int r;

        r = read_snapshot(m, v, SNAP(SNAP_STATE) | (want_opened ? SNAP(SNAP_OPENED) : 0), &snap);
        return r < 0 ? r : backend_state(m, v, &snap, ret);
}

static bool torn_down(const struct backend_state *s, bool published)
{
        /* online = 1 with Closing/Closed is a frontend reconnecting: blkback
         * keeps the device open then.  A published device is assumed open
         * by blkback, which opens it as soon as physical-device appears,
         * whatever the frontend does, until it says Closed; one never
         * published can go as soon as the toolstack closes the disk. */
        if (s->online != 0)
                return false;
        return s->state == XB_CLOSED || (s->state == XB_CLOSING && !published);
}

/* ---- failure ------------------------------------------------------------ */

#define PARAMS_SHOWN 160

/* params as a message quotes it: at most PARAMS_SHOWN bytes. */
static void shorten_params(char *params)
{
        if (strlen(params) > PARAMS_SHOWN)
                strcpy(params + PARAMS_SHOWN - 3, "...");
}

static void describe(struct vbd_manager *m, const struct vbd *v, const char *params, char *buf, size_t len)
{
        _cleanup_free_ char *dev = NULL, *shown = NULL;

        /* "domain 3 disk xvda (devid 51712, /srv/img)": what an administrator
         * finds in the domain's config. */
        read_node(m, XBT_NULL, v, "dev", &dev, NULL);
        if (params) {
                shown = strdup(params);
                if (shown)
                        shorten_params(shown);
        }
        if (dev && strlen(dev) > 32)
                dev[32] = '\0';
        snprintf(buf, len, "domain %" PRIu32 " disk %s (devid %" PRIu32 "%s%s)", v->domid,
                 dev ? dev : "?", v->devid, shown && *shown ? ", " : "", shown && *shown ? shown : "");
}

/* Writes hotplug-error and hotplug-status in one transaction, and nothing
 * else; a directory that is gone is left gone.  The status is "busy" for a
 * refusal by the sharing rule, as the stock script writes it, else
 * "error". */
static void fail_disk(struct vbd_manager *m, struct vbd *v, int error, const char *cause)
{
        _cleanup_free_ char *params = NULL;
        char who[256], msg[ERROR_MAX], shortened[ERROR_MAX];

        read_node(m, XBT_NULL, v, "params", &params, NULL);
        /* The disk's params once: when the cause quotes it, the disk's
         * description need not. */
        describe(m, v, params && *params && strstr(cause, params) ? NULL : params, who, sizeof(who));
        /* A long params quoted in full would push the cause out of the
         * message: quote it as describe() does. */
        if (params && strlen(params) > PARAMS_SHOWN) {
                xsv_abbreviate(shortened, sizeof(shortened), cause, params, PARAMS_SHOWN - 3);
                cause = shortened;
        }
        snprintf(msg, sizeof(msg), "%.250s: %.250s", who, cause);
        xsv_sanitize(msg); /* values quoted from xenstore stay on one line */
        log_error("%s", msg);
        free(v->error);
        v->error = strdup(msg);

        struct xs_op ops[] = {
                { 0 }, OP_WRITE(v, "hotplug-error", msg),
                OP_WRITE(v, "hotplug-status", error == -EBUSY ? "busy" : "error"),
        };
        backend_change(m, v, ops, ARRAY_SIZE(ops), NULL, NULL);
        set_state(m, v, VBD_FAILED);
        complete_pending(v, false, error < 0 ? error : -EIO, msg);
}

/* ---- attach ------------------------------------------------------------- */

#define FDSET_PREFIX "/dev/fdset/"

static int open_params(struct vbd_manager *m, struct vbd *v, const char *params, bool writable,
                       struct backing *ret, char *err, size_t errlen)
{
        uint32_t id;
        int r;

        if (strncmp(params, FDSET_PREFIX, strlen(FDSET_PREFIX)) == 0) {
                if (fdset_parse_path(params, &id) < 0) {
                        snprintf(err, errlen, "'%.64s' is not a valid fd set name", params);
                        return -EINVAL;
                }
                if (!m->cfg.open_fdset) {
                        snprintf(err, errlen, "fd sets are not available");
                        return -EOPNOTSUPP;
                }
                return m->cfg.open_fdset(m->cfg.fdset_userdata, id, writable, m->cfg.direct_io, ret,
                                         &v->fdset_token, err, errlen);
        }
        r = backing_open_bounded(params, writable, m->cfg.direct_io, m->cfg.open_timeout_usec, ret);
        if (r < 0)
                backing_describe_error(r, params, writable, ret, err, errlen);
        return r;
}

/* Publishes the device in one transaction.  -ENOENT: the directory went;
 * -EEXIST: someone else's physical-device is there (err says what). */
struct publication {
        const char *physdev;
        char *err;
        size_t errlen;
};

/* ops[1] read physical-device before the writes: only ours may be there. */
static int check_publication(struct xs_op *ops, size_t n, void *data)
{
        struct publication *p = data;

        if (ops[1].r == 0 && strcmp(ops[1].data, p->physdev) != 0) {
                snprintf(p->err, p->errlen, "physical-device is already set to '%.32s' by someone else",
                         ops[1].data);
                return -EEXIST;
        }
        return 0;
}

static int publish(struct vbd_manager *m, struct vbd *v, char *err, size_t errlen)
{
        const struct loop_device *d = &v->user->entry->dev;
        char physdev[32], seq[32];
        struct publication p = { .physdev = physdev, .err = err, .errlen = errlen };

        snprintf(physdev, sizeof(physdev), "%x:%x", major(d->devnum), minor(d->devnum));
        snprintf(seq, sizeof(seq), "%" PRIx64, d->diskseq);
        /* hotplug-status last: what watches it finds the rest in place. */
        struct xs_op ops[] = {
                { 0 },
                { .type = XS_READ, .dir = v->path, .node = "physical-device" },
                OP_WRITE(v, "physical-device", physdev),
                OP_WRITE(v, "physical-device-path", d->node),
                OP_WRITE(v, "diskseq", seq),
                OP_WRITE(v, "hotplug-status", "connected"),
        };
        size_t n = ARRAY_SIZE(ops);

        if (!d->diskseq) { /* a kernel without diskseq: no node */
                ops[4] = ops[5];
                n--;
        }
        return backend_change(m, v, ops, n, check_publication, &p);
}

/* A domain's node, e.g. /local/domain/<domid>/vm; NULL when absent. */
static char *domain_node(struct vbd_manager *m, uint32_t domid, const char *node)
{
        char path[96];
        char *v = NULL;

        snprintf(path, sizeof(path), "/local/domain/%" PRIu32 "/%s", domid, node);
        return xs_conn_read(m->xs, XBT_NULL, path, &v, NULL) == 0 ? v : NULL;
}

/* A domain's target (the domain a stub domain serves), or UINT32_MAX. */
static uint32_t domain_target(struct vbd_manager *m, uint32_t domid)
{
        _cleanup_free_ char *t = domain_node(m, domid, "target");
        uint32_t id;

        return t && xsv_parse_u32(t, strlen(t), &id) ? id : UINT32_MAX;
}

/* The stock script's same_vm: may domains a and b share a file read-write?
 * When they are one VM (the same /local/domain/N/vm: a domain and its copy
 * in a local migration or restore, or one domain's two disks), or one is
 * the other's stub domain, or the stub domain of one VM's domain.  Unlike
 * the stock script, a domain whose vm node is gone (being destroyed) is
 * not taken for the same VM. */
static bool related_domains(struct vbd_manager *m, uint32_t a, uint32_t b)
{
        _cleanup_free_ char *vm_a = NULL, *vm_b = NULL;
        uint32_t ta, tb;

        if (a == UINT32_MAX || b == UINT32_MAX)
                return false;
        vm_a = domain_node(m, a, "vm");
        vm_b = domain_node(m, b, "vm");
        if (vm_a && vm_b && strcmp(vm_a, vm_b) == 0)
                return true;
        ta = domain_target(m, a);
        tb = domain_target(m, b);
        if (ta == b || tb == a)
                return true;
        for (int i = 0; i < 2; i++) {
                uint32_t t = i ? ta : tb;
                const char *vm = i ? vm_b : vm_a;
                _cleanup_free_ char *tvm = NULL;

                if (t == UINT32_MAX || !vm)
                        continue;
                tvm = domain_node(m, t, "vm");
                if (tvm && strcmp(tvm, vm) == 0)
                        return true;
        }
        return false;
}

struct relation {
        struct vbd_manager *m;
        uint32_t domid;
};

static bool may_share(const struct cache_user *holder, void *data)
{
        const struct relation *rel = data;

        return related_domains(rel->m, rel->domid, holder->domid);
}

/* Opens the disk's backing and takes a device for it from the cache
 * (v->user), from what snap (SNAP_SETUP) read.  Returns 0; 1 when there is
 * nothing to do yet (params not written, or xenstored gone: the resync
 * after reconnection retries); -errno with err set. */
static int acquire(struct vbd_manager *m, struct vbd *v, const struct snapshot *snap, char *err, size_t errlen)
{
        const char *params, *mode;
        struct backing b = { .fd = -1 };
        struct cache_request req;
        struct relation rel = { .m = m, .domid = v->domid };
        enum cache_access access;
        char name[64];
        size_t plen;
        int r;

        params = snap_value(snap, SNAP_PARAMS, &r);
        if (r == -ENOENT) {
                if (v->state == VBD_NEW)
                        set_state(m, v, VBD_WAITING); /* not written yet */
                return 1;
        }
        if (r < 0)
                return 1;
        plen = snap->ops[snap->idx[SNAP_PARAMS]].len;

        mode = snap_value(snap, SNAP_MODE, &r);
        if (r == -ENOENT) {
                snprintf(err, errlen, "the backend has no mode node");
                return -EINVAL;
        }
        if (r < 0)
                return 1;
        if (xsv_parse_mode(mode, &access) < 0) {
                snprintf(err, errlen, "mode '%.16s' is not r, w or w!", mode);
                return -EINVAL;
        }
        r = xsv_check_params(params, plen, err, errlen);
        if (r < 0)
                return r;

        r = open_params(m, v, params, access != CACHE_RO, &b, err, errlen);
        if (r < 0)
                return r;
        crashpoint("after-open");

        snprintf(name, sizeof(name), "domain %" PRIu32 " disk %" PRIu32, v->domid, v->devid);
        req = (struct cache_request){
                .backing = &b,
                .path = params,
                .cfg = {
                        .read_only = access == CACHE_RO,
                        .direct_io = m->cfg.direct_io,
                        .block_size = m->cfg.block_size,
                },
                .access = access,
                .name = name,
                .domid = v->domid,
                .devid = v->devid,
                .related = may_share,
                .related_data = &rel,
        };
        r = cache_acquire(m->cache, &req, &v->user, err, errlen);
        backing_close(&b);
        if (r < 0) {
                v->user = NULL;
                drop_user(m, v);
                return r;
        }
        crashpoint("after-configure");
        return 0;
}

/* Publishes the device v->user holds and keeps holding it for blkback.
 * Returns false when v was forgotten (freed). */
static bool publish_disk(struct vbd_manager *m, struct vbd *v)
{
        char err[ERROR_MAX] = "";
        int r;

        v->publish_due = true;
        v->maybe_published = true;
        r = publish(m, v, err, sizeof(err));
        if (r == -ENOENT) {
                /* Removed mid-attach: nothing of ours may stay. */
                log_info("%s went away while it was being set up.", v->path);
                vbd_forget(m, v);
                return false;
        }
        if (r == -ENOTCONN) {
                /* The commit may have landed with its reply lost: blkback may
                 * be opening what physical-device names.  Keep holding the
                 * device, or its major:minor could serve another disk; the
                 * resync after reconnection publishes again (the same nodes)
                 * or lets it go. */
                log_warning("%s: xenstored went away while the disk was published; holding %s until it is back.",
                            v->path, v->user->entry->dev.node);
                set_state(m, v, VBD_PREPARED);
                return true;
        }
        if (r < 0) {
                v->maybe_published = false; /* aborted: nothing was written */
                drop_user(m, v);
                if (v->state == VBD_PREPARED)
                        set_state(m, v, VBD_WAITING);
                if (!*err)
                        snprintf(err, sizeof(err), "cannot publish the device: %s", strerror(-r));
                return fail_disk(m, v, r, err), true;
        }
        log_debug("%s: published %s.", v->path, v->user->entry->dev.node);
        crashpoint("after-publish");
        set_state(m, v, VBD_HELD);
        complete_pending(v, false, 0, NULL);
        return true;
}

/* Sets the disk up from what snap (SNAP_SETUP) read.  prepare_only: a
 * block-loopd disk whose add has not run yet gets its device, but nothing
 * in xenstore: blkback opens whatever physical-device names at once, and a
 * running guest's frontend then connects, so the backend could pass
 * InitWait before libxl, which waits for exactly InitWait and only then
 * runs the script, has seen it.  A failure then is only noted: the add
 * tries again and reports it.  Returns false when v was forgotten. */
static bool attach(struct vbd_manager *m, struct vbd *v, const struct snapshot *snap, bool prepare_only)
{
        /* Room for a cause that quotes params whole: fail_disk() shortens it. */
        char err[ERROR_MAX + PATH_MAX] = "";
        int r;

        if (prepare_only && v->prepare_failed)
                return true;
        r = acquire(m, v, snap, err, sizeof(err));
        if (r > 0)
                return true;
        if (r < 0 && prepare_only) {
                v->prepare_failed = true;
                log_debug("%s: not prepared ahead of its add: %s", v->path, err);
                return true;
        }
        if (r < 0)
                return fail_disk(m, v, r, err), true;
        if (prepare_only) {
                log_debug("%s: prepared %s; published when block-loopd adds it.", v->path,
                          v->user->entry->dev.node);
                set_state(m, v, VBD_PREPARED);
                return true;
        }
        return publish_disk(m, v);
}

/* Removes what publish() wrote, if the directory is still there. */
static int unpublish(struct vbd_manager *m, struct vbd *v)
{
        struct xs_op ops[] = {
                { 0 },
                OP_RM(v, "physical-device"),
                OP_RM(v, "physical-device-path"),
                OP_RM(v, "diskseq"),
                OP_RM(v, "hotplug-status"),
        };

        return backend_change(m, v, ops, ARRAY_SIZE(ops), NULL, NULL);
}

/* Unpublishes, then lets go of the device: never the other way round, or
 * its major:minor, freed, could be set up for another disk while
 * physical-device still names it. */
static void release(struct vbd_manager *m, struct vbd *v, bool dir_gone)
{
        if (!dir_gone && v->maybe_published) {
                int r = unpublish(m, v);
                if (r == -ENOTCONN) {
                        log_warning("%s: xenstored went away before the disk was unpublished; "
                                    "holding its device until it is back.", v->path);
                        return; /* the resync after reconnection looks again */
                }
                if (r == -ENOENT)
                        dir_gone = true;
                else if (r < 0)
                        log_warning("%s: cannot remove the published nodes: %s.", v->path, strerror(-r));
        }
        v->maybe_published = false;
        if (v->user)
                log_debug("%s: released %s.", v->path, v->user->entry->dev.node);
        drop_user(m, v);
        if (dir_gone)
                return vbd_forget(m, v);
        set_state(m, v, VBD_RELEASED);
        complete_pending(v, true, 0, NULL);
}

/* ---- adoption of what an earlier run published ----------------------------- */

/* Opens what physical-device-path names, if it is still devnum.  The path
 * comes from xenstore: look at the inode (O_PATH) before opening it for
 * I/O, since opening a FIFO or a character device can have effects of its
 * own, and reopen that same inode through /proc/self/fd. */
static int open_published(const char *node, dev_t devnum, int *ret)
{
        _cleanup_close_ int path_fd = -1;
        struct stat st;
        char link[64];
        int fd;

        if (node[0] != '/')
                return -EINVAL;
        path_fd = open(node, O_PATH | O_CLOEXEC);
        if (path_fd < 0)
                return negative_errno();
        if (fstat(path_fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != devnum)
                return -ESTALE;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", path_fd);
        fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != devnum) {
                safe_close(fd);
                return -ESTALE;
        }
        *ret = fd;
        return 0;
}

/* A disk found published (hotplug-status connected) by an earlier run of the
 * daemon: take it over with the device it names, never a new one.  Returns
 * 1 when adopted, 0 when it is not ours to adopt, -errno (with the disk
 * failed) when its device is gone. */
static int adopt(struct vbd_manager *m, struct vbd *v)
{
        _cleanup_free_ char *status = NULL, *physdev = NULL, *node = NULL, *seq = NULL,
                            *params = NULL, *mode = NULL;
        struct cache_entry *e;
        struct backend_state s;
        enum cache_access access = CACHE_RO;
        uint64_t diskseq = 0;
        char name[64];
        dev_t devnum;
        int r, fd;

        if (read_node(m, XBT_NULL, v, "hotplug-status", &status, NULL) < 0 || strcmp(status, "connected") != 0)
                return 0;
        if (read_node(m, XBT_NULL, v, "physical-device", &physdev, NULL) < 0 || !xsv_parse_physdev(physdev, &devnum))
                return 0;
        if (read_node(m, XBT_NULL, v, "diskseq", &seq, NULL) == 0 && !xsv_parse_diskseq(seq, &diskseq))
                return 0;
        read_node(m, XBT_NULL, v, "params", &params, NULL);
        if (read_node(m, XBT_NULL, v, "mode", &mode, NULL) == 0)
                (void)xsv_parse_mode(mode, &access);
        if (read_backend_state(m, v, true, &s) < 0)
                return 0;

        e = cache_find_device(m->cache, devnum);
        if (e && diskseq && e->dev.diskseq != diskseq)
                e = NULL;
        if (!e) {
                r = -ENOENT;
                if (read_node(m, XBT_NULL, v, "physical-device-path", &node, NULL) == 0)
                        r = open_published(node, devnum, &fd);
                if (r >= 0)
                        r = cache_adopt_device(m->cache, fd, diskseq, params, &e);
                if (r < 0) {
                        fail_disk(m, v, r, "its loop device, set up by an earlier run of xen-loopd, is gone");
                        return r;
                }
        }
        snprintf(name, sizeof(name), "domain %" PRIu32 " disk %" PRIu32, v->domid, v->devid);
        r = cache_adopt_user(m->cache, e, name, v->domid, v->devid, access,
                             !(s.opened == 1 || s.state == XB_CONNECTED), &v->user);
        if (r < 0) {
                fail_disk(m, v, r, "its loop device, set up by an earlier run of xen-loopd, is gone");
                return r;
        }
        v->publish_due = v->maybe_published = true;
        log_info("%s: adopted %s from an earlier run.", v->path, e->dev.node);
        set_state(m, v, v->user->holding ? VBD_HELD : VBD_CONNECTED);
        complete_pending(v, false, 0, NULL);
        return 1;
}

/* ---- the state machine -------------------------------------------------- */

/* How a disk reaches the daemon, from its script node.  No script node, or
 * an empty one: the toolstack runs no script and leaves the disk to the
 * watch.  block-loopd (or xen-loopctl): libxl runs it as the hotplug script,
 * and the disk is published when its add asks.  Anything else (the stock
 * script, or "/etc/xen/scripts/", which stock libxl writes for an empty
 * script= and then fails to run) belongs to someone else. */
enum claim { CLAIM_FOREIGN, CLAIM_WATCH, CLAIM_SCRIPT };

static enum claim claim_of(const char *script)
{
        const char *base;

        if (!script || !*script)
                return CLAIM_WATCH;
        base = strrchr(script, '/');
        base = base ? base + 1 : script;
        if (strcmp(base, "block-loopd") == 0 || strcmp(base, "xen-loopctl") == 0)
                return CLAIM_SCRIPT;
        return CLAIM_FOREIGN;
}

/* A disk not set up yet: everything it takes to decide and to attach, in
 * one round trip. */
#define SNAP_SETUP (SNAP(SNAP_SCRIPT) | SNAP(SNAP_STATE) | SNAP(SNAP_PARAMS) | SNAP(SNAP_MODE))

/* Whether the directory of a failed or released disk was destroyed and
 * written anew for another disk between two looks: online again, and back
 * in Initialising, or in InitWait (blkback switches a new vbd within
 * milliseconds, so a detach and re-attach in one batch of events is only
 * seen there).  InitWait alone is no proof: a failed disk keeps its
 * hotplug-status (a new one has none), and a released one must have been
 * torn down. */
static bool recreated(struct vbd_manager *m, const struct vbd *v, const struct backend_state *s)
{
        _cleanup_free_ char *status = NULL;

        if (v->user || (s->state != XB_INITIALISING && s->state != XB_INITWAIT))
                return false;
        if (read_int(m, v, "online", 1) != 1)
                return false;
        if (s->state == XB_INITIALISING)
                return true;
        if (v->state == VBD_FAILED)
                return read_node(m, XBT_NULL, v, "hotplug-status", &status, NULL) == -ENOENT;
        return v->saw_teardown;
}

static void evaluate(struct vbd_manager *m, struct vbd *v)
{
        _cleanup_(snapshot_clear) struct snapshot snap = { 0 };
        struct backend_state s;
        int r;

        switch (v->state) {
        case VBD_NEW:
        case VBD_WAITING: {
                const char *script;
                enum claim claim;

                if (read_snapshot(m, v, SNAP_SETUP, &snap) < 0)
                        return; /* disconnected: the resync after reconnection retries */
                r = backend_state(m, v, &snap, &s);
                if (r == -ENOENT)
                        return vbd_forget(m, v);
                if (r < 0)
                        return;
                script = snap_value(&snap, SNAP_SCRIPT, &r);
                if (r < 0 && r != -ENOENT)
                        return;
                claim = claim_of(script);
                if (v->state == VBD_NEW && claim == CLAIM_FOREIGN && !v->requested) {
                        set_state(m, v, VBD_FOREIGN);
                        return;
                }
                if (v->state == VBD_NEW && v->found_by_scan) {
                        v->found_by_scan = false;
                        r = adopt(m, v);
                        if (r != 0) {
                                snapshot_clear(&snap);
                                if (r > 0)
                                        evaluate(m, v); /* blkback may be done meanwhile */
                                return;
                        }
                }
                if (s.online == 0 && (s.state == XB_CLOSING || s.state == XB_CLOSED)) {
                        /* Torn down before we ever set it up. */
                        v->saw_teardown = true;
                        set_state(m, v, VBD_RELEASED);
                        complete_pending(v, false, -ENODEV, "the disk was torn down before it was set up");
                        return complete_pending(v, true, 0, NULL);
                }
                /* Whatever blkback or the toolstack write from now on comes
                 * as a watch event and brings the disk back here: no need
                 * to read the state again after publishing. */
                attach(m, v, &snap, claim == CLAIM_SCRIPT && !v->requested);
                return;
        }
        case VBD_PREPARED:
        case VBD_HELD:
        case VBD_CONNECTED:
                /* A set-up disk whose params went was removed, and what is
                 * at its path now was written anew by a late writer —
                 * blkback's connect() writes sectors and info, the
                 * toolstack's watchers their nodes, without checking the
                 * directory still exists: that debris is not the disk. */
                r = read_snapshot(m, v, SNAP(SNAP_STATE) | SNAP(SNAP_PARAMS) |
                                  (v->state != VBD_CONNECTED ? SNAP(SNAP_OPENED) : 0), &snap);
                if (r < 0)
                        return;
                snap_value(&snap, SNAP_PARAMS, &r);
                if (r == 0)
                        r = backend_state(m, v, &snap, &s);
                if (r == -ENOENT)
                        return release(m, v, true);
                if (r < 0)
                        return;
                if (torn_down(&s, v->maybe_published)) {
                        v->saw_teardown = true;
                        return release(m, v, false);
                }
                if (v->state == VBD_PREPARED) {
                        if (v->requested || v->publish_due)
                                publish_disk(m, v);
                        return;
                }
                if (v->state == VBD_HELD && (s.opened == 1 || s.state == XB_CONNECTED)) {
                        cache_user_unhold(m->cache, v->user);
                        set_state(m, v, VBD_CONNECTED);
                        log_debug("%s: blkback holds %s now.", v->path, v->user->entry->dev.node);
                }
                return;
        case VBD_FAILED:
        case VBD_RELEASED:
                if (read_snapshot(m, v, SNAP(SNAP_STATE), &snap) < 0)
                        return;
                r = backend_state(m, v, &snap, &s);
                if (r == -ENOENT)
                        return vbd_forget(m, v);
                if (r < 0)
                        return;
                if (recreated(m, v, &s)) {
                        log_debug("%s: written anew for another disk.", v->path);
                        snapshot_clear(&snap);
                        v->requested = v->prepare_failed = v->publish_due = v->saw_teardown = false;
                        free(v->error);
                        v->error = NULL;
                        set_state(m, v, VBD_NEW);
                        return evaluate(m, v);
                }
                return;
        case VBD_FOREIGN:
                if (dir_state(m, v) == 0)
                        return vbd_forget(m, v);
                return;
        case _VBD_STATE_MAX:
                break;
        }
}

/* ---- event intake ------------------------------------------------------- */

static void mark_dirty(struct vbd_manager *m, struct vbd *v)
{
        if (v->dirty)
                return;
        /* Queued behind the others: a disk released and its file taken by
         * another in one batch is released first. */
        v->dirty = true;
        v->dirty_next = NULL;
        *m->dirty_tail = v;
        m->dirty_tail = &v->dirty_next;
        sd_event_source_set_enabled(m->defer, SD_EVENT_ONESHOT);
}

/* Nodes that can move a disk on, per state; writes of our own are not. */
static bool node_matters(const struct vbd *v, const char *node)
{
        static const char *const setup[] = { "params", "mode", "script", "state", "online" };
        static const char *const running[] = { "state", "online", "opened" };

        if (!node)
                return true; /* the directory itself: created or removed */
        switch (v->state) {
        case VBD_NEW:
        case VBD_WAITING:
                for (size_t i = 0; i < ARRAY_SIZE(setup); i++)
                        if (strcmp(node, setup[i]) == 0)
                                return true;
                return false;
        case VBD_PREPARED:
        case VBD_HELD:
        case VBD_CONNECTED:
                for (size_t i = 0; i < ARRAY_SIZE(running); i++)
                        if (strcmp(node, running[i]) == 0)
                                return true;
                return false;
        default:
                return false;
        }
}

static void scan_domain(struct vbd_manager *m, uint32_t domid)
{
        char path[PATH_MAX];
        _cleanup_free_ char **ents = NULL;
        unsigned n = 0;
        int r;

        snprintf(path, sizeof(path), "%s/%" PRIu32, m->base, domid);
        r = xs_conn_directory(m->xs, XBT_NULL, path, &ents, &n);
        if (r < 0) {
                if (r != -ENOENT && r != -ENOTCONN)
                        log_warning("Cannot list %s: %s.", path, strerror(-r));
                n = 0;
        }
        for (unsigned i = 0; i < n; i++) {
                char dev[PATH_MAX + 16];
                uint32_t devid;
                struct vbd *v;

                if (!xsv_parse_u32(ents[i], strlen(ents[i]), &devid))
                        continue;
                snprintf(dev, sizeof(dev), "%s/%s", path, ents[i]);
                v = vbd_get(m, dev, strlen(dev), domid, devid, true);
                if (!v)
                        continue;
                if (v->state == VBD_NEW)
                        v->found_by_scan = true;
                mark_dirty(m, v);
        }
}

/* Marks every known disk dirty (those gone then notice), and every listed
 * one in xenstore, new ones included. */
static void rescan(struct vbd_manager *m)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        _cleanup_free_ char **doms = NULL;
        unsigned n = 0;
        struct vbd *v;
        int r;

        while (hashmap_iterate(m->by_path, &it, (void **)&v, NULL))
                mark_dirty(m, v);
        r = xs_conn_directory(m->xs, XBT_NULL, m->base, &doms, &n);
        if (r < 0) {
                /* Refused, or changing under every read of its parts: say
                 * so; the disks known are looked at all the same. */
                if (r != -ENOENT && r != -ENOTCONN)
                        log_warning("Cannot list %s: %s.", m->base, strerror(-r));
                return;
        }
        for (unsigned i = 0; i < n; i++) {
                uint32_t domid;
                if (xsv_parse_u32(doms[i], strlen(doms[i]), &domid))
                        scan_domain(m, domid);
        }
}

static void domain_changed(struct vbd_manager *m, uint32_t domid)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        char path[PATH_MAX];
        struct vbd *v;

        snprintf(path, sizeof(path), "%s/%" PRIu32, m->base, domid);
        if (xs_conn_exists(m->xs, XBT_NULL, path))
                return scan_domain(m, domid);
        /* The domain's directory went: so did every disk in it. */
        while (hashmap_iterate(m->by_path, &it, (void **)&v, NULL))
                if (v->domid == domid)
                        mark_dirty(m, v);
}

void vbd_manager_watch(struct vbd_manager *m, const char *path)
{
        if (!m)
                return;
        uint32_t domid = 0, devid = 0;
        const char *node = NULL;
        size_t len = 0;
        struct vbd *v;

        switch (split_path(m, path, &domid, &devid, &node, &len)) {
        case 0:
                m->rescan = true;
                sd_event_source_set_enabled(m->defer, SD_EVENT_ONESHOT);
                return;
        case 1:
                return domain_changed(m, domid);
        case 2:
                v = vbd_get(m, path, len, domid, devid, true);
                if (!v)
                        return (void)log_error("Out of memory tracking %s.", path);
                if (node_matters(v, node))
                        mark_dirty(m, v);
                return;
        default:
                return;
        }
}

void vbd_manager_resync(struct vbd_manager *m)
{
        if (!m)
                return;
        m->rescan = true;
        sd_event_source_set_enabled(m->defer, SD_EVENT_ONESHOT);
}

/* Adopts every disk a scan found published by an earlier run before any
 * disk is set up anew: a device handed back at start-up has no users until
 * its disk is adopted, and a new read-write disk decided first would not
 * see them. */
static void adopt_published(struct vbd_manager *m)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct vbd *v;

        while (hashmap_iterate(m->by_path, &it, (void **)&v, NULL)) {
                _cleanup_(snapshot_clear) struct snapshot snap = { 0 };
                const char *script;
                int r;

                if (!v->found_by_scan || v->state != VBD_NEW)
                        continue;
                if (read_snapshot(m, v, SNAP(SNAP_SCRIPT), &snap) < 0)
                        return;
                script = snap_value(&snap, SNAP_SCRIPT, &r);
                if ((r < 0 && r != -ENOENT) || claim_of(script) == CLAIM_FOREIGN)
                        continue;
                if (adopt(m, v) != 0)
                        v->found_by_scan = false;
        }
}

static int on_defer(sd_event_source *s, void *userdata)
{
        struct vbd_manager *m = userdata;

        bool scanning = false;

        if (m->rescan && xs_conn_connected(m->xs)) {
                m->rescan = false;
                scanning = true;
                rescan(m);
                adopt_published(m);
        }
        while (m->dirty) {
                struct vbd *v = m->dirty;
                m->dirty = v->dirty_next;
                if (!m->dirty)
                        m->dirty_tail = &m->dirty;
                v->dirty = false;
                evaluate(m, v);
        }
        /* Devices handed back at start-up that no disk claimed in the first
         * full scan are let go. */
        if (scanning && xs_conn_connected(m->xs) && !m->scanned) {
                m->scanned = true;
                if (m->cfg.settled)
                        m->cfg.settled(m->cfg.settled_userdata);
        }
        if (m->scanned)
                cache_settle(m->cache);
        return 0;
}

/* ---- requests from block-loopd ------------------------------------------ */

static int resolve(struct vbd_manager *m, const char *path, char abs[static PATH_MAX], struct vbd **ret)
{
        uint32_t domid, devid;
        const char *node = NULL;
        size_t len = 0;
        int n;

        /* No manager yet: xenstored has not answered since start-up. */
        if (!m)
                return -ENOTCONN;

        if (path[0] == '/')
                n = snprintf(abs, PATH_MAX, "%s", path);
        else
                n = snprintf(abs, PATH_MAX, "%s/%s", m->home, path);
        if (n < 0 || n >= PATH_MAX)
                return -EINVAL;
        while (n > 1 && abs[n - 1] == '/')
                abs[--n] = '\0';
        if (split_path(m, abs, &domid, &devid, &node, &len) != 2 || node)
                return -EINVAL;
        *ret = vbd_get(m, abs, len, domid, devid, true);
        return *ret ? 0 : -ENOMEM;
}

struct cache_user *vbd_find_user(struct vbd_manager *m, const char *path)
{
        char abs[PATH_MAX];
        struct vbd *v;

        if (!m)
                return NULL;
        if (path[0] == '/')
                snprintf(abs, sizeof(abs), "%s", path);
        else
                snprintf(abs, sizeof(abs), "%s/%s", m->home, path);
        v = hashmap_get(m->by_path, abs);
        return v ? v->user : NULL;
}

void vbd_device_changed(struct vbd_manager *m, const struct cache_entry *e)
{
        char path[PATH_MAX], seq[32];

        if (!m)
                return;
        snprintf(seq, sizeof(seq), "%" PRIx64, e->dev.diskseq);
        for (const struct cache_user *u = e->users; u; u = u->next) {
                struct vbd *v;
                if (u->domid == UINT32_MAX)
                        continue;
                snprintf(path, sizeof(path), "%s/%" PRIu32 "/%" PRIu32, m->base, u->domid, u->devid);
                v = hashmap_get(m->by_path, path);
                if (!v || v->user != u)
                        continue;
                struct xs_op ops[] = { { 0 }, OP_WRITE(v, "diskseq", seq) };
                backend_change(m, v, ops, ARRAY_SIZE(ops), NULL, NULL);
        }
}

int vbd_request_add(struct vbd_manager *m, const char *path, struct ctl_call *call)
{
        char abs[PATH_MAX];
        struct vbd *v;
        int r;

        r = resolve(m, path, abs, &v);
        if (r < 0)
                return r;
        if (!xs_conn_connected(m->xs))
                return -ENOTCONN;
        v->requested = true;
        if (v->state == VBD_FOREIGN)
                set_state(m, v, VBD_NEW);
        /* Settle it now rather than on the next iteration: the script waits.
         * A failed or released record may be a directory written anew. */
        if (v->state != VBD_HELD && v->state != VBD_CONNECTED)
                evaluate(m, v);
        if (!xs_conn_connected(m->xs)) {
                /* Lost while looking (no answer in time): say so now rather
                 * than keep the script waiting for a resync. */
                ctl_call_error(call, -ENOTCONN, "xenstored did not answer while %s was set up", abs);
                return 0;
        }
        if (hashmap_get(m->by_path, abs) != v) {
                ctl_call_error(call, -ENODEV, "%s does not exist", abs);
                return 0;
        }
        switch (v->state) {
        case VBD_HELD:
        case VBD_CONNECTED:
                reply_call(call, v, 0, NULL);
                return 0;
        case VBD_FAILED:
                ctl_call_error(call, -EIO, "%s", v->error ? v->error : "the disk failed");
                return 0;
        case VBD_RELEASED:
                ctl_call_error(call, -ENODEV, "%s has been torn down", v->path);
                return 0;
        default:
                return add_pending(v, call, false);
        }
}

int vbd_request_remove(struct vbd_manager *m, const char *path, struct ctl_call *call)
{
        char abs[PATH_MAX];
        struct vbd *v;
        int r;

        r = resolve(m, path, abs, &v);
        if (r < 0)
                return r;
        switch (v->state) {
        case VBD_PREPARED:
        case VBD_HELD:
        case VBD_CONNECTED:
                release(m, v, false);
                break;
        default:
                if (dir_state(m, v) == 0) {
                        vbd_forget(m, v);
                        break;
                }
                /* Nothing held: a failed, foreign or unknown disk. */
                complete_pending(v, false, -ECANCELED, "the disk was removed before it was set up");
                if (v->state != VBD_RELEASED)
                        set_state(m, v, VBD_RELEASED);
                break;
        }
        ctl_call_reply(call, NULL);
        return 0;
}

/* ---- setup -------------------------------------------------------------- */

int vbd_manager_new(sd_event *ev, struct xs_conn *xs, struct cache *cache,
                    const struct vbd_config *cfg, struct vbd_manager **ret)
{
        struct vbd_manager *m = calloc(1, sizeof(*m));
        int r = -ENOMEM;

        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(ev);
        m->xs = xs;
        m->cache = cache;
        m->cfg = *cfg;
        m->home = strdup(cfg->home);
        if (!m->home || asprintf(&m->base, "%s/backend/vbd", cfg->home) < 0) {
                m->base = NULL;
                goto fail;
        }
        m->cfg.home = m->home;
        if (!m->cfg.open_timeout_usec)
                m->cfg.open_timeout_usec = BACKING_OPEN_TIMEOUT_DEFAULT_USEC;
        m->base_len = strlen(m->base);
        m->dirty_tail = &m->dirty;
        m->by_path = hashmap_new(hash_string, equal_string);
        if (!m->by_path)
                goto fail;
        r = sd_event_add_defer(ev, &m->defer, on_defer, m);
        if (r < 0)
                goto fail;
        sd_event_source_set_enabled(m->defer, SD_EVENT_OFF);
        r = xs_conn_watch(xs, m->base, "vbd");
        if (r < 0)
                goto fail;
        *ret = m;
        return 0;
fail:
        vbd_manager_free(m);
        return r;
}

void vbd_manager_free(struct vbd_manager *m)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct vbd *v;

        if (!m)
                return;
        if (m->by_path) {
                while (hashmap_iterate(m->by_path, &it, (void **)&v, NULL)) {
                        struct pending *p;
                        while ((p = v->pending)) {
                                v->pending = p->next;
                                ctl_call_set_cancel(p->call, NULL, NULL);
                                free(p);
                        }
                        free(v->error);
                        free(v->path);
                        free(v);
                }
                hashmap_free(m->by_path);
        }
        sd_event_source_disable_unref(m->defer);
        sd_event_unref(m->event);
        free(m->home);
        free(m->base);
        free(m);
}

size_t vbd_manager_count(const struct vbd_manager *m, enum vbd_state s)
{
        return m && s < _VBD_STATE_MAX ? m->counts[s] : 0;
}

size_t vbd_manager_size(const struct vbd_manager *m) { return m ? hashmap_size(m->by_path) : 0; }
