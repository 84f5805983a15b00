/*
 * xs-raw — writes xenstore nodes with values xenstore-write cannot give:
 * embedded NUL bytes and control characters.  Every PATH VALUE pair is
 * written in one transaction (retried on EAGAIN).  VALUE takes the escapes
 * \0, \n, \t, \\ and \xHH.
 *
 *   xs-raw PATH VALUE [PATH VALUE ...]
 *
 * Reaches the xenstored of XENSTORED_PATH, as every harness tool does.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Decodes the escapes of s into buf (as long as s); returns the length. */
static size_t unescape(const char *s, char *buf)
{
        size_t n = 0;

        while (*s) {
                if (*s != '\\' || !s[1]) {
                        buf[n++] = *s++;
                        continue;
                }
                s++;
                switch (*s) {
                case '0': buf[n++] = '\0'; s++; break;
                case 'n': buf[n++] = '\n'; s++; break;
                case 't': buf[n++] = '\t'; s++; break;
                case 'x':
                        if (hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
                                buf[n++] = (char)(hexval(s[1]) << 4 | hexval(s[2]));
                                s += 3;
                                break;
                        }
                        buf[n++] = '\\';
                        break;
                default: buf[n++] = *s++; break;
                }
        }
        return n;
}

int main(int argc, char **argv)
{
        struct xs_handle *xs;

        if (argc < 3 || (argc - 1) % 2) {
                fprintf(stderr, "usage: xs-raw PATH VALUE [PATH VALUE ...]\n");
                return 2;
        }
        xs = xs_open(0);
        if (!xs) {
                fprintf(stderr, "xs-raw: cannot reach xenstored: %s\n", strerror(errno));
                return 1;
        }
        for (int tries = 0; tries < 100; tries++) {
                xs_transaction_t t = xs_transaction_start(xs);
                bool ok = true;

                if (t == XBT_NULL) {
                        fprintf(stderr, "xs-raw: transaction: %s\n", strerror(errno));
                        break;
                }
                for (int i = 1; i < argc && ok; i += 2) {
                        char *buf = malloc(strlen(argv[i + 1]) + 1);
                        size_t n;

                        if (!buf)
                                return 1;
                        n = unescape(argv[i + 1], buf);
                        ok = xs_write(xs, t, argv[i], buf, (unsigned)n);
                        if (!ok)
                                fprintf(stderr, "xs-raw: write %s (%zu bytes): %s\n", argv[i], n,
                                        strerror(errno));
                        free(buf);
                }
                if (!ok) {
                        xs_transaction_end(xs, t, true);
                        break;
                }
                if (xs_transaction_end(xs, t, false)) {
                        xs_close(xs);
                        return 0;
                }
                if (errno != EAGAIN) {
                        fprintf(stderr, "xs-raw: commit: %s\n", strerror(errno));
                        break;
                }
        }
        xs_close(xs);
        return 1;
}
