/* admin.c: the control-plane client of the CLI, acting as the admin principal.
 *
 * It authenticates exactly as a node does (RFC 7523 private_key_jwt): an ES256 client
 * assertion signed with STATE/admin.key, exchanged at the token endpoint for an ARM token
 * (audience https://management.core.windows.net/), then plain ARM REST calls. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "http/client.h"
#include "http/kv.h"

#define ARM_API_VERSION "2022-04-01"
#define ARM_RESOURCE_SCOPE "https://management.core.windows.net//.default"
#define MAX_RESP (4 * 1024 * 1024)

struct arm_client {
    struct http_client *http;
    struct mv_tenant tenant;
    char server[256];
    char bearer[MV_MAX_TOKEN_BYTES + 32];
};

const struct mv_tenant *arm_client_tenant(const struct arm_client *a) { return &a->tenant; }

static mv_rc read_admin(const struct cli *c, struct mv_tenant *t)
{
    mv_rc rc = MV_OK;
    json_error_t err;
    json_t *o = json_load_file(c->paths.admin_json, 0, &err);
    ENSURE_MSG(o != NULL, MV_ERR_FORBIDDEN, "cannot read %s: %s", c->paths.admin_json, err.text);
    const char *pid = json_string_value(json_object_get(o, "principalId"));
    const char *cid = json_string_value(json_object_get(o, "clientId"));
    const char *tid = json_string_value(json_object_get(o, "tenantId"));
    const char *sub = json_string_value(json_object_get(o, "subscriptionId"));
    const char *rg = json_string_value(json_object_get(o, "resourceGroup"));
    ENSURE(pid && cid && tid && sub && rg, MV_ERR_INTERNAL);
    CHECK(mv_copy(t->admin_principal_id, sizeof t->admin_principal_id, pid));
    CHECK(mv_copy(t->admin_client_id, sizeof t->admin_client_id, cid));
    CHECK(mv_copy(t->tenant_id, sizeof t->tenant_id, tid));
    CHECK(mv_copy(t->subscription_id, sizeof t->subscription_id, sub));
    CHECK(mv_copy(t->resource_group, sizeof t->resource_group, rg));
out:
    json_decref(o);
    return rc;
}

/* What the transport could not do (http_client_error), with a hint when nothing listens. */
static void report_transport(const struct arm_client *a)
{
    const char *e = http_client_error(a->http);
    if (strstr(e, "connection refused"))
        cli_error("%s (is `mivault server` or `mivault up` running?)", e);
    else if (e[0])
        cli_error("%s", e);
    else
        cli_error("cannot reach the mivault server at %s: %s", a->server, cli_detail());
}

/* RFC 7523 §3: iss = sub = client id, aud = the token endpoint, short exp, unique jti. */
static mv_rc admin_token(struct arm_client *a, const struct cli *c)
{
    mv_rc rc = MV_OK;
    char *pem = NULL;
    size_t pemlen = 0;
    EVP_PKEY *key = NULL;
    json_t *claims = NULL, *resp_json = NULL;
    char endpoint[512], jti[MV_UUID_LEN + 1];
    mv_buf assertion, form, esc;
    struct http_client_resp resp;
    memset(&resp, 0, sizeof resp);
    mv_buf_init(&assertion, MV_MAX_TOKEN_BYTES);
    mv_buf_init(&form, 4 * MV_MAX_TOKEN_BYTES);
    mv_buf_init(&esc, 4 * MV_MAX_TOKEN_BYTES);

    CHECK(mv_read_file(c->paths.admin_key, 16384, &pem, &pemlen));
    CHECK(keys_from_private_pem(pem, pemlen, &key));
    CHECK(mv_fmt(endpoint, sizeof endpoint, "%s/%s/oauth2/v2.0/token", a->server, a->tenant.tenant_id));
    CHECK(mv_uuid(jti));
    int64_t now = mv_now();
    claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", a->tenant.admin_client_id, "sub",
                       a->tenant.admin_client_id, "aud", endpoint, "iat", (json_int_t)now, "nbf",
                       (json_int_t)now, "exp", (json_int_t)(now + 300), "jti", jti);
    ENSURE(claims != NULL, MV_ERR_INTERNAL);
    CHECK(jws_sign(key, JWS_ES256, NULL, claims, &assertion));
    CHECK(mv_buf_adds(&form, "grant_type=client_credentials&client_id="));
    CHECK(mv_buf_adds(&form, a->tenant.admin_client_id));
    CHECK(mv_buf_adds(&form, "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                             "&client_assertion="));
    CHECK(mv_buf_adds(&form, assertion.p));
    CHECK(mv_buf_adds(&form, "&scope="));
    CHECK(kv_escape(ARM_RESOURCE_SCOPE, &esc));
    CHECK(mv_buf_adds(&form, esc.p));
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL};
    rc = http_client_do(a->http, "POST", endpoint, hdrs, form.p, form.len, MAX_RESP, &resp);
    if (rc != MV_OK) {
        report_transport(a);
        goto out;
    }
    resp_json = json_loadb(resp.body.p ? resp.body.p : "", resp.body.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(resp_json, "access_token"));
    if (resp.status != 200 || !tok) {
        const char *d = json_string_value(json_object_get(resp_json, "error_description"));
        cli_error("the authority refused the admin credential (%ld): %s", resp.status, d ? d : "no detail");
        rc = MV_ERR_UNAUTHENTICATED;
        goto out;
    }
    CHECK(mv_fmt(a->bearer, sizeof a->bearer, "Authorization: Bearer %s", tok));
out:
    if (pem)
        OPENSSL_cleanse(pem, pemlen); /* the admin key */
    free(pem);
    EVP_PKEY_free(key);
    json_decref(claims);
    json_decref(resp_json);
    mv_buf_free_secret(&assertion);
    mv_buf_free_secret(&form);
    mv_buf_free_secret(&esc);
    http_client_resp_free(&resp);
    return rc;
}

mv_rc arm_client_new(const struct cli *c, struct arm_client **out)
{
    mv_rc rc = MV_OK;
    struct arm_client *a = calloc(1, sizeof *a);
    ENSURE(a != NULL, MV_ERR_INTERNAL);
    rc = read_admin(c, &a->tenant);
    if (rc != MV_OK) {
        cli_error("no admin credential in %s (0600 admin.json/admin.key written by `mivault init`)", c->paths.dir);
        goto out;
    }
    CHECK(state_server_url(&c->cfg, a->server, sizeof a->server));
    CHECK(http_client_new(c->paths.ca_pem, &a->http));
    CHECK(admin_token(a, c));
    *out = a;
    a = NULL;
out:
    arm_client_free(a);
    return rc;
}

void arm_client_free(struct arm_client *a)
{
    if (!a)
        return;
    http_client_free(a->http);
    OPENSSL_cleanse(a->bearer, sizeof a->bearer);
    free(a);
}

static mv_rc status_rc(long status)
{
    switch (status) {
    case 401: return MV_ERR_UNAUTHENTICATED;
    case 403: return MV_ERR_FORBIDDEN;
    case 404: return MV_ERR_NOT_FOUND;
    case 409: return MV_ERR_CONFLICT;
    case 429: return MV_ERR_THROTTLED;
    default: return status >= 500 ? MV_ERR_UNAVAILABLE : MV_ERR_BAD_REQUEST;
    }
}

mv_rc arm_call(struct arm_client *a, const char *method, const char *path, json_t *body,
               json_t **out, long *status)
{
    mv_rc rc = MV_OK;
    char url[2048];
    char *bodys = NULL;
    json_t *j = NULL;
    struct http_client_resp resp;
    memset(&resp, 0, sizeof resp);
    *out = NULL;
    if (strstr(path, "api-version=")) /* the resource's own (federated credentials) */
        CHECK(mv_fmt(url, sizeof url, "%s%s", a->server, path));
    else
        CHECK(mv_fmt(url, sizeof url, "%s%s%sapi-version=%s", a->server, path,
                     strchr(path, '?') ? "&" : "?", ARM_API_VERSION));
    if (body)
        bodys = json_dumps(body, JSON_COMPACT);
    const char *hdrs[] = {a->bearer, "Content-Type: application/json", "Accept: application/json", NULL};
    rc = http_client_do(a->http, method, url, hdrs, bodys, bodys ? strlen(bodys) : 0, MAX_RESP, &resp);
    if (rc != MV_OK) {
        report_transport(a);
        goto out;
    }
    if (status)
        *status = resp.status;
    if (resp.body.len)
        j = json_loadb(resp.body.p, resp.body.len, 0, NULL);
    if (resp.status >= 400) {
        json_t *e = json_object_get(j, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        cli_error("%s (%ld): %s", code ? code : "Error", resp.status, msg ? msg : "no detail");
        rc = status_rc(resp.status);
        goto out;
    }
    *out = j;
    j = NULL;
out:
    free(bodys);
    json_decref(j);
    http_client_resp_free(&resp);
    return rc;
}

mv_rc arm_provider_path(struct arm_client *a, const char *type, const char *name, char *out, size_t len)
{
    if (name)
        return mv_fmt(out, len, "/subscriptions/%s/resourceGroups/%s/providers/%s/%s", a->tenant.subscription_id,
                      a->tenant.resource_group, type, name);
    return mv_fmt(out, len, "/subscriptions/%s/resourceGroups/%s/providers/%s", a->tenant.subscription_id,
                  a->tenant.resource_group, type);
}
