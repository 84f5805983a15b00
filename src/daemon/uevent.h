/* uevent.h — kernel block-device uevents, for the registry.
 *
 * Owns a libudev monitor on the kernel netlink source (no udevd needed), its
 * event source, and the registry of bound loop devices (outside.h) it keeps
 * current for the registry's sharing rule.  Every `change` or `remove` of a
 * block disk is handed to registry_device_changed(), which decides by diskseq
 * and backing identity whether the device the registry knows is still the
 * same, and then to the registry; every registry_acquire() first reads what
 * has been queued. */
#pragma once

#include <systemd/sd-event.h>

#include "registry.h"

struct uevent_monitor;

int uevent_monitor_new(sd_event *ev, struct registry *registry, struct uevent_monitor **ret);
void uevent_monitor_free(struct uevent_monitor *u);
