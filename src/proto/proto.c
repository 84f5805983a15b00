/* proto.c — parsing and formatting of control protocol messages (see
 * proto.h).  Requests are read strictly: the daemon never guesses what a
 * malformed message meant.  Replies are read a little more liberally (unknown
 * fields are ignored, strings need not be UTF-8) so that a newer daemon can
 * add fields without breaking older clients. */
#include "proto.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "errbuf.h"
#include "macro.h"

#define ERRNO_ENTRY(e) [e] = #e

/* Indexed by value, so the compiler checks every name against errno.h.
 * Aliases (EWOULDBLOCK, EDEADLOCK, ENOTSUP) are handled by errno_from_name. */
static const char *const errno_names[] = {
        ERRNO_ENTRY(EPERM), ERRNO_ENTRY(ENOENT), ERRNO_ENTRY(ESRCH), ERRNO_ENTRY(EINTR),
        ERRNO_ENTRY(EIO), ERRNO_ENTRY(ENXIO), ERRNO_ENTRY(E2BIG), ERRNO_ENTRY(ENOEXEC),
        ERRNO_ENTRY(EBADF), ERRNO_ENTRY(ECHILD), ERRNO_ENTRY(EAGAIN), ERRNO_ENTRY(ENOMEM),
        ERRNO_ENTRY(EACCES), ERRNO_ENTRY(EFAULT), ERRNO_ENTRY(ENOTBLK), ERRNO_ENTRY(EBUSY),
        ERRNO_ENTRY(EEXIST), ERRNO_ENTRY(EXDEV), ERRNO_ENTRY(ENODEV), ERRNO_ENTRY(ENOTDIR),
        ERRNO_ENTRY(EISDIR), ERRNO_ENTRY(EINVAL), ERRNO_ENTRY(ENFILE), ERRNO_ENTRY(EMFILE),
        ERRNO_ENTRY(ENOTTY), ERRNO_ENTRY(ETXTBSY), ERRNO_ENTRY(EFBIG), ERRNO_ENTRY(ENOSPC),
        ERRNO_ENTRY(ESPIPE), ERRNO_ENTRY(EROFS), ERRNO_ENTRY(EMLINK), ERRNO_ENTRY(EPIPE),
        ERRNO_ENTRY(EDOM), ERRNO_ENTRY(ERANGE), ERRNO_ENTRY(EDEADLK), ERRNO_ENTRY(ENAMETOOLONG),
        ERRNO_ENTRY(ENOLCK), ERRNO_ENTRY(ENOSYS), ERRNO_ENTRY(ENOTEMPTY), ERRNO_ENTRY(ELOOP),
        ERRNO_ENTRY(ENOMSG), ERRNO_ENTRY(EIDRM), ERRNO_ENTRY(ECHRNG), ERRNO_ENTRY(EL2NSYNC),
        ERRNO_ENTRY(EL3HLT), ERRNO_ENTRY(EL3RST), ERRNO_ENTRY(ELNRNG), ERRNO_ENTRY(EUNATCH),
        ERRNO_ENTRY(ENOCSI), ERRNO_ENTRY(EL2HLT), ERRNO_ENTRY(EBADE), ERRNO_ENTRY(EBADR),
        ERRNO_ENTRY(EXFULL), ERRNO_ENTRY(ENOANO), ERRNO_ENTRY(EBADRQC), ERRNO_ENTRY(EBADSLT),
        ERRNO_ENTRY(EBFONT), ERRNO_ENTRY(ENOSTR), ERRNO_ENTRY(ENODATA), ERRNO_ENTRY(ETIME),
        ERRNO_ENTRY(ENOSR), ERRNO_ENTRY(ENONET), ERRNO_ENTRY(ENOPKG), ERRNO_ENTRY(EREMOTE),
        ERRNO_ENTRY(ENOLINK), ERRNO_ENTRY(EADV), ERRNO_ENTRY(ESRMNT), ERRNO_ENTRY(ECOMM),
        ERRNO_ENTRY(EPROTO), ERRNO_ENTRY(EMULTIHOP), ERRNO_ENTRY(EDOTDOT), ERRNO_ENTRY(EBADMSG),
        ERRNO_ENTRY(EOVERFLOW), ERRNO_ENTRY(ENOTUNIQ), ERRNO_ENTRY(EBADFD), ERRNO_ENTRY(EREMCHG),
        ERRNO_ENTRY(ELIBACC), ERRNO_ENTRY(ELIBBAD), ERRNO_ENTRY(ELIBSCN), ERRNO_ENTRY(ELIBMAX),
        ERRNO_ENTRY(ELIBEXEC), ERRNO_ENTRY(EILSEQ), ERRNO_ENTRY(ERESTART), ERRNO_ENTRY(ESTRPIPE),
        ERRNO_ENTRY(EUSERS), ERRNO_ENTRY(ENOTSOCK), ERRNO_ENTRY(EDESTADDRREQ), ERRNO_ENTRY(EMSGSIZE),
        ERRNO_ENTRY(EPROTOTYPE), ERRNO_ENTRY(ENOPROTOOPT), ERRNO_ENTRY(EPROTONOSUPPORT),
        ERRNO_ENTRY(ESOCKTNOSUPPORT), ERRNO_ENTRY(EOPNOTSUPP), ERRNO_ENTRY(EPFNOSUPPORT),
        ERRNO_ENTRY(EAFNOSUPPORT), ERRNO_ENTRY(EADDRINUSE), ERRNO_ENTRY(EADDRNOTAVAIL),
        ERRNO_ENTRY(ENETDOWN), ERRNO_ENTRY(ENETUNREACH), ERRNO_ENTRY(ENETRESET),
        ERRNO_ENTRY(ECONNABORTED), ERRNO_ENTRY(ECONNRESET), ERRNO_ENTRY(ENOBUFS), ERRNO_ENTRY(EISCONN),
        ERRNO_ENTRY(ENOTCONN), ERRNO_ENTRY(ESHUTDOWN), ERRNO_ENTRY(ETOOMANYREFS),
        ERRNO_ENTRY(ETIMEDOUT), ERRNO_ENTRY(ECONNREFUSED), ERRNO_ENTRY(EHOSTDOWN),
        ERRNO_ENTRY(EHOSTUNREACH), ERRNO_ENTRY(EALREADY), ERRNO_ENTRY(EINPROGRESS),
        ERRNO_ENTRY(ESTALE), ERRNO_ENTRY(EUCLEAN), ERRNO_ENTRY(ENOTNAM), ERRNO_ENTRY(ENAVAIL),
        ERRNO_ENTRY(EISNAM), ERRNO_ENTRY(EREMOTEIO), ERRNO_ENTRY(EDQUOT), ERRNO_ENTRY(ENOMEDIUM),
        ERRNO_ENTRY(EMEDIUMTYPE), ERRNO_ENTRY(ECANCELED), ERRNO_ENTRY(ENOKEY),
        ERRNO_ENTRY(EKEYEXPIRED), ERRNO_ENTRY(EKEYREVOKED), ERRNO_ENTRY(EKEYREJECTED),
        ERRNO_ENTRY(EOWNERDEAD), ERRNO_ENTRY(ENOTRECOVERABLE), ERRNO_ENTRY(ERFKILL),
        ERRNO_ENTRY(EHWPOISON),
};

static const struct {
        const char *name;
        int value;
} errno_aliases[] = {
        { "EWOULDBLOCK", EWOULDBLOCK },
        { "EDEADLOCK", EDEADLOCK },
        { "ENOTSUP", ENOTSUP },
};

const char *errno_name(int error)
{
        if (error < 0)
                error = -error;
        if (error <= 0 || (size_t)error >= ARRAY_SIZE(errno_names))
                return NULL;
        return errno_names[error];
}

int errno_from_name(const char *name)
{
        if (!name)
                return -EINVAL;
        for (size_t i = 1; i < ARRAY_SIZE(errno_names); i++)
                if (errno_names[i] && strcmp(errno_names[i], name) == 0)
                        return (int)i;
        for (size_t i = 0; i < ARRAY_SIZE(errno_aliases); i++)
                if (strcmp(errno_aliases[i].name, name) == 0)
                        return errno_aliases[i].value;
        return -EINVAL;
}

static void tokener_freep(struct json_tokener **t)
{
        if (*t)
                json_tokener_free(*t);
}

static bool is_json_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parses exactly one JSON object from buf; whitespace may follow it, nothing
 * else may. */
static int parse_object(const char *buf, size_t len, size_t max_len, bool strict,
                        struct json_object **ret, char *err, size_t errlen)
{
        _cleanup_(tokener_freep) struct json_tokener *tok = NULL;
        _cleanup_json_ struct json_object *obj = NULL;
        enum json_tokener_error jerr;
        size_t end;

        if (!buf && len > 0)
                return -EINVAL;
        if (len > max_len) {
                errbuf_set(err, errlen, "message too long (%zu bytes, at most %zu)", len, max_len);
                return -EMSGSIZE;
        }
        if (len == 0) {
                errbuf_set(err, errlen, "empty message");
                return -EBADMSG;
        }
        /* json-c would stop at a NUL and report success on what precedes it,
         * and it lets raw control characters through inside strings. */
        if (memchr(buf, '\0', len)) {
                errbuf_set(err, errlen, "message contains a NUL byte");
                return -EBADMSG;
        }
        if (strict)
                for (size_t i = 0; i < len; i++)
                        if ((unsigned char)buf[i] < 0x20 && !is_json_space(buf[i])) {
                                errbuf_set(err, errlen, "control character at byte %zu", i);
                                return -EBADMSG;
                        }

        tok = json_tokener_new_ex(PROTO_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, strict ? JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                                     JSON_TOKENER_VALIDATE_UTF8
                                           : 0);
        obj = json_tokener_parse_ex(tok, buf, (int)len);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue) {
                errbuf_set(err, errlen, "truncated JSON");
                return -EBADMSG;
        }
        if (jerr == json_tokener_error_depth) {
                errbuf_set(err, errlen, "JSON nested too deeply (at most %d levels)", PROTO_MAX_DEPTH);
                return -EBADMSG;
        }
        if (jerr != json_tokener_success) {
                errbuf_set(err, errlen, "invalid JSON at byte %zu: %s", json_tokener_get_parse_end(tok),
                        json_tokener_error_desc(jerr));
                return -EBADMSG;
        }
        end = json_tokener_get_parse_end(tok);
        for (size_t i = end; i < len; i++)
                if (!is_json_space(buf[i])) {
                        errbuf_set(err, errlen, "unexpected data after the JSON object at byte %zu", i);
                        return -EBADMSG;
                }
        if (!json_object_is_type(obj, json_type_object)) {
                errbuf_set(err, errlen, "message is not a JSON object");
                return -EBADMSG;
        }
        *ret = TAKE_PTR(obj);
        return 0;
}

int proto_get_uint(struct json_object *obj, const char *key, uint64_t max, uint64_t *ret)
{
        struct json_object *v;
        int64_t n;

        if (!json_object_object_get_ex(obj, key, &v))
                return -ENOENT;
        if (!json_object_is_type(v, json_type_int))
                return -EINVAL;
        n = json_object_get_int64(v);
        if (n < 0 || (uint64_t)n > max)
                return -ERANGE;
        *ret = (uint64_t)n;
        return 0;
}

/* Values json-c takes but JSON does not have, or that handlers would read
 * wrongly: a "\u0000" inside a string (json_object_get_string() would cut it
 * short silently), and NaN or infinite numbers.  Returns what is wrong. */
static const char *bad_value(struct json_object *o)
{
        const char *why;

        switch (json_object_get_type(o)) {
        case json_type_string:
                if (strlen(json_object_get_string(o)) != (size_t)json_object_get_string_len(o))
                        return "a string contains a NUL character";
                return NULL;
        case json_type_double:
                if (!isfinite(json_object_get_double(o)))
                        return "a number is not finite";
                return NULL;
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        if ((why = bad_value(json_object_array_get_idx(o, i))))
                                return why;
                return NULL;
        case json_type_object: {
                json_object_object_foreach(o, key, val) {
                        (void)key;
                        if ((why = bad_value(val)))
                                return why;
                }
                return NULL;
        }
        default:
                return NULL;
        }
}

static bool valid_command_name(const char *s, size_t len)
{
        if (len == 0 || len > 64)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

static int request_version(struct json_object *obj, char *err, size_t errlen)
{
        uint64_t version;
        int r;

        r = proto_get_uint(obj, "xen-loopd", UINT32_MAX, &version);
        if (r == -ENOENT) {
                errbuf_set(err, errlen, "request has no \"xen-loopd\" protocol version");
                return -EBADMSG;
        }
        if (r < 0) {
                errbuf_set(err, errlen, "\"xen-loopd\" must be the protocol version, an integer");
                return -EBADMSG;
        }
        if (version != PROTO_VERSION) {
                errbuf_set(err, errlen, "protocol version %" PRIu64 " is not supported (this is version %d)",
                        version, PROTO_VERSION);
                return -EPROTONOSUPPORT;
        }
        return 0;
}

static int request_command(struct json_object *obj, const char **ret, char *err, size_t errlen)
{
        struct json_object *v;

        if (!json_object_object_get_ex(obj, "command", &v)) {
                errbuf_set(err, errlen, "request has no \"command\"");
                return -EBADMSG;
        }
        if (!json_object_is_type(v, json_type_string)) {
                errbuf_set(err, errlen, "\"command\" must be a string");
                return -EBADMSG;
        }
        *ret = json_object_get_string(v);
        if (!valid_command_name(*ret, (size_t)json_object_get_string_len(v))) {
                errbuf_set(err, errlen, "\"command\" must be a command name (lower-case letters, digits, '-')");
                return -EBADMSG;
        }
        return 0;
}

/* The request's "args" (NULL when left out), and no field but the four. */
static int request_args(struct json_object *obj, struct json_object **ret, char *err, size_t errlen)
{
        struct json_object *args = NULL;

        if (json_object_object_get_ex(obj, "args", &args) && !json_object_is_type(args, json_type_object)) {
                errbuf_set(err, errlen, "\"args\" must be a JSON object");
                return -EBADMSG;
        }
        json_object_object_foreach(obj, key, val) {
                (void)val;
                if (strcmp(key, "xen-loopd") != 0 && strcmp(key, "id") != 0 && strcmp(key, "command") != 0 &&
                    strcmp(key, "args") != 0) {
                        errbuf_set(err, errlen, "unknown field \"%.64s\" in request", key);
                        return -EBADMSG;
                }
        }
        if (args) {
                const char *why = bad_value(args);
                if (why) {
                        errbuf_set(err, errlen, "in \"args\", %s", why);
                        return -EBADMSG;
                }
        }
        *ret = args;
        return 0;
}

void proto_request_done(struct proto_request *req)
{
        if (req) {
                json_object_put(req->obj); /* NULL-safe */
                *req = (struct proto_request){ 0 };
        }
}

int proto_parse_request(const char *buf, size_t len, struct proto_request *ret, uint32_t *ret_id,
                        char *err, size_t errlen)
{
        _cleanup_json_ struct json_object *obj = NULL;
        struct json_object *args = NULL;
        uint64_t id;
        const char *command;
        int r;

        if (ret_id)
                *ret_id = 0;
        if (!ret)
                return -EINVAL;
        errbuf_set(err, errlen, "%s", "");

        r = parse_object(buf, len, PROTO_MAX_MESSAGE, true, &obj, err, errlen);
        if (r == -EMSGSIZE || r == -ENOMEM || r == -EINVAL)
                return r;
        if (r < 0)
                return -EBADMSG;

        /* The id first, so that every later error can be addressed. */
        r = proto_get_uint(obj, "id", UINT32_MAX, &id);
        if (r < 0) {
                errbuf_set(err, errlen, r == -ENOENT ? "request has no \"id\""
                                                  : "\"id\" must be an integer from 0 to 4294967295");
                return -EBADMSG;
        }
        if (ret_id)
                *ret_id = (uint32_t)id;

        r = request_version(obj, err, errlen);
        if (r < 0)
                return r;
        r = request_command(obj, &command, err, errlen);
        if (r < 0)
                return r;
        r = request_args(obj, &args, err, errlen);
        if (r < 0)
                return r;

        if (!args) {
                args = json_object_new_object();
                if (!args)
                        return -ENOMEM;
                if (json_object_object_add(obj, "args", args) < 0) {
                        json_object_put(args);
                        return -ENOMEM;
                }
        }

        *ret = (struct proto_request){
                .id = (uint32_t)id,
                .command = command,
                .args = args,
                .obj = TAKE_PTR(obj),
        };
        return 0;
}

int proto_add_field(struct json_object *obj, const char *key, struct json_object *val)
{
        if (!val)
                return -ENOMEM;
        if (json_object_object_add(obj, key, val) < 0) {
                json_object_put(val);
                return -ENOMEM;
        }
        return 0;
}

static struct json_object *envelope(uint32_t id)
{
        _cleanup_json_ struct json_object *obj = json_object_new_object();

        if (!obj)
                return NULL;
        if (proto_add_field(obj, "xen-loopd", json_object_new_int(PROTO_VERSION)) < 0 ||
            proto_add_field(obj, "id", json_object_new_int64(id)) < 0)
                return NULL;
        return TAKE_PTR(obj);
}

static int to_text(struct json_object *obj, size_t max, char **ret)
{
        const char *s;
        size_t len;
        char *copy;

        s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                              &len);
        if (!s)
                return -ENOMEM;
        if (len > max)
                return -EMSGSIZE;
        copy = strndup(s, len);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* The envelope with k1: v1 and k2: v2, as text of at most max bytes.  Takes v1 and v2
 * (NULL: out of memory). */
static int format_message(uint32_t id, const char *k1, struct json_object *v1, const char *k2,
                          struct json_object *v2, size_t max, char **ret)
{
        _cleanup_json_ struct json_object *obj = envelope(id);
        int r;

        if (!obj) {
                json_object_put(v1);
                json_object_put(v2);
                return -ENOMEM;
        }
        r = proto_add_field(obj, k1, v1);
        if (r < 0) {
                json_object_put(v2);
                return r;
        }
        r = proto_add_field(obj, k2, v2);
        if (r < 0)
                return r;
        return to_text(obj, max, ret);
}

int proto_format_request(uint32_t id, const char *command, struct json_object *args, char **ret)
{
        _cleanup_json_ struct json_object *a = args;

        if (!command || !ret || (a && !json_object_is_type(a, json_type_object)))
                return -EINVAL;
        return format_message(id, "command", json_object_new_string(command), "args",
                              a ? TAKE_PTR(a) : json_object_new_object(), PROTO_MAX_MESSAGE, ret);
}

int proto_format_reply(uint32_t id, struct json_object *result, char **ret)
{
        _cleanup_json_ struct json_object *res = result;

        if (!ret || (res && !json_object_is_type(res, json_type_object)))
                return -EINVAL;
        return format_message(id, "ok", json_object_new_boolean(1), "result",
                              res ? TAKE_PTR(res) : json_object_new_object(), PROTO_MAX_REPLY, ret);
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max)
{
        size_t len = strlen(s);

        if (len <= max)
                return len;
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
                len--;
        return len;
}

int proto_format_error(uint32_t id, int error, const char *message, char **ret)
{
        _cleanup_json_ struct json_object *obj = NULL;
        struct json_object *e;
        const char *name;
        int r;

        if (!ret)
                return -EINVAL;
        if (error < 0)
                error = -error;
        if (error == 0)
                error = EIO;
        if (!message || !*message)
                message = strerror(error);

        obj = envelope(id);
        if (!obj)
                return -ENOMEM;
        r = proto_add_field(obj, "ok", json_object_new_boolean(0));
        if (r < 0)
                return r;
        e = json_object_new_object();
        r = proto_add_field(obj, "error", e);
        if (r < 0)
                return r;
        r = proto_add_field(e, "errno", json_object_new_int(error));
        if (r < 0)
                return r;
        name = errno_name(error);
        if (name) {
                r = proto_add_field(e, "name", json_object_new_string(name));
                if (r < 0)
                        return r;
        }
        r = proto_add_field(e, "message", json_object_new_string_len(message, (int)utf8_cut(message, PROTO_MAX_ERROR_MESSAGE)));
        if (r < 0)
                return r;
        return to_text(obj, PROTO_MAX_MESSAGE, ret);
}

void proto_reply_done(struct proto_reply *rep)
{
        if (rep) {
                json_object_put(rep->obj); /* NULL-safe */
                *rep = (struct proto_reply){ 0 };
        }
}

int proto_parse_reply(const char *buf, size_t len, struct proto_reply *ret)
{
        _cleanup_json_ struct json_object *obj = NULL;
        struct json_object *v, *e, *result = NULL;
        uint64_t id, version, error;
        const char *message = NULL;
        bool ok;
        int r;

        if (!ret)
                return -EINVAL;
        r = parse_object(buf, len, PROTO_MAX_REPLY, false, &obj, NULL, 0);
        if (r == -ENOMEM || r == -EINVAL)
                return r;
        if (r < 0)
                return -EBADMSG;

        r = proto_get_uint(obj, "xen-loopd", UINT32_MAX, &version);
        if (r < 0)
                return -EBADMSG;
        if (version != PROTO_VERSION)
                return -EPROTONOSUPPORT;
        if (proto_get_uint(obj, "id", UINT32_MAX, &id) < 0)
                return -EBADMSG;
        if (!json_object_object_get_ex(obj, "ok", &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        ok = json_object_get_boolean(v);

        if (ok) {
                if (json_object_object_get_ex(obj, "result", &result)) {
                        if (!json_object_is_type(result, json_type_object))
                                return -EBADMSG;
                } else {
                        result = json_object_new_object();
                        if (proto_add_field(obj, "result", result) < 0)
                                return -ENOMEM;
                }
                error = 0;
        } else {
                if (!json_object_object_get_ex(obj, "error", &e) || !json_object_is_type(e, json_type_object))
                        return -EBADMSG;
                if (proto_get_uint(e, "errno", INT32_MAX, &error) < 0 || error == 0)
                        return -EBADMSG;
                if (json_object_object_get_ex(e, "message", &v)) {
                        if (!json_object_is_type(v, json_type_string))
                                return -EBADMSG;
                        message = json_object_get_string(v);
                }
                if (!message || !*message)
                        message = strerror((int)error);
        }

        *ret = (struct proto_reply){
                .id = (uint32_t)id,
                .ok = ok,
                .result = result,
                .error = -(int)error,
                .message = message,
                .obj = TAKE_PTR(obj),
        };
        return 0;
}

bool proto_script_is_loopd(const char *script)
{
        const char *base = strrchr(script, '/');

        base = base ? base + 1 : script;
        return strcmp(base, "block-loopd") == 0 || strcmp(base, "xen-loopctl") == 0;
}
