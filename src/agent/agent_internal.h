/* agent_internal.h: what the files of src/agent/ share (private to the agent).
 *
 * Layers inside the agent, bottom up:
 *   check.c      pure request checks (reference §1.1, §2.2) -> an outcome + selector + resource
 *   cache.c      pure token cache keyed by (selector kind, selector value lower-cased, resource)
 *   ratelimit.c  pure token bucket (config imdsRateLimit, default MV_IMDS_RATE_PER_SEC; 0 = off)
 *   node.c       node key + enrollment + the App Service identity header (files in STATE/agents/VM)
 *   authority.c  one token from the authority (RFC 7523 client assertion)
 *   token.c      cache-or-authority, with stale serving while the authority is down
 *   imds.c appservice.c routes.c   the HTTP faces;   run.c   agent_run
 *
 * The agent runs one event loop (threads = 1), so nothing here is locked: struct agent is owned
 * by that loop once the server has started. */
#ifndef MV_AGENT_AGENT_INTERNAL_H
#define MV_AGENT_AGENT_INTERNAL_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "common/limits.h"
#include "common/result.h"
#include "http/kv.h"
#include "http/server.h"

/* ---- request checks (check.c) ---- */

/* Which identity of the VM a request names (reference §1.1: client_id / object_id / msi_res_id). */
enum agent_sel { SEL_NONE = 0, SEL_CLIENT_ID, SEL_OBJECT_ID, SEL_RES_ID };

enum imds_outcome {
    IMDS_OK = 0,
    IMDS_ERR_XFF,          /* X-Forwarded-For present */
    IMDS_ERR_METADATA,     /* Metadata header missing or not "true" */
    IMDS_ERR_UNAUTHORIZED, /* App Service: X-IDENTITY-HEADER missing or wrong */
    IMDS_ERR_METHOD,       /* not GET (or POST where the Cloud-Shell form is allowed) */
    IMDS_ERR_QUERY,        /* unparsable query/form, or a name given twice */
    IMDS_ERR_API_VERSION,  /* missing or not an accepted version */
    IMDS_ERR_RESOURCE,     /* resource missing or empty */
    IMDS_ERR_SELECTOR,     /* more than one identity selector */
};

/* What a valid token request asks for. Pointers point into the checked kv_list. */
struct imds_token_req {
    const char *resource;  /* percent-decoded, verbatim otherwise (echoed back) */
    enum agent_sel sel;
    const char *sel_value; /* NULL for SEL_NONE */
};

struct imds_check_in {
    enum http_method method;
    const char *xff;        /* X-Forwarded-For header or NULL */
    const char *metadata;   /* Metadata header or NULL */
    const kv_list *params;  /* the query (GET) or the form body (POST); NULL = none at all */
    int params_ok;          /* 0: the query/body could not be parsed */
};

/* The dated api-versions IMDS accepts on the token endpoint (2018-02-01 .. 2025-04-07). */
extern const char *const imds_api_versions[];
extern const size_t imds_api_versions_n;
int imds_api_version_ok(const char *v);

/* Checks in the order of reference §1.1 and the agent brief: XFF, Metadata, method, query,
 * api-version, resource, selector. GET needs api-version; POST (Cloud Shell, form body) does
 * not. Unknown parameters are ignored. */
enum imds_outcome imds_check_headers(const char *xff, const char *metadata);
enum imds_outcome imds_check_token(const struct imds_check_in *in, struct imds_token_req *out);

/* App Service 2019-08-01 (reference §2.2): XFF, X-IDENTITY-HEADER (constant-time against
 * secret), GET, query, api-version == 2019-08-01, resource, at most one of client_id /
 * principal_id|object_id / mi_res_id|msi_res_id. */
struct appsvc_check_in {
    enum http_method method;
    const char *xff;
    const char *identity_header; /* X-IDENTITY-HEADER or NULL */
    const char *secret;          /* the expected value (hex) */
    const kv_list *params;
    int params_ok;
};
enum imds_outcome appsvc_check_token(const struct appsvc_check_in *in, struct imds_token_req *out);

/* The reply for a refused request: status + OAuth error body (fixed texts, no echo). */
struct imds_error {
    int status;
    const char *error;
    const char *description;
};
void imds_outcome_error(enum imds_outcome o, struct imds_error *out);

/* ---- tokens and the cache (cache.c) ---- */

/* A token as obtained from the authority. access_token is a secret (wiped on free). */
struct agent_token {
    char *access_token;
    int64_t exp;       /* JWT exp (= expires_on) */
    int64_t nbf;       /* JWT nbf, or iat, or 0 */
    char client_id[64];
    char mirid[MV_MAX_SCOPE]; /* xms_mirid claim, "" if absent */
};
void agent_token_free(struct agent_token *t);

#define TCACHE_MAX 256
#define TCACHE_REFRESH_MARGIN_SECS 300 /* refresh 5 min before exp (DESIGN §7) */

struct tcache_entry {
    enum agent_sel sel;
    char *sel_value;   /* lower-cased; "" for SEL_NONE */
    char *resource;    /* exact */
    struct agent_token tok;
    int64_t fetched;   /* when the token was obtained (half-life base) */
    uint64_t used;     /* LRU tick */
};

struct tcache {
    struct tcache_entry *e;
    size_t n, max;
    uint64_t tick;
};

enum tcache_state {
    TCACHE_MISS,  /* nothing usable */
    TCACHE_FRESH, /* serve it */
    TCACHE_STALE, /* still valid (now < exp) but due for refresh: serve only if refresh fails */
};

void tcache_init(struct tcache *c, size_t max);
void tcache_free(struct tcache *c);
/* Expired entries found are dropped. *out stays valid until the next put/remove/free. */
enum tcache_state tcache_lookup(struct tcache *c, enum agent_sel sel, const char *sel_value,
                                const char *resource, int64_t now, const struct tcache_entry **out);
/* Stores a copy (replacing the same key); evicts expired entries, then the least recently used,
 * when full. */
MV_MUST_CHECK mv_rc tcache_put(struct tcache *c, enum agent_sel sel, const char *sel_value,
                               const char *resource, const struct agent_token *t, int64_t now,
                               const struct tcache_entry **out);
void tcache_remove(struct tcache *c, enum agent_sel sel, const char *sel_value,
                   const char *resource);

/* ---- rate limit (ratelimit.c) ---- */

struct ratelimit {
    int64_t milli;    /* tokens x 1000 */
    int64_t cap;      /* burst x 1000 */
    int64_t per_sec;  /* refill per second */
    int64_t last_ms;
};
/* per_sec <= 0: no limit (take always succeeds). */
void ratelimit_init(struct ratelimit *r, int per_sec, int64_t now_ms);
/* 1 if a request may go ahead (and takes a token), 0 if it must get 429. */
int ratelimit_take(struct ratelimit *r, int64_t now_ms);

/* ---- the agent (node.c, authority.c, token.c, routes) ---- */

struct agent_node {
    char vm[MV_MAX_NAME + 1];
    char client_id[64];
    char tenant_id[64];
    char server[MV_MAX_URL]; /* where it enrolled (node.json) */
    EVP_PKEY *key;           /* EC P-256 node key, loaded once */
    char kid[32];
};

struct http_client;

struct agent {
    struct agent_node node;
    char server[MV_MAX_URL];    /* authority base URL, no trailing slash */
    char token_url[MV_MAX_URL]; /* {server}/{tid}/oauth2/v2.0/token: the assertion's aud */
    struct http_client *http;   /* one handle, keep-alive to the authority */
    struct tcache cache;
    struct ratelimit rl;
    char identity_header[65];   /* App Service secret (hex), a secret */
    char vm_resource_id[MV_MAX_SCOPE]; /* learned from a system-assigned token's xms_mirid */
};

/* node.c. dir = STATE/agents/VM. Loads node.key (creating it if missing) and node.json; if
 * join is non-NULL (or node.json is missing, which then requires join) enrolls at server. */
MV_MUST_CHECK mv_rc agent_node_setup(const char *agents_dir, const char *vm, const char *join,
                                     const char *server, struct http_client *http,
                                     struct agent_node *out);
void agent_node_free(struct agent_node *n);
/* STATE/agents/VM/identity_header: 32 random bytes as hex, created 0600 if missing. */
MV_MUST_CHECK mv_rc agent_identity_header(const char *agents_dir, const char *vm, char out[65]);
/* VM names that are safe as one path component. */
int agent_vm_name_ok(const char *vm);

/* authority.c: one token from the authority. MV_ERR_NOT_FOUND = identity not found (authority
 * 400 invalid_request, or 401/403: node revoked, e.g. the VM was deleted); MV_ERR_BAD_REQUEST =
 * the authority refused the resource; MV_ERR_THROTTLED; MV_ERR_UNAVAILABLE = transport failure
 * or 5xx. */
MV_MUST_CHECK mv_rc agent_authority_token(struct agent *a, enum agent_sel sel,
                                          const char *sel_value, const char *resource,
                                          struct agent_token *out);

/* token.c: cache, else the authority; a still-valid cached token is served when the authority
 * is unavailable. *out points into the cache. */
MV_MUST_CHECK mv_rc agent_get_token(struct agent *a, const struct imds_token_req *r,
                                    const struct tcache_entry **out);

/* Handlers (imds.c, appservice.c) and the router (routes.c). */
void imds_handle_token(http_req *req);
void imds_handle_info(http_req *req);
void imds_handle_versions(http_req *req);
void imds_handle_instance(http_req *req);
void appsvc_handle_token(http_req *req);
void agent_route(http_req *req);
/* Sets the IMDS Server header, then an OAuth-shaped error reply. */
void agent_reply_error(http_req *req, int status, const char *error, const char *description);
/* Maps agent_get_token's failure to the IMDS reply (Identity not found, 429, 500). */
void agent_reply_token_rc(http_req *req, mv_rc rc);

#define AGENT_SERVER_HEADER "IMDS/150.870.65.1325"

#endif
