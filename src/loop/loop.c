/* loop.c — the loop device engine. */

/* <linux/loop.h> has a struct loop_config of its own; ours (loop.h) is the
 * engine's request, the kernel's is renamed here. */
#define loop_config linux_loop_config
#include <linux/loop.h>
#undef loop_config

#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#ifndef LOOP_SET_DIRECT_IO
#define LOOP_SET_DIRECT_IO 0x4C08
#endif
#ifndef LOOP_SET_BLOCK_SIZE
#define LOOP_SET_BLOCK_SIZE 0x4C09
#endif
#ifndef LOOP_CONFIGURE
#define LOOP_CONFIGURE 0x4C0A
#endif
#ifndef BLKGETDISKSEQ
#define BLKGETDISKSEQ _IOR(0x12, 128, __u64)
#endif

/* How many devices one attach may lose to other processes before giving up. */
#define ATTACH_ATTEMPTS 64
/* Hinted devices one attach tries before asking the kernel for a free one:
 * hints of devices still bound (released, autoclear pending) cost one
 * failed open each, so a burst of them is spread over several attaches. */
#define HINT_ATTEMPTS 8
/* Attempts that may find no node before concluding nodes never come. */
#define MISSING_NODES_MAX 3
/* How long to wait for a node that udev (not devtmpfs) has still to create. */
#define NODE_WAIT_NS (100 * 1000 * 1000LL)
#define NODE_WAIT_STEP_NS (5 * 1000 * 1000LL)

static enum {
        CONFIGURE_UNKNOWN,
        CONFIGURE_SUPPORTED,
        CONFIGURE_MISSING,       /* kernel older than 5.8: LOOP_SET_FD path */
} configure_support = CONFIGURE_UNKNOWN;

static bool force_legacy;

void loop_force_legacy(bool on)
{
        force_legacy = on;
}

static void sleep_ns(long long ns)
{
        struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- diskseq ---------------------------------------------------------- */

static int read_u64_file(const char *path, uint64_t *ret)
{
        char buf[32], *end;
        ssize_t n;
        unsigned long long v;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        errno = 0;
        v = strtoull(buf, &end, 10);
        if (errno || end == buf || (*end && *end != '\n'))
                return -EINVAL;
        *ret = v;
        return 0;
}

int disk_get_diskseq_by_devnum(dev_t devnum, uint64_t *ret)
{
        char path[96];
        int r;

        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/diskseq", major(devnum), minor(devnum));
        r = read_u64_file(path, ret);
        if (r != -ENOENT)
                return r;

        /* A partition has the sequence number of its disk. */
        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", major(devnum), minor(devnum));
        if (access(path, F_OK) == 0) {
                snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../diskseq", major(devnum), minor(devnum));
                r = read_u64_file(path, ret);
                if (r != -ENOENT)
                        return r;
        }

        /* The device is there but the kernel predates diskseq (5.15). */
        snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(devnum), minor(devnum));
        return access(path, F_OK) == 0 ? -EOPNOTSUPP : -ENOENT;
}

int disk_get_diskseq(int fd, uint64_t *ret)
{
        uint64_t seq = 0;
        struct stat st;

        if (ioctl(fd, BLKGETDISKSEQ, &seq) == 0) {
                *ret = seq;
                return 0;
        }
        if (errno != ENOTTY && errno != EINVAL)
                return negative_errno();

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        return disk_get_diskseq_by_devnum(st.st_rdev, ret);
}

/* 0 where the kernel has no diskseq; other errors are real. */
static int diskseq_or_zero(int fd, uint64_t *ret)
{
        int r = disk_get_diskseq(fd, ret);

        if (r == -EOPNOTSUPP) {
                *ret = 0;
                return 0;
        }
        return r;
}

/* ---- inspection ------------------------------------------------------- */

static int get_status(int fd, struct loop_info64 *info)
{
        memset(info, 0, sizeof(*info));
        if (ioctl(fd, LOOP_GET_STATUS64, info) == 0)
                return 0;
        if (errno == ENXIO)
                return -ESTALE;  /* unbound: cleared, or never configured */
        if (errno == EINVAL)
                return -ENOTTY;  /* not a loop device */
        return negative_errno();
}

int loop_inspect(int fd, struct loop_device *ret)
{
        struct loop_info64 info;
        struct loop_device d = { .fd = fd, .nr = -1 };
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        r = get_status(fd, &info);
        if (r < 0)
                return r;
        r = diskseq_or_zero(fd, &d.diskseq);
        if (r < 0)
                return r;

        d.nr = (int)info.lo_number;
        d.devnum = st.st_rdev;
        d.backing_dev = (dev_t)info.lo_device;
        d.backing_ino = (ino_t)info.lo_inode;
        snprintf(d.node, sizeof(d.node), "/dev/loop%d", d.nr);
        *ret = d;
        return 0;
}

int loop_get_config(int fd, struct loop_config *ret)
{
        struct loop_info64 info;
        int bs, r;

        r = get_status(fd, &info);
        if (r < 0)
                return r;
        if (ioctl(fd, BLKSSZGET, &bs) < 0)
                return negative_errno();
        *ret = (struct loop_config){
                .read_only = !!(info.lo_flags & LO_FLAGS_READ_ONLY),
                .direct_io = !!(info.lo_flags & LO_FLAGS_DIRECT_IO),
                .block_size = (uint32_t)bs,
                .offset = info.lo_offset,
                .size_limit = info.lo_sizelimit,
        };
        return 0;
}

int loop_set_direct_io(int fd, bool on)
{
        return ioctl(fd, LOOP_SET_DIRECT_IO, (unsigned long)on) < 0 ? negative_errno() : 0;
}

int loop_change_fd(int fd, int backing_fd)
{
        return ioctl(fd, LOOP_CHANGE_FD, (unsigned long)backing_fd) < 0 ? negative_errno() : 0;
}

int blockdev_inspect(int fd, struct loop_device *ret)
{
        struct loop_device d = { .fd = fd, .nr = -1 };
        char link[64];
        struct stat st;
        ssize_t n;
        int r;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        r = diskseq_or_zero(fd, &d.diskseq);
        if (r < 0)
                return r;

        d.devnum = st.st_rdev;
        d.backing_dev = st.st_rdev;
        d.backing_ino = 0;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, d.node, sizeof(d.node) - 1);
        if (n < 0 || (size_t)n >= sizeof(d.node) - 1)
                snprintf(d.node, sizeof(d.node), "/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev));
        else
                d.node[n] = 0;
        *ret = d;
        return 0;
}

int loop_reopen(const struct loop_device *want, bool writable, int *ret_fd)
{
        _cleanup_close_ int fd = -1;
        struct loop_device now;
        char node[sizeof(want->node)];
        struct stat st;
        int r;

        if (want->node[0])
                memcpy(node, want->node, sizeof(node));
        else if (want->nr >= 0)
                snprintf(node, sizeof(node), "/dev/loop%d", want->nr);
        else
                return -EINVAL;

        fd = open(node, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT || errno == ENXIO ? -ESTALE : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode) || st.st_rdev != want->devnum)
                return -ESTALE;  /* the node now names another device */

        if (want->nr >= 0) {
                r = loop_inspect(fd, &now);
                if (r < 0)
                        return r;
                if (now.backing_dev != want->backing_dev || now.backing_ino != want->backing_ino)
                        return -ESTALE;
        } else {
                r = blockdev_inspect(fd, &now);
                if (r < 0)
                        return r;
        }
        /* Any reconfiguration or clear bumps the sequence number. */
        if (want->diskseq != 0 && now.diskseq != want->diskseq)
                return -ESTALE;

        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- configuration ---------------------------------------------------- */

static bool block_size_valid(uint32_t bs)
{
        return bs >= 512 && bs <= 65536 && (bs & (bs - 1)) == 0;
}

/* Whether the kernel knows LOOP_CONFIGURE, asked after it failed with
 * EINVAL/ENOTTY: the ioctl looks at the backing fd first, so a known ioctl
 * answers an invalid fd with EBADF and changes nothing. */
static bool probe_configure(int fd)
{
        struct linux_loop_config probe = { .fd = (uint32_t)-1 };

        return ioctl(fd, LOOP_CONFIGURE, &probe) < 0 && errno == EBADF;
}

static int configure_modern(int fd, int backing_fd, const struct loop_config *cfg, uint32_t bs)
{
        struct linux_loop_config lc = {
                .fd = (uint32_t)backing_fd,
                .block_size = bs,
                .info = {
                        .lo_offset = cfg->offset,
                        .lo_sizelimit = cfg->size_limit,
                        .lo_flags = LO_FLAGS_AUTOCLEAR |
                                    (cfg->read_only ? LO_FLAGS_READ_ONLY : 0) |
                                    (cfg->direct_io ? LO_FLAGS_DIRECT_IO : 0),
                },
        };

        if (ioctl(fd, LOOP_CONFIGURE, &lc) == 0) {
                configure_support = CONFIGURE_SUPPORTED;
                return 0;
        }
        if ((errno != EINVAL && errno != ENOTTY) || configure_support == CONFIGURE_SUPPORTED)
                return negative_errno();
        if (probe_configure(fd)) {
                configure_support = CONFIGURE_SUPPORTED;
                return -EINVAL;  /* a real complaint about the parameters */
        }
        log_debug("LOOP_CONFIGURE unknown to this kernel; using LOOP_SET_FD.");
        configure_support = CONFIGURE_MISSING;
        return -EOPNOTSUPP;
}

/* LOOP_SET_FD cannot set LO_FLAGS_READ_ONLY: the kernel derives it from the
 * backing file's mode, so a read-only device needs a read-only open of the
 * same file (through its fd link, not its path). */
static int legacy_backing_fd(int backing_fd, bool read_only, int *ret_fd)
{
        char link[64];
        int flags = fcntl(backing_fd, F_GETFL), fd;

        if (flags < 0)
                return negative_errno();
        *ret_fd = -1;
        if (!read_only || (flags & O_ACCMODE) == O_RDONLY)
                return 0;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", backing_fd);
        fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY | (flags & O_DIRECT));
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

static int configure_legacy(int fd, int backing_fd, const struct loop_config *cfg, uint32_t bs)
{
        _cleanup_close_ int ro_fd = -1;
        struct loop_info64 info = {
                .lo_offset = cfg->offset,
                .lo_sizelimit = cfg->size_limit,
                .lo_flags = LO_FLAGS_AUTOCLEAR,
        };
        int r;

        r = legacy_backing_fd(backing_fd, cfg->read_only, &ro_fd);
        if (r < 0)
                return r;
        if (ioctl(fd, LOOP_SET_FD, ro_fd >= 0 ? ro_fd : backing_fd) < 0)
                return negative_errno();

        /* Until LOOP_SET_STATUS64 succeeds the device has no autoclear: any
         * failure from here on clears it explicitly. */
        if (ioctl(fd, LOOP_SET_STATUS64, &info) < 0)
                goto fail;
        if (ioctl(fd, LOOP_SET_BLOCK_SIZE, (unsigned long)bs) < 0 &&
            !(bs == 512 && (errno == ENOTTY || errno == EINVAL)))  /* pre-4.14: always 512 */
                goto fail;
        if (cfg->direct_io && ioctl(fd, LOOP_SET_DIRECT_IO, 1UL) < 0)
                log_warning("Direct I/O refused for loop device (%m); using buffered I/O.");
        return 0;

fail:
        r = negative_errno();
        (void)ioctl(fd, LOOP_CLR_FD);
        return r;
}

/* Checks that the kernel applied what was asked, on the device just set up. */
static int verify_configured(int fd, const struct stat *backing, const struct loop_config *cfg, uint32_t bs)
{
        struct loop_info64 info;
        int ssz = 0, r;

        r = get_status(fd, &info);
        if (r < 0)
                return r;
        if (info.lo_device != (uint64_t)backing->st_dev || info.lo_inode != (uint64_t)backing->st_ino)
                return -EIO;
        if (!(info.lo_flags & LO_FLAGS_AUTOCLEAR))
                return log_error_errno(-EIO, "Kernel did not set autoclear on loop%u.", info.lo_number);
        if (!!(info.lo_flags & LO_FLAGS_READ_ONLY) != cfg->read_only)
                return log_error_errno(-EROFS, "Kernel set loop%u %s.", info.lo_number,
                                       cfg->read_only ? "read-write" : "read-only");
        if (info.lo_offset != cfg->offset || info.lo_sizelimit != cfg->size_limit)
                return log_error_errno(-EIO, "Kernel changed offset or size limit of loop%u.", info.lo_number);
        if (ioctl(fd, BLKSSZGET, &ssz) < 0)
                return negative_errno();
        if ((uint32_t)ssz != bs)
                return log_error_errno(-EIO, "Kernel set block size %d instead of %u on loop%u.",
                                       ssz, bs, info.lo_number);
        if (cfg->direct_io && !(info.lo_flags & LO_FLAGS_DIRECT_IO))
                log_warning("Direct I/O not available for loop%u; using buffered I/O.", info.lo_number);
        return 0;
}

static int configure(int fd, int backing_fd, const struct loop_config *cfg, uint32_t bs)
{
        int r;

        if (!force_legacy && configure_support != CONFIGURE_MISSING) {
                r = configure_modern(fd, backing_fd, cfg, bs);
                if (r != -EOPNOTSUPP)
                        return r;
        }
        return configure_legacy(fd, backing_fd, cfg, bs);
}

/* Another process got the device first (or removed it): try another. */
static bool lost_race(int r)
{
        return r == -EBUSY || r == -ENXIO || r == -ENOENT;
}

static int open_node_excl(const char *node, bool read_only, bool wait_node)
{
        int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_EXCL;
        long long waited = 0;

        for (;;) {
                int fd = open(node, flags);
                if (fd >= 0)
                        return fd;
                /* devtmpfs creates the node with the device; a udev-managed
                 * static /dev may lag a little behind. */
                if (errno != ENOENT || !wait_node || waited >= NODE_WAIT_NS)
                        return negative_errno();
                sleep_ns(NODE_WAIT_STEP_NS);
                waited += NODE_WAIT_STEP_NS;
        }
}

/* One attempt on /dev/loop<nr>.  On success the device is ours, configured
 * and verified; on failure nothing of ours is left on it.  cfg->block_size
 * is resolved (not 0). */
static int try_device(int nr, bool wait_node, int backing_fd, const struct stat *backing,
                      const struct loop_config *cfg, struct loop_device *ret)
{
        _cleanup_close_ int fd = -1;
        struct loop_device d = { .fd = -1, .nr = nr };
        uint32_t bs = cfg->block_size;
        struct stat st;
        int r;

        snprintf(d.node, sizeof(d.node), "/dev/loop%d", nr);
        /* O_EXCL: a device another process is still configuring (it holds it
         * the same way) answers EBUSY instead of being shared. */
        fd = open_node_excl(d.node, cfg->read_only, wait_node);
        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;

        r = configure(fd, backing_fd, cfg, bs);
        if (r < 0)
                return r;

        /* From here on the device is configured with autoclear; closing fd on
         * failure lets the kernel remove it.  LOOP_CLR_FD as well, in case a
         * kernel did not apply autoclear. */
        r = verify_configured(fd, backing, cfg, bs);
        if (r >= 0)
                r = diskseq_or_zero(fd, &d.diskseq);
        if (r < 0) {
                (void)ioctl(fd, LOOP_CLR_FD);
                return r == -ESTALE ? -EIO : r;
        }

        d.devnum = st.st_rdev;
        d.backing_dev = backing->st_dev;
        d.backing_ino = backing->st_ino;
        d.fd = TAKE_FD(fd);
        *ret = d;
        return 0;
}

/* A small per-process generator for retry jitter; no need for quality. */
static unsigned jitter(unsigned range)
{
        static uint64_t s;

        if (!s)
                s = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ull;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return range ? (unsigned)(s % range) : 0;
}

/* ---- the kernel calls of allocation (replaceable by tests) ------------- */

static int real_open_control(void)
{
        int fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC | O_NOCTTY);

        return fd < 0 ? negative_errno() : fd;
}

static int real_get_free(int ctl)
{
        int nr = ioctl(ctl, LOOP_CTL_GET_FREE);

        return nr < 0 ? negative_errno() : nr;
}

static int real_add(int ctl)
{
        int nr = ioctl(ctl, LOOP_CTL_ADD, -1);

        return nr < 0 ? negative_errno() : nr;
}

static const struct loop_bind_ops real_attach_ops = {
        .open_control = real_open_control,
        .get_free = real_get_free,
        .add = real_add,
        .take = try_device,
};

static const struct loop_bind_ops *attach_ops = &real_attach_ops;

void loop_set_bind_ops(const struct loop_bind_ops *ops)
{
        attach_ops = ops ? ops : &real_attach_ops;
}

/* ---- free-device hints ----------------------------------------------------- */

/* Oldest first.  A handful of numbers: linear scans are the cheapest. */
static int hints[LOOP_HINTS_MAX];
/* Set by an attach, cleared once a spare was prepared (or could not be):
 * only a process that sets devices up keeps a spare, and a failing
 * preparation is not retried before the next attach. */
static bool spare_due;
static size_t n_hints;

static void hint_remove_at(size_t i)
{
        memmove(&hints[i], &hints[i + 1], (n_hints - i - 1) * sizeof(hints[0]));
        n_hints--;
}

/* The engine took nr, or saw it taken: it is no longer a hint. */
static void hint_forget(int nr)
{
        for (size_t i = 0; i < n_hints; i++)
                if (hints[i] == nr) {
                        hint_remove_at(i);
                        return;
                }
}

int loop_hint_free(int nr)
{
        if (nr < 0)
                return -EINVAL;
        hint_forget(nr);
        if (n_hints == LOOP_HINTS_MAX)
                hint_remove_at(0);
        hints[n_hints++] = nr;
        return 0;
}

/* The oldest hint, taken out of the set: whatever its attempt shows, it
 * is not a hint any more (ours on success, not free otherwise). */
static int hint_take(void)
{
        int nr;

        if (n_hints == 0)
                return -1;
        nr = hints[0];
        hint_remove_at(0);
        return nr;
}

size_t loop_hints_get(int *ret, size_t n)
{
        for (size_t i = 0; i < n && i < n_hints; i++)
                ret[i] = hints[i];
        return n_hints;
}

void loop_hints_clear(void)
{
        n_hints = 0;
        spare_due = false;
}

/* ---- allocation ------------------------------------------------------------ */

/* A free device number.  LOOP_CTL_GET_FREE names the lowest unbound device,
 * so processes racing for one all get the same number until the winner has
 * configured it.  If it still names the device just lost after a short
 * pause, a brand new one is added (LOOP_CTL_ADD, kernel-chosen number) that
 * nobody else has been told about.  Adding only then keeps lost races from
 * piling up unbound devices while free ones exist. */
static int next_free(int ctl, int lost)
{
        int nr = attach_ops->get_free(ctl), added;

        if (nr < 0 || lost < 0 || nr != lost)
                return nr;
        sleep_ns((long long)(200 + jitter(800)) * 1000);
        nr = attach_ops->get_free(ctl);
        if (nr < 0 || nr != lost)
                return nr;
        added = attach_ops->add(ctl);
        /* Old kernels look up a free device for -1 (EEXIST); at the device
         * limit ENOSPC: both leave the number GET_FREE gave. */
        return added >= 0 ? added : nr;
}

static int check_backing(int backing_fd, const struct loop_config *cfg, struct stat *st)
{
        int flags = fcntl(backing_fd, F_GETFL);

        if (flags < 0)
                return negative_errno();
        if ((flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH))
                return -EBADF;
        /* The kernel would silently make the device read-only. */
        if (!cfg->read_only && (flags & O_ACCMODE) != O_RDWR)
                return -EACCES;
        if (fstat(backing_fd, st) < 0)
                return negative_errno();
        if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
                return -ENOTBLK;
        return 0;
}

/* The hinted devices, oldest first, at most HINT_ATTEMPTS of them.  1 when
 * one was taken; 0 when none was left, or an attempt failed for another
 * reason than the device not being free (GET_FREE's device answers that
 * one, if it is about the request). */
static int attach_hinted(int backing_fd, const struct stat *st, const struct loop_config *cfg,
                         struct loop_device *ret)
{
        for (unsigned attempt = 0; attempt < HINT_ATTEMPTS; attempt++) {
                int nr = hint_take(), r;

                if (nr < 0)
                        return 0;
                /* A hinted device existed: no node to wait for. */
                r = attach_ops->take(nr, false, backing_fd, st, cfg, ret);
                if (r >= 0)
                        return 1;
                log_debug_errno(r, "Hinted loop%d is not free (%m); dropped.", nr);
                if (!lost_race(r))
                        return 0;
        }
        return 0;
}

int loop_bind(int backing_fd, const struct loop_config *cfg, struct loop_device *ret)
{
        _cleanup_close_ int ctl = -1;
        struct loop_config want = { 0 };
        struct stat st;
        int r, lost = -1;
        unsigned missing_nodes = 0;

        if (backing_fd < 0 || !ret)
                return -EINVAL;
        if (cfg)
                want = *cfg;
        if (!want.block_size)
                want.block_size = LOOP_DEFAULT_BLOCK_SIZE;
        if (!block_size_valid(want.block_size))
                return -EINVAL;
        r = check_backing(backing_fd, &want, &st);
        if (r < 0)
                return r;

        if (attach_hinted(backing_fd, &st, &want, ret) > 0) {
                spare_due = true;
                return 0;
        }

        ctl = attach_ops->open_control();
        if (ctl < 0)
                return ctl;

        for (unsigned attempt = 0; attempt < ATTACH_ATTEMPTS; attempt++) {
                int nr = next_free(ctl, lost);
                if (nr < 0)
                        return nr;
                /* Taken by us now, or by somebody else: no hint any more. */
                hint_forget(nr);
                r = attach_ops->take(nr, true, backing_fd, &st, &want, ret);
                if (r >= 0) {
                        spare_due = true;
                        return 0;
                }
                if (!lost_race(r))
                        return r;
                /* A node removed under us is a race; nodes that never
                 * appear are a system without devtmpfs or udev. */
                if (r == -ENOENT && ++missing_nodes >= MISSING_NODES_MAX)
                        return log_error_errno(-ENOENT, "No /dev/loop%d node appears for new loop devices "
                                               "(is /dev a devtmpfs, or udev running?).", nr);
                lost = nr;
                log_debug_errno(r, "loop%d taken by another process, trying another.", nr);
                /* Spread competing processes apart once they keep colliding. */
                if (attempt >= 2)
                        sleep_ns((long long)jitter(1000 * (attempt < 20 ? attempt : 20)) * 1000);
        }
        return log_error_errno(-EAGAIN, "No free loop device after %d attempts.", ATTACH_ATTEMPTS);
}

bool loop_spare_wanted(void)
{
        return spare_due && n_hints == 0;
}

int loop_prepare_spare(void)
{
        _cleanup_close_ int ctl = -1;
        int nr;

        if (!loop_spare_wanted())
                return 0;
        spare_due = false;
        ctl = attach_ops->open_control();
        if (ctl < 0)
                return ctl;
        /* The lowest free device, or a new one when there is none. */
        nr = attach_ops->get_free(ctl);
        if (nr < 0)
                return nr;
        loop_hint_free(nr);
        return 1;
}

char *loop_backing_path(dev_t devnum)
{
        char sys[96], *path = NULL;
        size_t len = 0;
        FILE *f;

        snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/loop/backing_file", major(devnum), minor(devnum));
        f = fopen(sys, "re");
        if (!f)
                return NULL;
        if (getline(&path, &len, f) > 0)
                path[strcspn(path, "\n")] = '\0';
        else
                path = mfree(path);
        fclose(f);
        return path;
}
