/* commands.c — what each control command does in the daemon.  The framing,
 * peers and call lifetimes are control.c's; this file maps requests to the
 * vbd manager and the registry, builds the replies, and decides what a peer
 * may do.
 *
 * Root may do everything.  Another peer (a member of --group) gets only
 * what it owns, and never makes the daemon open a path as root: it may
 * attach from fd sets of its own (passed fds, not paths), detach and
 * reconfigure its own attachments (reconfigure only while no one else,
 * e.g. a domain sharing a read-only image, uses the device), and add,
 * remove and query its own fd sets.  Backends (hotplug-add, hotplug-remove,
 * reconfigure by path), paths and w! are root's.  status shows counts to
 * everyone allowed on the socket; list, and the device in a reply, show
 * another peer only the devices its attachments use, with its own users
 * (the others only counted). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "errbuf.h"
#include "log.h"
#include "macro.h"
#include "proto.h"

/* The registry user name of an attachment: ATTACHMENT_USER plus its name. */
#define ATTACHMENT_USER "attachment "

/* Whether peer uid may see u: root sees every user, another peer only its
 * own attachments. */
static bool user_visible(const struct daemon *d, uid_t uid, const struct registry_user *u)
{
        const struct attachment *a;

        if (uid == 0)
                return true;
        if (u->domid != UINT32_MAX || !u->name || strncmp(u->name, ATTACHMENT_USER, sizeof(ATTACHMENT_USER) - 1) != 0)
                return false;
        a = hashmap_get(d->attachments, u->name + sizeof(ATTACHMENT_USER) - 1);
        return a && a->user == u && a->owner == uid;
}

static struct json_object *user_json(const struct registry_user *u)
{
        struct json_object *uo = json_object_new_object();

        if (!uo)
                return NULL;
        json_object_object_add(uo, "name", json_object_new_string(u->name ? u->name : ""));
        if (u->domid != UINT32_MAX) {
                json_object_object_add(uo, "domid", json_object_new_int64(u->domid));
                json_object_object_add(uo, "devid", json_object_new_int64(u->devid));
        }
        json_object_object_add(uo, "access", json_object_new_string(access_mode(u->access)));
        json_object_object_add(uo, "holding", json_object_new_boolean(u->holding));
        return uo;
}

/* Device e as peer uid may see it (see the top of this file); -ENOENT when
 * it may not see it at all. */
static int device_json(const struct daemon *d, uid_t uid, const struct registry_entry *e,
                       struct json_object **ret)
{
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct json_object *users = json_object_new_array();
        const struct registry_user *u;
        unsigned hidden = 0;

        if (!o || !users) {
                json_object_put(users);
                return -ENOMEM;
        }
        json_object_object_add(o, "users", users);
        list_foreach_entry(u, &e->users, link) {
                if (!user_visible(d, uid, u)) {
                        hidden++;
                        continue;
                }
                struct json_object *uo = user_json(u);
                if (!uo || json_object_array_add(users, uo) < 0) {
                        json_object_put(uo);
                        return -ENOMEM;
                }
        }
        if (uid != 0 && hidden == e->n_users)
                return -ENOENT;
        if (uid != 0)
                json_object_object_add(o, "other-users", json_object_new_int64(hidden));
        json_object_object_add(o, "device", json_object_new_string(e->dev.node));
        json_object_object_add(o, "major", json_object_new_int((int)major(e->dev.devnum)));
        json_object_object_add(o, "minor", json_object_new_int((int)minor(e->dev.devnum)));
        json_object_object_add(o, "diskseq", json_object_new_uint64(e->dev.diskseq));
        json_object_object_add(o, "backing", json_object_new_string(e->path ? e->path : ""));
        json_object_object_add(o, "access", json_object_new_string(access_mode(e->key.rw ? ACCESS_RW : ACCESS_RO)));
        json_object_object_add(o, "loop", json_object_new_boolean(!e->key.is_block));
        json_object_object_add(o, "held", json_object_new_boolean(e->dev.fd >= 0));
        json_object_object_add(o, "dead", json_object_new_boolean(e->dead));
        json_object_object_add(o, "direct-io", json_object_new_boolean(e->key.direct_io));
        json_object_object_add(o, "block-size", json_object_new_int64(e->key.block_size));
        json_object_object_add(o, "offset", json_object_new_uint64(e->key.offset));
        json_object_object_add(o, "size-limit", json_object_new_uint64(e->key.size_limit));
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- argument helpers ----------------------------------------------------- */

static int arg_string(struct json_object *args, const char *key, bool required, const char **ret)
{
        struct json_object *v;

        if (!json_object_object_get_ex(args, key, &v) || json_object_is_type(v, json_type_null))
                return required ? -EINVAL : 0;
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        *ret = json_object_get_string(v);
        /* json-c strings may hold NUL bytes; a name or path must not. */
        if (strlen(*ret) != (size_t)json_object_get_string_len(v))
                return -EINVAL;
        return 0;
}

static int arg_bool(struct json_object *args, const char *key, bool *ret)
{
        struct json_object *v;

        if (!json_object_object_get_ex(args, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return -EINVAL;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* Absent: *ret keeps its default. */
static int arg_u64(struct json_object *args, const char *key, uint64_t max, uint64_t *ret)
{
        int r = proto_get_uint(args, key, max, ret);

        return r == -ENOENT ? 0 : r;
}

#define BAD_ARGS(call, ...) (ctl_call_error((call), -EINVAL, __VA_ARGS__), 0)
#define REFUSE(call, ...) (ctl_call_error((call), -EPERM, "Permission denied: " __VA_ARGS__), 0)

static bool peer_is_root(const struct ctl_call *call)
{
        return ctl_call_peer_uid(call) == 0;
}

/* A peer other than root may use only the fd sets it created. */
static bool may_use_fdset(struct daemon *d, const struct ctl_call *call, uint32_t id)
{
        uid_t owner;

        return peer_is_root(call) || (fdset_owner(d->fdsets, id, &owner) == 0 && owner == ctl_call_peer_uid(call));
}

/* ---- commands --------------------------------------------------------------- */

static int cmd_status(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        struct json_object *o = json_object_new_object();
        struct timespec ts;
        uint64_t now;

        if (!o)
                return -ENOMEM;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
        json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
        json_object_object_add(o, "protocol", json_object_new_int(PROTO_VERSION));
        json_object_object_add(o, "pid", json_object_new_int(getpid()));
        json_object_object_add(o, "uptime-seconds", json_object_new_uint64((now - d->started_usec) / 1000000));
        json_object_object_add(o, "home", json_object_new_string(d->home ? d->home : ""));
        json_object_object_add(o, "xenstore", json_object_new_string(xsconn_connected(d->xs) ? "connected" : "reconnecting"));
        json_object_object_add(o, "devices", json_object_new_uint64(registry_n_entries(d->registry)));
        json_object_object_add(o, "disks", json_object_new_uint64(vbd_manager_size(d->vbd)));
        json_object_object_add(o, "attachments", json_object_new_uint64(hashmap_size(d->attachments)));
        json_object_object_add(o, "fdstore", json_object_new_boolean(d->notify));
        {
                struct json_object *states = json_object_new_object();
                for (enum vbd_state s = 0; s < _VBD_STATE_MAX; s++)
                        json_object_object_add(states, vbd_state_name(s),
                                               json_object_new_uint64(vbd_manager_count(d->vbd, s)));
                json_object_object_add(o, "disk-states", states);
        }
        ctl_call_reply(call, o);
        return 0;
}

struct listing {
        const struct daemon *d;
        uid_t uid;
        struct json_object *devs;
};

static int list_one(struct registry_entry *e, void *userdata)
{
        struct listing *l = userdata;
        struct json_object *o;
        int r = device_json(l->d, l->uid, e, &o);

        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        json_object_array_add(l->devs, o);
        return 0;
}

static int cmd_list(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        _cleanup_json_ struct json_object *o = json_object_new_object();
        struct listing l = { d, ctl_call_peer_uid(call), json_object_new_array() };
        int r;

        if (!o || !l.devs) {
                json_object_put(l.devs);
                return -ENOMEM;
        }
        json_object_object_add(o, "devices", l.devs);
        r = registry_foreach(d->registry, list_one, &l);
        if (r < 0)
                return r;
        ctl_call_reply(call, TAKE_PTR(o));
        return 0;
}

/* Replies with the device of attachment user u, as the peer may see it
 * (an empty result when out of memory: the call itself was done). */
static void reply_device(struct daemon *d, struct ctl_call *call, const struct registry_user *u)
{
        struct json_object *o = NULL;

        (void)device_json(d, ctl_call_peer_uid(call), u->entry, &o);
        ctl_call_reply(call, o);
}

static int cmd_hotplug(struct ctl_call *call, struct json_object *args, void *userdata, bool add)
{
        struct daemon *d = userdata;
        const char *path = NULL;
        int r;

        if (arg_string(args, "path", true, &path) < 0 || !*path)
                return BAD_ARGS(call, "\"path\" must name a backend, e.g. backend/vbd/3/51712");
        if (!peer_is_root(call))
                return REFUSE(call, "only root may %s a backend's disk (peer uid %u)", add ? "attach" : "detach",
                              (unsigned)ctl_call_peer_uid(call));
        r = add ? vbd_request_add(d->vbd, path, call) : vbd_request_remove(d->vbd, path, call);
        if (r == -EINVAL)
                return BAD_ARGS(call, "%s is not a vbd backend of %s", path, d->home);
        if (r == -ENOTCONN) {
                ctl_call_error(call, r, "xenstored is not reachable; cannot %s %s", add ? "attach" : "detach", path);
                return 0;
        }
        return r;
}

static int cmd_hotplug_add(struct ctl_call *call, struct json_object *args, void *userdata)
{
        return cmd_hotplug(call, args, userdata, true);
}

static int cmd_hotplug_remove(struct ctl_call *call, struct json_object *args, void *userdata)
{
        return cmd_hotplug(call, args, userdata, false);
}

int daemon_open_fdset(void *userdata, uint32_t fdset_id, bool writable, bool direct_io,
                      struct backing *ret, void **ret_token, char *err, size_t errlen)
{
        struct daemon *d = userdata;

        return fdset_use(d->fdsets, fdset_id, writable, direct_io, ret, (struct fdset_use **)ret_token, err, errlen);
}

void daemon_release_fdset(void *userdata, void *token)
{
        struct daemon *d = userdata;

        fdset_unuse(d->fdsets, token);
}

void attachment_free(struct daemon *d, struct attachment *a)
{
        if (!a)
                return;
        if (a->user)
                registry_release(d->registry, a->user);
        if (a->fdset_use)
                fdset_unuse(d->fdsets, a->fdset_use);
        free(a->name);
        free(a);
}

/* An attach's fd set: the caller's own (or root's pick), as fdset_use() gives it. */
struct attach_open {
        struct daemon *d;
        struct ctl_call *call;
        bool writable, direct_io;
        struct fdset_use *use;
};

static int attach_open_set(uint32_t id, void *data, struct backing *ret, char *err, size_t errlen)
{
        struct attach_open *o = data;

        if (!may_use_fdset(o->d, o->call, id)) {
                errbuf_set(err, errlen, "Permission denied: fd set %u is not one of yours (peer uid %u)", id,
                           (unsigned)ctl_call_peer_uid(o->call));
                return -EPERM;
        }
        return fdset_use(o->d->fdsets, id, o->writable, o->direct_io, ret, &o->use, err, errlen);
}

/* What an attach asks for. */
struct attach_args {
        const char *name, *target;
        enum access access;
        struct loop_config cfg;
};

/* NULL, or what is wrong with the arguments. */
static const char *attach_parse(const struct daemon *d, struct json_object *args, struct attach_args *ret)
{
        const char *access = "w";
        bool direct_io = d->direct_io;
        uint64_t block_size = d->block_size, offset = 0, size_limit = 0;

        if (arg_string(args, "name", true, &ret->name) < 0 || !*ret->name || strlen(ret->name) > 255)
                return "\"name\" must be a non-empty string of at most 255 bytes";
        if (arg_string(args, "target", true, &ret->target) < 0 || !*ret->target)
                return "\"target\" must name a file, block device or /dev/fdset/N";
        if (arg_string(args, "access", false, &access) < 0 || access_parse(access, true, &ret->access) < 0)
                return "\"access\" must be \"r\", \"w\" or \"w!\"";
        if (arg_bool(args, "direct-io", &direct_io) < 0 ||
            arg_u64(args, "block-size", 65536, &block_size) < 0 ||
            arg_u64(args, "offset", INT64_MAX, &offset) < 0 ||
            arg_u64(args, "size-limit", INT64_MAX, &size_limit) < 0)
                return "\"direct-io\" must be a boolean; \"block-size\", \"offset\" and \"size-limit\" non-negative integers";
        if (block_size && (block_size < 512 || (block_size & (block_size - 1))))
                return "\"block-size\" must be a power of two from 512 to 65536";
        ret->cfg = (struct loop_config){
                .read_only = ret->access == ACCESS_RO,
                .direct_io = direct_io,
                .block_size = (uint32_t)block_size,
                .offset = offset,
                .size_limit = size_limit,
        };
        return NULL;
}

/* Sets a up from the opened backing b (closed here) and registers it; on
 * failure a is freed. */
static int attach_acquire(struct daemon *d, struct attachment *a, const struct attach_args *aa, struct backing *b,
                          char *err, size_t errlen)
{
        struct registry_request req;
        char uname[300];
        int r;

        snprintf(uname, sizeof(uname), ATTACHMENT_USER "%s", aa->name);
        req = (struct registry_request){
                .backing = b,
                .path = aa->target,
                .cfg = aa->cfg,
                .access = aa->access,
                .name = uname,
                .domid = UINT32_MAX,
                .devid = UINT32_MAX,
        };
        r = registry_acquire(d->registry, &req, &a->user, err, errlen);
        backing_close(b);
        if (r >= 0)
                r = hashmap_put(d->attachments, a->name, a);
        if (r < 0)
                attachment_free(d, a);
        return r;
}

static int cmd_attach(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        struct attach_args aa;
        struct backing b = { .fd = -1 };
        struct attach_open o = { .d = d, .call = call };
        struct attachment *a;
        const char *bad;
        char err[512] = "";
        int r;

        bad = attach_parse(d, args, &aa);
        if (bad)
                return BAD_ARGS(call, "%s", bad);
        if (hashmap_get(d->attachments, aa.name)) {
                ctl_call_error(call, -EEXIST, "an attachment named '%s' exists already", aa.name);
                return 0;
        }
        if (!peer_is_root(call) && aa.access == ACCESS_RW_FORCE)
                return REFUSE(call, "only root may skip the sharing check (w!)");
        if (!fdset_is_path(aa.target) && !peer_is_root(call))
                return REFUSE(call, "only root may attach a path, which xen-loopd opens as root; "
                              "pass an open fd instead (add-fd, then /dev/fdset/N)");

        o.writable = aa.access != ACCESS_RO;
        o.direct_io = aa.cfg.direct_io;
        r = fdset_open_target(aa.target, o.writable, o.direct_io, d->open_timeout_usec, attach_open_set, &o, &b,
                              err, sizeof(err));
        if (r < 0) {
                ctl_call_error(call, r, "%s", err);
                return 0;
        }
        a = calloc(1, sizeof(*a));
        if (!a || !(a->name = strdup(aa.name))) {
                free(a);
                backing_close(&b);
                if (o.use)
                        fdset_unuse(d->fdsets, o.use);
                return -ENOMEM;
        }
        a->fdset_use = o.use;
        a->owner = ctl_call_peer_uid(call);
        r = attach_acquire(d, a, &aa, &b, err, sizeof(err));
        if (r < 0) {
                ctl_call_error(call, r, "%s", *err ? err : strerror(-r));
                return 0;
        }
        log_info("Attached %s as %s (%s).", aa.target, a->user->entry->dev.node, aa.name);
        reply_device(d, call, a->user);
        return 0;
}

static int cmd_detach(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        struct attachment *a;
        const char *name = NULL;

        if (arg_string(args, "name", true, &name) < 0)
                return BAD_ARGS(call, "\"name\" must be a string");
        a = hashmap_get(d->attachments, name);
        if (!a) {
                ctl_call_error(call, -ENOENT, "no attachment is named '%s'", name);
                return 0;
        }
        if (!peer_is_root(call) && a->owner != ctl_call_peer_uid(call))
                return REFUSE(call, "attachment '%s' is not one of yours (peer uid %u)", name,
                              (unsigned)ctl_call_peer_uid(call));
        hashmap_remove(d->attachments, name);
        log_info("Detached %s.", name);
        attachment_free(d, a);
        ctl_call_reply(call, NULL);
        return 0;
}

static int cmd_add_fd(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        const char *opaque = NULL;
        uint64_t set = 0;
        struct json_object *o;
        char err[256] = "";
        uint32_t id;
        int r, fd, num;

        if (ctl_call_n_fds(call) != 1)
                return BAD_ARGS(call, "add-fd takes exactly one fd (SCM_RIGHTS)");
        if (arg_u64(args, "fdset-id", FDSET_ID_MAX, &set) < 0)
                return BAD_ARGS(call, "\"fdset-id\" must be an integer from 0 to %u", FDSET_ID_MAX);
        if (arg_string(args, "opaque", false, &opaque) < 0 || (opaque && strlen(opaque) > 255))
                return BAD_ARGS(call, "\"opaque\" must be a string of at most 255 bytes");
        fd = ctl_call_take_fd(call, 0);
        if (fd < 0)
                return fd;
        r = fdset_add(d->fdsets, json_object_object_get_ex(args, "fdset-id", NULL) ? (int64_t)set : -1, fd,
                      ctl_call_connection(call), ctl_call_peer_uid(call), opaque, &id, &num, err, sizeof(err));
        if (r < 0) {
                ctl_call_error(call, r, "%s%s", r == -EPERM ? "Permission denied: " : "", *err ? err : strerror(-r));
                return 0;
        }
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "fdset-id", json_object_new_int64(id));
        json_object_object_add(o, "fd", json_object_new_int(num));
        ctl_call_reply(call, o);
        return 0;
}

static int cmd_remove_fd(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        uint64_t set = 0, fd = 0;
        char err[256] = "";
        uid_t owner;
        int r;

        if (!json_object_object_get_ex(args, "fdset-id", NULL) || arg_u64(args, "fdset-id", FDSET_ID_MAX, &set) < 0)
                return BAD_ARGS(call, "\"fdset-id\" must be an integer from 0 to %u", FDSET_ID_MAX);
        if (arg_u64(args, "fd", INT32_MAX, &fd) < 0)
                return BAD_ARGS(call, "\"fd\" must be a non-negative integer");
        /* A set that does not exist is ENOENT below, whoever asks. */
        if (fdset_owner(d->fdsets, (uint32_t)set, &owner) == 0 && !may_use_fdset(d, call, (uint32_t)set))
                return REFUSE(call, "fd set %u is not one of yours (peer uid %u)", (unsigned)set,
                              (unsigned)ctl_call_peer_uid(call));
        r = fdset_remove(d->fdsets, (uint32_t)set, json_object_object_get_ex(args, "fd", NULL) ? (int)fd : -1,
                         err, sizeof(err));
        if (r < 0) {
                ctl_call_error(call, r, "%s", *err ? err : strerror(-r));
                return 0;
        }
        ctl_call_reply(call, NULL);
        return 0;
}

static int cmd_query_fdsets(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        struct json_object *o;
        int r;

        r = fdset_query(d->fdsets, peer_is_root(call) ? (uid_t)-1 : ctl_call_peer_uid(call), &o);
        if (r < 0)
                return r;
        ctl_call_reply(call, o);
        return 0;
}

/* A user of u's device other than u (there must be one). */
static const struct registry_user *other_user(const struct registry_user *u)
{
        const struct registry_user *first = list_first_entry(&u->entry->users, struct registry_user, link);

        assert(u->entry->n_users > 1);
        return first != u ? first : list_entry(u->link.next, struct registry_user, link);
}

static int cmd_reconfigure(struct ctl_call *call, struct json_object *args, void *userdata)
{
        struct daemon *d = userdata;
        const char *name = NULL, *path = NULL, *backing = NULL;
        struct registry_user *u = NULL;
        struct registry_reconfig rc = { .direct_io = -1, .backing_fd = -1 };
        _cleanup_close_ int fd = -1;
        bool dio = false;
        char err[512] = "";
        int r;

        if (arg_string(args, "name", false, &name) < 0 || arg_string(args, "path", false, &path) < 0 ||
            !name == !path)
                return BAD_ARGS(call, "reconfigure takes a \"name\" (an attachment) or a \"path\" (a backend)");
        if (arg_string(args, "backing-path", false, &backing) < 0)
                return BAD_ARGS(call, "\"backing-path\" must be a string");
        if (json_object_object_get_ex(args, "direct-io", NULL)) {
                if (arg_bool(args, "direct-io", &dio) < 0)
                        return BAD_ARGS(call, "\"direct-io\" must be a boolean");
                rc.direct_io = dio;
        }
        if (ctl_call_n_fds(call) == 1)
                fd = ctl_call_take_fd(call, 0);
        if (rc.direct_io < 0 && fd < 0)
                return BAD_ARGS(call, "nothing to change: give \"direct-io\" and/or a new backing fd");
        if (path && !peer_is_root(call))
                return REFUSE(call, "only root may reconfigure a backend's disk (peer uid %u)",
                              (unsigned)ctl_call_peer_uid(call));
        if (name) {
                struct attachment *a = hashmap_get(d->attachments, name);
                if (a && !peer_is_root(call) && a->owner != ctl_call_peer_uid(call))
                        return REFUSE(call, "attachment '%s' is not one of yours (peer uid %u)", name,
                                      (unsigned)ctl_call_peer_uid(call));
                u = a ? a->user : NULL;
        } else
                u = vbd_find_user(d->vbd, path);
        if (!u) {
                ctl_call_error(call, -ENOENT, "no disk is attached as %s", name ? name : path);
                return 0;
        }
        /* The device is everyone's who uses it: a read-only image shared
         * with domains must not change under them at a non-root's word. */
        if (!peer_is_root(call) && u->entry->n_users > 1)
                return REFUSE(call, "%s is shared with %u other user(s) (%s among them); only root may "
                              "reconfigure it", u->entry->dev.node, u->entry->n_users - 1,
                              other_user(u)->name);
        rc.backing_fd = fd;
        rc.backing_path = backing;
        r = registry_reconfigure(d->registry, u->entry, &rc, err, sizeof(err));
        if (r < 0) {
                log_warning("Reconfiguring %s failed: %s.", u->entry->dev.node, err);
                ctl_call_error(call, r, "%s", *err ? err : strerror(-r));
                return 0;
        }
        vbd_device_changed(d->vbd, u->entry);
        log_info("Reconfigured %s (%s).", u->entry->dev.node, u->entry->path);
        reply_device(d, call, u);
        return 0;
}

const struct ctl_command daemon_commands[] = {
        { "status", cmd_status, 0 },
        { "list", cmd_list, 0 },
        { "hotplug-add", cmd_hotplug_add, 0 },
        { "hotplug-remove", cmd_hotplug_remove, 0 },
        { "attach", cmd_attach, 0 },
        { "detach", cmd_detach, 0 },
        { "add-fd", cmd_add_fd, 1 },
        { "remove-fd", cmd_remove_fd, 0 },
        { "query-fdsets", cmd_query_fdsets, 0 },
        { "reconfigure", cmd_reconfigure, 1 },
};
const size_t daemon_n_commands = ARRAY_SIZE(daemon_commands);
