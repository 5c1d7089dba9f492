/* agent_internal.h: what the files of src/agent/ share (private to the agent).
 *
 * Layers inside the agent, bottom up:
 *   check.c      pure request checks (reference §1.1, §2.2) -> an outcome + selector + resource
 *   cache.c      pure token cache keyed by (selector kind, selector value lower-cased, resource)
 *   render.c     pure JSON rendering of the IMDS reply from a cache entry (no jansson)
 *   ratelimit.c  pure token bucket (config imdsRateLimit, default MV_IMDS_RATE_PER_SEC; 0 = off)
 *   node.c       node key + enrollment + the App Service identity header (files in STATE/agents/VM)
 *   authority.c  one token from the authority (RFC 7523 client assertion)
 *   token.c      cache-or-authority: misses wait (deferred) for fetcher threads, never on a
 *                loop; stale serving while the authority is down; one authority request per
 *                key however many loops miss it at once; background refresh with backoff
 *   join.c remember.c   the CA pinned at the join; agent.json and env.sh
 *   imds.c appservice.c routes.c   the HTTP faces;   run.c   agent_start/stop/run
 *
 * Threads: the agent serves on one or more event loops (struct agent_opts.threads). What all
 * loops share is struct agent: its node, URLs and App Service secret are written before the
 * loops start and only read after; its cache, rate limit, in-flight requests and learned VM id
 * are guarded by agent.mu. Authority requests are made by AGENT_FETCHERS threads, each with its
 * own HTTP client; a loop only queues a miss and answers it when the result is handed back. Functions marked "(pure)" lock nothing: callers hold mu. */
#ifndef MV_AGENT_AGENT_INTERNAL_H
#define MV_AGENT_AGENT_INTERNAL_H

#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
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
    IMDS_ERR_XFF,          /* X-Forwarded-For, Forwarded, X-Real-IP or Via present */
    IMDS_ERR_METADATA,     /* Metadata header missing or not "true" */
    IMDS_ERR_METADATA_DUP, /* Metadata header given more than once */
    IMDS_ERR_HOST,         /* Host names none of the agent's own addresses (DNS rebinding) */
    IMDS_ERR_UNAUTHORIZED, /* App Service: X-IDENTITY-HEADER missing or wrong */
    IMDS_ERR_METHOD,       /* not GET (or POST where the Cloud-Shell form is allowed) */
    IMDS_ERR_QUERY,        /* unparsable query/form, or a name given twice */
    IMDS_ERR_API_VERSION,  /* missing or not an accepted version */
    IMDS_ERR_RESOURCE,     /* resource missing or empty */
    IMDS_ERR_SELECTOR,     /* more than one identity selector */
    IMDS_ERR_BUSY,         /* AGENT_MAX_CONCURRENT token requests already wait: 429 */
};

/* What a valid token request asks for. Pointers point into the checked kv_list. */
struct imds_token_req {
    const char *resource;  /* percent-decoded, verbatim otherwise (echoed back) */
    enum agent_sel sel;
    const char *sel_value; /* NULL for SEL_NONE */
    const char *owner;     /* the local caller a bound identity's token is for ("uid:cgroup"),
                            * NULL or "" for a token any caller may have (docs/agent.md) */
};

struct imds_check_in {
    enum http_method method;
    const char *proxy;      /* a proxy header (agent_proxy_header) or NULL */
    const char *metadata;   /* Metadata header or NULL */
    const kv_list *params;  /* the query (GET) or the form body (POST); NULL = none at all */
    int params_ok;          /* 0: the query/body could not be parsed */
    int metadata_n;         /* how many Metadata headers the request has (0: not counted) */
};

/* The dated api-versions IMDS accepts on the token endpoint (2018-02-01 .. 2025-04-07). */
extern const char *const imds_api_versions[];
extern const size_t imds_api_versions_n;
int imds_api_version_ok(const char *v);

/* Checks in the order of reference §1.1 and the agent brief: proxy headers, Metadata (once),
 * method, query, api-version, resource, selector. GET needs api-version; POST (Cloud Shell, form
 * body) does not. Unknown parameters are ignored. */
enum imds_outcome imds_check_headers(const char *proxy, const char *metadata, int metadata_n);
enum imds_outcome imds_check_token(const struct imds_check_in *in, struct imds_token_req *out);

/* App Service 2019-08-01 (reference §2.2): XFF, X-IDENTITY-HEADER (constant-time against
 * secret), GET, query, api-version == 2019-08-01, resource, at most one of client_id /
 * principal_id|object_id / mi_res_id|msi_res_id. */
struct appsvc_check_in {
    enum http_method method;
    const char *proxy;
    const char *identity_header; /* X-IDENTITY-HEADER or NULL */
    const char *secret;          /* the expected value (hex) */
    const kv_list *params;
    int params_ok;
};
enum imds_outcome appsvc_check_token(const struct appsvc_check_in *in, struct imds_token_req *out);

/* The Host check against DNS rebinding: 1 if host (lower-cased, without port; "" when the
 * request has none, HTTP/1.0) and host_port (0 if absent) name this agent: 127.0.0.1,
 * localhost, 169.254.169.254 or listen_host, at the agent's port (no port in Host = 80). */
int imds_host_ok(const char *host, int host_port, const char *listen_host, int port);

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
    int bound;                /* the authority's mi_bound: only for the caller it was asked for */
};
void agent_token_free(struct agent_token *t);

#define TCACHE_MAX 256
#define TCACHE_REFRESH_MARGIN_SECS 300 /* refresh 5 min before exp (DESIGN §7) */

/* The IMDS 200 body of an entry, rendered once at put (render.c): every field but expires_in
 * (twice) is fixed for the entry's life, so the body is kept as one JSON text cut at the two
 * places where expires_in goes, without the closing brace (a selector echo may follow). Holds
 * the access token: wiped when the entry is dropped. */
struct imds_body_tmpl {
    char *p;
    size_t len;
    size_t cut1, cut2; /* p[0..cut1) N p[cut1..cut2) N p[cut2..len) */
};

struct tcache_entry {
    enum agent_sel sel;
    char *sel_value;   /* lower-cased; "" for SEL_NONE */
    char *resource;    /* exact */
    char *owner;       /* "" (any caller), else the local caller of a bound identity */
    struct agent_token tok;
    int64_t fetched;   /* when the token was obtained (half-life base) */
    uint64_t used;     /* LRU tick */
    int64_t retry_at;  /* no background refresh before this (backoff after failures) */
    int fails;         /* refresh failures in a row */
    struct imds_body_tmpl body;
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
/* Stores a copy (replacing the same key) with its rendered IMDS body; evicts expired entries,
 * then the least recently used, when full. A token, resource or client id that is not valid
 * UTF-8 cannot be rendered as JSON: MV_ERR_INTERNAL, nothing stored. */
MV_MUST_CHECK mv_rc tcache_put(struct tcache *c, enum agent_sel sel, const char *sel_value,
                               const char *resource, const struct agent_token *t, int64_t now,
                               const struct tcache_entry **out);
void tcache_remove(struct tcache *c, enum agent_sel sel, const char *sel_value,
                   const char *resource);
/* The same, for the entries of one owner (NULL = ""); the functions above use "". */
enum tcache_state tcache_lookup_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                                  const char *resource, const char *owner, int64_t now,
                                  const struct tcache_entry **out);
MV_MUST_CHECK mv_rc tcache_put_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                                 const char *resource, const char *owner,
                                 const struct agent_token *t, int64_t now,
                                 const struct tcache_entry **out);
void tcache_remove_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                     const char *resource, const char *owner);
void tcache_backoff_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                      const char *resource, const char *owner, int64_t now, int64_t max_secs);
/* FRESH (serve without refreshing) rather than STALE. */
int tcache_entry_fresh(const struct tcache_entry *e, int64_t now);
/* A refresh of the entry failed: no new attempt for 1, 2, 4, ... up to max_secs seconds. */
void tcache_backoff(struct tcache *c, enum agent_sel sel, const char *sel_value,
                    const char *resource, int64_t now, int64_t max_secs);

/* ---- rate limit (ratelimit.c) ---- */

struct ratelimit {
    int64_t milli;    /* tokens x 1000 */
    int64_t cap;      /* burst x 1000 */
    int64_t per_sec;  /* refill per second */
    int64_t last_ms;
};
/* per_sec <= 0: no limit (take always succeeds). */
void ratelimit_init(struct ratelimit *r, int per_sec, int64_t now_ms);
static inline int ratelimit_off(const struct ratelimit *r) { return r->per_sec == 0; }
/* 1 if a request may go ahead (and takes a token), 0 if it must get 429. */
int ratelimit_take(struct ratelimit *r, int64_t now_ms);

/* ---- JSON rendering (render.c, pure) ---- */

/* Appends s as the inside of a JSON string (no quotes), escaped exactly as jansson's compact
 * json_dumps does (RFC 8259 §7: '"', '\\' and controls; controls other than \b \f \n \r \t
 * as \u00XX; nothing else, so the bytes equal the old replies). MV_ERR_BAD_REQUEST if s is not
 * valid UTF-8 (jansson refuses such strings too). */
MV_MUST_CHECK mv_rc agent_json_escape(const char *s, mv_buf *out);
/* Renders e's IMDS body template (reference §1.2: every value a string, expires_on = JWT exp,
 * not_before = nbf or the fetch time, resource echoed, refresh_token ""). */
MV_MUST_CHECK mv_rc imds_body_tmpl_make(const char *resource, const struct agent_token *t,
                                        int64_t fetched, struct imds_body_tmpl *out);
void imds_body_tmpl_free(struct imds_body_tmpl *b);
/* Bytes imds_body_render writes at most for e. */
size_t imds_body_max(const struct imds_body_tmpl *b);
/* Writes the body with expires_in = exp - now (>= 0) into dst (imds_body_max bytes), without
 * the closing brace; returns the length. */
size_t imds_body_render(const struct imds_body_tmpl *b, int64_t exp, int64_t now, char *dst);

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
struct event_base;

struct agent_flight;
struct agent_wait;

/* token.c: authority requests run on their own threads, never on an event loop. */
#define AGENT_FETCHERS 2              /* concurrent authority requests */
#define AGENT_MISS_WAIT_MS 3000       /* a miss waits this long for the authority, then 500 */
#define AGENT_SCAN_MS 1000            /* how often fetchers look for entries to refresh */
#define AGENT_BACKOFF_MAX_SECS 60     /* refresh retries: 1 s doubling up to this */
#define AGENT_CONNECT_TIMEOUT_MS 3000L
#define AGENT_FETCH_TIMEOUT_MS 10000L

struct agent;
struct agent_fetcher {
    struct agent *a;
    struct http_client *http; /* keep-alive to the authority; this thread's only */
    pthread_t thread;
    int running;
};

struct agent {
    /* Set before the loops start, read-only after. */
    struct agent_node node;
    char server[MV_MAX_URL];    /* authority base URL, no trailing slash */
    char token_url[MV_MAX_URL]; /* {server}/{tid}/oauth2/v2.0/token: the assertion's aud */
    char identity_header[65];   /* App Service secret (hex), a secret */
    char ca_file[PATH_MAX];     /* what each loop's HTTP client trusts ("" = system store) */
    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t work;        /* signalled when a flight is queued (fetchers wait on it) */
    int work_init, stopping;
    struct tcache cache;
    struct ratelimit rl;        /* per_sec is read without mu (set before start) */
    struct agent_flight *flights; /* authority requests queued or in progress, by key */
    struct agent_flight *queue;   /* of those, the ones no fetcher has taken yet */
    struct agent_wait *waits;     /* every deferred request not yet answered */
    int nwaits;                   /* of those, the ones counted against AGENT_MAX_CONCURRENT */
    int64_t next_scan_ms;
    struct agent_fetcher fetchers[AGENT_FETCHERS];
    char vm_resource_id[MV_MAX_SCOPE]; /* learned from a system-assigned token's xms_mirid */
    char listen_host[64];       /* the address served, for the Host check */
    int port;                   /* the port bound (atomic: written once the listener is up) */
};

/* One per loop thread: the request's worker. */
struct agent_loop {
    struct agent *a;
    struct event_base *base;    /* where deferred token replies complete */
};

/* DOC-IMDS "Rate limiting": 5 concurrent requests per VM in the managed-identity category. */
#define AGENT_MAX_CONCURRENT 5

/* 1 if a token request may go ahead (takes mu unless the limit is off). */
int agent_rate_ok(struct agent *a);

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

/* join.c: makes ca_path a CA whose SubjectPublicKeyInfo hashes to pin: kept if it already is;
 * else (only outside a server's state dir) fetched untrusted from {server}/mivault/ca.pem,
 * checked against pin, written. MV_ERR_UNAUTHENTICATED "the server's CA does not match the join
 * token's pin" otherwise. */
MV_MUST_CHECK mv_rc agent_ca_pinned(const char *ca_path, int server_state, const char *server,
                                    const unsigned char pin[32]);

/* remember.c: STATE/agents/VM/agent.json, the settings a later start reuses ("" = not set). */
struct agent_saved {
    char server[MV_MAX_URL];
    char listen[80];
    char imds_address[64];
};
/* A missing file leaves *out empty (MV_OK). */
MV_MUST_CHECK mv_rc agent_saved_load(const char *agents_dir, const char *vm,
                                     struct agent_saved *out);
MV_MUST_CHECK mv_rc agent_saved_store(const char *agents_dir, const char *vm,
                                      const struct agent_saved *s, const char *ca_file);
/* env.sh for the VM's workloads (STATE/agents/VM/env.sh; also STATE/env.sh and the CA bundle
 * outside a server's state dir). */
struct agent_env {
    const char *vm, *state_dir, *agents_dir, *env_sh, *bundle;
    const char *ca_file; /* "" if none */
    const char *host;    /* the IMDS address and the port bound */
    int port;
    int server_state;    /* the state dir is a server's (config.json): up owns env.sh */
};
MV_MUST_CHECK mv_rc agent_env_write(const struct agent_env *e);

/* authority.c: one token from the authority. MV_ERR_NOT_FOUND = identity not found (authority
 * 400 invalid_request, or 401/403: node revoked, e.g. the VM was deleted); MV_ERR_BAD_REQUEST =
 * the authority refused the resource; MV_ERR_THROTTLED; MV_ERR_UNAVAILABLE = transport failure
 * or 5xx. */
MV_MUST_CHECK mv_rc agent_authority_token(const struct agent *a, struct http_client *http,
                                          enum agent_sel sel, const char *sel_value,
                                          const char *resource, const char *owner,
                                          struct agent_token *out);
/* The authority's refusal of a bound identity to another caller (its description; also the
 * IMDS reply's, status 400 invalid_request): MV_ERR_FORBIDDEN in the agent. */
#define AGENT_BOUND_REFUSAL "Identity not found: it is bound to other local callers on this VM"

/* The authority's reply as agent_authority_token reads it (pure; tests/fuzz/fuzz_agent_reply.c):
 * status 200 fills out (free with agent_token_free), any other status maps as above. */
MV_MUST_CHECK mv_rc agent_authority_reply(long status, const char *body, size_t len,
                                          struct agent_token *out);

/* token.c (see its opening comment). use(e, now, ctx) is called with a cache entry while mu is
 * held: it must copy what it needs, quickly, and not call into the agent; its result is the
 * request's outcome. */
typedef mv_rc (*agent_token_use)(const struct tcache_entry *e, int64_t now, void *ctx);
/* On the request's loop thread: replies to req with rc (use's result, or the failure) and frees
 * ctx. With req NULL (the agent is stopping) only frees ctx. */
typedef void (*agent_token_done)(http_req *req, mv_rc rc, void *ctx);
/* The fast path: 1 if a FRESH or STALE entry was there (use ran; *rc is its result; a STALE
 * entry's refresh is queued), 0 on a miss. */
int agent_token_cached(struct agent_loop *lp, const struct imds_token_req *r, agent_token_use use,
                       void *ctx, mv_rc *rc);
/* A miss: req is deferred until the authority answers (concurrent misses of a key share one
 * request) or AGENT_MISS_WAIT_MS pass; then done runs on this loop. ctx (heap) is done's. */
void agent_token_defer(struct agent_loop *lp, http_req *req, const struct imds_token_req *r,
                       agent_token_use use, agent_token_done done, void *ctx);
/* Starts the fetcher threads (a->ca_file set); stop joins them; free_all, once the loops are
 * gone too, frees flights and unanswered requests. */
MV_MUST_CHECK mv_rc agent_token_start(struct agent *a);
void agent_token_stop_fetchers(struct agent *a);
void agent_token_free_all(struct agent *a);
/* Copies the VM's ARM id learned so far ("" if none) under mu. */
void agent_vm_resource_id(struct agent *a, char *out, size_t len);

/* Handlers (imds.c, appservice.c) and the router (routes.c). */
void imds_handle_token(http_req *req);
void imds_handle_info(http_req *req);
void imds_handle_versions(http_req *req);
void imds_handle_instance(http_req *req);
void appsvc_handle_token(http_req *req);
void agent_route(http_req *req);
/* The first proxy header the request carries (X-Forwarded-For, Forwarded, X-Real-IP, Via), or
 * NULL; and the Metadata header's count. */
const char *agent_proxy_header(const http_req *req);
/* Sets the IMDS Server header, then an OAuth-shaped error reply. */
void agent_reply_error(http_req *req, int status, const char *error, const char *description);
/* Maps agent_get_token's failure to the IMDS reply (Identity not found, 429, 500). */
void agent_reply_token_rc(http_req *req, mv_rc rc);

/* peer.c: the local caller of a TCP connection (identd's way: the kernel's socket tables). */
#define ST_BIND_CGROUP_MAX 1024 /* a cgroup path the agent reports (the store's ST_BIND_VALUE) */
struct agent_conn {
    int v6;                    /* else the first 4 bytes of the addresses are used */
    unsigned char local[16];   /* the agent's end (getsockname), network order */
    unsigned char peer[16];    /* the caller's end (getpeername) */
    int local_port, peer_port; /* host order */
};
/* Pure: finds, in a /proc/net/tcp or tcp6 text, the caller's end of k (local = k's peer,
 * remote = k's local): MV_OK with its owner uid and socket inode, else MV_ERR_NOT_FOUND. */
MV_MUST_CHECK mv_rc agent_proc_tcp_find(const char *text, size_t len, const struct agent_conn *k,
                                        uint32_t *uid, uint64_t *inode);
struct agent_caller {
    int local;      /* the caller's socket was found in this network namespace's tables */
    uint32_t uid;
    uint64_t inode;
    struct agent_conn conn; /* the connection, as found */
};
/* For an accepted TCP socket: MV_OK (out->local = 1) if the caller is on this host in this
 * network namespace; MV_ERR_NOT_FOUND if not (a remote caller); MV_ERR_UNAVAILABLE if /proc
 * cannot be read. */
MV_MUST_CHECK mv_rc agent_peer_uid(int fd, struct agent_caller *out);
/* The cgroup v2 path the caller's socket belongs to (the cgroup it was created in): from
 * sock_diag's cgroup id and the cgroup2 mount's directories; else from /proc/PID/cgroup of a
 * process holding the socket (scans /proc/PID/fd, which finds only processes the agent may
 * inspect: hidepid, other users without CAP_SYS_PTRACE). MV_OK, MV_ERR_NOT_FOUND,
 * MV_ERR_UNAVAILABLE. */
MV_MUST_CHECK mv_rc agent_peer_cgroup(const struct agent_caller *c, char *out, size_t outlen);

#define AGENT_SERVER_HEADER "IMDS/150.870.65.1325"

#endif
