/* uevent.h — kernel block-device uevents, for the cache.
 *
 * Owns a libudev monitor on the kernel netlink source (no udevd needed) and
 * its event source.  Every `change` or `remove` of a block disk is handed to
 * cache_device_changed(), which decides by diskseq and backing identity
 * whether the device the cache knows is still the same. */
#pragma once

#include <systemd/sd-event.h>

#include "cache.h"

struct uevent_monitor;

int uevent_monitor_new(sd_event *ev, struct cache *cache, struct uevent_monitor **ret);
void uevent_monitor_free(struct uevent_monitor *u);
