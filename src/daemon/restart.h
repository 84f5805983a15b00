/* restart.h — what survives a restart (or a crash) of xen-loopd.
 *
 * Every fd the daemon holds for someone else is kept in the service
 * manager's fd store from the moment it is held (the hooks below, for the
 * registry's held devices and the fd sets' fds).  At start-up the fds handed
 * back are taken back: fd-set fds into their sets, device fds into the
 * registry, held (adopting) until the first full xenstore scan, in which the
 * vbd manager adopts the disks an earlier run published (vbd-adopt.c).
 * Once that scan is done, the devices and fd-set fds no disk claimed are
 * let go (restart_first_scan_done() for the fd sets; the vbd manager calls
 * registry_drop_unclaimed() after each scan from then on). */
#pragma once

#include <stddef.h>

#include "registry.h"
#include "daemon.h"
#include "fdset.h"
#include "fdstore.h"

extern const struct registry_hooks restart_registry_hooks;
extern const struct fdset_hooks restart_fdset_hooks;

/* Takes back what the fd store handed back (fds[].fd are taken or closed
 * by fdstore_fds_free()). */
void restart_take_back(struct daemon *d, struct fdstore_fd *fds, size_t n);

/* The vbd manager's first full scan is done (struct vbd_config.first_scan_done):
 * fd-set fds no disk took back are let go. */
void restart_first_scan_done(void *userdata);
