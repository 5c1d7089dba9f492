/* imds.c: the IMDS token endpoint (reference §1) and its Cloud-Shell POST twin (reference §2.2).
 *
 *   GET  /metadata/identity/oauth2/token[/]?api-version=..&resource=..[&client_id|object_id|
 *        msi_res_id]                          with Metadata: true
 *   POST /metadata/identity/oauth2/token[/]  form body resource=..[&client_id..], Metadata: true
 *
 * Checks are in check.c (pure, unit-tested); this file wires them to the request, the rate
 * limit and the token cache, and writes the reply, rendered from the cache entry's body
 * (render.c) with the current expires_in, without jansson. The 200 body follows reference §1.2 and §9
 * item 1: every value a JSON string, expires_on == the JWT exp, expires_in == exp - now at
 * reply time, resource echoed verbatim (msal-node caches under the echoed value). */
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
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
    case MV_ERR_FORBIDDEN:
        /* A bound identity asked for by another local caller (docs/agent.md): the same status
         * and error as an identity the VM does not have, so every SDK treats it the same way
         * (no retry), with a description that says why. */
        agent_reply_error(req, 400, "invalid_request", AGENT_BOUND_REFUSAL);
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

#define IMDS_STACK_BODY 4096 /* a 1.3 kB token's reply fits; longer ones go to the heap */

/* The reply being built: the rendered body (copied out of the cache under the agent's lock),
 * then the selector echo and the closing brace. */
struct imds_reply {
    const mv_buf *tail; /* the selector echo, "" or ,"object_id":"..." */
    char *p;
    size_t len;
    char *heap;
    char stack[IMDS_STACK_BODY];
};

/* A token request that waits for the authority (agent_token_defer): its reply and echo. */
struct imds_pending {
    struct imds_reply reply;
    mv_buf tail;
};

/* agent_token_use: runs under the agent's lock. */
static mv_rc render_reply(const struct tcache_entry *e, int64_t now, void *ctx)
{
    struct imds_reply *o = ctx;
    size_t need = imds_body_max(&e->body) + o->tail->len + 1;
    o->p = o->stack;
    if (need > sizeof o->stack) {
        o->heap = malloc(need);
        if (!o->heap)
            return MV_ERR_INTERNAL;
        o->p = o->heap;
    }
    o->len = imds_body_render(&e->body, e->tok.exp, now, o->p);
    return MV_OK;
}

/* SPEC-IMDS: the requested user-assigned selector is echoed (msal-node checks the echo on the
 * Azure Arc path). A value that is not UTF-8 cannot be a JSON string: it is left out, as the
 * jansson-built reply left it out. */
static mv_rc selector_echo(const struct imds_token_req *r, mv_buf *tail)
{
    mv_rc rc = MV_OK;
    const char *name = r->sel == SEL_OBJECT_ID ? "object_id" : r->sel == SEL_RES_ID ? "msi_res_id" : NULL;
    if (!name)
        goto out;
    CHECK(mv_buf_addf(tail, ",\"%s\":\"", name));
    if (agent_json_escape(r->sel_value, tail) != MV_OK) {
        mv_buf_reset(tail);
        goto out;
    }
    CHECK(mv_buf_adds(tail, "\""));
out:
    return rc;
}

/* The token reply, once agent_token_* has rendered it into reply (or failed with rc). */
static void send_token(http_req *req, mv_rc rc, struct imds_reply *reply)
{
    if (rc != MV_OK) {
        LOG_INFO("agent: token request refused (%s)", mv_rc_name(rc));
        agent_reply_token_rc(req, rc);
        return;
    }
    const mv_buf *tail = reply->tail;
    if (tail->len) {
        memcpy(reply->p + reply->len, tail->p, tail->len);
        reply->len += tail->len;
    }
    reply->p[reply->len++] = '}';
    http_set_header(req, "Server", AGENT_SERVER_HEADER);
    http_reply(req, 200, "application/json; charset=utf-8", reply->p, reply->len);
}

/* The local caller of req as "uid:cgroup" (docs/agent.md "Per-process identities"), "" if the
 * caller is not on this host in this network namespace or cannot be told: such a caller gets
 * only identities that are not bound. Costs a read of the socket table and, for the cgroup, a
 * scan of /proc: only done when the token is not one any caller may have. */
static void request_owner(http_req *req, char *out, size_t len)
{
    struct agent_caller who;
    char cg[ST_BIND_CGROUP_MAX];
    out[0] = '\0';
    struct evhttp_connection *con = evhttp_request_get_connection(req->ev);
    struct bufferevent *bev = con ? evhttp_connection_get_bufferevent(con) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0 || agent_peer_uid((int)fd, &who) != MV_OK)
        return;
    if (agent_peer_cgroup(&who, cg, sizeof cg) != MV_OK)
        cg[0] = '\0';
    if (mv_fmt(out, len, "%u:%s", (unsigned)who.uid, cg) != MV_OK)
        out[0] = '\0';
}

/* agent_token_done for a deferred request. */
static void pending_done(http_req *req, mv_rc rc, void *ctx)
{
    struct imds_pending *p = ctx;
    if (req) {
        send_token(req, rc, &p->reply);
        http_deferred_free(req);
    }
    free(p->reply.heap);
    mv_buf_free(&p->tail);
    free(p);
}

void imds_handle_token(http_req *req)
{
    struct agent_loop *w = req->worker;
    kv_list form = {0};
    struct imds_token_req r;
    struct imds_error err;
    struct imds_reply reply;
    mv_buf tail;
    mv_rc rc = MV_OK;
    mv_buf_init(&tail, 6 * MV_MAX_URI_BYTES + 64);
    reply.tail = &tail;
    reply.p = reply.heap = NULL;
    reply.len = 0;
    struct imds_check_in in = {
        .method = req->method,
        .proxy = agent_proxy_header(req),
        .metadata = http_header(req, "Metadata"),
        .params = req->raw_query ? &req->query : NULL,
        .params_ok = req->query_ok,
        .metadata_n = http_header_count(req, "Metadata"),
    };
    /* Header refusals first, before touching any body: the probe must be answered fast. */
    enum imds_outcome o = imds_check_headers(in.proxy, in.metadata, in.metadata_n);
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
    if (!agent_rate_ok(w->a)) {
        http_set_header(req, "Retry-After", "1");
        agent_reply_error(req, 429, "too_many_requests",
                          "Too many requests to the metadata endpoint; retry after 1 second");
        goto out;
    }
    rc = selector_echo(&r, &tail);
    char owner[ST_BIND_CGROUP_MAX + 16];
    int served = rc == MV_OK && agent_token_cached(w, &r, render_reply, &reply, &rc);
    if (rc == MV_OK && !served) {
        /* Not a token any caller may have: who is asking? */
        request_owner(req, owner, sizeof owner);
        r.owner = owner;
        served = owner[0] && agent_token_cached(w, &r, render_reply, &reply, &rc);
    }
    if (rc == MV_OK && !served) {
        /* A miss: answered later, on this loop, when the authority has answered. */
        struct imds_pending *p = malloc(sizeof *p);
        if (!p) {
            rc = MV_ERR_INTERNAL;
        } else {
            p->tail = tail;
            mv_buf_init(&tail, 0);
            p->reply.tail = &p->tail;
            p->reply.p = p->reply.heap = NULL;
            p->reply.len = 0;
            agent_token_defer(w, req, &r, render_reply, pending_done, p);
            goto out;
        }
    }
    send_token(req, rc, &reply);
out:
    /* Not wiped: these bytes are copied on into libevent's output buffer, which is freed
     * unwiped like every reply body, so a wipe here (2 % of a cached reply) would not remove
     * the token from memory. The long-lived copy, the cache entry's, is wiped when dropped. */
    free(reply.heap);
    mv_buf_free(&tail);
    kv_free(&form);
}
