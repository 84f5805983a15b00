/* fuzz-fdstore-name.c — libFuzzer target for the names fds come back under
 * from the service manager's fd store after a restart (the daemon gives
 * "dev-<maj>-<min>-<diskseq>-<r|w>" and "fdset-<set>-<serial>-u<owner>"; an older
 * one gave "dev-<maj>-<min>-<diskseq>" and "fdset-<set>-<fd>"; anything
 * else may be there too).  No crash, no overflow, and a device's name is
 * accepted only in the one form a daemon writes. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdset.h"
#include "values.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                 \
        do {                                                                     \
                if (!(x)) {                                                      \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
                                __LINE__, #x);                                   \
                        abort();                                                 \
                }                                                                \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *name = malloc(size + 1), again[96], acc;
        unsigned ma, mi;
        uint64_t seq, serial;
        uint32_t set;
        uid_t owner;

        if (!name)
                return 0;
        memcpy(name, data, size);
        name[size] = '\0';

        if (val_parse_fdstore_dev(name, &ma, &mi, &seq, &acc) == 0) {
                CHECK(ma <= VAL_MAJOR_MAX && mi <= VAL_MINOR_MAX);
                CHECK(acc == 0 || acc == 'r' || acc == 'w');
                val_format_fdstore_dev(again, sizeof(again), ma, mi, seq, acc == 'w');
                if (acc)
                        CHECK(strcmp(again, name) == 0);
                else    /* an older daemon's name: the same with "-r" */
                        CHECK(strlen(again) == strlen(name) + 2 && strncmp(again, name, strlen(name)) == 0);
        }
        if (fdset_parse_store_name(name, &set, &serial, &owner) == 0) {
                uint32_t set2;
                uint64_t serial2;
                uid_t owner2;
                CHECK(set <= FDSET_ID_MAX && serial <= INT64_MAX && owner < UINT32_MAX);
                snprintf(again, sizeof(again), "fdset-%" PRIu32 "-%" PRIu64 "-u%u", set, serial, (unsigned)owner);
                CHECK(fdset_parse_store_name(again, &set2, &serial2, &owner2) == 0 && set2 == set &&
                      serial2 == serial && owner2 == owner);
        }
        free(name);
        return 0;
}
