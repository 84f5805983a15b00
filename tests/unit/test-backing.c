/* Unit tests for backing_open(), backing_from_fd() and
 * backing_open_bounded(): what is accepted as a disk's backing file, and
 * that nothing else is opened or left open.  Runs without root (no block
 * device needed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backing.h"

static char dir[] = "/tmp/xen-loopd-backing-XXXXXX";
static char img[128], fifo[128], sub[128], link_[128], sock[96];

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        if (!d)
                return -1;
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

static int group_setup(void **state)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd, s;

        if (!mkdtemp(dir))
                return -1;
        snprintf(img, sizeof(img), "%s/img", dir);
        snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
        snprintf(sub, sizeof(sub), "%s/dir", dir);
        snprintf(link_, sizeof(link_), "%s/link", dir);
        snprintf(sock, sizeof(sock), "%s/sock", dir);
        fd = open(img, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
                return -1;
        close(fd);
        if (mkfifo(fifo, 0600) < 0 || mkdir(sub, 0700) < 0 || symlink(img, link_) < 0)
                return -1;
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -1;
        close(s);
        return 0;
}

static int group_teardown(void **state)
{
        unlink(img);
        unlink(fifo);
        unlink(link_);
        unlink(sock);
        rmdir(sub);
        rmdir(dir);
        return 0;
}

/* Expects backing_open() to refuse path with want, leaving no fd open. */
static void refuse(const char *path, bool writable, int want, mode_t want_type)
{
        struct backing b;
        int before = count_fds();

        assert_int_equal(backing_open(path, writable, false, &b), want);
        assert_int_equal(b.fd, -1);
        if (want_type)
                assert_int_equal(b.st.st_mode & S_IFMT, want_type);
        assert_int_equal(count_fds(), before);
}

static void test_regular_file(void **state)
{
        struct backing b;
        int fl;

        assert_int_equal(backing_open(img, false, false, &b), 0);
        assert_true(b.fd >= 0);
        assert_false(b.writable);
        assert_false(b.is_block);
        assert_true(S_ISREG(b.st.st_mode));
        fl = fcntl(b.fd, F_GETFL);
        assert_int_equal(fl & O_ACCMODE, O_RDONLY);
        assert_false(fl & O_NONBLOCK);
        assert_true(fcntl(b.fd, F_GETFD) & FD_CLOEXEC);
        backing_close(&b);
        assert_int_equal(b.fd, -1);
        backing_close(&b);       /* twice is fine */

        assert_int_equal(backing_open(img, true, false, &b), 0);
        assert_true(b.writable);
        assert_int_equal(fcntl(b.fd, F_GETFL) & O_ACCMODE, O_RDWR);
        backing_close(&b);
}

static void test_symlink_followed_once(void **state)
{
        struct backing b;
        struct stat st;

        assert_int_equal(backing_open(link_, false, false, &b), 0);
        assert_int_equal(stat(img, &st), 0);
        assert_int_equal(b.st.st_ino, st.st_ino);
        backing_close(&b);
}

static void test_fifo_never_hangs(void **state)
{
        /* A blocking open of a FIFO without writer would hang: guard it. */
        alarm(10);
        refuse(fifo, false, -ENOTBLK, S_IFIFO);
        refuse(fifo, true, -ENOTBLK, S_IFIFO);
        alarm(0);
}

static void test_not_a_disk(void **state)
{
        refuse(sub, false, -ENOTBLK, S_IFDIR);
        refuse(sub, true, -ENOTBLK, S_IFDIR);
        refuse("/dev/null", false, -ENOTBLK, S_IFCHR);
        refuse("/dev/null", true, -ENOTBLK, S_IFCHR);
        refuse(sock, false, -ENOTBLK, S_IFSOCK);
}

static void test_bad_paths(void **state)
{
        char missing[256];

        snprintf(missing, sizeof(missing), "%s/missing", dir);
        refuse(missing, false, -ENOENT, 0);
        refuse("img", false, -EINVAL, 0);
        refuse("./img", false, -EINVAL, 0);
        refuse("", false, -EINVAL, 0);
        refuse(NULL, false, -EINVAL, 0);
}

static void test_type_names(void **state)
{
        assert_string_equal(backing_type_name(S_IFDIR | 0755), "a directory");
        assert_string_equal(backing_type_name(S_IFIFO), "a FIFO");
        assert_string_equal(backing_type_name(S_IFCHR), "a character device");
        assert_string_equal(backing_type_name(S_IFBLK), "a block device");
        assert_string_equal(backing_type_name(S_IFREG), "a regular file");
        assert_string_equal(backing_type_name(S_IFSOCK), "a socket");
}

static void test_from_fd(void **state)
{
        struct backing b;
        int ro = open(img, O_RDONLY | O_CLOEXEC), rw = open(img, O_RDWR | O_CLOEXEC);
        int wo = open(img, O_WRONLY | O_CLOEXEC), path = open(img, O_PATH | O_CLOEXEC);
        int d = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_true(ro >= 0 && rw >= 0 && wo >= 0 && path >= 0 && d >= 0);
        assert_int_equal(backing_from_fd(ro, false, &b), 0);
        assert_int_equal(b.fd, ro);
        assert_false(b.writable);
        assert_int_equal(backing_from_fd(ro, true, &b), -EACCES);
        assert_int_equal(b.fd, -1);
        assert_int_equal(backing_from_fd(rw, true, &b), 0);
        assert_true(b.writable);
        assert_int_equal(backing_from_fd(rw, false, &b), 0);
        assert_int_equal(backing_from_fd(wo, false, &b), -EACCES);
        assert_int_equal(backing_from_fd(path, false, &b), -EBADF);
        assert_int_equal(backing_from_fd(d, false, &b), -ENOTBLK);
        assert_int_equal(backing_from_fd(-1, false, &b), -EBADF);
        assert_int_equal(backing_from_fd(1000, false, &b), -EBADF);
        /* Refusing an fd does not close it: it is still the caller's. */
        assert_true(fcntl(ro, F_GETFD) >= 0);
        assert_true(fcntl(d, F_GETFD) >= 0);
        close(ro);
        close(rw);
        close(wo);
        close(path);
        close(d);
}

static int count_threads(void)
{
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        int n = 0;

        if (!d)
                return -1;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* The thread count once a joined thread has left /proc (the kernel lists it
 * a moment after pthread_join() returns); at most 5 s. */
static int threads_after_join(int want)
{
        int n = count_threads();

        for (int i = 0; i < 500 && n != want; i++) {
                usleep(10000);
                n = count_threads();
        }
        return n;
}

/* Opens with a deadline run on workers that are kept for the next open,
 * not one thread per open; they answer as backing_open() does, leave no fd
 * behind, and are joined by backing_workers_stop(), after which opens work
 * again. */
static void test_bounded_workers(void **state)
{
        int before = count_fds(), threads = count_threads();
        struct backing b;

        for (int i = 0; i < 200; i++) {
                bool rw = i % 2;
                assert_int_equal(backing_open_bounded(img, rw, false, 5000000, &b), 0);
                assert_true(b.fd >= 0);
                assert_int_equal(b.writable, rw);
                assert_int_equal(fcntl(b.fd, F_GETFL) & O_ACCMODE, rw ? O_RDWR : O_RDONLY);
                backing_close(&b);
                /* One worker serves one caller: none is started per open. */
                assert_int_equal(count_threads(), threads + 1);
        }
        assert_int_equal(backing_open_bounded(sub, false, false, 5000000, &b), -ENOTBLK);
        assert_true(S_ISDIR(b.st.st_mode));
        assert_int_equal(b.fd, -1);
        assert_int_equal(backing_open_bounded("/nonexistent/xen-loopd", false, false, 5000000, &b), -ENOENT);
        assert_int_equal(backing_open_bounded("relative", false, false, 5000000, &b), -EINVAL);
        assert_int_equal(backing_hung_opens(), 0);

        backing_workers_stop();
        assert_int_equal(threads_after_join(threads), threads);
        assert_int_equal(count_fds(), before);
        assert_int_equal(backing_open_bounded(img, false, false, 5000000, &b), 0);
        backing_close(&b);
        backing_workers_stop();
        assert_int_equal(threads_after_join(threads), threads);
        assert_int_equal(count_fds(), before);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_regular_file),
                cmocka_unit_test(test_symlink_followed_once),
                cmocka_unit_test(test_fifo_never_hangs),
                cmocka_unit_test(test_not_a_disk),
                cmocka_unit_test(test_bad_paths),
                cmocka_unit_test(test_type_names),
                cmocka_unit_test(test_from_fd),
                cmocka_unit_test(test_bounded_workers),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
