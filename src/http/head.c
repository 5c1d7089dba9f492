/* head.c: the strict request-head parser (see head.h).
 *
 * Rules (each one closes a way to frame a request differently from a lenient parser):
 * - request line: method SP request-target SP ("HTTP/1.1" | "HTTP/1.0"), single spaces, the
 *   method a token, the target visible ASCII (RFC 9112 §3);
 * - a field line: a token, then ':' at once (RFC 9112 §5.1: no whitespace before the colon),
 *   then a value of visible ASCII, obs-text, SP and HTAB only: no NUL, no bare CR, no other
 *   control byte (RFC 9110 §5.5); no obs-fold continuation line (RFC 9112 §5.2);
 * - Content-Length: 1*DIGIT, once (RFC 9110 §8.6); Transfer-Encoding: exactly "chunked", once,
 *   never with Content-Length and never in HTTP/1.0 (RFC 9112 §6.1, §6.3);
 * - Host: at most once, and required in HTTP/1.1 (RFC 9112 §3.2);
 * - the header the gate reserves for itself (HTTP_REFUSED_HEADER) never comes from a client. */
#include "http/head.h"

#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c)
{
    /* RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
     * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_value_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static enum http_method method_of(const char *m, size_t len)
{
    static const struct {
        const char *name;
        enum http_method m;
    } tab[] = {{"GET", HTTP_GET},     {"POST", HTTP_POST},     {"PUT", HTTP_PUT},
               {"PATCH", HTTP_PATCH}, {"DELETE", HTTP_DELETE}, {"HEAD", HTTP_HEAD}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == len && memcmp(tab[i].name, m, len) == 0)
            return tab[i].m;
    return HTTP_OTHER;
}

static int parse_request_line(const char *p, size_t n, struct http_head_info *h)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return 400;
    h->method = method_of(p, i);
    size_t t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == t || i >= n || p[i] != ' ')
        return 400;
    size_t keep = i - t < HTTP_HEAD_TARGET_KEEP ? i - t : HTTP_HEAD_TARGET_KEEP;
    memcpy(h->target, p + t, keep);
    h->target[keep] = '\0';
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || (p[i + 7] != '1' && p[i + 7] != '0'))
        return 400;
    h->http11 = p[i + 7] == '1';
    return 0;
}

/* Host for routing: lower-cased, without its port ("[::1]:8443" -> "[::1]"). Its full syntax is
 * checked later on the parsed request (request.c). */
static int keep_host(const char *v, size_t len, struct http_head_info *h)
{
    if (h->has_host)
        return 400; /* RFC 9112 §3.2: more than one Host */
    h->has_host = 1;
    size_t end = len;
    if (len && v[0] == '[') {
        const char *rb = memchr(v, ']', len);
        end = rb ? (size_t)(rb - v) + 1 : len;
    } else {
        const char *colon = memchr(v, ':', len);
        if (colon)
            end = (size_t)(colon - v);
    }
    if (end >= sizeof h->host)
        return 400;
    for (size_t i = 0; i < end; i++) {
        char c = v[i];
        h->host[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    h->host[end] = '\0';
    return 0;
}

static int parse_field(const char *p, size_t n, struct http_head_info *h)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ':')
        return 400; /* empty name, obs-fold, or a space or other byte before the colon */
    const char *name = p;
    size_t nlen = i++;
    for (size_t k = i; k < n; k++)
        if (!is_value_byte((unsigned char)p[k]))
            return 400; /* NUL, bare CR, other control bytes */
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t e = n;
    while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
        e--;
    const char *v = p + i;
    size_t vlen = e - i;
    if (name_is(name, nlen, "Content-Length")) {
        if (h->content_length >= 0 || vlen == 0 || vlen > 15)
            return 400;
        int64_t cl = 0;
        for (size_t k = 0; k < vlen; k++) {
            if (v[k] < '0' || v[k] > '9')
                return 400; /* "+2", "-1", "2, 2", "0x10" */
            cl = cl * 10 + (v[k] - '0');
        }
        h->content_length = cl;
    } else if (name_is(name, nlen, "Transfer-Encoding")) {
        if (h->chunked || !name_is(v, vlen, "chunked"))
            return 400;
        h->chunked = 1;
    } else if (name_is(name, nlen, "Host")) {
        return keep_host(v, vlen, h);
    } else if (name_is(name, nlen, "Authorization")) {
        h->authorization = 1;
    } else if (name_is(name, nlen, HTTP_REFUSED_HEADER)) {
        return 400;
    }
    return 0;
}

size_t http_head_end(const char *p, size_t n, size_t *scan)
{
    /* The head ends at its first empty line: "\n\n" or "\n\r\n" (a lone CR elsewhere is
     * refused by http_head_parse). */
    for (size_t i = *scan; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
        if (i + 2 >= n) {
            *scan = i; /* not decidable yet: look at this LF again */
            return 0;
        }
    }
    *scan = n;
    return 0;
}

int http_head_parse(const char *p, size_t n, struct http_head_info *h)
{
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    h->method = HTTP_OTHER;
    int first = 1, done = 0;
    size_t i = 0;
    while (i < n && !done) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (!nl)
            return 400;
        size_t end = (size_t)(nl - p);
        size_t len = end - i;
        if (len && p[end - 1] == '\r')
            len--;
        int st = 0;
        if (first)
            st = parse_request_line(p + i, len, h);
        else if (len == 0)
            done = 1;
        else
            st = parse_field(p + i, len, h);
        if (st)
            return st;
        first = 0;
        i = end + 1;
    }
    if (!done || i != n)
        return 400;
    if (h->chunked && (h->content_length >= 0 || !h->http11))
        return 400;
    if (h->http11 && !h->has_host)
        return 400;
    return 0;
}
