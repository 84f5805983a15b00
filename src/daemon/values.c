/* values.c — strict parsers of values from xenstore and the fd store. */
#include "values.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "errbuf.h"

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* 1 to max_digits hex digits of s, up to the first byte that is not one;
 * *end points there.  False when there are none or too many. */
static bool parse_hex(const char *s, size_t max_digits, uint64_t *ret, const char **end)
{
        uint64_t v = 0;
        size_t i;

        for (i = 0; hex_digit(s[i]) >= 0; i++) {
                if (i == max_digits)
                        return false;
                v = (v << 4) | (uint64_t)hex_digit(s[i]);
        }
        if (i == 0)
                return false;
        *ret = v;
        *end = s + i;
        return true;
}

/* Canonical decimal (no leading zero but for "0") of at most 10 digits, up
 * to the first non-digit; *end points there. */
static bool parse_dec(const char *s, uint64_t *ret, const char **end)
{
        uint64_t v = 0;
        size_t i;

        for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
                if (i == 10)
                        return false;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (i == 0 || (i > 1 && s[0] == '0'))
                return false;
        *ret = v;
        *end = s + i;
        return true;
}

int val_parse_u32(const char *s, size_t len, uint32_t *ret)
{
        uint64_t v = 0;

        if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

int val_parse_int(const char *s, int *ret)
{
        bool neg = s[0] == '-';
        int64_t v = 0;
        size_t i;

        s += neg;
        for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
                if (i == 10)
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
        }
        if (i == 0 || s[i])
                return -EINVAL;
        if (neg)
                v = -v;
        if (v < INT_MIN || v > INT_MAX)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}

int val_parse_mode(const char *mode, enum access *ret)
{
        return access_parse(mode, false, ret);
}

int val_parse_physdev(const char *s, dev_t *ret)
{
        uint64_t ma, mi;
        const char *p;

        if (!parse_hex(s, 8, &ma, &p) || *p != ':' || !parse_hex(p + 1, 8, &mi, &p) || *p)
                return -EINVAL;
        if (ma > VAL_MAJOR_MAX || mi > VAL_MINOR_MAX)
                return -EINVAL;
        *ret = makedev((unsigned)ma, (unsigned)mi);
        return 0;
}

int val_parse_diskseq(const char *s, uint64_t *ret)
{
        const char *p;

        return parse_hex(s, 16, ret, &p) && !*p ? 0 : -EINVAL;
}

int val_check_params(const char *params, size_t len, char *err, size_t errlen)
{
        if (len == 0) {
                errbuf_set(err, errlen, "params is empty");
                return -EINVAL;
        }
        if (strnlen(params, len) != len) {
                errbuf_set(err, errlen, "params contains a NUL byte");
                return -EINVAL;
        }
        if (len >= PATH_MAX) {
                errbuf_set(err, errlen, "params is %zu bytes long, longer than a path may be", len);
                return -ENAMETOOLONG;
        }
        return 0;
}

int val_format_fdstore_dev(char *buf, size_t len, unsigned major, unsigned minor, uint64_t diskseq, bool rw)
{
        return snprintf(buf, len, "dev-%u-%u-%" PRIx64 "-%c", major, minor, diskseq, rw ? 'w' : 'r');
}

int val_parse_fdstore_dev(const char *name, unsigned *major, unsigned *minor, uint64_t *diskseq, char *access)
{
        uint64_t ma, mi, seq;
        const char *p;
        char acc = 0;

        if (strncmp(name, "dev-", 4) != 0)
                return -EINVAL;
        if (!parse_dec(name + 4, &ma, &p) || *p != '-' || !parse_dec(p + 1, &mi, &p) || *p != '-')
                return -EINVAL;
        if (ma > VAL_MAJOR_MAX || mi > VAL_MINOR_MAX)
                return -EINVAL;
        /* Lower-case, no leading zero, as the name was written: one name
         * per fd. */
        if (p[1] == '0' && hex_digit(p[2]) >= 0)
                return -EINVAL;
        for (const char *q = p + 1; hex_digit(*q) >= 0; q++)
                if (*q >= 'A' && *q <= 'F')
                        return -EINVAL;
        if (!parse_hex(p + 1, 16, &seq, &p))
                return -EINVAL;
        if (p[0] == '-' && (p[1] == 'r' || p[1] == 'w') && !p[2])
                acc = p[1];
        else if (*p)
                return -EINVAL;
        *major = (unsigned)ma;
        *minor = (unsigned)mi;
        *diskseq = seq;
        *access = acc;
        return 0;
}

void val_abbreviate(char *buf, size_t len, const char *text, const char *quote, size_t keep)
{
        size_t q = strlen(quote), n = 0;
        bool shorten = q > keep + 3;

        if (len == 0)
                return;
        while (*text && n + 1 < len) {
                if (shorten && *text == *quote && strncmp(text, quote, q) == 0) {
                        for (size_t i = 0; i < keep && n + 1 < len; i++)
                                buf[n++] = quote[i];
                        for (size_t i = 0; i < 3 && n + 1 < len; i++)
                                buf[n++] = '.';
                        text += q;
                        continue;
                }
                buf[n++] = *text++;
        }
        buf[n] = '\0';
}

void val_sanitize(char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
                        *s = '?';
}
