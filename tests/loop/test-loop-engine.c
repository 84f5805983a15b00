/* Integration tests of the loop engine and backing_open() on real loop
 * devices (root).  Every test checks that it leaves no loop device bound to
 * its files; the teardown clears whatever a failed test left. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#define loop_config linux_loop_config
#include <linux/loop.h>
#undef loop_config

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backing.h"
#include "loop-test.h"
#include "loop.h"

#define MiB (1024ull * 1024ull)
#define LOOP_MAJOR 7

static struct lt_images T;

static int group_setup(void **state)
{
        return lt_images_make(&T, 8 * MiB, 1 * MiB);
}

static int group_teardown(void **state)
{
        return lt_images_remove(&T);
}

static int setup(void **state)
{
        loop_force_legacy(false);
        loop_hints_clear();
        if (lt_count_bound(T.prefix) != 0) {
                fprintf(stderr, "a loop device is already bound to a test file\n");
                return -1;
        }
        return 0;
}

/* The test must have closed everything: autoclear then leaves no device
 * bound to our files.  Anything left is cleared, and fails the test. */
static int teardown(void **state)
{
        int fds = lt_count_loop_fds(), left;

        loop_force_legacy(false);
        loop_hints_clear();
        left = lt_cleanup(T.prefix);
        if (fds || left) {
                fprintf(stderr, "test left %d loop fd(s) open and %d device(s) bound\n", fds, left);
                return -1;
        }
        return 0;
}

static uint64_t sysfs_u64(int nr, bool disk, const char *attr)
{
        char buf[64];

        assert_true(lt_sysfs_read(nr, disk, attr, buf, sizeof(buf)) >= 0);
        return strtoull(buf, NULL, 10);
}

static uint64_t dev_size(int fd)
{
        uint64_t size = 0;

        assert_int_equal(ioctl(fd, BLKGETSIZE64, &size), 0);
        return size;
}

static int dev_ro(int fd)
{
        int ro = -1;

        assert_int_equal(ioctl(fd, BLKROGET, &ro), 0);
        return ro;
}

static int dev_ssz(int fd)
{
        int ssz = 0;

        assert_int_equal(ioctl(fd, BLKSSZGET, &ssz), 0);
        return ssz;
}

static void read_sector(int fd, uint64_t off, char *buf)
{
        assert_int_equal(pread(fd, buf, 512, (off_t)off), 512);
}

static struct backing open_backing(const char *path, bool writable)
{
        struct backing b;
        int r = backing_open(path, writable, false, &b);

        if (r < 0)
                fail_msg("backing_open(%s): %s", path, strerror(-r));
        return b;
}

static struct loop_device attach(struct backing *b, const struct loop_config *cfg)
{
        struct loop_device d;
        int r = loop_bind(b->fd, cfg, &d);

        if (r < 0)
                fail_msg("loop_bind: %s", strerror(-r));
        assert_true(d.fd >= 0);
        return d;
}

/* Closes the device's fd and checks that autoclear removed it. */
static void close_and_check_cleared(struct loop_device *d)
{
        int fd;

        close(d->fd);
        d->fd = -1;
        assert_true(lt_wait_released(d->nr, d->diskseq));
        assert_int_equal(loop_reopen(d, false, &fd), -ESTALE);
}

/* ---- attaching ---------------------------------------------------------------- */

static void test_attach_rw(void **state)
{
        struct backing b = open_backing(T.img, true);
        struct loop_device d = attach(&b, NULL), ins;
        char buf[512], path[4096], node[32];
        uint64_t seq;
        struct stat st;
        int fd;

        snprintf(node, sizeof(node), "/dev/loop%d", d.nr);
        assert_string_equal(d.node, node);
        assert_int_equal(fstat(d.fd, &st), 0);
        assert_true(S_ISBLK(st.st_mode));
        assert_int_equal(st.st_rdev, d.devnum);
        assert_int_equal(major(d.devnum), LOOP_MAJOR);
        assert_int_equal(d.backing_dev, b.st.st_dev);
        assert_int_equal(d.backing_ino, b.st.st_ino);

        /* diskseq: the ioctl, sysfs and the engine agree. */
        assert_true(d.diskseq != 0);
        assert_int_equal(d.diskseq, sysfs_u64(d.nr, true, "diskseq"));
        assert_int_equal(disk_get_diskseq(d.fd, &seq), 0);
        assert_int_equal(seq, d.diskseq);
        assert_int_equal(disk_get_diskseq_by_devnum(d.devnum, &seq), 0);
        assert_int_equal(seq, d.diskseq);

        /* What the kernel was told: autoclear, rw, 512-byte blocks, no dio. */
        assert_int_equal(sysfs_u64(d.nr, false, "autoclear"), 1);
        assert_int_equal(sysfs_u64(d.nr, false, "dio"), 0);
        assert_true(lt_sysfs_read(d.nr, false, "backing_file", path, sizeof(path)) > 0);
        assert_string_equal(path, T.img);
        assert_int_equal(dev_ro(d.fd), 0);
        assert_int_equal(dev_ssz(d.fd), 512);
        assert_int_equal(dev_size(d.fd), 8 * MiB);

        /* It serves the file, both ways. */
        read_sector(d.fd, 5 * 512, buf);
        assert_string_equal(buf, "sector 5");
        memset(buf, 0, sizeof(buf));
        strcpy(buf, "written through the loop device");
        assert_int_equal(pwrite(d.fd, buf, 512, 3 * 512), 512);
        assert_int_equal(fsync(d.fd), 0);
        fd = open(T.img, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        read_sector(fd, 3 * 512, buf);
        assert_string_equal(buf, "written through the loop device");
        close(fd);

        assert_int_equal(loop_inspect(d.fd, &ins), 0);
        assert_int_equal(ins.fd, d.fd);
        assert_int_equal(ins.nr, d.nr);
        assert_int_equal(ins.devnum, d.devnum);
        assert_int_equal(ins.diskseq, d.diskseq);
        assert_int_equal(ins.backing_dev, d.backing_dev);
        assert_int_equal(ins.backing_ino, d.backing_ino);
        assert_string_equal(ins.node, d.node);

        /* The device keeps its own reference to the file. */
        backing_close(&b);
        assert_true(lt_is_bound(d.nr));
        close_and_check_cleared(&d);
}

static void test_read_only_honoured(void **state)
{
        struct loop_config cfg = { .read_only = true };
        /* A writable backing fd: the device must still be read-only. */
        struct backing b = open_backing(T.img, true);
        struct loop_device d = attach(&b, &cfg);
        char buf[512] = "must not land";
        int fd;

        assert_int_equal(dev_ro(d.fd), 1);
        assert_int_equal(sysfs_u64(d.nr, true, "ro"), 1);
        assert_true(pwrite(d.fd, buf, sizeof(buf), 0) < 0);

        /* Nor through another open of the node. */
        fd = open(d.node, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                assert_true(pwrite(fd, buf, sizeof(buf), 0) < 0);
                assert_int_equal(errno, EPERM);
                close(fd);
        } else {
                assert_true(errno == EROFS || errno == EACCES);
        }
        read_sector(d.fd, 0, buf);
        assert_string_equal(buf, "sector 0");

        backing_close(&b);
        close_and_check_cleared(&d);
}

static void test_rw_needs_writable_backing(void **state)
{
        struct backing b = open_backing(T.img, false);
        struct loop_device d;

        assert_int_equal(loop_bind(b.fd, NULL, &d), -EACCES);
        assert_int_equal(lt_count_bound(T.prefix), 0);
        backing_close(&b);
}

static void test_offset_and_size_limit(void **state)
{
        struct loop_config cfg = { .read_only = true, .offset = 1 * MiB, .size_limit = 2 * MiB };
        struct backing b = open_backing(T.img, false);
        struct loop_device d = attach(&b, &cfg), d2;
        char buf[512];

        assert_int_equal(dev_size(d.fd), 2 * MiB);
        assert_int_equal(sysfs_u64(d.nr, false, "offset"), 1 * MiB);
        assert_int_equal(sysfs_u64(d.nr, false, "sizelimit"), 2 * MiB);
        read_sector(d.fd, 0, buf);
        assert_string_equal(buf, "sector 2048");
        read_sector(d.fd, 2 * MiB - 512, buf);
        assert_string_equal(buf, "sector 6143");
        assert_true(pread(d.fd, buf, 512, (off_t)(2 * MiB)) == 0);   /* the end */

        /* An offset alone: up to the end of the file. */
        cfg.size_limit = 0;
        d2 = attach(&b, &cfg);
        assert_int_equal(dev_size(d2.fd), 7 * MiB);
        assert_int_not_equal(d2.nr, d.nr);

        backing_close(&b);
        close_and_check_cleared(&d);
        close_and_check_cleared(&d2);
}

static void test_block_size(void **state)
{
        struct loop_config cfg = { .read_only = true, .block_size = 4096 };
        struct backing b = open_backing(T.img, false);
        struct loop_device d = attach(&b, &cfg), bad;

        assert_int_equal(dev_ssz(d.fd), 4096);
        close_and_check_cleared(&d);

        cfg.block_size = 1000;
        assert_int_equal(loop_bind(b.fd, &cfg, &bad), -EINVAL);
        cfg.block_size = 256;
        assert_int_equal(loop_bind(b.fd, &cfg, &bad), -EINVAL);
        assert_int_equal(lt_count_bound(T.prefix), 0);
        backing_close(&b);
}

static void test_direct_io_opt_in(void **state)
{
        struct loop_config cfg = { .read_only = true, .direct_io = true };
        struct backing b;
        struct loop_device d;
        char buf[512];

        assert_int_equal(backing_open(T.img, false, true, &b), 0);
        assert_true(fcntl(b.fd, F_GETFL) & O_DIRECT);
        d = attach(&b, &cfg);
        assert_int_equal(sysfs_u64(d.nr, false, "dio"), 1);
        read_sector(d.fd, 512, buf);
        assert_string_equal(buf, "sector 1");
        backing_close(&b);
        close_and_check_cleared(&d);
}

/* ---- autoclear, reopen, inspect ------------------------------------------------ */

static void test_autoclear_after_last_close(void **state)
{
        struct loop_config cfg = { .read_only = true };
        struct backing b = open_backing(T.img, false);
        struct loop_device d = attach(&b, &cfg);
        uint64_t seq;
        int blkback;

        backing_close(&b);
        /* A second opener (blkback) keeps it past the engine's close... */
        blkback = open(d.node, O_RDONLY | O_CLOEXEC);
        assert_true(blkback >= 0);
        close(d.fd);
        usleep(100 * 1000);
        assert_true(lt_is_bound(d.nr));
        assert_int_equal(sysfs_u64(d.nr, true, "diskseq"), d.diskseq);

        /* ...and the device goes with the last one, bumping its diskseq. */
        close(blkback);
        assert_true(lt_wait_released(d.nr, d.diskseq));
        assert_false(lt_is_bound(d.nr));
        assert_int_equal(disk_get_diskseq_by_devnum(d.devnum, &seq), 0);
        assert_true(seq > d.diskseq);
        d.fd = -1;
        assert_int_equal(loop_reopen(&d, false, &blkback), -ESTALE);
}

static void test_reopen_verifies(void **state)
{
        struct loop_config cfg = { .read_only = true };
        struct backing b = open_backing(T.img, false);
        struct loop_device d = attach(&b, &cfg), want, ins;
        int fd;

        assert_int_equal(loop_reopen(&d, false, &fd), 0);
        assert_int_not_equal(fd, d.fd);
        assert_int_equal(loop_inspect(fd, &ins), 0);
        assert_int_equal(ins.devnum, d.devnum);
        assert_int_equal(ins.diskseq, d.diskseq);
        assert_int_equal(ins.backing_ino, b.st.st_ino);
        close(fd);

        /* Another file, another diskseq, another device: all stale. */
        want = d;
        want.backing_ino++;
        assert_int_equal(loop_reopen(&want, false, &fd), -ESTALE);
        want = d;
        want.diskseq++;
        assert_int_equal(loop_reopen(&want, false, &fd), -ESTALE);
        want = d;
        want.devnum = makedev(LOOP_MAJOR, minor(d.devnum) + 1);
        assert_int_equal(loop_reopen(&want, false, &fd), -ESTALE);
        /* No node given: /dev/loop<nr>. */
        want = d;
        want.node[0] = 0;
        assert_int_equal(loop_reopen(&want, false, &fd), 0);
        close(fd);

        backing_close(&b);
        close_and_check_cleared(&d);
}

static void test_blockdev_inspect(void **state)
{
        struct loop_config cfg = { .read_only = true };
        struct backing b = open_backing(T.img, false), phy;
        struct loop_device d = attach(&b, &cfg), ins;
        int fd;

        /* The loop device stands in for a phy target. */
        phy = open_backing(d.node, false);
        assert_true(phy.is_block);
        assert_int_equal(phy.st.st_rdev, d.devnum);
        assert_int_equal(blockdev_inspect(phy.fd, &ins), 0);
        assert_int_equal(ins.fd, phy.fd);
        assert_int_equal(ins.nr, -1);
        assert_int_equal(ins.devnum, d.devnum);
        assert_int_equal(ins.diskseq, d.diskseq);
        assert_int_equal(ins.backing_dev, d.devnum);
        assert_int_equal(ins.backing_ino, 0);
        assert_string_equal(ins.node, d.node);

        /* Reopened as a plain block device: devnum and diskseq. */
        assert_int_equal(loop_reopen(&ins, false, &fd), 0);
        close(fd);

        assert_int_equal(blockdev_inspect(b.fd, &ins), -ENOTBLK);
        assert_int_equal(loop_inspect(b.fd, &ins), -ENOTBLK);

        backing_close(&phy);
        backing_close(&b);
        close_and_check_cleared(&d);
}

/* A device another process is configuring (it holds it O_EXCL) is skipped. */
static void test_never_takes_a_busy_device(void **state)
{
        struct backing b = open_backing(T.img, false);
        struct loop_config cfg = { .read_only = true };
        struct loop_device d;
        char node[32];
        int ctl, nr, other;

        ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        assert_true(ctl >= 0);
        nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        assert_true(nr >= 0);
        close(ctl);
        snprintf(node, sizeof(node), "/dev/loop%d", nr);
        other = open(node, O_RDWR | O_EXCL | O_CLOEXEC);
        assert_true(other >= 0);

        d = attach(&b, &cfg);
        assert_int_not_equal(d.nr, nr);
        close(other);
        assert_false(lt_is_bound(nr));

        backing_close(&b);
        close_and_check_cleared(&d);
}

/* ---- free-device hints -------------------------------------------------------- */

static int get_free_now(void)
{
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC), nr;

        assert_true(ctl >= 0);
        nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        assert_true(nr >= 0);
        close(ctl);
        return nr;
}

static void backing_file_is(int nr, const char *want)
{
        char path[4096];

        assert_true(lt_sysfs_read(nr, false, "backing_file", path, sizeof(path)) > 0);
        assert_string_equal(path, want);
}

/* A hinted free device is taken before the one LOOP_CTL_GET_FREE names. */
static void hint_reused(bool legacy)
{
        struct loop_config cfg = { .read_only = true };
        struct backing b = open_backing(T.img, false);
        struct loop_device d1, d2, d3;
        int hinted, h[LOOP_HINTS_MAX];

        loop_force_legacy(legacy);
        d1 = attach(&b, &cfg);
        d2 = attach(&b, &cfg);
        assert_int_not_equal(d1.nr, d2.nr);
        close_and_check_cleared(&d1);
        close_and_check_cleared(&d2);
        /* Both free: hint the one GET_FREE would not name. */
        hinted = get_free_now() == d1.nr ? d2.nr : d1.nr;
        assert_int_not_equal(hinted, get_free_now());
        assert_int_equal(loop_hint_free(hinted), 0);

        d3 = attach(&b, &cfg);
        assert_int_equal(d3.nr, hinted);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 0);
        assert_int_equal(sysfs_u64(d3.nr, false, "autoclear"), 1);
        assert_int_equal(dev_ro(d3.fd), 1);
        backing_file_is(d3.nr, T.img);

        backing_close(&b);
        close_and_check_cleared(&d3);
        loop_force_legacy(false);
}

static void test_hint_reused(void **state)
{
        hint_reused(false);
}

static void test_hint_reused_legacy(void **state)
{
        hint_reused(true);
}

/* Between our free and the reuse another process (losetup) binds the hinted
 * device: the engine must leave it alone and get a different free device. */
static void hint_stolen(bool legacy)
{
        struct loop_config cfg = { .read_only = true };
        struct backing b = open_backing(T.img, false);
        struct loop_device d1, d2;
        int nr, rc, h[LOOP_HINTS_MAX];
        uint64_t theirs;
        char node[32];

        loop_force_legacy(legacy);
        d1 = attach(&b, &cfg);
        nr = d1.nr;
        close_and_check_cleared(&d1);
        assert_int_equal(loop_hint_free(nr), 0);

        snprintf(node, sizeof(node), "/dev/loop%d", nr);
        rc = lt_losetup(node, T.img2);
        if (rc == 127) {
                backing_close(&b);
                skip();   /* no losetup here */
        }
        assert_int_equal(rc, 0);
        assert_true(lt_is_bound(nr));
        theirs = sysfs_u64(nr, true, "diskseq");

        d2 = attach(&b, &cfg);
        assert_int_not_equal(d2.nr, nr);
        backing_file_is(d2.nr, T.img);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 0);   /* dropped */
        /* Theirs as they made it: same file, same configuration. */
        backing_file_is(nr, T.img2);
        assert_int_equal(sysfs_u64(nr, true, "diskseq"), theirs);
        assert_int_equal(sysfs_u64(nr, false, "autoclear"), 0);

        backing_close(&b);
        close_and_check_cleared(&d2);
        assert_int_equal(lt_losetup("-d", node), 0);
        assert_true(lt_wait_released(nr, theirs));
        loop_force_legacy(false);
}

static void test_hint_stolen_by_another_process(void **state)
{
        hint_stolen(false);
}

static void test_hint_stolen_by_another_process_legacy(void **state)
{
        hint_stolen(true);
}

/* ---- the fallback for kernels without LOOP_CONFIGURE ---------------------------- */

static void test_legacy_fallback(void **state)
{
        struct loop_config cfg = { .offset = 1 * MiB, .size_limit = 2 * MiB, .block_size = 4096 };
        struct backing b = open_backing(T.img, true);
        struct loop_device d, r;
        char buf[512];

        loop_force_legacy(true);
        d = attach(&b, &cfg);
        assert_int_equal(sysfs_u64(d.nr, false, "autoclear"), 1);
        assert_int_equal(dev_ro(d.fd), 0);
        assert_int_equal(dev_ssz(d.fd), 4096);
        assert_int_equal(dev_size(d.fd), 2 * MiB);
        assert_int_equal(d.diskseq, sysfs_u64(d.nr, true, "diskseq"));
        read_sector(d.fd, 0, buf);
        assert_string_equal(buf, "sector 2048");

        /* Read-only from a writable backing fd: the engine reopens it. */
        cfg = (struct loop_config){ .read_only = true };
        r = attach(&b, &cfg);
        assert_int_equal(dev_ro(r.fd), 1);
        assert_int_equal(dev_ssz(r.fd), 512);
        assert_int_equal(dev_size(r.fd), 8 * MiB);
        assert_true(pwrite(r.fd, buf, sizeof(buf), 0) < 0);

        backing_close(&b);
        close_and_check_cleared(&d);
        close_and_check_cleared(&r);
        loop_force_legacy(false);
}

/* ---- concurrent allocation ----------------------------------------------------- */

#define CHILDREN 8
#define PER_CHILD 6

struct record {
        int32_t child;
        int32_t r;
        uint32_t major, minor;
        uint64_t diskseq;
};

static pid_t kids[CHILDREN];

static void child(int id, int results, int start, int release, bool legacy)
{
        struct loop_config cfg = { .read_only = true };
        struct loop_device d[PER_CHILD];
        struct backing b;
        char c;

        alarm(120);    /* never outlive a failed parent */
        loop_force_legacy(legacy);
        if (backing_open(T.img, false, false, &b) < 0)
                _exit(2);
        if (read(start, &c, 1) != 1)
                _exit(3);
        for (int i = 0; i < PER_CHILD; i++) {
                struct record rec = { .child = id };
                rec.r = loop_bind(b.fd, &cfg, &d[i]);
                if (rec.r == 0) {
                        rec.major = major(d[i].devnum);
                        rec.minor = minor(d[i].devnum);
                        rec.diskseq = d[i].diskseq;
                } else {
                        d[i].fd = -1;
                }
                if (write(results, &rec, sizeof(rec)) != sizeof(rec))
                        _exit(4);
        }
        /* Hold every device until the parent has seen all of them. */
        if (read(release, &c, 1) != 1)
                _exit(5);
        for (int i = 0; i < PER_CHILD; i++)
                if (d[i].fd >= 0)
                        close(d[i].fd);
        _exit(0);
}

static int cmp_rec(const void *a, const void *b)
{
        const struct record *x = a, *y = b;

        if (x->major != y->major)
                return x->major < y->major ? -1 : 1;
        return x->minor < y->minor ? -1 : x->minor > y->minor;
}

static void concurrent_allocation(bool legacy, bool hinted)
{
        int results[2], start[2], release[2];
        struct record recs[CHILDREN * PER_CHILD];
        size_t got = 0;

        /* Every child starts with the same hints: all go for the same
         * devices first, and only the kernel decides who gets each. */
        if (hinted) {
                struct loop_config cfg = { .read_only = true };
                struct backing b = open_backing(T.img, false);
                struct loop_device d[CHILDREN];

                for (int i = 0; i < CHILDREN; i++)
                        d[i] = attach(&b, &cfg);
                for (int i = 0; i < CHILDREN; i++) {
                        close_and_check_cleared(&d[i]);
                        assert_int_equal(loop_hint_free(d[i].nr), 0);
                }
                backing_close(&b);
        }

        assert_int_equal(pipe2(results, O_CLOEXEC), 0);
        assert_int_equal(pipe2(start, O_CLOEXEC), 0);
        assert_int_equal(pipe2(release, O_CLOEXEC), 0);
        for (int i = 0; i < CHILDREN; i++) {
                kids[i] = fork();
                assert_true(kids[i] >= 0);
                if (kids[i] == 0)
                        child(i, results[1], start[0], release[0], legacy);
        }
        close(results[1]);

        /* All start at once, to collide. */
        char go[CHILDREN];
        memset(go, 'g', sizeof(go));
        assert_int_equal(write(start[1], go, sizeof(go)), sizeof(go));

        while (got < sizeof(recs)) {
                ssize_t n = read(results[0], (char *)recs + got, sizeof(recs) - got);
                assert_true(n > 0);
                got += (size_t)n;
        }
        for (size_t i = 0; i < CHILDREN * PER_CHILD; i++)
                if (recs[i].r != 0)
                        fail_msg("child %d: loop_bind: %s", recs[i].child, strerror(-recs[i].r));

        /* No device handed out twice, and each is a new configuration. */
        qsort(recs, CHILDREN * PER_CHILD, sizeof(recs[0]), cmp_rec);
        for (size_t i = 1; i < CHILDREN * PER_CHILD; i++)
                if (recs[i].major == recs[i - 1].major && recs[i].minor == recs[i - 1].minor)
                        fail_msg("%u:%u handed to children %d and %d", recs[i].major, recs[i].minor,
                                 recs[i - 1].child, recs[i].child);
        for (size_t i = 0; i < CHILDREN * PER_CHILD; i++)
                for (size_t j = i + 1; j < CHILDREN * PER_CHILD; j++)
                        assert_true(recs[i].diskseq != recs[j].diskseq);
        assert_int_equal(lt_count_bound(T.prefix), CHILDREN * PER_CHILD);

        assert_int_equal(write(release[1], go, sizeof(go)), sizeof(go));
        for (int i = 0; i < CHILDREN; i++) {
                int status;
                assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
                kids[i] = 0;
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
        close(results[0]);
        close(start[0]);
        close(start[1]);
        close(release[0]);
        close(release[1]);

        /* Every device went with its holder. */
        for (int i = 0; i < 500 && lt_count_bound(T.prefix) > 0; i++)
                usleep(10 * 1000);
        assert_int_equal(lt_count_bound(T.prefix), 0);
}

static int kill_kids(void **state)
{
        for (int i = 0; i < CHILDREN; i++)
                if (kids[i] > 0) {
                        kill(kids[i], SIGKILL);
                        waitpid(kids[i], NULL, 0);
                        kids[i] = 0;
                }
        return teardown(state);
}

static void test_concurrent_allocation(void **state)
{
        concurrent_allocation(false, false);
}

static void test_concurrent_allocation_legacy(void **state)
{
        concurrent_allocation(true, false);
}

static void test_concurrent_allocation_hinted(void **state)
{
        concurrent_allocation(false, true);
}

static void test_concurrent_allocation_hinted_legacy(void **state)
{
        concurrent_allocation(true, true);
}

/* ---- what is not a backing file ------------------------------------------------ */

static void expect_refused(const char *path, int want)
{
        struct backing b;

        assert_int_equal(backing_open(path, false, false, &b), want);
        assert_int_equal(b.fd, -1);
        assert_int_equal(backing_open(path, true, false, &b), want);
        assert_int_equal(b.fd, -1);
}

static void expect_attach_refused(int fd, int want)
{
        struct loop_config cfg = { .read_only = true };
        struct loop_device d;

        assert_true(fd >= 0);
        assert_int_equal(loop_bind(fd, &cfg, &d), want);
        close(fd);
}

static void test_bad_backing(void **state)
{
        char fifo[4096], sub[4096], missing[4096];

        snprintf(fifo, sizeof(fifo), "%s/fifo", T.dir);
        snprintf(sub, sizeof(sub), "%s/dir", T.dir);
        snprintf(missing, sizeof(missing), "%s/missing", T.dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        assert_int_equal(mkdir(sub, 0700), 0);

        alarm(30);   /* a FIFO must never hang */
        expect_refused(fifo, -ENOTBLK);
        expect_refused(sub, -ENOTBLK);
        expect_refused("/dev/null", -ENOTBLK);
        expect_refused(missing, -ENOENT);
        expect_refused("var/tmp/img", -EINVAL);
        expect_refused("", -EINVAL);

        /* The engine itself refuses such fds before touching any device. */
        expect_attach_refused(open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC), -ENOTBLK);
        expect_attach_refused(open(sub, O_RDONLY | O_CLOEXEC), -ENOTBLK);
        expect_attach_refused(open("/dev/null", O_RDONLY | O_CLOEXEC), -ENOTBLK);
        expect_attach_refused(open(T.img, O_PATH | O_CLOEXEC), -EBADF);
        alarm(0);

        assert_int_equal(lt_count_bound(T.prefix), 0);
        assert_int_equal(lt_count_loop_fds(), 0);
        unlink(fifo);
        rmdir(sub);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_attach_rw, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_only_honoured, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rw_needs_writable_backing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_offset_and_size_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_block_size, setup, teardown),
                cmocka_unit_test_setup_teardown(test_direct_io_opt_in, setup, teardown),
                cmocka_unit_test_setup_teardown(test_autoclear_after_last_close, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reopen_verifies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blockdev_inspect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_never_takes_a_busy_device, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hint_reused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hint_reused_legacy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hint_stolen_by_another_process, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hint_stolen_by_another_process_legacy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_legacy_fallback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_allocation, setup, kill_kids),
                cmocka_unit_test_setup_teardown(test_concurrent_allocation_legacy, setup, kill_kids),
                cmocka_unit_test_setup_teardown(test_concurrent_allocation_hinted, setup, kill_kids),
                cmocka_unit_test_setup_teardown(test_concurrent_allocation_hinted_legacy, setup, kill_kids),
                cmocka_unit_test_setup_teardown(test_bad_backing, setup, teardown),
        };

        lt_require_root("test-loop-engine");
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
