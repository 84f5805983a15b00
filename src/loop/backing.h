/* backing.h — opening a disk's backing file exactly once.
 *
 * A path is followed once: the fd this returns is what every later step uses
 * (loop setup, identity, sharing), so a file swapped for a symlink after the
 * open cannot change what is attached.  Owns the worker threads that run
 * the opens with a deadline; nothing else after returning. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct backing {
        int fd;             /* O_CLOEXEC; O_NONBLOCK cleared after the open */
        struct stat st;     /* fstat() of fd */
        bool writable;      /* opened O_RDWR */
        bool is_block;      /* a block device (phy target), not a file */
};

/* Opens path (must be absolute) for reading, or reading and writing when
 * writable, with O_NONBLOCK|O_NOCTTY|O_CLOEXEC so a FIFO cannot block the
 * open, then checks the fd: a regular file or a block device, nothing else.
 * Returns 0, or -EINVAL (relative or empty path), -ENOTBLK (neither a regular
 * file nor a block device; ret->st still tells what it was), or the open's
 * -errno.  On failure nothing is left open and ret->fd is -1. */
int backing_open(const char *path, bool writable, bool direct_io, struct backing *ret);

/* backing_open() with a deadline: the open runs on a worker thread, and
 * the caller waits for it at most timeout_usec.  A backing file on a file
 * system that stops answering (a hung NFS mount) would otherwise hold the
 * event loop, and every disk with it, for ever.  -ETIMEDOUT when the open
 * did not finish (its worker then closes what it gets, whenever it gets
 * it); -EAGAIN while BACKING_HUNG_MAX such opens are still hanging.  The
 * workers are started when first needed and kept for the next opens. */
#define BACKING_HUNG_MAX 16
#define BACKING_OPEN_TIMEOUT_DEFAULT_USEC (10 * 1000000ULL)
int backing_open_bounded(const char *path, bool writable, bool direct_io, uint64_t timeout_usec,
                         struct backing *ret);
/* How many abandoned opens have not finished yet. */
unsigned backing_hung_opens(void);
/* Stops and joins the idle workers (at exit); those still in an abandoned
 * open are left to it.  Opens may be made again afterwards. */
void backing_workers_stop(void);

/* Takes over an fd passed in by a toolstack: checks it as backing_open()
 * does (type, and that its access mode allows writable).  The fd is not
 * duplicated; on success ret->fd == fd.  -EBADF, -ENOTBLK, -EACCES. */
int backing_from_fd(int fd, bool writable, struct backing *ret);

void backing_close(struct backing *b);

/* One sentence for a failed backing_open(path, writable, …, b), e.g.
 * "/srv/x is a directory, not a regular file or block device". */
void backing_describe_error(int error, const char *path, bool writable, const struct backing *b,
                            char *buf, size_t len);

/* "a directory", "a FIFO", "a character device", … for error messages. */
const char *backing_type_name(mode_t mode);
