/* loop-test.h — helpers for the tests that use real loop devices: the root
 * gate, private temporary files, and making sure a test leaves no loop device
 * bound to its files whatever happens to it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Root and /dev/loop-control, or exit: 77 (skip, said loudly) normally, 1
 * under CI=true, where a skipped device test would hide a regression. */
void lt_require_root(const char *prog);

/* A private directory for the test's backing files (under /var/tmp, on a
 * real file system); *ret is allocated. */
int lt_tmpdir(char **ret);
void lt_tmpdir_remove(char *dir);

/* Creates dir/name of size bytes, each 512-byte sector filled with its
 * number; *ret is allocated. */
int lt_make_file(const char *dir, const char *name, uint64_t size, char **ret);

/* A test group's files: a private directory (prefix is it with a '/', for
 * lt_cleanup()) holding two images, img and img2. */
struct lt_images {
        char *dir, *prefix, *img, *img2;
};

/* Makes them, img of img_size bytes, img2 of img2_size.  0 or -1. */
int lt_images_make(struct lt_images *t, uint64_t img_size, uint64_t img2_size);
/* Clears what the group left (lt_cleanup()), removes the files and frees
 * t's strings.  0, or -1 when devices had to be cleared by force. */
int lt_images_remove(struct lt_images *t);

/* Loop devices bound to a file whose path starts with prefix. */
int lt_count_bound(const char *prefix);

/* Whether /dev/loop<nr> is bound, from sysfs. */
bool lt_is_bound(int nr);

/* Waits (up to 5 s) until /dev/loop<nr> is unbound or bound to another
 * configuration than diskseq; true if it happened. */
bool lt_wait_released(int nr, uint64_t diskseq);

/* The sysfs view of /dev/loop<nr>: attribute name under loop/, or under the
 * disk when disk is true.  -errno, or the length read. */
int lt_sysfs_read(int nr, bool disk, const char *attr, char *buf, size_t len);

/* Closes every loop device fd this process still has open (a failed test's),
 * then clears any device still bound to a file under prefix.  Returns how
 * many devices had to be cleared by force (0 when the test left nothing). */
int lt_cleanup(const char *prefix);

/* Open fds of this process naming a /dev/loop* node. */
int lt_count_loop_fds(void);

/* Runs `losetup a [b]` as another process would (fork + exec, stdout and
 * stderr to ours).  Its exit status; 127 when losetup cannot be run. */
int lt_losetup(const char *a, const char *b);
