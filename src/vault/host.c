/* host.c: which requests belong to the vault data plane, and the vault URL a client used.
 *
 * A vault is addressed as {vault}.{vault_suffix}[:port] (DESIGN §3): exactly one DNS label
 * before the suffix, compared ASCII case-insensitively. "vault.localhost" (no label),
 * "a.b.vault.localhost" (two labels), "evil-vault.localhost" (no dot boundary) and
 * "dev.vault.localhost.evil" (suffix not at the end) are not vaults. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "vault/vault_internal.h"

static int label_char(unsigned char ch) { return isascii(ch) && (isalnum(ch) || ch == '-'); }

int vault_host_match(const struct vault_plane *srv, const char *host, char *name, size_t len)
{
    if (!srv || !srv->vault_suffix || !host || !name || len == 0)
        return 0;
    const char *suffix = srv->vault_suffix;
    size_t slen = strlen(suffix);
    size_t hlen = strlen(host);
    /* Tolerate a Host still carrying ":port" (http_req strips it, other callers may not). */
    const char *colon = memchr(host, ':', hlen);
    if (colon) {
        for (const char *p = colon + 1; *p; p++)
            if (!isdigit((unsigned char)*p))
                return 0;
        hlen = (size_t)(colon - host);
    }
    if (slen == 0 || hlen < slen + 2)
        return 0;
    const char *tail = host + hlen - slen;
    if (tail[-1] != '.' || strncasecmp(tail, suffix, slen) != 0)
        return 0;
    size_t llen = (size_t)(tail - 1 - host);
    if (llen == 0 || llen > MV_VAULT_NAME_MAX || llen >= len)
        return 0;
    for (size_t i = 0; i < llen; i++) {
        if (!label_char((unsigned char)host[i]))
            return 0; /* also refuses a second label ('.') */
        name[i] = (char)tolower((unsigned char)host[i]);
    }
    name[llen] = '\0';
    return 1;
}

/* "https://" + host[:port] as the client sent it (lower-cased by the HTTP layer). Ids and
 * nextLinks carry it so that Python's challenge cache, keyed by netloc, keeps matching
 * (reference §4.2 "Keep the nextLink host:port identical to the vault URL"). */
mv_rc vault_request_url(const http_req *req, char *out, size_t len)
{
    char port[24];
    if (req->host_port > 0)
        return vault_cat(out, len, "https://", req->host, ":",
                         vault_utoa((unsigned long)req->host_port, port), (char *)NULL);
    return vault_cat(out, len, "https://", req->host, (char *)NULL);
}
