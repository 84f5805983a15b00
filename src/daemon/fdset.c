#include "fdset.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <linux/kcmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hashmap.h"
#include "list.h"
#include "log.h"
#include "errbuf.h"
#include "macro.h"

struct fdset;

struct fdset_fd {
        struct list link;          /* in set->fds, newest first */
        struct fdset *set;
        int fd;
        int flags;                 /* F_GETFL at add time */
        char *opaque;
        uint64_t conn;             /* 0: its connection is gone */
        unsigned users;
        bool removed;              /* remove-fd asked; closed with its last user */
        bool restored;             /* from the fd store; kept until the first scan */
        char name[64];             /* in the fd store */
};

struct fdset {
        uint32_t id;
        uid_t owner;
        struct list fds;
        unsigned n;                /* fds in the list */
};

struct fdset_registry {
        struct hashmap *sets;      /* id -> struct fdset */
        struct fdset_hooks hooks;
        uint32_t next_id;
        unsigned n_fds;            /* in all sets */
        uint64_t next_serial;      /* of store names; above every one taken back */
};


static uint64_t id_hash(const void *p) { return hash_bytes(p, sizeof(uint32_t)); }
static bool id_equal(const void *a, const void *b) { return *(const uint32_t *)a == *(const uint32_t *)b; }

int fdset_registry_new(const struct fdset_hooks *hooks, struct fdset_registry **ret)
{
        struct fdset_registry *r = calloc(1, sizeof(*r));

        assert(ret);
        if (!r)
                return -ENOMEM;
        r->sets = hashmap_new(id_hash, id_equal);
        if (!r->sets) {
                free(r);
                return -ENOMEM;
        }
        if (hooks)
                r->hooks = *hooks;
        *ret = r;
        return 0;
}

void fdset_registry_quiet(struct fdset_registry *r)
{
        if (r)
                r->hooks = (struct fdset_hooks){};
}

static void fd_free(struct fdset_fd *f)
{
        safe_close(f->fd);
        free(f->opaque);
        free(f);
}

void fdset_registry_free(struct fdset_registry *r)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct fdset *s;

        if (!r)
                return;
        while (hashmap_iterate(r->sets, &it, (void **)&s, NULL)) {
                struct fdset_fd *f, *tmp;
                list_foreach_entry_safe(f, tmp, &s->fds, link)
                        fd_free(f);
                free(s);
        }
        hashmap_free(r->sets);
        free(r);
}

int fdset_parse_path(const char *path, uint32_t *ret)
{
        const char *p;
        uint64_t v = 0;

        if (!fdset_is_path(path))
                return -EINVAL;
        p = path + strlen(FDSET_PATH_PREFIX);
        if (!*p || (p[0] == '0' && p[1]))
                return -EINVAL;
        for (; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(*p - '0');
                if (v > FDSET_ID_MAX)
                        return -EINVAL;
        }
        *ret = (uint32_t)v;
        return 0;
}

bool fdset_is_path(const char *target)
{
        return strncmp(target, FDSET_PATH_PREFIX, strlen(FDSET_PATH_PREFIX)) == 0;
}

int fdset_open_target(const char *target, bool writable, bool direct_io, uint64_t timeout_usec,
                      fdset_open_fn open_set, void *data, struct backing *ret, char *err, size_t errlen)
{
        uint32_t id;
        int r;

        assert(target && open_set && ret);
        if (fdset_is_path(target)) {
                if (fdset_parse_path(target, &id) < 0) {
                        errbuf_set(err, errlen, "'%.64s' is not a valid fd set name", target);
                        return -EINVAL;
                }
                return open_set(id, data, ret, err, errlen);
        }
        r = backing_open_bounded(target, writable, direct_io, timeout_usec, ret);
        if (r < 0)
                backing_describe_error(r, target, writable, ret, err, errlen);
        return r;
}

int fdset_parse_store_name(const char *name, uint32_t *ret_set, uint64_t *ret_serial, uid_t *ret_owner)
{
        unsigned long long set, serial, owner = 0;
        char *end;

        if (strncmp(name, "fdset-", 6) != 0 || name[6] < '0' || name[6] > '9')
                return -EINVAL;
        errno = 0;
        set = strtoull(name + 6, &end, 10);
        if (errno || *end != '-' || set > FDSET_ID_MAX || end[1] < '0' || end[1] > '9')
                return -EINVAL;
        serial = strtoull(end + 1, &end, 10);
        if (errno || serial > INT64_MAX)
                return -EINVAL;
        if (end[0] == '-' && end[1] == 'u' && end[2] >= '0' && end[2] <= '9') {
                owner = strtoull(end + 2, &end, 10);
                if (errno || owner >= UINT32_MAX)
                        return -EINVAL;
        }
        if (*end)
                return -EINVAL;
        *ret_set = (uint32_t)set;
        *ret_serial = serial;
        if (ret_owner)
                *ret_owner = (uid_t)owner;
        return 0;
}

void fdset_reserve_store_name(struct fdset_registry *r, const char *name)
{
        uint32_t set;
        uint64_t serial;

        if (fdset_parse_store_name(name, &set, &serial, NULL) == 0 && serial >= r->next_serial)
                r->next_serial = serial + 1;
}

static struct fdset *set_get(struct fdset_registry *r, uint32_t id, bool create)
{
        struct fdset *s;
        bool created;

        if (!create)
                return hashmap_get(r->sets, &id);
        s = hashmap_get_or_new(r->sets, &id, sizeof(*s), offsetof(struct fdset, id), sizeof(id), &created);
        if (s && created)
                list_init(&s->fds);
        return s;
}

/* Forgets the set s, which holds no fd. */
static void set_free(struct fdset_registry *r, struct fdset *s)
{
        hashmap_remove(r->sets, &s->id);
        free(s);
}

/* Closes f, telling the fd store; its set goes with its last fd. */
static void drop(struct fdset_registry *r, struct fdset_fd *f)
{
        struct fdset *s = f->set;

        list_unlink(&f->link);
        s->n--;
        r->n_fds--;
        if (r->hooks.dropped)
                r->hooks.dropped(f->fd, f->name, r->hooks.userdata);
        fd_free(f);
        if (list_is_empty(&s->fds))
                set_free(r, s);
}

static bool same_open_file(int a, int b)
{
        pid_t pid = getpid();

        return syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b) == 0;
}

/* name: the fd is taken back from the fd store under that name; restored
 * (taken back, maybe under a new name): no limit applies. */
/* The fd's flags, if it can back a disk: a regular file or a block device. */
static int check_fd(int fd, int *ret_flags, char *err, size_t errlen)
{
        struct backing b;
        int r;

        *ret_flags = fcntl(fd, F_GETFL);
        if (*ret_flags < 0) {
                errbuf_set(err, errlen, "the fd passed is not open");
                return -EBADF;
        }
        r = backing_from_fd(fd, false, &b);
        if (r == -ENOTBLK)
                errbuf_set(err, errlen, "the fd passed is %s, not a regular file or block device",
                          backing_type_name(b.st.st_mode));
        else if (r < 0)
                errbuf_set(err, errlen, "the fd passed cannot back a disk: %s", strerror(-r));
        return r < 0 ? r : 0;
}

/* Whether owner may add an fd to set id (s, NULL when there is none yet).
 * The limits are for what a client adds; fds taken back from the fd store
 * are there already. */
static int check_room(const struct fdset_registry *r, const struct fdset *s, uint32_t id, uid_t owner,
                      bool restored, char *err, size_t errlen)
{
        /* A taken-back fd joins its set whoever it says owns it: the store
         * holds only what this daemon put there. */
        if (s && s->owner != owner && !restored) {
                errbuf_set(err, errlen, "fd set %u belongs to uid %u: add the fd to a set of your own "
                           "(leave \"fdset-id\" out for a new one)", id, (unsigned)s->owner);
                return -EPERM;
        }
        if (!restored && !s && hashmap_size(r->sets) >= FDSET_MAX_SETS) {
                errbuf_set(err, errlen, "there are %u fd sets already, the most xen-loopd keeps: "
                           "add the fd to an existing set or remove a set first", FDSET_MAX_SETS);
                return -ENOSPC;
        }
        if (!restored && r->n_fds >= FDSET_MAX_TOTAL_FDS) {
                errbuf_set(err, errlen, "the fd sets hold %u fds already, the most xen-loopd keeps in all sets: "
                           "remove fds first", r->n_fds);
                return -ENOSPC;
        }
        return 0;
}

static int add(struct fdset_registry *r, uint32_t id, int fd, uint64_t conn, uid_t owner, const char *opaque,
               const char *name, bool restored, int *ret_fd, char *err, size_t errlen)
{
        _cleanup_close_ int owned = fd;
        struct fdset_fd *f;
        struct fdset *s;
        bool created;
        int flags, k;

        k = check_fd(fd, &flags, err, errlen);
        if (k < 0)
                return k;
        s = hashmap_get(r->sets, &id);
        created = !s;
        k = check_room(r, s, id, owner, restored, err, errlen);
        if (k < 0)
                return k;
        s = set_get(r, id, true);
        if (!s)
                return -ENOMEM;
        if (created)
                s->owner = owner;
        if (s->n >= FDSET_MAX_FDS) {
                errbuf_set(err, errlen, "fd set %u holds %u fds already", id, s->n);
                return -ENOSPC;
        }
        list_foreach_entry(f, &s->fds, link)
                if (same_open_file(f->fd, fd)) {
                        errbuf_set(err, errlen,
                                  "fd set %u holds that open file already (as fd %d): a dup() shares its flags, "
                                  "pass a separately opened file", id, f->fd);
                        if (created)
                                set_free(r, s);
                        return -EEXIST;
                }
        f = calloc(1, sizeof(*f));
        if (!f || (opaque && !(f->opaque = strdup(opaque)))) {
                free(f);
                if (created)
                        set_free(r, s);
                return -ENOMEM;
        }
        f->fd = TAKE_FD(owned);
        f->flags = flags;
        f->conn = conn;
        f->set = s;
        f->restored = restored;
        if (name)
                snprintf(f->name, sizeof(f->name), "%s", name);
        else
                snprintf(f->name, sizeof(f->name), "fdset-%u-%" PRIu64 "-u%u", id, r->next_serial++, (unsigned)s->owner);
        list_prepend(&s->fds, &f->link);
        s->n++;
        r->n_fds++;
        if (r->hooks.kept)
                r->hooks.kept(f->fd, f->name, r->hooks.userdata);
        if (ret_fd)
                *ret_fd = f->fd;
        return 0;
}

int fdset_add(struct fdset_registry *r, int64_t set_id, int fd, uint64_t conn, uid_t owner, const char *opaque,
              uint32_t *ret_set, int *ret_fd, char *err, size_t errlen)
{
        uint32_t id;
        int k;

        assert(r && fd >= 0);
        if (set_id > (int64_t)FDSET_ID_MAX || set_id < -1) {
                safe_close(fd);
                errbuf_set(err, errlen, "fd set ids go from 0 to %u", FDSET_ID_MAX);
                return -ERANGE;
        }
        if (set_id >= 0)
                id = (uint32_t)set_id;
        else {
                /* The lowest free id from where the last new one was. */
                for (k = 0; hashmap_get(r->sets, &r->next_id); k++) {
                        r->next_id = r->next_id >= FDSET_ID_MAX ? 0 : r->next_id + 1;
                        if (k > 100000) {
                                safe_close(fd);
                                errbuf_set(err, errlen, "no free fd set id");
                                return -ENOSPC;
                        }
                }
                id = r->next_id;
        }
        k = add(r, id, fd, conn, owner, opaque, NULL, false, ret_fd, err, errlen);
        if (k >= 0 && ret_set)
                *ret_set = id;
        return k;
}

int fdset_restore(struct fdset_registry *r, int fd, const char *name, bool rename)
{
        uint32_t id;
        uint64_t serial;
        uid_t owner;

        assert(r && fd >= 0 && name);
        if (fdset_parse_store_name(name, &id, &serial, &owner) < 0) {
                safe_close(fd);
                return -EINVAL;
        }
        fdset_reserve_store_name(r, name);
        return add(r, id, fd, 0, owner, NULL, rename ? NULL : name, true, NULL, NULL, 0);
}

int fdset_owner(struct fdset_registry *r, uint32_t set_id, uid_t *ret)
{
        struct fdset *s;

        assert(r && ret);
        s = hashmap_get(r->sets, &set_id);
        if (!s)
                return -ENOENT;
        *ret = s->owner;
        return 0;
}

int fdset_remove(struct fdset_registry *r, uint32_t set_id, int fd, char *err, size_t errlen)
{
        struct fdset *s;
        struct fdset_fd *f, *tmp;
        bool found = false;

        assert(r);
        s = hashmap_get(r->sets, &set_id);
        if (!s) {
                errbuf_set(err, errlen, "there is no fd set %u", set_id);
                return -ENOENT;
        }
        list_foreach_entry_safe(f, tmp, &s->fds, link) {
                if (fd >= 0 && f->fd != fd)
                        continue;
                found = true;
                f->removed = true;
                if (f->users == 0) {
                        bool last = s->n == 1;
                        drop(r, f);
                        if (last)
                                break; /* the set is gone */
                }
        }
        if (!found) {
                errbuf_set(err, errlen, "fd set %u has no fd %d", set_id, fd);
                return -ENOENT;
        }
        return 0;
}

int fdset_use(struct fdset_registry *r, uint32_t set_id, bool writable, bool direct, struct backing *ret,
              struct fdset_use **ret_use, char *err, size_t errlen)
{
        struct fdset *s;
        int want = writable ? O_RDWR : O_RDONLY;
        struct fdset_fd *f, *found = NULL;
        int fd, k;

        assert(r && ret && ret_use);
        s = hashmap_get(r->sets, &set_id);
        ret->fd = -1;
        if (!s) {
                errbuf_set(err, errlen, "there is no fd set %u", set_id);
                return -ENOENT;
        }
        list_foreach_entry(f, &s->fds, link)
                if (!f->removed && (f->flags & O_ACCMODE) == want && !!(f->flags & O_DIRECT) == direct) {
                        found = f;
                        break;
                }
        f = found;
        if (!f) {
                errbuf_set(err, errlen, "fd set %u has no fd opened %s%s", set_id,
                          writable ? "read-write" : "read-only", direct ? " with O_DIRECT" : " without O_DIRECT");
                return -ENOENT;
        }
        fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        k = backing_from_fd(fd, writable, ret);
        if (k < 0) {
                safe_close(fd);
                errbuf_set(err, errlen, "fd %d of fd set %u cannot back a disk: %s", f->fd, set_id, strerror(-k));
                return k;
        }
        f->users++;
        *ret_use = (struct fdset_use *)f;
        return 0;
}

void fdset_unuse(struct fdset_registry *r, struct fdset_use *use)
{
        struct fdset_fd *f = (struct fdset_fd *)use;

        if (!f || f->users == 0)
                return;
        if (--f->users == 0 && (f->removed || f->conn == 0))
                drop(r, f);
}

/* Drops every fd matching the predicate that no disk uses. */
static void sweep(struct fdset_registry *r, uint64_t conn, bool restored)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct fdset *s;

        while (hashmap_iterate(r->sets, &it, (void **)&s, NULL)) {
                struct fdset_fd *f, *tmp;
                list_foreach_entry_safe(f, tmp, &s->fds, link) {
                        bool last = s->n == 1;
                        if (restored ? f->restored : (f->conn == conn)) {
                                f->restored = false;
                                f->conn = 0;
                                if (f->users == 0) {
                                        drop(r, f);
                                        if (last)
                                                break; /* s is freed */
                                }
                        }
                }
        }
}

void fdset_connection_closed(struct fdset_registry *r, uint64_t conn)
{
        if (conn)
                sweep(r, conn, false);
}

void fdset_drop_unclaimed(struct fdset_registry *r)
{
        sweep(r, 0, true);
}

int fdset_query(struct fdset_registry *r, uid_t owner, struct json_object **ret)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct json_object *o = json_object_new_object(), *sets = json_object_new_array();
        struct fdset *s;

        assert(r && ret);
        if (!o || !sets) {
                json_object_put(o);
                json_object_put(sets);
                return -ENOMEM;
        }
        json_object_object_add(o, "fdsets", sets);
        while (hashmap_iterate(r->sets, &it, (void **)&s, NULL)) {
                if (owner != (uid_t)-1 && s->owner != owner)
                        continue;
                struct json_object *so = json_object_new_object(), *fds = json_object_new_array();
                if (!so || !fds) {
                        json_object_put(so);
                        json_object_put(fds);
                        json_object_put(o);
                        return -ENOMEM;
                }
                json_object_object_add(so, "fdset-id", json_object_new_int64(s->id));
                struct fdset_fd *f;
                list_foreach_entry(f, &s->fds, link) {
                        struct json_object *fo = json_object_new_object();
                        if (!fo)
                                break;
                        json_object_object_add(fo, "fd", json_object_new_int(f->fd));
                        if (f->opaque)
                                json_object_object_add(fo, "opaque", json_object_new_string(f->opaque));
                        json_object_object_add(fo, "access", json_object_new_string(
                                                       (f->flags & O_ACCMODE) == O_RDWR ? "rw" :
                                                       (f->flags & O_ACCMODE) == O_WRONLY ? "w" : "r"));
                        json_object_object_add(fo, "direct", json_object_new_boolean(!!(f->flags & O_DIRECT)));
                        json_object_object_add(fo, "in-use", json_object_new_boolean(f->users > 0));
                        json_object_object_add(fo, "removed", json_object_new_boolean(f->removed));
                        json_object_array_add(fds, fo);
                }
                json_object_object_add(so, "fds", fds);
                json_object_array_add(sets, so);
        }
        *ret = o;
        return 0;
}
