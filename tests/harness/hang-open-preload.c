/*
 * hang-open-preload — makes open() of any path containing "/hang/" block
 * for as long as the file named by $HANG_OPEN_WHILE exists, as an open on a
 * network file system that stopped answering does.  Preloaded into the
 * daemon by tests of its bounded opens.
 */

/* The build's _FILE_OFFSET_BITS=64 turns open() into open64() in glibc's
 * headers: define both symbols, unrenamed. */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void maybe_hang(const char *path)
{
        const char *flag = getenv("HANG_OPEN_WHILE");
        struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };

        if (!flag || !path || !strstr(path, "/hang/"))
                return;
        while (access(flag, F_OK) == 0)
                nanosleep(&ts, NULL);
}

typedef int (*open_fn)(const char *, int, ...);

static int call_next(const char *name, const char *path, int flags, mode_t mode)
{
        open_fn next = (open_fn)dlsym(RTLD_NEXT, name);

        maybe_hang(path);
        return next(path, flags, mode);
}

#define WRAP(name)                                                \
        int name(const char *path, int flags, ...)                \
        {                                                         \
                mode_t mode = 0;                                  \
                if (flags & (O_CREAT | O_TMPFILE)) {              \
                        va_list ap;                               \
                        va_start(ap, flags);                      \
                        mode = va_arg(ap, mode_t);                \
                        va_end(ap);                               \
                }                                                 \
                return call_next(#name, path, flags, mode);       \
        }

WRAP(open)
WRAP(open64)
