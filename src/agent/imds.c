/* imds.c: the IMDS token endpoint (reference §1) and its Cloud-Shell POST twin (reference §2.2).
 *
 *   GET  /metadata/identity/oauth2/token[/]?api-version=..&resource=..[&client_id|object_id|
 *        msi_res_id]                          with Metadata: true
 *   POST /metadata/identity/oauth2/token[/]  form body resource=..[&client_id..], Metadata: true
 *
 * Checks are in check.c (pure, unit-tested); this file wires them to the request, the rate
 * limit and the token cache, and writes the reply. The 200 body follows reference §1.2 and §9
 * item 1: every value a JSON string, expires_on == the JWT exp, expires_in == exp - now at
 * reply time, resource echoed verbatim (msal-node caches under the echoed value). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

#include "agent/agent_internal.h"
#include "common/log.h"
#include "common/util.h"
#include "http/reply.h"

void agent_reply_error(http_req *req, int status, const char *error, const char *description)
{
    http_set_header(req, "Server", AGENT_SERVER_HEADER);
    reply_oauth_error(req, status, error, description);
}

void agent_reply_token_rc(http_req *req, mv_rc rc)
{
    switch (rc) {
    case MV_ERR_NOT_FOUND:
        /* Reference §1.3, §9 item 3: exactly this body, status 400 "Bad Request" (never 404:
         * SDKs retry 404 for tens of seconds; az sniffs 400 + reason phrase). */
        agent_reply_error(req, 400, "invalid_request", "Identity not found");
        return;
    case MV_ERR_BAD_REQUEST:
        agent_reply_error(req, 400, "invalid_resource",
                          "AADSTS500011: The resource principal named in the request was not "
                          "found in the tenant.");
        return;
    case MV_ERR_THROTTLED:
        http_set_header(req, "Retry-After", "1");
        agent_reply_error(req, 429, "too_many_requests",
                          "The identity authority is throttling requests; retry later");
        return;
    default:
        /* DOC-VMTOKEN: transient AAD failure is a 5xx, which every SDK retries. */
        agent_reply_error(req, 500, "unknown",
                          "Failed to retrieve token from the Active directory. For details see "
                          "logs");
        return;
    }
}

static void i64_str(char *out, size_t len, int64_t v)
{
    if (mv_fmt(out, len, "%" PRId64, v) != MV_OK)
        out[0] = '\0';
}

static void reply_token(http_req *req, const struct imds_token_req *r,
                        const struct tcache_entry *e)
{
    char exp_in[24], exp_on[24], nbf[24];
    int64_t now = mv_now();
    int64_t left = e->tok.exp - now;
    i64_str(exp_in, sizeof exp_in, left > 0 ? left : 0);
    i64_str(exp_on, sizeof exp_on, e->tok.exp);
    i64_str(nbf, sizeof nbf, e->tok.nbf ? e->tok.nbf : e->fetched);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "access_token",
                          e->tok.access_token, "refresh_token", "", "expires_in", exp_in,
                          "expires_on", exp_on, "ext_expires_in", exp_in, "not_before", nbf,
                          "resource", r->resource, "token_type", "Bearer", "client_id",
                          e->tok.client_id);
    if (!o) {
        agent_reply_token_rc(req, MV_ERR_INTERNAL);
        return;
    }
    /* SPEC-IMDS: the requested user-assigned selector is echoed (msal-node checks the echo on
     * the Azure Arc path). */
    if (r->sel == SEL_OBJECT_ID)
        json_object_set_new(o, "object_id", json_string(r->sel_value));
    else if (r->sel == SEL_RES_ID)
        json_object_set_new(o, "msi_res_id", json_string(r->sel_value));
    http_set_header(req, "Server", AGENT_SERVER_HEADER);
    http_reply_json(req, 200, o);
}

void imds_handle_token(http_req *req)
{
    struct agent *a = req->worker;
    kv_list form = {0};
    struct imds_token_req r;
    struct imds_error err;
    const struct tcache_entry *e = NULL;
    mv_rc rc = MV_OK;
    struct imds_check_in in = {
        .method = req->method,
        .xff = http_header(req, "X-Forwarded-For"),
        .metadata = http_header(req, "Metadata"),
        .params = req->raw_query ? &req->query : NULL,
        .params_ok = req->query_ok,
    };
    /* Header refusals first, before touching any body: the probe must be answered fast. */
    enum imds_outcome o = imds_check_headers(in.xff, in.metadata);
    if (o == IMDS_OK && req->method == HTTP_POST) {
        /* Cloud Shell: the parameters are in an x-www-form-urlencoded body (reference §2.2). */
        in.params = &form;
        in.params_ok = kv_parse(req->body.p ? req->body.p : "", req->body.len, &form) == MV_OK;
    }
    if (o == IMDS_OK)
        o = imds_check_token(&in, &r);
    if (o != IMDS_OK) {
        imds_outcome_error(o, &err);
        agent_reply_error(req, err.status, err.error, err.description);
        goto out;
    }
    if (!ratelimit_take(&a->rl, mv_now_ms())) {
        http_set_header(req, "Retry-After", "1");
        agent_reply_error(req, 429, "too_many_requests",
                          "Too many requests to the metadata endpoint; retry after 1 second");
        goto out;
    }
    rc = agent_get_token(a, &r, &e);
    if (rc != MV_OK) {
        LOG_INFO("agent: token request refused (%s)", mv_rc_name(rc));
        agent_reply_token_rc(req, rc);
        goto out;
    }
    reply_token(req, &r, e);
out:
    kv_free(&form);
}
