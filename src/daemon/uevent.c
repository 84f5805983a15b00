#include "uevent.h"

#include <errno.h>
#include <libudev.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

struct uevent_monitor {
        struct udev *udev;
        struct udev_monitor *mon;
        sd_event_source *io;
        struct cache *cache;
};

static int on_uevent(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct uevent_monitor *u = userdata;
        struct udev_device *d;

        /* Drain: one wake-up may carry many events. */
        while ((d = udev_monitor_receive_device(u->mon))) {
                const char *action = udev_device_get_action(d);
                dev_t devnum = udev_device_get_devnum(d);

                if (action && devnum && (strcmp(action, "change") == 0 || strcmp(action, "remove") == 0) &&
                    cache_device_changed(u->cache, devnum) > 0)
                        log_debug("%s: the kernel dropped it (%s).", udev_device_get_devnode(d) ?: "?", action);
                udev_device_unref(d);
        }
        return 0;
}

int uevent_monitor_new(sd_event *ev, struct cache *cache, struct uevent_monitor **ret)
{
        struct uevent_monitor *u = calloc(1, sizeof(*u));
        int r;

        if (!u)
                return -ENOMEM;
        u->cache = cache;
        u->udev = udev_new();
        if (!u->udev) {
                r = -ENOMEM;
                goto fail;
        }
        /* "kernel": straight from the kernel, so it works without udevd. */
        u->mon = udev_monitor_new_from_netlink(u->udev, "kernel");
        if (!u->mon) {
                r = -EPROTONOSUPPORT;
                goto fail;
        }
        r = udev_monitor_filter_add_match_subsystem_devtype(u->mon, "block", "disk");
        /* A burst of thousands of attaches must not overflow the socket;
         * without the privilege for it the default size still works. */
        if (r >= 0 && udev_monitor_set_receive_buffer_size(u->mon, 8 * 1024 * 1024) < 0)
                log_debug("Cannot enlarge the uevent socket buffer.");
        if (r >= 0)
                r = udev_monitor_enable_receiving(u->mon);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(ev, &u->io, udev_monitor_get_fd(u->mon), EPOLLIN, on_uevent, u);
        if (r < 0)
                goto fail;
        *ret = u;
        return 0;
fail:
        uevent_monitor_free(u);
        return r;
}

void uevent_monitor_free(struct uevent_monitor *u)
{
        if (!u)
                return;
        sd_event_source_disable_unref(u->io);
        udev_monitor_unref(u->mon);
        udev_unref(u->udev);
        free(u);
}
