/* vbd-adopt.c — after a restart, the disks an earlier run published are
 * taken over with the devices they name (never new ones), before any disk
 * is set up anew. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/major.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hashmap.h"
#include "log.h"
#include "macro.h"
#include "vbd-internal.h"
#include "values.h"

/* ---- adoption of what an earlier run published ----------------------------- */

/* Opens what physical-device-path names, if it is still devnum.  The path
 * comes from xenstore: look at the inode (O_PATH) before opening it for
 * I/O, since opening a FIFO or a character device can have effects of its
 * own, and reopen that same inode through /proc/self/fd. */
static int open_published(const char *node, dev_t devnum, bool writable, int *ret)
{
        _cleanup_close_ int path_fd = -1;
        struct stat st;
        char link[64];
        int fd;

        if (node[0] != '/')
                return -EINVAL;
        path_fd = open(node, O_PATH | O_CLOEXEC);
        if (path_fd < 0)
                return negative_errno();
        if (fstat(path_fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != devnum)
                return -ESTALE;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", path_fd);
        /* A phy block device a w or w! disk uses was held read-write, and
         * its entry's access comes from the fd; a loop device's from its
         * own settings. */
        writable = writable && major(devnum) != LOOP_MAJOR;
        fd = open(link, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != devnum) {
                safe_close(fd);
                return -ESTALE;
        }
        *ret = fd;
        return 0;
}

/* A disk found published (hotplug-status connected) by an earlier run of the
 * daemon: take it over with the device it names, never a new one.  Returns
 * 1 when adopted, 0 when it is not ours to adopt, -errno (with the disk
 * failed) when its device is gone. */
int vbd_adopt(struct vbd_manager *m, struct vbd *v)
{
        _cleanup_free_ char *status = NULL, *physdev = NULL, *node = NULL, *seq = NULL,
                            *params = NULL, *mode = NULL;
        struct registry_entry *e;
        struct backend_state s;
        enum access access = ACCESS_RO;
        uint64_t diskseq = 0;
        char name[64];
        dev_t devnum;
        int r, fd;

        if (vbd_read_node(m, XBT_NULL, v, "hotplug-status", &status, NULL) < 0 || strcmp(status, "connected") != 0)
                return 0;
        if (vbd_read_node(m, XBT_NULL, v, "physical-device", &physdev, NULL) < 0 || val_parse_physdev(physdev, &devnum) < 0)
                return 0;
        if (vbd_read_node(m, XBT_NULL, v, "diskseq", &seq, NULL) == 0 && val_parse_diskseq(seq, &diskseq) < 0)
                return 0;
        vbd_read_node(m, XBT_NULL, v, "params", &params, NULL);
        if (vbd_read_node(m, XBT_NULL, v, "mode", &mode, NULL) == 0)
                (void)val_parse_mode(mode, &access);
        if (vbd_read_backend_state(m, v, true, &s) < 0)
                return 0;

        e = registry_find_device_for(m->registry, devnum, access);
        if (e && diskseq && e->dev.diskseq != diskseq)
                e = NULL;
        if (!e) {
                r = -ENOENT;
                if (vbd_read_node(m, XBT_NULL, v, "physical-device-path", &node, NULL) == 0)
                        r = open_published(node, devnum, access != ACCESS_RO, &fd);
                if (r >= 0)
                        r = registry_adopt_device(m->registry, fd, diskseq, params, &e);
                if (r < 0) {
                        vbd_fail_disk(m, v, r, "its loop device, set up by an earlier run of xen-loopd, is gone");
                        return r;
                }
        }
        snprintf(name, sizeof(name), "domain %" PRIu32 " disk %" PRIu32, v->domid, v->devid);
        r = registry_adopt_user(m->registry, e, name, v->domid, v->devid, access,
                             !(s.opened == 1 || s.state == XB_CONNECTED), &v->user);
        if (r < 0) {
                vbd_fail_disk(m, v, r, "its loop device, set up by an earlier run of xen-loopd, is gone");
                return r;
        }
        v->publish_due = v->maybe_published = true;
        log_info("%s: adopted %s from an earlier run.", v->path, e->dev.node);
        vbd_set_state(m, v, v->user->holding ? VBD_HELD : VBD_CONNECTED);
        vbd_complete_pending(v, false, 0, NULL);
        return 1;
}

/* Adopts every disk a scan found published by an earlier run before any
 * disk is set up anew: a device handed back at start-up has no users until
 * its disk is adopted, and a new read-write disk decided first would not
 * see them. */
void vbd_adopt_published(struct vbd_manager *m)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct vbd *v;

        while (hashmap_iterate(m->by_path, &it, (void **)&v, NULL)) {
                _cleanup_(vbd_snapshot_clear) struct snapshot snap = { 0 };
                const char *script;
                int r;

                if (!v->found_by_scan || v->state != VBD_NEW)
                        continue;
                if (vbd_read_snapshot(m, v, SNAP(SNAP_SCRIPT), &snap) < 0)
                        return;
                script = vbd_snap_value(&snap, SNAP_SCRIPT, &r);
                if ((r < 0 && r != -ENOENT) || vbd_claim_of(script) == CLAIM_FOREIGN)
                        continue;
                if (vbd_adopt(m, v) != 0)
                        v->found_by_scan = false;
        }
}
