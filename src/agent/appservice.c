/* appservice.c: the App Service / Functions managed-identity protocol, 2019-08-01 (reference
 * §2.2, DOC-APPSVC), for workloads configured with IDENTITY_ENDPOINT + IDENTITY_HEADER:
 *
 *   GET /msi/token?api-version=2019-08-01&resource=..[&client_id|principal_id|object_id|mi_res_id]
 *   X-IDENTITY-HEADER: <the secret in STATE/agents/VM/identity_header>
 *   200 {"access_token","expires_on":"<epoch string>","resource","token_type":"Bearer","client_id"}
 *
 * The header secret stands in for the Metadata header's SSRF protection, so it is required and
 * compared in constant time (check.c). expires_on is an epoch-seconds string: MSAL Python does
 * int(expires_on), msal-node reads the same field. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "common/log.h"
#include "common/util.h"

struct appsvc_reply {
    char *resource; /* owned */
    json_t *body;
};

/* agent_token_use: runs under the agent's lock (App Service is not the hot path: jansson). */
static mv_rc build_reply(const struct tcache_entry *e, int64_t now, void *ctx)
{
    struct appsvc_reply *o = ctx;
    char exp_on[24];
    (void)now;
    if (mv_fmt(exp_on, sizeof exp_on, "%" PRId64, e->tok.exp) != MV_OK)
        return MV_ERR_INTERNAL;
    o->body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "access_token", e->tok.access_token,
                        "expires_on", exp_on, "resource", o->resource, "token_type", "Bearer",
                        "client_id", e->tok.client_id);
    return o->body ? MV_OK : MV_ERR_INTERNAL;
}

static void send_reply(http_req *req, mv_rc rc, struct appsvc_reply *reply)
{
    if (rc != MV_OK) {
        LOG_INFO("agent: app service token request refused (%s)", mv_rc_name(rc));
        agent_reply_token_rc(req, rc);
        return;
    }
    http_set_header(req, "Server", AGENT_SERVER_HEADER);
    http_reply_json(req, 200, reply->body);
    reply->body = NULL;
}

static void reply_free(struct appsvc_reply *reply)
{
    json_decref(reply->body);
    free(reply->resource);
    free(reply);
}

/* agent_token_done for a request that waited for the authority. */
static void pending_done(http_req *req, mv_rc rc, void *ctx)
{
    if (req) {
        send_reply(req, rc, ctx);
        http_deferred_free(req);
    }
    reply_free(ctx);
}

void appsvc_handle_token(http_req *req)
{
    struct agent_loop *w = req->worker;
    struct imds_token_req r;
    struct imds_error err;
    struct appsvc_check_in in = {
        .method = req->method,
        .proxy = agent_proxy_header(req),
        .identity_header = http_header(req, "X-IDENTITY-HEADER"),
        .secret = w->a->identity_header,
        .params = req->raw_query ? &req->query : NULL,
        .params_ok = req->query_ok,
    };
    enum imds_outcome o = appsvc_check_token(&in, &r);
    if (o != IMDS_OK) {
        imds_outcome_error(o, &err);
        agent_reply_error(req, err.status, err.error, err.description);
        return;
    }
    if (!agent_rate_ok(w->a)) {
        http_set_header(req, "Retry-After", "1");
        agent_reply_error(req, 429, "too_many_requests",
                          "Too many requests to the identity endpoint; retry after 1 second");
        return;
    }
    struct appsvc_reply *reply = calloc(1, sizeof *reply);
    mv_rc rc = MV_OK;
    if (reply)
        reply->resource = strdup(r.resource);
    if (!reply || !reply->resource) {
        agent_reply_token_rc(req, MV_ERR_INTERNAL);
        free(reply);
        return;
    }
    if (!agent_token_cached(w, &r, build_reply, reply, &rc)) {
        agent_token_defer(w, req, &r, build_reply, pending_done, reply);
        return;
    }
    send_reply(req, rc, reply);
    reply_free(reply);
}
