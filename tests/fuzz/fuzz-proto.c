/* fuzz-proto.c — libFuzzer target for the control protocol parsers: any
 * bytes a client (or a daemon) may send must be refused or accepted without
 * crashing or leaking, and what is accepted must format back.  The same
 * bytes as the message of an error reply (the daemon quotes paths and
 * values from xenstore in them) must give a reply the client reads back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error_reply(const uint8_t *data, size_t size)
{
        struct proto_reply rep;
        char *msg = strndup((const char *)data, size), *text = NULL;
        int error = size ? 1 + data[0] % 150 : 22;
        size_t len;

        if (!msg)
                return;
        len = strlen(msg);
        if (proto_format_error((uint32_t)size, -error, msg, &text) != 0)
                abort();        /* a message is cut, never refused */
        if (proto_parse_reply(text, strlen(text), &rep) != 0)
                abort();
        if (rep.ok || rep.error != -error || rep.id != (uint32_t)size)
                abort();
        if (len > 0) {
                /* The message comes back whole, or cut at PROTO_MAX_ERROR_MESSAGE. */
                size_t got = strlen(rep.message);
                if (got > len || got > PROTO_MAX_ERROR_MESSAGE || memcmp(rep.message, msg, got) != 0)
                        abort();
                if (got < len && got + 4 <= PROTO_MAX_ERROR_MESSAGE)
                        abort();
        }
        proto_reply_done(&rep);
        free(text);
        free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct proto_request req;
        struct proto_reply rep;
        char err[256];
        uint32_t id;
        char *text = NULL;

        if (proto_parse_request((const char *)data, size, &req, &id, err, sizeof(err)) == 0) {
                /* An accepted request has a command and args, and re-formats. */
                if (!req.command || !req.args)
                        abort();
                if (proto_format_request(req.id, req.command, json_object_get(req.args), &text) == 0) {
                        struct proto_request again;
                        if (proto_parse_request(text, strlen(text), &again, &id, err, sizeof(err)) != 0)
                                abort();
                        if (again.id != req.id || strcmp(again.command, req.command) != 0)
                                abort();
                        proto_request_done(&again);
                        free(text);
                }
                proto_request_done(&req);
        } else if (strnlen(err, sizeof(err)) == 0) {
                abort();         /* every refusal says why */
        }

        if (proto_parse_reply((const char *)data, size, &rep) == 0) {
                if (rep.ok ? !rep.result : (rep.error >= 0 || !rep.message))
                        abort();
                proto_reply_done(&rep);
        }

        check_error_reply(data, size);
        return 0;
}
