/* backing.c — open a disk's backing file once and check what it is. */
#include "backing.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "list.h"
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

/* The opens run on a few long-lived threads, started when first needed: a
 * thread per open cost every attach a clone3 and a thread's teardown.  A
 * worker whose open hangs stays with it; the next open finds no idle worker
 * and starts another, so at most BACKING_HUNG_MAX + 1 run at once. */

/* One open; whoever finishes last (the caller, giving up, or the worker,
 * finally done) frees it.  The hand-offs are semaphores: the waiting side
 * is woken without contending for pool_lock, which guards the rest. */
struct open_job {
        struct list link;               /* in queue while not taken */
        sem_t done_sem;                 /* posted once the result is in */
        bool done, abandoned;
        bool writable, direct_io;
        int r;
        struct backing b;
        char path[];
};

/* A worker that has stopped, waiting to be joined. */
struct exited {
        pthread_t thread;
        struct exited *next;
};

#define IDLE_MAX 2u

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t exit_cond = PTHREAD_COND_INITIALIZER;  /* a worker stopped */
static sem_t work_sem;                 /* posted for each job queued, and to stop */
static bool work_sem_ready;
static struct list queue = LIST_INIT(queue);
static size_t queued;
static unsigned workers, idle, hung;   /* hung: abandoned opens not finished */
static bool stopping;
static struct exited *exited;

static void job_free(struct open_job *j)
{
        sem_destroy(&j->done_sem);
        free(j);
}

static void sem_wait_intr(sem_t *s)
{
        while (sem_wait(s) < 0 && errno == EINTR)
                ;
}

/* Hands j its result, or closes and frees it when abandoned; pool_lock is
 * held on entry and on return. */
static void finish_job(struct open_job *j, int r, struct backing *b)
{
        if (j->abandoned) {
                backing_close(b);
                hung--;
                job_free(j);
                return;
        }
        j->r = r;
        j->b = *b;
        j->done = true;
        /* The caller frees j only after taking this post. */
        pthread_mutex_unlock(&pool_lock);
        sem_post(&j->done_sem);
        pthread_mutex_lock(&pool_lock);
}

static void *worker_main(void *data)
{
        struct exited *self = data;
        bool stay = true;

        pthread_mutex_lock(&pool_lock);
        idle++;
        while (stay) {
                struct open_job *j;
                struct backing b;
                int r;

                if (!queued) {
                        if (stopping)
                                break;
                        pthread_mutex_unlock(&pool_lock);
                        sem_wait_intr(&work_sem);
                        pthread_mutex_lock(&pool_lock);
                        continue; /* a post may be stale: look again */
                }
                j = list_first_entry(&queue, struct open_job, link);
                list_unlink(&j->link);
                queued--;
                idle--;
                pthread_mutex_unlock(&pool_lock);
                r = backing_open(j->path, j->writable, j->direct_io, &b);
                pthread_mutex_lock(&pool_lock);
                /* Counted idle before the caller hears: its next open must
                 * not start another worker. */
                stay = idle < IDLE_MAX;
                if (stay)
                        idle++;
                finish_job(j, r, &b);
        }
        if (stay)
                idle--;
        workers--;
        self->next = exited;
        exited = self;
        pthread_cond_broadcast(&exit_cond);
        pthread_mutex_unlock(&pool_lock);
        return NULL;
}

/* Joins the workers that stopped; pool_lock is held. */
static void reap(void)
{
        while (exited) {
                struct exited *e = exited;
                exited = e->next;
                pthread_join(e->thread, NULL);
                free(e);
        }
}

/* Makes sure a worker will take the job just queued; pool_lock is held. */
static int ensure_worker(void)
{
        struct exited *self;
        int r;

        reap();
        if (queued <= idle)
                return 0;
        if (!work_sem_ready) {
                if (sem_init(&work_sem, 0, 0) < 0)
                        return negative_errno();
                work_sem_ready = true;
        }
        self = calloc(1, sizeof(*self));
        if (!self)
                return -ENOMEM;
        r = -pthread_create(&self->thread, NULL, worker_main, self);
        if (r < 0) {
                free(self);
                return r;
        }
        workers++;
        return 0;
}

/* Waits for j until the deadline; pool_lock is not held.  -ETIMEDOUT when
 * it is abandoned, left to its worker to close and free. */
static int wait_job(struct open_job *j, uint64_t timeout_usec, struct backing *ret)
{
        struct timespec until;
        bool posted;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(timeout_usec / 1000000);
        until.tv_nsec += (long)(timeout_usec % 1000000) * 1000;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        while ((r = sem_clockwait(&j->done_sem, CLOCK_MONOTONIC, &until)) < 0 && errno == EINTR)
                ;
        posted = r == 0;
        pthread_mutex_lock(&pool_lock);
        if (!j->done) {
                if (list_is_linked(&j->link)) {
                        /* Never taken: nothing hangs. */
                        list_unlink(&j->link);
                        queued--;
                        job_free(j);
                } else {
                        j->abandoned = true;
                        hung++;
                }
                pthread_mutex_unlock(&pool_lock);
                return -ETIMEDOUT;
        }
        pthread_mutex_unlock(&pool_lock);
        if (!posted)
                sem_wait_intr(&j->done_sem); /* done just now: its post is coming */
        *ret = j->b;
        r = j->r;
        job_free(j);
        return r;
}

int backing_open_bounded(const char *path, bool writable, bool direct_io, uint64_t timeout_usec,
                         struct backing *ret)
{
        struct open_job *j;
        int r;

        assert(timeout_usec > 0);
        backing_init(ret);
        if (!path || path[0] != '/')
                return -EINVAL;
        j = calloc(1, sizeof(*j) + strlen(path) + 1);
        if (!j)
                return -ENOMEM;
        strcpy(j->path, path);
        j->writable = writable;
        j->direct_io = direct_io;
        list_init(&j->link);
        if (sem_init(&j->done_sem, 0, 0) < 0) {
                free(j);
                return negative_errno();
        }

        pthread_mutex_lock(&pool_lock);
        r = hung >= BACKING_HUNG_MAX ? -EAGAIN : 0;
        if (r == 0) {
                list_append(&queue, &j->link);
                queued++;
                r = ensure_worker();
                if (r < 0) {
                        list_unlink(&j->link);
                        queued--;
                }
        }
        pthread_mutex_unlock(&pool_lock);
        if (r < 0) {
                job_free(j);
                return r;
        }
        sem_post(&work_sem);
        return wait_job(j, timeout_usec, ret);
}

void backing_workers_stop(void)
{
        pthread_mutex_lock(&pool_lock);
        stopping = true;
        for (unsigned i = 0; i < idle; i++)
                sem_post(&work_sem);
        /* Those still in an abandoned open are left to it. */
        while (workers > hung)
                pthread_cond_wait(&exit_cond, &pool_lock);
        reap();
        stopping = false;
        pthread_mutex_unlock(&pool_lock);
}

unsigned backing_hung_opens(void)
{
        unsigned n;

        pthread_mutex_lock(&pool_lock);
        n = hung;
        pthread_mutex_unlock(&pool_lock);
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
