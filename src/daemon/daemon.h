/* daemon.h — the state of one xen-loopd process, shared by its main loop
 * (daemon.c) and its control commands (commands.c).  daemon.c owns every
 * member; commands only use them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "registry.h"
#include "control.h"
#include "fdset.h"
#include "hashmap.h"
#include "uevent.h"
#include "vbd.h"
#include "xsconn.h"

struct options;

struct daemon {
        sd_event *event;
        struct xsconn *xs;
        struct registry *registry;
        struct vbd_manager *vbd;
        struct uevent_monitor *uevent;
        struct ctl_server *ctl;
        struct hashmap *attachments;  /* name -> struct attachment (direct attach) */
        struct fdset_registry *fdsets;
        sd_event_source *spare_check, *spare;  /* see on_spare_check() */
        sd_event_source *home_retry;  /* looks for our domid again */
        bool home_waiting;            /* said so once */
        char *home;
        uint64_t started_usec;
        bool direct_io;
        uint32_t block_size;
        uint64_t open_timeout_usec;   /* see backing_open_bounded() */
        bool notify;                  /* under a service manager */
        const struct options *opts;
};

/* A device attached through the control socket, held until detach. */
struct attachment {
        char *name;
        uid_t owner;                  /* the peer that attached it */
        struct registry_user *user;
        struct fdset_use *fdset_use;  /* when set up from an fd set */
};

/* For the vbd manager: "/dev/fdset/N" of a disk. */
int daemon_open_fdset(void *userdata, uint32_t fdset_id, bool writable, bool direct_io,
                      struct backing *ret, void **ret_token, char *err, size_t errlen);
void daemon_release_fdset(void *userdata, void *token);

/* The command table handed to the control server. */
extern const struct ctl_command daemon_commands[];
extern const size_t daemon_n_commands;

void attachment_free(struct daemon *d, struct attachment *a);
