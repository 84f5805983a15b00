/* log.h — logging to stderr with sd-daemon "<N>" level prefixes, so journald
 * files each line at the right priority.  Owns the global log level.
 *
 * A log line is a sentence: a capital letter (unless it opens with a name: a
 * path, a device, a program) and a final period.  Error texts handed to
 * someone else (errbuf_set(), hotplug-error, control replies) are clauses
 * instead: lower case, no final period, for the caller to compose. */
#pragma once

#include <syslog.h>
#include "macro.h"

void log_set_max_level(int level);
int log_get_max_level(void);
/* Prefix every line with the program name (for the CLI, which is not under
 * journald). */
void log_set_prefix(const char *prefix);

/* Logs and returns r (a -errno), so errors can be logged and passed on.
 * In fmt, %m is strerror(-r) when r < 0, strerror(errno) otherwise. */
int log_full(int level, int r, const char *fmt, ...) _printf_(3, 4);

#define log_debug(...) log_full(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, 0, __VA_ARGS__)
#define log_warning_errno(r, ...) log_full(LOG_WARNING, (r), __VA_ARGS__)
#define log_error_errno(r, ...) log_full(LOG_ERR, (r), __VA_ARGS__)
#define log_debug_errno(r, ...) log_full(LOG_DEBUG, (r), __VA_ARGS__)
