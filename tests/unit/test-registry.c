/* Unit tests for the registry: key, hash and equality, the sharing rule, and the
 * life of entries and users.  The loop engine is replaced by a fake kernel
 * (registry_ops), so no root and no loop device is needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "registry.h"
#include "loop.h"

/* ---- a fake kernel -------------------------------------------------------- */

#define MAX_FDS 65536
#define MAX_DEVS 20000

struct fake_dev {
        bool bound;
        dev_t bdev;
        ino_t bino;
        uint64_t diskseq;
};

struct fake_blk {
        ino_t memfd_ino;         /* identifies the fake block device's fds */
        dev_t devnum;
        uint64_t diskseq;
        bool removed;
};

static struct fake_dev devs[MAX_DEVS];
static int n_devs;
static int free_stack[MAX_DEVS], n_free;
static uint64_t seq_counter = 100;
static int fd_nr[MAX_FDS];                       /* loop fd -> device number */
static struct { dev_t dev; ino_t ino; } fd_ident[MAX_FDS];   /* backing fd -> file */
static struct fake_blk blks[8];
static int n_blks;

static struct {
        int bind, reopen, inspect, blockdev_inspect, diskseq_by_devnum;
} calls;
static struct loop_config last_cfg;
static int attach_error, reopen_error;

static void fake_reset(void)
{
        memset(devs, 0, sizeof(devs));
        n_devs = n_free = n_blks = 0;
        memset(&calls, 0, sizeof(calls));
        memset(blks, 0, sizeof(blks));
        attach_error = reopen_error = 0;
}

static int fake_fd_for(int nr)
{
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0 && fd < MAX_FDS);
        fd_nr[fd] = nr;
        return fd;
}

static void fill_dev(int nr, int fd, struct loop_device *d)
{
        *d = (struct loop_device){
                .fd = fd,
                .nr = nr,
                .devnum = makedev(7, nr),
                .diskseq = devs[nr].diskseq,
                .backing_dev = devs[nr].bdev,
                .backing_ino = devs[nr].bino,
        };
        snprintf(d->node, sizeof(d->node), "/dev/loop%d", nr);
}

static int fake_bind(int backing_fd, const struct loop_config *cfg, struct loop_device *ret)
{
        int nr;

        calls.bind++;
        last_cfg = *cfg;
        if (attach_error)
                return attach_error;
        /* Like LOOP_CTL_GET_FREE: the lowest cleared number comes back first. */
        nr = n_free ? free_stack[--n_free] : n_devs++;
        assert_true(nr < MAX_DEVS);
        devs[nr] = (struct fake_dev){
                .bound = true,
                .bdev = fd_ident[backing_fd].dev,
                .bino = fd_ident[backing_fd].ino,
                .diskseq = ++seq_counter,
        };
        fill_dev(nr, fake_fd_for(nr), ret);
        return 0;
}

static int fake_reopen(const struct loop_device *want, bool writable, int *ret_fd)
{
        const struct fake_dev *d = &devs[want->nr];

        calls.reopen++;
        if (reopen_error)
                return reopen_error;
        if (!d->bound || d->bdev != want->backing_dev || d->bino != want->backing_ino ||
            d->diskseq != want->diskseq)
                return -ESTALE;
        *ret_fd = fake_fd_for(want->nr);
        return 0;
}

static int fake_inspect(int fd, struct loop_device *ret)
{
        int nr = fd_nr[fd];

        calls.inspect++;
        if (!devs[nr].bound)
                return -ESTALE;
        fill_dev(nr, fd, ret);
        return 0;
}

static struct fake_blk *blk_by_fd(int fd)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return NULL;
        for (int i = 0; i < n_blks; i++)
                if (blks[i].memfd_ino == st.st_ino)
                        return &blks[i];
        return NULL;
}

static int fake_blockdev_inspect(int fd, struct loop_device *ret)
{
        struct fake_blk *b = blk_by_fd(fd);

        calls.blockdev_inspect++;
        if (!b)
                return -ENOTBLK;
        *ret = (struct loop_device){
                .fd = fd, .nr = -1, .devnum = b->devnum, .diskseq = b->diskseq,
                .backing_dev = b->devnum, .backing_ino = 0,
        };
        snprintf(ret->node, sizeof(ret->node), "/dev/fake%u", minor(b->devnum));
        return 0;
}

static int fake_diskseq_by_devnum(dev_t devnum, uint64_t *ret)
{
        calls.diskseq_by_devnum++;
        for (int i = 0; i < n_blks; i++)
                if (blks[i].devnum == devnum) {
                        if (blks[i].removed)
                                return -ENOENT;
                        *ret = blks[i].diskseq;
                        return 0;
                }
        return -ENOENT;
}

static const struct registry_ops fake_ops = {
        .bind = fake_bind,
        .reopen = fake_reopen,
        .inspect = fake_inspect,
        .blockdev_inspect = fake_blockdev_inspect,
        .diskseq_by_devnum = fake_diskseq_by_devnum,
};

/* The kernel's autoclear (or someone's LOOP_CLR_FD) on device nr. */
static void fake_clear(int nr)
{
        devs[nr].bound = false;
        devs[nr].diskseq = ++seq_counter;
        free_stack[n_free++] = nr;
}

/* ---- helpers ---------------------------------------------------------------- */

static struct backing file_backing(dev_t dev, ino_t ino, bool writable)
{
        struct backing b = { .fd = open("/dev/null", O_RDWR | O_CLOEXEC), .writable = writable };

        assert_true(b.fd >= 0 && b.fd < MAX_FDS);
        b.st.st_mode = S_IFREG | 0600;
        b.st.st_dev = dev;
        b.st.st_ino = ino;
        fd_ident[b.fd].dev = dev;
        fd_ident[b.fd].ino = ino;
        return b;
}

static struct backing block_backing(dev_t devnum, uint64_t diskseq, bool writable)
{
        struct backing b = { .fd = memfd_create("fake-blk", MFD_CLOEXEC), .writable = writable,
                             .is_block = true };
        struct stat st;

        assert_true(b.fd >= 0);
        assert_int_equal(fstat(b.fd, &st), 0);
        assert_true(n_blks < (int)(sizeof(blks) / sizeof(blks[0])));
        blks[n_blks++] = (struct fake_blk){ .memfd_ino = st.st_ino, .devnum = devnum, .diskseq = diskseq };
        b.st.st_mode = S_IFBLK | 0600;
        b.st.st_rdev = devnum;
        b.st.st_dev = makedev(0, 5);
        b.st.st_ino = 42;
        return b;
}

static struct registry_request req_for(struct backing *b, const char *path, enum access a, const char *name)
{
        return (struct registry_request){
                .backing = b, .path = path, .access = a, .name = name,
                .domid = UINT32_MAX, .devid = UINT32_MAX,
        };
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

struct fixture {
        struct registry *c;
        int fds_before;
        char err[256];
};

/* A registry on ops over a fresh fake kernel, with the fds open now counted
 * for teardown()'s leak check. */
static int setup_with_ops(void **state, const struct registry_ops *ops)
{
        struct fixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        fake_reset();
        f->fds_before = count_fds();
        if (registry_new_with_ops(ops, &f->c) < 0) {
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int setup(void **state)
{
        return setup_with_ops(state, &fake_ops);
}

/* Freeing the registry must close every fd it held. */
static int teardown(void **state)
{
        struct fixture *f = *state;
        int leaked;

        registry_free(f->c);
        leaked = count_fds() - f->fds_before;
        free(f);
        if (leaked != 0) {
                fprintf(stderr, "%d fd(s) leaked\n", leaked);
                return -1;
        }
        return 0;
}

static struct registry_user *acquire_ok(struct fixture *f, struct registry_request *req)
{
        struct registry_user *u = NULL;
        int r = registry_acquire(f->c, req, &u, f->err, sizeof(f->err));

        if (r < 0)
                fail_msg("registry_acquire: %s (%s)", strerror(-r), f->err);
        assert_non_null(u);
        assert_string_equal(f->err, "");
        return u;
}

static int acquire_err(struct fixture *f, struct registry_request *req)
{
        struct registry_user *u = NULL;
        int r = registry_acquire(f->c, req, &u, f->err, sizeof(f->err));

        assert_true(r < 0);
        assert_null(u);
        assert_true(f->err[0] != 0);
        return r;
}

/* ---- key, hash, equality ---------------------------------------------------- */

static void test_key_defaults(void **state)
{
        struct backing b = file_backing(makedev(8, 1), 1234, true);
        struct registry_request req = req_for(&b, "/img", ACCESS_RO, "d");
        struct registry_key k;

        assert_int_equal(registry_key_from_request(&req, &k), 0);
        assert_int_equal(k.dev, makedev(8, 1));
        assert_int_equal(k.ino, 1234);
        assert_false(k.is_block);
        assert_false(k.rw);
        assert_false(k.direct_io);
        assert_int_equal(k.block_size, LOOP_DEFAULT_BLOCK_SIZE);
        assert_int_equal(k.offset, 0);
        assert_int_equal(k.size_limit, 0);

        req.access = ACCESS_RW;
        assert_int_equal(registry_key_from_request(&req, &k), 0);
        assert_true(k.rw);
        req.access = ACCESS_RW_FORCE;
        assert_int_equal(registry_key_from_request(&req, &k), 0);
        assert_true(k.rw);

        req.access = (enum access)7;
        assert_int_equal(registry_key_from_request(&req, &k), -EINVAL);
        close(b.fd);
}

static void test_key_block_device(void **state)
{
        struct backing b = block_backing(makedev(8, 16), 9, true);
        struct registry_request req = req_for(&b, "/dev/sdb", ACCESS_RW, "d");
        struct registry_key k;

        req.cfg.direct_io = true;
        req.cfg.block_size = 4096;
        assert_int_equal(registry_key_from_request(&req, &k), 0);
        assert_true(k.is_block);
        assert_int_equal(k.dev, makedev(8, 16));
        assert_int_equal(k.ino, 0);
        assert_false(k.direct_io);
        assert_int_equal(k.block_size, 0);

        req.cfg.offset = 512;
        assert_int_equal(registry_key_from_request(&req, &k), -EINVAL);
        req.cfg.offset = 0;
        req.cfg.size_limit = 4096;
        assert_int_equal(registry_key_from_request(&req, &k), -EINVAL);
        close(b.fd);
}

static void test_key_equality_and_hash(void **state)
{
        struct registry_key a, b;

        /* Padding must not matter: fill one with garbage first. */
        memset(&a, 0, sizeof(a));
        memset(&b, 0xa5, sizeof(b));
        a = (struct registry_key){ .dev = 1, .ino = 2, .rw = false, .block_size = 512, .offset = 4096 };
        b.dev = 1; b.ino = 2; b.is_block = false; b.rw = false; b.direct_io = false;
        b.block_size = 512; b.offset = 4096; b.size_limit = 0;
        assert_true(registry_key_equal(&a, &b));
        assert_true(registry_key_hash(&a) == registry_key_hash(&b));

        /* Every field is part of the key. */
        struct registry_key v[] = { a, a, a, a, a, a, a, a };
        v[0].dev = 9;
        v[1].ino = 9;
        v[2].is_block = true;
        v[3].rw = true;
        v[4].direct_io = true;
        v[5].block_size = 4096;
        v[6].offset = 0;
        v[7].size_limit = 1 << 20;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                assert_false(registry_key_equal(&a, &v[i]));
                assert_true(registry_key_hash(&a) != registry_key_hash(&v[i]));
        }
}

static void test_access_names(void **state)
{
        assert_string_equal(access_name(ACCESS_RO), "read-only");
        assert_string_equal(access_name(ACCESS_RW), "read-write");
        assert_string_equal(access_name(ACCESS_RW_FORCE), "read-write (w!)");
}

/* ---- the sharing rule ---------------------------------------------------------- */

static void test_ro_users_share_one_device(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request r1 = req_for(&b, "/img", ACCESS_RO, "domain 1 disk 51712");
        struct registry_request r2 = req_for(&b, "/img", ACCESS_RO, "domain 2 disk 51712");
        struct registry_user *u1 = acquire_ok(f, &r1), *u2 = acquire_ok(f, &r2);

        assert_int_equal(calls.bind, 1);
        assert_true(last_cfg.read_only);
        assert_int_equal(last_cfg.block_size, 512);
        assert_ptr_equal(u1->entry, u2->entry);
        assert_int_equal(u1->entry->n_users, 2);
        assert_int_equal(u1->entry->n_holding, 2);
        assert_true(u1->holding && u2->holding);
        assert_int_equal(registry_n_entries(f->c), 1);
        assert_string_equal(u1->entry->path, "/img");
        assert_string_equal(u2->name, "domain 2 disk 51712");
        assert_ptr_equal(registry_find_device(f->c, u1->entry->dev.devnum), u1->entry);

        registry_release(f->c, u1);
        assert_int_equal(u2->entry->n_users, 1);
        registry_release(f->c, u2);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
}

static void test_rw_refused_while_ro_user(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request ro = req_for(&b, "/srv/img", ACCESS_RO, "domain 3 disk 51712");
        struct registry_request rw = req_for(&b, "/srv/img", ACCESS_RW, "domain 4 disk 51728");
        struct registry_user *u = acquire_ok(f, &ro);

        assert_int_equal(acquire_err(f, &rw), -EBUSY);
        assert_string_equal(f->err, "/srv/img is in use read-only by domain 3 disk 51712");
        assert_int_equal(calls.bind, 1);
        assert_int_equal(registry_n_entries(f->c), 1);

        registry_release(f->c, u);
        u = acquire_ok(f, &rw);   /* free again */
        registry_release(f->c, u);
        close(b.fd);
}

static void test_ro_refused_while_rw_user(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request rw = req_for(&b, "/srv/img", ACCESS_RW, "domain 3 disk 51712");
        struct registry_request ro = req_for(&b, "/srv/img", ACCESS_RO, "domain 5 disk 51712");
        struct registry_user *u = acquire_ok(f, &rw);

        assert_false(last_cfg.read_only);
        assert_int_equal(acquire_err(f, &ro), -EBUSY);
        assert_string_equal(f->err, "/srv/img is in use read-write by domain 3 disk 51712");
        /* And a second writer, too. */
        assert_int_equal(acquire_err(f, &rw), -EBUSY);
        assert_string_equal(f->err, "/srv/img is in use read-write by domain 3 disk 51712");
        assert_int_equal(calls.bind, 1);
        registry_release(f->c, u);
        close(b.fd);
}

/* Related domains (a stub domain and its guest, one VM's two domains)
 * share a file read-write, on one device; everybody else is still refused,
 * and the message names the first unrelated user. */
static bool related_to_3(const struct registry_user *holder, void *data)
{
        (*(int *)data)++;
        return holder->domid == 3;
}

static void test_related_users_share(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request guest = req_for(&b, "/srv/img", ACCESS_RW, "domain 3 disk 51712");
        struct registry_request stub = req_for(&b, "/srv/img", ACCESS_RW, "domain 4 disk 51712");
        struct registry_request other = req_for(&b, "/srv/img", ACCESS_RO, "domain 5 disk 51712");
        struct registry_user *u1, *u2;
        int asked = 0;

        guest.domid = 3;
        stub.domid = 4;
        other.domid = 5;
        stub.related = other.related = related_to_3;
        stub.related_data = other.related_data = &asked;
        u1 = acquire_ok(f, &guest);
        u2 = acquire_ok(f, &stub);
        assert_int_equal(asked, 1);
        assert_ptr_equal(u1->entry, u2->entry);
        assert_int_equal(calls.bind, 1);
        /* Related to 3, not to 4: refused, naming 4. */
        assert_int_equal(acquire_err(f, &other), -EBUSY);
        assert_string_equal(f->err, "/srv/img is in use read-write by domain 4 disk 51712");
        registry_release(f->c, u1);
        assert_int_equal(acquire_err(f, &other), -EBUSY);
        registry_release(f->c, u2);
        registry_release(f->c, acquire_ok(f, &other));
        close(b.fd);
}

/* A holder whose disk is gone though not released yet does not stand in the
 * way; one that is still there does, and is named. */
static bool domain_3_gone(const struct registry_user *holder, void *data)
{
        (*(int *)data)++;
        return holder->domid == 3;
}

static void test_stale_holder_ignored(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request gone = req_for(&b, "/srv/img", ACCESS_RW, "domain 3 disk 51712");
        struct registry_request live = req_for(&b, "/srv/img", ACCESS_RO, "domain 4 disk 51712");
        struct registry_request next = req_for(&b, "/srv/img", ACCESS_RO, "domain 5 disk 51712");
        struct registry_user *u1, *u2;
        int asked = 0;

        gone.domid = 3;
        live.domid = 4;
        next.domid = 5;
        live.stale = next.stale = domain_3_gone;
        live.related_data = next.related_data = &asked;
        u1 = acquire_ok(f, &gone);
        /* The writer's disk is gone: a reader is let in (on a device of its
         * own, read-only). */
        u2 = acquire_ok(f, &live);
        assert_int_equal(asked, 1);
        assert_ptr_not_equal(u1->entry, u2->entry);
        /* A writer now: the live reader refuses it, the gone writer does not. */
        next.access = ACCESS_RW;
        next.cfg.read_only = false;
        assert_int_equal(acquire_err(f, &next), -EBUSY);
        assert_string_equal(f->err, "/srv/img is in use read-only by domain 4 disk 51712");
        /* Without the callback the gone writer is a holder as any other. */
        next.stale = NULL;
        next.access = ACCESS_RO;
        next.cfg.read_only = true;
        assert_int_equal(acquire_err(f, &next), -EBUSY);
        assert_string_equal(f->err, "/srv/img is in use read-write by domain 3 disk 51712");
        registry_release(f->c, u1);
        registry_release(f->c, u2);
        close(b.fd);
}

/* The rule is about the file, whatever offset or block size each user asks. */
static void test_sharing_is_per_file_not_per_key(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request a = req_for(&b, "/img", ACCESS_RO, "disk a");
        struct registry_request c = req_for(&b, "/img", ACCESS_RO, "disk c");
        struct registry_request w = req_for(&b, "/img", ACCESS_RW, "disk w");
        struct registry_user *ua, *uc;

        c.cfg.offset = 1 << 20;
        w.cfg.offset = 2 << 20;
        ua = acquire_ok(f, &a);
        uc = acquire_ok(f, &c);
        assert_ptr_not_equal(ua->entry, uc->entry);   /* different keys */
        assert_int_equal(calls.bind, 2);
        assert_int_equal(acquire_err(f, &w), -EBUSY);
        assert_non_null(strstr(f->err, "and 1 other disk)"));

        /* Another file is not concerned. */
        struct backing other = file_backing(makedev(8, 1), 101, true);
        struct registry_request o = req_for(&other, "/other", ACCESS_RW, "disk o");
        struct registry_user *uo = acquire_ok(f, &o);

        registry_release(f->c, ua);
        registry_release(f->c, uc);
        registry_release(f->c, uo);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
        close(other.fd);
}

static void test_force_bypasses_and_counts_as_writer(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request ro = req_for(&b, "/img", ACCESS_RO, "domain 1 disk 1");
        struct registry_request force = req_for(&b, "/img", ACCESS_RW_FORCE, "domain 2 disk 2");
        struct registry_request force2 = req_for(&b, "/img", ACCESS_RW_FORCE, "domain 3 disk 3");
        struct registry_request rw = req_for(&b, "/img", ACCESS_RW, "domain 4 disk 4");
        struct registry_user *u1 = acquire_ok(f, &ro), *u2, *u3;

        u2 = acquire_ok(f, &force);
        assert_false(last_cfg.read_only);
        assert_ptr_not_equal(u1->entry, u2->entry);
        /* Two forced writers with one key share the read-write device. */
        u3 = acquire_ok(f, &force2);
        assert_ptr_equal(u2->entry, u3->entry);
        assert_int_equal(calls.bind, 2);

        /* Everybody else sees the forced users as writers. */
        registry_release(f->c, u1);
        assert_int_equal(acquire_err(f, &ro), -EBUSY);
        assert_non_null(strstr(f->err, "/img is in use read-write (w!) by domain "));
        assert_int_equal(acquire_err(f, &rw), -EBUSY);

        registry_release(f->c, u2);
        registry_release(f->c, u3);
        u1 = acquire_ok(f, &rw);
        registry_release(f->c, u1);
        close(b.fd);
}

static void test_rw_needs_writable_backing(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request rw = req_for(&b, "/img", ACCESS_RW, "d");

        assert_int_equal(acquire_err(f, &rw), -EACCES);
        assert_non_null(strstr(f->err, "opened read-only"));
        assert_int_equal(calls.bind, 0);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
}

static void test_bad_requests(void **state)
{
        struct fixture *f = *state;
        struct registry_request req = { 0 };
        struct registry_user *u = NULL;

        assert_int_equal(registry_acquire(f->c, &req, &u, f->err, sizeof(f->err)), -EINVAL);
        assert_null(u);
        /* No room for a message is fine too. */
        assert_int_equal(registry_acquire(f->c, &req, &u, NULL, 0), -EINVAL);
        registry_release(f->c, NULL);
        registry_user_unhold(f->c, NULL);
        assert_int_equal(registry_device_changed(f->c, makedev(7, 99)), 0);
        assert_null(registry_find_device(f->c, makedev(7, 99)));
}

static void test_attach_failure_leaves_nothing(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, true);
        struct registry_request rw = req_for(&b, "/img", ACCESS_RW, "domain 7 disk 1");
        struct registry_user *u;

        attach_error = -EAGAIN;
        assert_int_equal(acquire_err(f, &rw), -EAGAIN);
        assert_non_null(strstr(f->err, "/img"));
        assert_int_equal(registry_n_entries(f->c), 0);

        /* No trace of the failed user in the sharing rule. */
        attach_error = 0;
        u = acquire_ok(f, &rw);
        registry_release(f->c, u);
        close(b.fd);
}

/* ---- states --------------------------------------------------------------------- */

static void test_hold_unhold_reopen(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request r1 = req_for(&b, "/img", ACCESS_RO, "d1");
        struct registry_request r2 = req_for(&b, "/img", ACCESS_RO, "d2");
        struct registry_user *u1 = acquire_ok(f, &r1), *u2;
        struct registry_entry *e = u1->entry;
        uint64_t seq = e->dev.diskseq;

        assert_true(e->dev.fd >= 0);
        registry_user_unhold(f->c, u1);
        assert_false(u1->holding);
        assert_int_equal(e->n_holding, 0);
        assert_int_equal(e->dev.fd, -1);
        registry_user_unhold(f->c, u1);             /* twice is harmless */
        assert_int_equal(e->n_holding, 0);

        /* Reused with its fd closed: reopened and verified, not re-attached. */
        u2 = acquire_ok(f, &r2);
        assert_ptr_equal(u2->entry, e);
        assert_int_equal(calls.bind, 1);
        assert_int_equal(calls.reopen, 1);
        assert_true(e->dev.fd >= 0);
        assert_int_equal(e->dev.diskseq, seq);
        assert_int_equal(e->n_holding, 1);

        /* Releasing a holding user drops the fd once nobody holds. */
        registry_release(f->c, u2);
        assert_int_equal(e->dev.fd, -1);
        assert_int_equal(e->n_users, 1);
        registry_release(f->c, u1);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
}

/* A held entry is checked too before it gets a new user. */
static void test_reuse_held_entry_is_verified(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request r = req_for(&b, "/img", ACCESS_RO, "d");
        struct registry_user *u1 = acquire_ok(f, &r), *u2;

        u2 = acquire_ok(f, &r);
        assert_ptr_equal(u1->entry, u2->entry);
        assert_int_equal(calls.inspect, 1);

        /* Someone swapped the file under the device (LOOP_CHANGE_FD). */
        devs[u1->entry->dev.nr].bino = 555;
        devs[u1->entry->dev.nr].diskseq = ++seq_counter;
        struct registry_user *u3 = acquire_ok(f, &r);
        assert_ptr_not_equal(u3->entry, u1->entry);
        assert_true(u1->entry->dead);
        assert_int_equal(u1->entry->dev.fd, -1);   /* not ours any more */
        assert_int_equal(registry_n_entries(f->c), 2);

        registry_release(f->c, u1);
        registry_release(f->c, u2);
        assert_int_equal(registry_n_entries(f->c), 1);
        registry_release(f->c, u3);
        close(b.fd);
}

static void test_stale_entry_replaced(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request r = req_for(&b, "/img", ACCESS_RO, "old");
        struct registry_request r2 = req_for(&b, "/img", ACCESS_RO, "new");
        struct registry_user *u1 = acquire_ok(f, &r), *u2;
        struct registry_entry *old = u1->entry;
        dev_t old_devnum = old->dev.devnum;

        registry_user_unhold(f->c, u1);
        fake_clear(old->dev.nr);          /* the last blkback closed: autoclear */

        u2 = acquire_ok(f, &r2);
        assert_int_equal(calls.reopen, 1);
        assert_int_equal(calls.bind, 2);
        assert_ptr_not_equal(u2->entry, old);
        assert_true(old->dead);
        assert_false(u2->entry->dead);
        assert_int_equal(registry_n_entries(f->c), 2);
        /* The kernel gave the same number back; the index names the new one. */
        assert_int_equal(u2->entry->dev.devnum, old_devnum);
        assert_ptr_equal(registry_find_device(f->c, old_devnum), u2->entry);
        assert_true(u2->entry->dev.diskseq != old->dev.diskseq);

        registry_release(f->c, u1);
        assert_int_equal(registry_n_entries(f->c), 1);
        assert_ptr_equal(registry_find_device(f->c, old_devnum), u2->entry);
        registry_release(f->c, u2);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
}

static void test_reopen_error_is_not_stale(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request r = req_for(&b, "/img", ACCESS_RO, "d");
        struct registry_user *u1 = acquire_ok(f, &r);

        registry_user_unhold(f->c, u1);
        reopen_error = -EMFILE;
        assert_int_equal(acquire_err(f, &r), -EMFILE);
        assert_non_null(strstr(f->err, "/dev/loop0"));
        assert_false(u1->entry->dead);
        assert_int_equal(u1->entry->n_users, 1);
        assert_int_equal(calls.bind, 1);
        reopen_error = 0;
        registry_release(f->c, u1);
        close(b.fd);
}

static void test_device_changed(void **state)
{
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 100, false);
        struct registry_request r = req_for(&b, "/img", ACCESS_RO, "d");
        struct registry_user *u = acquire_ok(f, &r);
        struct registry_entry *e = u->entry;
        dev_t devnum = e->dev.devnum;

        /* Held and unchanged (the change event of our own configure). */
        assert_int_equal(registry_device_changed(f->c, devnum), 0);
        assert_false(e->dead);
        /* Not held, still bound (blkback has it). */
        registry_user_unhold(f->c, u);
        assert_int_equal(registry_device_changed(f->c, devnum), 0);
        assert_false(e->dead);
        assert_int_equal(e->dev.fd, -1);
        /* Another device: not ours. */
        assert_int_equal(registry_device_changed(f->c, makedev(7, 77)), 0);

        fake_clear(e->dev.nr);
        assert_int_equal(registry_device_changed(f->c, devnum), 1);
        assert_true(e->dead);
        assert_null(registry_find_device(f->c, devnum));
        assert_int_equal(registry_device_changed(f->c, devnum), 0);
        assert_int_equal(registry_n_entries(f->c), 1);   /* kept for its user */

        /* Still counted by the sharing rule while its user is there. */
        struct backing w = file_backing(makedev(8, 1), 100, true);
        struct registry_request rw = req_for(&w, "/img", ACCESS_RW, "w");
        assert_int_equal(acquire_err(f, &rw), -EBUSY);

        registry_release(f->c, u);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
        close(w.fd);
}

/* A new device that got the number of an entry nobody noticed was cleared. */
static void test_devnum_reuse_marks_old_dead(void **state)
{
        struct fixture *f = *state;
        struct backing a = file_backing(makedev(8, 1), 100, false);
        struct backing b = file_backing(makedev(8, 1), 200, false);
        struct registry_request ra = req_for(&a, "/a", ACCESS_RO, "a");
        struct registry_request rb = req_for(&b, "/b", ACCESS_RO, "b");
        struct registry_user *ua = acquire_ok(f, &ra), *ub;

        registry_user_unhold(f->c, ua);
        fake_clear(ua->entry->dev.nr);
        ub = acquire_ok(f, &rb);
        assert_int_equal(ub->entry->dev.devnum, ua->entry->dev.devnum);
        assert_true(ua->entry->dead);
        assert_ptr_equal(registry_find_device(f->c, ub->entry->dev.devnum), ub->entry);

        registry_release(f->c, ub);
        registry_release(f->c, ua);
        close(a.fd);
        close(b.fd);
}

static void test_block_device_entries(void **state)
{
        struct fixture *f = *state;
        struct backing b = block_backing(makedev(8, 16), 33, true);
        struct registry_request ro = req_for(&b, "/dev/sdb", ACCESS_RO, "domain 1 disk 1");
        struct registry_request rw = req_for(&b, "/dev/sdb", ACCESS_RW, "domain 2 disk 2");
        struct registry_user *u1 = acquire_ok(f, &ro), *u2;
        struct registry_entry *e = u1->entry;

        assert_int_equal(calls.bind, 0);
        assert_int_equal(e->dev.nr, -1);
        assert_int_equal(e->dev.devnum, makedev(8, 16));
        assert_int_equal(e->dev.diskseq, 33);
        /* A dup: the caller's backing fd stays the caller's. */
        assert_true(e->dev.fd >= 0);
        assert_int_not_equal(e->dev.fd, b.fd);
        assert_ptr_equal(registry_find_device(f->c, makedev(8, 16)), e);

        u2 = acquire_ok(f, &ro);
        assert_ptr_equal(u2->entry, e);
        assert_int_equal(acquire_err(f, &rw), -EBUSY);
        assert_string_equal(f->err, "/dev/sdb is in use read-only by domain 1 disk 1 (and 1 other disk)");

        /* Not held: the next user brings its own fd, checked by diskseq. */
        registry_user_unhold(f->c, u1);
        registry_user_unhold(f->c, u2);
        assert_int_equal(e->dev.fd, -1);
        assert_int_equal(registry_device_changed(f->c, makedev(8, 16)), 0);
        struct registry_user *u3 = acquire_ok(f, &ro);
        assert_ptr_equal(u3->entry, e);
        assert_true(e->dev.fd >= 0);

        /* Media changed: the entry is stale. */
        registry_user_unhold(f->c, u3);
        blks[0].diskseq = 34;
        assert_int_equal(registry_device_changed(f->c, makedev(8, 16)), 1);
        assert_true(e->dead);
        struct registry_user *u4 = acquire_ok(f, &ro);
        assert_ptr_not_equal(u4->entry, e);
        assert_int_equal(u4->entry->dev.diskseq, 34);

        struct registry_request off = ro;
        off.cfg.offset = 4096;
        assert_int_equal(acquire_err(f, &off), -EINVAL);
        assert_string_equal(f->err, "/dev/sdb is a block device: offset and size limit apply only to files");

        registry_release(f->c, u1);
        registry_release(f->c, u2);
        registry_release(f->c, u3);
        registry_release(f->c, u4);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
}

static void test_block_device_removed(void **state)
{
        struct fixture *f = *state;
        struct backing b = block_backing(makedev(8, 32), 50, false);
        struct registry_request ro = req_for(&b, "/dev/sdc", ACCESS_RO, "d");
        struct registry_user *u = acquire_ok(f, &ro);

        registry_user_unhold(f->c, u);
        blks[0].removed = true;
        assert_int_equal(registry_device_changed(f->c, makedev(8, 32)), 1);
        assert_true(u->entry->dead);
        registry_release(f->c, u);
        close(b.fd);
}

/* A phy device with a read-only user and a w! user: two live entries on one
 * devnum, neither retiring the other, both checked on a change. */
static void test_block_device_ro_and_forced(void **state)
{
        struct fixture *f = *state;
        struct backing b = block_backing(makedev(8, 48), 60, true);
        struct registry_request ro = req_for(&b, "/dev/sdd", ACCESS_RO, "r");
        struct registry_request force = req_for(&b, "/dev/sdd", ACCESS_RW_FORCE, "w");
        struct registry_user *u1 = acquire_ok(f, &ro), *u2 = acquire_ok(f, &force);

        assert_ptr_not_equal(u1->entry, u2->entry);
        assert_false(u1->entry->dead);
        assert_false(u2->entry->dead);
        assert_non_null(registry_find_device(f->c, makedev(8, 48)));
        assert_int_equal(registry_device_changed(f->c, makedev(8, 48)), 0);

        /* Media change: both entries go. */
        registry_user_unhold(f->c, u1);
        registry_user_unhold(f->c, u2);
        blks[0].diskseq = 61;
        assert_int_equal(registry_device_changed(f->c, makedev(8, 48)), 1);
        assert_true(u1->entry->dead);
        assert_true(u2->entry->dead);
        assert_null(registry_find_device(f->c, makedev(8, 48)));

        /* Each dead entry goes with its own user. */
        registry_release(f->c, u1);
        assert_int_equal(registry_n_entries(f->c), 1);
        registry_release(f->c, u2);
        assert_int_equal(registry_n_entries(f->c), 0);
        close(b.fd);
}

/* A phy target that is one of our loop devices: both entries live. */
static void test_phy_names_a_loop_device(void **state)
{
        struct fixture *f = *state;
        struct backing file = file_backing(makedev(8, 1), 100, false);
        struct registry_request rf = req_for(&file, "/img", ACCESS_RO, "file disk");
        struct registry_user *uf = acquire_ok(f, &rf), *up;
        dev_t devnum = uf->entry->dev.devnum;
        struct backing phy = block_backing(devnum, uf->entry->dev.diskseq, false);
        struct registry_request rp = req_for(&phy, "/dev/loop0", ACCESS_RO, "phy disk");

        up = acquire_ok(f, &rp);
        assert_ptr_not_equal(up->entry, uf->entry);
        assert_false(uf->entry->dead);
        assert_ptr_equal(registry_find_device(f->c, devnum), uf->entry);   /* the loop entry first */

        /* A new loop device on that number retires the loop entry only. */
        registry_user_unhold(f->c, uf);
        fake_clear(uf->entry->dev.nr);
        struct backing other = file_backing(makedev(8, 1), 200, false);
        struct registry_request ro = req_for(&other, "/other", ACCESS_RO, "other disk");
        struct registry_user *uo = acquire_ok(f, &ro);
        assert_int_equal(uo->entry->dev.devnum, devnum);
        assert_true(uf->entry->dead);
        assert_false(up->entry->dead);
        assert_ptr_equal(registry_find_device(f->c, devnum), uo->entry);

        registry_release(f->c, uf);
        registry_release(f->c, up);
        assert_ptr_equal(registry_find_device(f->c, devnum), uo->entry);
        registry_release(f->c, uo);
        assert_null(registry_find_device(f->c, devnum));
        close(file.fd);
        close(phy.fd);
        close(other.fd);
}

static int count_cb(struct registry_entry *e, void *userdata)
{
        int *n = userdata;

        (*n)++;
        return *n == 2 ? 7 : 0;
}

static void test_foreach_includes_dead(void **state)
{
        struct fixture *f = *state;
        struct backing a = file_backing(makedev(8, 1), 100, false);
        struct backing b = file_backing(makedev(8, 1), 200, false);
        struct registry_request ra = req_for(&a, "/a", ACCESS_RO, "a");
        struct registry_request rb = req_for(&b, "/b", ACCESS_RO, "b");
        struct registry_user *ua = acquire_ok(f, &ra), *ub = acquire_ok(f, &rb);
        int n = 0;

        registry_user_unhold(f->c, ua);
        fake_clear(ua->entry->dev.nr);
        assert_int_equal(registry_device_changed(f->c, ua->entry->dev.devnum), 1);
        assert_int_equal(registry_foreach(f->c, count_cb, &n), 7);   /* stops at non-zero */
        assert_int_equal(n, 2);
        registry_release(f->c, ua);
        registry_release(f->c, ub);
        close(a.fd);
        close(b.fd);
}

/* Many entries: everything keeps working (and fast) with thousands. */
static void test_many_entries(void **state)
{
        enum { N = 10000 };
        struct fixture *f = *state;
        struct backing b = file_backing(makedev(8, 1), 1, false);
        struct registry_user **users = calloc(N, sizeof(*users));

        assert_non_null(users);
        for (int i = 0; i < N; i++) {
                b.st.st_ino = 1000 + i;
                fd_ident[b.fd].ino = b.st.st_ino;
                struct registry_request r = req_for(&b, "/many", ACCESS_RO, "d");
                users[i] = acquire_ok(f, &r);
                registry_user_unhold(f->c, users[i]);
        }
        assert_int_equal(registry_n_entries(f->c), N);
        for (int i = 0; i < N; i++)
                assert_ptr_equal(registry_find_device(f->c, users[i]->entry->dev.devnum), users[i]->entry);
        /* Release in an order unlike the insertion. */
        for (int i = 0; i < N; i += 2)
                registry_release(f->c, users[i]);
        for (int i = 1; i < N; i += 2)
                registry_release(f->c, users[i]);
        assert_int_equal(registry_n_entries(f->c), 0);
        free(users);
        close(b.fd);
}

/* registry_free() with users and held fds left frees and closes everything. */
static void test_free_with_users(void **state)
{
        struct fixture *f = *state;
        struct backing a = file_backing(makedev(8, 1), 100, true);
        struct registry_request r = req_for(&a, "/a", ACCESS_RW, "a");
        struct registry_request force = req_for(&a, "/a", ACCESS_RW_FORCE, "b");

        force.cfg.offset = 512;
        (void)acquire_ok(f, &r);
        (void)acquire_ok(f, &force);
        assert_int_equal(registry_n_entries(f->c), 2);
        close(a.fd);
        /* teardown frees the registry and counts fds */
}

/* ---- free-device hints: what the registry tells the engine ------------------------ */

static int hinted[256], n_hinted;

static int record_hint(int nr)
{
        assert_true(n_hinted < (int)(sizeof(hinted) / sizeof(hinted[0])));
        hinted[n_hinted++] = nr;
        return 0;
}

static struct registry_ops hint_rec_ops;

static int setup_hint_rec(void **state)
{
        n_hinted = 0;
        hint_rec_ops = fake_ops;
        hint_rec_ops.hint_free = record_hint;
        return setup_with_ops(state, &hint_rec_ops);
}

/* The daemon's own release, the kernel's clear (uevent), and a reuse that
 * finds the device cleared: each hints the loop device free, once. */
static void test_registry_hints_freed_devices(void **state)
{
        struct fixture *f = *state;
        struct backing a = file_backing(makedev(8, 1), 100, false);
        struct backing b = file_backing(makedev(8, 1), 200, false);
        struct registry_request ra = req_for(&a, "/a", ACCESS_RO, "a");
        struct registry_request rb = req_for(&b, "/b", ACCESS_RO, "b");
        struct registry_user *u1 = acquire_ok(f, &ra), *u2 = acquire_ok(f, &ra), *ub;
        int nr = u1->entry->dev.nr;

        /* Unheld (blkback has it) or a user left: not free. */
        registry_user_unhold(f->c, u1);
        registry_release(f->c, u1);
        assert_int_equal(n_hinted, 0);
        /* The last user released: free once blkback closes it. */
        registry_release(f->c, u2);
        assert_int_equal(n_hinted, 1);
        assert_int_equal(hinted[0], nr);

        /* The kernel cleared it (autoclear): the change event's check. */
        ub = acquire_ok(f, &rb);
        registry_user_unhold(f->c, ub);
        fake_clear(ub->entry->dev.nr);
        assert_int_equal(registry_device_changed(f->c, ub->entry->dev.devnum), 1);
        assert_int_equal(n_hinted, 2);
        assert_int_equal(hinted[1], ub->entry->dev.nr);
        /* Dead already: its release hints nothing more (the number may be
         * another entry's by now). */
        registry_release(f->c, ub);
        assert_int_equal(n_hinted, 2);

        /* A reuse finding the device cleared (no uevent seen). */
        u1 = acquire_ok(f, &ra);
        nr = u1->entry->dev.nr;
        registry_user_unhold(f->c, u1);
        fake_clear(nr);
        u2 = acquire_ok(f, &ra);
        assert_true(u1->entry->dead);
        assert_int_equal(n_hinted, 3);
        assert_int_equal(hinted[2], nr);
        registry_release(f->c, u1);
        assert_int_equal(n_hinted, 3);
        registry_release(f->c, u2);
        assert_int_equal(n_hinted, 4);
        close(a.fd);
        close(b.fd);
}

/* A block device served as it is is never the engine's to hint; nor does
 * registry_free() (the daemon exiting) hint anything. */
static void test_registry_hints_no_block_devices(void **state)
{
        struct fixture *f = *state;
        struct backing blk = block_backing(makedev(8, 16), 5, false);
        struct backing a = file_backing(makedev(8, 1), 100, false);
        struct registry_request rblk = req_for(&blk, "/dev/sdb", ACCESS_RO, "phy");
        struct registry_request ra = req_for(&a, "/a", ACCESS_RO, "a");
        struct registry_user *u = acquire_ok(f, &rblk);

        registry_user_unhold(f->c, u);
        blks[0].diskseq = 6;
        assert_int_equal(registry_device_changed(f->c, makedev(8, 16)), 1);
        registry_release(f->c, u);
        u = acquire_ok(f, &rblk);
        registry_release(f->c, u);
        assert_int_equal(n_hinted, 0);

        (void)acquire_ok(f, &ra);
        registry_free(f->c);
        f->c = NULL;
        assert_int_equal(n_hinted, 0);
        close(blk.fd);
        close(a.fd);
}

/* ---- free-device hints: the real engine on a fake kernel ----------------------- */

/* Devices 0..n_devs-1 exist (devs[], shared with the fake above, so that
 * the registry's reopen and inspect see what the engine bound). */
static bool dev_removed[MAX_DEVS];
static int take_error_nr = -1, take_error;
static struct {
        int open_control, get_free, add, take;
} kcalls;
static int takes[256], n_takes;

static int open_control_error;

static int kfake_open_control(void)
{
        kcalls.open_control++;
        if (open_control_error)
                return open_control_error;
        return fake_fd_for(-1);
}

/* LOOP_CTL_GET_FREE: the lowest unbound device, one more if there is none. */
static int kfake_get_free(int ctl)
{
        kcalls.get_free++;
        for (int nr = 0; nr < n_devs; nr++)
                if (!devs[nr].bound && !dev_removed[nr])
                        return nr;
        assert_true(n_devs < MAX_DEVS);
        return n_devs++;
}

static int kfake_add(int ctl)
{
        kcalls.add++;
        assert_true(n_devs < MAX_DEVS);
        return n_devs++;
}

/* open O_EXCL + LOOP_CONFIGURE: refused on a bound device, as the kernel
 * does; no node for a removed one. */
static int kfake_take(int nr, bool wait_node, int backing_fd, const struct stat *backing,
                      const struct loop_config *cfg, struct loop_device *ret)
{
        kcalls.take++;
        assert_true(n_takes < (int)(sizeof(takes) / sizeof(takes[0])));
        takes[n_takes++] = nr;
        assert_true(cfg->block_size != 0);
        if (nr >= n_devs)
                return -ENXIO;
        if (dev_removed[nr])
                return -ENOENT;
        if (nr == take_error_nr)
                return take_error;
        if (devs[nr].bound)
                return -EBUSY;
        devs[nr] = (struct fake_dev){
                .bound = true,
                .bdev = backing->st_dev,
                .bino = backing->st_ino,
                .diskseq = ++seq_counter,
        };
        fill_dev(nr, fake_fd_for(nr), ret);
        return 0;
}

static const struct loop_bind_ops kfake_ops = {
        .open_control = kfake_open_control,
        .get_free = kfake_get_free,
        .add = kfake_add,
        .take = kfake_take,
};

/* The registry on the real engine (loop_bind, loop_hint_free). */
static const struct registry_ops engine_ops = {
        .bind = loop_bind,
        .reopen = fake_reopen,
        .inspect = fake_inspect,
        .blockdev_inspect = fake_blockdev_inspect,
        .diskseq_by_devnum = fake_diskseq_by_devnum,
        .hint_free = loop_hint_free,
};

/* Another process binds (losetup) or clears a device of its own. */
static void other_binds(int nr)
{
        while (n_devs <= nr)
                n_devs++;
        devs[nr] = (struct fake_dev){ .bound = true, .bdev = makedev(9, 9), .bino = 999,
                                      .diskseq = ++seq_counter };
}

static int setup_engine(void **state)
{
        memset(dev_removed, 0, sizeof(dev_removed));
        memset(&kcalls, 0, sizeof(kcalls));
        n_takes = 0;
        take_error_nr = -1;
        open_control_error = 0;
        loop_hints_clear();
        loop_set_bind_ops(&kfake_ops);
        return setup_with_ops(state, &engine_ops);
}

static int teardown_engine(void **state)
{
        loop_set_bind_ops(NULL);
        loop_hints_clear();
        return teardown(state);
}

/* A regular file the engine accepts (it checks the backing fd itself). */
static struct backing memfd_backing(void)
{
        struct backing b = { .fd = memfd_create("img", MFD_CLOEXEC), .writable = true };

        assert_true(b.fd >= 0 && b.fd < MAX_FDS);
        assert_int_equal(fstat(b.fd, &b.st), 0);
        fd_ident[b.fd].dev = b.st.st_dev;
        fd_ident[b.fd].ino = b.st.st_ino;
        return b;
}

/* Released by the daemon and cleared by the kernel: the next attach takes it
 * back from the hint, without LOOP_CTL_GET_FREE (nor even opening
 * /dev/loop-control), even where GET_FREE would name another device. */
static void test_hint_reuses_freed_device(void **state)
{
        struct fixture *f = *state;
        struct backing a = memfd_backing(), b = memfd_backing(), c = memfd_backing();
        struct registry_request ra = req_for(&a, "/a", ACCESS_RW, "a");
        struct registry_request rb = req_for(&b, "/b", ACCESS_RW, "b");
        struct registry_request rc = req_for(&c, "/c", ACCESS_RW, "c");
        struct registry_user *ua, *ub, *uc;
        int h[LOOP_HINTS_MAX], nr_b;

        other_binds(0);                       /* another process's device */
        ua = acquire_ok(f, &ra);
        ub = acquire_ok(f, &rb);
        nr_b = ub->entry->dev.nr;
        assert_int_equal(ua->entry->dev.nr, 1);
        assert_int_equal(nr_b, 2);
        assert_int_equal(kcalls.get_free, 2);
        assert_int_equal(loop_hints_get(h, 0), 0);

        registry_user_unhold(f->c, ub);
        registry_release(f->c, ub);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);
        assert_int_equal(h[0], nr_b);
        fake_clear(nr_b);                     /* blkback closed: autoclear */
        fake_clear(0);                        /* the other process let go too */

        n_takes = 0;
        uc = acquire_ok(f, &rc);
        assert_int_equal(uc->entry->dev.nr, nr_b);    /* GET_FREE would say 0 */
        assert_int_equal(kcalls.get_free, 2);
        assert_int_equal(kcalls.open_control, 2);
        assert_int_equal(n_takes, 1);
        assert_int_equal(loop_hints_get(h, 0), 0);
        assert_true(devs[nr_b].bound);
        assert_int_equal(devs[nr_b].bino, c.st.st_ino);
        assert_int_equal(uc->entry->dev.diskseq, devs[nr_b].diskseq);

        /* Without a hint: GET_FREE again. */
        ub = acquire_ok(f, &rb);
        assert_int_equal(ub->entry->dev.nr, 0);
        assert_int_equal(kcalls.get_free, 3);

        registry_release(f->c, ua);
        registry_release(f->c, ub);
        registry_release(f->c, uc);
        assert_int_equal(loop_hints_get(h, 0), 3);
        close(a.fd);
        close(b.fd);
        close(c.fd);
}

/* The hinted device was bound by another process between our release and
 * the reuse: the kernel refuses it (EBUSY), the hint is dropped, GET_FREE
 * finds another, and the other process's device is left as it is. */
static void test_hint_busy_falls_back_to_get_free(void **state)
{
        struct fixture *f = *state;
        struct backing a = memfd_backing(), b = memfd_backing();
        struct registry_request ra = req_for(&a, "/a", ACCESS_RW, "a");
        struct registry_request rb = req_for(&b, "/b", ACCESS_RW, "b");
        struct registry_user *ua = acquire_ok(f, &ra), *ub;
        int h[LOOP_HINTS_MAX], nr = ua->entry->dev.nr;
        uint64_t theirs;

        registry_user_unhold(f->c, ua);
        registry_release(f->c, ua);
        fake_clear(nr);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);
        other_binds(nr);                      /* losetup got it first */
        theirs = devs[nr].diskseq;

        n_takes = 0;
        ub = acquire_ok(f, &rb);
        assert_int_not_equal(ub->entry->dev.nr, nr);
        assert_int_equal(kcalls.get_free, 2);
        assert_int_equal(n_takes, 2);
        assert_int_equal(takes[0], nr);       /* the hint first, refused */
        assert_int_equal(takes[1], ub->entry->dev.nr);
        assert_int_equal(loop_hints_get(h, 0), 0);  /* and dropped */
        assert_int_equal(devs[nr].bino, 999);
        assert_int_equal(devs[nr].diskseq, theirs);

        registry_release(f->c, ub);
        close(a.fd);
        close(b.fd);
}

/* Hints of devices that are gone (ENXIO: removed; ENOENT: no node) are
 * dropped one after the other until one is free; a hint failing otherwise
 * is dropped and GET_FREE's device answers. */
static void test_hint_gone_dropped(void **state)
{
        struct backing a = memfd_backing();
        struct loop_config cfg = { 0 };
        struct loop_device d;
        int h[LOOP_HINTS_MAX];

        n_devs = 6;
        dev_removed[3] = true;
        other_binds(4);
        assert_int_equal(loop_hint_free(40), 0);      /* removed: ENXIO */
        assert_int_equal(loop_hint_free(3), 0);       /* no node: ENOENT */
        assert_int_equal(loop_hint_free(4), 0);       /* bound: EBUSY */
        assert_int_equal(loop_hint_free(5), 0);       /* free */
        assert_int_equal(loop_hint_free(1), 0);
        assert_int_equal(loop_bind(a.fd, &cfg, &d), 0);
        assert_int_equal(d.nr, 5);
        assert_int_equal(kcalls.get_free, 0);
        assert_int_equal(n_takes, 4);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);
        assert_int_equal(h[0], 1);
        close(d.fd);

        /* Another failure than "not free": GET_FREE's device is tried. */
        take_error_nr = 1;
        take_error = -EIO;
        n_takes = 0;
        assert_int_equal(loop_bind(a.fd, &cfg, &d), 0);
        assert_int_equal(n_takes, 2);
        assert_int_equal(takes[0], 1);
        assert_int_equal(d.nr, 0);
        assert_int_equal(kcalls.get_free, 1);
        assert_int_equal(loop_hints_get(h, 0), 0);
        close(d.fd);
        close(a.fd);
}

/* At most LOOP_HINTS_MAX hints, the newest; a repeat is not a second hint;
 * and one attach tries only a few stale hints before asking GET_FREE. */
static void test_hint_set_bounded(void **state)
{
        struct fixture *f = *state;
        struct backing a = memfd_backing();
        struct registry_request ra = req_for(&a, "/a", ACCESS_RO, "a");
        struct registry_user *users[100], *u;
        int h[LOOP_HINTS_MAX + 8];
        size_t n;

        assert_int_equal(loop_hint_free(-1), -EINVAL);
        for (int nr = 0; nr < 200; nr++)
                assert_int_equal(loop_hint_free(nr), 0);
        n = loop_hints_get(h, sizeof(h) / sizeof(h[0]));
        assert_int_equal(n, LOOP_HINTS_MAX);
        for (int i = 0; i < LOOP_HINTS_MAX; i++)
                assert_int_equal(h[i], 200 - LOOP_HINTS_MAX + i);
        /* Hinted again: moves to the newest place, no duplicate. */
        assert_int_equal(loop_hint_free(200 - LOOP_HINTS_MAX), 0);
        n = loop_hints_get(h, sizeof(h) / sizeof(h[0]));
        assert_int_equal(n, LOOP_HINTS_MAX);
        assert_int_equal(h[0], 200 - LOOP_HINTS_MAX + 1);
        assert_int_equal(h[LOOP_HINTS_MAX - 1], 200 - LOOP_HINTS_MAX);
        loop_hints_clear();
        assert_int_equal(loop_hints_get(h, 0), 0);

        /* Through the registry: 100 devices released, the last 64 hinted. */
        for (int i = 0; i < 100; i++) {
                ra.cfg.offset = (uint64_t)i * 4096;  /* one device each */
                users[i] = acquire_ok(f, &ra);
                registry_user_unhold(f->c, users[i]);
        }
        assert_int_equal(kcalls.get_free, 100);
        for (int i = 0; i < 100; i++)
                registry_release(f->c, users[i]);
        n = loop_hints_get(h, sizeof(h) / sizeof(h[0]));
        assert_int_equal(n, LOOP_HINTS_MAX);
        assert_int_equal(h[0], 100 - LOOP_HINTS_MAX);

        /* None cleared yet (blkback still has them all): the attach gives up
         * on hints after a few and walks once. */
        n_takes = 0;
        ra.cfg.offset = 0;
        u = acquire_ok(f, &ra);
        assert_int_equal(kcalls.get_free, 101);
        assert_true(n_takes > 1 && n_takes < LOOP_HINTS_MAX / 2);
        assert_int_equal(loop_hints_get(h, 0), LOOP_HINTS_MAX - (n_takes - 1));
        assert_int_equal(u->entry->dev.nr, 100);

        /* Cleared now: the oldest remaining hint is taken. */
        for (int nr = 0; nr < 100; nr++)
                fake_clear(nr);
        n = loop_hints_get(h, sizeof(h) / sizeof(h[0]));
        ra.cfg.offset = 4096;
        struct registry_user *u2 = acquire_ok(f, &ra);
        assert_int_equal(u2->entry->dev.nr, h[0]);
        assert_int_equal(kcalls.get_free, 101);

        registry_release(f->c, u);
        registry_release(f->c, u2);
        close(a.fd);
}

/* A spare is wanted only once devices are set up and no hint is left; it
 * is prepared by GET_FREE (which creates a device when none is free) and
 * taken by the next attach without a walk.  A failed preparation is not
 * retried before the next attach. */
static void test_spare(void **state)
{
        struct fixture *f = *state;
        struct backing a = memfd_backing(), b = memfd_backing(), c = memfd_backing();
        struct registry_request ra = req_for(&a, "/a", ACCESS_RW, "a");
        struct registry_request rb = req_for(&b, "/b", ACCESS_RW, "b");
        struct registry_request rc = req_for(&c, "/c", ACCESS_RW, "c");
        struct registry_user *ua, *ub, *uc;
        int h[LOOP_HINTS_MAX];

        /* Nothing set up yet: no spare, no kernel call. */
        assert_false(loop_spare_wanted());
        assert_int_equal(loop_prepare_spare(), 0);
        assert_int_equal(kcalls.open_control, 0);

        ua = acquire_ok(f, &ra);
        assert_int_equal(ua->entry->dev.nr, 0);
        assert_true(loop_spare_wanted());
        assert_int_equal(loop_prepare_spare(), 1);
        assert_int_equal(kcalls.get_free, 2);
        assert_int_equal(n_devs, 2);                  /* created by GET_FREE */
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);
        assert_int_equal(h[0], 1);
        assert_false(loop_spare_wanted());
        assert_int_equal(loop_prepare_spare(), 0);    /* one is enough */

        /* The next attach takes the spare: no walk. */
        ub = acquire_ok(f, &rb);
        assert_int_equal(ub->entry->dev.nr, 1);
        assert_int_equal(kcalls.get_free, 2);
        assert_true(loop_spare_wanted());

        /* Another process takes the spare first: refused, GET_FREE. */
        assert_int_equal(loop_prepare_spare(), 1);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);
        other_binds(h[0]);
        uc = acquire_ok(f, &rc);
        assert_int_not_equal(uc->entry->dev.nr, h[0]);
        assert_true(devs[h[0]].bound && devs[h[0]].bino == 999);
        registry_release(f->c, uc);

        /* A failing preparation: not wanted again before the next attach. */
        loop_hints_clear();
        uc = acquire_ok(f, &rc);
        assert_true(loop_spare_wanted());
        open_control_error = -EACCES;
        assert_int_equal(loop_prepare_spare(), -EACCES);
        assert_false(loop_spare_wanted());
        open_control_error = 0;

        registry_release(f->c, ua);
        registry_release(f->c, ub);
        registry_release(f->c, uc);
        close(a.fd);
        close(b.fd);
        close(c.fd);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_key_defaults),
                cmocka_unit_test(test_key_block_device),
                cmocka_unit_test(test_key_equality_and_hash),
                cmocka_unit_test(test_access_names),
                cmocka_unit_test_setup_teardown(test_ro_users_share_one_device, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rw_refused_while_ro_user, setup, teardown),
                cmocka_unit_test_setup_teardown(test_ro_refused_while_rw_user, setup, teardown),
                cmocka_unit_test_setup_teardown(test_related_users_share, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_holder_ignored, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sharing_is_per_file_not_per_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_force_bypasses_and_counts_as_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rw_needs_writable_backing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
                cmocka_unit_test_setup_teardown(test_attach_failure_leaves_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hold_unhold_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reuse_held_entry_is_verified, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_entry_replaced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reopen_error_is_not_stale, setup, teardown),
                cmocka_unit_test_setup_teardown(test_device_changed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_devnum_reuse_marks_old_dead, setup, teardown),
                cmocka_unit_test_setup_teardown(test_block_device_entries, setup, teardown),
                cmocka_unit_test_setup_teardown(test_block_device_removed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_block_device_ro_and_forced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_phy_names_a_loop_device, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreach_includes_dead, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_entries, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_with_users, setup, teardown),
                cmocka_unit_test_setup_teardown(test_registry_hints_freed_devices, setup_hint_rec, teardown),
                cmocka_unit_test_setup_teardown(test_registry_hints_no_block_devices, setup_hint_rec, teardown),
                cmocka_unit_test_setup_teardown(test_hint_reuses_freed_device, setup_engine, teardown_engine),
                cmocka_unit_test_setup_teardown(test_hint_busy_falls_back_to_get_free, setup_engine, teardown_engine),
                cmocka_unit_test_setup_teardown(test_hint_gone_dropped, setup_engine, teardown_engine),
                cmocka_unit_test_setup_teardown(test_hint_set_bounded, setup_engine, teardown_engine),
                cmocka_unit_test_setup_teardown(test_spare, setup_engine, teardown_engine),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
