/* kv.c: application/x-www-form-urlencoded parsing and query-value escaping (see kv.h).
 *
 * Decoding follows the WHATWG URL Standard §5.1 "application/x-www-form-urlencoded parsing"
 * (split on '&', skip empty sequences, split each at the first '=', '+' is a space, then
 * percent-decode), but strictly: a '%' not followed by two hex digits, and any NUL byte (raw or
 * as %00), refuse the whole input instead of being passed through. Every name and value is its
 * own NUL-terminated heap string; a kv_list owns them until kv_free, which wipes them (a form
 * may carry a client assertion). */
#include "http/kv.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/util.h"

/* Wiped: a form may carry a secret (client_assertion, client_secret, a join token). */
static void free_wiped(char *s)
{
    if (s)
        OPENSSL_clear_free(s, strlen(s) + 1);
}

/* Decodes s[0..len) into a new NUL-terminated string. */
static mv_rc decode(const char *s, size_t len, char **out)
{
    mv_rc rc = MV_OK;
    char *d = OPENSSL_malloc(len + 1);
    size_t n = 0;
    ENSURE(d != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            /* RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG */
            ENSURE_MSG(i + 2 < len, MV_ERR_BAD_REQUEST, "truncated percent-escape");
            int hi = mv_hexval(s[i + 1]);
            int lo = mv_hexval(s[i + 2]);
            ENSURE_MSG(hi >= 0 && lo >= 0, MV_ERR_BAD_REQUEST, "bad percent-escape");
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        ENSURE_MSG(c != '\0', MV_ERR_BAD_REQUEST, "NUL byte in form data");
        d[n++] = c;
    }
    d[n] = '\0';
    *out = d;
    d = NULL;
out:
    OPENSSL_clear_free(d, len + 1);
    return rc;
}

mv_rc kv_parse(const char *s, size_t len, kv_list *out)
{
    mv_rc rc = MV_OK;
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end > i) { /* "a=1&&b=2": empty sequences are skipped */
            const char *eq = memchr(s + i, '=', end - i);
            size_t name_end = eq ? (size_t)(eq - s) : end;
            size_t val_start = eq ? name_end + 1 : end;
            ENSURE_MSG(out->n < MV_KV_MAX, MV_ERR_LIMIT, "more than %d form pairs", MV_KV_MAX);
            CHECK(decode(s + i, name_end - i, &out->name[out->n]));
            /* A name without '=' has the empty value. */
            rc = decode(s + val_start, end - val_start, &out->value[out->n]);
            if (rc != MV_OK) {
                free_wiped(out->name[out->n]);
                out->name[out->n] = NULL;
                goto out;
            }
            for (size_t k = 0; k < out->n; k++)
                if (strcmp(out->name[k], out->name[out->n]) == 0)
                    out->has_dup = 1;
            out->n++;
        }
        i = end + 1;
    }
out:
    if (rc != MV_OK)
        kv_free(out);
    return rc;
}

const char *kv_get(const kv_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0)
            return l->value[i];
    return NULL;
}

const char *kv_get_ci(const kv_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->name[i], name) == 0)
            return l->value[i];
    return NULL;
}

void kv_free(kv_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free_wiped(l->name[i]);
        free_wiped(l->value[i]);
    }
    memset(l, 0, sizeof *l);
}

mv_rc kv_escape(const char *s, struct mv_buf *out)
{
    static const char hx[] = "0123456789ABCDEF";
    mv_rc rc = MV_OK;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        /* RFC 3986 §2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" */
        int unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            CHECK(mv_buf_add(out, p, 1));
        } else {
            /* RFC 3986 §2.1: "producers ... should use uppercase hexadecimal digits" */
            char e[3] = {'%', hx[c >> 4], hx[c & 15]};
            CHECK(mv_buf_add(out, e, sizeof e));
        }
    }
out:
    return rc;
}
