/* xswire.h — the xenstore wire protocol (xen/io/xs_wire.h), as pure
 * functions: building a request, cutting messages out of the byte stream
 * xenstored (or the kernel's /dev/xen/xenbus) sends, and reading the bodies
 * of replies and watch events.
 *
 * No I/O, no global state; what comes from xenstored is checked here
 * strictly and fuzzed (tests/fuzz/fuzz-xswire.c).  The connection that uses
 * it is xsconn.c. */
#pragma once

#include <errno.h> /* before xs_wire.h: it names errors only then */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#define XSW_HEADER_SIZE sizeof(struct xsd_sockmsg)
#define XSW_MSG_MAX (XSW_HEADER_SIZE + XENSTORE_PAYLOAD_MAX)

/* xs_wire.h holds every body to XENSTORE_PAYLOAD_MAX, and the C xenstored
 * does: a longer directory is refused (E2BIG) and read with
 * XS_DIRECTORY_PART.  oxenstored has no XS_DIRECTORY_PART and sends a
 * directory of any length in one reply on its socket (a ring could not
 * carry it).  So an XS_DIRECTORY reply, and only that, is taken up to this
 * bound: room for an entry of every domid under backend/vbd (32752 names of
 * at most 5 digits, 185402 bytes).  Any other body over
 * XENSTORE_PAYLOAD_MAX is still malformed. */
#define XSW_DIRECTORY_MAX (256u * 1024u)

/* One piece of a request body, copied as is (a path's NUL included by the
 * caller when the protocol wants it). */
struct xsw_part {
        const void *data;
        size_t len;
};

/* Writes a whole request into buf (at least XSW_MSG_MAX bytes).  Returns its
 * length, or -E2BIG when the body is over XENSTORE_PAYLOAD_MAX. */
int xsw_build(void *buf, uint32_t type, uint32_t req_id, uint32_t tx_id, const struct xsw_part *parts,
              size_t n_parts);

/* Looks at the start of a stream: 1 and *hdr when a whole message is there
 * (XSW_HEADER_SIZE + hdr->len bytes), 0 when more bytes are needed (*hdr
 * is then filled once the header is there), -EBADMSG when it cannot be a
 * message (body over XENSTORE_PAYLOAD_MAX, an XS_DIRECTORY body over
 * XSW_DIRECTORY_MAX, or a type xenstored never sends). */
int xsw_peek(const void *buf, size_t len, struct xsd_sockmsg *hdr);

/* An XS_ERROR body ("ENOENT\0"): the -errno it names, -EIO for a name this
 * side does not know. */
int xsw_error(const char *body, size_t len);

/* An XS_WATCH_EVENT body: "path\0token\0" (anything after the token is
 * ignored, as xenstored may append).  Points into body.  -EBADMSG when a
 * string is not terminated. */
int xsw_watch_event(const char *body, size_t len, const char **path, const char **token);

/* An XS_TRANSACTION_START reply: a decimal id, NUL-terminated, not 0. */
int xsw_txid(const char *body, size_t len, uint32_t *ret);

/* An XS_DIRECTORY body, a list of NUL-terminated names: one malloc'ed
 * block holding the array and the strings (free() it), *ret_n entries.
 * -EBADMSG when the last name is not terminated. */
int xsw_directory(const char *body, size_t len, char ***ret, unsigned *ret_n);

/* An XS_DIRECTORY_PART reply: "<generation>\0" then the names from the
 * requested offset, the list's end marked by an empty name.  gen points to
 * the generation, names and names_len to the names (the end marker excluded),
 * last is true when the end marker was in this part. */
int xsw_directory_part(const char *body, size_t len, const char **gen, const char **names, size_t *names_len,
                       bool *last);
