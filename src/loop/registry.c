/* registry.c — loop devices per backing file, and the sharing rule.
 *
 * Three indexes, all O(1): live entries by full key (reuse), live entries by
 * devnum (uevents), and per backing file identity the users of that file in
 * any entry, dead ones included (the sharing rule).  Every entry, live or
 * dead, is also on one list so the registry can list and free them.
 *
 * A devnum normally has one live entry.  A phy block device can have two (a
 * read-only key and a w! read-write one), and a phy target may even name one
 * of our loop devices, so the devnum index holds a small slot per device
 * with the list of its live entries. */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hashmap.h"
#include "log.h"
#include "outside.h"
#include "errbuf.h"
#include "macro.h"

/* The identity the sharing rule is about: one file (or block device),
 * whatever offsets or modes its users asked for. */
struct ident_key {
        dev_t dev;
        ino_t ino;
        bool is_block;
};

struct user;

struct ident {
        struct ident_key key;
        struct list ro_users, rw_users;     /* rw: modes w and w! */
        unsigned n_ro, n_rw;
};

struct user {
        struct registry_user pub;
        struct list ident_link;             /* in the ident's list for its access */
};

struct devslot;

struct entry {
        struct registry_entry pub;
        struct list link;                   /* in registry->entries */
        struct ident *ident;
        struct devslot *slot;               /* NULL once dead */
        struct list slot_link;              /* in slot->entries while live */
};

struct devslot {
        dev_t devnum;
        struct list entries;                /* loop devices first */
};

struct registry {
        const struct registry_ops *ops;
        struct hashmap *by_key;             /* live entries by struct registry_key */
        struct hashmap *by_devnum;          /* struct devslot by devnum */
        struct hashmap *by_ident;           /* struct ident by struct ident_key */
        struct list entries;
        size_t n_entries;
        struct registry_hooks hooks;
        size_t n_adopting;                  /* entries waiting for registry_drop_unclaimed() */
        struct outside_loops *loops;        /* bound loop devices, or NULL: walk sysfs */
        void (*refresh_loops)(void *userdata);
        void *refresh_userdata;
};

const struct registry_ops registry_loop_ops = {
        .bind = loop_bind,
        .reopen = loop_reopen,
        .inspect = loop_inspect,
        .blockdev_inspect = blockdev_inspect,
        .diskseq_by_devnum = disk_get_diskseq_by_devnum,
        .get_config = loop_get_config,
        .set_direct_io = loop_set_direct_io,
        .change_fd = loop_change_fd,
        .hint_free = loop_hint_free,
        .loop_backing = outside_loop_backing,
        .outside_users = registry_outside_users,
};

/* ---- keys --------------------------------------------------------------- */

uint64_t registry_key_hash(const void *p)
{
        const struct registry_key *k = p;
        uint64_t v[6] = {
                (uint64_t)k->dev,
                (uint64_t)k->ino,
                (uint64_t)k->is_block | (uint64_t)k->rw << 1 | (uint64_t)k->direct_io << 2,
                k->block_size,
                k->offset,
                k->size_limit,
        };

        return hash_bytes(v, sizeof(v));
}

bool registry_key_equal(const void *pa, const void *pb)
{
        const struct registry_key *a = pa, *b = pb;

        return a->dev == b->dev && a->ino == b->ino && a->is_block == b->is_block &&
               a->rw == b->rw && a->direct_io == b->direct_io &&
               a->block_size == b->block_size && a->offset == b->offset &&
               a->size_limit == b->size_limit;
}

static uint64_t ident_hash(const void *p)
{
        const struct ident_key *k = p;
        uint64_t v[3] = { (uint64_t)k->dev, (uint64_t)k->ino, k->is_block };

        return hash_bytes(v, sizeof(v));
}

static bool ident_equal(const void *pa, const void *pb)
{
        const struct ident_key *a = pa, *b = pb;

        return a->dev == b->dev && a->ino == b->ino && a->is_block == b->is_block;
}

static uint64_t devnum_hash(const void *p)
{
        uint64_t v = *(const dev_t *)p;

        return hash_bytes(&v, sizeof(v));
}

static bool devnum_equal(const void *a, const void *b)
{
        return *(const dev_t *)a == *(const dev_t *)b;
}

int registry_key_from_request(const struct registry_request *req, struct registry_key *ret)
{
        const struct backing *b;
        struct registry_key k;

        if (!req || !req->backing || !ret)
                return -EINVAL;
        if (req->access != ACCESS_RO && req->access != ACCESS_RW && req->access != ACCESS_RW_FORCE)
                return -EINVAL;
        b = req->backing;

        memset(&k, 0, sizeof(k));
        k.rw = req->access != ACCESS_RO;
        k.is_block = b->is_block;
        if (k.is_block) {
                /* Served as it is: the loop parameters mean nothing here. */
                if (req->cfg.offset || req->cfg.size_limit)
                        return -EINVAL;
                k.dev = b->st.st_rdev;
        } else {
                k.dev = b->st.st_dev;
                k.ino = b->st.st_ino;
                k.direct_io = req->cfg.direct_io;
                k.block_size = req->cfg.block_size ? req->cfg.block_size : LOOP_DEFAULT_BLOCK_SIZE;
                k.offset = req->cfg.offset;
                k.size_limit = req->cfg.size_limit;
        }
        *ret = k;
        return 0;
}



/* ---- registry lifetime ----------------------------------------------------- */

int registry_new_with_ops(const struct registry_ops *ops, struct registry **ret)
{
        struct registry *c;

        if (!ops || !ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->ops = ops;
        list_init(&c->entries);
        c->by_key = hashmap_new(registry_key_hash, registry_key_equal);
        c->by_devnum = hashmap_new(devnum_hash, devnum_equal);
        c->by_ident = hashmap_new(ident_hash, ident_equal);
        if (!c->by_key || !c->by_devnum || !c->by_ident) {
                registry_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int registry_new(struct registry **ret)
{
        return registry_new_with_ops(&registry_loop_ops, ret);
}

static void user_free(struct user *u)
{
        if (!u)
                return;
        free(u->pub.name);
        free(u);
}

static void entry_close(struct registry *c, struct entry *e)
{
        if (e->pub.dev.fd < 0)
                return;
        if (c->hooks.unheld)
                c->hooks.unheld(&e->pub, c->hooks.userdata);
        e->pub.dev.fd = safe_close(e->pub.dev.fd);
}

/* Tells the hooks the fd is let go of (under its present name) while it
 * stays open: for re-storing it under a new one. */
static void entry_close_hook_only(struct registry *c, struct entry *e)
{
        if (c->hooks.unheld)
                c->hooks.unheld(&e->pub, c->hooks.userdata);
}

static void entry_held(struct registry *c, struct entry *e)
{
        if (c->hooks.held)
                c->hooks.held(&e->pub, c->hooks.userdata);
}

void registry_set_hooks(struct registry *c, const struct registry_hooks *hooks)
{
        c->hooks = hooks ? *hooks : (struct registry_hooks){};
}

void registry_set_outside_loops(struct registry *c, struct outside_loops *loops, void (*refresh)(void *userdata),
                             void *userdata)
{
        c->loops = loops;
        c->refresh_loops = refresh;
        c->refresh_userdata = userdata;
}

void registry_free(struct registry *c)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        void *v;

        if (!c)
                return;
        /* Exiting is not letting go: what the fd store holds stays there
         * for the next start. */
        c->hooks = (struct registry_hooks){};
        struct entry *e, *etmp;
        list_foreach_entry_safe(e, etmp, &c->entries, link) {
                struct registry_user *u, *utmp;
                list_foreach_entry_safe(u, utmp, &e->pub.users, link)
                        user_free(container_of(u, struct user, pub));
                entry_close(c, e);
                free(e->pub.path);
                free(e);
        }
        if (c->by_ident)
                while (hashmap_iterate(c->by_ident, &it, &v, NULL))
                        free(v);
        it = HASHMAP_ITER_INIT;
        if (c->by_devnum)
                while (hashmap_iterate(c->by_devnum, &it, &v, NULL))
                        free(v);
        hashmap_free(c->by_key);
        hashmap_free(c->by_devnum);
        hashmap_free(c->by_ident);
        free(c);
}

size_t registry_n_entries(const struct registry *c)
{
        return c ? c->n_entries : 0;
}

int registry_foreach(struct registry *c, int (*cb)(struct registry_entry *e, void *userdata), void *userdata)
{
        if (!c || !cb)
                return -EINVAL;
        struct entry *e;
        list_foreach_entry(e, &c->entries, link) {
                int r = cb(&e->pub, userdata);
                if (r != 0)
                        return r;
        }
        return 0;
}

struct registry_entry *registry_find_device(struct registry *c, dev_t devnum)
{
        struct devslot *slot = c ? hashmap_get(c->by_devnum, &devnum) : NULL;

        struct entry *e = slot ? list_first_entry(&slot->entries, struct entry, slot_link) : NULL;

        return e ? &e->pub : NULL;
}

struct registry_entry *registry_find_device_for(struct registry *c, dev_t devnum, enum access access)
{
        struct devslot *slot = c ? hashmap_get(c->by_devnum, &devnum) : NULL;
        struct entry *e;

        if (!slot)
                return NULL;
        list_foreach_entry(e, &slot->entries, slot_link)
                if (!e->pub.key.is_block || e->pub.key.rw == (access != ACCESS_RO))
                        return &e->pub;
        return NULL;
}

/* ---- entries ------------------------------------------------------------ */

/* Removes e from the map only if it is what the map holds under its key. */
static void map_remove_if(struct hashmap *h, const void *key, const struct entry *e)
{
        if (hashmap_get(h, key) == e)
                hashmap_remove(h, key);
}

/* Adds e to the live entries of its devnum; loop devices go first, so
 * registry_find_device() names the loop entry when a phy target is a loop
 * device as well. */
static int devslot_link(struct registry *c, struct entry *e)
{
        struct devslot *slot;
        bool created;

        slot = hashmap_get_or_new(c->by_devnum, &e->pub.dev.devnum, sizeof(*slot), offsetof(struct devslot, devnum),
                                  sizeof(dev_t), &created);
        if (!slot)
                return -ENOMEM;
        if (created)
                list_init(&slot->entries);
        e->slot = slot;
        if (e->pub.dev.nr >= 0 || list_is_empty(&slot->entries))
                list_prepend(&slot->entries, &e->slot_link);
        else    /* behind the first */
                list_prepend(slot->entries.next, &e->slot_link);
        return 0;
}

static void devslot_unlink(struct registry *c, struct entry *e)
{
        struct devslot *slot = e->slot;

        if (!slot)
                return;
        list_unlink(&e->slot_link);
        e->slot = NULL;
        if (list_is_empty(&slot->entries)) {
                hashmap_remove(c->by_devnum, &slot->devnum);
                free(slot);
        }
}

/* The kernel no longer serves e's file on e's device.  e leaves the indexes
 * (the next acquire sets up a new device) but stays, as do its users and
 * their share of the file, until they are released.  Its fd is closed: the
 * device it names is not ours any more. */
static void entry_mark_dead(struct registry *c, struct entry *e)
{
        if (e->pub.dead)
                return;
        log_debug("%s on %s is gone; %u user(s) keep the entry until released.",
                  e->pub.path, e->pub.dev.node, e->pub.n_users);
        map_remove_if(c->by_key, &e->pub.key, e);
        devslot_unlink(c, e);
        e->pub.dead = true;
        entry_close(c, e);
}

/* e's loop device is free, or will be with its last opener's close: the
 * engine may try it first next time.  Only ever a hint: the engine's
 * attempt is checked by the kernel, which refuses a bound device. */
static void hint_free(struct registry *c, const struct entry *e)
{
        if (c->ops->hint_free && !e->pub.key.is_block && e->pub.dev.nr >= 0)
                (void)c->ops->hint_free(e->pub.dev.nr);
}

static void entry_free(struct registry *c, struct entry *e)
{
        bool was_live = !e->pub.dead;

        if (e->pub.adopting)
                c->n_adopting--;
        if (!e->pub.dead) {
                map_remove_if(c->by_key, &e->pub.key, e);
                devslot_unlink(c, e);
        }
        list_unlink(&e->link);
        c->n_entries--;
        entry_close(c, e);
        /* A dead entry's number was hinted when it died, and may serve a
         * newer entry by now. */
        if (was_live)
                hint_free(c, e);
        free(e->pub.path);
        free(e);
}

/* Whether the device an entry was set up on still serves it: 0, -ESTALE, or
 * another error when that cannot be told (then nothing is concluded). */
static int entry_check_fd(struct registry *c, const struct entry *e, int fd)
{
        struct loop_device now;
        int r;

        if (e->pub.key.is_block)
                r = c->ops->blockdev_inspect(fd, &now);
        else
                r = c->ops->inspect(fd, &now);
        if (r < 0)
                return r;
        if (now.devnum != e->pub.dev.devnum)
                return -ESTALE;
        if (!e->pub.key.is_block &&
            (now.backing_dev != e->pub.dev.backing_dev || now.backing_ino != e->pub.dev.backing_ino))
                return -ESTALE;
        if (e->pub.dev.diskseq != 0 && now.diskseq != e->pub.dev.diskseq)
                return -ESTALE;
        return 0;
}

/* Gives a live entry its fd back (or checks the one it has) for a new user. */
static int entry_revive(struct registry *c, struct entry *e, const struct registry_request *req)
{
        _cleanup_close_ int fd = -1;
        int r;

        if (e->pub.dev.fd >= 0)
                return entry_check_fd(c, e, e->pub.dev.fd);

        if (e->pub.key.is_block) {
                fd = fcntl(req->backing->fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return negative_errno();
        } else {
                r = c->ops->reopen(&e->pub.dev, e->pub.key.rw, &fd);
                if (r < 0)
                        return r;
        }
        r = entry_check_fd(c, e, fd);
        if (r < 0)
                return r;
        e->pub.dev.fd = TAKE_FD(fd);
        entry_held(c, e);
        return 0;
}

/* Sets up the device for a new entry: a loop device on the backing fd, or the
 * block device itself through a dup() of it. */
static int entry_setup_device(struct registry *c, const struct registry_request *req,
                              const struct registry_key *key, struct loop_device *ret)
{
        struct loop_config cfg = req->cfg;
        _cleanup_close_ int fd = -1;
        int r;

        if (!key->is_block) {
                cfg.read_only = !key->rw;
                cfg.block_size = key->block_size;
                return c->ops->bind(req->backing->fd, &cfg, ret);
        }

        fd = fcntl(req->backing->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        r = c->ops->blockdev_inspect(fd, ret);
        if (r < 0)
                return r;
        ret->fd = TAKE_FD(fd);
        return 0;
}

/* The kernel just handed out e's loop device as free: any loop entry that
 * still names it had its device cleared meanwhile. */
static void retire_previous_users_of(struct registry *c, struct entry *e)
{
        struct devslot *slot = hashmap_get(c->by_devnum, &e->pub.dev.devnum);
        struct entry *old, *tmp;

        if (!slot || e->pub.dev.nr < 0)
                return;
        list_foreach_entry_safe(old, tmp, &slot->entries, slot_link) {
                bool last = &tmp->slot_link == &slot->entries;
                if (old->pub.dev.nr >= 0)
                        entry_mark_dead(c, old);
                if (last)
                        break;       /* the slot may have gone with it */
        }
}

/* An indexed entry joins its file's account and the registry's list; its fd
 * is held from now on. */
static void entry_link(struct registry *c, struct entry *e, struct ident *id)
{
        e->ident = id;
        list_prepend(&c->entries, &e->link);
        c->n_entries++;
        entry_held(c, e);
}

/* An entry for key, not in any index yet, with no device (fd -1). */
static struct entry *entry_alloc(const struct registry_key *key, const char *path)
{
        struct entry *e = calloc(1, sizeof(*e));

        if (!e)
                return NULL;
        e->pub.path = strdup(path ? path : "");
        if (!e->pub.path)
                return mfree(e);
        e->pub.key = *key;
        e->pub.dev.fd = -1;
        list_init(&e->pub.users);
        list_init(&e->link);
        list_init(&e->slot_link);
        return e;
}

static int entry_new(struct registry *c, const struct registry_request *req, const struct registry_key *key,
                     struct ident *id, struct entry **ret)
{
        struct entry *e;
        int r;

        e = entry_alloc(key, req->path);
        if (!e)
                return -ENOMEM;

        r = entry_setup_device(c, req, key, &e->pub.dev);
        if (r < 0) {
                e->pub.dev.fd = -1;
                goto fail;
        }

        retire_previous_users_of(c, e);
        r = hashmap_put(c->by_key, &e->pub.key, e);
        if (r < 0)
                goto fail;
        r = devslot_link(c, e);
        if (r < 0) {
                hashmap_remove(c->by_key, &e->pub.key);
                goto fail;
        }

        entry_link(c, e, id);
        *ret = e;
        return 0;

fail:
        /* A new loop device goes with it (autoclear); never announced held. */
        e->pub.dev.fd = safe_close(e->pub.dev.fd);
        free(e->pub.path);
        free(e);
        return r;
}

/* ---- the sharing rule --------------------------------------------------- */

/* The first user on list that req may not share with; *others counts the
 * rest of those. */
static const struct user *first_conflict(const struct list *list, const struct registry_request *req,
                                         const struct user *found, unsigned *others)
{
        const struct user *u;

        list_foreach_entry(u, list, ident_link) {
                if (req->related && req->related(&u->pub, req->related_data))
                        continue;
                if (req->stale && req->stale(&u->pub, req->related_data))
                        continue;
                if (found)
                        (*others)++;
                else
                        found = u;
        }
        return found;
}

static int check_sharing(const struct ident *id, const struct registry_request *req,
                         char *err, size_t errlen)
{
        const struct user *holder;
        unsigned others = 0;

        if (!id || req->access == ACCESS_RW_FORCE)
                return 0;
        /* Read-only is refused by writers; read-write by anyone. */
        holder = first_conflict(&id->rw_users, req, NULL, &others);
        if (req->access != ACCESS_RO)
                holder = first_conflict(&id->ro_users, req, holder, &others);
        if (!holder)
                return 0;

        if (others)
                errbuf_set(err, errlen, "%s is in use %s by %s (and %u other disk%s)", req->path,
                          access_name(holder->pub.access), holder->pub.name, others,
                          others == 1 ? "" : "s");
        else
                errbuf_set(err, errlen, "%s is in use %s by %s", req->path,
                          access_name(holder->pub.access), holder->pub.name);
        return -EBUSY;
}

/* What the sharing rule is about for a device keyed key, open as fd: the
 * file or block device itself, or, for a loop device named as a block
 * device, the file it serves (else a second name for one file would slip
 * past the rule). */
static struct ident_key ident_key_of(struct registry *c, const struct registry_key *key, int fd)
{
        struct ident_key k = { .dev = key->dev, .ino = key->ino, .is_block = key->is_block };
        dev_t dev;
        ino_t ino;

        if (key->is_block && fd >= 0 && c->ops->loop_backing && c->ops->loop_backing(fd, &dev, &ino) == 0)
                k = (struct ident_key){ .dev = dev, .ino = ino, .is_block = false };
        return k;
}

static struct ident_key ident_key_plain(const struct registry_key *key)
{
        return (struct ident_key){ .dev = key->dev, .ino = key->ino, .is_block = key->is_block };
}

static struct ident *ident_get(struct registry *c, const struct ident_key *pk, bool create, bool *created)
{
        struct ident *id;

        *created = false;
        if (!create)
                return hashmap_get(c->by_ident, pk);
        id = hashmap_get_or_new(c->by_ident, pk, sizeof(*id), offsetof(struct ident, key), sizeof(*pk), created);
        if (id && *created) {
                list_init(&id->ro_users);
                list_init(&id->rw_users);
        }
        return id;
}

static void ident_drop(struct registry *c, struct ident *id)
{
        hashmap_remove(c->by_ident, &id->key);
        free(id);
}

static struct list *ident_list(struct ident *id, enum access a)
{
        return a == ACCESS_RO ? &id->ro_users : &id->rw_users;
}

/* The ident's side of a user: its list for the user's access and counts. */
static void ident_link_user(struct ident *id, struct user *u)
{
        list_prepend(ident_list(id, u->pub.access), &u->ident_link);
        if (u->pub.access == ACCESS_RO)
                id->n_ro++;
        else
                id->n_rw++;
}

static void ident_unlink_user(struct ident *id, struct user *u)
{
        list_unlink(&u->ident_link);
        if (u->pub.access == ACCESS_RO)
                id->n_ro--;
        else
                id->n_rw--;
}

static void user_link(struct entry *e, struct user *u)
{
        u->pub.entry = &e->pub;
        u->pub.holding = true;
        list_prepend(&e->pub.users, &u->pub.link);
        e->pub.n_users++;
        e->pub.n_holding++;
        ident_link_user(e->ident, u);
}

static void user_unlink(struct entry *e, struct user *u)
{
        list_unlink(&u->pub.link);
        e->pub.n_users--;
        ident_unlink_user(e->ident, u);
}

/* ---- acquire and release ------------------------------------------------ */

static struct user *user_new(const struct registry_request *req)
{
        struct user *u = calloc(1, sizeof(*u));

        if (!u)
                return NULL;
        u->pub.name = strdup(req->name ? req->name : "an unnamed disk");
        if (!u->pub.name) {
                free(u);
                return NULL;
        }
        u->pub.domid = req->domid;
        u->pub.devid = req->devid;
        u->pub.access = req->access;
        return u;
}

/* The live entry for key, revived, or a new one. */
static int entry_get(struct registry *c, const struct registry_request *req, const struct registry_key *key,
                     struct ident *id, struct entry **ret, char *err, size_t errlen)
{
        struct entry *e = hashmap_get(c->by_key, key);
        int r;

        if (e) {
                r = entry_revive(c, e, req);
                if (r >= 0) {
                        *ret = e;
                        return 0;
                }
                if (r != -ESTALE) {
                        errbuf_set(err, errlen, "cannot reopen %s for %s: %s", e->pub.dev.node,
                                  req->path, strerror(-r));
                        return r;
                }
                entry_mark_dead(c, e);
                hint_free(c, e);
        }

        r = entry_new(c, req, key, id, ret);
        if (r < 0)
                errbuf_set(err, errlen, "cannot set up %s for %s: %s",
                          key->is_block ? "the block device" : "a loop device", req->path, strerror(-r));
        return r;
}

/* Users the registry did not make: another loop device on the file, dom0's
 * mounts and exclusive holders of a block device. */
static bool device_is_ours(dev_t devnum, void *userdata)
{
        return registry_find_device(userdata, devnum) != NULL;
}

int registry_outside_users(struct registry *c, const struct registry_outside_query *q, char *what, size_t len)
{
        char node[64];
        int r;

        if (q->has_file) {
                r = c->loops ? outside_loops_find(c->loops, q->dev, q->ino, q->skip, !q->rw, device_is_ours, c, node,
                                                  sizeof(node))
                             : outside_loop_users(q->dev, q->ino, q->skip, !q->rw, device_is_ours, c, node, sizeof(node));
                if (r > 0)
                        snprintf(what, len, "bound%s to %s, a loop device xen-loopd did not set up",
                                 q->rw ? "" : " read-write", node);
                if (r != 0)
                        return r;
        }
        if (q->is_block)
                return outside_blockdev_users(q->fd, !q->rw, q->rw, what, len);
        return 0;
}

static int check_outside(struct registry *c, const struct registry_request *req, const struct registry_key *key,
                         const struct ident_key *ik, char *err, size_t errlen)
{
        struct registry_outside_query q = {
                .fd = req->backing->fd,
                .is_block = key->is_block,
                .has_file = !ik->is_block,
                .dev = ik->dev,
                .ino = ik->ino,
                .skip = key->is_block ? key->dev : 0,
                .rw = req->access != ACCESS_RO,
        };
        char what[256] = "";
        int r;

        if (req->access == ACCESS_RW_FORCE || !c->ops->outside_users)
                return 0;
        r = c->ops->outside_users(c, &q, what, sizeof(what));
        if (r < 0) {
                errbuf_set(err, errlen, "cannot tell whether %s is in use outside xen-loopd: %s", req->path,
                           strerror(-r));
                return r;
        }
        if (r > 0) {
                errbuf_set(err, errlen, "%s is in use outside xen-loopd: %s", req->path, what);
                return -EBUSY;
        }
        return 0;
}

int registry_acquire(struct registry *c, const struct registry_request *req,
                  struct registry_user **ret, char *err, size_t errlen)
{
        struct registry_key key;
        struct ident_key ik;
        struct ident *id;
        struct entry *e;
        struct user *u;
        bool created;
        int r;

        errbuf_set(err, errlen, "%s", "");
        if (!c || !req || !ret || !req->backing || req->backing->fd < 0 || !req->path) {
                errbuf_set(err, errlen, "invalid disk request");
                return -EINVAL;
        }
        /* Before anything is looked at: what the kernel reported since. */
        if (c->refresh_loops)
                c->refresh_loops(c->refresh_userdata);
        r = registry_key_from_request(req, &key);
        if (r < 0) {
                if (req->backing->is_block)
                        errbuf_set(err, errlen, "%s is a block device: offset and size limit apply only to files",
                                  req->path);
                else
                        errbuf_set(err, errlen, "invalid disk request for %s", req->path);
                return r;
        }
        if (key.rw && !req->backing->writable) {
                errbuf_set(err, errlen, "%s was opened read-only and cannot be attached read-write", req->path);
                return -EACCES;
        }

        ik = ident_key_of(c, &key, req->backing->fd);
        id = ident_get(c, &ik, false, &created);
        r = check_sharing(id, req, err, errlen);
        if (r < 0)
                return r;
        r = check_outside(c, req, &key, &ik, err, errlen);
        if (r < 0)
                return r;

        u = user_new(req);
        if (!u)
                goto oom;
        if (!id) {
                id = ident_get(c, &ik, true, &created);
                if (!id)
                        goto oom;
        }

        r = entry_get(c, req, &key, id, &e, err, errlen);
        if (r < 0) {
                if (created)
                        ident_drop(c, id);
                user_free(u);
                return r;
        }

        user_link(e, u);
        *ret = &u->pub;
        return 0;

oom:
        user_free(u);
        errbuf_set(err, errlen, "out of memory while setting up %s", req->path);
        return -ENOMEM;
}

void registry_user_unhold(struct registry *c, struct registry_user *u)
{
        struct registry_entry *e;

        if (!c || !u || !u->holding)
                return;
        e = u->entry;
        u->holding = false;
        /* The last holder gone: blkback holds the device now, and autoclear
         * removes it once the last real opener closes it. */
        if (--e->n_holding == 0 && !e->adopting)
                entry_close(c, container_of(e, struct entry, pub));
}

void registry_release(struct registry *c, struct registry_user *pu)
{
        struct user *u;
        struct entry *e;
        struct ident *id;

        if (!c || !pu)
                return;
        u = container_of(pu, struct user, pub);
        e = container_of(pu->entry, struct entry, pub);
        id = e->ident;

        registry_user_unhold(c, pu);
        user_unlink(e, u);
        user_free(u);
        if (e->pub.n_users == 0)
                entry_free(c, e);
        if (id->n_ro + id->n_rw == 0)
                ident_drop(c, id);
}

/* ---- kernel events ------------------------------------------------------ */

static int entry_check(struct registry *c, struct entry *e)
{
        _cleanup_close_ int fd = -1;
        uint64_t seq;
        int r;

        if (e->pub.dev.fd >= 0)
                return entry_check_fd(c, e, e->pub.dev.fd);

        if (e->pub.key.is_block) {
                /* Not held: ask sysfs rather than open a device we do not own. */
                r = c->ops->diskseq_by_devnum(e->pub.dev.devnum, &seq);
                if (r == -ENOENT)
                        return -ESTALE;
                if (r == -EOPNOTSUPP)
                        return 0;
                if (r < 0)
                        return r;
                return e->pub.dev.diskseq != 0 && seq != e->pub.dev.diskseq ? -ESTALE : 0;
        }

        /* Opening without O_EXCL and closing again changes nothing: blkback
         * (if any) still holds the device, or it is gone already. */
        r = c->ops->reopen(&e->pub.dev, false, &fd);
        if (r < 0)
                return r;
        return entry_check_fd(c, e, fd);
}

int registry_device_changed(struct registry *c, dev_t devnum)
{
        struct devslot *slot;
        struct entry *e, *tmp;
        int dropped = 0;

        if (!c)
                return 0;
        slot = hashmap_get(c->by_devnum, &devnum);
        if (!slot)
                return 0;
        list_foreach_entry_safe(e, tmp, &slot->entries, slot_link) {
                bool last = &tmp->slot_link == &slot->entries;
                int r = entry_check(c, e);

                if (r == -ESTALE) {
                        entry_mark_dead(c, e);
                        hint_free(c, e);
                        dropped = 1;
                } else if (r < 0) {
                        log_debug_errno(r, "Cannot check %s after a change event: %m.",
                                        e->pub.dev.node);
                }
                if (last)
                        break;       /* the slot may have gone with e */
        }
        return dropped;
}

/* ---- restart: devices an earlier run set up ------------------------------ */

/* The key a bound device's own configuration gives. */
static int key_from_device(struct registry *c, int fd, struct loop_device *dev, struct registry_key *ret)
{
        struct loop_config cfg;
        int r;

        memset(ret, 0, sizeof(*ret));
        r = c->ops->inspect(fd, dev);
        if (r == -ENOTTY) {
                /* Not a loop device: a phy target served as it is. */
                r = c->ops->blockdev_inspect(fd, dev);
                if (r < 0)
                        return r;
                ret->is_block = true;
                ret->dev = dev->devnum;
                ret->rw = (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR;
                return 0;
        }
        if (r < 0)
                return r;
        if (!c->ops->get_config)
                return -EOPNOTSUPP;
        r = c->ops->get_config(fd, &cfg);
        if (r < 0)
                return r;
        ret->dev = dev->backing_dev;
        ret->ino = dev->backing_ino;
        ret->rw = !cfg.read_only;
        ret->direct_io = cfg.direct_io;
        ret->block_size = cfg.block_size;
        ret->offset = cfg.offset;
        ret->size_limit = cfg.size_limit;
        return 0;
}

int registry_adopt_device(struct registry *c, int fd, uint64_t expected_diskseq, const char *path,
                       struct registry_entry **ret)
{
        _cleanup_close_ int owned = fd;
        struct loop_device dev;
        struct registry_key key;
        struct registry_entry *known;
        struct ident *id;
        struct entry *e;
        bool created;
        int r;

        r = key_from_device(c, owned, &dev, &key);
        if (r < 0)
                return r == -ENXIO ? -ESTALE : r;
        if (expected_diskseq && dev.diskseq != expected_diskseq)
                return -ESTALE;
        known = registry_find_device(c, dev.devnum);
        if (known && !known->dead && known->dev.diskseq == dev.diskseq &&
            registry_key_equal(&known->key, &key)) {
                *ret = known;
                return 0; /* owned closes the duplicate */
        }
        if (hashmap_get(c->by_key, &key))
                return -EEXIST; /* another device serves the same key: keep that one */

        {
                struct ident_key ik = ident_key_of(c, &key, owned);
                id = ident_get(c, &ik, true, &created);
        }
        if (!id)
                return -ENOMEM;
        /* No path known (a phy device from the fd store): its node, for
         * listings. */
        e = entry_alloc(&key, path ? path : (key.is_block ? dev.node : NULL));
        if (!e) {
                if (created)
                        ident_drop(c, id);
                return -ENOMEM;
        }
        e->pub.dev = dev;
        e->pub.dev.fd = TAKE_FD(owned);
        e->pub.adopting = true;
        c->n_adopting++;
        r = hashmap_put(c->by_key, &e->pub.key, e);
        if (r >= 0) {
                r = devslot_link(c, e);
                if (r < 0)
                        hashmap_remove(c->by_key, &e->pub.key);
        }
        if (r < 0) {
                c->n_adopting--;
                safe_close(e->pub.dev.fd);
                free(e->pub.path);
                free(e);
                if (created)
                        ident_drop(c, id);
                return r;
        }
        entry_link(c, e, id);
        *ret = &e->pub;
        return 0;
}

int registry_adopt_user(struct registry *c, struct registry_entry *pe, const char *name, uint32_t domid,
                     uint32_t devid, enum access access, bool holding, struct registry_user **ret)
{
        struct entry *e = container_of(pe, struct entry, pub);
        struct registry_request req = {
                .name = name,
                .domid = domid,
                .devid = devid,
                .access = access,
        };
        struct user *u;

        if (pe->dead)
                return -ESTALE;
        if (holding && pe->dev.fd < 0)
                return -EBADF; /* nothing left to hold: the device may be gone */
        u = user_new(&req);
        if (!u)
                return -ENOMEM;
        user_link(e, u);
        if (!holding)
                registry_user_unhold(c, &u->pub);
        *ret = &u->pub;
        return 0;
}

void registry_drop_unclaimed(struct registry *c)
{
        struct entry *e, *tmp;

        list_foreach_entry_safe(e, tmp, &c->entries, link) {
                if (c->n_adopting == 0)
                        break;
                if (!e->pub.adopting)
                        continue;
                e->pub.adopting = false;
                c->n_adopting--;
                if (e->pub.n_users == 0) {
                        struct ident *id = e->ident;
                        log_info("%s (%s) has no disk any more; letting it go.", e->pub.dev.node, e->pub.path);
                        entry_free(c, e);
                        if (id->n_ro + id->n_rw == 0)
                                ident_drop(c, id);
                } else if (e->pub.n_holding == 0) {
                        entry_close(c, e);
                }
        }
}

/* ---- safe reopen ------------------------------------------------------------- */

static int set_direct_io(struct registry *c, int fd, bool on)
{
        return c->ops->set_direct_io ? c->ops->set_direct_io(fd, on) : -EOPNOTSUPP;
}

/* What rc would make of e's key, if the change is allowed. */
static int reconfig_key(struct registry *c, const struct entry *e, const struct registry_reconfig *rc,
                        struct registry_key *ret, char *err, size_t errlen)
{
        const struct registry_entry *pe = &e->pub;
        struct registry_key key = pe->key;
        struct stat st;

        if (pe->dead || pe->key.is_block) {
                errbuf_set(err, errlen, "%s cannot be reconfigured: %s", pe->dev.node,
                          pe->dead ? "the kernel dropped it" : "it is a block device used as it is");
                return -ESTALE;
        }
        if (rc->backing_fd >= 0) {
                if (pe->key.rw) {
                        errbuf_set(err, errlen, "%s is writable: only a read-only device may change its backing file",
                                  pe->dev.node);
                        return -EPERM;
                }
                if (fstat(rc->backing_fd, &st) < 0)
                        return negative_errno();
                if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
                        errbuf_set(err, errlen, "the new backing is %s, not a regular file or block device",
                                  backing_type_name(st.st_mode));
                        return -ENOTBLK;
                }
                key.dev = st.st_dev;
                key.ino = st.st_ino;
        }
        if (rc->direct_io >= 0)
                key.direct_io = rc->direct_io;
        if (!registry_key_equal(&key, &pe->key) && hashmap_get(c->by_key, &key)) {
                errbuf_set(err, errlen, "another loop device already serves that file with those settings");
                return -EEXIST;
        }
        if (key.dev != pe->key.dev || key.ino != pe->key.ino) {
                struct ident_key ik = ident_key_plain(&key);
                bool created;
                struct ident *nid = ident_get(c, &ik, false, &created);
                if (nid && nid->n_rw > 0) {
                        errbuf_set(err, errlen, "the new backing file is in use read-write by %s",
                                  list_first_entry(&nid->rw_users, struct user, ident_link)->pub.name);
                        return -EBUSY;
                }
        }
        *ret = key;
        return 0;
}

/* Asks the kernel for rc's changes on fd, e's device; a refusal leaves the
 * device as it was. */
static int reconfig_device(struct registry *c, const struct entry *e, int fd, const struct registry_reconfig *rc,
                           char *err, size_t errlen)
{
        const struct registry_entry *pe = &e->pub;
        bool dio_changed = false;
        int r;

        if (rc->direct_io >= 0 && (bool)rc->direct_io != pe->key.direct_io) {
                r = set_direct_io(c, fd, rc->direct_io);
                if (r < 0) {
                        errbuf_set(err, errlen, "the kernel refused direct I/O %s for %s: %s",
                                  rc->direct_io ? "on" : "off", pe->dev.node, strerror(-r));
                        return r;
                }
                dio_changed = true;
        }
        if (rc->backing_fd < 0)
                return 0;
        r = c->ops->change_fd ? c->ops->change_fd(fd, rc->backing_fd) : -EOPNOTSUPP;
        if (r < 0) {
                if (dio_changed && set_direct_io(c, fd, pe->key.direct_io) < 0)
                        log_warning("Could not set direct I/O of %s back.", pe->dev.node);
                errbuf_set(err, errlen, "the kernel refused the new backing for %s (%s); it keeps serving %s",
                          pe->dev.node, r == -EINVAL ? "not the same size, or not read-only" : strerror(-r),
                          pe->path);
                return r;
        }
        return 0;
}

/* e's users move to the sharing account of the file key names. */
static void entry_move_ident(struct registry *c, struct entry *e, const struct registry_key *key)
{
        struct ident *id = e->ident, *nid;
        struct ident_key ik;
        struct registry_user *u;
        bool created;

        if (key->dev == id->key.dev && key->ino == id->key.ino)
                return;
        ik = ident_key_plain(key);
        nid = ident_get(c, &ik, true, &created);
        if (!nid)
                return;
        list_foreach_entry(u, &e->pub.users, link) {
                ident_unlink_user(id, container_of(u, struct user, pub));
                ident_link_user(nid, container_of(u, struct user, pub));
        }
        e->ident = nid;
        if (id->n_ro + id->n_rw == 0)
                ident_drop(c, id);
}

/* After the kernel took the change, e follows its device (open as fd):
 * key, backing identity, diskseq, path (taken), sharing account. */
static void entry_follow_device(struct registry *c, struct entry *e, int fd, const struct registry_key *key, char *path)
{
        struct registry_entry *pe = &e->pub;
        struct loop_device now;
        int r;

        r = c->ops->inspect(fd, &now);
        if (r < 0)
                log_warning_errno(r, "Cannot inspect %s after reconfiguring it: %m.", pe->dev.node);
        if (pe->dev.fd >= 0)
                entry_close_hook_only(c, e);
        map_remove_if(c->by_key, &pe->key, e);
        pe->key = *key;
        if (r >= 0) {
                pe->dev.diskseq = now.diskseq;
                pe->dev.backing_dev = now.backing_dev;
                pe->dev.backing_ino = now.backing_ino;
        }
        if (hashmap_put(c->by_key, &pe->key, e) < 0)
                log_warning("Out of memory re-indexing %s.", pe->dev.node);
        if (path) {
                free(pe->path);
                pe->path = path;
        }
        entry_move_ident(c, e, key);
        if (pe->dev.fd >= 0)
                entry_held(c, e);
}

int registry_reconfigure(struct registry *c, struct registry_entry *pe, const struct registry_reconfig *rc,
                      char *err, size_t errlen)
{
        struct entry *e = container_of(pe, struct entry, pub);
        _cleanup_close_ int tmp = -1;
        _cleanup_free_ char *path = NULL;
        struct registry_key key;
        int fd, r;

        errbuf_set(err, errlen, "%s", "");
        r = reconfig_key(c, e, rc, &key, err, errlen);
        if (r < 0)
                return r;
        if (rc->backing_path && !(path = strdup(rc->backing_path)))
                return -ENOMEM;

        /* The device's own fd, or a checked one for the time of the change. */
        fd = pe->dev.fd;
        if (fd < 0) {
                r = c->ops->reopen(&pe->dev, false, &tmp);
                if (r >= 0)
                        r = entry_check_fd(c, e, tmp);
                if (r < 0) {
                        errbuf_set(err, errlen, "cannot reopen %s: %s", pe->dev.node, strerror(-r));
                        return r;
                }
                fd = tmp;
        }
        r = reconfig_device(c, e, fd, rc, err, errlen);
        if (r < 0)
                return r;
        entry_follow_device(c, e, fd, &key, TAKE_PTR(path));
        return 0;
}
