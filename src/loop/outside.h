/* outside.h — users of a disk's backing that xen-loopd did not make.
 *
 * The sharing rule (registry.h) sees the disks xen-loopd serves.  Others use
 * files and block devices too: a loop device set up by the stock block
 * script or by losetup, a file system dom0 has mounted, device-mapper or md
 * holding a disk.  This module finds them, from what the kernel shows:
 * every bound loop device's backing file (/sys/block/loopN/loop), the mount
 * table (/proc/self/mountinfo) and an O_EXCL probe.  It owns the registry
 * of bound loop devices (struct outside_loops) its users keep. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The file a loop device (open as fd) serves, as the kernel recorded it
 * (LOOP_GET_STATUS64).  -ENOTTY: not a loop device; -ENXIO: unbound. */
int outside_loop_backing(int fd, dev_t *ret_dev, ino_t *ret_ino);

/* A bound loop device serving the file (dev, ino), other than skip and
 * those ours() claims; with rw_only, only one bound read-write counts.
 * 1 with its node ("/dev/loop5") in node, 0 when there is none, -errno. */
int outside_loop_users(dev_t dev, ino_t ino, dev_t skip, bool rw_only, bool (*ours)(dev_t devnum, void *userdata),
                       void *userdata, char *node, size_t len);

/* Whether dom0 itself uses the block device open as fd: mounted (with
 * rw_only, mounted read-write), or, with exclusive, held exclusively by a
 * file system, device-mapper or md (an O_EXCL open fails with EBUSY).
 * 1 with what in what ("mounted read-write in dom0": not where, as guests
 * read it), 0 when not, -errno. */
int outside_blockdev_users(int fd, bool rw_only, bool exclusive, char *what, size_t len);

/* ---- bound loop devices, kept current ------------------------------------ */

/* Every bound loop device the registry was told about, with the file it
 * serves, so that "another loop device on this file?" is a lookup, not a
 * walk over /sys/block (one sysfs read per loop device on the host, on
 * every attach).  Filled by one scan, then kept current device by device:
 * the kernel sends a `change` uevent whenever a loop device is bound or
 * cleared. */
struct outside_loops;

int outside_loops_new(struct outside_loops **ret);
void outside_loops_free(struct outside_loops *o);
/* Looks at every loop device on the host once. */
int outside_loops_scan(struct outside_loops *o);
/* Looks at the loop device sysname ("loop5", number devnum) again: bound,
 * it is recorded with its file; unbound or gone, it is forgotten.  Names
 * that are not loop devices are ignored. */
void outside_loops_update(struct outside_loops *o, const char *sysname, dev_t devnum);
/* outside_loop_users(), from what the registry holds. */
int outside_loops_find(const struct outside_loops *o, dev_t dev, ino_t ino, dev_t skip, bool rw_only,
                       bool (*ours)(dev_t devnum, void *userdata), void *userdata, char *node, size_t len);
size_t outside_loops_size(const struct outside_loops *o);
