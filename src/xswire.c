#include "xswire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int xsw_build(void *buf, uint32_t type, uint32_t req_id, uint32_t tx_id, const struct xsw_part *parts,
              size_t n_parts)
{
        struct xsd_sockmsg hdr = { .type = type, .req_id = req_id, .tx_id = tx_id };
        char *p = (char *)buf + XSW_HEADER_SIZE;

        for (size_t i = 0; i < n_parts; i++) {
                if (parts[i].len > XENSTORE_PAYLOAD_MAX - hdr.len)
                        return -E2BIG;
                memcpy(p + hdr.len, parts[i].data, parts[i].len);
                hdr.len += (uint32_t)parts[i].len;
        }
        memcpy(buf, &hdr, sizeof(hdr));
        return (int)(XSW_HEADER_SIZE + hdr.len);
}

int xsw_peek(const void *buf, size_t len, struct xsd_sockmsg *hdr)
{
        if (len < XSW_HEADER_SIZE)
                return 0;
        memcpy(hdr, buf, sizeof(*hdr));
        if (hdr->type >= XS_TYPE_COUNT)
                return -EBADMSG;
        if (hdr->len > (hdr->type == XS_DIRECTORY ? XSW_DIRECTORY_MAX : XENSTORE_PAYLOAD_MAX))
                return -EBADMSG;
        return len - XSW_HEADER_SIZE >= hdr->len;
}

int xsw_error(const char *body, size_t len)
{
        size_t n = strnlen(body, len);

        for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
                if (strlen(xsd_errors[i].errstring) == n && memcmp(body, xsd_errors[i].errstring, n) == 0)
                        return -xsd_errors[i].errnum;
        return -EIO;
}

int xsw_watch_event(const char *body, size_t len, const char **path, const char **token)
{
        size_t n = strnlen(body, len);

        if (n == len)
                return -EBADMSG;
        if (strnlen(body + n + 1, len - n - 1) == len - n - 1)
                return -EBADMSG;
        *path = body;
        *token = body + n + 1;
        return 0;
}

int xsw_txid(const char *body, size_t len, uint32_t *ret)
{
        uint64_t v = 0;
        size_t i;

        for (i = 0; i < len && body[i]; i++) {
                if (body[i] < '0' || body[i] > '9' || i >= 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t)(body[i] - '0');
        }
        if (i == 0 || i == len || v == 0 || v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t)v;
        return 0;
}

int xsw_directory(const char *body, size_t len, char ***ret, unsigned *ret_n)
{
        unsigned n = 0;
        char **v, *s;

        for (size_t i = 0; i < len; i++)
                n += body[i] == '\0';
        if (len && body[len - 1] != '\0')
                return -EBADMSG;
        v = malloc((n + 1) * sizeof(char *) + len);
        if (!v)
                return -ENOMEM;
        s = (char *)(v + n + 1);
        memcpy(s, body, len);
        for (unsigned k = 0; k < n; k++) {
                v[k] = s;
                s += strlen(s) + 1;
        }
        v[n] = NULL;
        *ret = v;
        *ret_n = n;
        return 0;
}

int xsw_directory_part(const char *body, size_t len, const char **gen, const char **names, size_t *names_len,
                       bool *last)
{
        size_t g = strnlen(body, len), pos;

        if (g == 0 || g == len)
                return -EBADMSG;
        *gen = body;
        *names = body + g + 1;
        *last = false;
        for (pos = g + 1; pos < len;) {
                size_t n = strnlen(body + pos, len - pos);
                if (n == 0) {
                        *last = true; /* the end marker: an empty name */
                        break;
                }
                if (pos + n == len)
                        return -EBADMSG;
                pos += n + 1;
        }
        *names_len = pos - (g + 1);
        return 0;
}
