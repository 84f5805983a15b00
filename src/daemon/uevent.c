#include "uevent.h"

#include <errno.h>
#include <libudev.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "outside.h"

struct uevent_monitor {
        struct udev *udev;
        struct udev_monitor *mon;
        sd_event_source *io;
        struct registry *registry;
        struct outside_loops *loops;    /* every bound loop device, for the sharing rule */
};

/* Reads every uevent queued so far.  A loop device is bound and cleared
 * with a `change`: the registry of bound loop devices looks at it again
 * (after the registry, which may have just let it go). */
static void drain(struct uevent_monitor *u)
{
        struct udev_device *d;

        /* One wake-up may carry many events. */
        while ((d = udev_monitor_receive_device(u->mon))) {
                const char *action = udev_device_get_action(d);
                dev_t devnum = udev_device_get_devnum(d);

                if (action && devnum && (strcmp(action, "change") == 0 || strcmp(action, "remove") == 0) &&
                    registry_device_changed(u->registry, devnum) > 0)
                        log_debug("%s: the kernel dropped it (%s).", udev_device_get_devnode(d) ?: "?", action);
                if (devnum)
                        outside_loops_update(u->loops, udev_device_get_sysname(d), devnum);
                udev_device_unref(d);
        }
}

static int on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        drain(userdata);
        return 0;
}

/* Before an attach decides: a loop device bound a moment ago has sent its
 * uevent by the time its LOOP_CONFIGURE returned. */
static void refresh(void *userdata)
{
        drain(userdata);
}

void uevent_monitor_free(struct uevent_monitor *u)
{
        if (!u)
                return;
        if (u->loops)
                registry_set_outside_loops(u->registry, NULL, NULL, NULL);
        outside_loops_free(u->loops);
        sd_event_source_disable_unref(u->io);
        udev_monitor_unref(u->mon);
        udev_unref(u->udev);
        free(u);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct uevent_monitor *, uevent_monitor_free);

int uevent_monitor_new(sd_event *ev, struct registry *registry, struct uevent_monitor **ret)
{
        _cleanup_(uevent_monitor_freep) struct uevent_monitor *u = calloc(1, sizeof(*u));
        int r;

        if (!u)
                return -ENOMEM;
        u->registry = registry;
        u->udev = udev_new();
        if (!u->udev)
                return -ENOMEM;
        /* "kernel": straight from the kernel, so it works without udevd. */
        u->mon = udev_monitor_new_from_netlink(u->udev, "kernel");
        if (!u->mon)
                return -EPROTONOSUPPORT;
        r = udev_monitor_filter_add_match_subsystem_devtype(u->mon, "block", "disk");
        /* A burst of thousands of attaches must not overflow the socket;
         * without the privilege for it the default size still works. */
        if (r >= 0 && udev_monitor_set_receive_buffer_size(u->mon, 8 * 1024 * 1024) < 0)
                log_debug("Cannot enlarge the uevent socket buffer.");
        if (r >= 0)
                r = udev_monitor_enable_receiving(u->mon);
        if (r < 0)
                return r;
        r = sd_event_add_io(ev, &u->io, udev_monitor_get_fd(u->mon), EPOLLIN, on_uevent, u);
        if (r < 0)
                return r;
        /* Receiving first, then the scan: no binding falls in between. */
        r = outside_loops_new(&u->loops);
        if (r >= 0)
                r = outside_loops_scan(u->loops);
        if (r < 0)
                return r;
        log_debug("%zu loop devices are bound on this host.", outside_loops_size(u->loops));
        registry_set_outside_loops(registry, u->loops, refresh, u);
        *ret = TAKE_PTR(u);
        return 0;
}

