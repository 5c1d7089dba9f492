/* route.c: vault_handle, the one entry of the data plane, and its route table.
 *
 * The order of checks is part of the wire contract (reference §9 items 8–10, §4.3):
 *   1. service headers on every reply;
 *   2./3. authentication (auth.c) before anything else, so the SDKs' body-less first request
 *      always gets its 401 challenge;
 *   4. the vault must exist (only now: unauthenticated callers learn nothing);
 *   5. api-version in the allowlist;
 *   6. route (404 unknown path, 405 known path with another method), parameter checks;
 *   7. RBAC on the route's data action;
 *   8. throttle (reference §4.5; per vault across the servers of one database, throttle.c),
 *      after RBAC so that only authorized requests spend the vault's budget;
 *   9. the handler; and one audit line for every request, whatever its outcome.
 * Paths arrive percent-decoded; segments of patterns compare ASCII case-insensitively. */
#include <ctype.h>
#include <event2/http.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "common/log.h"
#include "common/util.h"
#include "store/snapshot.h"
#include "vault/vault_internal.h"

#define A(x) VAULT_ACTION_PREFIX x
#define KV(x) "Microsoft.KeyVault/vaults/" x
#define CERT_READ KV("certificates/read")
#define CERT_UPDATE KV("certificates/update/action")
#define CERT_CREATE KV("certificates/create/action")
#define CERT_BODY MV_VAULT_BODY_BYTES
#define READ_META A("readMetadata/action")
#define RESTORE_BODY (VAULT_BACKUP_MAX_B64 + 4096)
#define MAX_SEGS 6
#define K(x) "Microsoft.KeyVault/vaults/keys/" x
#define KEY_BODY (64 * 1024)

/* First match wins: literals before captures ("secrets/restore", ".../versions"). */
static const struct vault_route ROUTES[] = {
    {HTTP_GET, "secrets", READ_META, 0, 0, vault_op_list},
    {HTTP_GET, "secrets/", READ_META, 0, 0, vault_op_list},
    {HTTP_POST, "secrets/restore", A("restore/action"), 1, RESTORE_BODY, vault_op_restore},
    {HTTP_PUT, "secrets/{n}", A("setSecret/action"), 1, MV_VAULT_BODY_BYTES, vault_op_set},
    {HTTP_GET, "secrets/{n}", A("getSecret/action"), 0, 0, vault_op_get},
    {HTTP_PATCH, "secrets/{n}", A("update/action"), 0, MV_VAULT_BODY_BYTES, vault_op_update},
    {HTTP_DELETE, "secrets/{n}", A("delete"), 0, 0, vault_op_delete},
    {HTTP_GET, "secrets/{n}/versions", READ_META, 0, 0, vault_op_versions},
    {HTTP_POST, "secrets/{n}/backup", A("backup/action"), 0, 0, vault_op_backup},
    {HTTP_GET, "secrets/{n}/{v}", A("getSecret/action"), 0, 0, vault_op_get},
    {HTTP_PATCH, "secrets/{n}/{v}", A("update/action"), 0, MV_VAULT_BODY_BYTES, vault_op_update},
    {HTTP_GET, "deletedsecrets", READ_META, 0, 0, vault_op_list_deleted},
    {HTTP_GET, "deletedsecrets/", READ_META, 0, 0, vault_op_list_deleted},
    {HTTP_GET, "deletedsecrets/{n}", READ_META, 0, 0, vault_op_get_deleted},
    {HTTP_DELETE, "deletedsecrets/{n}", A("purge/action"), 0, 0, vault_op_purge},
    {HTTP_POST, "deletedsecrets/{n}/recover", A("recover/action"), 0, 0, vault_op_recover},
    /* keys (docs/keys.md); "{v}" may be empty: /keys/k/ and /keys/k//sign are the latest */
    {HTTP_GET, "keys", K("read"), 0, 0, vault_op_key_list},
    {HTTP_GET, "keys/", K("read"), 0, 0, vault_op_key_list},
    {HTTP_POST, "keys/restore", K("restore/action"), 1, RESTORE_BODY, vault_op_key_restore},
    {HTTP_POST, "keys/{n}/create", K("create/action"), 1, KEY_BODY, vault_op_key_create},
    {HTTP_POST, "keys/{n}/backup", K("backup/action"), 0, 0, vault_op_key_backup},
    {HTTP_POST, "keys/{n}/rotate", K("rotate/action"), 1, 0, vault_op_key_rotate},
    {HTTP_GET, "keys/{n}/rotationpolicy", "Microsoft.KeyVault/vaults/keyrotationpolicies/read", 0, 0,
     vault_op_key_policy_get},
    {HTTP_PUT, "keys/{n}/rotationpolicy", "Microsoft.KeyVault/vaults/keyrotationpolicies/write", 0,
     KEY_BODY, vault_op_key_policy_put},
    {HTTP_PUT, "keys/{n}", K("import/action"), 1, KEY_BODY, vault_op_key_import},
    {HTTP_GET, "keys/{n}", K("read"), 0, 0, vault_op_key_get},
    {HTTP_PATCH, "keys/{n}", K("update/action"), 0, KEY_BODY, vault_op_key_update},
    {HTTP_DELETE, "keys/{n}", K("delete"), 0, 0, vault_op_key_delete},
    {HTTP_GET, "keys/{n}/versions", K("read"), 0, 0, vault_op_key_versions},
    {HTTP_GET, "keys/{n}/{v}", K("read"), 0, 0, vault_op_key_get},
    {HTTP_PATCH, "keys/{n}/{v}", K("update/action"), 0, KEY_BODY, vault_op_key_update},
    {HTTP_POST, "keys/{n}/{v}/sign", K("sign/action"), 0, KEY_BODY, vault_op_key_sign},
    {HTTP_POST, "keys/{n}/{v}/verify", K("verify/action"), 0, KEY_BODY, vault_op_key_verify},
    {HTTP_POST, "keys/{n}/{v}/encrypt", K("encrypt/action"), 0, KEY_BODY, vault_op_key_encrypt},
    {HTTP_POST, "keys/{n}/{v}/decrypt", K("decrypt/action"), 0, KEY_BODY, vault_op_key_decrypt},
    {HTTP_POST, "keys/{n}/{v}/wrapkey", K("wrap/action"), 0, KEY_BODY, vault_op_key_wrap},
    {HTTP_POST, "keys/{n}/{v}/unwrapkey", K("unwrap/action"), 0, KEY_BODY, vault_op_key_unwrap},
    {HTTP_GET, "deletedkeys", K("read"), 0, 0, vault_op_key_list_deleted},
    {HTTP_GET, "deletedkeys/", K("read"), 0, 0, vault_op_key_list_deleted},
    {HTTP_GET, "deletedkeys/{n}", K("read"), 0, 0, vault_op_key_get_deleted},
    {HTTP_DELETE, "deletedkeys/{n}", K("purge/action"), 0, 0, vault_op_key_purge},
    {HTTP_POST, "deletedkeys/{n}/recover", K("recover/action"), 0, 0, vault_op_key_recover},
    /* certificates: literals first (contacts, issuers, restore collide with {n}) */
    {HTTP_GET, "certificates", CERT_READ, 0, 0, vault_op_cert_list},
    {HTTP_GET, "certificates/", CERT_READ, 0, 0, vault_op_cert_list},
    {HTTP_GET, "certificates/contacts", KV("certificatecontacts/write"), 0, 0,
     vault_op_cert_contacts_get},
    {HTTP_PUT, "certificates/contacts", KV("certificatecontacts/write"), 0, CERT_BODY,
     vault_op_cert_contacts_put},
    {HTTP_DELETE, "certificates/contacts", KV("certificatecontacts/write"), 0, 0,
     vault_op_cert_contacts_delete},
    {HTTP_GET, "certificates/issuers", KV("certificatecas/read"), 0, 0, vault_op_cert_issuer_list},
    {HTTP_GET, "certificates/issuers/{n}", KV("certificatecas/read"), 0, 0,
     vault_op_cert_issuer_get},
    {HTTP_PUT, "certificates/issuers/{n}", KV("certificatecas/write"), 0, CERT_BODY,
     vault_op_cert_issuer_put},
    {HTTP_PATCH, "certificates/issuers/{n}", KV("certificatecas/write"), 0, CERT_BODY,
     vault_op_cert_issuer_put},
    {HTTP_DELETE, "certificates/issuers/{n}", KV("certificatecas/delete"), 0, 0,
     vault_op_cert_issuer_delete},
    {HTTP_POST, "certificates/restore", KV("certificates/restore/action"), 1, RESTORE_BODY,
     vault_op_cert_restore},
    {HTTP_POST, "certificates/{n}/backup", KV("certificates/backup/action"), 0, 0,
     vault_op_cert_backup},
    {HTTP_POST, "certificates/{n}/create", CERT_CREATE, 1, CERT_BODY, vault_op_cert_create},
    {HTTP_POST, "certificates/{n}/import", KV("certificates/import/action"), 1, CERT_BODY,
     vault_op_cert_import},
    {HTTP_GET, "certificates/{n}/pending", CERT_READ, 0, 0, vault_op_cert_pending_get},
    {HTTP_PATCH, "certificates/{n}/pending", CERT_UPDATE, 0, CERT_BODY,
     vault_op_cert_pending_cancel},
    {HTTP_DELETE, "certificates/{n}/pending", CERT_UPDATE, 0, 0, vault_op_cert_pending_delete},
    {HTTP_POST, "certificates/{n}/pending/merge", CERT_CREATE, 1, CERT_BODY,
     vault_op_cert_merge},
    {HTTP_GET, "certificates/{n}/policy", CERT_READ, 0, 0, vault_op_cert_policy_get},
    {HTTP_PATCH, "certificates/{n}/policy", CERT_UPDATE, 0, CERT_BODY,
     vault_op_cert_policy_update},
    {HTTP_GET, "certificates/{n}/versions", CERT_READ, 0, 0, vault_op_cert_versions},
    {HTTP_GET, "certificates/{n}", CERT_READ, 0, 0, vault_op_cert_get},
    {HTTP_PATCH, "certificates/{n}", CERT_UPDATE, 0, CERT_BODY, vault_op_cert_update},
    {HTTP_DELETE, "certificates/{n}", KV("certificates/delete"), 0, 0, vault_op_cert_delete},
    {HTTP_GET, "certificates/{n}/{v}", CERT_READ, 0, 0, vault_op_cert_get},
    {HTTP_PATCH, "certificates/{n}/{v}", CERT_UPDATE, 0, CERT_BODY, vault_op_cert_update},
    {HTTP_GET, "deletedcertificates", CERT_READ, 0, 0, vault_op_cert_list_deleted},
    {HTTP_GET, "deletedcertificates/", CERT_READ, 0, 0, vault_op_cert_list_deleted},
    {HTTP_GET, "deletedcertificates/{n}", CERT_READ, 0, 0, vault_op_cert_get_deleted},
    {HTTP_DELETE, "deletedcertificates/{n}", KV("certificates/purge/action"), 0, 0,
     vault_op_cert_purge},
    {HTTP_POST, "deletedcertificates/{n}/recover", KV("certificates/recover/action"), 0, 0,
     vault_op_cert_recover},
};
#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

size_t vault_body_cap(enum http_method m, const char *target)
{
    size_t n = strcspn(target, "?");
    static const char restore[] = "/secrets/restore", krestore[] = "/keys/restore",
                      crestore[] = "/certificates/restore";
    size_t rn = sizeof restore - 1, kn = sizeof krestore - 1, cn = sizeof crestore - 1;
    if (m == HTTP_POST && n >= cn && strncasecmp(target + n - cn, crestore, cn) == 0)
        return RESTORE_BODY;
    if (m == HTTP_POST && n >= rn && strncasecmp(target + n - rn, restore, rn) == 0)
        return RESTORE_BODY;
    if (m == HTTP_POST && n >= kn && strncasecmp(target + n - kn, krestore, kn) == 0)
        return RESTORE_BODY;
    return MV_VAULT_BODY_BYTES;
}

static const char *method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET: return "GET";
    case HTTP_POST: return "POST";
    case HTTP_PUT: return "PUT";
    case HTTP_PATCH: return "PATCH";
    case HTTP_DELETE: return "DELETE";
    case HTTP_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

/* Splits s (without its leading '/') at '/' into at most MAX_SEGS slices; -1 if more. */
static int split(const char *s, mv_slice segs[MAX_SEGS])
{
    int n = 0;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        if (n == MAX_SEGS)
            return -1;
        segs[n++] = (mv_slice){s, len};
        if (!slash)
            return n;
        s = slash + 1;
    }
}

static void capture(mv_slice seg, char *dst, size_t cap, int *bad)
{
    if (seg.len >= cap) {
        *bad = 1;
        dst[0] = '\0';
        return;
    }
    memcpy(dst, seg.p, seg.len);
    dst[seg.len] = '\0';
}

/* Does path match pattern? If c is given, copies the captures into it. */
static int match(const char *pattern, const mv_slice *segs, int nseg, struct vault_ctx *c)
{
    mv_slice pat[MAX_SEGS];
    int np = split(pattern, pat);
    if (np != nseg)
        return 0;
    for (int i = 0; i < np; i++) {
        if (mv_slice_eq(pat[i], "{n}")) {
            if (segs[i].len == 0)
                return 0;
        } else if (!mv_slice_eq(pat[i], "{v}")) {
            if (pat[i].len != segs[i].len || strncasecmp(pat[i].p, segs[i].p, pat[i].len) != 0)
                return 0;
        }
    }
    if (c) {
        for (int i = 0; i < np; i++) {
            if (mv_slice_eq(pat[i], "{n}"))
                capture(segs[i], c->name, sizeof c->name, &c->name_bad);
            else if (mv_slice_eq(pat[i], "{v}"))
                capture(segs[i], c->version, sizeof c->version, &c->version_bad);
        }
    }
    return 1;
}

static void find_route(struct vault_ctx *c)
{
    mv_slice segs[MAX_SEGS];
    const char *path = c->req->path ? c->req->path : "";
    if (path[0] != '/')
        return;
    int n = split(path + 1, segs);
    if (n < 0)
        return;
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (!match(ROUTES[i].pattern, segs, n, NULL))
            continue;
        c->path_known = 1;
        if (ROUTES[i].method == c->req->method) {
            match(ROUTES[i].pattern, segs, n, c);
            c->route = &ROUTES[i];
            c->req->m_route = ROUTES[i].pattern; /* the metrics' label (http/server.h) */
            return;
        }
    }
}

static int route_has_name(const struct vault_route *r) { return strstr(r->pattern, "{n}") != NULL; }

/* Reference §4.1: x-ms-keyvault-* headers on every reply; the client's address kept for the
 * count of refusals per caller. */
static void service_headers(struct vault_ctx *c)
{
    http_req *req = c->req;
    http_set_header(req, "x-ms-keyvault-service-version", VAULT_SERVICE_VERSION);
    http_set_header(req, "x-ms-keyvault-region", VAULT_REGION);
    struct evhttp_connection *conn = req->ev ? evhttp_request_get_connection(req->ev) : NULL;
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (conn)
        evhttp_connection_get_peer(conn, &addr, &port);
    if (addr && *addr) {
        if (mv_copy(c->peer, sizeof c->peer, addr) != MV_OK)
            c->peer[0] = '\0';
        char v[160];
        int v6 = strchr(addr, ':') != NULL;
        if (vault_cat(v, sizeof v, "conn_type=", v6 ? "Ipv6" : "Ipv4", ";addr=", addr,
                      ";act_addr_fam=", v6 ? "InterNetworkV6" : "InterNetwork", ";",
                      (char *)NULL) == MV_OK)
            http_set_header(req, "x-ms-keyvault-network-info", v);
    }
}

static int echo_safe(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++) {
        unsigned char ch = (unsigned char)v[n];
        if (n >= 32 || !isascii(ch) || !(isalnum(ch) || ch == '.' || ch == '-'))
            return 0;
    }
    return n > 0;
}

static int check_api_version(struct vault_ctx *c)
{
    char msg[256];
    const char *v = c->req->query_ok ? kv_get_ci(&c->req->query, "api-version") : NULL;
    if (v && vault_api_version_ok(v)) {
        c->api_version = v;
        return 1;
    }
    /* Azure echoes the version; we do so only for short strings of version characters. */
    if (mv_fmt(msg, sizeof msg,
               "The specified version (%s) is not recognized. Consider using the latest supported "
               "version (" VAULT_LATEST_API ").",
               !v ? "null" : echo_safe(v) ? v : "invalid") != MV_OK)
        msg[0] = '\0';
    vault_bad_parameter(c, msg);
    return 0;
}

static int check_throttle(struct vault_ctx *c)
{
    const struct vault_plane *srv = c->w->srv;
    int is_create = c->route && c->route->is_create;
    int retry = vault_throttle(c->w->st, c->vault_name, is_create, srv->throttle_ops,
                               srv->throttle_creates, mv_now());
    if (retry == 0)
        return 1;
    char ra[16];
    if (mv_fmt(ra, sizeof ra, "%d", retry) == MV_OK)
        http_set_header(c->req, "Retry-After", ra); /* reference §9 item 16 */
    vault_error(c, 429, "Throttled",
                "Request was not processed because too many requests were received. Reason: "
                "VaultRequestTypeLimitReached",
                NULL);
    return 0;
}

static int check_route(struct vault_ctx *c)
{
    if (!c->route) {
        if (c->path_known) {
            char msg[96];
            if (mv_fmt(msg, sizeof msg,
                       "The requested resource does not support http method '%s'.",
                       method_name(c->req->method)) != MV_OK)
                msg[0] = '\0';
            vault_error(c, 405, "MethodNotAllowed", msg, NULL);
        } else {
            vault_error(c, 404, "NotFound", "The requested resource was not found.", NULL);
        }
        return 0;
    }
    if (route_has_name(c->route) && (c->name_bad || !vault_name_ok(c->name))) {
        vault_bad_parameter(c, "The request URI contains an invalid name. Names must be 1-127 "
                               "characters of letters, digits and dashes.");
        return 0;
    }
    if (c->version_bad || !vault_version_ok(c->version)) {
        vault_bad_parameter(c, "The request URI contains an invalid version.");
        return 0;
    }
    if (c->route->max_body && c->req->body.len > c->route->max_body) {
        vault_bad_parameter(c, "The request body is too large.");
        return 0;
    }
    return 1;
}

/* Reference §6.3: the vault's ARM id, plus /secrets/<name> (or /keys/<name>) for
 * single-object operations (the vault's id alone is also what the audit records for requests
 * refused before). */
static int build_resource(struct vault_ctx *c, int with_secret)
{
    const struct vault_plane *srv = c->w->srv;
    const char *kind = "/secrets/";
    if (with_secret && c->route &&
        (strncmp(c->route->pattern, "keys/", 5) == 0 ||
         strncmp(c->route->pattern, "deletedkeys/", 12) == 0))
        kind = "/keys/";
    else if (with_secret && c->route && strstr(c->route->pattern, "certificates/issuers/"))
        kind = "/certificates/issuers/";
    else if (with_secret && c->route && strstr(c->route->pattern, "certificates"))
        kind = "/certificates/";
    mv_rc rc = vault_cat(c->resource, sizeof c->resource, "/subscriptions/",
                         srv->tenant.subscription_id, "/resourceGroups/", c->vault.rg,
                         "/providers/Microsoft.KeyVault/vaults/", c->vault.name,
                         with_secret ? kind : "", with_secret ? c->name : "", (char *)NULL);
    if (rc != MV_OK) {
        c->resource[0] = '\0';
        vault_rc_error(c, MV_ERR_INTERNAL);
        return 0;
    }
    return 1;
}

static int find_vault(struct vault_ctx *c)
{
    mv_rc rc = vault_state_vault(c->w, c->vault_name, &c->vault);
    if (rc == MV_OK)
        return build_resource(c, 0);
    if (rc == MV_ERR_NOT_FOUND) {
        char msg[128];
        if (mv_fmt(msg, sizeof msg, "The vault '%s' was not found.", c->vault_name) != MV_OK)
            msg[0] = '\0';
        vault_error(c, 404, "VaultNotFound", msg, NULL);
    } else {
        vault_rc_error(c, rc);
    }
    return 0;
}

void vault_caller(const struct vault_ctx *c, char out[VAULT_CALLER_MAX])
{
    if (vault_cat(out, VAULT_CALLER_MAX, c->authenticated ? "oid:" : "ip:",
                  c->authenticated ? c->tok.oid : c->peer, (char *)NULL) != MV_OK)
        out[0] = '\0';
}

/* A caller with a valid token that was refused too often in this window gets 429 for
 * everything until the window ends (its refusals never touched the vault's budget). */
static int check_refusals(struct vault_ctx *c)
{
    char caller[VAULT_CALLER_MAX];
    vault_caller(c, caller);
    int retry = vault_refusals_over(caller, c->w->srv->refused_per_caller, mv_now());
    if (retry == 0)
        return 1;
    vault_refused_too_often(c, retry);
    return 0;
}

mv_rc vault_audit_now(struct vault_ctx *c)
{
    struct audit *a = c->w->srv->audit;
    if (c->audited || !a)
        return MV_OK;
    c->audited = 1;
    return audit_record_now(a, "vault", c->authenticated ? c->tok.oid : "-",
                            c->route ? c->route->action : "-",
                            c->resource[0] ? c->resource : c->vault_name, c->status,
                            c->req->request_id);
}

void vault_audit(struct vault_ctx *c)
{
    if (!c->audited && vault_audit_now(c) != MV_OK)
        LOG_ERROR("vault %s: %s", c->vault_name, mv_last_detail());
}

mv_rc vault_defer(struct vault_ctx *c, struct vault_deferred *d)
{
    mv_rc rc = MV_OK;
    CHECK(mv_copy(d->vault_name, sizeof d->vault_name, c->vault_name));
    /* api-version points into the request's query, gone after the handler (validated: short) */
    CHECK(mv_copy(d->api_version, sizeof d->api_version, c->api_version ? c->api_version : ""));
    d->c = *c;
    d->c.vault_name = d->vault_name;
    d->c.api_version = c->api_version ? d->api_version : NULL;
    d->c.req = http_defer(c->req);
    ENSURE(d->c.req != NULL, MV_ERR_INTERNAL);
    c->deferred = 1; /* the job replies and audits */
out:
    return rc;
}

void vault_deferred_fail(struct vault_deferred *d, mv_rc rc)
{
    vault_rc_error(&d->c, rc);
    vault_audit(&d->c);
}

void vault_deferred_resume(struct vault_deferred *d)
{
    store_snapshot_leave(d->c.w->snap);
}

void vault_deferred_free(struct vault_deferred *d)
{
    http_deferred_free(d->c.req);
    d->c.req = NULL;
}

void vault_handle(struct vault_loop *w, http_req *req, const char *vault_name)
{
    req->m_route = "unmatched"; /* until a route matches (metrics) */
    struct vault_ctx c;
    memset(&c, 0, sizeof c);
    c.req = req;
    c.w = w;
    c.vault_name = vault_name;

    service_headers(&c);
    if (vault_request_url(req, c.url, sizeof c.url) != MV_OK) {
        vault_bad_parameter(&c, "The Host header is invalid.");
        goto out;
    }
    find_route(&c); /* only looked at after authentication; known early for the audit */
    /* A read-only route reads the generation, maybe the vault and role assignments, then its
     * rows: all in the loop iteration's read snapshot (store/snapshot.h), shared with the other
     * GETs of the iteration. Any other route may write through this connection: no snapshot. */
    if (c.route && c.route->method == HTTP_GET)
        store_snapshot_enter(c.w->snap);
    else
        store_snapshot_leave(c.w->snap);
    /* The throttle counts only authorized requests: a principal with no role on a vault must not
     * spend the vault's budget for everyone (a 403 costs a cached RBAC decision, nothing more). */
    if (!vault_authenticate(&c) || !check_refusals(&c) || !find_vault(&c) || !check_api_version(&c) || !check_route(&c) ||
        !build_resource(&c, route_has_name(c.route)) || !vault_authorize(&c) || !check_throttle(&c))
        goto out;
    c.route->op(&c);
    if (c.deferred)
        return;
out:
    if (!req->replied) {
        LOG_ERROR("vault: handler did not reply");
        vault_rc_error(&c, MV_ERR_INTERNAL);
    }
    vault_audit(&c);
}
