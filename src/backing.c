/* backing.c — open a disk's backing file once and check what it is. */
#include "backing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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
        else
                snprintf(buf, len, "cannot open %s%s: %s", path, writable ? " read-write" : "",
                         strerror(-error));
}
