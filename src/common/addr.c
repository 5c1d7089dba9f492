/* addr.c: listen addresses and public URLs (see addr.h). */
#include "common/addr.h"

#include <arpa/inet.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"

#define ADDR_DNS_MAX 253
#define ADDR_LABEL_MAX 63

int mv_dns_name_ok(const char *s, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > ADDR_DNS_MAX)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? s[i] : '.';
        if (c == '.') {
            if (label == 0 || label > ADDR_LABEL_MAX || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c == '-' && label > 0);
        if (!ok)
            return 0;
        label++;
    }
    return 1;
}

static int parse_port(const char *s, size_t n, int lo, int *out, const char **why)
{
    char buf[8];
    int64_t v = 0;
    *why = "bad port";
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (mv_parse_i64(buf, &v) != MV_OK || v < lo || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

/* host[:port] or [v6][:port] in s[0..n); *is_ip for literals; port stays as given if absent.
 * 0, or -1 with *why saying what is wrong. */
static int split_host_port(const char *s, size_t n, char *host, size_t hlen, int *port, int port_lo,
                           int need_port, int *is_ip, const char **why)
{
    const char *colon = NULL;
    size_t hl;
    unsigned char tmp[sizeof(struct in6_addr)];
    *is_ip = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        *why = "bad [IPv6] address";
        if (!close)
            return -1;
        hl = (size_t)(close - s - 1);
        if ((size_t)(close + 1 - s) < n) {
            if (close[1] != ':')
                return -1;
            colon = close + 1;
        }
        if (hl == 0 || hl >= hlen)
            return -1;
        memcpy(host, s + 1, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET6, host, tmp) != 1)
            return -1;
        *is_ip = 1;
    } else {
        colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
        *why = "no host";
        if (hl == 0 || hl >= hlen)
            return -1;
        *why = "an IPv6 address needs brackets, as in [::1]:8443";
        if (colon && memchr(colon + 1, ':', n - hl - 1))
            return -1;
        memcpy(host, s, hl);
        host[hl] = '\0';
        *why = "the host is neither an IP address nor a DNS name";
        if (inet_pton(AF_INET, host, tmp) == 1)
            *is_ip = 1;
        else if (!mv_dns_name_ok(host, hl))
            return -1;
    }
    if (colon)
        return parse_port(colon + 1, (size_t)(s + n - colon - 1), port_lo, port, why);
    *why = "no port";
    return need_port ? -1 : 0;
}

mv_rc mv_parse_listen(const char *s, struct mv_listen *out)
{
    mv_rc rc = MV_OK;
    int is_ip = 0;
    memset(out, 0, sizeof *out);
    ENSURE_MSG(s && *s, MV_ERR_BAD_REQUEST, "empty listen address");
    const char *why = "";
    ENSURE_MSG(split_host_port(s, strlen(s), out->host, sizeof out->host, &out->port, 0, 1, &is_ip,
                               &why) == 0,
               MV_ERR_BAD_REQUEST, "a listen address is ADDR:PORT or [V6]:PORT (%s): '%.64s'", why, s);
out:
    return rc;
}

mv_rc mv_https_origin(const char *host, int port, char *out, size_t len)
{
    int v6 = strchr(host, ':') != NULL;
    if (port == 443)
        return mv_fmt(out, len, "https://%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
    return mv_fmt(out, len, "https://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

mv_rc mv_parse_public_url(const char *s, struct mv_public_url *out)
{
    mv_rc rc = MV_OK;
    static const char scheme[] = "https://";
    memset(out, 0, sizeof *out);
    out->port = 443;
    ENSURE_MSG(s && strncmp(s, scheme, sizeof scheme - 1) == 0, MV_ERR_BAD_REQUEST,
               "the public URL must start with https:// (got '%.64s')", s ? s : "");
    const char *a = s + sizeof scheme - 1;
    size_t n = strcspn(a, "/?#@");
    ENSURE_MSG(a[n] != '@', MV_ERR_BAD_REQUEST, "the public URL must not carry user info");
    ENSURE_MSG(a[n] == '\0' || (a[n] == '/' && a[n + 1] == '\0'), MV_ERR_BAD_REQUEST,
               "the public URL must be https://HOST[:PORT] without a path, query or fragment "
               "(got '%.64s')", s);
    const char *why = "";
    ENSURE_MSG(split_host_port(a, n, out->host, sizeof out->host, &out->port, 1, 0, &out->is_ip,
                               &why) == 0,
               MV_ERR_BAD_REQUEST, "the public URL must be https://HOST[:PORT] (%s): '%.64s'", why, s);
    mv_lower(out->host);
    CHECK(mv_https_origin(out->host, out->port, out->url, sizeof out->url));
out:
    return rc;
}
