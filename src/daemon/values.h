/* values.h — parsers of values that come from outside the daemon: nodes a
 * toolstack or a driver domain writes in xenstore (params, mode,
 * physical-device, diskseq, state, path components) and the names fds come
 * back under from the service manager's fd store.
 *
 * Pure functions: no I/O, no allocation, no global state, so each can be
 * fuzzed on its own (tests/fuzz/fuzz-xsvalue.c).  Every parser returns 0, or
 * -EINVAL for anything but what it accepts, and is strict:
 * it accepts exactly what the daemon (or block-common.sh) writes, with no
 * leading blanks, signs or base prefixes, and never overflows. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "access.h"

/* Largest major and minor a Linux dev_t carries (12 and 20 bits, as the
 * kernel's MKDEV and blkback's "%x:%x" read them). */
#define VAL_MAJOR_MAX 0xfffu
#define VAL_MINOR_MAX 0xfffffu

/* A decimal unsigned 32-bit number of exactly len bytes, in canonical form
 * (no sign, no leading zero but for "0"): a domid or devid in a path. */
int val_parse_u32(const char *s, size_t len, uint32_t *ret);

/* A small decimal node (state, online, opened): an optional '-' and 1 to 10
 * digits, the whole string, within int. */
int val_parse_int(const char *s, int *ret);

/* mode: "r", "w" or "w!" (the sharing check skipped).  -EINVAL otherwise. */
int val_parse_mode(const char *mode, enum access *ret);

/* physical-device: "<major>:<minor>" in hex, as block-common.sh writes it
 * ("%x:%x"); 1 to 8 digits each, within VAL_MAJOR_MAX / VAL_MINOR_MAX. */
int val_parse_physdev(const char *s, dev_t *ret);

/* diskseq: 1 to 16 hex digits ("%llx"). */
int val_parse_diskseq(const char *s, uint64_t *ret);

/* params as read from xenstore: len bytes, which may hold NUL bytes.  0 when
 * it can name a file (not empty, no NUL, shorter than PATH_MAX); otherwise
 * -EINVAL or -ENAMETOOLONG with one clause for hotplug-error in err.  Whether
 * it is absolute, or a /dev/fdset/N, is for the opener to tell. */
int val_check_params(const char *params, size_t len, char *err, size_t errlen);

/* The fd store name of a held device fd:
 * "dev-<major>-<minor>-<diskseq>-<r|w>", major and minor in canonical
 * decimal, diskseq in lower-case hex, and the access of the entry the fd
 * belongs to: one device can be held twice, read-only and read-write (a
 * phy target used with r and w!), and each fd needs a name of its own, as
 * FDSTOREREMOVE drops every fd of a name.  Format returns what snprintf()
 * does.
 *
 * Parse also takes the name an older xen-loopd gave, without the access
 * ("dev-<major>-<minor>-<diskseq>"): *access is then 0 (the caller learns
 * the access from the fd and stores it again under the new name), else 'r'
 * or 'w'. */
int val_format_fdstore_dev(char *buf, size_t len, unsigned major, unsigned minor, uint64_t diskseq, bool rw);
int val_parse_fdstore_dev(const char *name, unsigned *major, unsigned *minor, uint64_t *diskseq, char *access);

/* Copies text into buf (len bytes with the NUL, truncated if need be),
 * writing each occurrence of quote that is longer than keep + 3 bytes as its
 * first keep bytes and "...": a long value quoted in a message leaves room
 * for the rest of the message. */
void val_abbreviate(char *buf, size_t len, const char *text, const char *quote, size_t keep);

/* Replaces every control character (below 0x20, and 0x7f) in s with '?', so
 * a value quoted in hotplug-error or a log line stays one line. */
void val_sanitize(char *s);
