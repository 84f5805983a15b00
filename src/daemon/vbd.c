/* vbd.c — the vbd manager's records, its per-disk state machine and the
 * intake of xenstore events (see vbd.h, and vbd-internal.h for its parts). */
#include "vbd.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "proto.h"
#include "vbd-internal.h"
#include "values.h"

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

void vbd_set_state(struct vbd_manager *m, struct vbd *v, enum vbd_state s)
{
        assert(m && v);
        assert(s < _VBD_STATE_MAX);
        m->counts[v->state]--;
        m->counts[s]++;
        v->state = s;
}

/* ---- records ---------------------------------------------------------- */

/* Splits a path below the base into domid, devid and the node below the
 * device (NULL for the device directory itself).  Returns the number of
 * components understood: 0 (the base or above), 1 (a domain directory),
 * 2 (a device) or -1 (not ours, or malformed). */
int vbd_split_path(const struct vbd_manager *m, const char *path, uint32_t *domid,
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
        if (val_parse_u32(p, slash ? (size_t)(slash - p) : strlen(p), domid) < 0)
                return -1;
        if (!slash)
                return 1;
        p = slash + 1;
        slash = strchr(p, '/');
        if (val_parse_u32(p, slash ? (size_t)(slash - p) : strlen(p), devid) < 0)
                return -1;
        *dev_path_len = slash ? (size_t)(slash - path) : strlen(path);
        *node = slash ? slash + 1 : NULL;
        return 2;
}

struct vbd *vbd_get(struct vbd_manager *m, const char *path, size_t len, uint32_t domid,
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
        list_init(&v->pending);
        list_init(&v->dirty_link);
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

/* Lets go of the device and of the fd set fd it came from. */
void vbd_drop_user(struct vbd_manager *m, struct vbd *v)
{
        if (v->user)
                registry_release(m->registry, v->user);
        v->user = NULL;
        if (v->fdset_token && m->cfg.release_fdset)
                m->cfg.release_fdset(m->cfg.fdset_userdata, v->fdset_token);
        v->fdset_token = NULL;
}

void vbd_forget(struct vbd_manager *m, struct vbd *v)
{
        vbd_drop_user(m, v);
        vbd_complete_pending(v, false, -ENODEV, "the backend directory was removed before the disk was set up");
        vbd_complete_pending(v, true, 0, NULL);
        /* A record is forgotten only outside the dirty list walk. */
        list_unlink(&v->dirty_link);
        hashmap_remove(m->by_path, v->path);
        m->counts[v->state]--;
        free(v->error);
        free(v->path);
        free(v);
}

/* ---- the state machine -------------------------------------------------- */

enum claim vbd_claim_of(const char *script)
{
        if (!script || !*script)
                return CLAIM_WATCH;
        return proto_script_is_loopd(script) ? CLAIM_SCRIPT : CLAIM_FOREIGN;
}

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
        if (vbd_read_int(m, v, "online", 1) != 1)
                return false;
        if (s->state == XB_INITIALISING)
                return true;
        if (v->state == VBD_FAILED)
                return vbd_read_node(m, XBT_NULL, v, "hotplug-status", &status, NULL) == -ENOENT;
        return v->saw_teardown;
}

/* A disk not set up yet: claim it, adopt it (found by a scan), or set it up. */
static void evaluate_new(struct vbd_manager *m, struct vbd *v)
{
        _cleanup_(vbd_snapshot_clear) struct snapshot snap = { 0 };
        struct backend_state s;
        const char *script;
        enum claim claim;
        int r;

        if (vbd_read_snapshot(m, v, SNAP_SETUP, &snap) < 0)
                return; /* disconnected: the resync after reconnection retries */
        r = vbd_backend_state(m, v, &snap, &s);
        if (r == -ENOENT)
                return vbd_forget(m, v);
        if (r < 0)
                return;
        script = vbd_snap_value(&snap, SNAP_SCRIPT, &r);
        if (r < 0 && r != -ENOENT)
                return;
        claim = vbd_claim_of(script);
        if (v->state == VBD_NEW && claim == CLAIM_FOREIGN && !v->requested) {
                vbd_set_state(m, v, VBD_FOREIGN);
                return;
        }
        if (v->state == VBD_NEW && v->found_by_scan) {
                v->found_by_scan = false;
                r = vbd_adopt(m, v);
                if (r != 0) {
                        vbd_snapshot_clear(&snap);
                        if (r > 0)
                                vbd_evaluate(m, v); /* blkback may be done meanwhile */
                        return;
                }
        }
        if (s.online == 0 && (s.state == XB_CLOSING || s.state == XB_CLOSED)) {
                /* Torn down before we ever set it up. */
                v->saw_teardown = true;
                vbd_set_state(m, v, VBD_RELEASED);
                vbd_complete_pending(v, false, -ENODEV, "the disk was torn down before it was set up");
                vbd_complete_pending(v, true, 0, NULL);
                return;
        }
        /* Whatever blkback or the toolstack write from now on comes as a
         * watch event and brings the disk back here: no need to read the
         * state again after publishing. */
        vbd_setup(m, v, &snap, claim == CLAIM_SCRIPT && !v->requested);
}

/* A disk set up: published when due, handed to blkback, or released. */
static void evaluate_set_up(struct vbd_manager *m, struct vbd *v)
{
        _cleanup_(vbd_snapshot_clear) struct snapshot snap = { 0 };
        struct backend_state s;
        int r;

        /* A set-up disk whose params went was removed, and what is at its
         * path now was written anew by a late writer — blkback's connect()
         * writes sectors and info, the toolstack's watchers their nodes,
         * without checking the directory still exists: that debris is not
         * the disk. */
        r = vbd_read_snapshot(m, v, SNAP(SNAP_STATE) | SNAP(SNAP_PARAMS) |
                              (v->state != VBD_CONNECTED ? SNAP(SNAP_OPENED) : 0), &snap);
        if (r < 0)
                return;
        vbd_snap_value(&snap, SNAP_PARAMS, &r);
        if (r == 0)
                r = vbd_backend_state(m, v, &snap, &s);
        if (r == -ENOENT)
                return vbd_release(m, v, true);
        if (r < 0)
                return;
        if (vbd_torn_down(&s, v->maybe_published)) {
                v->saw_teardown = true;
                return vbd_release(m, v, false);
        }
        if (v->state == VBD_PREPARED) {
                if (v->requested || v->publish_due)
                        vbd_publish_disk(m, v);
                return;
        }
        if (v->state == VBD_HELD && (s.opened == 1 || s.state == XB_CONNECTED)) {
                registry_user_unhold(m->registry, v->user);
                vbd_set_state(m, v, VBD_CONNECTED);
                log_debug("%s: blkback holds %s now.", v->path, v->user->entry->dev.node);
        }
}

/* A failed or released disk: forgotten with its directory, or started
 * afresh when the directory was written anew for another disk. */
static void evaluate_ended(struct vbd_manager *m, struct vbd *v)
{
        _cleanup_(vbd_snapshot_clear) struct snapshot snap = { 0 };
        struct backend_state s;
        int r;

        if (vbd_read_snapshot(m, v, SNAP(SNAP_STATE), &snap) < 0)
                return;
        r = vbd_backend_state(m, v, &snap, &s);
        if (r == -ENOENT)
                return vbd_forget(m, v);
        if (r < 0 || !recreated(m, v, &s))
                return;
        log_debug("%s: written anew for another disk.", v->path);
        vbd_snapshot_clear(&snap);
        v->requested = v->prepare_failed = v->publish_due = v->saw_teardown = false;
        free(v->error);
        v->error = NULL;
        vbd_set_state(m, v, VBD_NEW);
        vbd_evaluate(m, v);
}

void vbd_evaluate(struct vbd_manager *m, struct vbd *v)
{
        assert(m && v);
        switch (v->state) {
        case VBD_NEW:
        case VBD_WAITING:
                return evaluate_new(m, v);
        case VBD_PREPARED:
        case VBD_HELD:
        case VBD_CONNECTED:
                return evaluate_set_up(m, v);
        case VBD_FAILED:
        case VBD_RELEASED:
                return evaluate_ended(m, v);
        case VBD_FOREIGN:
                if (vbd_dir_state(m, v) == 0)
                        vbd_forget(m, v);
                return;
        case _VBD_STATE_MAX:
                break;
        }
}

/* ---- event intake ------------------------------------------------------- */

void vbd_mark_dirty(struct vbd_manager *m, struct vbd *v)
{
        assert(m && v);
        if (list_is_linked(&v->dirty_link))
                return;
        /* Queued behind the others: a disk released and its file taken by
         * another in one batch is released first. */
        list_append(&m->dirty, &v->dirty_link);
        sd_event_source_set_enabled(m->defer, SD_EVENT_ONESHOT);
}

static bool is_one_of(const char *node, const char *const *names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(node, names[i]) == 0)
                        return true;
        return false;
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
                return is_one_of(node, setup, ARRAY_SIZE(setup));
        case VBD_PREPARED:
        case VBD_HELD:
        case VBD_CONNECTED:
                return is_one_of(node, running, ARRAY_SIZE(running));
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
        r = xsconn_directory(m->xs, XBT_NULL, path, &ents, &n);
        if (r < 0) {
                if (r != -ENOENT && r != -ENOTCONN)
                        log_warning_errno(r, "Cannot list %s: %m.", path);
                n = 0;
        }
        for (unsigned i = 0; i < n; i++) {
                char dev[PATH_MAX + 16];
                uint32_t devid;
                struct vbd *v;

                if (val_parse_u32(ents[i], strlen(ents[i]), &devid) < 0)
                        continue;
                snprintf(dev, sizeof(dev), "%s/%s", path, ents[i]);
                v = vbd_get(m, dev, strlen(dev), domid, devid, true);
                if (!v)
                        continue;
                if (v->state == VBD_NEW)
                        v->found_by_scan = true;
                vbd_mark_dirty(m, v);
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
                vbd_mark_dirty(m, v);
        r = xsconn_directory(m->xs, XBT_NULL, m->base, &doms, &n);
        if (r < 0) {
                /* Refused, or changing under every read of its parts: say
                 * so; the disks known are looked at all the same. */
                if (r != -ENOENT && r != -ENOTCONN)
                        log_warning_errno(r, "Cannot list %s: %m.", m->base);
                return;
        }
        for (unsigned i = 0; i < n; i++) {
                uint32_t domid;
                if (val_parse_u32(doms[i], strlen(doms[i]), &domid) == 0)
                        scan_domain(m, domid);
        }
}

static void domain_changed(struct vbd_manager *m, uint32_t domid)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        char path[PATH_MAX];
        struct vbd *v;

        snprintf(path, sizeof(path), "%s/%" PRIu32, m->base, domid);
        if (xsconn_exists(m->xs, XBT_NULL, path))
                return scan_domain(m, domid);
        /* The domain's directory went: so did every disk in it. */
        while (hashmap_iterate(m->by_path, &it, (void **)&v, NULL))
                if (v->domid == domid)
                        vbd_mark_dirty(m, v);
}

void vbd_manager_watch(struct vbd_manager *m, const char *path)
{
        assert(path);
        if (!m)
                return;
        uint32_t domid = 0, devid = 0;
        const char *node = NULL;
        size_t len = 0;
        struct vbd *v;

        switch (vbd_split_path(m, path, &domid, &devid, &node, &len)) {
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
                        vbd_mark_dirty(m, v);
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

static int on_defer(sd_event_source *s, void *userdata)
{
        struct vbd_manager *m = userdata;

        bool scanning = false;

        if (m->rescan && xsconn_connected(m->xs)) {
                m->rescan = false;
                scanning = true;
                rescan(m);
                vbd_adopt_published(m);
        }
        while (!list_is_empty(&m->dirty)) {
                struct vbd *v = list_first_entry(&m->dirty, struct vbd, dirty_link);
                list_unlink(&v->dirty_link);
                vbd_evaluate(m, v);
        }
        /* Devices handed back at start-up that no disk claimed in the first
         * full scan are let go. */
        if (scanning && xsconn_connected(m->xs) && !m->scanned) {
                m->scanned = true;
                if (m->cfg.first_scan_done)
                        m->cfg.first_scan_done(m->cfg.first_scan_userdata);
        }
        if (m->scanned)
                registry_drop_unclaimed(m->registry);
        return 0;
}

struct vbd *vbd_of_user(struct vbd_manager *m, const struct registry_user *u)
{
        char path[PATH_MAX];
        struct vbd *v;

        if (u->domid == UINT32_MAX)
                return NULL; /* an attachment */
        snprintf(path, sizeof(path), "%s/%" PRIu32 "/%" PRIu32, m->base, u->domid, u->devid);
        v = hashmap_get(m->by_path, path);
        return v && v->user == u ? v : NULL;
}

void vbd_device_changed(struct vbd_manager *m, const struct registry_entry *e)
{
        const struct registry_user *u;
        char seq[32];

        assert(e);
        if (!m)
                return;
        snprintf(seq, sizeof(seq), "%" PRIx64, e->dev.diskseq);
        list_foreach_entry(u, &e->users, link) {
                struct vbd *v = vbd_of_user(m, u);
                if (!v)
                        continue;
                const struct xsconn_op ops[] = { OP_WRITE(v, "diskseq", seq) };
                vbd_backend_change(m, v, ops, ARRAY_SIZE(ops), NULL, NULL);
        }
}

/* ---- setup -------------------------------------------------------------- */

int vbd_manager_new(sd_event *ev, struct xsconn *xs, struct registry *registry,
                    const struct vbd_config *cfg, struct vbd_manager **ret)
{
        struct vbd_manager *m = calloc(1, sizeof(*m));
        int r = -ENOMEM;

        assert(ev && xs && registry && cfg && ret);
        if (!m)
                return -ENOMEM;
        list_init(&m->dirty);
        m->event = sd_event_ref(ev);
        m->xs = xs;
        m->registry = registry;
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
        m->by_path = hashmap_new(hash_string, equal_string);
        if (!m->by_path)
                goto fail;
        r = sd_event_add_defer(ev, &m->defer, on_defer, m);
        if (r < 0)
                goto fail;
        sd_event_source_set_enabled(m->defer, SD_EVENT_OFF);
        r = xsconn_watch(xs, m->base, "vbd");
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
                        struct pending *p, *tmp;
                        list_foreach_entry_safe(p, tmp, &v->pending, link) {
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
