/* test-xswire.c — the xenstore wire protocol's pure functions (xswire.h):
 * building requests, cutting messages out of a stream, and reading the
 * bodies xenstored sends.  Bodies are handed over in heap blocks of exactly
 * their length, so that a read past the end shows under valgrind and
 * AddressSanitizer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xswire.h"

/* A copy of len bytes of s in a block of exactly that size. */
static char *body(const char *s, size_t len)
{
        char *b = malloc(len ? len : 1);

        assert_non_null(b);
        memcpy(b, s, len);
        return b;
}

/* A literal, its terminating NUL excluded: B("a\0b") is 3 bytes. */
#define B(lit) body(lit, sizeof(lit) - 1)
#define BLEN(lit) (sizeof(lit) - 1)

/* --- xsw_build ---------------------------------------------------------- */

static void test_build(void **state)
{
        static char buf[XSW_MSG_MAX];
        struct xsd_sockmsg hdr;
        struct xsw_part parts[] = {
                { "/local/domain/3", 15 },
                { "/", 1 },
                { "name\0", 5 },
                { "guest", 5 },
        };
        int len;

        len = xsw_build(buf, XS_WRITE, 42, 7, parts, 4);
        assert_int_equal(len, XSW_HEADER_SIZE + 26);
        memcpy(&hdr, buf, sizeof(hdr));
        assert_int_equal(hdr.type, XS_WRITE);
        assert_int_equal(hdr.req_id, 42);
        assert_int_equal(hdr.tx_id, 7);
        assert_int_equal(hdr.len, 26);
        assert_memory_equal(buf + XSW_HEADER_SIZE, "/local/domain/3/name\0guest", 26);

        /* What xsw_peek cuts out is what was built. */
        assert_int_equal(xsw_peek(buf, (size_t)len, &hdr), 1);
        assert_int_equal(hdr.type, XS_WRITE);
        assert_int_equal(hdr.len, 26);

        /* No parts, and empty parts: a header alone. */
        len = xsw_build(buf, XS_TRANSACTION_START, UINT32_MAX, 0, NULL, 0);
        assert_int_equal(len, XSW_HEADER_SIZE);
        memcpy(&hdr, buf, sizeof(hdr));
        assert_int_equal(hdr.type, XS_TRANSACTION_START);
        assert_int_equal(hdr.req_id, UINT32_MAX);
        assert_int_equal(hdr.tx_id, 0);
        assert_int_equal(hdr.len, 0);
        parts[0].len = 0;
        parts[1].len = 0;
        assert_int_equal(xsw_build(buf, XS_READ, 1, 0, parts, 2), XSW_HEADER_SIZE);
}

static void test_build_limit(void **state)
{
        static char buf[XSW_MSG_MAX], big[XENSTORE_PAYLOAD_MAX + 1];
        struct xsd_sockmsg hdr;
        struct xsw_part parts[2];
        int len;

        memset(big, 'x', sizeof(big));

        /* Exactly XENSTORE_PAYLOAD_MAX: fits. */
        parts[0] = (struct xsw_part){ big, XENSTORE_PAYLOAD_MAX };
        len = xsw_build(buf, XS_WRITE, 1, 0, parts, 1);
        assert_int_equal(len, XSW_MSG_MAX);
        memcpy(&hdr, buf, sizeof(hdr));
        assert_int_equal(hdr.len, XENSTORE_PAYLOAD_MAX);
        assert_int_equal(xsw_peek(buf, (size_t)len, &hdr), 1);

        /* One byte more, in one part or spread over two. */
        parts[0].len = XENSTORE_PAYLOAD_MAX + 1;
        assert_int_equal(xsw_build(buf, XS_WRITE, 1, 0, parts, 1), -E2BIG);
        parts[0].len = XENSTORE_PAYLOAD_MAX;
        parts[1] = (struct xsw_part){ "y", 1 };
        assert_int_equal(xsw_build(buf, XS_WRITE, 1, 0, parts, 2), -E2BIG);
        parts[0].len = 2000;
        parts[1] = (struct xsw_part){ big, XENSTORE_PAYLOAD_MAX - 1999 };
        assert_int_equal(xsw_build(buf, XS_WRITE, 1, 0, parts, 2), -E2BIG);
        parts[1].len = XENSTORE_PAYLOAD_MAX - 2000;
        assert_int_equal(xsw_build(buf, XS_WRITE, 1, 0, parts, 2), XSW_MSG_MAX);

        /* A length whose sum with the others would wrap around. */
        parts[0].len = 1;
        parts[1] = (struct xsw_part){ big, SIZE_MAX };
        assert_int_equal(xsw_build(buf, XS_WRITE, 1, 0, parts, 2), -E2BIG);
}

/* --- xsw_peek ----------------------------------------------------------- */

static void put_hdr(char *buf, uint32_t type, uint32_t req_id, uint32_t len)
{
        struct xsd_sockmsg hdr = { .type = type, .req_id = req_id, .tx_id = 9, .len = len };

        memcpy(buf, &hdr, sizeof(hdr));
}

static size_t put_msg(char *buf, uint32_t type, uint32_t req_id, uint32_t len)
{
        put_hdr(buf, type, req_id, len);
        memset(buf + XSW_HEADER_SIZE, 'v', len);
        return XSW_HEADER_SIZE + len;
}

static void test_peek(void **state)
{
        static char buf[2 * XSW_MSG_MAX];
        struct xsd_sockmsg hdr;
        size_t n, n2;

        n = put_msg(buf, XS_READ, 5, 10);
        n2 = put_msg(buf + n, XS_WATCH_EVENT, 0, 0);

        /* Incomplete: no header yet, or the body not all there. */
        assert_int_equal(xsw_peek(buf, 0, &hdr), 0);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE - 1, &hdr), 0);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), 0);
        assert_int_equal(xsw_peek(buf, n - 1, &hdr), 0);

        /* Complete, alone or with the next message behind it. */
        memset(&hdr, 0, sizeof(hdr));
        assert_int_equal(xsw_peek(buf, n, &hdr), 1);
        assert_int_equal(hdr.type, XS_READ);
        assert_int_equal(hdr.req_id, 5);
        assert_int_equal(hdr.tx_id, 9);
        assert_int_equal(hdr.len, 10);
        assert_int_equal(xsw_peek(buf, n + 3, &hdr), 1);
        assert_int_equal(hdr.len, 10);

        /* An empty body is complete with the header. */
        assert_int_equal(xsw_peek(buf + n, n2, &hdr), 1);
        assert_int_equal(hdr.type, XS_WATCH_EVENT);
        assert_int_equal(hdr.len, 0);

        /* The largest body there is. */
        n = put_msg(buf, XS_DIRECTORY, 1, XENSTORE_PAYLOAD_MAX);
        assert_int_equal(xsw_peek(buf, n - 1, &hdr), 0);
        assert_int_equal(xsw_peek(buf, n, &hdr), 1);
        assert_int_equal(hdr.len, XENSTORE_PAYLOAD_MAX);

        /* A directory may be longer (oxenstored sends one whole), up to
         * XSW_DIRECTORY_MAX: waited for, then taken. */
        put_hdr(buf, XS_DIRECTORY, 1, XENSTORE_PAYLOAD_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_MSG_MAX, &hdr), 0);
        assert_int_equal(hdr.len, XENSTORE_PAYLOAD_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_MSG_MAX + 1, &hdr), 1);
        put_hdr(buf, XS_DIRECTORY, 1, XSW_DIRECTORY_MAX);
        assert_int_equal(xsw_peek(buf, sizeof(buf), &hdr), 0);
        assert_int_equal(hdr.len, XSW_DIRECTORY_MAX);
        {
                char *big = calloc(1, XSW_HEADER_SIZE + XSW_DIRECTORY_MAX);
                assert_non_null(big);
                put_hdr(big, XS_DIRECTORY, 1, XSW_DIRECTORY_MAX);
                assert_int_equal(xsw_peek(big, XSW_HEADER_SIZE + XSW_DIRECTORY_MAX - 1, &hdr), 0);
                assert_int_equal(xsw_peek(big, XSW_HEADER_SIZE + XSW_DIRECTORY_MAX, &hdr), 1);
                free(big);
        }
        put_hdr(buf, XS_DIRECTORY, 1, XSW_DIRECTORY_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        /* No other type: a part, an event or an error stays within
         * XENSTORE_PAYLOAD_MAX. */
        put_hdr(buf, XS_DIRECTORY_PART, 1, XENSTORE_PAYLOAD_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        put_hdr(buf, XS_WATCH_EVENT, 0, XENSTORE_PAYLOAD_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        put_hdr(buf, XS_ERROR, 1, XENSTORE_PAYLOAD_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);

        /* Oversized: refused from the header alone, not waited for. */
        put_hdr(buf, XS_READ, 1, XENSTORE_PAYLOAD_MAX + 1);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        assert_int_equal(xsw_peek(buf, sizeof(buf), &hdr), -EBADMSG);
        put_hdr(buf, XS_READ, 1, UINT32_MAX);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);

        /* A type that does not exist. */
        put_hdr(buf, XS_TYPE_COUNT, 1, 0);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        put_hdr(buf, XS_INVALID, 1, 0);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        put_hdr(buf, UINT32_MAX, 1, 0);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), -EBADMSG);
        put_hdr(buf, XS_TYPE_COUNT - 1, 1, 0);
        assert_int_equal(xsw_peek(buf, XSW_HEADER_SIZE, &hdr), 1);
}

/* --- xsw_error ---------------------------------------------------------- */

static void test_error(void **state)
{
        char *b;

        /* Every name xs_wire.h knows, as xenstored sends it. */
        for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++) {
                size_t len = strlen(xsd_errors[i].errstring) + 1;
                b = body(xsd_errors[i].errstring, len);
                assert_int_equal(xsw_error(b, len), -xsd_errors[i].errnum);
                free(b);
        }
        b = B("ENOENT\0");
        assert_int_equal(xsw_error(b, BLEN("ENOENT\0")), -ENOENT);
        free(b);
        b = B("E2BIG\0");
        assert_int_equal(xsw_error(b, BLEN("E2BIG\0")), -E2BIG);
        free(b);

        /* Unknown names, and prefixes or extensions of known ones. */
        b = B("ESOMETHING\0");
        assert_int_equal(xsw_error(b, BLEN("ESOMETHING\0")), -EIO);
        free(b);
        b = B("ENOENTX\0");
        assert_int_equal(xsw_error(b, BLEN("ENOENTX\0")), -EIO);
        free(b);
        b = B("ENOEN\0");
        assert_int_equal(xsw_error(b, BLEN("ENOEN\0")), -EIO);
        free(b);
        b = B("enoent\0");
        assert_int_equal(xsw_error(b, BLEN("enoent\0")), -EIO);
        free(b);
        b = B("\0");
        assert_int_equal(xsw_error(b, 1), -EIO);
        free(b);
        b = B("");
        assert_int_equal(xsw_error(b, 0), -EIO);
        free(b);

        /* Unterminated: only the body's own bytes are read, and a whole
         * name there counts (as libxenstore reads it). */
        b = B("EACCES");
        assert_int_equal(xsw_error(b, BLEN("EACCES")), -EACCES);
        free(b);
        b = B("EACC");
        assert_int_equal(xsw_error(b, BLEN("EACC")), -EIO);
        free(b);
        b = B("ENOSPACE");
        assert_int_equal(xsw_error(b, BLEN("ENOSPACE")), -EIO);
        free(b);

        /* What follows the name's NUL does not matter. */
        b = B("EBUSY\0ENOENT\0");
        assert_int_equal(xsw_error(b, BLEN("EBUSY\0ENOENT\0")), -EBUSY);
        free(b);
}

/* --- xsw_watch_event ---------------------------------------------------- */

static int watch_event(const char *s, size_t len, char **ret_body, const char **path, const char **token)
{
        *ret_body = body(s, len);
        return xsw_watch_event(*ret_body, len, path, token);
}

#define WATCH_EVENT(lit, b, p, t) watch_event(lit, BLEN(lit), b, p, t)

static void test_watch_event(void **state)
{
        const char *path = NULL, *token = NULL;
        char *b;

        assert_int_equal(WATCH_EVENT("/local/domain/0/backend/vbd\0vbd\0", &b, &path, &token), 0);
        assert_ptr_equal(path, b);
        assert_string_equal(path, "/local/domain/0/backend/vbd");
        assert_string_equal(token, "vbd");
        assert_ptr_equal(token, b + strlen(path) + 1);
        free(b);

        /* Empty path and token are still two terminated strings. */
        assert_int_equal(WATCH_EVENT("\0\0", &b, &path, &token), 0);
        assert_string_equal(path, "");
        assert_string_equal(token, "");
        free(b);

        /* Bytes after the token are ignored. */
        assert_int_equal(WATCH_EVENT("/a\0tok\0extra\0more", &b, &path, &token), 0);
        assert_string_equal(path, "/a");
        assert_string_equal(token, "tok");
        free(b);

        /* Refused, and the outputs left alone. */
        path = token = "untouched";
        assert_int_equal(WATCH_EVENT("", &b, &path, &token), -EBADMSG);
        free(b);
        assert_int_equal(WATCH_EVENT("/a/path", &b, &path, &token), -EBADMSG);   /* path unterminated */
        free(b);
        assert_int_equal(WATCH_EVENT("/a/path\0", &b, &path, &token), -EBADMSG); /* no token */
        free(b);
        assert_int_equal(WATCH_EVENT("/a/path\0tok", &b, &path, &token), -EBADMSG); /* token unterminated */
        free(b);
        assert_string_equal(path, "untouched");
        assert_string_equal(token, "untouched");
}

/* --- xsw_txid ----------------------------------------------------------- */

static int txid(const char *s, size_t len, uint32_t *id)
{
        char *b = body(s, len);
        int r = xsw_txid(b, len, id);

        free(b);
        return r;
}

#define TXID(lit, id) txid(lit, BLEN(lit), id)

static void test_txid(void **state)
{
        uint32_t id = 0;

        assert_int_equal(TXID("1\0", &id), 0);
        assert_int_equal(id, 1);
        assert_int_equal(TXID("12345\0", &id), 0);
        assert_int_equal(id, 12345);
        assert_int_equal(TXID("4294967295\0", &id), 0);
        assert_int_equal(id, UINT32_MAX);
        assert_int_equal(TXID("007\0", &id), 0);
        assert_int_equal(id, 7);

        id = 99;
        /* 0 is no transaction. */
        assert_int_equal(TXID("0\0", &id), -EBADMSG);
        assert_int_equal(TXID("0000000000\0", &id), -EBADMSG);
        /* Over 32 bits, or too many digits. */
        assert_int_equal(TXID("4294967296\0", &id), -EBADMSG);
        assert_int_equal(TXID("9999999999\0", &id), -EBADMSG);
        assert_int_equal(TXID("18446744073709551617\0", &id), -EBADMSG);
        assert_int_equal(TXID("00000000001\0", &id), -EBADMSG);
        /* Not digits. */
        assert_int_equal(TXID("12a\0", &id), -EBADMSG);
        assert_int_equal(TXID("-1\0", &id), -EBADMSG);
        assert_int_equal(TXID("+1\0", &id), -EBADMSG);
        assert_int_equal(TXID(" 1\0", &id), -EBADMSG);
        assert_int_equal(TXID("0x10\0", &id), -EBADMSG);
        /* Empty, or unterminated. */
        assert_int_equal(TXID("\0", &id), -EBADMSG);
        assert_int_equal(TXID("", &id), -EBADMSG);
        assert_int_equal(TXID("12", &id), -EBADMSG);
        assert_int_equal(TXID("4294967295", &id), -EBADMSG);
        assert_int_equal(id, 99);
}

/* --- xsw_directory ------------------------------------------------------ */

static void test_directory(void **state)
{
        char **v = NULL, *b;
        unsigned n = 99;

        /* An empty body: no entries, the array still NULL-terminated. */
        b = B("");
        assert_int_equal(xsw_directory(b, 0, &v, &n), 0);
        assert_int_equal(n, 0);
        assert_non_null(v);
        assert_null(v[0]);
        free(v);
        free(b);

        /* Several names, copied: the body may go away. */
        b = B("0\0backend\0device-model\0x\0");
        assert_int_equal(xsw_directory(b, BLEN("0\0backend\0device-model\0x\0"), &v, &n), 0);
        memset(b, 'Z', BLEN("0\0backend\0device-model\0x\0"));
        free(b);
        assert_int_equal(n, 4);
        assert_string_equal(v[0], "0");
        assert_string_equal(v[1], "backend");
        assert_string_equal(v[2], "device-model");
        assert_string_equal(v[3], "x");
        assert_null(v[4]);
        free(v);

        /* One name. */
        b = B("vbd\0");
        assert_int_equal(xsw_directory(b, BLEN("vbd\0"), &v, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(v[0], "vbd");
        assert_null(v[1]);
        free(v);
        free(b);

        /* The last name unterminated: refused, nothing returned. */
        v = (char **)"untouched";
        n = 99;
        b = B("a\0b\0c");
        assert_int_equal(xsw_directory(b, BLEN("a\0b\0c"), &v, &n), -EBADMSG);
        free(b);
        b = B("abc");
        assert_int_equal(xsw_directory(b, BLEN("abc"), &v, &n), -EBADMSG);
        free(b);
        assert_ptr_equal(v, (char **)"untouched");
        assert_int_equal(n, 99);
}

/* --- xsw_directory_part ------------------------------------------------- */

struct part {
        char *b;
        const char *gen, *names;
        size_t names_len;
        bool last;
};

static int dir_part(const char *s, size_t len, struct part *p)
{
        p->b = body(s, len);
        p->gen = p->names = NULL;
        p->names_len = 999;
        p->last = true;
        return xsw_directory_part(p->b, len, &p->gen, &p->names, &p->names_len, &p->last);
}

#define DIR_PART(lit, p) dir_part(lit, BLEN(lit), p)

static void test_directory_part(void **state)
{
        struct part p;

        /* The generation alone and the end marker: an empty list, or an
         * offset behind the end. */
        assert_int_equal(DIR_PART("17\0\0", &p), 0);
        assert_string_equal(p.gen, "17");
        assert_ptr_equal(p.gen, p.b);
        assert_int_equal(p.names_len, 0);
        assert_true(p.last);
        free(p.b);

        /* Names, then the end marker. */
        assert_int_equal(DIR_PART("3\0a\0bc\0def\0\0", &p), 0);
        assert_string_equal(p.gen, "3");
        assert_ptr_equal(p.names, p.b + 2);
        assert_int_equal(p.names_len, BLEN("a\0bc\0def\0"));
        assert_memory_equal(p.names, "a\0bc\0def\0", p.names_len);
        assert_true(p.last);
        free(p.b);

        /* Names without the end marker: more to come. */
        assert_int_equal(DIR_PART("123456\0a\0bc\0", &p), 0);
        assert_string_equal(p.gen, "123456");
        assert_int_equal(p.names_len, BLEN("a\0bc\0"));
        assert_memory_equal(p.names, "a\0bc\0", p.names_len);
        assert_false(p.last);
        free(p.b);

        /* The generation alone, no end marker: parsed (an empty part; the
         * caller refuses it as no progress). */
        assert_int_equal(DIR_PART("9\0", &p), 0);
        assert_string_equal(p.gen, "9");
        assert_int_equal(p.names_len, 0);
        assert_false(p.last);
        free(p.b);

        /* The end marker ends the list; what follows it is not a name. */
        assert_int_equal(DIR_PART("9\0a\0\0junk", &p), 0);
        assert_int_equal(p.names_len, BLEN("a\0"));
        assert_true(p.last);
        free(p.b);

        /* Unterminated: the last name, or the generation; an empty
         * generation; an empty body. */
        assert_int_equal(DIR_PART("3\0a\0bc", &p), -EBADMSG);
        free(p.b);
        assert_int_equal(DIR_PART("3\0a", &p), -EBADMSG);
        free(p.b);
        assert_int_equal(DIR_PART("3", &p), -EBADMSG);
        free(p.b);
        assert_int_equal(DIR_PART("\0a\0\0", &p), -EBADMSG);
        free(p.b);
        assert_int_equal(DIR_PART("", &p), -EBADMSG);
        free(p.b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build),
                cmocka_unit_test(test_build_limit),
                cmocka_unit_test(test_peek),
                cmocka_unit_test(test_error),
                cmocka_unit_test(test_watch_event),
                cmocka_unit_test(test_txid),
                cmocka_unit_test(test_directory),
                cmocka_unit_test(test_directory_part),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
