/* route.c: the control plane's front door: path → route table → handler.
 *
 * Order of checks for every request (Azure's, as clients observe it): the route's path
 * (segments compared ASCII case-insensitively, as ARM does); then, except for the public
 * metadata document, the api-version query parameter (400 MissingApiVersionParameter) and the
 * bearer token (401); then method (405) and the subscription / resource group / scope the path
 * names (404); then the handler, which authorizes by RBAC before it reads or writes anything.
 * A request ends with its audit lines (auth.c).
 *
 * Patterns: "{}" captures one segment; a leading "**" captures any number of leading segments
 * as the scope of the Microsoft.Authorization routes ("" = "/"). */
#include <string.h>
#include <strings.h>

#include "arm/arm.h"
#include "arm/arm_internal.h"
#include "common/limits.h"

enum {
    R_PUBLIC = 1, /* no api-version, no token: GET /metadata/endpoints */
    R_SUB = 2,    /* cap[0] is a subscription id */
    R_RG = 4,     /* cap[1] is a resource group */
    R_SCOPE = 8,  /* ar->scope must be "/" or within our subscription */
};

struct arm_route {
    enum http_method method;
    const char *pattern;
    int flags;
    const char *type; /* resource type of cap[2], for the 404 of a too-long name */
    arm_fn fn;
};

#define RG_P "subscriptions/{}/resourcegroups/{}/providers/"
#define SUB_P "subscriptions/{}/providers/"
#define VM "Microsoft.Compute/virtualMachines"
#define UAI "Microsoft.ManagedIdentity/userAssignedIdentities"
#define KV "Microsoft.KeyVault/vaults"
#define RA "**/providers/Microsoft.Authorization/roleAssignments"
#define RD "**/providers/Microsoft.Authorization/roleDefinitions"
#define SR (R_SUB | R_RG)
#define SP "providers/Microsoft.Mivault/servicePrincipals"

static const struct arm_route ROUTES[] = {
    {HTTP_GET, "metadata/endpoints", R_PUBLIC, NULL, arm_metadata_endpoints},
    {HTTP_GET, "subscriptions", 0, NULL, arm_sub_list},
    {HTTP_GET, "subscriptions/{}", R_SUB, NULL, arm_sub_get},
    {HTTP_GET, "subscriptions/{}/resourcegroups", R_SUB, NULL, arm_rg_list},
    {HTTP_GET, "subscriptions/{}/resourcegroups/{}", SR, NULL, arm_rg_get},
    {HTTP_HEAD, "subscriptions/{}/resourcegroups/{}", SR, NULL, arm_rg_get},

    {HTTP_GET, SUB_P VM, R_SUB, NULL, arm_vm_list},
    {HTTP_GET, RG_P VM, SR, NULL, arm_vm_list},
    {HTTP_PUT, RG_P VM "/{}", SR, VM, arm_vm_put},
    {HTTP_GET, RG_P VM "/{}", SR, VM, arm_vm_get},
    {HTTP_DELETE, RG_P VM "/{}", SR, VM, arm_vm_delete},
    {HTTP_POST, RG_P VM "/{}/generateJoinToken", SR, VM, arm_vm_join_token},
    {HTTP_GET, RG_P VM "/{}/identityBindings", SR, VM, arm_vm_bindings},
    {HTTP_POST, RG_P VM "/{}/bindIdentity", SR, VM, arm_vm_bind},
    {HTTP_POST, RG_P VM "/{}/unbindIdentity", SR, VM, arm_vm_unbind},

    {HTTP_GET, SUB_P UAI, R_SUB, NULL, arm_uai_list},
    {HTTP_GET, RG_P UAI, SR, NULL, arm_uai_list},
    {HTTP_PUT, RG_P UAI "/{}", SR, UAI, arm_uai_put},
    {HTTP_GET, RG_P UAI "/{}", SR, UAI, arm_uai_get},
    {HTTP_DELETE, RG_P UAI "/{}", SR, UAI, arm_uai_delete},
    {HTTP_GET, RG_P UAI "/{}/federatedIdentityCredentials", SR, UAI, arm_fic_list},
    {HTTP_PUT, RG_P UAI "/{}/federatedIdentityCredentials/{}", SR, UAI, arm_fic_put},
    {HTTP_GET, RG_P UAI "/{}/federatedIdentityCredentials/{}", SR, UAI, arm_fic_get},
    {HTTP_DELETE, RG_P UAI "/{}/federatedIdentityCredentials/{}", SR, UAI, arm_fic_delete},

    {HTTP_GET, SUB_P KV, R_SUB, NULL, arm_vault_list},
    {HTTP_GET, RG_P KV, SR, NULL, arm_vault_list},
    {HTTP_PUT, RG_P KV "/{}", SR, KV, arm_vault_put},
    {HTTP_GET, RG_P KV "/{}", SR, KV, arm_vault_get},
    {HTTP_DELETE, RG_P KV "/{}", SR, KV, arm_vault_delete},

    {HTTP_GET, RA, R_SCOPE, NULL, arm_ra_list},
    {HTTP_PUT, RA "/{}", R_SCOPE, NULL, arm_ra_put},
    {HTTP_GET, RA "/{}", R_SCOPE, NULL, arm_ra_get},
    {HTTP_DELETE, RA "/{}", R_SCOPE, NULL, arm_ra_delete},
    {HTTP_GET, RD, R_SCOPE, NULL, arm_rd_list},
    {HTTP_GET, RD "/{}", R_SCOPE, NULL, arm_rd_get},

    {HTTP_POST, SP, 0, NULL, arm_sp_create},
    {HTTP_GET, SP, 0, NULL, arm_sp_list},
    {HTTP_GET, SP "/{}", 0, NULL, arm_sp_get},
    {HTTP_DELETE, SP "/{}", 0, NULL, arm_sp_delete},
    {HTTP_POST, SP "/{}/addCredential", 0, NULL, arm_sp_add_credential},
};

/* The request path split into segments (NUL-terminated, in buf) with their offsets in the
 * original path, so the "**" scope keeps the caller's spelling. */
struct arm_path {
    char buf[MV_MAX_URI_BYTES + 1];
    const char *seg[ARM_MAX_SEGS];
    size_t off[ARM_MAX_SEGS];
    size_t n;
};

/* 0 if the path cannot be any route's (too long, too deep, empty segment). One trailing '/' is
 * ignored, as ARM does. */
static int split(const char *path, struct arm_path *p)
{
    size_t len = strlen(path);
    if (len == 0 || path[0] != '/' || len > MV_MAX_URI_BYTES)
        return 0;
    if (len > 1 && path[len - 1] == '/')
        len--;
    memcpy(p->buf, path, len);
    p->buf[len] = '\0';
    p->n = 0;
    size_t i = 1;
    while (i < len) {
        if (p->n == ARM_MAX_SEGS)
            return 0;
        size_t start = i;
        while (i < len && p->buf[i] != '/')
            i++;
        if (i == start)
            return 0; /* "//" */
        p->buf[i] = '\0';
        p->seg[p->n] = p->buf + start;
        p->off[p->n++] = start;
        i++;
    }
    return 1;
}

struct match {
    const char *cap[ARM_MAX_CAPS];
    size_t ncap;
    size_t scope_end; /* "**": the scope is path[0, scope_end) */
};

static int match(const char *pattern, const struct arm_path *p, struct match *m)
{
    memset(m, 0, sizeof *m);
    size_t first = 0;
    const char *pat = pattern;
    if (strncmp(pat, "**/", 3) == 0) {
        pat += 3;
        size_t k = 1;
        for (const char *c = pat; *c; c++)
            k += *c == '/';
        if (p->n < k)
            return 0;
        first = p->n - k;
        m->scope_end = first ? p->off[first] - 1 : 0;
    }
    size_t i = first;
    while (*pat) {
        const char *end = strchr(pat, '/');
        size_t len = end ? (size_t)(end - pat) : strlen(pat);
        if (i >= p->n)
            return 0;
        if (len == 2 && pat[0] == '{' && pat[1] == '}') {
            if (m->ncap == ARM_MAX_CAPS)
                return 0;
            m->cap[m->ncap++] = p->seg[i];
        } else if (strlen(p->seg[i]) != len || strncasecmp(p->seg[i], pat, len) != 0) {
            return 0;
        }
        i++;
        pat += len + (end ? 1 : 0);
    }
    return i == p->n;
}

/* msrestazure builds the metadata URL as ARM endpoint + "/metadata/endpoints?…", so an endpoint
 * registered with its usual trailing slash ("https://management.azure.com/", as az's own clouds
 * spell it) yields "//metadata/endpoints", which ARM serves. Extra leading slashes are ignored. */
static const char *skip_extra_slashes(const char *path)
{
    while (path && path[0] == '/' && path[1] == '/')
        path++;
    return path;
}

int arm_owns_path(const char *path)
{
    static const char *const prefixes[] = {"/subscriptions", "/providers"};
    if (!path)
        return 0;
    path = skip_extra_slashes(path);
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncasecmp(path, prefixes[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return 1;
    }
    return mv_streq_ci(path, "/metadata/endpoints") || mv_streq_ci(path, "/metadata/endpoints/");
}

/* Subscription, resource group and scope named by the path. */
static mv_rc check_path(struct arm_req *ar, const struct arm_route *r)
{
    mv_rc rc = MV_OK;
    if (r->flags & R_SUB)
        CHECK(arm_check_sub(ar, ar->cap[0]));
    if (r->flags & R_RG)
        CHECK(arm_check_rg(ar, ar->cap[1]));
    if (r->flags & R_SCOPE)
        CHECK(arm_check_scope(ar));
    /* A name no resource can have: absent (PUT validates and refuses it with the name rule). */
    if (r->type && r->method != HTTP_PUT && ar->ncap > 2 && strlen(ar->cap[2]) > MV_MAX_NAME) {
        if (r->method == HTTP_DELETE) {
            arm_reply_empty(ar, 204);
            rc = MV_ERR_NOT_FOUND;
        } else {
            rc = arm_not_found(ar, r->type, ar->cap[2]);
        }
    }
out:
    return rc;
}

static void dispatch(struct arm_req *ar, const struct arm_path *path)
{
    const struct arm_route *r = NULL;
    struct match m;
    int path_known = 0;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0] && !r; i++) {
        if (!match(ROUTES[i].pattern, path, &m))
            continue;
        path_known = 1;
        if (ROUTES[i].method == ar->req->method)
            r = &ROUTES[i];
    }
    ar->req->m_route = r ? r->pattern : "unmatched"; /* the metrics' label (http/server.h) */
    if (!r || !(r->flags & R_PUBLIC)) {
        if (!ar->req->query_ok) {
            (void)arm_fail(ar, 400, "InvalidQueryParameterValue", "The query string is not valid.");
            return;
        }
        const char *v = kv_get_ci(&ar->req->query, "api-version");
        if (!v || !*v) {
            (void)arm_fail(ar, 400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.");
            return;
        }
        if (!arm_authenticate(ar))
            return;
    }
    if (!r) {
        if (path_known)
            (void)arm_fail(ar, 405, "MethodNotAllowed", "The requested method is not allowed for this resource.");
        else
            (void)arm_fail(ar, 404, "NotFound", "The requested resource path is not supported.");
        return;
    }
    memcpy(ar->cap, m.cap, sizeof ar->cap);
    ar->ncap = m.ncap;
    if (r->flags & R_SCOPE) {
        const char *orig = skip_extra_slashes(ar->req->path);
        if (m.scope_end == 0) {
            ar->scope[0] = '/';
            ar->scope[1] = '\0';
        } else if (m.scope_end < sizeof ar->scope) {
            memcpy(ar->scope, orig, m.scope_end);
            ar->scope[m.scope_end] = '\0';
        } else {
            (void)arm_fail(ar, 400, "InvalidScope", "The scope is too long.");
            return;
        }
    }
    if (check_path(ar, r) != MV_OK)
        return;
    r->fn(ar);
}

void arm_handle(struct arm_loop *w, http_req *req)
{
    /* ~10 KiB on the loop thread's stack; nothing of a request outlives it. */
    struct arm_req ar;
    struct arm_path path;
    memset(&ar, 0, sizeof ar);
    ar.req = req;
    ar.w = w;
    ar.srv = ar.w->srv;
    ar.st = ar.w->st;
    if (!req->path || !split(skip_extra_slashes(req->path), &path))
        (void)arm_fail(&ar, 404, "NotFound", "The requested resource path is not supported.");
    else
        dispatch(&ar, &path);
    if (!req->replied)
        arm_fail_rc(&ar, MV_ERR_INTERNAL);
    arm_audit_flush(&ar);
}
