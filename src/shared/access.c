/* access.c — access modes, parsed and printed (see access.h). */
#include "access.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "macro.h"

static const struct {
        const char *mode, *alias, *name;
} access_names[] = {
        [ACCESS_RO] = { "r", "ro", "read-only" },
        [ACCESS_RW] = { "w", "rw", "read-write" },
        [ACCESS_RW_FORCE] = { "w!", "w!", "read-write (w!)" },
};

int access_parse(const char *mode, bool aliases, enum access *ret)
{
        assert(mode && ret);
        for (size_t i = 0; i < ARRAY_SIZE(access_names); i++)
                if (strcmp(mode, access_names[i].mode) == 0 || (aliases && strcmp(mode, access_names[i].alias) == 0)) {
                        *ret = (enum access)i;
                        return 0;
                }
        return -EINVAL;
}

const char *access_mode(enum access a)
{
        return (unsigned)a < ARRAY_SIZE(access_names) ? access_names[a].mode : "?";
}

const char *access_name(enum access a)
{
        return (unsigned)a < ARRAY_SIZE(access_names) ? access_names[a].name : "in an unknown mode";
}

const char *access_alias(enum access a)
{
        return (unsigned)a < ARRAY_SIZE(access_names) ? access_names[a].alias : "?";
}
