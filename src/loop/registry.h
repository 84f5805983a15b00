/* registry.h — loop devices per backing file, and the sharing rule.
 *
 * One entry per (st_dev, st_ino, access, offset, size limit, direct I/O,
 * block size): read-only users of one image share its loop device; a
 * read-write user is exclusive.  The sharing rule is checked per backing file
 * identity (whatever the offsets; a loop device named as a block device
 * counts as the file it serves): rw while any other user exists, or ro
 * while an rw user exists, is refused, unless the request is forced (`w!`)
 * or the other user is related to the requester (the request's `related`:
 * one domain is the other's stub domain, or both are one VM), in which
 * case read-write users of one file share its device.  Users the registry did
 * not make (registry_ops.outside_users: other loop devices, dom0's mounts and
 * exclusive holders) are checked too.
 *
 * The registry owns its entries, their users and the loop device fds it holds.
 * An entry holds its device open while at least one user is "holding" (its
 * blkback has not yet opened the device); once none is, the fd is closed and
 * the kernel's autoclear removes the device when its last real opener goes.
 * Lookups and releases are O(1) whatever the number of entries.
 *
 * The registry is where the daemon learns that a loop device of its own became
 * free; it passes the number on to the engine's free-device hints
 * (registry_ops.hint_free): when the last user of a live entry is released (or
 * an adopted entry is let go), and when an entry is dropped because the
 * kernel cleared its device (registry_device_changed(), or a reuse finding it
 * stale).  Allocation itself stays the engine's. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "access.h"
#include "backing.h"
#include "list.h"
#include "loop.h"


struct registry_key {
        dev_t dev;               /* st_dev of the file, or st_rdev of a block device */
        ino_t ino;               /* 0 for a block device */
        bool is_block;
        bool rw;
        bool direct_io;
        uint32_t block_size;
        uint64_t offset;
        uint64_t size_limit;
};

struct registry_entry;

/* One disk's use of an entry. */
struct registry_user {
        struct registry_entry *entry;
        struct list link;                /* in entry->users */
        char *name;                      /* e.g. "domain 3 disk 51712" */
        uint32_t domid, devid;           /* for listings; UINT32_MAX if none */
        enum access access;
        bool holding;                    /* waiting for its blkback */
};

struct registry_entry {
        struct registry_key key;
        struct loop_device dev;          /* dev.fd >= 0 while held */
        char *path;                      /* backing path as given (for listings) */
        struct list users;               /* of struct registry_user, by link */
        unsigned n_users;
        unsigned n_holding;
        bool dead;                       /* the kernel dropped it; kept until the last user goes */
        bool adopting;                   /* from an earlier run: held until registry_drop_unclaimed() */
};

struct registry_request {
        struct backing *backing;         /* opened by the caller; stays the caller's */
        const char *path;                /* as given, for listings and messages */
        struct loop_config cfg;          /* cfg.read_only is derived from access */
        enum access access;
        const char *name;                /* the disk, for messages and listings */
        uint32_t domid, devid;
        /* Optional: whether this disk may share its backing with holder
         * anyway (the stock script's same_vm). */
        bool (*related)(const struct registry_user *holder, void *data);
        /* Optional: whether holder's claim is out of date, its disk gone
         * though not released yet (the caller learns of that later), so
         * that it does not stand in the way.  Asked only of a holder that
         * would refuse the request. */
        bool (*stale)(const struct registry_user *holder, void *data);
        void *related_data;
};

/* What registry_ops.outside_users is asked about. */
struct registry_outside_query {
        int fd;                          /* the backing */
        bool is_block;                   /* fd is a block device */
        bool has_file;                   /* dev/ino name the file the disk reaches */
        dev_t dev;                       /* (a loop device's backing file, for a phy one) */
        ino_t ino;
        dev_t skip;                      /* the loop device the disk names itself, or 0 */
        bool rw;                         /* the disk is read-write */
};

struct registry;

/* The device calls the registry makes.  The default is the real engine
 * (registry_loop_ops); unit tests pass their own so that no root and no loop
 * device is needed.  The functions behave as their loop.h namesakes. */
struct registry_ops {
        int (*bind)(int backing_fd, const struct loop_config *cfg, struct loop_device *ret);
        int (*reopen)(const struct loop_device *want, bool writable, int *ret_fd);
        int (*inspect)(int fd, struct loop_device *ret);
        int (*blockdev_inspect)(int fd, struct loop_device *ret);
        int (*diskseq_by_devnum)(dev_t devnum, uint64_t *ret);
        int (*get_config)(int fd, struct loop_config *ret);   /* for adoption */
        int (*set_direct_io)(int fd, bool on);                /* for reconfigure */
        int (*change_fd)(int fd, int backing_fd);
        /* Optional (loop_hint_free): told the number of a loop device of the
         * registry's that is free, or will be once its last opener closes it,
         * so that the next bind can try it first. */
        int (*hint_free)(int nr);
        /* Optional (outside_loop_backing): the file a loop device serves. */
        int (*loop_backing)(int fd, dev_t *ret_dev, ino_t *ret_ino);
        /* Optional (registry_outside_users): 1 when someone the registry does
         * not know uses the backing so that the disk may not (what says
         * who), 0 when nobody does, -errno. */
        int (*outside_users)(struct registry *c, const struct registry_outside_query *q, char *what, size_t len);
};

/* The outside users the sharing rule refuses, found by outside.h: for a
 * read-write disk any other loop device on its file, any mount of its block
 * device or an exclusive holder of it; for a read-only one, another loop
 * device bound read-write, a read-write mount. */
int registry_outside_users(struct registry *c, const struct registry_outside_query *q, char *what, size_t len);

extern const struct registry_ops registry_loop_ops;

int registry_new(struct registry **ret);
int registry_new_with_ops(const struct registry_ops *ops, struct registry **ret);
/* Closes every held fd and frees everything. */
void registry_free(struct registry *c);

/* Finds or creates the entry for req and adds a holding user to it.  A reused
 * entry whose fd was closed is reopened and re-verified (same backing file,
 * same diskseq); if the kernel dropped it meanwhile a new device is set up.
 * Users of w! count as read-write users for everybody else's check.  For a
 * block device the entry's dev.fd is a dup() of the request's backing fd
 * (the backing stays the caller's), taken again from the next request's
 * backing fd when the entry is held anew.
 * On failure err holds one sentence with the cause (e.g. "/img is in use
 * read-write by domain 3 disk 51712"), which names no other disk's backing,
 * and nothing was created.
 * -EBUSY: refused by the sharing rule.  -EACCES: read-write asked of a
 * backing opened read-only.  -EINVAL: a bad request (or a block device with
 * an offset or size limit).  Otherwise the engine's -errno. */
int registry_acquire(struct registry *c, const struct registry_request *req,
                  struct registry_user **ret, char *err, size_t errlen);

/* The user's blkback now holds the device: it stops holding; when no user of
 * the entry holds any more, the entry's fd is closed. */
void registry_user_unhold(struct registry *c, struct registry_user *u);

/* The user is gone (disk torn down): frees u; an entry with no user left is
 * closed and forgotten, and its loop device hinted free. */
void registry_release(struct registry *c, struct registry_user *u);

/* The kernel reported a change on devnum (uevent): if the entry serving it no
 * longer has its backing file or diskseq, it is marked dead and leaves the
 * index, so the next acquire sets up a new device (a loop device is hinted
 * free: autoclear is the usual cause).  Returns 1 when an entry was
 * dropped, 0 otherwise.  (A phy device can be served by two entries, a
 * read-only and a w! one; each is checked.) */
int registry_device_changed(struct registry *c, dev_t devnum);

/* Looks a live entry up by the device it serves, or NULL.  When several
 * serve it (see above), a loop entry comes first. */
struct registry_entry *registry_find_device(struct registry *c, dev_t devnum);
/* The same for a user of the given access: a loop device serves every user
 * of its one entry; of a block device's entries, the one opened as the
 * user needs (read-write for w and w!). */
struct registry_entry *registry_find_device_for(struct registry *c, dev_t devnum, enum access access);

/* Entries, dead ones included. */
size_t registry_n_entries(const struct registry *c);
/* Calls cb for every entry (dead ones included) until it returns non-zero. */
int registry_foreach(struct registry *c, int (*cb)(struct registry_entry *e, void *userdata), void *userdata);

/* Told whenever an entry starts or stops holding its device fd (the fd
 * store mirrors what is held).  registry_free() tells nothing: the daemon
 * exiting is not letting go. */
struct registry_hooks {
        void (*held)(struct registry_entry *e, void *userdata);
        void (*unheld)(struct registry_entry *e, void *userdata);
        void *userdata;
};
void registry_set_hooks(struct registry *c, const struct registry_hooks *hooks);

struct outside_loops;
/* Users the registry did not make are looked up in loops (outside.h), which the
 * caller keeps current, instead of by a walk over every loop device on the
 * host; refresh (optional) is called first thing in every registry_acquire()
 * to bring loops up to date (the daemon reads the uevents queued so far).
 * NULL loops: walk. */
void registry_set_outside_loops(struct registry *c, struct outside_loops *loops, void (*refresh)(void *userdata),
                             void *userdata);

/* ---- safe reopen ------------------------------------------------------------ */

struct registry_reconfig {
        int direct_io;           /* 0 or 1; -1 leaves it */
        int backing_fd;          /* a new backing file (read-only entries only); -1: none */
        const char *backing_path;/* for listings; NULL keeps the old one */
};

/* Changes a live entry's device in place: direct I/O on or off
 * (LOOP_SET_DIRECT_IO), and/or a new backing file for a read-only device
 * (LOOP_CHANGE_FD: same size, regular file or block device).  The device
 * and every fd on it stay as they are until the kernel has accepted the new
 * state; a refusal at any step leaves the device exactly as it was (a
 * direct I/O change made before a refused LOOP_CHANGE_FD is undone).  On
 * success the entry follows the device: key, backing identity and diskseq
 * (the kernel bumps it on LOOP_CHANGE_FD), users move to the new file's
 * sharing account, and a held fd is re-stored under its new name.  The
 * caller keeps backing_fd.  -EPERM: a new backing for a writable device;
 * -EBUSY: the new file is in use read-write; -EEXIST: another device already
 * serves the resulting configuration. */
int registry_reconfigure(struct registry *c, struct registry_entry *e, const struct registry_reconfig *rc,
                      char *err, size_t errlen);

/* ---- restart: devices an earlier run of the daemon set up ---------------- */

/* Adopts the device fd is open on (handed back by the fd store, or reopened
 * from what xenstore publishes): it must be bound, and have diskseq
 * expected_diskseq unless that is 0.  The entry is keyed as the device is
 * configured (backing file, read-only, offset, size limit, direct I/O, block
 * size), holds fd and has no user; it stays held (adopting) until
 * registry_drop_unclaimed().  If an entry already serves that device, fd is closed and
 * that entry is returned.  Takes fd.  -ESTALE: the device is not what was
 * expected any more. */
int registry_adopt_device(struct registry *c, int fd, uint64_t expected_diskseq, const char *path,
                       struct registry_entry **ret);

/* Adds a user to an adopted entry, without the sharing check (the state was
 * already there): holding when its blkback has not opened the device yet. */
int registry_adopt_user(struct registry *c, struct registry_entry *e, const char *name, uint32_t domid,
                     uint32_t devid, enum access access, bool holding, struct registry_user **ret);

/* Start-up is over: adopted entries nobody claimed are closed and forgotten
 * (their devices autoclear once unused), and the others keep their fd only
 * while a user holds. */
void registry_drop_unclaimed(struct registry *c);

/* The key of a request: block_size 0 becomes LOOP_DEFAULT_BLOCK_SIZE; for a
 * block device (served as it is, never looped) dev is st_rdev, ino 0, and
 * direct I/O and block size do not apply (0).  -EINVAL for a block device
 * with an offset or size limit, or a bad request. */
int registry_key_from_request(const struct registry_request *req, struct registry_key *ret);
/* hash_fn_t / equal_fn_t over struct registry_key (field by field, so padding
 * never matters). */
uint64_t registry_key_hash(const void *key);
bool registry_key_equal(const void *a, const void *b);

