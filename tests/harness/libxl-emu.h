/* libxl-emu.h — the part of libxl 4.17's disk and domain handling that
 * hotplug scripts and xen-loopd see in xenstore, for the test harness
 * (xs-libxl) and the benchmark (loopd-bench): the domain's directories, the
 * disk-add transaction, the device-remove steps and libxl's path clean-up.
 * Each function runs its own transaction, retried while xenstored asks to,
 * and returns 0 or -errno.  Owns nothing. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <xenstore.h>

#define LIBXL_SCRIPT_DIR "/etc/xen/scripts"

struct libxl_disk {
        uint32_t domid, devid, backend_domid;
        const char *vdev;              /* written as `dev` */
        const char *params, *mode;     /* mode: r, w or w! */
        const char *script;            /* the script node's value, or NULL for none */
        bool cdrom, pv;
        /* libxl's three paths, from libxl_disk_paths() */
        char *fe, *be, *lx;
};

/* libxl's device number for xvdX/sdX/hdX names, or a plain number; -1 when
 * it is neither. */
int libxl_vdev_to_devid(const char *vdev);

/* Fills d->fe, d->be (under home, the backend domain's home) and d->lx;
 * libxl_disk_paths_free() frees them. */
int libxl_disk_paths(struct libxl_disk *d, const char *home);
void libxl_disk_paths_free(struct libxl_disk *d);

/* The script node's value for a script name as libxl writes it: absolute
 * names as they are, others under LIBXL_SCRIPT_DIR.  Malloc'ed. */
char *libxl_script_path(const char *script);

/* The subset of libxl__domain_make() hotplug scripts look at. */
int libxl_domain_create(struct xs_handle *xs, uint32_t domid, const char *name);

/* libxl__device_disk_add()'s transaction.  -EEXIST when libxl's copy of the
 * device says its devid is taken. */
int libxl_disk_add(struct xs_handle *xs, const struct libxl_disk *d);

/* One round of libxl__initiate_device_generic_remove(): online = 0 and
 * state = 5 (unless already 6) in one transaction; with force the frontend
 * goes first.  1 when the backend was gone already. */
int libxl_disk_start_close(struct xs_handle *xs, const char *fe, const char *be, bool force);

/* What libxl removes once a device is closed: frontend, libxl's copy and
 * backend, each with the parents it leaves empty. */
int libxl_disk_destroy(struct xs_handle *xs, const char *fe, const char *be, const char *lx);

/* libxl__xs_path_cleanup(): PATH, then each parent left empty. */
void libxl_path_cleanup(struct xs_handle *xs, xs_transaction_t t, const char *path);
