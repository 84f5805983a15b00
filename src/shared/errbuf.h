/* errbuf.h — the one-sentence error buffers the modules fill for their
 * callers (a hotplug-error, a control reply).  Header-only; owns nothing. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

/* Formats into err (when there is one); never overflows. */
static inline void errbuf_set(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static inline void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (!err || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}
