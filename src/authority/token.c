/* token.c: the token endpoint, POST /{tid}/oauth2[/v2.0]/token (internal-protocol.md): the
 * client credentials grant (RFC 6749 §4.4) with JWT client authentication (RFC 7523 §2.2).
 *
 * Order: the request's shape (400s) before the client's authentication (401) before what the
 * client may have (400 "Identity not found"). The client is an enrolled node (a VM's agent,
 * acting for that VM's identities, identity.c) or the admin principal (acting for itself).
 * Refusals carry fixed descriptions; the reason goes to the log, keyed by the request id.
 * Every issued or refused token request is audited (DESIGN §8). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "authority/internal.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "http/reply.h"
#include "store/writer.h"

#define ASSERTION_TYPE_JWT "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define DEFAULT_SUFFIX "/.default"
#define RESOURCE_MAX 255

static const char BAD_CLIENT[] = "The client could not be authenticated.";

/* The one resource the token is for: `resource` (v1), or a `scope` (v2) that is exactly one
 * "<resource>/.default" (client credentials can only ask for the app's static permissions, so
 * .default is the only meaningful scope). The suffix is stripped once:
 * "https://management.core.windows.net//.default" → "https://management.core.windows.net/".
 * The result is used verbatim as aud (reference §9 item 7). */
static mv_rc pick_resource(const kv_list *form, char out[RESOURCE_MAX + 1],
                           struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    const char *resource = kv_get(form, "resource");
    const char *scope = kv_get(form, "scope");
    size_t len;
    REFUSE_UNLESS(!(resource && scope), ref, 400, "invalid_request",
                  "Send either resource or scope, not both.");
    REFUSE_UNLESS(resource || scope, ref, 400, "invalid_request",
                  "The request must include a resource or a scope.");
    if (scope) {
        len = strlen(scope);
        REFUSE_UNLESS(len > strlen(DEFAULT_SUFFIX) &&
                          strcmp(scope + len - strlen(DEFAULT_SUFFIX), DEFAULT_SUFFIX) == 0 &&
                          strchr(scope, ' ') == NULL,
                      ref, 400, "invalid_scope",
                      "The scope must be a single resource followed by /.default.");
        len -= strlen(DEFAULT_SUFFIX);
    } else {
        len = strlen(resource);
    }
    const char *src = scope ? scope : resource;
    /* invalid_resource (Entra's code for a resource it cannot issue for), not invalid_request:
     * the agent reads invalid_request as "Identity not found". */
    REFUSE_UNLESS(len > 0 && len <= RESOURCE_MAX, ref, 400, "invalid_resource",
                  "The resource is empty or too long.");
    for (size_t i = 0; i < len; i++)
        REFUSE_UNLESS(src[i] > 0x20 && src[i] < 0x7f, ref, 400, "invalid_resource",
                      "The resource contains characters that are not allowed.");
    memcpy(out, src, len);
    out[len] = '\0';
out:
    return rc;
}

/* RFC 6749 §3.2: the token endpoint takes application/x-www-form-urlencoded; a body declared
 * as anything else is refused rather than guessed at. */
static int form_content_type(const http_req *req)
{
    static const char FORM[] = "application/x-www-form-urlencoded";
    const char *ct = http_header(req, "Content-Type");
    if (!ct)
        return 1;
    size_t n = strlen(FORM);
    return strncasecmp(ct, FORM, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* RFC 6749 §5.1 with Entra's v1 members, in Entra's order. Written directly (json_out.c says
 * why); the reply carries a bearer token, so its buffer is wiped. */
static mv_rc reply_token(http_req *req, const char *access_token, int64_t exp, int64_t now,
                         const char *resource, const char *client_id, int bound)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES + 1024);
    CHECK(mv_buf_adds(&b, "{\"token_type\":\"Bearer\",\"access_token\":"));
    CHECK(authority_json_str(&b, access_token));
    CHECK(mv_buf_addf(&b, ",\"expires_in\":%lld,\"ext_expires_in\":%lld,\"expires_on\":%lld",
                      (long long)(exp - now), (long long)(exp - now), (long long)exp));
    CHECK(mv_buf_adds(&b, ",\"resource\":"));
    CHECK(authority_json_str(&b, resource));
    CHECK(mv_buf_adds(&b, ",\"client_id\":"));
    CHECK(authority_json_str(&b, client_id));
    /* mivault's own member, for its agent: the identity is bound to local callers, so the
     * agent keeps this token for the caller it asked for only (docs/agent.md). */
    if (bound)
        CHECK(mv_buf_adds(&b, ",\"mi_bound\":true"));
    CHECK(mv_buf_add(&b, "}", 1));
    /* RFC 6749 §5.1: "Cache-Control: no-store" and "Pragma: no-cache" on token responses. */
    http_set_header(req, "Cache-Control", "no-store");
    http_set_header(req, "Pragma", "no-cache");
    http_reply(req, 200, "application/json; charset=utf-8", b.p, b.len);
out:
    mv_buf_free_secret(&b);
    return rc;
}

struct token_ctx {
    kv_list form;
    jwt assertion;
    const struct authority_client *client; /* owned by the worker's cache (cache.c) */
    struct st_principal subject;           /* whom the token is for */
    char resource[RESOURCE_MAX + 1];
    char client_id[ST_ID];
    struct authority_refusal ref;
    const char *jti;        /* verified, still to be recorded through the writer; else NULL */
    char jti_key[512 + RESOURCE_MAX]; /* a service principal's: "<jti>\n<resource>" */
    int64_t jti_keep_until; /* exp + skew */
    int bound;              /* a node's identity bound to local callers (identity.c) */
};

/* Finds the client and its key. A node or the admin authenticate with their own key (an
 * unknown self-asserted client is refused as before: 401 invalid_client); a service principal
 * with a secret or a certificate, a user-assigned identity with an external issuer's token
 * (clients.c). *kind gets which. */
enum client_path { PATH_KEY, PATH_APP, PATH_FEDERATED };

static mv_rc find_client(struct authority_loop *w, int64_t gen, struct token_ctx *c, int self,
                         enum client_path *path)
{
    mv_rc rc = authority_client_get(w, gen, c->client_id, &c->client);
    if (rc == MV_ERR_NOT_FOUND && !self) {
        rc = authority_unknown_client(w->srv, c->client_id, &c->ref);
        goto out;
    }
    REFUSE_UNLESS(rc != MV_ERR_NOT_FOUND, &c->ref, 401, "invalid_client", BAD_CLIENT);
    CHECK(rc);
    *path = PATH_KEY;
    if (!c->client->is_node && c->client->principal.kind == ST_PRINCIPAL_APP)
        *path = PATH_APP;
    else if (!c->client->is_node && c->client->principal.kind == ST_PRINCIPAL_USER && !self)
        *path = PATH_FEDERATED;
    /* Managed identities never authenticate with a key of their own (their tokens come
     * through their VM's node or a federated credential). */
    REFUSE_UNLESS(*path != PATH_KEY || c->client->is_node ||
                      c->client->principal.kind == ST_PRINCIPAL_ADMIN,
                  &c->ref, 401, "invalid_client", BAD_CLIENT);
out:
    return rc;
}

/* The store generation the caches of this request are checked against; -1 (no cache) if it
 * cannot be read. */
static int64_t generation(struct authority_loop *w)
{
    int64_t gen = -1;
    if (store_generation(w->st, &gen) != MV_OK) {
        LOG_WARN("token: store generation unavailable (%s); caches bypassed", mv_last_detail());
        gen = -1;
    }
    return gen;
}

/* RFC 7523 §3 item 7: an assertion is good for one token. Its jti is recorded in the store (one
 * write; shared by every server of a PostgreSQL store) until the assertion would expire anyway,
 * and only after the signature and claims passed, so nobody without the client's key can fill
 * the table. A second use is refused like any other bad assertion.
 *
 * With the server's group-committing writer (srv->writer) the write is a writer job and the
 * reply waits for its batch (one fsync for many token requests, like a secret set): handle()
 * only notes the jti (c->jti) and authority_token defers the reply to jti_done. Without one
 * (unit tests) it is written here on the loop's connection. */
static mv_rc remember_jti(struct authority_loop *w, struct token_ctx *c, int64_t now)
{
    mv_rc rc = MV_OK;
    struct authority_refusal *ref = &c->ref;
    long long exp = 0;
    json_t *jexp = json_object_get(c->assertion.claims, "exp");
    if (json_is_real(jexp)) /* a service principal's MSAL Python (checked by assertion.c) */
        exp = (long long)json_real_value(jexp);
    else
        CHECK(jwt_claim_int(&c->assertion, "exp", &exp)); /* checked by assertion.c */
    c->jti = jwt_claim_str(&c->assertion, "jti");
    /* A service principal's certificate assertion is good for one token per resource: MSAL
     * (Python and Node alike) reuses one assertion for up to 10 minutes, for every resource its
     * application asks a token for. A node's or the admin's is good for one token. */
    if (!c->client->is_node && c->client->principal.kind == ST_PRINCIPAL_APP) {
        CHECK(mv_fmt(c->jti_key, sizeof c->jti_key, "%s\n%s", c->jti, c->resource));
        c->jti = c->jti_key;
    }
    c->jti_keep_until = (int64_t)exp + MV_CLOCK_SKEW_SECS;
    if (w->srv->writer && w->base)
        goto out; /* authority_token records it through the writer */
    rc = store_assertion_use(w->st, c->client_id, c->jti, c->jti_keep_until, now);
    c->jti = NULL;
    if (rc == MV_ERR_CONFLICT)
        LOG_INFO("token: client %s refused: assertion replayed", c->client_id);
    REFUSE_UNLESS(rc != MV_ERR_CONFLICT, ref, 401, "invalid_client", BAD_CLIENT);
out:
    return rc;
}

static mv_rc handle(struct authority_loop *w, http_req *req, struct token_ctx *c, mv_buf *token,
                    int64_t *exp, int64_t now)
{
    mv_rc rc = MV_OK;
    struct authority_refusal *ref = &c->ref;

    REFUSE_UNLESS(form_content_type(req), ref, 400, "invalid_request",
                  "The body must be application/x-www-form-urlencoded.");
    REFUSE_UNLESS(req->body.len <= MV_TOKEN_BODY_BYTES, ref, 400, "invalid_request",
                  "The request body is too large.");
    rc = kv_parse(req->body.p ? req->body.p : "", req->body.len, &c->form);
    REFUSE_UNLESS(rc == MV_OK, ref, 400, "invalid_request", "The request body is malformed.");
    /* RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once." */
    REFUSE_UNLESS(!c->form.has_dup, ref, 400, "invalid_request",
                  "A parameter was included more than once.");

    const char *grant = kv_get(&c->form, "grant_type");
    REFUSE_UNLESS(grant != NULL, ref, 400, "invalid_request", "grant_type is missing.");
    REFUSE_UNLESS(strcmp(grant, "client_credentials") == 0, ref, 400, "unsupported_grant_type",
                  "Only the client_credentials grant is supported.");

    /* RFC 7521 §4.2 / RFC 7523 §2.2: client_assertion_type + client_assertion, or a service
     * principal's client_secret. A client must not use more than one authentication method
     * (RFC 6749 §2.3). MSAL's extra fields (client_info, claims, x-client-*,
     * client-request-id) are ignored. */
    const char *atype = kv_get(&c->form, "client_assertion_type");
    const char *assertion = kv_get(&c->form, "client_assertion");
    const char *secret = kv_get(&c->form, "client_secret");
    int64_t gen;
    enum client_path path = PATH_KEY;
    if (secret) {
        REFUSE_UNLESS(!atype && !assertion, ref, 400, "invalid_request",
                      "Only one client authentication method may be used.");
        CHECK(pick_resource(&c->form, c->resource, ref));
        const char *sid = kv_get(&c->form, "client_id");
        if (!sid || !*sid) {
            rc = authority_refuse_aad(ref, 400, "invalid_request", 900144,
                                      "The request body must contain the following parameter: "
                                      "'client_id'.");
            goto out;
        }
        if (!mv_is_uuid(sid)) {
            rc = authority_unknown_client(w->srv, "", ref);
            goto out;
        }
        CHECK(mv_copy(c->client_id, sizeof c->client_id, sid));
        gen = generation(w);
        CHECK(find_client(w, gen, c, 0, &path));
        if (path != PATH_APP) {
            rc = authority_refuse_aad(ref, 401, "invalid_client", 7000215,
                                      "Invalid client secret provided. Ensure the secret being "
                                      "sent in the request is the client secret value, not the "
                                      "client secret ID, for a secret added to app '%s'.",
                                      c->client_id);
            goto out;
        }
        CHECK(authority_sp_secret(w, c->client_id, secret, now, ref));
        REFUSE_UNLESS(!authority_has_selector(&c->form), ref, 400, "invalid_request",
                      "Identity selectors are not allowed for this client.");
        c->subject = c->client->principal;
        goto issue;
    }
    REFUSE_UNLESS(atype && assertion && *assertion, ref, 400, "invalid_request",
                  "client_assertion_type and client_assertion are required.");
    REFUSE_UNLESS(strcmp(atype, ASSERTION_TYPE_JWT) == 0, ref, 401, "invalid_client",
                  "The client assertion type is not supported.");
    CHECK(pick_resource(&c->form, c->resource, ref));

    rc = jwt_parse(assertion, strlen(assertion), JWS_ALLOW(JWS_ES256) | JWS_ALLOW_RSA,
                   &c->assertion);
    if (rc != MV_OK && kv_get(&c->form, "client_id") && strlen(assertion) > 0) {
        rc = authority_refuse_aad(ref, 401, "invalid_client", 50027,
                                  "JWT token is invalid or malformed.");
        /* self-asserting clients (nodes, the admin) keep the fixed refusal */
        const char *cid0 = kv_get(&c->form, "client_id");
        if (!mv_is_uuid(cid0) || authority_client_get(w, generation(w), cid0, &c->client) != MV_OK ||
            c->client->is_node || c->client->principal.kind == ST_PRINCIPAL_ADMIN)
            rc = authority_refuse(ref, 401, "invalid_client", BAD_CLIENT, "assertion unparsable");
        goto out;
    }
    REFUSE_UNLESS(rc == MV_OK, ref, 401, "invalid_client", BAD_CLIENT);
    /* RFC 7521 §4.2: client_id is optional (the assertion's subject names the client); if
     * present it "MUST identify the same client" (checked against iss/sub below). */
    const char *cid = kv_get(&c->form, "client_id");
    if (!cid)
        cid = jwt_claim_str(&c->assertion, "sub");
    /* Our client ids are UUIDs: anything else is unknown (and never reaches the log). */
    REFUSE_UNLESS(cid && mv_is_uuid(cid), ref, 401, "invalid_client", BAD_CLIENT);
    CHECK(mv_copy(c->client_id, sizeof c->client_id, cid));
    const char *aiss = jwt_claim_str(&c->assertion, "iss");
    int self = aiss && strcmp(aiss, c->client_id) == 0;

    gen = generation(w);
    CHECK(find_client(w, gen, c, self, &path));
    if (path == PATH_FEDERATED) {
        CHECK(authority_federated_assertion(w, &c->assertion, &c->client->principal, now, ref));
        REFUSE_UNLESS(!authority_has_selector(&c->form), ref, 400, "invalid_request",
                      "Identity selectors are not allowed for this client.");
        c->subject = c->client->principal;
        goto issue;
    }
    if (path == PATH_APP) {
        CHECK(authority_sp_assertion(w, req, &c->assertion, c->client_id, now, ref));
    } else {
        REFUSE_UNLESS(c->assertion.alg == JWS_ES256 || c->assertion.alg == JWS_RS256, ref, 401,
                      "invalid_client", BAD_CLIENT);
        rc = authority_check_assertion(w->srv, req, &c->assertion, c->client_id, c->client->key,
                                       now);
        if (rc == MV_ERR_UNAUTHENTICATED)
            LOG_INFO("token: client %s refused: %s", c->client_id, mv_last_detail());
        REFUSE_UNLESS(rc != MV_ERR_UNAUTHENTICATED, ref, 401, "invalid_client", BAD_CLIENT);
        CHECK(rc);
    }
    CHECK(remember_jti(w, c, now));

    if (c->client->is_node) {
        CHECK(authority_subject_get(w, gen, c->client->vm, &c->form, &c->subject, ref));
        CHECK(authority_binding_check(w->st, gen, c->client->vm, &c->subject, &c->form,
                                      &c->bound, ref));
    } else {
        REFUSE_UNLESS(!authority_has_selector(&c->form), ref, 400, "invalid_request",
                      "Identity selectors are not allowed for this client.");
        c->subject = c->client->principal; /* public_key_pem is NULL in the cache */
    }
issue:
    CHECK(authority_issue_with(w->srv, authority_signer(w, gen), &c->subject, c->resource, token, exp));
out:
    return rc;
}

/* A token request's outcome, replied and audited by finish(). */
struct token_out {
    const struct authority_plane *srv;
    http_req *req;
    mv_rc rc;
    struct authority_refusal ref;
    mv_buf token; /* a bearer token: wiped */
    int64_t exp, now;
    char resource[RESOURCE_MAX + 1];
    char subject_client_id[ST_ID];
    int bound;
    char who[ST_ID]; /* for the audit record: the subject, else the client, else "" */
};

static void finish(struct token_out *o)
{
    http_req *req = o->req;
    mv_rc rc = o->rc;
    int status;
    if (rc == MV_OK)
        rc = reply_token(req, o->token.p, o->exp, o->now, o->resource, o->subject_client_id,
                         o->bound);
    if (rc == MV_OK) {
        status = 200;
    } else if (o->ref.status && o->ref.code) {
        status = o->ref.status;
        authority_reply_aad(req, &o->ref);
    } else if (o->ref.status) {
        status = o->ref.status;
        reply_oauth_error(req, status, o->ref.error, o->ref.description);
    } else {
        status = rc_http_status(rc);
        LOG_WARN("token: request %s failed: %s", req->request_id, mv_last_detail());
        reply_rc_oauth(req, rc);
    }
    if (o->srv->audit)
        audit_record(o->srv->audit, "authority", o->who[0] ? o->who : "-", "token", o->resource,
                     status, req->request_id);
}

/* The writer job of a token request whose reply waits for its jti to be durable. */
struct jti_job {
    struct token_out out; /* out.req is the deferred request */
    char client_id[ST_ID];
    char *jti;
    int64_t keep_until;
};

static void jti_job_free(struct jti_job *j)
{
    mv_buf_free_secret(&j->out.token);
    free(j->jti);
    http_deferred_free(j->out.req);
    free(j);
}

/* Writer thread. */
static mv_rc jti_job_run(struct store *st, void *arg)
{
    struct jti_job *j = arg;
    return store_assertion_use(st, j->client_id, j->jti, j->keep_until, j->out.now);
}

/* Loop thread, after the batch committed or failed: a replay is refused like any bad
 * assertion, whatever the request would have got; a failed write sends no token. */
static void jti_done(void *arg, mv_rc rc)
{
    struct jti_job *j = arg;
    if (rc == MV_ERR_CONFLICT) {
        LOG_INFO("token: client %s refused: assertion replayed", j->client_id);
        j->out.rc = MV_ERR_UNAUTHENTICATED;
        j->out.ref = (struct authority_refusal){.status = 401, .error = "invalid_client", .description = BAD_CLIENT};
    } else if (rc != MV_OK) {
        j->out.rc = rc;
        j->out.ref = (struct authority_refusal){.status = 0};
    }
    finish(&j->out);
    jti_job_free(j);
}

/* Hands the outcome o (moved into the job) to the writer with c's jti; the reply follows in
 * jti_done. MV_OK: o->req was deferred and is no longer the caller's to answer. */
static mv_rc submit_jti(const struct authority_loop *w, const struct token_ctx *c,
                        struct token_out *o)
{
    mv_rc rc = MV_OK;
    struct jti_job *j = calloc(1, sizeof *j);
    ENSURE(j != NULL, MV_ERR_INTERNAL);
    j->jti = strdup(c->jti);
    ENSURE(j->jti != NULL, MV_ERR_INTERNAL);
    CHECK(mv_copy(j->client_id, sizeof j->client_id, c->client_id));
    j->keep_until = c->jti_keep_until;
    j->out = *o;
    mv_buf_init(&o->token, 0); /* moved into the job */
    j->out.req = http_defer(o->req);
    ENSURE(j->out.req != NULL, MV_ERR_INTERNAL);
    rc = store_writer_submit(w->srv->writer, w->base, jti_job_run, jti_done, j);
    if (rc != MV_OK) { /* answered here, from the deferred copy */
        j->out.rc = rc;
        j->out.ref = (struct authority_refusal){.status = 0};
        finish(&j->out);
        jti_job_free(j);
    }
    return MV_OK;
out:
    if (j) {
        mv_buf_free_secret(&j->out.token);
        free(j->jti);
        free(j);
    }
    return rc;
}

void authority_token(http_req *req, const struct authority_route_args *a)
{
    struct authority_loop *w = a->w;
    struct token_ctx c;
    struct token_out o;
    /* the router allowed only our tenant */
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    o.srv = w->srv;
    o.req = req;
    o.now = mv_now();
    mv_buf_init(&o.token, MV_MAX_TOKEN_BYTES);

    o.rc = handle(w, req, &c, &o.token, &o.exp, o.now);
    o.ref = c.ref;
    o.bound = c.bound;
    if (mv_copy(o.resource, sizeof o.resource, c.resource) != MV_OK ||
        mv_copy(o.subject_client_id, sizeof o.subject_client_id, c.subject.client_id) != MV_OK ||
        mv_copy(o.who, sizeof o.who, c.subject.id[0] ? c.subject.id : c.client_id) != MV_OK)
        o.rc = MV_ERR_INTERNAL; /* cannot happen: same sizes */
    /* A verified assertion's jti is recorded whether it yields a token or a refusal (an
     * internal failure is answered at once, its detail still current: no token, nothing to
     * record). */
    if (o.rc != MV_OK && !o.ref.status)
        c.jti = NULL;
    mv_rc rc = c.jti ? submit_jti(w, &c, &o) : MV_ERR_NOT_FOUND;
    if (rc == MV_ERR_INTERNAL) {
        o.rc = rc;
        o.ref = (struct authority_refusal){.status = 0};
    }
    if (!c.jti || rc != MV_OK)
        finish(&o);

    mv_buf_free_secret(&o.token);
    jwt_free(&c.assertion);
    kv_free(&c.form);
    st_principal_clear(&c.subject);
}
