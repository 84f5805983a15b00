/* Unit tests for the strict parsers of outside values (src/daemon/values.c):
 * what the daemon and the stock scripts write is accepted, everything
 * sscanf()/strtoull() used to let through (blanks, signs, 0x, overflow) is
 * not. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "fdset.h"
#include "values.h"

static void test_u32(void **state)
{
        uint32_t v = 7;

        assert_int_equal(val_parse_u32("0", 1, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(val_parse_u32("51712", 5, &v), 0);
        assert_int_equal(v, 51712);
        assert_int_equal(val_parse_u32("4294967295", 10, &v), 0);
        assert_int_equal(v, UINT32_MAX);
        assert_int_equal(val_parse_u32("12/x", 2, &v), 0);
        assert_int_equal(v, 12);
        assert_int_equal(val_parse_u32("4294967296", 10, &v), -EINVAL);
        assert_int_equal(val_parse_u32("01", 2, &v), -EINVAL);
        assert_int_equal(val_parse_u32("", 0, &v), -EINVAL);
        assert_int_equal(val_parse_u32("+1", 2, &v), -EINVAL);
        assert_int_equal(val_parse_u32("-1", 2, &v), -EINVAL);
        assert_int_equal(val_parse_u32("12345678901", 11, &v), -EINVAL);
}

static void test_int(void **state)
{
        int v = 7;

        assert_int_equal(val_parse_int("4", &v), 0);
        assert_int_equal(v, 4);
        assert_int_equal(val_parse_int("-1", &v), 0);
        assert_int_equal(v, -1);
        assert_int_equal(val_parse_int("2147483647", &v), 0);
        assert_int_equal(v, INT_MAX);
        assert_int_equal(val_parse_int("-2147483648", &v), 0);
        assert_int_equal(v, INT_MIN);
        assert_int_equal(val_parse_int("2147483648", &v), -EINVAL);
        assert_int_equal(val_parse_int("99999999999", &v), -EINVAL);
        assert_int_equal(val_parse_int("", &v), -EINVAL);
        assert_int_equal(val_parse_int("-", &v), -EINVAL);
        assert_int_equal(val_parse_int(" 4", &v), -EINVAL);
        assert_int_equal(val_parse_int("4\n", &v), -EINVAL);
        assert_int_equal(val_parse_int("+4", &v), -EINVAL);
        assert_int_equal(val_parse_int("0x4", &v), -EINVAL);
}

static void test_mode(void **state)
{
        enum access a;

        assert_int_equal(val_parse_mode("r", &a), 0);
        assert_int_equal(a, ACCESS_RO);
        assert_int_equal(val_parse_mode("w", &a), 0);
        assert_int_equal(a, ACCESS_RW);
        assert_int_equal(val_parse_mode("w!", &a), 0);
        assert_int_equal(a, ACCESS_RW_FORCE);
        assert_int_equal(val_parse_mode("", &a), -EINVAL);
        assert_int_equal(val_parse_mode("rw", &a), -EINVAL);
        assert_int_equal(val_parse_mode("R", &a), -EINVAL);
        assert_int_equal(val_parse_mode("w!!", &a), -EINVAL);
        assert_int_equal(val_parse_mode("r ", &a), -EINVAL);
}

static void test_physdev(void **state)
{
        dev_t d = 0;

        assert_int_equal(val_parse_physdev("7:0", &d), 0);
        assert_true(d == makedev(7, 0));
        assert_int_equal(val_parse_physdev("103:1f", &d), 0);
        assert_true(d == makedev(0x103, 0x1f));
        assert_int_equal(val_parse_physdev("FFF:FFFFF", &d), 0);
        assert_true(d == makedev(0xfff, 0xfffff));
        assert_int_equal(val_parse_physdev("1000:0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("7:100000", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("-1:0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev(" 7:0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("7: 0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("0x7:0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("7:0 ", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("7", &d), -EINVAL);
        assert_int_equal(val_parse_physdev(":", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("7:0:0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("000000007:0", &d), -EINVAL);
        assert_int_equal(val_parse_physdev("100000007:0", &d), -EINVAL); /* would wrap in 32 bits */
}

static void test_diskseq(void **state)
{
        uint64_t s = 1;

        assert_int_equal(val_parse_diskseq("0", &s), 0);
        assert_true(s == 0);
        assert_int_equal(val_parse_diskseq("2a", &s), 0);
        assert_true(s == 0x2a);
        assert_int_equal(val_parse_diskseq("ffffffffffffffff", &s), 0);
        assert_true(s == UINT64_MAX);
        assert_int_equal(val_parse_diskseq("10000000000000000", &s), -EINVAL);
        assert_int_equal(val_parse_diskseq("-1", &s), -EINVAL);
        assert_int_equal(val_parse_diskseq("+1", &s), -EINVAL);
        assert_int_equal(val_parse_diskseq("0x1", &s), -EINVAL);
        assert_int_equal(val_parse_diskseq(" 1", &s), -EINVAL);
        assert_int_equal(val_parse_diskseq("", &s), -EINVAL);
        assert_int_equal(val_parse_diskseq("1g", &s), -EINVAL);
}

static void test_params(void **state)
{
        char err[128] = "", *big;

        assert_int_equal(val_check_params("/srv/a.img", 10, err, sizeof(err)), 0);
        assert_int_equal(val_check_params("", 0, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "params is empty");
        assert_int_equal(val_check_params("/a\0b", 4, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "params contains a NUL byte");
        big = malloc(PATH_MAX + 1);
        assert_non_null(big);
        memset(big, 'a', PATH_MAX);
        big[0] = '/';
        big[PATH_MAX] = '\0';
        assert_int_equal(val_check_params(big, PATH_MAX, err, sizeof(err)), -ENAMETOOLONG);
        assert_non_null(strstr(err, "longer than a path may be"));
        assert_int_equal(val_check_params(big, PATH_MAX - 1, err, sizeof(err)), 0);
        free(big);
        /* No error buffer: still refused. */
        assert_int_equal(val_check_params("", 0, NULL, 0), -EINVAL);
}

static void test_fdstore(void **state)
{
        char name[64], acc;
        unsigned ma, mi;
        uint64_t seq;

        val_format_fdstore_dev(name, sizeof(name), 7, 3, 0x2a, false);
        assert_string_equal(name, "dev-7-3-2a-r");
        assert_int_equal(val_parse_fdstore_dev(name, &ma, &mi, &seq, &acc), 0);
        assert_int_equal(ma, 7);
        assert_int_equal(mi, 3);
        assert_true(seq == 0x2a);
        assert_int_equal(acc, 'r');
        /* One device held read-only and read-write: two names. */
        val_format_fdstore_dev(name, sizeof(name), 7, 3, 0x2a, true);
        assert_string_equal(name, "dev-7-3-2a-w");
        assert_int_equal(val_parse_fdstore_dev(name, &ma, &mi, &seq, &acc), 0);
        assert_int_equal(acc, 'w');
        val_format_fdstore_dev(name, sizeof(name), 0xfff, 0xfffff, UINT64_MAX, true);
        assert_int_equal(val_parse_fdstore_dev(name, &ma, &mi, &seq, &acc), 0);
        assert_true(seq == UINT64_MAX);
        assert_int_equal(val_parse_fdstore_dev("dev-7-0-0-r", &ma, &mi, &seq, &acc), 0);
        assert_true(seq == 0 && acc == 'r');
        /* Names of an older xen-loopd, without the access. */
        assert_int_equal(val_parse_fdstore_dev("dev-7-3-2a", &ma, &mi, &seq, &acc), 0);
        assert_true(ma == 7 && mi == 3 && seq == 0x2a && acc == 0);
        assert_int_equal(val_parse_fdstore_dev("dev-7-0-0", &ma, &mi, &seq, &acc), 0);
        assert_true(seq == 0 && acc == 0);

        static const char *const bad[] = {
                "", "dev-", "dev-7", "dev-7-3", "dev-7-3-", "dev-7-3-2a-", "dev-07-3-2a",
                "dev-7-03-2a", "dev-7-3-02a", "dev-7-3-2A", "dev--7-3-2a", "dev-+7-3-2a",
                "dev-4096-0-1", "dev-7-1048576-1", "dev-4294967303-0-1", "dev-7-3-10000000000000000",
                "dev-7-3-0x2a", "dev-7-3- 2a", "dev- 7-3-2a", "fdset-1-2", "dev-7-3-2a\n",
                "dev-7-3-2a-x", "dev-7-3-2a-rw", "dev-7-3-2a-R", "dev-7-3-2a-r\n", "dev-7-3-02a-r",
                "dev-7-3-2A-w", "dev-7-3--r", "dev-7-3-2a-r-", "dev-7-3-2a-w-r", "dev-7-3-00-r",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (val_parse_fdstore_dev(bad[i], &ma, &mi, &seq, &acc) == 0)
                        fail_msg("accepted \"%s\"", bad[i]);
}

/* An fd set's store name carries its owner; an older daemon's had none. */
static void test_fdset_store_name(void **state)
{
        uint32_t set;
        uint64_t serial;
        uid_t owner;

        assert_int_equal(fdset_parse_store_name("fdset-3-17-u65534", &set, &serial, &owner), 0);
        assert_true(set == 3 && serial == 17 && owner == 65534);
        assert_int_equal(fdset_parse_store_name("fdset-3-17", &set, &serial, &owner), 0);
        assert_true(set == 3 && serial == 17 && owner == 0);
        assert_int_equal(fdset_parse_store_name("fdset-0-9223372036854775807-u4294967294", &set, &serial, NULL), 0);
        assert_true(serial == INT64_MAX);

        static const char *const bad[] = {
                "", "fdset-", "fdset-3", "fdset-3-", "fdset-3-17-", "fdset-3-17-u", "fdset-3-17-u-1",
                "fdset-3-17-u4294967295", "fdset-3-17-u99999999999", "fdset-3-17-x1", "fdset-3-17-u1-",
                "fdset-3-17-u1 ", "fdset-3-9223372036854775808-u0", "fdset-+3-17", "dev-7-3-2a-r",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (fdset_parse_store_name(bad[i], &set, &serial, &owner) == 0)
                        fail_msg("accepted \"%s\"", bad[i]);
}

static void test_abbreviate(void **state)
{
        char buf[64];

        val_abbreviate(buf, sizeof(buf), "cannot open /abcdefgh: no", "/abcdefgh", 3);
        assert_string_equal(buf, "cannot open /ab...: no");
        val_abbreviate(buf, sizeof(buf), "/abcdefgh is /abcdefgh", "/abcdefgh", 3);
        assert_string_equal(buf, "/ab... is /ab...");
        /* Short enough already: kept. */
        val_abbreviate(buf, sizeof(buf), "x /abcde y", "/abcde", 3);
        assert_string_equal(buf, "x /abcde y");
        /* Truncated, always terminated. */
        val_abbreviate(buf, 8, "0123456789", "zzzzzzzzzz", 2);
        assert_string_equal(buf, "0123456");
        val_abbreviate(buf, 4, "/abcdefgh", "/abcdefgh", 5);
        assert_string_equal(buf, "/ab");
        val_abbreviate(buf, sizeof(buf), "", "", 0);
        assert_string_equal(buf, "");
}

static void test_sanitize(void **state)
{
        char s[] = "a\nb\tc\x7f" "d\x1b[0m\xc3\xa9";

        val_sanitize(s);
        assert_string_equal(s, "a?b?c?d?[0m\xc3\xa9");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_u32),     cmocka_unit_test(test_int),
                cmocka_unit_test(test_mode),    cmocka_unit_test(test_physdev),
                cmocka_unit_test(test_diskseq), cmocka_unit_test(test_params),
                cmocka_unit_test(test_fdstore), cmocka_unit_test(test_fdset_store_name),
                cmocka_unit_test(test_abbreviate),
                cmocka_unit_test(test_sanitize),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
