/* vbd-calls.c — block-loopd's add and remove: answered at once when the
 * disk's state allows, else parked on the disk until it does. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>
#include <sys/sysmacros.h>

#include "control.h"
#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "vbd-internal.h"

/* ---- pending control calls -------------------------------------------- */

static void pending_cancel(struct ctl_call *call, void *data)
{
        struct pending *p = data;

        list_unlink(&p->link);
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
        list_prepend(&v->pending, &p->link);
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
void vbd_complete_pending(struct vbd *v, bool remove, int error, const char *msg)
{
        assert(v);
        for (;;) {
                struct pending *p, *found = NULL;
                /* From the head each time: a reply may end other calls. */
                list_foreach_entry(p, &v->pending, link)
                        if (p->remove == remove) {
                                found = p;
                                break;
                        }
                if (!found)
                        return;
                p = found;
                list_unlink(&p->link);
                ctl_call_set_cancel(p->call, NULL, NULL);
                reply_call(p->call, v, error, msg);
                free(p);
        }
}

/* ---- requests from block-loopd ------------------------------------------ */

/* path below this domain's home unless absolute; as snprintf() returns. */
static int absolute(const struct vbd_manager *m, const char *path, char abs[static PATH_MAX])
{
        if (path[0] == '/')
                return snprintf(abs, PATH_MAX, "%s", path);
        return snprintf(abs, PATH_MAX, "%s/%s", m->home, path);
}

/* The record of the disk at path (made if need be); its absolute path in
 * abs (PATH_MAX bytes) unless that is NULL. */
static int resolve(struct vbd_manager *m, const char *path, char *abs, struct vbd **ret)
{
        char buf[PATH_MAX];
        uint32_t domid, devid;
        const char *node = NULL;
        size_t len = 0;
        int n;

        assert(path && ret);
        /* No manager yet: xenstored has not answered since start-up. */
        if (!m)
                return -ENOTCONN;
        if (!abs)
                abs = buf;

        n = absolute(m, path, abs);
        if (n < 0 || n >= PATH_MAX)
                return -EINVAL;
        while (n > 1 && abs[n - 1] == '/')
                abs[--n] = '\0';
        if (vbd_split_path(m, abs, &domid, &devid, &node, &len) != 2 || node)
                return -EINVAL;
        *ret = vbd_get(m, abs, len, domid, devid, true);
        return *ret ? 0 : -ENOMEM;
}

struct registry_user *vbd_find_user(struct vbd_manager *m, const char *path)
{
        char abs[PATH_MAX];
        struct vbd *v;

        if (!m)
                return NULL;
        absolute(m, path, abs);
        v = hashmap_get(m->by_path, abs);
        return v ? v->user : NULL;
}

int vbd_request_add(struct vbd_manager *m, const char *path, struct ctl_call *call)
{
        char abs[PATH_MAX];
        struct vbd *v;
        int r = resolve(m, path, abs, &v);

        if (r < 0)
                return r;
        if (!xsconn_connected(m->xs))
                return -ENOTCONN;
        v->requested = true;
        if (v->state == VBD_FOREIGN)
                vbd_set_state(m, v, VBD_NEW);
        /* Evaluate it now rather than on the next iteration: the script waits.
         * A failed or released record may be a directory written anew. */
        if (v->state != VBD_HELD && v->state != VBD_CONNECTED)
                vbd_evaluate(m, v);
        if (!xsconn_connected(m->xs)) {
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
        struct vbd *v;
        int r = resolve(m, path, NULL, &v);

        if (r < 0)
                return r;
        switch (v->state) {
        case VBD_PREPARED:
        case VBD_HELD:
        case VBD_CONNECTED:
                vbd_release(m, v, false);
                break;
        default:
                if (vbd_dir_state(m, v) == 0) {
                        vbd_forget(m, v);
                        break;
                }
                /* Nothing held: a failed, foreign or unknown disk. */
                vbd_complete_pending(v, false, -ECANCELED, "the disk was removed before it was set up");
                if (v->state != VBD_RELEASED)
                        vbd_set_state(m, v, VBD_RELEASED);
                break;
        }
        ctl_call_reply(call, NULL);
        return 0;
}
