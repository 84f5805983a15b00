/* backing.c — open a disk's backing file once and check what it is. */
#include "backing.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

const char *backing_type_name(mode_t mode)
{
        switch (mode & S_IFMT) {
        case S_IFREG:
                return "a regular file";
        case S_IFBLK:
                return "a block device";
        case S_IFDIR:
                return "a directory";
        case S_IFCHR:
                return "a character device";
        case S_IFIFO:
                return "a FIFO";
        case S_IFSOCK:
                return "a socket";
        case S_IFLNK:
                return "a symbolic link";
        default:
                return "an unknown kind of file";
        }
}

static bool backing_type_ok(mode_t mode)
{
        return S_ISREG(mode) || S_ISBLK(mode);
}

static void backing_init(struct backing *b)
{
        *b = (struct backing){ .fd = -1 };
}

/* Opens what the O_PATH fd refers to with the given flags, through its
 * /proc/self/fd link: the same inode, no second lookup of the path.  -ENOENT
 * when /proc is not mounted. */
static int reopen_path_fd(int path_fd, int flags)
{
        char link[64];
        int fd;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", path_fd);
        fd = open(link, flags);
        return fd < 0 ? negative_errno() : fd;
}

int backing_open(const char *path, bool writable, bool direct_io, struct backing *ret)
{
        _cleanup_close_ int path_fd = -1, fd = -1;
        struct stat st_path, st;
        int flags = (writable ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                    (direct_io ? O_DIRECT : 0);

        backing_init(ret);
        if (!path || path[0] != '/')
                return -EINVAL;

        /* Look at the inode before opening it for I/O: opening a character
         * device (a watchdog, a tape) can have effects of its own. */
        path_fd = open(path, O_PATH | O_CLOEXEC);
        if (path_fd < 0)
                return negative_errno();
        if (fstat(path_fd, &st_path) < 0)
                return negative_errno();
        if (!backing_type_ok(st_path.st_mode)) {
                ret->st = st_path;
                return -ENOTBLK;
        }

        fd = reopen_path_fd(path_fd, flags);
        if (fd == -ENOENT) {
                /* No /proc: a plain open, still checked below. */
                fd = open(path, flags);
                if (fd < 0)
                        return negative_errno();
        }
        if (fd < 0)
                return fd;

        /* O_NONBLOCK kept a FIFO swapped in meanwhile from blocking; the fd is
         * checked again, as it is what everything else uses. */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!backing_type_ok(st.st_mode)) {
                ret->st = st;
                return -ENOTBLK;
        }
        if (st.st_dev != st_path.st_dev || st.st_ino != st_path.st_ino)
                return -ESTALE;  /* only possible without /proc: the path was swapped */

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return negative_errno();

        ret->st = st;
        ret->writable = writable;
        ret->is_block = S_ISBLK(st.st_mode);
        ret->fd = TAKE_FD(fd);
        return 0;
}

int backing_from_fd(int fd, bool writable, struct backing *ret)
{
        struct stat st;
        int flags, acc;

        backing_init(ret);
        if (fd < 0)
                return -EBADF;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return negative_errno();
        if (flags & O_PATH)
                return -EBADF;  /* no I/O possible through it */
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!backing_type_ok(st.st_mode)) {
                ret->st = st;
                return -ENOTBLK;
        }

        /* A loop device reads its backing file whatever its mode. */
        acc = flags & O_ACCMODE;
        if (acc == O_WRONLY || (writable && acc != O_RDWR)) {
                ret->st = st;
                return -EACCES;
        }

        ret->fd = fd;
        ret->st = st;
        ret->writable = acc == O_RDWR;
        ret->is_block = S_ISBLK(st.st_mode);
        return 0;
}

/* ---- an open with a deadline --------------------------------------------- */

/* One open, run by a thread of its own; whoever finishes last (the caller,
 * giving up, or the thread, finally done) frees it. */
struct open_job {
        pthread_mutex_t lock;
        pthread_cond_t done_cond;
        bool done, abandoned;
        bool writable, direct_io;
        int r;
        struct backing b;
        char path[];
};

/* Opens still hanging after their caller gave up: each holds a thread. */
static pthread_mutex_t hung_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned hung;

static void *open_worker(void *data)
{
        struct open_job *j = data;
        struct backing b;
        int r = backing_open(j->path, j->writable, j->direct_io, &b);
        bool abandoned;

        pthread_mutex_lock(&j->lock);
        j->r = r;
        j->b = b;
        j->done = true;
        abandoned = j->abandoned;
        pthread_cond_signal(&j->done_cond);
        pthread_mutex_unlock(&j->lock);
        if (abandoned) {
                backing_close(&b);
                pthread_mutex_lock(&hung_lock);
                hung--;
                pthread_mutex_unlock(&hung_lock);
                pthread_cond_destroy(&j->done_cond);
                pthread_mutex_destroy(&j->lock);
                free(j);
        }
        return NULL;
}

int backing_open_bounded(const char *path, bool writable, bool direct_io, uint64_t timeout_usec,
                         struct backing *ret)
{
        struct open_job *j;
        pthread_condattr_t ca;
        pthread_attr_t ta;
        struct timespec until;
        pthread_t thread;
        bool done;
        int r;

        assert(timeout_usec > 0);
        backing_init(ret);
        if (!path || path[0] != '/')
                return -EINVAL;
        pthread_mutex_lock(&hung_lock);
        r = hung >= BACKING_HUNG_MAX ? -EAGAIN : 0;
        pthread_mutex_unlock(&hung_lock);
        if (r < 0)
                return r;

        j = calloc(1, sizeof(*j) + strlen(path) + 1);
        if (!j)
                return -ENOMEM;
        strcpy(j->path, path);
        j->writable = writable;
        j->direct_io = direct_io;
        pthread_mutex_init(&j->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->done_cond, &ca);
        pthread_condattr_destroy(&ca);

        pthread_attr_init(&ta);
        pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
        r = -pthread_create(&thread, &ta, open_worker, j);
        pthread_attr_destroy(&ta);
        if (r < 0) {
                pthread_cond_destroy(&j->done_cond);
                pthread_mutex_destroy(&j->lock);
                free(j);
                return r;
        }

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(timeout_usec / 1000000);
        until.tv_nsec += (long)(timeout_usec % 1000000) * 1000;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&j->lock);
        while (!j->done)
                if (pthread_cond_timedwait(&j->done_cond, &j->lock, &until) == ETIMEDOUT)
                        break;
        done = j->done;
        if (!done) {
                /* The thread finishes, closes and frees on its own. */
                j->abandoned = true;
                pthread_mutex_lock(&hung_lock);
                hung++;
                pthread_mutex_unlock(&hung_lock);
        }
        pthread_mutex_unlock(&j->lock);
        if (!done)
                return -ETIMEDOUT;
        *ret = j->b;
        r = j->r;
        pthread_cond_destroy(&j->done_cond);
        pthread_mutex_destroy(&j->lock);
        free(j);
        return r;
}

unsigned backing_hung_opens(void)
{
        unsigned n;

        pthread_mutex_lock(&hung_lock);
        n = hung;
        pthread_mutex_unlock(&hung_lock);
        return n;
}

void backing_close(struct backing *b)
{
        if (!b)
                return;
        b->fd = safe_close(b->fd);
}

void backing_describe_error(int error, const char *path, bool writable, const struct backing *b,
                            char *buf, size_t len)
{
        if (error == -ENOTBLK)
                snprintf(buf, len, "%s is %s, not a regular file or block device", path,
                         backing_type_name(b->st.st_mode));
        else if (error == -EINVAL)
                snprintf(buf, len, "'%s' is not an absolute path", path);
        else if (error == -ETIMEDOUT)
                snprintf(buf, len, "opening %s did not finish in time (a file system that does not "
                         "answer?)", path);
        else if (error == -EAGAIN)
                snprintf(buf, len, "not opening %s: %d earlier opens have not finished (a file system "
                         "that does not answer?)", path, BACKING_HUNG_MAX);
        else
                snprintf(buf, len, "cannot open %s%s: %s", path, writable ? " read-write" : "",
                         strerror(-error));
}
