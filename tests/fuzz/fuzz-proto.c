/* fuzz-proto.c — libFuzzer target for the control protocol parsers: any
 * bytes a client (or a daemon) may send must be refused or accepted without
 * crashing or leaking, and what is accepted must format back. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        return 0;
}
