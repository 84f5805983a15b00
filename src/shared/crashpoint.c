#include "crashpoint.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

void crashpoint(const char *name)
{
        const char *dir = getenv("XEN_LOOPD_CRASH_AT");
        char armed[PATH_MAX], fired[PATH_MAX], stop[PATH_MAX], stopped[PATH_MAX];

        if (!dir || !*dir)
                return;
        if ((size_t)snprintf(armed, sizeof(armed), "%s/%s.armed", dir, name) >= sizeof(armed) ||
            (size_t)snprintf(fired, sizeof(fired), "%s/%s.fired", dir, name) >= sizeof(fired) ||
            (size_t)snprintf(stop, sizeof(stop), "%s/%s.stop", dir, name) >= sizeof(stop) ||
            (size_t)snprintf(stopped, sizeof(stopped), "%s/%s.stopped", dir, name) >= sizeof(stopped))
                return;
        /* rename() succeeds for one caller only. */
        if (rename(armed, fired) == 0)
                raise(SIGKILL);
        if (rename(stop, stopped) == 0)
                raise(SIGSTOP);
}
