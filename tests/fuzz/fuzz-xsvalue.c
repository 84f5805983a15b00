/* fuzz-xsvalue.c — libFuzzer target for the parsers of xenstore values a
 * toolstack or driver domain writes (params, mode, physical-device, diskseq,
 * state, path components, /dev/fdset/N) and for the helpers that quote them
 * in hotplug-error.  Whatever the bytes: no crash, no overflow, and what is
 * accepted formats back to the same value. */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

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

static void check_physdev(const char *s)
{
        char again[32];
        dev_t d, d2;

        if (val_parse_physdev(s, &d) < 0)
                return;
        CHECK(major(d) <= VAL_MAJOR_MAX && minor(d) <= VAL_MINOR_MAX);
        snprintf(again, sizeof(again), "%x:%x", major(d), minor(d));
        CHECK(val_parse_physdev(again, &d2) == 0 && d2 == d);
}

static void check_diskseq(const char *s)
{
        char again[32];
        uint64_t v, v2;

        if (val_parse_diskseq(s, &v) < 0)
                return;
        CHECK(strlen(s) <= 16);
        snprintf(again, sizeof(again), "%" PRIx64, v);
        CHECK(val_parse_diskseq(again, &v2) == 0 && v2 == v);
}

static void check_numbers(const char *s, const uint8_t *data, size_t size)
{
        char again[32];
        uint32_t u;
        int i;

        if (val_parse_u32((const char *)data, size, &u) == 0) {
                /* Canonical: formats back to exactly the bytes given. */
                snprintf(again, sizeof(again), "%" PRIu32, u);
                CHECK(strlen(again) == size && memcmp(again, data, size) == 0);
        }
        if (val_parse_int(s, &i) == 0) {
                int i2;
                snprintf(again, sizeof(again), "%d", i);
                CHECK(val_parse_int(again, &i2) == 0 && i2 == i);
        }
        if (fdset_parse_path(s, &u) == 0) {
                char path[64];
                snprintf(path, sizeof(path), "/dev/fdset/%" PRIu32, u);
                CHECK(strcmp(path, s) == 0);
        }
}

static void check_mode(const char *s)
{
        enum access a;

        if (val_parse_mode(s, &a) == 0)
                CHECK(strcmp(s, "r") == 0 || strcmp(s, "w") == 0 || strcmp(s, "w!") == 0);
}

static void check_params(const uint8_t *data, size_t size)
{
        char err[256] = "";
        int r = val_check_params((const char *)data, size, err, sizeof(err));
        bool ok = size > 0 && !memchr(data, 0, size) && size < PATH_MAX;

        CHECK((r == 0) == ok);
        CHECK(r == 0 || err[0]);
}

/* The message helpers: fed the input split in two at the first newline
 * (the text, then the value it quotes). */
static void check_quoting(const char *s, size_t len)
{
        const char *nl = strchr(s, '\n');
        char *text = strndup(s, nl ? (size_t)(nl - s) : len);
        const char *quote = nl ? nl + 1 : "";
        char small[17], big[512], *copy;

        if (!text)
                return;
        for (size_t keep = 0; keep < 200; keep += 37) {
                val_abbreviate(small, sizeof(small), text, quote, keep);
                CHECK(strlen(small) < sizeof(small));
                val_abbreviate(big, sizeof(big), text, quote, keep);
                CHECK(strlen(big) < sizeof(big));
        }
        val_abbreviate(big, 1, text, quote, 3);
        CHECK(big[0] == '\0');

        copy = strdup(s);
        if (copy) {
                val_sanitize(copy);
                CHECK(strlen(copy) == strlen(s));
                for (const char *p = copy; *p; p++)
                        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
                free(copy);
        }
        free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        check_numbers(s, data, size);
        check_mode(s);
        check_physdev(s);
        check_diskseq(s);
        check_params(data, size);
        check_quoting(s, strlen(s));
        free(s);
        return 0;
}
