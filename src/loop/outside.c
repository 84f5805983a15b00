/* outside.c — users of a backing file or block device that are not ours. */
#include "outside.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hashmap.h"
#include "macro.h"

#define LOOP_MAJOR_NR 7

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

int outside_loop_backing(int fd, dev_t *ret_dev, ino_t *ret_ino)
{
        struct loop_info64 info;

        memset(&info, 0, sizeof(info));
        if (ioctl(fd, LOOP_GET_STATUS64, &info) < 0)
                return errno == EINVAL ? -ENOTTY : negative_errno();
        *ret_dev = (dev_t)info.lo_device;
        *ret_ino = (ino_t)info.lo_inode;
        return 0;
}

/* Reads a small sysfs attribute, without its newline. */
static int read_attr(const char *path, char *buf, size_t len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, len - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        return 0;
}

/* loopN's minor is N shifted by the loop driver's partition bits. */
static unsigned part_shift(void)
{
        static int shift = -1;
        char buf[32];

        if (shift < 0) {
                unsigned long max_part = 0;
                if (read_attr("/sys/module/loop/parameters/max_part", buf, sizeof(buf)) == 0)
                        max_part = strtoul(buf, NULL, 10);
                shift = max_part ? (int)(sizeof(long) * 8) - __builtin_clzl(max_part) : 0;
        }
        return (unsigned)shift;
}

/* What the loop device sysname serves: 1 with its file and read-only flag
 * when bound, 0 when not (or its file cannot be looked at from here). */
static int loop_binding(const char *sysname, dev_t *fdev, ino_t *fino, bool *ro)
{
        char attr[PATH_MAX], backing[PATH_MAX], flag[8];
        struct stat st;

        snprintf(attr, sizeof(attr), "/sys/block/%s/loop/backing_file", sysname);
        if (read_attr(attr, backing, sizeof(backing)) < 0)
                return 0; /* not bound */
        if (stat(backing, &st) < 0)
                return 0;
        snprintf(attr, sizeof(attr), "/sys/block/%s/ro", sysname);
        *ro = read_attr(attr, flag, sizeof(flag)) == 0 && strcmp(flag, "1") == 0;
        *fdev = st.st_dev;
        *fino = st.st_ino;
        return 1;
}

/* "loopN" and its device number; false for any other name. */
static bool loop_name(const char *name, dev_t *devnum)
{
        unsigned nr;
        int end = -1;

        if (sscanf(name, "loop%u%n", &nr, &end) != 1 || end < 0 || name[end] != '\0')
                return false;
        *devnum = makedev(LOOP_MAJOR_NR, nr << part_shift());
        return true;
}

/* Whether a device found serving the file counts: not the one the disk
 * names, not ours, and with rw_only bound read-write. */
static bool counts(dev_t devnum, bool ro, dev_t skip, bool rw_only, bool (*ours)(dev_t devnum, void *userdata),
                   void *userdata)
{
        return devnum != skip && !(ours && ours(devnum, userdata)) && !(rw_only && ro);
}

int outside_loop_users(dev_t dev, ino_t ino, dev_t skip, bool rw_only, bool (*ours)(dev_t devnum, void *userdata),
                       void *userdata, char *node, size_t len)
{
        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        struct dirent *de;

        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                dev_t devnum, fdev;
                ino_t fino;
                bool ro;

                if (!loop_name(de->d_name, &devnum) || devnum == skip || (ours && ours(devnum, userdata)))
                        continue;
                if (loop_binding(de->d_name, &fdev, &fino, &ro) <= 0 || fdev != dev || fino != ino)
                        continue;
                if (counts(devnum, ro, skip, rw_only, ours, userdata)) {
                        snprintf(node, len, "/dev/%s", de->d_name);
                        return 1;
                }
        }
        return 0;
}

/* One line of mountinfo: its device and mount point, and whether it is
 * mounted read-write (the per-mount options, the sixth field). */
static bool parse_mountinfo(char *line, dev_t *devnum, char **point, bool *rw)
{
        unsigned ma, mi;
        char *f[6], *save = NULL;

        for (int i = 0; i < 6; i++) {
                f[i] = strtok_r(i ? NULL : line, " ", &save);
                if (!f[i])
                        return false;
        }
        if (sscanf(f[2], "%u:%u", &ma, &mi) != 2)
                return false;
        *devnum = makedev(ma, mi);
        *point = f[4];
        *rw = strncmp(f[5], "rw", 2) == 0 && (f[5][2] == '\0' || f[5][2] == ',');
        return true;
}

int outside_blockdev_users(int fd, bool rw_only, bool exclusive, char *what, size_t len)
{
        _cleanup_(fclosep) FILE *f = NULL;
        char *line = NULL;
        size_t cap = 0;
        struct stat st;
        int found = 0;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return negative_errno();
        while (!found && getline(&line, &cap, f) > 0) {
                dev_t devnum;
                char *point;
                bool rw;

                if (!parse_mountinfo(line, &devnum, &point, &rw) || devnum != st.st_rdev)
                        continue;
                if (rw_only && !rw)
                        continue;
                /* Not where: the guest reads the message too. */
                snprintf(what, len, "mounted%s in dom0", rw ? " read-write" : "");
                found = 1;
        }
        free(line);
        if (!found && exclusive) {
                char link[64];
                int probe;

                /* The same inode, opened exclusively: refused while a file
                 * system, device-mapper or md holds it. */
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                probe = open(link, O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (probe >= 0)
                        close(probe);
                else if (errno == EBUSY) {
                        snprintf(what, len, "held by dom0 (a mounted file system, device-mapper or md)");
                        found = 1;
                }
        }
        return found;
}

/* ---- the registry -------------------------------------------------------- */

struct file_id {
        dev_t dev;
        ino_t ino;
};

struct bound {
        dev_t devnum;                   /* key of by_devnum */
        struct file_id file;
        bool ro;
        char name[24];                  /* "loop5" */
        struct bound *next;             /* the other devices on file */
};

struct outside_loops {
        struct hashmap *by_devnum;      /* struct bound by devnum */
        struct hashmap *by_file;        /* first struct bound by file */
};

static uint64_t devnum_hash(const void *p)
{
        uint64_t v = *(const dev_t *)p;

        return hash_bytes(&v, sizeof(v));
}

static bool devnum_equal(const void *a, const void *b)
{
        return *(const dev_t *)a == *(const dev_t *)b;
}

static uint64_t file_hash(const void *p)
{
        const struct file_id *f = p;
        uint64_t v[2] = { (uint64_t)f->dev, (uint64_t)f->ino };

        return hash_bytes(v, sizeof(v));
}

static bool file_equal(const void *a, const void *b)
{
        const struct file_id *x = a, *y = b;

        return x->dev == y->dev && x->ino == y->ino;
}

int outside_loops_new(struct outside_loops **ret)
{
        struct outside_loops *o = calloc(1, sizeof(*o));

        if (!o)
                return -ENOMEM;
        o->by_devnum = hashmap_new(devnum_hash, devnum_equal);
        o->by_file = hashmap_new(file_hash, file_equal);
        if (!o->by_devnum || !o->by_file) {
                outside_loops_free(o);
                return -ENOMEM;
        }
        *ret = o;
        return 0;
}

void outside_loops_free(struct outside_loops *o)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct bound *b;

        if (!o)
                return;
        if (o->by_devnum)
                while (hashmap_iterate(o->by_devnum, &it, (void **)&b, NULL))
                        free(b);
        hashmap_free(o->by_devnum);
        hashmap_free(o->by_file);
        free(o);
}

static void forget(struct outside_loops *o, dev_t devnum)
{
        struct bound *b = hashmap_remove(o->by_devnum, &devnum), *head, **pp;

        if (!b)
                return;
        head = hashmap_get(o->by_file, &b->file);
        for (pp = &head; *pp && *pp != b; pp = &(*pp)->next)
                ;
        if (*pp)
                *pp = b->next;
        /* The map's key lives in the first device: put the list back under
         * its new first one. */
        hashmap_remove(o->by_file, &b->file);
        if (head)
                (void)hashmap_put(o->by_file, &head->file, head);
        free(b);
}

void outside_loops_update(struct outside_loops *o, const char *sysname, dev_t devnum)
{
        struct bound *b, *head;
        dev_t named;

        if (!o || !sysname || !loop_name(sysname, &named))
                return;
        forget(o, devnum);
        b = calloc(1, sizeof(*b));
        if (!b)
                return;
        b->devnum = devnum;
        snprintf(b->name, sizeof(b->name), "%s", sysname);
        if (loop_binding(sysname, &b->file.dev, &b->file.ino, &b->ro) <= 0 ||
            hashmap_put(o->by_devnum, &b->devnum, b) < 0) {
                free(b);
                return;
        }
        head = hashmap_remove(o->by_file, &b->file);
        b->next = head;
        if (hashmap_put(o->by_file, &b->file, b) < 0) {
                /* Out of memory: unrecorded, as if unbound. */
                hashmap_remove(o->by_devnum, &b->devnum);
                if (head)
                        (void)hashmap_put(o->by_file, &head->file, head);
                free(b);
        }
}

int outside_loops_scan(struct outside_loops *o)
{
        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        struct dirent *de;

        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                dev_t devnum;

                if (loop_name(de->d_name, &devnum))
                        outside_loops_update(o, de->d_name, devnum);
        }
        return 0;
}

int outside_loops_find(const struct outside_loops *o, dev_t dev, ino_t ino, dev_t skip, bool rw_only,
                       bool (*ours)(dev_t devnum, void *userdata), void *userdata, char *node, size_t len)
{
        struct file_id f = { .dev = dev, .ino = ino };

        for (const struct bound *b = hashmap_get(o->by_file, &f); b; b = b->next)
                if (counts(b->devnum, b->ro, skip, rw_only, ours, userdata)) {
                        snprintf(node, len, "/dev/%s", b->name);
                        return 1;
                }
        return 0;
}

size_t outside_loops_size(const struct outside_loops *o)
{
        return o ? hashmap_size(o->by_devnum) : 0;
}
