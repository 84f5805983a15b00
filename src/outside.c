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

int outside_loop_users(dev_t dev, ino_t ino, dev_t skip, bool rw_only, bool (*ours)(dev_t devnum, void *userdata),
                       void *userdata, char *node, size_t len)
{
        _cleanup_(closedirp) DIR *d = opendir("/sys/block");
        struct dirent *de;
        int found = 0;

        if (!d)
                return negative_errno();
        while (!found && (de = readdir(d))) {
                char attr[PATH_MAX], backing[PATH_MAX], ro[8];
                unsigned nr;
                int end = -1;
                struct stat st;
                dev_t devnum;

                if (sscanf(de->d_name, "loop%u%n", &nr, &end) != 1 || de->d_name[end] != '\0')
                        continue;
                devnum = makedev(LOOP_MAJOR_NR, nr << part_shift());
                /* Ours, or the device the disk names: not someone else's. */
                if (devnum == skip || (ours && ours(devnum, userdata)))
                        continue;
                snprintf(attr, sizeof(attr), "/sys/block/%s/loop/backing_file", de->d_name);
                if (read_attr(attr, backing, sizeof(backing)) < 0)
                        continue; /* not bound */
                if (stat(backing, &st) < 0 || st.st_dev != dev || st.st_ino != ino)
                        continue;
                snprintf(attr, sizeof(attr), "/sys/block/%s/ro", de->d_name);
                if (rw_only && read_attr(attr, ro, sizeof(ro)) == 0 && strcmp(ro, "1") == 0)
                        continue;
                snprintf(node, len, "/dev/%s", de->d_name);
                found = 1;
        }
        return found;
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
