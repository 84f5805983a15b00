/* Integration tests of the registry on real loop devices (root): sharing,
 * exclusion, w!, the holding rule with a stand-in for blkback, autoclear and
 * stale entries, the kernel's change uevents, and phy block devices. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libudev.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "registry.h"
#include "time-util.h"
#include "loop-test.h"
#include "loop.h"
#include "outside.h"

#define MiB (1024ull * 1024ull)

static struct lt_images T;

struct fixture {
        struct registry *c;
        struct backing ro, rw;       /* the image, opened both ways */
        char err[256];
};

static int group_setup(void **state)
{
        return lt_images_make(&T, 4 * MiB, 1 * MiB);
}

static int group_teardown(void **state)
{
        return lt_images_remove(&T);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        if (!f || lt_count_bound(T.prefix) != 0)
                goto fail;
        loop_hints_clear();
        if (registry_new(&f->c) < 0)
                goto fail;
        if (backing_open(T.img, false, false, &f->ro) < 0 || backing_open(T.img, true, false, &f->rw) < 0)
                goto fail;
        *state = f;
        return 0;
fail:
        fprintf(stderr, "setup failed\n");
        if (f) {
                registry_free(f->c);
                backing_close(&f->ro);
                backing_close(&f->rw);
                free(f);
        }
        return -1;
}

/* Freeing the registry closes what it holds: with every user's blkback gone as
 * well, autoclear must leave nothing bound to the test's files. */
static int teardown(void **state)
{
        struct fixture *f = *state;
        int left;

        registry_free(f->c);
        backing_close(&f->ro);
        backing_close(&f->rw);
        free(f);
        loop_hints_clear();
        left = lt_cleanup(T.prefix);
        if (left) {
                fprintf(stderr, "%d loop device(s) left bound\n", left);
                return -1;
        }
        return 0;
}

static struct registry_request req(struct backing *b, enum access a, const char *name)
{
        return (struct registry_request){
                .backing = b, .path = T.img, .access = a, .name = name,
                .domid = UINT32_MAX, .devid = UINT32_MAX,
        };
}

static struct registry_user *acquire(struct fixture *f, const struct registry_request *r)
{
        struct registry_user *u = NULL;
        int ret = registry_acquire(f->c, r, &u, f->err, sizeof(f->err));

        if (ret < 0)
                fail_msg("registry_acquire: %s: %s", strerror(-ret), f->err);
        return u;
}

static int refused(struct fixture *f, const struct registry_request *r)
{
        struct registry_user *u = NULL;
        int ret = registry_acquire(f->c, r, &u, f->err, sizeof(f->err));

        assert_true(ret < 0);
        assert_null(u);
        return ret;
}

static void test_ro_users_share_one_device(void **state)
{
        struct fixture *f = *state;
        struct backing other;
        struct registry_request r1 = req(&f->ro, ACCESS_RO, "domain 1 disk 51712");
        struct registry_request r2;
        struct registry_user *u1, *u2;

        /* Two opens of the image (two disks): one file, one device. */
        assert_int_equal(backing_open(T.img, false, false, &other), 0);
        r2 = req(&other, ACCESS_RO, "domain 2 disk 51712");
        u1 = acquire(f, &r1);
        u2 = acquire(f, &r2);
        assert_ptr_equal(u1->entry, u2->entry);
        assert_int_equal(lt_count_bound(T.prefix), 1);
        assert_true(u1->entry->dev.fd >= 0);
        assert_int_equal(u1->entry->dev.nr, minor(u1->entry->dev.devnum));
        assert_true(lt_is_bound(u1->entry->dev.nr));
        assert_ptr_equal(registry_find_device(f->c, u1->entry->dev.devnum), u1->entry);

        registry_release(f->c, u1);
        assert_int_equal(lt_count_bound(T.prefix), 1);
        registry_release(f->c, u2);
        assert_int_equal(registry_n_entries(f->c), 0);
        /* Released with nobody else holding it: autoclear removed it. */
        assert_int_equal(lt_cleanup(T.prefix), 0);
        assert_int_equal(lt_count_bound(T.prefix), 0);
        backing_close(&other);
}

static void test_rw_exclusion(void **state)
{
        struct fixture *f = *state;
        struct registry_request rw = req(&f->rw, ACCESS_RW, "domain 3 disk 51712");
        struct registry_request ro = req(&f->ro, ACCESS_RO, "domain 4 disk 51712");
        struct registry_user *u;
        char want[512];

        u = acquire(f, &rw);
        assert_int_equal(refused(f, &ro), -EBUSY);
        snprintf(want, sizeof(want), "%s is in use read-write by domain 3 disk 51712", T.img);
        assert_string_equal(f->err, want);
        assert_int_equal(refused(f, &rw), -EBUSY);
        assert_int_equal(lt_count_bound(T.prefix), 1);
        registry_release(f->c, u);

        u = acquire(f, &ro);
        assert_int_equal(refused(f, &rw), -EBUSY);
        snprintf(want, sizeof(want), "%s is in use read-only by domain 4 disk 51712", T.img);
        assert_string_equal(f->err, want);
        assert_int_equal(lt_count_bound(T.prefix), 1);
        registry_release(f->c, u);
}

static void test_force_bypasses_check(void **state)
{
        struct fixture *f = *state;
        struct registry_request ro = req(&f->ro, ACCESS_RO, "domain 5 disk 51712");
        struct registry_request force = req(&f->rw, ACCESS_RW_FORCE, "domain 6 disk 51712");
        struct registry_user *u1 = acquire(f, &ro), *u2 = acquire(f, &force);
        char buf[512] = "forced write";
        int fd;

        assert_ptr_not_equal(u1->entry, u2->entry);
        assert_int_equal(lt_count_bound(T.prefix), 2);
        /* The forced user's device is writable, the other one is not. */
        assert_int_equal(pwrite(u2->entry->dev.fd, buf, sizeof(buf), 0), 512);
        assert_int_equal(fsync(u2->entry->dev.fd), 0);
        fd = open(u1->entry->dev.node, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                assert_true(pwrite(fd, buf, sizeof(buf), 0) < 0);
                close(fd);
        }
        registry_release(f->c, u1);
        registry_release(f->c, u2);
}

/* The holding rule with a stand-in for blkback: the registry's fd goes once
 * blkback has the device, the device goes with blkback's close, and the
 * kernel's word (change uevent, diskseq) retires the entry. */
static void test_hold_unhold_and_autoclear(void **state)
{
        struct fixture *f = *state;
        struct registry_request r1 = req(&f->ro, ACCESS_RO, "domain 7 disk 51712");
        struct registry_request r2 = req(&f->ro, ACCESS_RO, "domain 8 disk 51712");
        struct registry_user *u1 = acquire(f, &r1), *u2, *u3;
        struct registry_entry *e = u1->entry;
        struct loop_device dev = e->dev;
        int blkback;

        blkback = open(e->dev.node, O_RDONLY | O_CLOEXEC);
        assert_true(blkback >= 0);
        registry_user_unhold(f->c, u1);
        assert_int_equal(e->dev.fd, -1);
        assert_true(lt_is_bound(dev.nr));
        assert_int_equal(registry_device_changed(f->c, dev.devnum), 0);   /* still fine */

        /* A second user gets the same device back, verified. */
        u2 = acquire(f, &r2);
        assert_ptr_equal(u2->entry, e);
        assert_true(e->dev.fd >= 0);
        assert_int_equal(e->dev.diskseq, dev.diskseq);
        registry_user_unhold(f->c, u2);
        assert_int_equal(e->dev.fd, -1);

        /* Last real opener gone: autoclear; the change event retires it. */
        close(blkback);
        assert_true(lt_wait_released(dev.nr, dev.diskseq));
        assert_int_equal(registry_device_changed(f->c, dev.devnum), 1);
        assert_true(e->dead);
        assert_null(registry_find_device(f->c, dev.devnum));

        /* The next user gets a fresh device. */
        u3 = acquire(f, &r2);
        assert_ptr_not_equal(u3->entry, e);
        assert_true(u3->entry->dev.diskseq != dev.diskseq);
        assert_true(lt_is_bound(u3->entry->dev.nr));
        assert_int_equal(registry_n_entries(f->c), 2);

        registry_release(f->c, u1);
        registry_release(f->c, u2);
        assert_int_equal(registry_n_entries(f->c), 1);
        registry_release(f->c, u3);
        assert_int_equal(registry_n_entries(f->c), 0);
}

/* Without any uevent: the reuse itself finds the device gone. */
static void test_stale_found_on_reuse(void **state)
{
        struct fixture *f = *state;
        struct registry_request r = req(&f->ro, ACCESS_RO, "domain 9 disk 51712");
        struct registry_user *u1 = acquire(f, &r), *u2;
        struct registry_entry *old = u1->entry;
        struct loop_device dev = old->dev;

        /* Unheld with no blkback: the device goes at once. */
        registry_user_unhold(f->c, u1);
        assert_true(lt_wait_released(dev.nr, dev.diskseq));

        u2 = acquire(f, &r);
        assert_true(old->dead);
        assert_ptr_not_equal(u2->entry, old);
        assert_true(u2->entry->dev.fd >= 0);
        assert_true(lt_is_bound(u2->entry->dev.nr));
        assert_ptr_equal(registry_find_device(f->c, u2->entry->dev.devnum), u2->entry);
        registry_release(f->c, u1);
        registry_release(f->c, u2);
}

/* Waits up to 10 s for a "change" uevent of devnum on the kernel netlink
 * source.  The deadline is overall: other loop activity on the host keeps
 * the socket busy, so silence alone would never end the wait. */
static bool wait_change(struct udev_monitor *mon, dev_t devnum)
{
        struct pollfd p = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };
        uint64_t deadline = now_usec() + 10 * USEC_PER_SEC;

        while (now_usec() < deadline && poll(&p, 1, 1000) >= 0) {
                struct udev_device *d = (p.revents & POLLIN) ? udev_monitor_receive_device(mon) : NULL;
                bool match;

                if (!d)
                        continue;
                match = udev_device_get_devnum(d) == devnum &&
                        strcmp(udev_device_get_action(d) ?: "", "change") == 0;
                udev_device_unref(d);
                if (match)
                        return true;
        }
        return false;
}

/* Reads what is queued now (for at most a second: the host may be busy). */
static void drain(struct udev_monitor *mon)
{
        struct pollfd p = { .fd = udev_monitor_get_fd(mon), .events = POLLIN };
        uint64_t deadline = now_usec() + USEC_PER_SEC;

        while (now_usec() < deadline && poll(&p, 1, 200) > 0) {
                struct udev_device *d = udev_monitor_receive_device(mon);
                if (d)
                        udev_device_unref(d);
        }
}

/* The kernel announces the clear on its netlink socket (no udevd needed). */
static void test_uevent_on_autoclear(void **state)
{
        struct fixture *f = *state;
        struct registry_request r = req(&f->ro, ACCESS_RO, "domain 10 disk 51712");
        struct udev *udev = udev_new();
        struct udev_monitor *mon;
        struct registry_user *u;
        struct loop_device dev;
        int blkback;

        assert_non_null(udev);
        mon = udev_monitor_new_from_netlink(udev, "kernel");
        assert_non_null(mon);
        assert_int_equal(udev_monitor_filter_add_match_subsystem_devtype(mon, "block", "disk"), 0);
        assert_int_equal(udev_monitor_enable_receiving(mon), 0);

        u = acquire(f, &r);
        dev = u->entry->dev;
        blkback = open(dev.node, O_RDONLY | O_CLOEXEC);
        assert_true(blkback >= 0);
        registry_user_unhold(f->c, u);
        /* Events of the configuration itself change nothing. */
        drain(mon);
        assert_int_equal(registry_device_changed(f->c, dev.devnum), 0);

        close(blkback);
        assert_true(wait_change(mon, dev.devnum));
        assert_true(lt_wait_released(dev.nr, dev.diskseq));
        assert_int_equal(registry_device_changed(f->c, dev.devnum), 1);
        assert_true(u->entry->dead);

        registry_release(f->c, u);
        udev_monitor_unref(mon);
        udev_unref(udev);
}

/* A phy target is served as it is: no loop device, same sharing rule. */
/* The registry of bound loop devices agrees with the walk over
 * /sys/block: a device bound to the image is found once updated, read-only
 * ones do not count for rw_only, a cleared one is forgotten. */
static void test_outside_registry(void **state)
{
        struct fixture *f = *state;
        struct outside_loops *o = NULL;
        struct loop_config cfg = { .read_only = true };
        struct loop_device d;
        char name[32], node[64];

        assert_int_equal(outside_loops_new(&o), 0);
        assert_int_equal(outside_loops_scan(o), 0);
        assert_int_equal(outside_loops_find(o, f->rw.st.st_dev, f->rw.st.st_ino, 0, false, NULL, NULL, node,
                                            sizeof(node)), 0);
        assert_int_equal(loop_bind(f->ro.fd, &cfg, &d), 0);
        snprintf(name, sizeof(name), "loop%d", d.nr);
        outside_loops_update(o, name, d.devnum);
        assert_int_equal(outside_loops_find(o, f->rw.st.st_dev, f->rw.st.st_ino, 0, false, NULL, NULL, node,
                                            sizeof(node)), 1);
        assert_string_equal(node, d.node);
        assert_int_equal(outside_loop_users(f->rw.st.st_dev, f->rw.st.st_ino, 0, false, NULL, NULL, node,
                                            sizeof(node)), 1);
        /* Bound read-only: no writer. */
        assert_int_equal(outside_loops_find(o, f->rw.st.st_dev, f->rw.st.st_ino, 0, true, NULL, NULL, node,
                                            sizeof(node)), 0);
        /* The device the disk names itself is not another user. */
        assert_int_equal(outside_loops_find(o, f->rw.st.st_dev, f->rw.st.st_ino, d.devnum, false, NULL, NULL,
                                            node, sizeof(node)), 0);
        close(d.fd);
        assert_true(lt_wait_released(d.nr, d.diskseq));
        outside_loops_update(o, name, d.devnum);
        assert_int_equal(outside_loops_find(o, f->rw.st.st_dev, f->rw.st.st_ino, 0, false, NULL, NULL, node,
                                            sizeof(node)), 0);
        outside_loops_free(o);
}

static void test_block_device_served_directly(void **state)
{
        struct fixture *f = *state;
        struct loop_config cfg = { 0 };
        struct loop_device phy;
        struct backing b1, b2, bw;
        struct registry_user *u1, *u2;
        struct registry_request r1, r2, rw;

        assert_int_equal(loop_bind(f->rw.fd, &cfg, &phy), 0);
        assert_int_equal(backing_open(phy.node, false, false, &b1), 0);
        assert_int_equal(backing_open(phy.node, false, false, &b2), 0);
        assert_int_equal(backing_open(phy.node, true, false, &bw), 0);
        assert_true(b1.is_block);
        r1 = req(&b1, ACCESS_RO, "domain 11 disk 51712");
        r2 = req(&b2, ACCESS_RO, "domain 12 disk 51712");
        rw = req(&bw, ACCESS_RW, "domain 13 disk 51712");
        r1.path = r2.path = rw.path = phy.node;

        u1 = acquire(f, &r1);
        u2 = acquire(f, &r2);
        assert_ptr_equal(u1->entry, u2->entry);
        assert_int_equal(u1->entry->dev.nr, -1);
        assert_int_equal(u1->entry->dev.devnum, phy.devnum);
        assert_int_equal(u1->entry->dev.diskseq, phy.diskseq);
        assert_true(u1->entry->dev.fd >= 0 && u1->entry->dev.fd != b1.fd);
        assert_int_equal(lt_count_bound(T.prefix), 1);   /* no loop on the loop */
        assert_int_equal(refused(f, &rw), -EBUSY);

        registry_user_unhold(f->c, u1);
        registry_user_unhold(f->c, u2);
        assert_int_equal(registry_device_changed(f->c, phy.devnum), 0);
        registry_release(f->c, u1);
        registry_release(f->c, u2);
        /* Whoever set it up holds it exclusively: in use outside the registry. */
        assert_int_equal(refused(f, &rw), -EBUSY);
        assert_non_null(strstr(f->err, "in use outside xen-loopd"));
        close(phy.fd);
        u1 = acquire(f, &rw);
        registry_release(f->c, u1);

        backing_close(&b1);
        backing_close(&b2);
        backing_close(&bw);
        assert_true(lt_wait_released(phy.nr, phy.diskseq));
}

/* Freeing the registry with users still there closes its fds: autoclear. */
static void test_free_closes_devices(void **state)
{
        struct fixture *f = *state;
        struct registry_request r = req(&f->ro, ACCESS_RO, "domain 14 disk 51712");
        struct registry_request w = req(&f->rw, ACCESS_RW_FORCE, "domain 15 disk 51712");

        w.cfg.offset = 1 * MiB;
        (void)acquire(f, &r);
        (void)acquire(f, &w);
        assert_int_equal(lt_count_bound(T.prefix), 2);
        registry_free(f->c);
        f->c = NULL;
        for (int i = 0; i < 500 && lt_count_bound(T.prefix) > 0; i++)
                usleep(10 * 1000);
        assert_int_equal(lt_count_bound(T.prefix), 0);
}

/* The registry hints the device it let go of; the next disk gets it back. */
static void test_released_device_reused(void **state)
{
        struct fixture *f = *state;
        struct registry_request r = req(&f->ro, ACCESS_RO, "domain 16 disk 51712");
        struct registry_request w = req(&f->rw, ACCESS_RW, "domain 17 disk 51712");
        struct registry_user *u = acquire(f, &r);
        struct loop_device dev = u->entry->dev;
        int h[LOOP_HINTS_MAX];

        /* Released while held (blkback never came): autoclear at once. */
        registry_release(f->c, u);
        assert_true(lt_wait_released(dev.nr, dev.diskseq));
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);
        assert_int_equal(h[0], dev.nr);

        u = acquire(f, &w);
        assert_int_equal(u->entry->dev.nr, dev.nr);
        assert_true(u->entry->dev.diskseq != dev.diskseq);
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 0);
        registry_release(f->c, u);
}

/* Between the release and the next attach another process (losetup, the
 * stock script) binds the hinted device: the registry gets another device and
 * the other process's stays as it made it. */
static void test_released_device_taken_by_another_process(void **state)
{
        struct fixture *f = *state;
        struct registry_request r = req(&f->ro, ACCESS_RO, "domain 18 disk 51712");
        struct registry_request w = req(&f->rw, ACCESS_RW, "domain 19 disk 51712");
        struct registry_user *u = acquire(f, &r);
        struct loop_device dev = u->entry->dev;
        int h[LOOP_HINTS_MAX], rc;
        char path[4096];
        uint64_t theirs;

        registry_release(f->c, u);
        assert_true(lt_wait_released(dev.nr, dev.diskseq));
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 1);

        rc = lt_losetup(dev.node, T.img2);
        if (rc == 127)
                skip();   /* no losetup here */
        assert_int_equal(rc, 0);
        assert_true(lt_is_bound(dev.nr));
        assert_true(lt_sysfs_read(dev.nr, true, "diskseq", path, sizeof(path)) > 0);
        theirs = strtoull(path, NULL, 10);

        u = acquire(f, &w);
        assert_int_not_equal(u->entry->dev.nr, dev.nr);
        assert_true(lt_is_bound(u->entry->dev.nr));
        assert_int_equal(loop_hints_get(h, LOOP_HINTS_MAX), 0);
        assert_true(lt_sysfs_read(dev.nr, false, "backing_file", path, sizeof(path)) > 0);
        assert_string_equal(path, T.img2);
        assert_true(lt_sysfs_read(dev.nr, true, "diskseq", path, sizeof(path)) > 0);
        assert_int_equal(strtoull(path, NULL, 10), theirs);
        registry_release(f->c, u);

        assert_int_equal(lt_losetup("-d", dev.node), 0);
        assert_true(lt_wait_released(dev.nr, theirs));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_ro_users_share_one_device, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rw_exclusion, setup, teardown),
                cmocka_unit_test_setup_teardown(test_force_bypasses_check, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hold_unhold_and_autoclear, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_found_on_reuse, setup, teardown),
                cmocka_unit_test_setup_teardown(test_uevent_on_autoclear, setup, teardown),
                cmocka_unit_test_setup_teardown(test_block_device_served_directly, setup, teardown),
                cmocka_unit_test_setup_teardown(test_outside_registry, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_closes_devices, setup, teardown),
                cmocka_unit_test_setup_teardown(test_released_device_reused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_released_device_taken_by_another_process, setup, teardown),
        };

        lt_require_root("test-loop-registry");
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
