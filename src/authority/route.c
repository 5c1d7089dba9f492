/* route.c: the authority's routes, as one table of method + path pattern → handler.
 *
 * A pattern is a '/'-separated list of literal segments and at most one "{t}" (the tenant),
 * matched segment by segment against the percent-decoded path, exactly (no trailing slash, no
 * empty segment). The tenant rule of the route is enforced here, so handlers only see tenants
 * they serve: discovery and keys answer for our tenant id, "common" and "organizations" (as
 * Entra does); the token endpoint only for our tenant id. Tenant ids compare ASCII
 * case-insensitively (GUIDs). A path no route matches is 404; a path that matches with
 * another method is 405. Every refusal is an OAuth-shaped JSON body (reference §9 item 4). */
#include <string.h>

#include "authority/internal.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "http/reply.h"

enum tenant_rule {
    TENANT_NONE,  /* no {t} in the pattern */
    TENANT_KNOWN, /* ours, "common" or "organizations" */
    TENANT_OURS,  /* ours only */
};

struct route {
    enum http_method method;
    const char *pattern;
    enum tenant_rule tenant;
    int v2;
    authority_route_fn fn;
};

static const struct route ROUTES[] = {
    {HTTP_GET, "/{t}/.well-known/openid-configuration", TENANT_KNOWN, 0, authority_discovery},
    {HTTP_GET, "/{t}/v2.0/.well-known/openid-configuration", TENANT_KNOWN, 1, authority_discovery},
    {HTTP_GET, "/{t}/discovery/v2.0/keys", TENANT_KNOWN, 1, authority_jwks},
    {HTTP_GET, "/{t}/discovery/keys", TENANT_KNOWN, 0, authority_jwks},
    {HTTP_POST, "/{t}/oauth2/v2.0/token", TENANT_OURS, 1, authority_token},
    {HTTP_POST, "/{t}/oauth2/token", TENANT_OURS, 0, authority_token},
    {HTTP_POST, "/mivault/enroll", TENANT_NONE, 0, authority_enroll},
    {HTTP_GET, "/mivault/ca.pem", TENANT_NONE, 0, authority_ca_pem},
};

#define TENANT_SEG_MAX 64 /* longer than any tenant we serve: such a path cannot match */

/* Matches path against pattern; the {t} segment goes to tenant (NUL-terminated). */
static int match(const char *pattern, const char *path, char tenant[TENANT_SEG_MAX + 1])
{
    tenant[0] = '\0';
    while (*pattern == '/' && *path == '/') {
        pattern++, path++;
        size_t plen = strcspn(pattern, "/");
        size_t slen = strcspn(path, "/");
        if (slen == 0)
            return 0;
        if (plen == 3 && memcmp(pattern, "{t}", 3) == 0) {
            if (slen > TENANT_SEG_MAX)
                return 0;
            memcpy(tenant, path, slen);
            tenant[slen] = '\0';
        } else if (plen != slen || memcmp(pattern, path, slen) != 0) {
            return 0;
        }
        pattern += plen, path += slen;
    }
    return *pattern == '\0' && *path == '\0';
}

static int tenant_allowed(const struct authority_plane *srv, enum tenant_rule rule, const char *t)
{
    switch (rule) {
    case TENANT_NONE: return 1;
    case TENANT_KNOWN:
        if (mv_streq_ci(t, "common") || mv_streq_ci(t, "organizations"))
            return 1;
        return mv_streq_ci(t, srv->tenant.tenant_id);
    case TENANT_OURS: return mv_streq_ci(t, srv->tenant.tenant_id);
    }
    return 0;
}

static const char *method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET: return "GET";
    case HTTP_POST: return "POST";
    default: return "";
    }
}

size_t authority_body_cap(const char *target)
{
    size_t n = strcspn(target, "?");
    static const char *const token[] = {"/oauth2/v2.0/token", "/oauth2/token"};
    for (size_t i = 0; i < sizeof token / sizeof token[0]; i++) {
        size_t tn = strlen(token[i]);
        if (n >= tn && strncmp(target + n - tn, token[i], tn) == 0)
            return MV_TOKEN_BODY_BYTES;
    }
    return MV_ENROLL_BODY_BYTES; /* enroll; no other route reads a body */ /* no other route reads a body: room for a 404 or 405 only */
}

void authority_handle(struct authority_loop *w, http_req *req)
{
    char tenant[TENANT_SEG_MAX + 1];
    const struct route *other_method = NULL;
    const char *path = req->path ? req->path : "";
    req->m_route = "unmatched";
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        const struct route *r = &ROUTES[i];
        if (!match(r->pattern, path, tenant))
            continue;
        if (r->method != req->method) {
            other_method = r;
            continue;
        }
        req->m_route = r->pattern; /* the metrics' labels (http/server.h) */
        req->m_token = r->fn == authority_token;
        if (!tenant_allowed(w->srv, r->tenant, tenant)) {
            reply_oauth_error(req, 400, "invalid_request", "Tenant not found");
            return;
        }
        struct authority_route_args a = {tenant, r->v2, w};
        r->fn(req, &a);
        return;
    }
    if (other_method) {
        http_set_header(req, "Allow", method_name(other_method->method));
        reply_oauth_error(req, 405, "invalid_request", "The method is not allowed for this resource.");
        return;
    }
    reply_oauth_error(req, 404, "not_found", "The requested resource was not found.");
}

mv_rc authority_refuse(struct authority_refusal *r, int status, const char *error,
                       const char *description, const char *detail)
{
    mv_rc rc = status == 401 ? MV_ERR_UNAUTHENTICATED : MV_ERR_BAD_REQUEST;
    *r = (struct authority_refusal){.status = status, .error = error, .description = description};
    mv_fail(rc, "refused (%s): %s", error, detail);
    return rc;
}
