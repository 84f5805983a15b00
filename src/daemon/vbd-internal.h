/* vbd-internal.h — what the parts of the vbd manager share: the records,
 * the xenstore snapshots, and the steps each part offers the others.
 *
 *   vbd.c         the records, the state machine and the event intake
 *   vbd-xs.c      reading and changing a disk's directory in xenstore
 *   vbd-setup.c   setting a disk up, publishing it, failing and releasing it
 *   vbd-adopt.c   taking over what an earlier run of the daemon published
 *   vbd-calls.c   block-loopd's add and remove, parked until they can answer
 *
 * Not for use outside src/daemon/vbd*.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "vbd.h"

struct ctl_call;
struct hashmap;

/* XenbusState values blkback and the toolstack write. */
enum {
        XB_INITIALISING = 1,
        XB_INITWAIT = 2,
        XB_CONNECTED = 4,
        XB_CLOSING = 5,
        XB_CLOSED = 6,
};

#define PUBLISH_RETRIES 32
/* hotplug-error, and every value the daemon writes, must fit oxenstored's
 * limit (quota-maxsize, 2048 bytes), the lower of the two xenstoreds'. */
#define ERROR_MAX 512
#define XS_VALUE_MAX 2048
_Static_assert(ERROR_MAX <= XS_VALUE_MAX, "hotplug-error must fit every xenstored");

struct pending {
        struct list link;           /* in vbd->pending, newest first */
        struct vbd *vbd;
        struct ctl_call *call;
        bool remove;
};

struct vbd {
        char *path;                 /* <home>/backend/vbd/<domid>/<devid> */
        uint32_t domid, devid;
        enum vbd_state state;
        bool requested;             /* block-loopd add ran: publish it, whatever its script */
        bool prepare_failed;        /* preparing it failed: the add will try again, and report */
        bool publish_due;           /* to be published: its add ran, or it is a watch-mode disk */
        bool maybe_published;       /* a publication may be in xenstore: undone before letting go */
        bool saw_teardown;          /* released because the toolstack tore it down */
        bool found_by_scan;         /* met in a rescan: may be published by an earlier run */
        struct list dirty_link;     /* in manager->dirty when linked */
        struct registry_user *user;
        void *fdset_token;          /* the fd set fd the disk was set up from */
        struct list pending;
        char *error;                /* the hotplug-error we wrote */
};

struct vbd_manager {
        sd_event *event;
        struct xsconn *xs;
        struct registry *registry;
        struct vbd_config cfg;
        char *home;
        char *base;                 /* <home>/backend/vbd */
        size_t base_len;
        struct hashmap *by_path;    /* path -> struct vbd */
        struct list dirty;          /* evaluated from the defer source, in the order events came */
        sd_event_source *defer;
        bool rescan;
        bool scanned;               /* the first full scan is done */
        size_t counts[_VBD_STATE_MAX];
};

#define OP_WRITE(v, n, val) ((struct xsconn_op){ .type = XS_WRITE, .dir = (v)->path, .node = (n), .value = (val) })
#define OP_RM(v, n) ((struct xsconn_op){ .type = XS_RM, .dir = (v)->path, .node = (n) })

/* Looks at a change's results (ops as given, with their results) before it
 * is committed: a negative return aborts it. */
typedef int (*backend_check_t)(const struct xsconn_op *ops, size_t n, void *data);

/* The most ops one vbd_backend_change() takes. */
#define BACKEND_OPS_MAX 8

/* The nodes of a disk's directory its evaluation looks at, read in one
 * round trip.  Each read costs xenstored time (which grows with the size of
 * its store), so only what the common case needs is read; the rare cases
 * (a directory gone, a disk being closed) take a second look. */
enum {
        SNAP_SCRIPT,
        SNAP_STATE,
        SNAP_OPENED,
        SNAP_PARAMS,
        SNAP_MODE,
        _SNAP_MAX,
};

#define SNAP(n) (1u << (n))

struct snapshot {
        struct xsconn_op ops[_SNAP_MAX];
        int8_t idx[_SNAP_MAX]; /* into ops, -1 when not read */
};

struct backend_state {
        int state;
        int online;
        int opened;
};

/* How a disk reaches the daemon, from its script node.  No script node, or
 * an empty one: the toolstack runs no script and leaves the disk to the
 * watch.  block-loopd (or xen-loopctl): libxl runs it as the hotplug script,
 * and the disk is published when its add asks.  Anything else (the stock
 * script, or "/etc/xen/scripts/", which stock libxl writes for an empty
 * script= and then fails to run) belongs to someone else. */
enum claim { CLAIM_FOREIGN, CLAIM_WATCH, CLAIM_SCRIPT };

/* A disk not set up yet: everything it takes to decide and to set it up, in
 * one round trip. */
#define SNAP_SETUP (SNAP(SNAP_SCRIPT) | SNAP(SNAP_STATE) | SNAP(SNAP_PARAMS) | SNAP(SNAP_MODE))

/* ---- vbd.c ---- */
void vbd_set_state(struct vbd_manager *m, struct vbd *v, enum vbd_state s);
int vbd_split_path(const struct vbd_manager *m, const char *path, uint32_t *domid,
                   uint32_t *devid, const char **node, size_t *dev_path_len);
struct vbd *vbd_get(struct vbd_manager *m, const char *path, size_t len, uint32_t domid,
                    uint32_t devid, bool create);
void vbd_drop_user(struct vbd_manager *m, struct vbd *v);
void vbd_forget(struct vbd_manager *m, struct vbd *v);
/* The disk record registry user u belongs to; NULL for an attachment or a
 * user no record holds. */
struct vbd *vbd_of_user(struct vbd_manager *m, const struct registry_user *u);
enum claim vbd_claim_of(const char *script);
void vbd_evaluate(struct vbd_manager *m, struct vbd *v);
void vbd_mark_dirty(struct vbd_manager *m, struct vbd *v);

/* ---- vbd-calls.c ---- */
void vbd_complete_pending(struct vbd *v, bool remove, int error, const char *msg);

/* ---- vbd-xs.c ---- */
int vbd_read_node(struct vbd_manager *m, xs_transaction_t t, const struct vbd *v,
                  const char *node, char **ret, size_t *ret_len);
/* Changes a disk's directory in one transaction, only while the directory
 * exists (a write would otherwise create it anew for a disk that is gone),
 * retrying while xenstored asks to.  Any failed op aborts, but a read or
 * removal of a node that is not there; check (optional) looks at what was
 * read first.  Returns 0, -ENOENT when the directory is gone, or check's or
 * xenstore's -errno. */
int vbd_backend_change(struct vbd_manager *m, struct vbd *v, const struct xsconn_op *ops, size_t n,
                       backend_check_t check, void *data);
void vbd_snapshot_clear(struct snapshot *s);
int vbd_read_snapshot(struct vbd_manager *m, const struct vbd *v, unsigned mask, struct snapshot *s);
const char *vbd_snap_value(const struct snapshot *s, int k, int *r);
int vbd_read_int(struct vbd_manager *m, const struct vbd *v, const char *node, int def);
int vbd_dir_state(struct vbd_manager *m, const struct vbd *v);
int vbd_backend_state(struct vbd_manager *m, const struct vbd *v, const struct snapshot *snap,
                      struct backend_state *ret);
int vbd_read_backend_state(struct vbd_manager *m, const struct vbd *v, bool want_opened,
                           struct backend_state *ret);
bool vbd_torn_down(const struct backend_state *s, bool published);
bool vbd_related_domains(struct vbd_manager *m, uint32_t a, uint32_t b);

/* ---- vbd-setup.c ---- */
void vbd_fail_disk(struct vbd_manager *m, struct vbd *v, int error, const char *cause);
bool vbd_publish_disk(struct vbd_manager *m, struct vbd *v);
bool vbd_setup(struct vbd_manager *m, struct vbd *v, const struct snapshot *snap, bool prepare_only);
void vbd_release(struct vbd_manager *m, struct vbd *v, bool dir_gone);

/* ---- vbd-adopt.c ---- */
int vbd_adopt(struct vbd_manager *m, struct vbd *v);
void vbd_adopt_published(struct vbd_manager *m);
