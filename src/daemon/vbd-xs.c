/* vbd-xs.c — reading a disk's directory (snapshots of the nodes its
 * evaluation looks at, the backend's state) and changing it in one
 * transaction that never re-creates a removed directory; the domains'
 * nodes the sharing rule asks about. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <assert.h>

#include "hashmap.h"
#include "macro.h"
#include "vbd-internal.h"
#include "values.h"

/* ---- xenstore helpers ------------------------------------------------- */

int vbd_read_node(struct vbd_manager *m, xs_transaction_t t, const struct vbd *v,
                  const char *node, char **ret, size_t *ret_len)
{
        char path[PATH_MAX];

        if ((size_t)snprintf(path, sizeof(path), "%s/%s", v->path, node) >= sizeof(path))
                return -ENAMETOOLONG;
        return xsconn_read(m->xs, t, path, ret, ret_len);
}

int vbd_backend_change(struct vbd_manager *m, struct vbd *v, const struct xsconn_op *ops, size_t n,
                       backend_check_t check, void *data)
{
        /* The read of the directory itself goes first, in the same batch. */
        struct xsconn_op batch[1 + BACKEND_OPS_MAX];
        int r = -EAGAIN;

        assert(n <= BACKEND_OPS_MAX);
        for (int i = 0; i < PUBLISH_RETRIES && r == -EAGAIN; i++) {
                xs_transaction_t t;

                r = xsconn_transaction_start(m->xs, &t);
                if (r < 0)
                        return r;
                batch[0] = (struct xsconn_op){ .type = XS_READ, .dir = v->path };
                memcpy(batch + 1, ops, n * sizeof(*ops));
                r = xsconn_batch(m->xs, t, batch, n + 1);
                if (r >= 0)
                        r = batch[0].r;
                if (r >= 0 && check)
                        r = check(batch + 1, n, data);
                for (size_t k = 1; k <= n && r >= 0; k++)
                        if (batch[k].r < 0 && !(batch[k].type != XS_WRITE && batch[k].r == -ENOENT))
                                r = batch[k].r;
                xsconn_ops_clear(batch, n + 1);
                if (r < 0) {
                        /* -EAGAIN: the transaction was unknown to
                         * xenstored, and so is what was read in it. */
                        if (xsconn_transaction_end(m->xs, t, true) == -EAGAIN) {
                                r = -EAGAIN;
                                continue;
                        }
                        return r;
                }
                r = xsconn_transaction_end(m->xs, t, false);
        }
        return r;
}

/* ---- what evaluating a disk reads ----------------------------------------- */

void vbd_snapshot_clear(struct snapshot *s)
{
        xsconn_ops_clear(s->ops, _SNAP_MAX);
}

/* Reads what mask names.  -ENOTCONN when xenstored is not there; each
 * node's own result is for vbd_snap_value(). */
int vbd_read_snapshot(struct vbd_manager *m, const struct vbd *v, unsigned mask, struct snapshot *s)
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
                s->ops[n++] = (struct xsconn_op){ .type = XS_READ, .dir = v->path, .node = names[k] };
        }
        for (size_t k = n; k < _SNAP_MAX; k++)
                s->ops[k] = (struct xsconn_op){ 0 };
        return xsconn_batch(m->xs, XBT_NULL, s->ops, n);
}

/* A node's value (NULL when absent or not read); its -errno in *r. */
const char *vbd_snap_value(const struct snapshot *s, int k, int *r)
{
        const struct xsconn_op *op = s->idx[k] < 0 ? NULL : &s->ops[s->idx[k]];

        if (r)
                *r = op ? op->r : -ENOENT;
        return op && op->r == 0 ? op->data : NULL;
}

/* A small decimal node; def when absent or not a number. */
static int snap_int(const struct snapshot *s, int k, int def)
{
        const char *v = vbd_snap_value(s, k, NULL);
        int n;

        return v && val_parse_int(v, &n) == 0 ? n : def;
}

/* Reads a small decimal node; def when absent or not a number. */
int vbd_read_int(struct vbd_manager *m, const struct vbd *v, const char *node, int def)
{
        _cleanup_free_ char *s = NULL;
        int n;

        if (vbd_read_node(m, XBT_NULL, v, node, &s, NULL) < 0 || val_parse_int(s, &n) < 0)
                return def;
        return n;
}

/* 1 when the disk's directory exists, 0 when xenstored says it does not,
 * -errno when that cannot be told (a failed read is not a removal). */
int vbd_dir_state(struct vbd_manager *m, const struct vbd *v)
{
        _cleanup_free_ char *val = NULL;
        int r = xsconn_read(m->xs, XBT_NULL, v->path, &val, NULL);

        return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

/* From a snapshot with SNAP_STATE (and SNAP_OPENED when wanted): `online`
 * only counts with Closing or Closed (it is 1 otherwise), and `opened` only
 * while blkback is not Connected.  -ENOENT when the directory is gone. */
int vbd_backend_state(struct vbd_manager *m, const struct vbd *v, const struct snapshot *snap,
                      struct backend_state *ret)
{
        int r;

        vbd_snap_value(snap, SNAP_STATE, &r);
        if (r == -ENOENT) {
                r = vbd_dir_state(m, v);
                if (r == 0)
                        return -ENOENT;
                if (r < 0)
                        return r;
        } else if (r < 0)
                return r;
        ret->state = snap_int(snap, SNAP_STATE, -1);
        ret->online = 1;
        if (ret->state == XB_CLOSING || ret->state == XB_CLOSED)
                ret->online = vbd_read_int(m, v, "online", 1);
        ret->opened = 0;
        if (ret->state != XB_CONNECTED)
                ret->opened = snap_int(snap, SNAP_OPENED, 0);
        return 0;
}

int vbd_read_backend_state(struct vbd_manager *m, const struct vbd *v, bool want_opened,
                           struct backend_state *ret)
{
        _cleanup_(vbd_snapshot_clear) struct snapshot snap = { 0 };
        int r;

        r = vbd_read_snapshot(m, v, SNAP(SNAP_STATE) | (want_opened ? SNAP(SNAP_OPENED) : 0), &snap);
        return r < 0 ? r : vbd_backend_state(m, v, &snap, ret);
}

bool vbd_torn_down(const struct backend_state *s, bool published)
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

/* A domain's node, e.g. /local/domain/<domid>/vm; NULL when absent. */
static char *domain_node(struct vbd_manager *m, uint32_t domid, const char *node)
{
        char path[96];
        char *v = NULL;

        snprintf(path, sizeof(path), "/local/domain/%" PRIu32 "/%s", domid, node);
        return xsconn_read(m->xs, XBT_NULL, path, &v, NULL) == 0 ? v : NULL;
}

/* A domain's target (the domain a stub domain serves), or UINT32_MAX. */
static uint32_t domain_target(struct vbd_manager *m, uint32_t domid)
{
        _cleanup_free_ char *t = domain_node(m, domid, "target");
        uint32_t id;

        return t && val_parse_u32(t, strlen(t), &id) == 0 ? id : UINT32_MAX;
}

/* The stock script's same_vm: may domains a and b share a file read-write?
 * When they are one VM (the same /local/domain/N/vm: a domain and its copy
 * in a local migration or restore, or one domain's two disks), or one is
 * the other's stub domain, or the stub domain of one VM's domain.  Unlike
 * the stock script, a domain whose vm node is gone (being destroyed) is
 * not taken for the same VM. */
bool vbd_related_domains(struct vbd_manager *m, uint32_t a, uint32_t b)
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
