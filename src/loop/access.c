/* access.c — access modes, parsed and printed (see access.h). */
#include "access.h"

#include <errno.h>
#include <string.h>

#include "macro.h"

int cache_access_parse(const char *mode, bool aliases, enum cache_access *ret)
{
        if (strcmp(mode, "r") == 0 || (aliases && strcmp(mode, "ro") == 0))
                *ret = CACHE_RO;
        else if (strcmp(mode, "w") == 0 || (aliases && strcmp(mode, "rw") == 0))
                *ret = CACHE_RW;
        else if (strcmp(mode, "w!") == 0)
                *ret = CACHE_RW_FORCE;
        else
                return -EINVAL;
        return 0;
}

static const struct {
        const char *mode, *name;
} access_names[] = {
        [CACHE_RO] = { "r", "read-only" },
        [CACHE_RW] = { "w", "read-write" },
        [CACHE_RW_FORCE] = { "w!", "read-write (w!)" },
};

const char *cache_access_mode(enum cache_access a)
{
        return (unsigned)a < ARRAY_SIZE(access_names) ? access_names[a].mode : "?";
}

const char *cache_access_name(enum cache_access a)
{
        return (unsigned)a < ARRAY_SIZE(access_names) ? access_names[a].name : "in an unknown mode";
}
