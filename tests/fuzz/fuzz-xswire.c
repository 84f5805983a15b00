/* fuzz-xswire.c — libFuzzer target for the xenstore wire protocol
 * (src/xswire.c): the input is a byte stream as xenstored (or the kernel's
 * xenbus device) sends it.  Messages are cut out of it with xsw_peek, as the
 * connection does, and each body is read by the reader for its type, from
 * a heap block of exactly its length so that any read past it is caught
 * (a directory longer than XENSTORE_PAYLOAD_MAX included: the seed
 * directory-long makes the fuzzer's inputs that long).
 * Whatever the bytes: no crash, no overflow; a message rebuilds to the same
 * bytes, and what a reader accepts is consistent with the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xswire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                 \
        do {                                                                     \
                if (!(x)) {                                                      \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
                                __LINE__, #x);                                   \
                        abort();                                                 \
                }                                                                \
        } while (0)

static bool inside(const char *p, const char *body, size_t len)
{
        return p >= body && p < body + len;
}

static void check_error(const char *body, size_t len)
{
        int r = xsw_error(body, len);
        bool known = false;

        CHECK(r < 0);
        if (r == -EIO)
                return; /* "EIO", or a name this side does not know */
        for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
                if (-xsd_errors[i].errnum == r) {
                        size_t n = strlen(xsd_errors[i].errstring);
                        known = true;
                        /* The name is there, whole: the body's first string
                         * (terminated, or all of the body). */
                        CHECK(n <= len && memcmp(body, xsd_errors[i].errstring, n) == 0);
                        CHECK(n == len || body[n] == '\0');
                }
        CHECK(known);
}

static void check_watch_event(const char *body, size_t len)
{
        const char *path, *token;

        if (xsw_watch_event(body, len, &path, &token) < 0)
                return;
        CHECK(path == body);
        CHECK(inside(token, body, len));
        CHECK(token == path + strlen(path) + 1);
        CHECK(inside(token + strlen(token), body, len));
}

static void check_txid(const char *body, size_t len)
{
        char again[16];
        uint32_t id;
        size_t n;

        if (xsw_txid(body, len, &id) < 0)
                return;
        CHECK(id != 0);
        n = strnlen(body, len);
        CHECK(n < len && n <= 10);
        /* The digits say that number, leading zeros aside. */
        snprintf(again, sizeof(again), "%u", id);
        CHECK(strlen(again) <= n);
        CHECK(strcmp(body + n - strlen(again), again) == 0);
        for (size_t i = 0; i < n - strlen(again); i++)
                CHECK(body[i] == '0');
}

/* A list of names must read back as exactly its bytes. */
static int check_directory(const char *body, size_t len)
{
        char **v;
        unsigned n;
        size_t off = 0;
        int r;

        r = xsw_directory(body, len, &v, &n);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                return r;
        }
        for (unsigned i = 0; i < n; i++) {
                size_t l = strlen(v[i]) + 1;
                CHECK(off + l <= len && memcmp(body + off, v[i], l) == 0);
                off += l;
        }
        CHECK(off == len);
        CHECK(v[n] == NULL);
        free(v);
        return 0;
}

static void check_directory_part(const char *body, size_t len)
{
        const char *gen, *names;
        size_t names_len;
        bool last;
        char *copy;

        if (xsw_directory_part(body, len, &gen, &names, &names_len, &last) < 0)
                return;
        CHECK(gen == body && strlen(gen) > 0);
        CHECK(names == gen + strlen(gen) + 1);
        CHECK(names + names_len + last <= body + len);
        if (last)
                CHECK(names[names_len] == '\0');
        /* The names are whole, each terminated, none empty. */
        copy = malloc(names_len ? names_len : 1);
        CHECK(copy);
        memcpy(copy, names, names_len);
        CHECK(check_directory(copy, names_len) == 0);
        for (size_t i = 0; i < names_len; i++)
                CHECK(copy[i] != '\0' || (i > 0 && copy[i - 1] != '\0'));
        free(copy);
}

static void check_message(const struct xsd_sockmsg *hdr, const uint8_t *msg)
{
        static char again[XSW_MSG_MAX];
        struct xsw_part part;
        char *body;

        /* The body alone, in a block of exactly its size. */
        body = malloc(hdr->len ? hdr->len : 1);
        CHECK(body);
        memcpy(body, msg + XSW_HEADER_SIZE, hdr->len);

        /* Rebuilt, when a request could be that long. */
        part = (struct xsw_part){ body, hdr->len };
        if (hdr->len <= XENSTORE_PAYLOAD_MAX) {
                CHECK(xsw_build(again, hdr->type, hdr->req_id, hdr->tx_id, &part, 1) ==
                      (int)(XSW_HEADER_SIZE + hdr->len));
                CHECK(memcmp(again, msg, XSW_HEADER_SIZE + hdr->len) == 0);
        } else
                CHECK(xsw_build(again, hdr->type, hdr->req_id, hdr->tx_id, &part, 1) == -E2BIG);

        switch (hdr->type) {
        case XS_ERROR:
                check_error(body, hdr->len);
                break;
        case XS_WATCH_EVENT:
                check_watch_event(body, hdr->len);
                break;
        case XS_TRANSACTION_START:
                check_txid(body, hdr->len);
                break;
        case XS_DIRECTORY:
                check_directory(body, hdr->len);
                break;
        case XS_DIRECTORY_PART:
                check_directory_part(body, hdr->len);
                break;
        default:
                break;
        }
        free(body);
}

/* The longest body of a message: a directory may pass
 * XENSTORE_PAYLOAD_MAX (oxenstored sends one whole), nothing else. */
static size_t body_max(const struct xsd_sockmsg *hdr)
{
        return hdr->type == XS_DIRECTORY ? XSW_DIRECTORY_MAX : XENSTORE_PAYLOAD_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct xsd_sockmsg hdr;

        /* A stream: message after message, until one is cut short or cannot
         * be one. */
        for (;;) {
                int r = xsw_peek(data, size, &hdr);
                if (r < 0) {
                        CHECK(r == -EBADMSG);
                        CHECK(size >= XSW_HEADER_SIZE);
                        CHECK(hdr.len > body_max(&hdr) || hdr.type >= XS_TYPE_COUNT);
                        break;
                }
                if (r == 0) {
                        CHECK(size < XSW_HEADER_SIZE || size - XSW_HEADER_SIZE < hdr.len);
                        break;
                }
                CHECK(r == 1 && hdr.len <= body_max(&hdr) && size >= XSW_HEADER_SIZE + hdr.len);
                check_message(&hdr, data);
                data += XSW_HEADER_SIZE + hdr.len;
                size -= XSW_HEADER_SIZE + hdr.len;
        }
        return 0;
}
