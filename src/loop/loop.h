/* loop.h — the loop device engine: allocate a free loop device without races,
 * configure it on a backing fd (LOOP_CONFIGURE, or LOOP_SET_FD +
 * LOOP_SET_STATUS64 on kernels without it), and inspect or re-verify a
 * device.  Owns two pieces of process-wide state: the run-time choice of
 * ioctl, and the free-device hints (device numbers the caller saw become
 * free, or a spare prepared in idle time, tried before asking the kernel for
 * one; see loop_hint_free() and loop_prepare_spare()).
 * Every fd it hands out belongs to the caller.  Not thread-safe: one thread
 * allocates (the daemon's event loop). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOOP_DEFAULT_BLOCK_SIZE 512u

struct loop_config {
        bool read_only;
        bool direct_io;          /* LO_FLAGS_DIRECT_IO; off by default */
        uint32_t block_size;     /* 0 means LOOP_DEFAULT_BLOCK_SIZE */
        uint64_t offset;
        uint64_t size_limit;     /* 0: up to the end of the file */
};

/* A configured (or inspected) block device. */
struct loop_device {
        int fd;                  /* open on the device node, or -1 */
        int nr;                  /* N of /dev/loopN; -1 for a non-loop device */
        dev_t devnum;            /* major:minor */
        uint64_t diskseq;        /* 0 when the kernel has none */
        dev_t backing_dev;       /* st_dev/st_ino of the backing file */
        ino_t backing_ino;
        char node[32];           /* /dev/loopN, or the block device's path */
};

/* Attaches backing_fd to a fresh loop device with LO_FLAGS_AUTOCLEAR (and
 * LO_FLAGS_READ_ONLY when asked).  Allocation: first the free-device hints,
 * oldest first, a few at most (see loop_hint_free()); then
 * LOOP_CTL_GET_FREE, which walks every loop device in the kernel.  Either
 * way: open the node O_EXCL, configure.  EBUSY/ENXIO/ENOENT from the open or
 * the ioctl mean another process got there first (or the device is gone): a
 * hint is dropped and the next one tried; a GET_FREE number is retried, with
 * LOOP_CTL_ADD after a miss (once GET_FREE, after a short pause, still names
 * the device just lost), a bounded number of times.  A hint is only ever a
 * number to try: the kernel's refusal to configure a bound device (EBUSY)
 * is what keeps a device another process bound from being taken.  On
 * success ret->fd holds the device (closing it lets autoclear remove it);
 * the kernel's settings were verified (backing file, read-only, offset,
 * size limit, block size).  cfg NULL: defaults.
 * -EAGAIN when every attempt lost; -EINVAL (bad block size), -EACCES (rw
 * asked of a read-only fd), -ENOTBLK (not a file or block device), -EBADF
 * (O_PATH or write-only fd): nothing was touched.  Without LOOP_CONFIGURE a
 * crash between LOOP_SET_FD and LOOP_SET_STATUS64 can leave a device without
 * autoclear; there is no way around that on such kernels. */
int loop_bind(int backing_fd, const struct loop_config *cfg, struct loop_device *ret);

/* Opens the device in want->devnum again and checks that it is still bound to
 * want's backing file (LOOP_GET_STATUS64 device/inode) with want->diskseq.
 * On success *ret_fd holds it.  -ESTALE when it now serves something else or
 * has been cleared.  The node opened is want->node, or /dev/loop<nr> when it
 * is empty; it is opened without O_EXCL (blkback may hold it).  With
 * want->nr < 0 (a block device from blockdev_inspect()) only devnum and
 * diskseq are checked. */
int loop_reopen(const struct loop_device *want, bool writable, int *ret_fd);

/* Checks an open loop fd as loop_reopen() does; fills devnum, nr, node,
 * diskseq and backing identity of ret (ret->fd is set to fd). */
int loop_inspect(int fd, struct loop_device *ret);
/* The path the kernel recorded for the file loop device devnum serves
 * (sysfs backing_file), malloc'ed; NULL when unknown. */
char *loop_backing_path(dev_t devnum);

/* How the bound device fd is open on is configured: read-only, direct I/O,
 * offset, size limit (LOOP_GET_STATUS64) and logical block size. */
int loop_get_config(int fd, struct loop_config *ret);

/* LOOP_SET_DIRECT_IO on a bound device; the kernel refuses (and changes
 * nothing) when the backing file cannot do direct I/O. */
int loop_set_direct_io(int fd, bool on);
/* LOOP_CHANGE_FD: a read-only device serves backing_fd instead, atomically;
 * refused (nothing changed) unless the new file has the same size. */
int loop_change_fd(int fd, int backing_fd);

/* For a block device given directly (phy): devnum, diskseq and node from the
 * open fd.  ret->fd is set to fd, ret->nr to -1.  Its "backing identity" is
 * the device itself: backing_dev = devnum, backing_ino = 0 (as the registry key
 * has it). */
int blockdev_inspect(int fd, struct loop_device *ret);

/* BLKGETDISKSEQ, falling back to /sys/dev/block/M:m/diskseq.
 * -EOPNOTSUPP on kernels without diskseq (before 5.15); the functions above
 * then report diskseq 0. */
int disk_get_diskseq(int fd, uint64_t *ret);

/* The diskseq of a device by number, from sysfs (a partition reports its
 * disk's).  -ENOENT when no such device exists, -EOPNOTSUPP as above. */
int disk_get_diskseq_by_devnum(dev_t devnum, uint64_t *ret);

/* ---- free-device hints ---------------------------------------------------- */

/* How many hints are kept; past that the oldest is forgotten. */
#define LOOP_HINTS_MAX 64

/* Tells the engine that /dev/loop<nr>, a device of the caller's, is free now
 * or about to be (its last user let go; autoclear clears it with the last
 * close): the next loop_bind() tries it before LOOP_CTL_GET_FREE.  The
 * caller may be wrong (a device still bound, or already bound again by
 * another process, or removed): such a hint fails its attempt and is
 * dropped.  A number hinted again moves to the newest place.  The engine
 * also drops a number once it takes the device or sees it taken.  0, or
 * -EINVAL for nr < 0. */
int loop_hint_free(int nr);

/* A spare: when devices are set up (loop_bind() succeeded once) and no
 * hint is left, the next bind would have the kernel create a device on
 * the critical path (about a quarter of a millisecond, and the walk of every
 * device).  loop_prepare_spare() has LOOP_CTL_GET_FREE name (or create) a
 * free device now and hints it; meant for idle time.  1 when a spare was
 * hinted, 0 when none is wanted, or -errno.  The spare is a number like any
 * hint: another process may take it first.  Whatever the outcome, no spare
 * is wanted again before the next loop_bind(). */
bool loop_spare_wanted(void);
int loop_prepare_spare(void);

/* The hinted numbers, oldest first, up to n of them into ret; returns how
 * many there are (which may exceed n). */
size_t loop_hints_get(int *ret, size_t n);

/* Forgets every hint, and that a spare is wanted. */
void loop_hints_clear(void);

/* ---- test hooks ------------------------------------------------------------ */

/* Behave as on a kernel without LOOP_CONFIGURE. */
void loop_force_legacy(bool on);

struct stat;

/* The kernel calls loop_bind() makes to find and take a device, so that a
 * unit test can play the kernel.  All four are required. */
struct loop_bind_ops {
        int (*open_control)(void);               /* fd on /dev/loop-control, or -errno */
        int (*get_free)(int ctl);                /* LOOP_CTL_GET_FREE: a number, or -errno */
        int (*add)(int ctl);                     /* LOOP_CTL_ADD (-1): a number, or -errno */
        /* Takes /dev/loop<nr> for backing_fd: open O_EXCL, configure (cfg's
         * block_size is never 0 here), verify; on success ret is filled and
         * ret->fd holds the device.  -EBUSY/-ENXIO/-ENOENT: not free (or
         * gone).  wait_node: the kernel just named nr, so a node udev has
         * still to create is worth a short wait. */
        int (*take)(int nr, bool wait_node, int backing_fd, const struct stat *backing,
                    const struct loop_config *cfg, struct loop_device *ret);
};
/* NULL restores the real kernel calls. */
void loop_set_bind_ops(const struct loop_bind_ops *ops);
