/* proto.h — the control protocol, version 1: message framing and
 * validation, shared by the server and the client.
 *
 * Transport: a Unix SOCK_SEQPACKET socket; one message is one JSON object in
 * UTF-8, at most PROTO_MAX_MESSAGE bytes, optionally carrying up to
 * PROTO_MAX_FDS file descriptors by SCM_RIGHTS.  A successful reply may be
 * longer, up to PROTO_MAX_REPLY bytes (a "list" of many devices); clients
 * must receive into a buffer that large.  Requests must not contain NUL
 * bytes, nor strings with "\u0000"; whitespace may follow the object,
 * nothing else may; fields other than those below are refused.
 *
 * Request:  {"xen-loopd": 1, "id": <uint32>, "command": "<name>", "args": {…}}
 * Reply:    {"xen-loopd": 1, "id": <same>, "ok": true, "result": {…}}
 *       or  {"xen-loopd": 1, "id": <same>, "ok": false,
 *            "error": {"errno": <positive int>, "name": "ENOENT", "message": "…"}}
 *
 * "args" may be omitted (an empty object).  A client may pipeline calls; the
 * replies carry the request's id and may come in any order.  A message that
 * is not valid JSON, too deep, too long, or lacks the fields above gets an
 * error reply with id 0 (the connection stays open unless the message was
 * oversized, which closes it). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A JSON object released when it goes out of scope (NULL-safe). */
static inline void json_putp(struct json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

#define PROTO_VERSION 1
#define PROTO_MAX_MESSAGE 65536
#define PROTO_MAX_FDS 16
#define PROTO_MAX_DEPTH 16
#define PROTO_MAX_REPLY (4 * 1024 * 1024)
/* Longer error messages are cut (at a UTF-8 character boundary). */
#define PROTO_MAX_ERROR_MESSAGE 4096

struct proto_request {
        uint32_t id;
        const char *command;             /* points into the parsed object */
        struct json_object *args;        /* borrowed from obj; never NULL */
        struct json_object *obj;         /* the whole message; owned */
};

/* Parses and validates a request.  On failure returns -EBADMSG (or
 * -EPROTONOSUPPORT for another version, -EMSGSIZE when longer than
 * PROTO_MAX_MESSAGE, -ENOMEM) and, when it could be read, *ret_id gets the
 * request id so the error can be addressed (0 otherwise); err (may be NULL)
 * gets one human sentence saying what was wrong. */
int proto_parse_request(const char *buf, size_t len, struct proto_request *ret, uint32_t *ret_id,
                        char *err, size_t errlen);
void proto_request_done(struct proto_request *req);

/* Builds messages; result/args are taken (may be NULL; otherwise they must
 * be JSON objects, or -EINVAL).  Returns the JSON text in *ret (malloc'ed,
 * NUL-terminated; send strlen() bytes) or -ENOMEM / -EMSGSIZE (a request or
 * error longer than PROTO_MAX_MESSAGE, a reply longer than PROTO_MAX_REPLY).
 * error may be given as -errno or errno. */
int proto_format_request(uint32_t id, const char *command, struct json_object *args, char **ret);
int proto_format_reply(uint32_t id, struct json_object *result, char **ret);
int proto_format_error(uint32_t id, int error, const char *message, char **ret);

struct proto_reply {
        uint32_t id;
        bool ok;
        struct json_object *result;      /* borrowed from obj when ok */
        int error;                       /* -errno when !ok */
        const char *message;             /* when !ok */
        struct json_object *obj;         /* owned */
};

/* -EBADMSG for a malformed reply, -EPROTONOSUPPORT for another version.
 * Unknown fields are ignored; "result" may be absent (an empty object), and
 * so may the error's "name" and "message" (then strerror() is used). */
int proto_parse_reply(const char *buf, size_t len, struct proto_reply *ret);
void proto_reply_done(struct proto_reply *rep);

/* An unsigned integer field of obj that fits max, strict about the JSON
 * type so that "1", 1.0 or true are not taken for 1.  -ENOENT when absent,
 * -EINVAL for another type, -ERANGE beyond max. */
int proto_get_uint(struct json_object *obj, const char *key, uint64_t max, uint64_t *ret);

/* "ENOENT" for 2 (or -2), … ; NULL when unknown.  And back: the positive
 * value, or -EINVAL for an unknown name (EWOULDBLOCK, ENOTSUP, EDEADLOCK are
 * understood as their aliases). */
const char *errno_name(int error);
int errno_from_name(const char *name);

/* Whether a vbd's `script` node names xen-loopd's hotplug script:
 * block-loopd or xen-loopctl, in any directory.  The daemon and the client
 * decide by this alone which disks are the daemon's to set up. */
bool proto_script_is_loopd(const char *script);

/* Adds val (taken; NULL from a failed json_object_new_*) to obj under key.
 * 0 or -ENOMEM. */
int proto_add_field(struct json_object *obj, const char *key, struct json_object *val);
