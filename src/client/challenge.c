/* challenge.c: the Key Vault 401 challenge (reference §4.4), parsed and checked as the SDKs do.
 *
 * The vault names the token resource in its challenge, so a client that believed any challenge
 * would fetch a token for whatever resource a host claims and send it there. The domain check
 * closes that: a token for resource R only goes to hosts under R's domain. Both functions are
 * pure (no I/O) and bounded by MV_MAX_URL. */
#include <string.h>

#include "client/client_internal.h"
#include "common/util.h"

#define SCOPE_SUFFIX "/.default"

/* Python's str.strip(' "'): drops spaces and double quotes at both ends. */
static mv_slice strip(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '"' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '"' || p[n - 1] == '\t'))
        n--;
    return (mv_slice){p, n};
}

static mv_rc set_once(char *dst, size_t len, int *seen, mv_slice v)
{
    mv_rc rc = MV_OK;
    ENSURE_MSG(!*seen, MV_ERR_UNAUTHENTICATED, "challenge repeats a parameter");
    ENSURE_MSG(v.len < len, MV_ERR_UNAUTHENTICATED, "challenge parameter too long");
    memcpy(dst, v.p, v.len);
    dst[v.len] = '\0';
    *seen = 1;
out:
    return rc;
}

mv_rc client_scope_to_resource(const char *scope, char *out, size_t len)
{
    mv_rc rc = MV_OK;
    size_t n = strlen(scope), sl = sizeof SCOPE_SUFFIX - 1;
    /* Reference §1.1: one trailing "/.default" is stripped; "https://x//.default" keeps "https://x/". */
    if (n >= sl && strcmp(scope + n - sl, SCOPE_SUFFIX) == 0)
        n -= sl;
    ENSURE_MSG(n > 0 && n < len, MV_ERR_BAD_REQUEST, "resource empty or too long");
    memcpy(out, scope, n);
    out[n] = '\0';
out:
    return rc;
}

mv_rc client_challenge_parse(const char *header, struct client_challenge *out)
{
    mv_rc rc = MV_OK;
    char scope[MV_MAX_URL] = "", resource[MV_MAX_URL] = "";
    int seen_auth = 0, seen_scope = 0, seen_res = 0;
    memset(out, 0, sizeof *out);
    ENSURE_MSG(header != NULL, MV_ERR_UNAUTHENTICATED, "no WWW-Authenticate header");
    mv_slice h = strip(header, strlen(header));
    ENSURE_MSG(h.len > 0 && h.len < 4 * MV_MAX_URL, MV_ERR_UNAUTHENTICATED, "challenge empty or too long");

    /* The scheme is everything before the first space (RFC 7235 §2.1: challenge = auth-scheme
     * [ 1*SP ( token68 / #auth-param ) ]). Only Bearer challenges name a token resource. */
    const char *sp = memchr(h.p, ' ', h.len);
    ENSURE_MSG(sp != NULL, MV_ERR_UNAUTHENTICATED, "challenge has no parameters");
    ENSURE_MSG((size_t)(sp - h.p) == 6 && mv_slice_eq_ci((mv_slice){h.p, 6}, "Bearer"),
               MV_ERR_UNAUTHENTICATED, "challenge scheme is not Bearer");

    const char *p = sp + 1, *end = h.p + h.len;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        mv_slice item = strip(p, (size_t)(item_end - p));
        p = item_end + 1;
        /* KV-PY: "claims" may carry base64 '=' padding; it is not used here. */
        if (item.len >= 7 && memcmp(item.p, "claims=", 7) == 0)
            continue;
        /* KV-PY: an item counts only when it splits on '=' into exactly two parts. */
        const char *eq = memchr(item.p, '=', item.len);
        if (!eq || memchr(eq + 1, '=', (size_t)(item.p + item.len - eq - 1)))
            continue;
        mv_slice key = strip(item.p, (size_t)(eq - item.p));
        mv_slice val = strip(eq + 1, (size_t)(item.p + item.len - eq - 1));
        if (key.len == 0)
            continue;
        /* Values are double-quoted (RFC 7235 quoted-string); a value still holding a quote was
         * single-quoted or malformed, and would not be a URL. */
        ENSURE_MSG(!memchr(val.p, '\'', val.len) && !memchr(val.p, '"', val.len),
                   MV_ERR_UNAUTHENTICATED, "challenge value is not double-quoted");
        if (mv_slice_eq(key, "authorization") || mv_slice_eq(key, "authorization_uri"))
            CHECK(set_once(out->authorization, sizeof out->authorization, &seen_auth, val));
        else if (mv_slice_eq(key, "scope"))
            CHECK(set_once(scope, sizeof scope, &seen_scope, val));
        else if (mv_slice_eq(key, "resource") || mv_slice_eq(key, "resource_id"))
            CHECK(set_once(resource, sizeof resource, &seen_res, val));
    }
    /* KV-PY HttpChallenge: "must specify authorization or authorization_uri". */
    ENSURE_MSG(seen_auth && out->authorization[0], MV_ERR_UNAUTHENTICATED,
               "challenge has no authorization");
    /* KV-PY: scope = challenge scope or resource + "/.default"; our credential wants the
     * resource, so a scope is turned back into one. */
    if (scope[0])
        CHECK(client_scope_to_resource(scope, out->resource, sizeof out->resource));
    else
        CHECK(mv_copy(out->resource, sizeof out->resource, resource));
    ENSURE_MSG(out->resource[0], MV_ERR_UNAUTHENTICATED, "challenge has no resource");

    /* KV-PY: tenant = first segment of the authorization URI's path. */
    const char *a = strstr(out->authorization, "://");
    if (a) {
        const char *path = strchr(a + 3, '/');
        if (path) {
            while (*path == '/')
                path++;
            size_t n = strcspn(path, "/?#");
            if (n < sizeof out->tenant) {
                memcpy(out->tenant, path, n);
                out->tenant[n] = '\0';
            }
        }
    }
out:
    return rc;
}

mv_rc client_url_netloc(const char *url, char *out, size_t len)
{
    mv_rc rc = MV_OK;
    const char *s = strstr(url, "://");
    ENSURE_MSG(s != NULL, MV_ERR_BAD_REQUEST, "URL has no scheme");
    size_t sl = (size_t)(s - url);
    ENSURE_MSG((sl == 5 && mv_slice_eq_ci((mv_slice){url, 5}, "https")) ||
                   (sl == 4 && mv_slice_eq_ci((mv_slice){url, 4}, "http")),
               MV_ERR_BAD_REQUEST, "URL scheme is not http(s)");
    s += 3;
    size_t n = strcspn(s, "/?#");
    ENSURE_MSG(n > 0 && n < len, MV_ERR_BAD_REQUEST, "URL host empty or too long");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
        ENSURE_MSG(ok, MV_ERR_BAD_REQUEST, "URL host has a character not allowed here");
    }
    memcpy(out, s, n);
    out[n] = '\0';
    mv_lower(out);
out:
    return rc;
}

/* The port part of a netloc, or NULL ("[::1]:8443" → ":8443"; "[::1]" → NULL). */
static const char *port_of(const char *netloc)
{
    const char *c = strrchr(netloc, ':');
    const char *b = strrchr(netloc, ']');
    return c && (!b || c > b) ? c : NULL;
}

static int ends_with_subdomain(const char *host, size_t hn, const char *suffix)
{
    size_t sn = strlen(suffix);
    /* "." + suffix, with a non-empty label in front of the dot */
    return hn > sn + 1 && host[hn - sn - 1] == '.' && host[hn - sn - 2] != '.' &&
           memcmp(host + hn - sn, suffix, sn) == 0;
}

mv_rc client_challenge_check(const char *request_url, const char *resource)
{
    mv_rc rc = MV_OK;
    char req[MV_MAX_URL], res[MV_MAX_URL];
    ENSURE_MSG(client_url_netloc(resource, res, sizeof res) == MV_OK, MV_ERR_UNAUTHENTICATED,
               "challenge resource is not an absolute URL");
    CHECK(client_url_netloc(request_url, req, sizeof req));
    /* KV-PY: request_netloc.endswith("." + resource_netloc), netloc including the port; KV-JS
     * compares host names only. A resource that names a port must match host and port (Python);
     * one without a port constrains the host name (JS). */
    size_t hn = strlen(req);
    if (!port_of(res)) {
        const char *port = port_of(req);
        if (port)
            hn = (size_t)(port - req);
    }
    ENSURE_MSG(ends_with_subdomain(req, hn, res), MV_ERR_UNAUTHENTICATED,
               "the vault's challenge names a resource outside the vault's domain");
out:
    return rc;
}
