#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int max_level = LOG_INFO;
static const char *log_prefix;

void log_set_max_level(int level) { max_level = level; }
int log_get_max_level(void) { return max_level; }
void log_set_prefix(const char *prefix) { log_prefix = prefix; }

int log_full(int level, int r, const char *fmt, ...)
{
        char buf[2048];
        va_list ap;
        int saved = errno;

        if (level > max_level)
                return r;
        /* %m then prints r: log_error_errno(r, "Cannot open %s: %m", path). */
        if (r < 0)
                errno = -r;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (log_prefix)
                fprintf(stderr, "%s: %s\n", log_prefix, buf);
        else
                fprintf(stderr, "<%d>%s\n", level, buf);
        errno = saved;
        return r;
}
