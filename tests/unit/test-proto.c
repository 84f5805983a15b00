/* test-proto.c — the control protocol's wire format: what requests are
 * accepted, what is refused and why, replies, limits, errno names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "proto.h"

static char err[256];

static int parse(const char *s, struct proto_request *req, uint32_t *id)
{
        return proto_parse_request(s, strlen(s), req, id, err, sizeof(err));
}

/* Expects s to be refused with r; returns the id the parser could read. */
static uint32_t refused(const char *s, int r)
{
        struct proto_request req;
        uint32_t id = 12345;

        err[0] = '\0';
        assert_int_equal(parse(s, &req, &id), r);
        assert_true(strlen(err) > 0);
        return id;
}

static void test_valid_request(void **state)
{
        struct proto_request req;
        struct json_object *v;
        uint32_t id = 0;

        assert_int_equal(parse("{\"xen-loopd\": 1, \"id\": 42, \"command\": \"attach\", "
                               "\"args\": {\"name\": \"web\", \"offset\": 4096}}",
                               &req, &id),
                         0);
        assert_int_equal(id, 42);
        assert_int_equal(req.id, 42);
        assert_string_equal(req.command, "attach");
        assert_non_null(req.args);
        assert_true(json_object_object_get_ex(req.args, "name", &v));
        assert_string_equal(json_object_get_string(v), "web");
        assert_non_null(req.obj);
        proto_request_done(&req);
        assert_null(req.obj);

        /* No args: an empty object, never NULL.  Field order is free;
         * trailing whitespace is fine. */
        assert_int_equal(parse("{\"command\":\"status\",\"id\":4294967295,\"xen-loopd\":1}\n \r\t", &req, &id), 0);
        assert_int_equal(req.id, UINT32_MAX);
        assert_true(json_object_is_type(req.args, json_type_object));
        assert_int_equal(json_object_object_length(req.args), 0);
        proto_request_done(&req);

        assert_int_equal(parse("{\"xen-loopd\":1,\"id\":0,\"command\":\"hotplug-add\",\"args\":{}}", &req, NULL), 0);
        assert_string_equal(req.command, "hotplug-add");
        proto_request_done(&req);

        /* Non-ASCII UTF-8 is fine in strings. */
        assert_int_equal(parse("{\"xen-loopd\":1,\"id\":1,\"command\":\"x\",\"args\":{\"n\":\"d\xc3\xa9j\xc3\xa0\"}}",
                               &req, NULL),
                         0);
        proto_request_done(&req);
}

static void test_invalid_json(void **state)
{
        assert_int_equal(refused("", -EBADMSG), 0);
        assert_int_equal(refused("not json", -EBADMSG), 0);
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\"", -EBADMSG), 0);
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\"}}", -EBADMSG), 0);
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\"} {}", -EBADMSG), 0);
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\"}x", -EBADMSG), 0);
        /* Strict JSON only: no single quotes, trailing commas, comments. */
        refused("{'xen-loopd':1,'id':3,'command':'x'}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\",}", -EBADMSG);
        refused("{\"xen-loopd\":1,/* c */\"id\":3,\"command\":\"x\"}", -EBADMSG);
        /* Not an object. */
        refused("[1,2]", -EBADMSG);
        refused("\"status\"", -EBADMSG);
        refused("42 ", -EBADMSG);
        refused("null ", -EBADMSG);
        /* Invalid UTF-8. */
        refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\",\"args\":{\"a\":\"\xff\xfe\"}}", -EBADMSG);
        /* A raw control character in a string. */
        refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\",\"args\":{\"a\":\"\x01\"}}", -EBADMSG);
        /* Numbers JSON does not have. */
        refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\",\"args\":{\"a\":NaN}}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\",\"args\":{\"a\":[-Infinity]}}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":3,\"command\":\"x\",\"args\":{\"a\":1e999}}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":03,\"command\":\"x\"}", -EBADMSG);
}

static void test_nul_bytes(void **state)
{
        static const char with_nul[] = "{\"xen-loopd\":1,\"id\":3,\"command\":\"x\"}\0garbage";
        struct proto_request req;
        uint32_t id;

        /* A NUL after the object, or inside it, is refused; json-c alone
         * would stop there and call it a success. */
        assert_int_equal(proto_parse_request(with_nul, sizeof(with_nul) - 1, &req, &id, err, sizeof(err)), -EBADMSG);
        assert_int_equal(proto_parse_request(with_nul, strlen(with_nul) + 1, &req, &id, err, sizeof(err)), -EBADMSG);
        assert_int_equal(proto_parse_request(with_nul, strlen(with_nul), &req, &id, err, sizeof(err)), 0);
        proto_request_done(&req);

        /* "\u0000" in any string of args, however deep. */
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"x\",\"args\":{\"target\":\"/a\\u0000b\"}}",
                                 -EBADMSG),
                         7);
        assert_int_equal(
                refused("{\"xen-loopd\":1,\"id\":8,\"command\":\"x\",\"args\":{\"a\":[{\"b\":[\"\\u0000\"]}]}}",
                        -EBADMSG),
                8);
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":9,\"command\":\"sta\\u0000tus\"}", -EBADMSG), 9);
}

static void test_envelope_types(void **state)
{
        /* id: required, an integer in 0..UINT32_MAX. */
        refused("{\"xen-loopd\":1,\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":-1,\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":4294967296,\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":99999999999999999999999,\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":\"3\",\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":3.0,\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":true,\"command\":\"x\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":null,\"command\":\"x\"}", -EBADMSG);

        /* Once the id is read, errors are addressed to it. */
        assert_int_equal(refused("{\"id\":5,\"command\":\"x\"}", -EBADMSG), 5);
        assert_int_equal(refused("{\"xen-loopd\":\"1\",\"id\":5,\"command\":\"x\"}", -EBADMSG), 5);
        assert_int_equal(refused("{\"xen-loopd\":1.0,\"id\":5,\"command\":\"x\"}", -EBADMSG), 5);
        assert_int_equal(refused("{\"xen-loopd\":2,\"id\":6,\"command\":\"x\"}", -EPROTONOSUPPORT), 6);
        assert_int_equal(refused("{\"xen-loopd\":0,\"id\":6,\"command\":\"x\"}", -EPROTONOSUPPORT), 6);

        /* command: a non-empty name of [a-z0-9-], at most 64 bytes. */
        assert_int_equal(refused("{\"xen-loopd\":1,\"id\":7}", -EBADMSG), 7);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":7}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"Status\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"st atus\"}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":[\"status\"]}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":"
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                -EBADMSG);

        /* args: an object when present. */
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"x\",\"args\":[]}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"x\",\"args\":null}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"x\",\"args\":\"a=b\"}", -EBADMSG);

        /* Nothing else in the envelope. */
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"x\",\"fds\":2}", -EBADMSG);
        refused("{\"xen-loopd\":1,\"id\":7,\"command\":\"x\",\"ok\":true}", -EBADMSG);
}

/* A request whose args nest `levels` arrays deep. */
static char *nested(int levels)
{
        size_t n = 128 + 2 * (size_t)levels;
        char *s = malloc(n), *p;

        assert_non_null(s);
        p = s + sprintf(s, "{\"xen-loopd\":1,\"id\":11,\"command\":\"x\",\"args\":{\"a\":");
        for (int i = 0; i < levels; i++)
                *p++ = '[';
        for (int i = 0; i < levels; i++)
                *p++ = ']';
        strcpy(p, "}}");
        return s;
}

static void test_depth(void **state)
{
        struct proto_request req;
        char *s;

        /* The envelope and args take two levels. */
        s = nested(PROTO_MAX_DEPTH - 2);
        assert_int_equal(parse(s, &req, NULL), 0);
        proto_request_done(&req);
        free(s);

        s = nested(PROTO_MAX_DEPTH - 1);
        assert_int_equal(parse(s, &req, NULL), -EBADMSG);
        assert_non_null(strstr(err, "deep"));
        free(s);

        s = nested(10000);
        assert_int_equal(parse(s, &req, NULL), -EBADMSG);
        free(s);
}

static void test_size_limit(void **state)
{
        const char *head = "{\"xen-loopd\":1,\"id\":1,\"command\":\"x\"}";
        struct proto_request req;
        uint32_t id = 99;
        char *s = malloc(PROTO_MAX_MESSAGE + 2);

        assert_non_null(s);
        /* Exactly the limit (padded with whitespace) is fine... */
        memset(s, ' ', PROTO_MAX_MESSAGE + 1);
        memcpy(s, head, strlen(head));
        assert_int_equal(proto_parse_request(s, PROTO_MAX_MESSAGE, &req, &id, err, sizeof(err)), 0);
        proto_request_done(&req);
        /* ...one byte more is not. */
        assert_int_equal(proto_parse_request(s, PROTO_MAX_MESSAGE + 1, &req, &id, err, sizeof(err)), -EMSGSIZE);
        assert_int_equal(id, 0);
        assert_non_null(strstr(err, "too long"));
        free(s);

        /* No err buffer is fine too. */
        assert_int_equal(proto_parse_request("{}", 2, &req, &id, NULL, 0), -EBADMSG);
}

static void test_format_request(void **state)
{
        struct proto_request req;
        struct json_object *args = json_object_new_object(), *v;
        char *text = NULL;

        json_object_object_add(args, "path", json_object_new_string("backend/vbd/3/51712"));
        assert_int_equal(proto_format_request(9, "hotplug-add", args, &text), 0);
        /* Slashes are not escaped: the text stays readable in logs. */
        assert_non_null(strstr(text, "backend/vbd/3/51712"));
        assert_int_equal(proto_parse_request(text, strlen(text), &req, NULL, err, sizeof(err)), 0);
        assert_int_equal(req.id, 9);
        assert_string_equal(req.command, "hotplug-add");
        assert_true(json_object_object_get_ex(req.args, "path", &v));
        assert_string_equal(json_object_get_string(v), "backend/vbd/3/51712");
        proto_request_done(&req);
        free(text);

        assert_int_equal(proto_format_request(10, "status", NULL, &text), 0);
        assert_int_equal(proto_parse_request(text, strlen(text), &req, NULL, err, sizeof(err)), 0);
        assert_int_equal(json_object_object_length(req.args), 0);
        proto_request_done(&req);
        free(text);

        /* args must be an object (and are taken either way). */
        assert_int_equal(proto_format_request(1, "x", json_object_new_array(), &text), -EINVAL);
        assert_int_equal(proto_format_request(1, NULL, NULL, &text), -EINVAL);

        /* Too long for a request. */
        {
                char *big = malloc(PROTO_MAX_MESSAGE + 1);
                assert_non_null(big);
                memset(big, 'a', PROTO_MAX_MESSAGE);
                big[PROTO_MAX_MESSAGE] = '\0';
                args = json_object_new_object();
                json_object_object_add(args, "a", json_object_new_string(big));
                assert_int_equal(proto_format_request(1, "x", args, &text), -EMSGSIZE);
                free(big);
        }
}

static void test_reply_roundtrip(void **state)
{
        struct json_object *res = json_object_new_object(), *v;
        struct proto_reply rep;
        char *text = NULL;

        json_object_object_add(res, "device", json_object_new_string("/dev/loop3"));
        assert_int_equal(proto_format_reply(77, res, &text), 0);
        assert_int_equal(proto_parse_reply(text, strlen(text), &rep), 0);
        assert_int_equal(rep.id, 77);
        assert_true(rep.ok);
        assert_true(json_object_object_get_ex(rep.result, "device", &v));
        assert_string_equal(json_object_get_string(v), "/dev/loop3");
        proto_reply_done(&rep);
        free(text);

        assert_int_equal(proto_format_reply(78, NULL, &text), 0);
        assert_int_equal(proto_parse_reply(text, strlen(text), &rep), 0);
        assert_true(rep.ok);
        assert_true(json_object_is_type(rep.result, json_type_object));
        proto_reply_done(&rep);
        free(text);

        assert_int_equal(proto_format_reply(1, json_object_new_string("x"), &text), -EINVAL);

        assert_int_equal(proto_format_error(79, -EBUSY, "Disk /srv/a is in use by domain 3.", &text), 0);
        assert_non_null(strstr(text, "\"name\":\"EBUSY\""));
        assert_non_null(strstr(text, "\"errno\":16"));
        assert_int_equal(proto_parse_reply(text, strlen(text), &rep), 0);
        assert_int_equal(rep.id, 79);
        assert_false(rep.ok);
        assert_int_equal(rep.error, -EBUSY);
        assert_string_equal(rep.message, "Disk /srv/a is in use by domain 3.");
        proto_reply_done(&rep);
        free(text);

        /* A positive errno is fine; no message: strerror's. */
        assert_int_equal(proto_format_error(80, ENOENT, NULL, &text), 0);
        assert_int_equal(proto_parse_reply(text, strlen(text), &rep), 0);
        assert_int_equal(rep.error, -ENOENT);
        assert_string_equal(rep.message, strerror(ENOENT));
        proto_reply_done(&rep);
        free(text);

        /* An errno without a name has no "name". */
        assert_int_equal(proto_format_error(81, -4000, "odd", &text), 0);
        assert_null(strstr(text, "\"name\""));
        assert_int_equal(proto_parse_reply(text, strlen(text), &rep), 0);
        assert_int_equal(rep.error, -4000);
        proto_reply_done(&rep);
        free(text);
}

static void test_error_message_cut(void **state)
{
        size_t n = PROTO_MAX_ERROR_MESSAGE + 100;
        char *msg = malloc(n + 1);
        struct proto_reply rep;
        char *text = NULL;

        assert_non_null(msg);
        /* Two-byte characters, placed so the limit falls inside one. */
        msg[0] = 'x';
        for (size_t i = 1; i + 1 < n; i += 2) {
                msg[i] = '\xc3';
                msg[i + 1] = '\xa9';
        }
        msg[n - (n % 2 == 0 ? 1 : 0)] = '\0';
        assert_int_equal(proto_format_error(1, -EIO, msg, &text), 0);
        assert_int_equal(proto_parse_reply(text, strlen(text), &rep), 0);
        assert_true(strlen(rep.message) <= PROTO_MAX_ERROR_MESSAGE);
        assert_true(strlen(rep.message) >= PROTO_MAX_ERROR_MESSAGE - 1);
        /* Still valid UTF-8: the strict request parser would accept it. */
        assert_true((strlen(rep.message) - 1) % 2 == 0);
        proto_reply_done(&rep);
        free(text);
        free(msg);
}

static void test_parse_reply_invalid(void **state)
{
        struct proto_reply rep;
        const char *s;

#define BAD(str, r)                                                           \
        do {                                                                  \
                s = (str);                                                    \
                assert_int_equal(proto_parse_reply(s, strlen(s), &rep), (r)); \
        } while (0)

        BAD("", -EBADMSG);
        BAD("{", -EBADMSG);
        BAD("[]", -EBADMSG);
        BAD("{\"id\":1,\"ok\":true}", -EBADMSG);
        BAD("{\"xen-loopd\":2,\"id\":1,\"ok\":true}", -EPROTONOSUPPORT);
        BAD("{\"xen-loopd\":1,\"ok\":true}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":1}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":true,\"result\":[]}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":false}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":false,\"error\":{\"errno\":0}}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":false,\"error\":{\"errno\":-2}}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":false,\"error\":{\"errno\":\"ENOENT\"}}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":false,\"error\":{\"errno\":2,\"message\":5}}", -EBADMSG);
        BAD("{\"xen-loopd\":1,\"id\":1,\"ok\":true} trailing", -EBADMSG);
#undef BAD

        /* Unknown fields are ignored: a newer daemon may add some. */
        s = "{\"xen-loopd\":1,\"id\":3,\"ok\":true,\"result\":{},\"took-ms\":4}";
        assert_int_equal(proto_parse_reply(s, strlen(s), &rep), 0);
        proto_reply_done(&rep);
}

static void test_errno_names(void **state)
{
        assert_string_equal(errno_name(ENOENT), "ENOENT");
        assert_string_equal(errno_name(-EBUSY), "EBUSY");
        assert_string_equal(errno_name(EOPNOTSUPP), "EOPNOTSUPP");
        assert_string_equal(errno_name(EAGAIN), "EAGAIN");
        assert_string_equal(errno_name(EHWPOISON), "EHWPOISON");
        assert_null(errno_name(0));
        assert_null(errno_name(41));     /* unused on Linux */
        assert_null(errno_name(100000));
        assert_null(errno_name(-100000));

        assert_int_equal(errno_from_name("EPERM"), EPERM);
        assert_int_equal(errno_from_name("EWOULDBLOCK"), EAGAIN);
        assert_int_equal(errno_from_name("ENOTSUP"), EOPNOTSUPP);
        assert_int_equal(errno_from_name("EDEADLOCK"), EDEADLK);
        assert_int_equal(errno_from_name("ENOSUCHTHING"), -EINVAL);
        assert_int_equal(errno_from_name(""), -EINVAL);
        assert_int_equal(errno_from_name(NULL), -EINVAL);

        for (int e = 1; e < 200; e++) {
                const char *n = errno_name(e);
                if (n)
                        assert_int_equal(errno_from_name(n), e);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_request),
                cmocka_unit_test(test_invalid_json),
                cmocka_unit_test(test_nul_bytes),
                cmocka_unit_test(test_envelope_types),
                cmocka_unit_test(test_depth),
                cmocka_unit_test(test_size_limit),
                cmocka_unit_test(test_format_request),
                cmocka_unit_test(test_reply_roundtrip),
                cmocka_unit_test(test_error_message_cut),
                cmocka_unit_test(test_parse_reply_invalid),
                cmocka_unit_test(test_errno_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
