/*
 * loopd-bench — the benchmark's driver: a toolstack that adds and removes
 * vbd disks exactly as libxl 4.17 does, runs their hotplug scripts as libxl
 * runs them, and timestamps every step with CLOCK_MONOTONIC from xenstore
 * watches (never by polling with forked clients).
 *
 *   loopd-bench attach|detach --disks FILE --mode stock|script|watch|none
 *               [--script PATH] [--sequential] [--home H] [--loop-prefix DIR]
 *               [--label L] [--out FILE] [--timeout S] [--no-state4]
 *   loopd-bench remove-loops N...   LOOP_CTL_REMOVE each /dev/loopN (unbound
 *                                   devices the benchmark created)
 *   loopd-bench xs-probe [N]        what xenstored takes for the requests a
 *                                   disk's attach makes (one round trip each,
 *                                   N times; JSON on stdout): a read, and the
 *                                   daemon's publishing transaction
 *   loopd-bench bound-loops PREFIX  the numbers of the loop devices bound to
 *                                   a file under PREFIX
 *
 * Modes: stock and script write script=PATH and run it (the stock block
 * script, or block-loopd); watch writes no script and leaves the disk to
 * xen-loopd's watch; none writes the script node it is given (if any) but
 * runs nothing, and expects nobody but blkback (attach completes at
 * InitWait): the toolstack's own part, which every mode pays.  With the
 * stock script's path, xen-loopd leaves such disks alone.
 *
 * FILE has one disk a line: `domid vdev params mode` (mode r, w or w!).
 *
 * The model of libxl (tools/libs/light/libxl_device.c, libxl_disk.c):
 *  - attach: the guests' directories exist first (libxl__domain_make; not
 *    timed).  Every disk is written in its own transaction, as
 *    libxl__device_disk_add does (the transaction is a copy of
 *    tests/harness/xs-libxl.c's, which follows libxl node by node); then
 *    libxl waits for the backend's InitWait and runs the disk's script `add`
 *    (script modes).  libxl adds the disks of a domain concurrently, and
 *    several domains may be created at once: here every disk of every
 *    domain in FILE is in flight together, driven from one event loop, as
 *    one toolstack process serving many domain creations does.  Backends
 *    are written back to back, with pending watch events handled after each
 *    write, and each script is started the moment its InitWait is seen.
 *  - detach: online=0 and state=5 in one transaction per disk (all disks
 *    concurrently), wait for state 6, run the script `remove` (script
 *    modes), then remove frontend, libxl copy and backend in one
 *    transaction (libxl__device_destroy); the domains' directories go
 *    afterwards (not timed).
 *  - scripts: argv {script, "add"|"remove"}, the caller's environment plus
 *    script=, XENBUS_TYPE=vbd, XENBUS_PATH=backend/vbd/D/N (relative to the
 *    home), XENBUS_BASE_PATH=backend; stdin /dev/null, stdout to stderr,
 *    SIGKILL after 40 s (LIBXL_HOTPLUG_TIMEOUT).
 *  - --sequential: one disk at a time, the next written only when the
 *    previous one is complete (the cost of one attach on an idle host).
 *
 * Times: a disk's latency runs from the commit of its backend transaction
 * to the watch event that shows hotplug-status = connected (attach), or from
 * the commit of its close transaction to the commit of its destroy
 * (detach).  The total runs from the first write to the last disk complete:
 * connected and, in script modes, its script exited.  Each disk is then
 * also waited for until blkback is Connected (state 4; reported, not in the
 * total, since libxl does not wait for it; --no-state4 skips that), so a
 * --sequential run starts each disk on a settled host.  Two connections are
 * used: one that only watches `<home>/backend/vbd`, and one without watches
 * for requests, so requests never pass through libxenstore's reader thread.
 *
 * A watch event's time is its arrival: a dedicated thread does nothing but
 * take the events of the watch connection, stamp each with CLOCK_MONOTONIC
 * and queue it for the main loop (an eventfd that the loop polls).  The
 * main loop, the toolstack, handles them only between its own transactions
 * (about 3 ms each in a 40-disk burst); stamped there, every figure of a
 * burst would carry the toolstack's own queueing.  What libxl does about an
 * event (a script started at InitWait, the destroy after state 6) is still
 * done when the main loop handles it.  The value read on an event may be a
 * later write than the event's own (the toolstack's own state=1, handled
 * after blkback wrote 2): it takes the time of the event of that write
 * (node_stamp()).
 *
 * Prints one JSON object (to --out or stdout).  Exit status 0 when every
 * disk made it, 1 otherwise (the JSON says which and why).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "hashmap.h"
#include "libxl-emu.h"
#include "macro.h"

#define LIBXL_INIT_TIMEOUT_S 10
#define LIBXL_DESTROY_TIMEOUT_S 10
#define LIBXL_HOTPLUG_TIMEOUT_S 40
#define NSEC_PER_MSEC 1000000LL

extern char **environ;

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct hashmap *, hashmap_free)
#define _cleanup_fclose_ _cleanup_(fclosep)

static void json_string(FILE *f, const char *s);

/* none: no script and no daemon, the toolstack's part alone (writes and
 * InitWait): the floor every mode pays. */
enum mode { MODE_STOCK, MODE_SCRIPT, MODE_WATCH, MODE_NONE };
static const char *const mode_names[] = { "stock", "script", "watch", "none" };

static bool runs_script(enum mode m) { return m == MODE_STOCK || m == MODE_SCRIPT; }

/* The watch events that have reached the main loop for one node of a disk
 * (its `state` or its `hotplug-status`), for stamping what a read of the
 * node shows: node_stamp(). */
struct arrivals {
        unsigned n;             /* arrived */
        unsigned used;          /* used up: by a stamp, or the toolstack's own write */
        int64_t first_unused;   /* the arrival of event used + 1, when n > used */
        int64_t last;           /* the arrival of event n */
};

struct disk {
        uint32_t domid, devid;
        char *vdev, *params, mode[3];
        char *be, *fe, *lx, *rel;       /* rel: backend/vbd/D/N */
        char *loopdev;                  /* physical-device-path */

        /* every time is CLOCK_MONOTONIC in ns, 0 = not yet */
        int64_t t_begin;                /* its transaction started */
        int64_t t_written;              /* committed (attach or close) */
        int64_t t_initwait, t_connected, t_state4;
        int64_t t_closed, t_destroyed;
        int64_t t_spawn, t_exit;
        int64_t deadline;               /* of the running script */
        struct arrivals a_state, a_hotplug;
        pid_t pid;
        int exit_status;
        bool written, done, failed, script_done;
        char *error;
};

static struct {
        struct xs_handle *xs;   /* requests */
        struct xs_handle *xw;   /* the watch */
        const char *home;
        char *base;             /* <home>/backend/vbd */
        size_t base_len;
        enum mode mode;
        const char *script;
        bool detach, sequential, want_state4;
        const char *loop_prefix, *label, *out;
        int timeout_s;
        struct disk *disks;
        size_t n_disks;
        struct hashmap *by_be;  /* backend path -> disk */
        int sigfd;
        size_t running;         /* scripts */
        size_t n_done;
} B = {
        .want_state4 = true,
        .timeout_s = 600,
        .sigfd = -1,
};

static int64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void _printf_(1, 2) msg(const char *fmt, ...)
{
        va_list ap;

        fputs("loopd-bench: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static _Noreturn void _printf_(1, 2) die(const char *fmt, ...)
{
        va_list ap;

        fputs("loopd-bench: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(2);
}

static char *_printf_(1, 2) xasprintf(const char *fmt, ...)
{
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                die("out of memory");
        return s;
}

static void fail_disk(struct disk *d, const char *fmt, ...) _printf_(2, 3);
static void fail_disk(struct disk *d, const char *fmt, ...)
{
        va_list ap;

        if (d->failed)
                return;
        va_start(ap, fmt);
        if (vasprintf(&d->error, fmt, ap) < 0)
                d->error = NULL;
        va_end(ap);
        msg("%s: %s", d->be, d->error ? d->error : "failed");
        d->failed = true;
        if (!d->done) {
                d->done = true;
                B.n_done++;
        }
}

/* ---- libxl's xenstore traffic (tests/harness/libxl-emu.c) --------------- */

/* libxl__device_disk_add's transaction (tests/harness/libxl-emu.c).
 * Returns 0 or -errno. */
static int write_backend(struct disk *d)
{
        _cleanup_free_ char *script = NULL;
        struct libxl_disk ld = {
                .domid = d->domid,
                .devid = d->devid,
                .backend_domid = 0,
                .vdev = d->vdev,
                .params = d->params,
                .mode = d->mode,
                .fe = d->fe,
                .be = d->be,
                .lx = d->lx,
        };

        /* none writes the script node it is given, and runs nothing. */
        if (B.script && B.mode != MODE_WATCH) {
                script = libxl_script_path(B.script);
                if (!script)
                        return -ENOMEM;
                ld.script = script;
        }
        return libxl_disk_add(B.xs, &ld);
}

static int destroy_device(struct disk *d)
{
        return libxl_disk_destroy(B.xs, d->fe, d->be, d->lx);
}

static int start_close(struct disk *d)
{
        return libxl_disk_start_close(B.xs, d->fe, d->be, false);
}

/* What libxl removes of a destroyed domain, once its devices are gone. */
static void destroy_domain(uint32_t domid)
{
        _cleanup_free_ char *dom = xasprintf("/local/domain/%" PRIu32, domid);
        _cleanup_free_ char *lx = xasprintf("/libxl/%" PRIu32, domid);
        _cleanup_free_ char *vm = xasprintf("/vm/00000000-0000-0000-0000-%012" PRIx32, domid);
        _cleanup_free_ char *bedom = xasprintf("%s/%" PRIu32, B.base, domid);

        xs_rm(B.xs, XBT_NULL, dom);
        xs_rm(B.xs, XBT_NULL, lx);
        xs_rm(B.xs, XBT_NULL, vm);
        xs_rm(B.xs, XBT_NULL, bedom);
}

static char *read_node(const struct disk *d, const char *node)
{
        _cleanup_free_ char *p = xasprintf("%s/%s", d->be, node);
        unsigned len;

        return xs_read(B.xs, XBT_NULL, p, &len);
}

/* ---- hotplug scripts, as libxl runs them -------------------------------- */

static int spawn_script(struct disk *d, const char *action)
{
        _cleanup_free_ char *e_script = NULL, *e_path = NULL;
        const char *argv[] = { B.script, action, NULL };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, dflt;
        size_t n = 0;
        char **envp;
        int r;

        while (environ[n])
                n++;
        envp = calloc(n + 5, sizeof(*envp));
        if (!envp)
                return -ENOMEM;
        e_script = xasprintf("script=%s", B.script);
        e_path = xasprintf("XENBUS_PATH=%s", d->rel);
        n = 0;
        for (char **e = environ; *e; e++)
                if (strncmp(*e, "script=", 7) != 0 && strncmp(*e, "XENBUS_", 7) != 0)
                        envp[n++] = *e;
        envp[n++] = e_script;
        envp[n++] = (char *)"XENBUS_TYPE=vbd";
        envp[n++] = e_path;
        envp[n++] = (char *)"XENBUS_BASE_PATH=backend";
        envp[n] = NULL;

        sigemptyset(&none);
        sigemptyset(&dflt);
        sigaddset(&dflt, SIGCHLD);
        sigaddset(&dflt, SIGPIPE);
        sigaddset(&dflt, SIGINT);
        sigaddset(&dflt, SIGTERM);
        sigaddset(&dflt, SIGHUP);
        sigaddset(&dflt, SIGQUIT);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &dflt);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);

        d->t_spawn = now_ns();
        r = posix_spawn(&d->pid, B.script, &fa, &attr, (char *const *)argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        free(envp);
        if (r != 0) {
                d->pid = 0;
                return -r;
        }
        d->deadline = d->t_spawn + LIBXL_HOTPLUG_TIMEOUT_S * 1000000000LL;
        B.running++;
        return 0;
}

/* ---- the watch thread --------------------------------------------------- */

/* A watch event, stamped with CLOCK_MONOTONIC as it reached the watch
 * thread. */
struct event {
        struct event *next;
        int64_t t;
        char **w;               /* from xs_check_watch(): one allocation */
};

/* The watch thread does nothing but take the events of B.xw as they
 * arrive, stamp them and queue them for the main loop, which polls
 * W.ready.  The toolstack's loop is busy for milliseconds at a time (a
 * transaction is about fifty requests); an event stamped only when the loop
 * got round to it would carry that queueing in every figure. */
static struct {
        pthread_t thread;
        bool running;
        int watch_fd;           /* xs_fileno(B.xw) */
        int ready;              /* eventfd: events queued (nonblocking) */
        int stop;               /* eventfd: the thread is to end */
        pthread_mutex_t lock;   /* guards what follows */
        struct event *head, **tail;
        int error;              /* the errno the thread ended on */
} W = {
        .watch_fd = -1,
        .ready = -1,
        .stop = -1,
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .tail = &W.head,
};

/* The main loop's own list: events taken from W, not handled yet. */
static struct {
        struct event *head, **tail;
} M = { .tail = &M.head };

static void *watch_thread(void *arg)
{
        struct pollfd p[2] = {
                { .fd = W.watch_fd, .events = POLLIN },
                { .fd = W.stop, .events = POLLIN },
        };
        int err = 0;

        while (!err) {
                if (poll(p, 2, -1) < 0) {
                        if (errno != EINTR)
                                err = errno;
                        continue;
                }
                if (p[1].revents)
                        break;
                for (;;) {
                        char **w = xs_check_watch(B.xw);
                        int64_t t = now_ns();
                        struct event *e;

                        if (!w) {
                                if (errno != EAGAIN)
                                        err = errno ? errno : EIO;
                                break;
                        }
                        e = malloc(sizeof(*e));
                        if (!e) {
                                free(w);
                                err = ENOMEM;
                                break;
                        }
                        *e = (struct event){ .t = t, .w = w };
                        pthread_mutex_lock(&W.lock);
                        *W.tail = e;
                        W.tail = &e->next;
                        pthread_mutex_unlock(&W.lock);
                        if (eventfd_write(W.ready, 1) < 0) {
                                err = errno;
                                break;
                        }
                }
        }
        if (err) {
                pthread_mutex_lock(&W.lock);
                W.error = err;
                pthread_mutex_unlock(&W.lock);
                (void)eventfd_write(W.ready, 1);
        }
        return arg;
}

/* After xs_watch() on B.xw, and with the signals blocked (the thread
 * inherits the mask, so they all reach the signalfd). */
static void watcher_start(void)
{
        int r;

        W.watch_fd = xs_fileno(B.xw);
        W.ready = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        W.stop = eventfd(0, EFD_CLOEXEC);
        if (W.watch_fd < 0 || W.ready < 0 || W.stop < 0)
                die("setting up the watch thread: %m");
        r = pthread_create(&W.thread, NULL, watch_thread, NULL);
        if (r != 0)
                die("starting the watch thread: %s", strerror(r));
        W.running = true;
}

static void free_events(struct event *e)
{
        while (e) {
                struct event *next = e->next;
                free(e->w);
                free(e);
                e = next;
        }
}

/* Ends the thread, and only then closes its connection: B.xw is never
 * freed under it.  The other ways out (die(), terminate()) end the process
 * with B.xw open and the thread still in poll(). */
static void watcher_stop(void)
{
        if (W.running) {
                if (eventfd_write(W.stop, 1) < 0)
                        die("stopping the watch thread: %m");
                pthread_join(W.thread, NULL);
                W.running = false;
        }
        free_events(W.head);
        W.head = NULL;
        W.tail = &W.head;
        free_events(M.head);
        M.head = NULL;
        M.tail = &M.head;
        if (W.ready >= 0)
                close(W.ready);
        if (W.stop >= 0)
                close(W.stop);
        W.ready = W.stop = -1;
        if (B.xw)
                xs_close(B.xw);
        B.xw = NULL;
}

/* The disk a watched path belongs to, and the node's name (after the last
 * slash); NULL for anything else. */
static struct disk *disk_of(const char *path, const char **node)
{
        char key[512];
        const char *slash;
        size_t len;

        if (strncmp(path, B.base, B.base_len) != 0 || path[B.base_len] != '/')
                return NULL;
        slash = strrchr(path, '/');
        len = (size_t)(slash - path);
        if (len >= sizeof(key))
                return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        *node = slash + 1;
        return hashmap_get(B.by_be, key);
}

static void count_arrival(const struct event *e)
{
        const char *node;
        struct disk *d = disk_of(e->w[XS_WATCH_PATH], &node);
        struct arrivals *a;

        if (!d || !d->written)
                return;
        if (strcmp(node, "state") == 0)
                a = &d->a_state;
        else if (strcmp(node, "hotplug-status") == 0)
                a = &d->a_hotplug;
        else
                return;
        if (++a->n == a->used + 1)
                a->first_unused = e->t;
        a->last = e->t;
}

/* Moves what the watch thread has queued to the main loop's list, and
 * counts the arrivals. */
static void pull_events(void)
{
        struct event *e, **tail = M.tail;
        int err;

        pthread_mutex_lock(&W.lock);
        *M.tail = W.head;
        if (W.head)
                M.tail = W.tail;
        W.head = NULL;
        W.tail = &W.head;
        err = W.error;
        pthread_mutex_unlock(&W.lock);
        if (err)
                die("the watch on %s: %s", B.base, strerror(err));
        for (e = *tail; e; e = e->next)
                count_arrival(e);
}

/* The time of what a read of a node of d has just shown: the arrival of
 * the watch event of the write that made it, not the time the main loop got
 * round to an event.  The value read may be newer than the event being
 * handled (the toolstack's own state=1, handled after blkback wrote 2), so
 * the event is found among those that arrived for the node and are not
 * used up yet by an earlier stamp (or by the toolstack's own write): *first
 * is the first of them (the earliest write since the last stamp: where a
 * threshold such as InitWait was crossed), *last the latest (the write of
 * the value read).  When the write's event has not reached the watch thread
 * yet, the read is the first sign of it: both are now.  Never earlier than
 * the disk's commit. */
static void node_stamp(struct disk *d, struct arrivals *a, int64_t *first, int64_t *last)
{
        if (a->n <= a->used)
                pull_events();
        if (a->n > a->used) {
                *first = a->first_unused;
                *last = a->last;
                a->used = a->n;
        } else {
                *first = *last = now_ns();
        }
        if (*first < d->t_written)
                *first = d->t_written;
        if (*last < d->t_written)
                *last = d->t_written;
}

/* ---- per-disk progress -------------------------------------------------- */

static void mark_done(struct disk *d)
{
        if (d->done)
                return;
        d->done = true;
        B.n_done++;
}

static void attach_check_done(struct disk *d)
{
        if (d->done || !d->t_connected)
                return;
        if (runs_script(B.mode) && !d->script_done)
                return;
        if (B.want_state4 && !d->t_state4)
                return;
        mark_done(d);
}

static void detach_destroy(struct disk *d)
{
        int r = destroy_device(d);

        if (r < 0)
                return fail_disk(d, "destroying the device: %s", strerror(-r));
        d->t_destroyed = now_ns();
        mark_done(d);
}

/* The times are the events' arrivals at the watch thread (node_stamp());
 * what is done about them (a script started) is done now, as libxl does it
 * when its loop handles the event. */
static void on_state(struct disk *d)
{
        _cleanup_free_ char *v = read_node(d, "state");
        bool initwait, state4;
        int64_t first, last;
        int s;

        if (!v)
                return; /* gone: the destroy of this very disk, or a failure seen elsewhere */
        s = atoi(v);
        if (!B.detach) {
                initwait = s >= 2 && !d->t_initwait;
                state4 = s == 4 && !d->t_state4;
                if (!initwait && !state4)
                        return;
                node_stamp(d, &d->a_state, &first, &last);
                if (initwait) {
                        d->t_initwait = first;
                        if (B.mode == MODE_NONE)
                                return mark_done(d);
                        if (runs_script(B.mode)) {
                                int r = spawn_script(d, "add");
                                if (r < 0)
                                        return fail_disk(d, "cannot run %s: %s", B.script, strerror(-r));
                        }
                }
                if (state4) {
                        d->t_state4 = last;
                        attach_check_done(d);
                }
                return;
        }
        if (s == 6 && !d->t_closed) {
                node_stamp(d, &d->a_state, &first, &last);
                d->t_closed = last;
                if (!runs_script(B.mode))
                        return detach_destroy(d);
                int r = spawn_script(d, "remove");
                if (r < 0) /* libxl ignores a failing remove; destroy anyway */
                        detach_destroy(d);
        }
}

static void on_hotplug_status(struct disk *d)
{
        _cleanup_free_ char *v = read_node(d, "hotplug-status");
        int64_t first, last;

        if (!v || d->t_connected)
                return;
        if (strcmp(v, "connected") == 0) {
                /* The first write of it: xen-loopd and block-loopd may both
                 * write connected. */
                node_stamp(d, &d->a_hotplug, &first, &last);
                d->t_connected = first;
                d->loopdev = read_node(d, "physical-device-path");
                return attach_check_done(d);
        }
        if (strcmp(v, "error") == 0 || strcmp(v, "busy") == 0) {
                _cleanup_free_ char *e = read_node(d, "hotplug-error");
                fail_disk(d, "hotplug-status %s: %s", v, e ? e : "(no hotplug-error)");
        }
}

static void on_script_exit(struct disk *d, int status)
{
        d->pid = 0;
        d->t_exit = now_ns();
        d->exit_status = status;
        d->script_done = true;
        B.running--;
        if (B.detach)
                return detach_destroy(d);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                _cleanup_free_ char *e = read_node(d, "hotplug-error");
                return fail_disk(d, "%s add exited with %s %d: %s", B.script,
                                 WIFEXITED(status) ? "status" : "signal",
                                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                                 e ? e : "(no hotplug-error)");
        }
        attach_check_done(d);
}

/* ---- the event loop ----------------------------------------------------- */

static void handle_watch(const char *path)
{
        const char *node;
        struct disk *d = disk_of(path, &node);

        if (!d || !d->written || d->done)
                return;
        if (strcmp(node, "state") == 0)
                on_state(d);
        else if (!B.detach && strcmp(node, "hotplug-status") == 0)
                on_hotplug_status(d);
}

/* Handles the events the watch thread has queued, in their order. */
static void handle_events(void)
{
        struct event *e;

        pull_events();
        while ((e = M.head)) {
                /* Off the list first: a handler may pull more onto it. */
                M.head = e->next;
                if (!M.head)
                        M.tail = &M.head;
                handle_watch(e->w[XS_WATCH_PATH]);
                free(e->w);
                free(e);
        }
}

/* Stopped from outside: no script outlives us. */
static _Noreturn void terminate(int sig)
{
        for (size_t i = 0; i < B.n_disks; i++)
                if (B.disks[i].pid > 0)
                        kill(B.disks[i].pid, SIGKILL);
        for (size_t i = 0; i < B.n_disks; i++)
                if (B.disks[i].pid > 0)
                        waitpid(B.disks[i].pid, NULL, 0);
        msg("stopped by signal %d", sig);
        _exit(128 + sig);
}

static void reap(void)
{
        struct signalfd_siginfo si;
        int status;
        pid_t pid;

        while (read(B.sigfd, &si, sizeof(si)) == sizeof(si))
                if (si.ssi_signo != SIGCHLD)
                        terminate((int)si.ssi_signo);
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                for (size_t i = 0; i < B.n_disks; i++)
                        if (B.disks[i].pid == pid) {
                                on_script_exit(&B.disks[i], status);
                                break;
                        }
}

static void kill_overdue(int64_t now)
{
        for (size_t i = 0; i < B.n_disks && B.running; i++) {
                struct disk *d = &B.disks[i];
                if (d->pid > 0 && now >= d->deadline) {
                        msg("%s: %s ran for %d s; killing it, as libxl does", d->be, B.script,
                            LIBXL_HOTPLUG_TIMEOUT_S);
                        kill(d->pid, SIGKILL);
                        d->deadline = INT64_MAX;
                }
        }
}

/* Handles what is pending, waiting up to timeout_ms for something. */
static void pump(int timeout_ms)
{
        struct pollfd p[2] = {
                { .fd = W.ready, .events = POLLIN },
                { .fd = B.sigfd, .events = POLLIN },
        };
        eventfd_t n;

        if (B.running && timeout_ms > 100)
                timeout_ms = 100;
        if (poll(p, 2, timeout_ms) < 0 && errno != EINTR)
                die("poll: %m");
        /* Reset before the queue is taken: an event queued after it wakes
         * the next poll. */
        if ((p[0].revents & POLLIN) && eventfd_read(W.ready, &n) < 0 && errno != EAGAIN)
                die("reading the watch thread's eventfd: %m");
        handle_events();
        if (p[1].revents & POLLIN)
                reap();
        if (B.running)
                kill_overdue(now_ns());
}

static void start_disk(struct disk *d)
{
        int r;

        /* The watch event of the toolstack's own write of `state` (1, or 5
         * on close) is used up from the start: a state read that shows more
         * is somebody else's write.  (A close of a backend in state 6
         * writes no state; its read just below is the first sign then.) */
        d->a_state.used = 1;
        d->t_begin = now_ns();
        if (!B.detach) {
                r = write_backend(d);
                d->t_written = now_ns();
                d->written = true;
                if (r < 0)
                        fail_disk(d, "writing the backend: %s", strerror(-r));
                return;
        }
        r = start_close(d);
        d->t_written = now_ns();
        d->written = true;
        if (r == 1)
                fail_disk(d, "the backend was gone already");
        else if (r < 0)
                fail_disk(d, "closing the backend: %s", strerror(-r));
        else {
                /* The backend may be Closed already, with no event to come. */
                on_state(d);
        }
}

static int64_t phase_deadline(void)
{
        return now_ns() + (int64_t)B.timeout_s * 1000000000LL;
}

static void run_until_done(size_t target, int64_t deadline)
{
        while (B.n_done < target) {
                int64_t left = deadline - now_ns();
                if (left <= 0)
                        break;
                pump((int)(left / NSEC_PER_MSEC) + 1);
        }
}

/* ---- loop devices ------------------------------------------------------- */

/* Loop devices bound to a file under the prefix; with print, their
 * numbers go to stdout. */
static size_t scan_bound_loops(bool print)
{
        _cleanup_(closedirp) DIR *dir = NULL;
        struct dirent *de;
        size_t n = 0, plen;

        if (!B.loop_prefix)
                return 0;
        plen = strlen(B.loop_prefix);
        dir = opendir("/sys/block");
        if (!dir)
                return 0;
        while ((de = readdir(dir))) {
                char path[300], buf[4096];
                ssize_t k;
                int fd;

                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                k = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (k > 0 && (size_t)k >= plen && strncmp(buf, B.loop_prefix, plen) == 0) {
                        n++;
                        if (print)
                                printf("%s\n", de->d_name + 4);
                }
        }
        return n;
}

static size_t count_bound_loops(void)
{
        return scan_bound_loops(false);
}

static bool loopdev_bound_here(const char *dev)
{
        char path[300], buf[4096];
        size_t plen = B.loop_prefix ? strlen(B.loop_prefix) : 0;
        ssize_t k;
        int fd;

        if (!dev || strncmp(dev, "/dev/", 5) != 0)
                return false;
        snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", dev + 5);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        k = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        return k > 0 && (!plen || ((size_t)k >= plen && strncmp(buf, B.loop_prefix, plen) == 0));
}

/* Calls cb once for each distinct device the disks published; returns how
 * many times cb returned true (every device when cb is NULL). */
static size_t each_loopdev(bool (*cb)(const char *dev, void *data), void *data)
{
        _cleanup_(hashmap_freep) struct hashmap *seen = hashmap_new(hash_string, equal_string);
        size_t n = 0;

        if (!seen)
                die("out of memory");
        for (size_t i = 0; i < B.n_disks; i++) {
                const char *dev = B.disks[i].loopdev;
                if (!dev || hashmap_get(seen, dev) || hashmap_put(seen, dev, (void *)dev) < 0)
                        continue;
                if (!cb || cb(dev, data))
                        n++;
        }
        return n;
}

static size_t count_distinct_loopdevs(void)
{
        return each_loopdev(NULL, NULL);
}

struct printer {
        FILE *f;
        size_t n;
};

static bool print_one_loopdev(const char *dev, void *data)
{
        struct printer *p = data;

        fputs(p->n++ ? ", " : "", p->f);
        json_string(p->f, dev);
        return true;
}

/* "loopdevs": the distinct devices published, so that the benchmark can
 * remove those it added once they are unbound. */
static void print_loopdevs(FILE *f)
{
        struct printer p = { .f = f };

        fputs("  \"loopdevs\": [", f);
        each_loopdev(print_one_loopdev, &p);
        fputs("],\n", f);
}

static bool still_bound(const char *dev, void *data)
{
        return loopdev_bound_here(dev);
}

static size_t count_loopdevs_still_bound(void)
{
        return each_loopdev(still_bound, NULL);
}

static int cmd_remove_loops(int argc, char **argv)
{
        _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        int removed = 0;

        if (ctl < 0)
                die("/dev/loop-control: %m");
        for (int i = 0; i < argc; i++) {
                char *end;
                long n = strtol(argv[i], &end, 10);
                if (*end || n < 0)
                        continue;
                /* The kernel refuses (EBUSY) a bound or open device. */
                if (ioctl(ctl, LOOP_CTL_REMOVE, (int)n) >= 0)
                        removed++;
        }
        printf("%d\n", removed);
        return 0;
}

/* ---- statistics and output ---------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static int64_t pct(const int64_t *v, size_t n, double p)
{
        size_t rank;

        if (!n)
                return 0;
        rank = (size_t)(p / 100.0 * (double)n + 0.999999);
        if (rank < 1)
                rank = 1;
        if (rank > n)
                rank = n;
        return v[rank - 1];
}

static void print_ms(FILE *f, int64_t ns)
{
        fprintf(f, "%.3f", (double)ns / 1e6);
}

/* "name": {"n":.., "p50":.., "p99":.., "mean":.., "min":.., "max":..} of
 * end - start over the disks that have both (ms). */
static void print_stats(FILE *f, const char *name, size_t off_start, size_t off_end, bool comma,
                        bool samples)
{
        int64_t *v = calloc(B.n_disks ? B.n_disks : 1, sizeof(*v));
        double sum = 0;
        size_t n = 0;

        if (!v)
                die("out of memory");
        for (size_t i = 0; i < B.n_disks; i++) {
                const char *d = (const char *)&B.disks[i];
                int64_t s = *(const int64_t *)(d + off_start), e = *(const int64_t *)(d + off_end);
                if (s && e && !B.disks[i].failed)
                        v[n++] = e - s;
        }
        qsort(v, n, sizeof(*v), cmp_i64);
        for (size_t i = 0; i < n; i++)
                sum += (double)v[i];
        fprintf(f, "  \"%s\": {\"n\": %zu", name, n);
        if (n) {
                fputs(", \"p50\": ", f);
                print_ms(f, pct(v, n, 50));
                fputs(", \"p99\": ", f);
                print_ms(f, pct(v, n, 99));
                fputs(", \"mean\": ", f);
                print_ms(f, (int64_t)(sum / (double)n));
                fputs(", \"min\": ", f);
                print_ms(f, v[0]);
                fputs(", \"max\": ", f);
                print_ms(f, v[n - 1]);
        }
        fprintf(f, "}%s\n", comma ? "," : "");
        if (samples) {
                fprintf(f, "  \"%s_samples\": [", name);
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                fputs(", ", f);
                        print_ms(f, v[i]);
                }
                fputs("],\n", f);
        }
        free(v);
}

static void json_string(FILE *f, const char *s)
{
        fputc('"', f);
        for (; s && *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20)
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}

#define OFF(field) offsetof(struct disk, field)

static void report(int64_t t0, int64_t t_all_written, int64_t t_end, size_t loops_bound,
                   size_t loops_left, int64_t t_loops_gone, size_t n_domains)
{
        _cleanup_fclose_ FILE *owned = NULL;
        FILE *f = stdout;
        size_t failures = 0, n_err = 0;

        if (B.out) {
                owned = fopen(B.out, "we");
                if (!owned)
                        die("%s: %m", B.out);
                f = owned;
        }
        for (size_t i = 0; i < B.n_disks; i++)
                failures += B.disks[i].failed;

        fputs("{\n  \"label\": ", f);
        json_string(f, B.label ? B.label : "");
        fprintf(f, ",\n  \"mode\": \"%s\",\n  \"action\": \"%s\",\n", mode_names[B.mode],
                B.detach ? "detach" : "attach");
        fprintf(f, "  \"concurrency\": \"%s\",\n", B.sequential ? "sequential" : "concurrent");
        fprintf(f, "  \"disks\": %zu,\n  \"domains\": %zu,\n  \"failures\": %zu,\n", B.n_disks,
                n_domains, failures);
        fputs("  \"total_ms\": ", f);
        print_ms(f, t_end - t0);
        fputs(",\n  \"writes_ms\": ", f);
        print_ms(f, t_all_written - t0);
        fputs(",\n", f);
        if (!B.detach) {
                print_stats(f, "latency_ms", OFF(t_written),
                            B.mode == MODE_NONE ? OFF(t_initwait) : OFF(t_connected), true, true);
                print_stats(f, "write_ms", OFF(t_begin), OFF(t_written), true, false);
                print_stats(f, "initwait_ms", OFF(t_written), OFF(t_initwait), true, false);
                if (runs_script(B.mode)) {
                        print_stats(f, "script_ms", OFF(t_spawn), OFF(t_exit), true, false);
                        print_stats(f, "until_script_exit_ms", OFF(t_written), OFF(t_exit), true, false);
                }
                print_stats(f, "state4_ms", OFF(t_written), OFF(t_state4), true, false);
                fprintf(f, "  \"loops_distinct\": %zu,\n", count_distinct_loopdevs());
                print_loopdevs(f);
                fprintf(f, "  \"loops_bound\": %zu,\n", loops_bound);
        } else {
                print_stats(f, "latency_ms", OFF(t_written), OFF(t_destroyed), true, true);
                print_stats(f, "write_ms", OFF(t_begin), OFF(t_written), true, false);
                print_stats(f, "closed_ms", OFF(t_written), OFF(t_closed), true, false);
                if (runs_script(B.mode))
                        print_stats(f, "script_ms", OFF(t_spawn), OFF(t_exit), true, false);
                fprintf(f, "  \"loops_left_at_end\": %zu,\n", loops_left);
                fputs("  \"loops_gone_ms\": ", f);
                if (t_loops_gone)
                        print_ms(f, t_loops_gone - t0);
                else
                        fputs("null", f);
                fputs(",\n", f);
        }
        fputs("  \"errors\": [", f);
        for (size_t i = 0; i < B.n_disks; i++) {
                if (!B.disks[i].failed)
                        continue;
                if (n_err++ == 10) {
                        fputs(", \"...\"", f);
                        break;
                }
                if (n_err > 1)
                        fputs(", ", f);
                json_string(f, B.disks[i].error ? B.disks[i].error : B.disks[i].be);
        }
        fputs("]\n}\n", f);
}

/* ---- set-up ------------------------------------------------------------- */

static void load_disks(const char *file)
{
        _cleanup_fclose_ FILE *f = fopen(file, "re");
        char *line = NULL;
        size_t cap = 0, alloc = 0;

        if (!f)
                die("%s: %m", file);
        while (getline(&line, &cap, f) > 0) {
                char vdev[64], params[4096], mode[8];
                unsigned long domid;
                struct disk *d;
                int devid;

                if (line[0] == '#' || line[0] == '\n')
                        continue;
                if (sscanf(line, "%lu %63s %4095s %7s", &domid, vdev, params, mode) != 4)
                        die("%s: bad line: %s", file, line);
                if (strcmp(mode, "r") != 0 && strcmp(mode, "w") != 0 && strcmp(mode, "w!") != 0)
                        die("%s: bad mode %s", file, mode);
                devid = libxl_vdev_to_devid(vdev);
                if (devid < 0 || domid == 0 || domid >= 0x7FF0)
                        die("%s: bad domid or vdev: %s", file, line);
                if (B.n_disks == alloc) {
                        alloc = alloc ? alloc * 2 : 64;
                        B.disks = realloc(B.disks, alloc * sizeof(*B.disks));
                        if (!B.disks)
                                die("out of memory");
                }
                d = &B.disks[B.n_disks++];
                memset(d, 0, sizeof(*d));
                d->domid = (uint32_t)domid;
                d->devid = (uint32_t)devid;
                d->vdev = xasprintf("%s", vdev);
                d->params = xasprintf("%s", params);
                snprintf(d->mode, sizeof(d->mode), "%.2s", mode);
        }
        free(line);
        if (!B.n_disks)
                die("%s: no disks", file);
}

static void setup_disks(void)
{
        B.by_be = hashmap_new(hash_string, equal_string);
        if (!B.by_be)
                die("out of memory");
        for (size_t i = 0; i < B.n_disks; i++) {
                struct disk *d = &B.disks[i];
                d->be = xasprintf("%s/%" PRIu32 "/%" PRIu32, B.base, d->domid, d->devid);
                d->fe = xasprintf("/local/domain/%" PRIu32 "/device/vbd/%" PRIu32, d->domid, d->devid);
                d->lx = xasprintf("/libxl/%" PRIu32 "/device/vbd/%" PRIu32, d->domid, d->devid);
                d->rel = xasprintf("backend/vbd/%" PRIu32 "/%" PRIu32, d->domid, d->devid);
                if (hashmap_put(B.by_be, d->be, d) < 0)
                        die("disk %s listed twice", d->be);
        }
}

/* Distinct domids, in the order of the file. */
static size_t domains(uint32_t **ret)
{
        _cleanup_(hashmap_freep) struct hashmap *seen = hashmap_new(hash_string, equal_string);
        uint32_t *v = calloc(B.n_disks, sizeof(*v));
        char (*keys)[16] = calloc(B.n_disks, sizeof(*keys));
        size_t n = 0;

        if (!seen || !v || !keys)
                die("out of memory");
        for (size_t i = 0; i < B.n_disks; i++) {
                snprintf(keys[i], sizeof(keys[i]), "%" PRIu32, B.disks[i].domid);
                if (hashmap_get(seen, keys[i]))
                        continue;
                if (hashmap_put(seen, keys[i], keys[i]) < 0)
                        die("out of memory");
                v[n++] = B.disks[i].domid;
        }
        hashmap_free(TAKE_PTR(seen));
        free(keys);
        *ret = v;
        return n;
}

/* xenstored's cost per request grows with its store; this measures it at a
 * level, on a scratch directory of its own, outside any disk. */
static int cmd_xs_probe(int n)
{
        static const char *const dir = "/loopd-bench-probe/vbd";
        static const char *const nodes[] = { "physical-device", "physical-device-path", "diskseq",
                                             "hotplug-status" };
        struct xs_handle *h = xs_open(XS_OPEN_SOCKETONLY);
        char path[128];
        int64_t t0, t_read, t_tx;

        if (!h || n <= 0)
                die("xs-probe: %s", h ? "a count above 0, please" : strerror(errno));
        snprintf(path, sizeof(path), "%s/params", dir);
        if (!xs_write(h, XBT_NULL, path, "/srv/probe.img", 14))
                die("xs-probe: writing %s: %m", path);
        t0 = now_ns();
        for (int i = 0; i < n; i++) {
                unsigned len;
                free(xs_read(h, XBT_NULL, path, &len));
        }
        t_read = now_ns() - t0;
        t0 = now_ns();
        for (int i = 0; i < n; i++) {
                /* As the daemon publishes: the directory and physical-device
                 * read, four writes, the commit. */
                xs_transaction_t t = xs_transaction_start(h);
                unsigned len;

                if (t == XBT_NULL)
                        die("xs-probe: transaction: %m");
                free(xs_read(h, t, dir, &len));
                snprintf(path, sizeof(path), "%s/physical-device", dir);
                free(xs_read(h, t, path, &len));
                for (size_t k = 0; k < ARRAY_SIZE(nodes); k++) {
                        snprintf(path, sizeof(path), "%s/%s", dir, nodes[k]);
                        xs_write(h, t, path, "7:0", 3);
                }
                if (!xs_transaction_end(h, t, false) && errno != EAGAIN)
                        die("xs-probe: commit: %m");
        }
        t_tx = now_ns() - t0;
        xs_rm(h, XBT_NULL, "/loopd-bench-probe");
        xs_close(h);
        printf("{\"count\": %d, \"read_us\": %.1f, \"publish_tx_us\": %.1f}\n", n, t_read / 1e3 / n,
               t_tx / 1e3 / n);
        return 0;
}

static void usage(FILE *f)
{
        fputs("Usage:\n"
              "  loopd-bench attach|detach --disks FILE --mode stock|script|watch|none [--script PATH]\n"
              "              [--sequential] [--home H] [--loop-prefix DIR] [--label L] [--out FILE]\n"
              "              [--timeout S] [--no-state4]\n"
              "  loopd-bench remove-loops N...\n"
              "  loopd-bench xs-probe [N]\n"
              "  loopd-bench bound-loops PREFIX\n", f);
}

static void xs_closep(struct xs_handle **h)
{
        if (*h)
                xs_close(*h);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "disks", required_argument, NULL, 'd' },
                { "mode", required_argument, NULL, 'm' },
                { "script", required_argument, NULL, 's' },
                { "sequential", no_argument, NULL, 'q' },
                { "home", required_argument, NULL, 'H' },
                { "loop-prefix", required_argument, NULL, 'p' },
                { "label", required_argument, NULL, 'L' },
                { "out", required_argument, NULL, 'o' },
                { "timeout", required_argument, NULL, 't' },
                { "no-state4", no_argument, NULL, '4' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_(xs_closep) struct xs_handle *xs = NULL;
        const char *cmd, *disks = NULL;
        _cleanup_free_ uint32_t *doms = NULL;
        int64_t t0, t_all_written, t_end, deadline, t_loops_gone = 0;
        size_t n_doms, loops_bound = 0, loops_left = 0;
        sigset_t mask;
        int c;

        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        cmd = argv[1];
        if (strcmp(cmd, "remove-loops") == 0)
                return cmd_remove_loops(argc - 2, argv + 2);
        if (strcmp(cmd, "xs-probe") == 0 && argc <= 3)
                return cmd_xs_probe(argc == 3 ? atoi(argv[2]) : 300);
        if (strcmp(cmd, "bound-loops") == 0 && argc == 3) {
                B.loop_prefix = argv[2];
                scan_bound_loops(true);
                return 0;
        }
        if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(cmd, "attach") != 0 && strcmp(cmd, "detach") != 0) {
                usage(stderr);
                return 2;
        }
        B.detach = cmd[0] == 'd';
        B.home = "/local/domain/0";
        B.mode = (enum mode)-1;
        optind = 2;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'd': disks = optarg; break;
                case 'm':
                        for (size_t i = 0; i < ARRAY_SIZE(mode_names); i++)
                                if (strcmp(optarg, mode_names[i]) == 0)
                                        B.mode = (enum mode)i;
                        if ((int)B.mode < 0)
                                die("--mode takes stock, script, watch or none");
                        break;
                case 's': B.script = optarg; break;
                case 'q': B.sequential = true; break;
                case 'H': B.home = optarg; break;
                case 'p': B.loop_prefix = optarg; break;
                case 'L': B.label = optarg; break;
                case 'o': B.out = optarg; break;
                case 't': B.timeout_s = atoi(optarg); break;
                case '4': B.want_state4 = false; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (!disks || (int)B.mode < 0 || optind != argc) {
                usage(stderr);
                return 2;
        }
        if (runs_script(B.mode) && (!B.script || B.script[0] != '/'))
                die("--mode %s needs --script with an absolute path", mode_names[B.mode]);
        if (B.timeout_s <= 0)
                die("--timeout must be positive");
        B.base = xasprintf("%s/backend/vbd", B.home);
        B.base_len = strlen(B.base);
        load_disks(disks);
        setup_disks();
        n_doms = domains(&doms);

        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                die("sigprocmask: %m");
        B.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (B.sigfd < 0)
                die("signalfd: %m");

        B.xs = xs = xs_open(XS_OPEN_SOCKETONLY);
        B.xw = xs_open(XS_OPEN_SOCKETONLY);
        if (!xs || !B.xw)
                die("cannot reach xenstored (XENSTORED_PATH=%s): %m", getenv("XENSTORED_PATH") ?: "unset");
        if (!xs_watch(B.xw, B.base, "loopd-bench"))
                die("watching %s: %m", B.base);
        watcher_start();

        if (!B.detach) {
                for (size_t i = 0; i < n_doms; i++) {
                        int r = libxl_domain_create(B.xs, doms[i], NULL);
                        if (r < 0)
                                die("creating domain %" PRIu32 ": %s", doms[i], strerror(-r));
                }
        } else {
                for (size_t i = 0; i < B.n_disks; i++)
                        B.disks[i].loopdev = read_node(&B.disks[i], "physical-device-path");
        }
        /* The watch fires once when set; start from a quiet connection. */
        pump(0);

        deadline = phase_deadline();
        t0 = now_ns();
        if (B.sequential) {
                for (size_t i = 0; i < B.n_disks; i++) {
                        start_disk(&B.disks[i]);
                        run_until_done(i + 1, deadline);
                        if (B.n_done < i + 1)
                                break;
                }
                t_all_written = B.disks[B.n_disks - 1].t_written ?: now_ns();
        } else {
                for (size_t i = 0; i < B.n_disks; i++) {
                        start_disk(&B.disks[i]);
                        pump(0);
                }
                t_all_written = now_ns();
                run_until_done(B.n_disks, deadline);
        }
        /* No event matters any more. */
        watcher_stop();

        /* The total ends at the last disk complete; without state 4 for an
         * attach (libxl does not wait for it). */
        t_end = t0;
        for (size_t i = 0; i < B.n_disks; i++) {
                struct disk *d = &B.disks[i];
                int64_t e;
                if (!d->done && !d->failed)
                        fail_disk(d, "not done after %d s", B.timeout_s);
                if (B.detach)
                        e = d->t_destroyed;
                else if (B.mode == MODE_NONE)
                        e = d->t_initwait;
                else
                        e = d->t_connected > d->t_exit ? d->t_connected : d->t_exit;
                if (e > t_end)
                        t_end = e;
        }

        if (!B.detach) {
                loops_bound = count_bound_loops();
        } else {
                loops_left = count_loopdevs_still_bound();
                /* Autoclear follows blkback's close; see how long it lags. */
                for (int64_t stop = now_ns() + 10000 * NSEC_PER_MSEC; now_ns() < stop;) {
                        if (count_loopdevs_still_bound() == 0) {
                                t_loops_gone = now_ns();
                                break;
                        }
                        usleep(1000);
                }
                if (t_loops_gone && loops_left == 0)
                        t_loops_gone = t_end;
                for (size_t i = 0; i < n_doms; i++)
                        destroy_domain(doms[i]);
        }
        /* Scripts still running (a failure) are killed: nothing outlives us. */
        for (size_t i = 0; i < B.n_disks; i++)
                if (B.disks[i].pid > 0) {
                        kill(B.disks[i].pid, SIGKILL);
                        waitpid(B.disks[i].pid, NULL, 0);
                }

        report(t0, t_all_written, t_end, loops_bound, loops_left, t_loops_gone, n_doms);
        for (size_t i = 0; i < B.n_disks; i++)
                if (B.disks[i].failed)
                        return 1;
        return 0;
}
