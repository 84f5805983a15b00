/* loop-test.c — see loop-test.h. */
#define loop_config linux_loop_config
#include <linux/loop.h>
#undef loop_config

#include "loop-test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void lt_require_root(const char *prog)
{
        const char *ci = getenv("CI");
        bool in_ci = ci && strcmp(ci, "true") == 0;
        const char *why = NULL;

        if (geteuid() != 0)
                why = "it needs root to set up loop devices";
        else if (access("/dev/loop-control", R_OK | W_OK) < 0)
                why = "/dev/loop-control is missing (no loop driver)";
        if (!why)
                return;
        if (in_ci) {
                fprintf(stderr, "\n*** %s: FAILED: %s, and CI=true does not allow skipping ***\n\n", prog, why);
                exit(1);
        }
        fprintf(stderr, "\n*** %s: SKIPPED: %s ***\n\n", prog, why);
        exit(77);
}

int lt_tmpdir(char **ret)
{
        char *d = strdup("/var/tmp/xen-loopd-looptest-XXXXXX");

        if (!d)
                return -ENOMEM;
        if (!mkdtemp(d)) {
                free(d);
                return -errno;
        }
        *ret = d;
        return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path) < 0 ? -1 : 0;
}

void lt_tmpdir_remove(char *dir)
{
        if (!dir)
                return;
        nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

int lt_make_file(const char *dir, const char *name, uint64_t size, char **ret)
{
        char *path, sector[512];
        int fd, r = 0;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                free(path);
                return r;
        }
        for (uint64_t s = 0; s < size / 512; s++) {
                memset(sector, 0, sizeof(sector));
                snprintf(sector, sizeof(sector), "sector %llu", (unsigned long long)s);
                if (write(fd, sector, sizeof(sector)) != sizeof(sector)) {
                        r = -EIO;
                        break;
                }
        }
        close(fd);
        if (r < 0) {
                unlink(path);
                free(path);
                return r;
        }
        *ret = path;
        return 0;
}

int lt_sysfs_read(int nr, bool disk, const char *attr, char *buf, size_t len)
{
        char path[128];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/sys/block/loop%d/%s%s", nr, disk ? "" : "loop/", attr);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, len - 1);
        close(fd);
        if (n < 0)
                return -errno;
        while (n > 0 && buf[n - 1] == '\n')
                n--;
        buf[n] = 0;
        return (int)n;
}

bool lt_is_bound(int nr)
{
        char buf[8];

        /* loop/ exists only while the device is bound. */
        return lt_sysfs_read(nr, false, "offset", buf, sizeof(buf)) >= 0;
}

static bool still_same(int nr, uint64_t diskseq)
{
        char buf[32];

        if (!lt_is_bound(nr))
                return false;
        if (lt_sysfs_read(nr, true, "diskseq", buf, sizeof(buf)) < 0)
                return false;
        return strtoull(buf, NULL, 10) == diskseq;
}

bool lt_wait_released(int nr, uint64_t diskseq)
{
        struct timespec ts = { 0, 10 * 1000 * 1000 };

        for (int i = 0; i < 500; i++) {
                if (!still_same(nr, diskseq))
                        return true;
                nanosleep(&ts, NULL);
        }
        return false;
}

/* Calls cb for every loop device bound to a file under prefix. */
static int for_each_bound(const char *prefix, void (*cb)(int nr))
{
        DIR *d = opendir("/sys/block");
        struct dirent *de;
        char file[4096];
        int n = 0, nr;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                if (sscanf(de->d_name, "loop%d", &nr) != 1)
                        continue;
                if (lt_sysfs_read(nr, false, "backing_file", file, sizeof(file)) < 0)
                        continue;
                if (strncmp(file, prefix, strlen(prefix)) != 0)
                        continue;
                n++;
                if (cb)
                        cb(nr);
        }
        closedir(d);
        return n;
}

int lt_count_bound(const char *prefix)
{
        return for_each_bound(prefix, NULL);
}

static void clear_device(int nr)
{
        char node[32];
        int fd;

        fprintf(stderr, "cleanup: clearing /dev/loop%d left bound to a test file\n", nr);
        snprintf(node, sizeof(node), "/dev/loop%d", nr);
        fd = open(node, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        (void)ioctl(fd, LOOP_CLR_FD);
        close(fd);
}

/* Calls cb for every fd of ours naming a loop device node. */
static int for_each_loop_fd(bool close_them)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        char link[64], target[256];
        int n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                int fd = atoi(de->d_name);
                ssize_t len;

                if (de->d_name[0] == '.' || fd == dirfd(d))
                        continue;
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                len = readlink(link, target, sizeof(target) - 1);
                if (len < 0)
                        continue;
                target[len] = 0;
                if (strncmp(target, "/dev/loop", 9) != 0 || strcmp(target, "/dev/loop-control") == 0)
                        continue;
                n++;
                if (close_them)
                        close(fd);
        }
        closedir(d);
        return n;
}

int lt_count_loop_fds(void)
{
        return for_each_loop_fd(false);
}

int lt_cleanup(const char *prefix)
{
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        int n;

        for_each_loop_fd(true);
        /* Autoclear follows the last close; give it a moment before forcing. */
        for (int i = 0; i < 200 && lt_count_bound(prefix) > 0; i++)
                nanosleep(&ts, NULL);
        n = for_each_bound(prefix, clear_device);
        for (int i = 0; i < 200 && lt_count_bound(prefix) > 0; i++)
                nanosleep(&ts, NULL);
        return n;
}

int lt_losetup(const char *a, const char *b)
{
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                char *argv[] = { (char *)"losetup", (char *)a, (char *)b, NULL };
                execv("/usr/sbin/losetup", argv);
                execv("/sbin/losetup", argv);
                execvp("losetup", argv);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) != pid)
                return -errno;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int lt_images_make(struct lt_images *t, uint64_t img_size, uint64_t img2_size)
{
        if (lt_tmpdir(&t->dir) < 0 || asprintf(&t->prefix, "%s/", t->dir) < 0)
                return -1;
        if (lt_make_file(t->dir, "img", img_size, &t->img) < 0 ||
            lt_make_file(t->dir, "img2", img2_size, &t->img2) < 0)
                return -1;
        return 0;
}

int lt_images_remove(struct lt_images *t)
{
        int left = t->prefix ? lt_cleanup(t->prefix) : 0;

        if (t->dir)
                lt_tmpdir_remove(t->dir);
        free(t->prefix);
        free(t->img);
        free(t->img2);
        *t = (struct lt_images){ 0 };
        return left ? -1 : 0;
}
