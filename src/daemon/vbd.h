/* vbd.h — the lifecycle of blkback disks (vbd backends) in xenstore.
 *
 * Owns one record per backend directory <home>/backend/vbd/<domid>/<devid>
 * it has seen, the explicit state machine each runs through, and what it
 * publishes there.  It claims disks whose `script` is absent or empty
 * (published from the watch) or names block-loopd / xen-loopctl (set up
 * from the watch, published only when block-loopd's add asks: libxl runs
 * it once it has seen InitWait), and any disk it is explicitly asked for.
 * It sets them up through the registry, publishes physical-device,
 * physical-device-path and diskseq with hotplug-status in one transaction,
 * holds the device until
 * blkback has its own reference (`opened` = 1 or `state` = 4), and releases
 * it when the toolstack tears the disk down (online = 0 and state 5 or 6) or
 * the directory goes.  Watch events are coalesced: a disk is evaluated once
 * per event-loop iteration however many of its nodes changed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "backing.h"
#include "registry.h"
#include "xsconn.h"

struct ctl_call;
struct vbd_manager;

enum vbd_state {
        VBD_NEW,          /* seen; not evaluated yet */
        VBD_FOREIGN,      /* another hotplug script owns it */
        VBD_WAITING,      /* claimed; its params are not written yet */
        VBD_PREPARED,     /* block-loopd's: device set up, published when its add runs */
        VBD_HELD,         /* published; the daemon holds the device for blkback */
        VBD_CONNECTED,    /* published; blkback holds the device */
        VBD_FAILED,       /* hotplug-error written; waiting for teardown */
        VBD_RELEASED,     /* torn down; waiting for the directory to go */
        _VBD_STATE_MAX,
};

const char *vbd_state_name(enum vbd_state s);

/* Resolves "/dev/fdset/N" for a disk: fills ret with an fd the caller
 * owns (closed once the device is set up), and *ret_token with the use of
 * the set's fd, handed back to the release function when the disk goes.
 * err gets one sentence on failure. */
typedef int (*vbd_fdset_fn)(void *userdata, uint32_t fdset_id, bool writable, bool direct_io,
                            struct backing *ret, void **ret_token, char *err, size_t errlen);
typedef void (*vbd_fdset_release_fn)(void *userdata, void *token);

struct vbd_config {
        const char *home;          /* "/local/domain/0" */
        bool direct_io;            /* for every disk (default off) */
        uint32_t block_size;       /* 0: 512 */
        uint64_t open_timeout_usec; /* how long a backing file's open may take */
        vbd_fdset_fn open_fdset;   /* NULL: fd sets unavailable */
        vbd_fdset_release_fn release_fdset;
        void *fdset_userdata;
        /* Called once, after the first full scan of xenstore: what was
         * handed back at start-up and is still unclaimed can go. */
        void (*first_scan_done)(void *userdata);
        void *first_scan_userdata;
};

int vbd_manager_new(sd_event *ev, struct xsconn *xs, struct registry *registry,
                    const struct vbd_config *cfg, struct vbd_manager **ret);
/* Forgets every record without touching xenstore (the registry still owns the
 * devices). */
void vbd_manager_free(struct vbd_manager *m);

/* The functions below accept m == NULL (xenstored has not answered yet):
 * nothing is known, requests fail with -ENOTCONN. */

/* Feeds a watch event under <home>/backend/vbd. */
void vbd_manager_watch(struct vbd_manager *m, const char *path);
/* xenstored came back: rescan everything. */
void vbd_manager_resync(struct vbd_manager *m);

/* Counts per state, for status. */
size_t vbd_manager_count(const struct vbd_manager *m, enum vbd_state s);
size_t vbd_manager_size(const struct vbd_manager *m);

/* The registry user of the published disk at path (relative or absolute), or
 * NULL. */
struct registry_user *vbd_find_user(struct vbd_manager *m, const char *path);
/* The device of e changed in place (reconfigure): every disk using it gets
 * its diskseq node rewritten. */
void vbd_device_changed(struct vbd_manager *m, const struct registry_entry *e);

/* Control requests from block-loopd (script mode).  path is relative to the
 * home or absolute.  The call is completed when the disk is published or
 * failed (add), or released (remove).  Returns -EINVAL for a path that is
 * not a vbd backend of this home (the call is not completed then). */
int vbd_request_add(struct vbd_manager *m, const char *path, struct ctl_call *call);
int vbd_request_remove(struct vbd_manager *m, const char *path, struct ctl_call *call);
