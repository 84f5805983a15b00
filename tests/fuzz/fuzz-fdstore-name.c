/* fuzz-fdstore-name.c — libFuzzer target for the names fds come back under
 * from the service manager's fd store after a restart (the daemon gives
 * "dev-<maj>-<min>-<diskseq>" and "fdset-<set>-<fd>"; anything else may be
 * there too).  No crash, no overflow, and a loop device's name is accepted
 * only in the one form the daemon writes. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdset.h"
#include "xsvalue.h"

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
        char *name = malloc(size + 1), again[96];
        unsigned ma, mi;
        uint64_t seq;
        uint32_t set;
        int fd;

        if (!name)
                return 0;
        memcpy(name, data, size);
        name[size] = '\0';

        if (xsv_parse_fdstore_dev(name, &ma, &mi, &seq)) {
                CHECK(ma <= XSV_MAJOR_MAX && mi <= XSV_MINOR_MAX);
                xsv_format_fdstore_dev(again, sizeof(again), ma, mi, seq);
                CHECK(strcmp(again, name) == 0);
        }
        if (fdset_parse_store_name(name, &set, &fd) == 0) {
                uint32_t set2;
                int fd2;
                CHECK(fd >= 0);
                snprintf(again, sizeof(again), "fdset-%" PRIu32 "-%d", set, fd);
                CHECK(fdset_parse_store_name(again, &set2, &fd2) == 0 && set2 == set && fd2 == fd);
        }
        free(name);
        return 0;
}
