/* access.h — how a disk uses its backing file: read-only, read-write, or
 * read-write without the sharing check; parsed and printed here only.
 * Pure functions; owns nothing. */
#pragma once

#include <stdbool.h>

enum cache_access {
        CACHE_RO,        /* mode r */
        CACHE_RW,        /* mode w */
        CACHE_RW_FORCE,  /* mode w!: no sharing check */
};

/* "read-only", "read-write", "read-write (w!)": how a user holds its file. */
const char *cache_access_name(enum cache_access a);

/* The mode letters xenstore's `mode` and the control protocol's "access"
 * use: "r", "w", "w!"; with aliases, "ro" and "rw" too.  0 or -EINVAL. */
int cache_access_parse(const char *mode, bool aliases, enum cache_access *ret);
/* "r", "w" or "w!". */
const char *cache_access_mode(enum cache_access a);
