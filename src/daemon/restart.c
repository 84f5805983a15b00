/* restart.c — what survives a restart of xen-loopd (see restart.h). */
#include "restart.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "fdstore.h"
#include "hashmap.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "values.h"

static void fdstore_name(const struct registry_entry *e, char *buf, size_t len)
{
        val_format_fdstore_dev(buf, len, major(e->dev.devnum), minor(e->dev.devnum), e->dev.diskseq, e->key.rw);
}

static void on_entry_held(struct registry_entry *e, void *userdata)
{
        char name[64];

        fdstore_name(e, name, sizeof(name));
        fdstore_add(e->dev.fd, name);
}

static void on_entry_unheld(struct registry_entry *e, void *userdata)
{
        char name[64];

        fdstore_name(e, name, sizeof(name));
        fdstore_remove(name);
}

const struct registry_hooks restart_registry_hooks = {
        .held = on_entry_held,
        .unheld = on_entry_unheld,
};

static void on_fdset_kept(int fd, const char *name, void *userdata)
{
        fdstore_add(fd, name);
}

static void on_fdset_dropped(int fd, const char *name, void *userdata)
{
        fdstore_remove(name);
}

const struct fdset_hooks restart_fdset_hooks = {
        .kept = on_fdset_kept,
        .dropped = on_fdset_dropped,
};

void restart_first_scan_done(void *userdata)
{
        struct daemon *d = userdata;

        fdset_drop_unclaimed(d->fdsets);
}

/* Which names the store handed back for more than one fd.  An older
 * xen-loopd could give two fds one name (a phy device held for r and w!, a
 * taken-back fd-set fd and a new one); FDSTOREREMOVE drops every fd of a
 * name, so such a name is removed and each of its fds stored again under a
 * name of its own.  NULL when out of memory (then nothing is renamed). */
static bool *shared_names(struct fdstore_fd *fds, size_t n)
{
        struct hashmap *seen = hashmap_new(hash_string, equal_string);
        bool *shared = calloc(n + 1, sizeof(bool));

        if (!seen || !shared) {
                hashmap_free(seen);
                free(shared);
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                void *first = hashmap_get(seen, fds[i].name);
                if (first) {
                        shared[i] = true;
                        shared[(uintptr_t)first - 1] = true;
                } else if (hashmap_put(seen, fds[i].name, (void *)(uintptr_t)(i + 1)) < 0)
                        break;
        }
        hashmap_free(seen);
        return shared;
}

/* A held device's fd, stored as "dev-...": into the registry, held until the
 * first full scan finds its disk (fd is taken). */
static void take_back_device(struct daemon *d, struct fdstore_fd *fd, bool rename)
{
        _cleanup_free_ char *backing = NULL;
        struct registry_entry *e;
        unsigned ma, mi;
        uint64_t seq;
        char acc, now[64];
        int r;

        if (val_parse_fdstore_dev(fd->name, &ma, &mi, &seq, &acc) < 0) {
                log_warning("Closing fd %d from the fd store: unknown name '%.64s'.", fd->fd, fd->name);
                fdstore_remove(fd->name);
                return; /* fdstore_fds_free closes it */
        }
        /* What the device serves, for listings: the kernel knows. */
        backing = loop_backing_path(makedev(ma, mi));
        r = registry_adopt_device(d->registry, fd->fd, seq, backing, &e);
        fd->fd = -1;
        if (r < 0 || e->dev.devnum != makedev(ma, mi)) {
                log_warning("%s from the fd store is not that device any more; dropping it.", fd->name);
                fdstore_remove(fd->name);
                return;
        }
        /* A name without the access (an older xen-loopd's), one shared, or
         * one this run would not give the entry: stored again under the
         * name the entry's hooks will remove. */
        fdstore_name(e, now, sizeof(now));
        if (rename || strcmp(now, fd->name) != 0) {
                if (!rename)
                        fdstore_remove(fd->name);
                fdstore_add(e->dev.fd, now);
        }
        log_info("Took back %s from the fd store.", e->dev.node);
}

/* Takes back the devices an earlier run held; the first full xenstore scan
 * then gives them their disks again, and lets go of those with none. */
void restart_take_back(struct daemon *d, struct fdstore_fd *fds, size_t n)
{
        _cleanup_free_ bool *shared = shared_names(fds, n);

        for (size_t i = 0; i < n; i++) {
                fdset_reserve_store_name(d->fdsets, fds[i].name);
                if (shared && shared[i]) {
                        log_notice("Several fds came back from the fd store as %.64s: storing each under a name "
                                   "of its own.", fds[i].name);
                        fdstore_remove(fds[i].name);
                }
        }
        for (size_t i = 0; i < n; i++) {
                bool rename = shared && shared[i];
                int r;

                if (strncmp(fds[i].name, "fdset-", 6) == 0) {
                        r = fdset_restore(d->fdsets, fds[i].fd, fds[i].name, rename);
                        fds[i].fd = -1;
                        if (r < 0) {
                                log_warning_errno(r, "Dropping %.64s from the fd store: %m.", fds[i].name);
                                fdstore_remove(fds[i].name);
                        }
                        continue;
                }
                take_back_device(d, &fds[i], rename);
        }
}
