/* authority.c: one access token from the authority for one (identity, resource).
 *
 * RFC 6749 §4.4 client_credentials with an RFC 7523 §2.2 client assertion signed ES256 by the
 * node key (docs/internal-protocol.md "Token endpoint"):
 *   RFC 7523 §3: "iss" and "sub" = the client id; "aud" identifies the authorization server (the
 *   token endpoint URL); "exp" limits the time window (300 s here, the authority allows 600);
 *   "jti" a unique id against replay.
 * The reply's numbers are JSON integers; the JWT's own exp/nbf are authoritative for expiry
 * (IMDS's expires_on must equal the JWT exp, reference §1.2).
 *
 * Outcome mapping (agent_internal.h): 400 invalid_request -> NOT_FOUND ("Identity not found"),
 * 401/403 -> NOT_FOUND (the node is gone, e.g. the VM was deleted), 400 about the resource ->
 * BAD_REQUEST, 429 -> THROTTLED, 5xx or no answer -> UNAVAILABLE. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/jws.h"
#include "http/client.h"
#include "http/kv.h"

#define ASSERTION_LIFETIME_SECS 300
#define TOKEN_FORM_MAX (MV_MAX_TOKEN_BYTES + 2 * MV_MAX_URI_BYTES)
#define TOKEN_RESP_MAX (2 * MV_MAX_TOKEN_BYTES)

static const char *const token_headers[] = {
    "Content-Type: application/x-www-form-urlencoded", "Accept: application/json", NULL};

static mv_rc make_assertion(const struct agent *a, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char jti[MV_UUID_LEN + 1];
    int64_t now = mv_now();
    json_t *claims = NULL;
    CHECK(mv_uuid(jti));
    claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", a->node.client_id, "sub",
                       a->node.client_id, "aud", a->token_url, "iat", (json_int_t)now, "nbf",
                       (json_int_t)now, "exp", (json_int_t)(now + ASSERTION_LIFETIME_SECS), "jti",
                       jti);
    ENSURE(claims != NULL, MV_ERR_INTERNAL);
    CHECK(jws_sign(a->node.key, JWS_ES256, a->node.kid, claims, out));
out:
    json_decref(claims);
    return rc;
}

/* "&name=escaped(value)" */
static mv_rc add_param(mv_buf *b, const char *name, const char *value)
{
    mv_rc rc = MV_OK;
    if (b->len)
        CHECK(mv_buf_adds(b, "&"));
    CHECK(mv_buf_adds(b, name));
    CHECK(mv_buf_adds(b, "="));
    CHECK(kv_escape(value, b));
out:
    return rc;
}

static const char *sel_param(enum agent_sel sel)
{
    switch (sel) {
    case SEL_CLIENT_ID:
        return "mi_client_id";
    case SEL_OBJECT_ID:
        return "mi_object_id";
    case SEL_RES_ID:
        return "mi_res_id";
    case SEL_NONE:
        break;
    }
    return NULL;
}

static mv_rc make_form(const struct agent *a, enum agent_sel sel, const char *sel_value,
                       const char *resource, const char *owner, mv_buf *form)
{
    mv_rc rc = MV_OK;
    mv_buf assertion;
    mv_buf_init(&assertion, MV_MAX_TOKEN_BYTES);
    CHECK(make_assertion(a, &assertion));
    CHECK(add_param(form, "grant_type", "client_credentials"));
    CHECK(add_param(form, "client_id", a->node.client_id));
    CHECK(add_param(form, "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
    CHECK(add_param(form, "client_assertion", assertion.p));
    CHECK(add_param(form, "resource", resource));
    if (sel != SEL_NONE)
        CHECK(add_param(form, sel_param(sel), sel_value));
    if (owner && *owner) {
        /* The local caller the agent observed, "uid:cgroup" (peer.c): the authority issues a
         * bound identity only to a caller that matches its bindings. */
        char uid[16];
        const char *colon = strchr(owner, ':');
        size_t n = colon ? (size_t)(colon - owner) : strlen(owner);
        ENSURE(n > 0 && n < sizeof uid, MV_ERR_INTERNAL);
        memcpy(uid, owner, n);
        uid[n] = '\0';
        CHECK(add_param(form, "mi_caller_uid", uid));
        if (colon && colon[1])
            CHECK(add_param(form, "mi_caller_cgroup", colon + 1));
    }
out:
    mv_buf_free_secret(&assertion);
    return rc;
}

/* An integer member given as a JSON integer or a numeric string. */
static int json_i64(const json_t *o, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    return json_is_string(v) && mv_parse_i64(json_string_value(v), out) == MV_OK;
}

/* Fills out from a 200 reply. The JWT's claims win over the reply's numbers. */
static mv_rc parse_success(const json_t *o, struct agent_token *out)
{
    mv_rc rc = MV_OK;
    jwt t = {0};
    int parsed = 0;
    const char *tok = json_string_value(json_object_get(o, "access_token"));
    const char *cid = json_string_value(json_object_get(o, "client_id"));
    int64_t v = 0;
    ENSURE_MSG(tok && *tok && strlen(tok) <= MV_MAX_TOKEN_BYTES, MV_ERR_INTERNAL,
               "authority reply without a usable access_token");
    int64_t now = mv_now();
    if (json_i64(o, "expires_on", &v))
        out->exp = v;
    else if (json_i64(o, "expires_in", &v) && v <= INT64_MAX - now) /* no signed overflow */
        out->exp = now + v;
    if (jwt_parse(tok, strlen(tok), JWS_ALLOW(JWS_RS256), &t) == MV_OK) {
        parsed = 1;
        long long c = 0;
        if (jwt_claim_int(&t, "exp", &c) == MV_OK)
            out->exp = (int64_t)c;
        if (jwt_claim_int(&t, "nbf", &c) == MV_OK || jwt_claim_int(&t, "iat", &c) == MV_OK)
            out->nbf = (int64_t)c;
        const char *mirid = jwt_claim_str(&t, "xms_mirid");
        if (mirid && mv_copy(out->mirid, sizeof out->mirid, mirid) != MV_OK)
            out->mirid[0] = '\0';
        if (!cid)
            cid = jwt_claim_str(&t, "appid");
    }
    out->bound = json_is_true(json_object_get(o, "mi_bound"));
    ENSURE_MSG(out->exp > 0, MV_ERR_INTERNAL, "authority reply without an expiry");
    if (cid && mv_copy(out->client_id, sizeof out->client_id, cid) != MV_OK)
        out->client_id[0] = '\0';
    out->access_token = strdup(tok);
    ENSURE(out->access_token != NULL, MV_ERR_INTERNAL);
out:
    if (parsed)
        jwt_free(&t);
    return rc;
}

static mv_rc map_error(long status, const json_t *o)
{
    const char *err = json_string_value(json_object_get(o, "error"));
    const char *desc = json_string_value(json_object_get(o, "error_description"));
    err = err ? err : "";
    LOG_WARN("agent: authority answered %ld %s%s%.200s", status, err, desc ? ": " : "",
             desc ? desc : "");
    if (status == 400 && strcmp(err, "invalid_request") == 0)
        return desc && strcmp(desc, AGENT_BOUND_REFUSAL) == 0 ? MV_ERR_FORBIDDEN
                                                               : MV_ERR_NOT_FOUND;
    if (status == 401 || status == 403) {
        /* RFC 6749 §5.2 invalid_client: our node credential is refused, e.g. the VM (and its
         * node) was deleted. For the workload this is "Identity not found". */
        LOG_WARN("agent: node credential refused; was vm deleted or re-enrolled?");
        return MV_ERR_NOT_FOUND;
    }
    if (status == 400)
        return MV_ERR_BAD_REQUEST;
    if (status == 429)
        return MV_ERR_THROTTLED;
    if (status >= 500)
        return MV_ERR_UNAVAILABLE;
    return MV_ERR_INTERNAL;
}

mv_rc agent_authority_reply(long status, const char *body, size_t len, struct agent_token *out)
{
    mv_rc rc = MV_OK;
    json_t *o = json_loadb(body ? body : "", body ? len : 0, 0, NULL);
    *out = (struct agent_token){0};
    if (status != 200) {
        rc = map_error(status, o);
        goto out;
    }
    ENSURE_MSG(json_is_object(o), MV_ERR_INTERNAL, "authority reply is not JSON");
    CHECK(parse_success(o, out));
out:
    if (rc != MV_OK)
        agent_token_free(out);
    json_decref(o);
    return rc;
}

mv_rc agent_authority_token(const struct agent *a, struct http_client *http, enum agent_sel sel,
                            const char *sel_value, const char *resource, const char *owner,
                            struct agent_token *out)
{
    mv_rc rc = MV_OK;
    mv_buf form;
    struct http_client_resp r = {0};
    mv_buf_init(&form, TOKEN_FORM_MAX);
    *out = (struct agent_token){0};
    CHECK(make_form(a, sel, sel_value, resource, owner, &form));
    rc = http_client_do(http, "POST", a->token_url, token_headers, form.p, form.len,
                        TOKEN_RESP_MAX, &r);
    if (rc != MV_OK) {
        LOG_WARN("agent: authority unreachable at %s", a->server);
        rc = MV_ERR_UNAVAILABLE;
        goto out;
    }
    CHECK(agent_authority_reply(r.status, r.body.p, r.body.len, out));
out:
    if (rc != MV_OK)
        agent_token_free(out);
    mv_buf_free_secret(&form);
    if (r.body.p)
        mv_buf_free_secret(&r.body);
    http_client_resp_free(&r);
    return rc;
}
