/* fdset.h — fd sets passed in by a toolstack, as QEMU's add-fd does.
 *
 * A toolstack that must not let the daemon open paths (SELinux labels, a
 * privilege-separated manager, a driver domain without dom0's view) passes
 * open files instead; a disk then names "/dev/fdset/N" and is set up from the
 * fd of set N whose access mode (and O_DIRECT, when direct I/O is asked)
 * matches.  Owns every fd in every set.  Lifetime as in QEMU: an fd belongs
 * to the connection that added it; when that connection closes, its fds not
 * in use are closed, those in use stay until their last user lets go; a set
 * with no fd left disappears. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backing.h"

struct json_object;
struct fdset_registry;
struct fdset_use;

#define FDSET_ID_MAX 0x7fffffffu
#define FDSET_PATH_PREFIX "/dev/fdset/"
#define FDSET_MAX_FDS 64
/* Every fd kept in a set is also kept in the service manager's fd store,
 * next to the held loop devices (FileDescriptorStoreMax=16384 in the unit):
 * at most this many sets, and this many fds in all sets together, leave
 * the store room for every device. */
#define FDSET_MAX_SETS 4096
#define FDSET_MAX_TOTAL_FDS 8192

/* Told when an fd starts or stops being kept, for the fd store; name is
 * what it is stored under: "fdset-<set>-<serial>", the serial unique among
 * every name in the store (never the fd number, which a taken-back fd no
 * longer has, and a new fd may get). */
struct fdset_hooks {
        void (*kept)(int fd, const char *name, void *userdata);
        void (*dropped)(int fd, const char *name, void *userdata);
        void *userdata;
};

int fdset_registry_new(const struct fdset_hooks *hooks, struct fdset_registry **ret);
/* From now on no hook is told anything (the daemon is exiting: what the fd
 * store holds stays there for the next start). */
void fdset_registry_quiet(struct fdset_registry *r);
/* Closes every fd, telling no hook (exiting is not letting go). */
void fdset_registry_free(struct fdset_registry *r);

/* Adds fd (taken, whatever the result) to set set_id, or to a new set when
 * set_id is -1, on behalf of connection conn (0: none, e.g. taken back from
 * the fd store) of user owner.  A set belongs to the user who created it;
 * adding to another user's set is -EPERM, whoever asks (a disk naming the
 * set could otherwise be served a file its owner never passed).  Refused: a set id out of range, a set already holding
 * FDSET_MAX_FDS, a new set past FDSET_MAX_SETS, any fd past
 * FDSET_MAX_TOTAL_FDS in all sets (-ENOSPC, all three), an fd that is neither a regular file nor a block device,
 * and a second fd of one open file description in a set (they would share
 * their status flags: kcmp(KCMP_FILE) tells).  *ret_fd is the fd number that
 * names it in remove-fd and query-fdsets. */
int fdset_add(struct fdset_registry *r, int64_t set_id, int fd, uint64_t conn, uid_t owner, const char *opaque,
              uint32_t *ret_set, int *ret_fd, char *err, size_t errlen);
/* Who set_id belongs to; -ENOENT when there is no such set.  A set taken
 * back from the fd store belongs to whom it did before (its fds' names say;
 * root under an older xen-loopd's names). */
int fdset_owner(struct fdset_registry *r, uint32_t set_id, uid_t *ret);

/* Before any fdset_restore(): every name taken back from the fd store, so
 * that new serials stay clear of them. */
void fdset_reserve_store_name(struct fdset_registry *r, const char *name);
/* Takes back an fd the fd store kept under name: it joins its set again,
 * owned by no connection, until fdset_drop_unclaimed().  It keeps its name, unless
 * rename (the store held another fd under that name too, and the caller
 * removed the name): it is then stored again under a new one.  -EINVAL for
 * a name that is not an fd set's (fd is closed then). */
int fdset_restore(struct fdset_registry *r, int fd, const char *name, bool rename);
/* Parses a stored name: "fdset-<set>-<serial>-u<owner>", serial at most
 * INT64_MAX, owner the uid the set belongs to (below UINT32_MAX).  An older
 * xen-loopd put the fd number in serial and no owner: such names parse the
 * same, the set then root's.  ret_owner may be NULL. */
int fdset_parse_store_name(const char *name, uint32_t *ret_set, uint64_t *ret_serial, uid_t *ret_owner);

/* Removes one fd (fd >= 0) or the whole set (fd -1): closed now when not in
 * use, else once its last user lets go.  -ENOENT for an unknown set or fd. */
int fdset_remove(struct fdset_registry *r, uint32_t set_id, int fd, char *err, size_t errlen);

/* The fd of set_id for a disk: its O_ACCMODE must be O_RDWR when writable,
 * O_RDONLY otherwise, and its O_DIRECT must equal direct.  ret gets a dup()
 * of it (same flags, by construction) for the caller to close; *ret_use
 * keeps the fd in use until fdset_unuse().  Never opens anything. */
int fdset_use(struct fdset_registry *r, uint32_t set_id, bool writable, bool direct, struct backing *ret,
              struct fdset_use **ret_use, char *err, size_t errlen);
void fdset_unuse(struct fdset_registry *r, struct fdset_use *use);

/* The connection went: its fds not in use are closed. */
void fdset_connection_closed(struct fdset_registry *r, uint64_t conn);
/* Start-up is over: fds taken back from the fd store that no disk uses are
 * closed (their connection is gone). */
void fdset_drop_unclaimed(struct fdset_registry *r);

/* {"fdsets": [{"fdset-id": N, "fds": [{"fd": N, "opaque": "...", "access":
 * "r"|"rw", "direct": bool, "in-use": bool}]}]}: every set, or with owner
 * other than (uid_t)-1 only that user's. */
int fdset_query(struct fdset_registry *r, uid_t owner, struct json_object **ret);

/* Whether target names an fd set (starts with FDSET_PATH_PREFIX). */
bool fdset_is_path(const char *target);
/* "/dev/fdset/N" -> N; -EINVAL when path is not of that form. */
int fdset_parse_path(const char *path, uint32_t *ret);

/* Gives the fd of set id that a disk is set up from (see fdset_use()). */
typedef int (*fdset_open_fn)(uint32_t id, void *data, struct backing *ret, char *err, size_t errlen);

/* Opens a disk's target: "/dev/fdset/N" through open_set(N), anything else
 * as a path with backing_open_bounded().  0 or -errno, with err saying why
 * (-EINVAL for a malformed fd set name). */
int fdset_open_target(const char *target, bool writable, bool direct_io, uint64_t timeout_usec,
                      fdset_open_fn open_set, void *data, struct backing *ret, char *err, size_t errlen);
