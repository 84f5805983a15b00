/* daemon.c — xen-loopd: options, start-up, the event loop and shutdown. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "config.h"
#include "daemon.h"
#include "fdstore.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "restart.h"
#include "time-util.h"
#include "values.h"

struct options {
        const char *socket;
        const char *home;
        gid_t group;
        bool direct_io;
        uint32_t block_size;
        uint64_t xenstore_timeout_usec;  /* 0: the connection's default */
        uint64_t open_timeout_usec;
};

static void help(void)
{
        printf("Usage: xen-loopd [OPTIONS]\n"
               "\n"
               "Sets up loop devices for Xen blkback disks and publishes them in xenstore.\n"
               "\n"
               "  -s, --socket PATH      control socket (default: $XEN_LOOPD_SOCKET or %s)\n"
               "      --home PATH        xenstore home of this backend domain\n"
               "                         (default: /local/domain/<domid>, read from xenstore)\n"
               "  -g, --group NAME       let members of this group use the control socket\n"
               "      --open-timeout SECONDS\n"
               "                         give the open of a backing file up to this long\n"
               "                         (default 10)\n"
               "      --xenstore-timeout SECONDS\n"
               "                         give xenstored up to this long to answer a request,\n"
               "                         then reconnect (default 10)\n"
               "      --direct-io        open backing files with O_DIRECT and use direct I/O\n"
               "      --block-size N     logical block size of loop devices (default 512)\n"
               "  -l, --log-level LEVEL  err, warning, notice, info (default) or debug\n"
               "  -h, --help             show this help\n"
               "      --version          show the version\n",
               XEN_LOOPD_DEFAULT_SOCKET);
}

static int parse_level(const char *s)
{
        static const struct {
                const char *name;
                int level;
        } levels[] = {
                { "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
                { "notice", LOG_NOTICE }, { "info", LOG_INFO }, { "debug", LOG_DEBUG },
        };

        for (size_t i = 0; i < ARRAY_SIZE(levels); i++)
                if (strcmp(s, levels[i].name) == 0)
                        return levels[i].level;
        return -EINVAL;
}

static int parse_group(const char *name, gid_t *ret)
{
        struct group *g = getgrnam(name);

        if (!g) {
                fprintf(stderr, "xen-loopd: no group named '%s'\n", name);
                return -EINVAL;
        }
        *ret = g->gr_gid;
        return 0;
}

static int parse_block_size(const char *arg, uint32_t *ret)
{
        char *end;
        unsigned long n = strtoul(arg, &end, 10);

        if (*end || n < 512 || n > 65536 || (n & (n - 1))) {
                fprintf(stderr, "xen-loopd: --block-size must be a power of two from 512 to 65536\n");
                return -EINVAL;
        }
        *ret = (uint32_t)n;
        return 0;
}

/* A timeout option: 1 to 3600 seconds. */
static int parse_seconds(const char *option, const char *arg, uint64_t *ret_usec)
{
        char *end;
        unsigned long n = strtoul(arg, &end, 10);

        if (*end || end == arg || n < 1 || n > 3600) {
                fprintf(stderr, "xen-loopd: --%s takes 1 to 3600 seconds\n", option);
                return -EINVAL;
        }
        *ret_usec = (uint64_t)n * USEC_PER_SEC;
        return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
        enum { OPT_VERSION = 0x100, OPT_HOME, OPT_DIRECT_IO, OPT_BLOCK_SIZE, OPT_XS_TIMEOUT, OPT_OPEN_TIMEOUT };
        static const struct option longopts[] = {
                { "socket", required_argument, NULL, 's' },
                { "home", required_argument, NULL, OPT_HOME },
                { "group", required_argument, NULL, 'g' },
                { "direct-io", no_argument, NULL, OPT_DIRECT_IO },
                { "block-size", required_argument, NULL, OPT_BLOCK_SIZE },
                { "xenstore-timeout", required_argument, NULL, OPT_XS_TIMEOUT },
                { "open-timeout", required_argument, NULL, OPT_OPEN_TIMEOUT },
                { "log-level", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {}
        };
        int c, level;

        o->socket = getenv("XEN_LOOPD_SOCKET");
        if (!o->socket || !*o->socket)
                o->socket = XEN_LOOPD_DEFAULT_SOCKET;
        o->group = (gid_t)-1;
        while ((c = getopt_long(argc, argv, "s:g:l:h", longopts, NULL)) >= 0) {
                switch (c) {
                case 's':
                        o->socket = optarg;
                        break;
                case OPT_HOME:
                        if (optarg[0] != '/' || strlen(optarg) > 256) {
                                fprintf(stderr, "xen-loopd: --home needs an absolute xenstore path\n");
                                return -EINVAL;
                        }
                        o->home = optarg;
                        break;
                case 'g':
                        if (parse_group(optarg, &o->group) < 0)
                                return -EINVAL;
                        break;
                case OPT_DIRECT_IO:
                        o->direct_io = true;
                        break;
                case OPT_BLOCK_SIZE:
                        if (parse_block_size(optarg, &o->block_size) < 0)
                                return -EINVAL;
                        break;
                case OPT_XS_TIMEOUT:
                        if (parse_seconds("xenstore-timeout", optarg, &o->xenstore_timeout_usec) < 0)
                                return -EINVAL;
                        break;
                case OPT_OPEN_TIMEOUT:
                        if (parse_seconds("open-timeout", optarg, &o->open_timeout_usec) < 0)
                                return -EINVAL;
                        break;
                case 'l':
                        level = parse_level(optarg);
                        if (level < 0) {
                                fprintf(stderr, "xen-loopd: unknown log level '%s'\n", optarg);
                                return -EINVAL;
                        }
                        log_set_max_level(level);
                        break;
                case 'h':
                        help();
                        return 0;
                case OPT_VERSION:
                        printf("xen-loopd %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "xen-loopd: unexpected argument '%s'\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void on_xs_watch(struct xsconn *x, const char *path, const char *token, void *userdata)
{
        struct daemon *d = userdata;

        vbd_manager_watch(d->vbd, path);
}


/* Finds this domain's home and starts watching its vbd backends: at
 * start-up, or when xenstored first answers. */
static int start_disks(struct daemon *d)
{
        const struct options *o = d->opts;
        struct vbd_config cfg;
        int r;

        if (o->home)
                d->home = strdup(o->home);
        else if ((r = xsconn_home(d->xs, &d->home)) == -ENOENT) {
                /* In dom0, xen-init-dom0 writes it at boot: wait for it rather
                 * than guess, which in a driver domain serves the wrong tree. */
                if (!d->home_waiting)
                        log_notice("This domain's domid is not in xenstore yet; waiting for it "
                                   "(--home names the xenstore home instead).");
                d->home_waiting = true;
                return -EAGAIN;
        } else if (r < 0)
                return log_error_errno(r, "Cannot read this domain's domid from xenstore: %m; "
                                       "give --home /local/domain/<domid>.");
        if (!d->home)
                return -ENOMEM;
        cfg = (struct vbd_config){
                .home = d->home,
                .direct_io = o->direct_io,
                .block_size = o->block_size,
                .open_timeout_usec = d->open_timeout_usec,
                .open_fdset = daemon_open_fdset,
                .release_fdset = daemon_release_fdset,
                .fdset_userdata = d,
                .first_scan_done = restart_first_scan_done,
                .first_scan_userdata = d,
        };
        r = vbd_manager_new(d->event, d->xs, d->registry, &cfg, &d->vbd);
        if (r < 0)
                return log_error_errno(r, "Cannot watch %s/backend/vbd: %m.", d->home);
        log_info("Watching %s/backend/vbd.", d->home);
        return 0;
}

#define HOME_RETRY_USEC (250 * 1000ULL)

/* Starts serving disks once xenstored answers; until this domain's domid
 * is there, looks again every HOME_RETRY_USEC. */
static void try_start_disks(struct daemon *d)
{
        int r = start_disks(d);

        if (r == -EAGAIN) {
                uint64_t now;
                sd_event_now(d->event, CLOCK_MONOTONIC, &now);
                sd_event_source_set_time(d->home_retry, now + HOME_RETRY_USEC);
                sd_event_source_set_enabled(d->home_retry, SD_EVENT_ONESHOT);
        } else if (r < 0)
                sd_event_exit(d->event, -EIO);
}

static int on_home_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;

        if (!d->vbd && xsconn_connected(d->xs))
                try_start_disks(d);
        return 0;
}

static void on_xs_state(struct xsconn *x, bool connected, void *userdata)
{
        struct daemon *d = userdata;

        if (connected && !d->vbd)
                try_start_disks(d);
        else if (connected)
                vbd_manager_resync(d->vbd);
        if (d->notify)
                sd_notifyf(0, "STATUS=%s", connected ? "Connected to xenstored again." : "Reconnecting to xenstored...");
}

static const struct xsconn_ops xs_ops = {
        .watch = on_xs_watch,
        .state = on_xs_state,
};

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;

        log_info("Received SIGHUP: looking at every disk in xenstore again.");
        vbd_manager_resync(d->vbd);
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;

        log_info("Received %s, stopping.", strsignal((int)si->ssi_signo));
        return sd_event_exit(d->event, 0);
}

#define STATUS_INTERVAL_USEC (5 * 1000000ULL)

/* STATUS= for systemctl status; cheap enough to refresh every few seconds.
 * A time source fires once: it is armed again each time, from now. */
static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        uint64_t now;

        sd_notifyf(0, "STATUS=%zu disks, %zu loop devices; xenstore %s.", vbd_manager_size(d->vbd),
                   registry_n_entries(d->registry), xsconn_connected(d->xs) ? "connected" : "reconnecting");
        if (sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now) < 0)
                now = usec;
        sd_event_source_set_time(s, now + STATUS_INTERVAL_USEC);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}



static void on_disconnect(uint64_t conn, void *userdata)
{
        struct daemon *d = userdata;

        fdset_connection_closed(d->fdsets, conn);
}


static void daemon_done(struct daemon *d)
{
        struct hashmap_iter it = HASHMAP_ITER_INIT;
        struct attachment *a;
        size_t held = 0;

        /* Exiting is not letting go: nothing leaves the fd store now. */
        fdset_registry_quiet(d->fdsets);
        if (d->registry)
                registry_set_hooks(d->registry, NULL);
        ctl_server_free(d->ctl, true);
        vbd_manager_free(d->vbd);
        if (d->attachments) {
                while (hashmap_iterate(d->attachments, &it, (void **)&a, NULL))
                        attachment_free(d, a);
                hashmap_free(d->attachments);
        }
        uevent_monitor_free(d->uevent);
        sd_event_source_disable_unref(d->spare_check);
        sd_event_source_disable_unref(d->home_retry);
        sd_event_source_disable_unref(d->spare);
        fdset_registry_free(d->fdsets);
        if (d->registry) {
                held = registry_n_entries(d->registry);
                registry_free(d->registry);
        }
        if (held && d->notify)
                log_info("%zu device(s) stay in the service manager's fd store: a restart takes them back, "
                         "a stop lets them go.", held);
        else if (held)
                log_info("Let go of %zu device(s); each goes once its last user closes it.", held);
        xsconn_free(d->xs);
        sd_event_unref(d->event);
        free(d->home);
        backing_workers_stop();
}

/* A loop device the kernel has to create costs the attach that needs it a
 * quarter of a millisecond (and more as devices grow in number).  After
 * each iteration that did something, if the next attach would pay that,
 * a spare is prepared, at idle priority: once nothing else is pending. */
static int on_spare(sd_event_source *s, void *userdata)
{
        int r = loop_prepare_spare();

        if (r < 0)
                log_debug_errno(r, "Cannot prepare a spare loop device: %m.");
        return 0;
}

static int on_spare_check(sd_event_source *s, void *userdata)
{
        struct daemon *d = userdata;

        if (loop_spare_wanted())
                sd_event_source_set_enabled(d->spare, SD_EVENT_ONESHOT);
        return 0;
}

static int setup_spare(struct daemon *d)
{
        int r;

        r = sd_event_add_defer(d->event, &d->spare, on_spare, d);
        if (r < 0)
                return r;
        sd_event_source_set_priority(d->spare, SD_EVENT_PRIORITY_IDLE);
        sd_event_source_set_enabled(d->spare, SD_EVENT_OFF);
        return sd_event_add_post(d->event, &d->spare_check, on_spare_check, d);
}

/* Below this many fds, a busy host runs short (see raise_fd_limit()). */
#define FD_LIMIT_WANTED 4096

/* Every held device, fd set fd and control connection is an fd.  Outside its
 * systemd unit (LimitNOFILE=) the soft limit is often 1024: a client opening
 * its allowed 1024 connections would exhaust it, and every disk would then
 * fail with EMFILE.  Take what the hard limit allows; sd-event uses epoll,
 * nothing here select(). */
static void raise_fd_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return;
        if (rl.rlim_cur < rl.rlim_max) {
                struct rlimit want = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
                if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                        rl = want;
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < FD_LIMIT_WANTED)
                log_warning("Only %llu file descriptors allowed: control connections and held devices "
                            "may run short; raise the limit (LimitNOFILE=, ulimit -n) to %d or more.",
                            (unsigned long long)rl.rlim_cur, FD_LIMIT_WANTED);
}

/* The event loop, and the signals that end or reload the daemon. */
static int setup_event_loop(struct daemon *d)
{
        sigset_t mask;
        int r;

        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_new(&d->event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %m.");
        sd_event_add_signal(d->event, NULL, SIGTERM, on_signal, d);
        sd_event_add_signal(d->event, NULL, SIGINT, on_signal, d);
        sd_event_add_signal(d->event, NULL, SIGHUP, on_sighup, d);
        return 0;
}

/* The registry, the fd sets and the attachments, with what the fd store handed
 * back adopted into them; the uevent monitor and the spare device. */
static int setup_devices(struct daemon *d, struct fdstore_fd *stored, size_t n_stored)
{
        int r;

        r = registry_new(&d->registry);
        if (r < 0)
                return r;
        if (d->notify)
                registry_set_hooks(d->registry, &restart_registry_hooks);
        r = fdset_registry_new(d->notify ? &restart_fdset_hooks : NULL, &d->fdsets);
        if (r < 0)
                return r;
        restart_take_back(d, stored, n_stored);
        d->attachments = hashmap_new(hash_string, equal_string);
        if (!d->attachments)
                return -ENOMEM;
        r = uevent_monitor_new(d->event, d->registry, &d->uevent);
        if (r < 0)
                return log_error_errno(r, "Cannot listen to kernel uevents: %m.");
        r = setup_spare(d);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the event loop: %m.");
        return 0;
}

/* Without xenstored yet (the daemon may start first), the connection keeps
 * trying; the disks are served from the moment it answers. */
static int setup_xenstore(struct daemon *d, const struct options *o)
{
        int r;

        r = sd_event_add_time(d->event, &d->home_retry, CLOCK_MONOTONIC, 0, 0, on_home_retry, d);
        if (r < 0)
                return r;
        sd_event_source_set_enabled(d->home_retry, SD_EVENT_OFF);
        r = xsconn_new(d->event, &xs_ops, d, &d->xs);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the xenstore connection: %m.");
        if (o->xenstore_timeout_usec)
                xsconn_set_timeout(d->xs, o->xenstore_timeout_usec);
        if (!xsconn_connected(d->xs)) {
                log_notice("xenstored does not answer yet; waiting for it.");
                return 0;
        }
        r = start_disks(d);
        if (r == -EAGAIN) {
                try_start_disks(d);
                return 0;
        }
        return r < 0 ? r : 0;
}

static int setup_control(struct daemon *d, const struct options *o)
{
        struct ctl_server_config cfg = {
                .path = o->socket,
                .listen_fd = fdstore_control_socket(),
                .allowed_gid = o->group,
                .commands = daemon_commands,
                .n_commands = daemon_n_commands,
                .userdata = d,
                .on_disconnect = on_disconnect,
        };
        int r;

        r = ctl_server_new(d->event, &cfg, &d->ctl);
        if (r < 0)
                return log_error_errno(r, "Cannot listen on %s: %m.", o->socket);
        return 0;
}

static int run(const struct options *o)
{
        struct daemon d = {
                .direct_io = o->direct_io,
                .block_size = o->block_size,
                .open_timeout_usec = o->open_timeout_usec ? o->open_timeout_usec : BACKING_OPEN_TIMEOUT_DEFAULT_USEC,
                .opts = o,
        };
        struct fdstore_fd *stored = NULL;
        size_t n_stored = 0;
        int r;

        d.started_usec = now_usec();
        d.notify = !!getenv("NOTIFY_SOCKET");
        raise_fd_limit();
        r = setup_event_loop(&d);
        if (r < 0)
                goto out;
        r = fdstore_collect(&stored, &n_stored);
        if (r < 0)
                log_warning_errno(r, "Cannot take back stored fds: %m.");
        if (!d.notify)
                log_notice("No service manager: devices held for blkback will not survive a restart of xen-loopd.");
        r = setup_devices(&d, stored, n_stored);
        if (r < 0)
                goto out;
        r = setup_xenstore(&d, o);
        if (r < 0)
                goto out;
        r = setup_control(&d, o);
        if (r < 0)
                goto out;
        if (d.notify) {
                sd_event_add_time(d.event, NULL, CLOCK_MONOTONIC, 0, 0, on_status_timer, &d);
                sd_notify(0, "READY=1");
        }
        log_info("xen-loopd %s ready, control socket %s.", PACKAGE_VERSION, o->socket);
        r = sd_event_loop(d.event);
        if (d.notify)
                sd_notify(0, "STOPPING=1");
out:
        fdstore_fds_free(stored, n_stored);
        daemon_done(&d);
        return r;
}

int main(int argc, char **argv)
{
        struct options o = {};
        int r;

        r = parse_args(argc, argv, &o);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        r = run(&o);
        return r < 0 ? 1 : 0;
}
