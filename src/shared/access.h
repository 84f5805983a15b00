/* access.h — how a disk uses its backing file: read-only, read-write, or
 * read-write without the sharing check; parsed and printed here only, for
 * every layer (xenstore's `mode`, the control protocol, xen-loopctl's
 * listing).  Pure functions; owns nothing. */
#pragma once

#include <stdbool.h>

enum access {
        ACCESS_RO,        /* mode r */
        ACCESS_RW,        /* mode w */
        ACCESS_RW_FORCE,  /* mode w!: no sharing check */
};

/* "read-only", "read-write", "read-write (w!)": how a user holds its file. */
const char *access_name(enum access a);

/* The mode letters xenstore's `mode` and the control protocol's "access"
 * use: "r", "w", "w!"; with aliases, "ro" and "rw" too.  0 or -EINVAL. */
int access_parse(const char *mode, bool aliases, enum access *ret);
/* "r", "w" or "w!". */
const char *access_mode(enum access a);
/* "ro", "rw" or "w!": the spelling xen-loopctl shows and takes. */
const char *access_alias(enum access a);
