/* vbd-setup.c — setting a disk up: opening its target, taking a device
 * from the registry, publishing it; failing it with a hotplug-error; and
 * releasing it, unpublished first. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "crashpoint.h"
#include "fdset.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "vbd-internal.h"
#include "values.h"

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
        vbd_read_node(m, XBT_NULL, v, "dev", &dev, NULL);
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
void vbd_fail_disk(struct vbd_manager *m, struct vbd *v, int error, const char *cause)
{
        _cleanup_free_ char *params = NULL;
        char who[256], msg[ERROR_MAX], shortened[ERROR_MAX];

        vbd_read_node(m, XBT_NULL, v, "params", &params, NULL);
        /* The disk's params once: when the cause quotes it, the disk's
         * description need not. */
        describe(m, v, params && *params && strstr(cause, params) ? NULL : params, who, sizeof(who));
        /* A long params quoted in full would push the cause out of the
         * message: quote it as describe() does. */
        if (params && strlen(params) > PARAMS_SHOWN) {
                val_abbreviate(shortened, sizeof(shortened), cause, params, PARAMS_SHOWN - 3);
                cause = shortened;
        }
        snprintf(msg, sizeof(msg), "%.250s: %.250s", who, cause);
        val_sanitize(msg); /* values quoted from xenstore stay on one line */
        log_error("%s", msg);
        free(v->error);
        v->error = strdup(msg);

        struct xsconn_op ops[] = {
                OP_WRITE(v, "hotplug-error", msg),
                OP_WRITE(v, "hotplug-status", error == -EBUSY ? "busy" : "error"),
        };
        vbd_backend_change(m, v, ops, ARRAY_SIZE(ops), NULL, NULL);
        vbd_set_state(m, v, VBD_FAILED);
        vbd_complete_pending(v, false, error < 0 ? error : -EIO, msg);
}

/* ---- set up ------------------------------------------------------------- */

struct params_open {
        struct vbd_manager *m;
        struct vbd *v;
        bool writable;
};

static int open_params_set(uint32_t id, void *data, struct backing *ret, char *err, size_t errlen)
{
        struct params_open *o = data;
        struct vbd_manager *m = o->m;

        if (!m->cfg.open_fdset) {
                snprintf(err, errlen, "fd sets are not available");
                return -EOPNOTSUPP;
        }
        return m->cfg.open_fdset(m->cfg.fdset_userdata, id, o->writable, m->cfg.direct_io, ret,
                                 &o->v->fdset_token, err, errlen);
}

static int open_params(struct vbd_manager *m, struct vbd *v, const char *params, bool writable,
                       struct backing *ret, char *err, size_t errlen)
{
        struct params_open o = { .m = m, .v = v, .writable = writable };

        return fdset_open_target(params, writable, m->cfg.direct_io, m->cfg.open_timeout_usec, open_params_set,
                                 &o, ret, err, errlen);
}

/* Publishes the device in one transaction.  -ENOENT: the directory went;
 * -EEXIST: someone else's physical-device is there (err says what). */
struct publication {
        const char *physdev;
        char *err;
        size_t errlen;
};

/* The read of physical-device, made before the writes: only ours may be
 * there. */
static int check_publication(const struct xsconn_op *ops, size_t n, void *data)
{
        struct publication *p = data;

        for (size_t k = 0; k < n; k++) {
                if (ops[k].type != XS_READ || ops[k].r != 0)
                        continue;
                if (strcmp(ops[k].data, p->physdev) != 0) {
                        snprintf(p->err, p->errlen, "physical-device is already set to '%.32s' by someone else",
                                 ops[k].data);
                        return -EEXIST;
                }
        }
        return 0;
}

static int publish(struct vbd_manager *m, struct vbd *v, char *err, size_t errlen)
{
        const struct loop_device *d;
        char physdev[32], seq[32];
        struct publication p = { .physdev = physdev, .err = err, .errlen = errlen };

        assert(v->user); /* only a disk with a device is published */
        d = &v->user->entry->dev;
        snprintf(physdev, sizeof(physdev), "%x:%x", major(d->devnum), minor(d->devnum));
        snprintf(seq, sizeof(seq), "%" PRIx64, d->diskseq);
        struct xsconn_op ops[5];
        size_t n = 0;

        ops[n++] = (struct xsconn_op){ .type = XS_READ, .dir = v->path, .node = "physical-device" };
        ops[n++] = OP_WRITE(v, "physical-device", physdev);
        ops[n++] = OP_WRITE(v, "physical-device-path", d->node);
        if (d->diskseq) /* a kernel without diskseq: no node */
                ops[n++] = OP_WRITE(v, "diskseq", seq);
        /* hotplug-status last: what watches it finds the rest in place. */
        ops[n++] = OP_WRITE(v, "hotplug-status", "connected");
        return vbd_backend_change(m, v, ops, n, check_publication, &p);
}

struct relation {
        struct vbd_manager *m;
        uint32_t domid;
};

static bool may_share(const struct registry_user *holder, void *data)
{
        const struct relation *rel = data;

        return vbd_related_domains(rel->m, rel->domid, holder->domid);
}

/* Whether holder, a disk, is torn down in xenstore already though its
 * events are still on their way: a disk detached and its file attached to
 * another in one go would otherwise be refused while the daemon reads the
 * new disk's directory ahead of the old one's teardown.  Its record is
 * queued to be released. */
static bool holder_gone(const struct registry_user *holder, void *data)
{
        const struct relation *rel = data;
        struct vbd *v = vbd_of_user(rel->m, holder); /* an attachment: there until detached */
        struct backend_state s;
        int r;

        if (!v)
                return false;
        r = vbd_read_backend_state(rel->m, v, false, &s);
        if (r != -ENOENT && (r < 0 || !vbd_torn_down(&s, v->maybe_published)))
                return false;
        vbd_mark_dirty(rel->m, v);
        return true;
}

/* Opens the disk's backing and takes a device for it from the registry
 * (v->user), from what snap (SNAP_SETUP) read.  Returns 0; 1 when there is
 * nothing to do yet (params not written, or xenstored gone: the resync
 * after reconnection retries); -errno with err set. */
static int acquire(struct vbd_manager *m, struct vbd *v, const struct snapshot *snap, char *err, size_t errlen)
{
        const char *params, *mode;
        struct backing b = { .fd = -1 };
        struct registry_request req;
        struct relation rel = { .m = m, .domid = v->domid };
        enum access access;
        char name[64];
        size_t plen;
        int r;

        params = vbd_snap_value(snap, SNAP_PARAMS, &r);
        if (r == -ENOENT) {
                if (v->state == VBD_NEW)
                        vbd_set_state(m, v, VBD_WAITING); /* not written yet */
                return 1;
        }
        if (r < 0)
                return 1;
        plen = snap->ops[snap->idx[SNAP_PARAMS]].len;

        mode = vbd_snap_value(snap, SNAP_MODE, &r);
        if (r == -ENOENT) {
                snprintf(err, errlen, "the backend has no mode node");
                return -EINVAL;
        }
        if (r < 0)
                return 1;
        if (val_parse_mode(mode, &access) < 0) {
                snprintf(err, errlen, "mode '%.16s' is not r, w or w!", mode);
                return -EINVAL;
        }
        r = val_check_params(params, plen, err, errlen);
        if (r < 0)
                return r;

        r = open_params(m, v, params, access != ACCESS_RO, &b, err, errlen);
        if (r < 0)
                return r;
        crashpoint("after-open");

        snprintf(name, sizeof(name), "domain %" PRIu32 " disk %" PRIu32, v->domid, v->devid);
        req = (struct registry_request){
                .backing = &b,
                .path = params,
                .cfg = {
                        .read_only = access == ACCESS_RO,
                        .direct_io = m->cfg.direct_io,
                        .block_size = m->cfg.block_size,
                },
                .access = access,
                .name = name,
                .domid = v->domid,
                .devid = v->devid,
                .related = may_share,
                .stale = holder_gone,
                .related_data = &rel,
        };
        r = registry_acquire(m->registry, &req, &v->user, err, errlen);
        backing_close(&b);
        if (r < 0) {
                v->user = NULL;
                vbd_drop_user(m, v);
                return r;
        }
        crashpoint("after-configure");
        return 0;
}

/* Publishes the device v->user holds and keeps holding it for blkback.
 * Returns false when v was forgotten (freed). */
bool vbd_publish_disk(struct vbd_manager *m, struct vbd *v)
{
        char err[ERROR_MAX] = "";
        int r;

        v->publish_due = true;
        v->maybe_published = true;
        r = publish(m, v, err, sizeof(err));
        if (r == -ENOENT) {
                /* Removed mid-setup: nothing of ours may stay. */
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
                vbd_set_state(m, v, VBD_PREPARED);
                return true;
        }
        if (r < 0) {
                v->maybe_published = false; /* aborted: nothing was written */
                vbd_drop_user(m, v);
                if (v->state == VBD_PREPARED)
                        vbd_set_state(m, v, VBD_WAITING);
                if (!*err)
                        snprintf(err, sizeof(err), "cannot publish the device: %s", strerror(-r));
                vbd_fail_disk(m, v, r, err);
                return true;
        }
        log_debug("%s: published %s.", v->path, v->user->entry->dev.node);
        crashpoint("after-publish");
        vbd_set_state(m, v, VBD_HELD);
        vbd_complete_pending(v, false, 0, NULL);
        return true;
}

/* Sets the disk up from what snap (SNAP_SETUP) read.  prepare_only: a
 * block-loopd disk whose add has not run yet gets its device, but nothing
 * in xenstore: blkback opens whatever physical-device names at once, and a
 * running guest's frontend then connects, so the backend could pass
 * InitWait before libxl, which waits for exactly InitWait and only then
 * runs the script, has seen it.  A failure then is only noted: the add
 * tries again and reports it.  Returns false when v was forgotten. */
bool vbd_setup(struct vbd_manager *m, struct vbd *v, const struct snapshot *snap, bool prepare_only)
{
        /* Room for a cause that quotes params whole: vbd_fail_disk() shortens it. */
        char err[ERROR_MAX + PATH_MAX] = "";
        int r;

        if (prepare_only && v->prepare_failed)
                return true;
        r = acquire(m, v, snap, err, sizeof(err));
        if (r > 0)
                return true;
        if (r < 0 && prepare_only) {
                v->prepare_failed = true;
                log_debug("%s: not prepared ahead of its add: %s.", v->path, err);
                return true;
        }
        if (r < 0) {
                vbd_fail_disk(m, v, r, err);
                return true;
        }
        if (prepare_only) {
                log_debug("%s: prepared %s; published when block-loopd adds it.", v->path,
                          v->user->entry->dev.node);
                vbd_set_state(m, v, VBD_PREPARED);
                return true;
        }
        return vbd_publish_disk(m, v);
}

/* Removes what publish() wrote, if the directory is still there. */
static int unpublish(struct vbd_manager *m, struct vbd *v)
{
        const struct xsconn_op ops[] = {
                OP_RM(v, "physical-device"),
                OP_RM(v, "physical-device-path"),
                OP_RM(v, "diskseq"),
                OP_RM(v, "hotplug-status"),
        };

        return vbd_backend_change(m, v, ops, ARRAY_SIZE(ops), NULL, NULL);
}

/* Unpublishes, then lets go of the device: never the other way round, or
 * its major:minor, freed, could be set up for another disk while
 * physical-device still names it. */
void vbd_release(struct vbd_manager *m, struct vbd *v, bool dir_gone)
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
                        log_warning_errno(r, "%s: cannot remove the published nodes: %m.", v->path);
        }
        v->maybe_published = false;
        if (v->user)
                log_debug("%s: released %s.", v->path, v->user->entry->dev.node);
        vbd_drop_user(m, v);
        if (dir_gone)
                return vbd_forget(m, v);
        vbd_set_state(m, v, VBD_RELEASED);
        vbd_complete_pending(v, true, 0, NULL);
}
