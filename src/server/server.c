/* server.c: start-up of `mivault server` and the request router.
 *
 * Start-up does every expensive thing once: opens the store, unwraps the data key, loads and
 * parses the signing keys (authority_load_keys), builds the TLS context. Each loop thread then
 * gets its own store connection and vault caches (worker_init). The router is a pure function
 * of Host and path. */
#include "server/server.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "arm/arm.h"
#include "audit/audit.h"
#include "authority/authority.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/secmem.h"
#include "http/reply.h"
#include "http/server.h"
#include "server/context.h"
#include "server/health.h"
#include "store/snapshot.h"
#include "store/writer.h"
#include "http/offload.h"
#include "token/validate.h"
#include "vault/vault.h"

#define PURGE_INTERVAL_SECS 60

struct worker_slot {
    struct mv_worker w; /* first: req->worker points at it and at the slot alike */
    struct event *purge_timer;
    struct event *rotation_timer;
    struct event *rotate_timer; /* the signing-key schedule (loop 0, when configured) */
    struct health_cache health;
};

static void route(http_req *req)
{
    struct mv_worker *w = req->worker;
    char vault[MV_VAULT_NAME_MAX + 1];
    if (strcmp(req->path, HEALTH_PATH) == 0) { /* any Host: the balancer's probe (health.h) */
        req->m_plane = "health";
        req->m_route = HEALTH_PATH;
        store_snapshot_leave(w->snap);
        health_handle(req, w->st, &((struct worker_slot *)(void *)w)->health);
        return;
    }
    if (vault_host_match(&w->srv->vault, req->host, vault, sizeof vault)) {
        req->m_plane = "vault";
        vault_handle(&w->vault, req, vault);
        return;
    }
    store_snapshot_leave(w->snap); /* the control plane and the authority may write */
    if (arm_owns_path(req->path)) {
        req->m_plane = "arm";
        arm_handle(&w->arm, req);
    } else {
        req->m_plane = "authority";
        authority_handle(&w->authority, req);
    }
}

/* The body cap of a request before its body is read: route()'s choice of plane, on the raw
 * head (http_limits_fn). */
static void route_limits(void *worker, const struct http_head *h, struct http_limits *out)
{
    struct mv_worker *w = worker;
    char vault[MV_VAULT_NAME_MAX + 1];
    if (vault_host_match(&w->srv->vault, h->host, vault, sizeof vault)) {
        *out = (struct http_limits){vault_body_cap(h->method, h->target), HTTP_SHAPE_AZURE};
    } else if (arm_owns_path(h->target)) {
        *out = (struct http_limits){MV_MAX_BODY_BYTES, HTTP_SHAPE_AZURE};
    } else {
        *out = (struct http_limits){authority_body_cap(h->target), HTTP_SHAPE_OAUTH};
    }
}

/* Soft-deleted secrets past their scheduled purge date are removed by loop 0 only. */
static void purge_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mv_worker *w = arg;
    store_snapshot_leave(w->snap);
    if (store_secret_purge_expired(w->st, mv_now()) != MV_OK)
        LOG_WARN("purge of expired deleted secrets failed: %s", mv_last_detail());
    if (store_key_purge_expired(w->st, mv_now()) != MV_OK)
        LOG_WARN("purge of expired deleted keys failed: %s", mv_last_detail());
}

/* Due key rotations and certificate renewals (vault_key_rotation_tick, vault_cert_renewal_tick),
 * by loop 0 only. */
static void rotation_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mv_worker *w = arg;
    store_snapshot_leave(w->snap);
    vault_key_rotation_tick(&w->srv->vault, w->st, mv_now());
    vault_cert_renewal_tick(&w->srv->vault, w->st, mv_now());
}

/* The signing-key schedule (signingKeyRotationDays): every server checks ROTATE_FIRST_SECS
 * after it starts and then every ROTATE_INTERVAL_SECS; authority_rotate re-checks the key's
 * age under the store's lock, so of N servers one rotates. Making the key (RSA-2048) holds
 * loop 0 for a moment, once per period. */
#define ROTATE_FIRST_SECS 1
#define ROTATE_INTERVAL_SECS 60
static void rotate_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct worker_slot *s = arg;
    struct mv_worker *w = &s->w;
    int days = w->srv->cfg.signing_key_rotation_days, rotated = 0;
    store_snapshot_leave(w->snap);
    if (authority_rotate(w->st, w->srv->data_key, days, &rotated) != MV_OK)
        LOG_WARN("scheduled signing-key rotation failed: %s", mv_last_detail());
    else if (rotated)
        LOG_INFO("signing key rotated on schedule (every %d days)", days);
    struct timeval tv = {ROTATE_INTERVAL_SECS, 0};
    event_add(s->rotate_timer, &tv);
}

/* The planes' views of this loop: its store connection, snapshot and loop, and a token
 * verifier each over the loop's key set. */
static void wire_planes(struct mv_worker *w)
{
    struct mv_server *srv = w->srv;
    w->vault_tv = (struct token_verifier){
        .issuer = srv->issuer,
        .tenant_id = srv->tenant.tenant_id,
        .audiences = srv->vault_audiences,
        .token_lifetime = srv->cfg.token_lifetime,
        .keys = &w->keys,
        .st = w->st,
    };
    w->arm_tv = w->vault_tv;
    w->arm_tv.audiences = ARM_AUDIENCES;
    w->authority = (struct authority_loop){.srv = &srv->authority, .st = w->st, .base = w->base};
    w->arm = (struct arm_loop){.srv = &srv->arm, .st = w->st, .tv = &w->arm_tv};
    w->vault = (struct vault_loop){.srv = &srv->vault, .st = w->st, .snap = w->snap,
                                   .base = w->base, .tv = &w->vault_tv};
}

static void *worker_init(int idx, struct event_base *base, void *arg)
{
    struct mv_server *srv = arg;
    struct worker_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->w.srv = srv;
    s->w.idx = idx;
    s->w.base = base;
    mv_rc rc = store_open(srv->store, &s->w.st);
    if (rc == MV_OK)
        rc = store_snapshot_new(s->w.st, base, &s->w.snap);
    if (rc == MV_OK) {
        wire_planes(&s->w);
        rc = vault_worker_init(&s->w.vault);
    }
    if (rc == MV_OK)
        rc = audit_loop_attach(srv->audit, base);
    if (rc != MV_OK) {
        LOG_ERROR("worker %d: %s", idx, mv_last_detail());
        vault_worker_free(&s->w.vault);
        store_snapshot_free(s->w.snap);
        store_close(s->w.st);
        free(s);
        return NULL;
    }
    if (idx == 0) {
        s->purge_timer = event_new(base, -1, EV_PERSIST, purge_tick, &s->w);
        struct timeval tv = {PURGE_INTERVAL_SECS, 0};
        if (s->purge_timer)
            event_add(s->purge_timer, &tv);
        s->rotation_timer = event_new(base, -1, EV_PERSIST, rotation_tick, &s->w);
        struct timeval rtv = {VAULT_ROTATION_TICK_SECS, 0};
        if (s->rotation_timer)
            event_add(s->rotation_timer, &rtv);
        if (srv->cfg.signing_key_rotation_days > 0) {
            struct timeval first = {ROTATE_FIRST_SECS, 0};
            s->rotate_timer = event_new(base, -1, 0, rotate_tick, s);
            if (s->rotate_timer)
                event_add(s->rotate_timer, &first);
        }
    }
    return &s->w;
}

static void worker_free(void *p)
{
    struct worker_slot *s = p; /* w is the first member */
    if (!s)
        return;
    if (s->purge_timer)
        event_free(s->purge_timer);
    if (s->rotation_timer)
        event_free(s->rotation_timer);
    if (s->rotate_timer)
        event_free(s->rotate_timer);
    audit_loop_detach(s->w.srv->audit);
    vault_worker_free(&s->w.vault);
    authority_worker_free(&s->w.authority);
    token_keyset_free(&s->w.keys);
    store_snapshot_free(s->w.snap);
    store_close(s->w.st);
    free(s);
}

/* What each plane sees of the server: pointers into srv, which outlives the loops. */
static void planes(struct mv_server *srv)
{
    srv->authority = (struct authority_plane){
        .tenant = srv->tenant,
        .server_url = srv->server_url,
        .issuer = srv->issuer,
        .token_lifetime = srv->cfg.token_lifetime,
        .data_key = srv->data_key,
        .ca_pem = srv->paths.ca_pem,
    };
    srv->arm = (struct arm_plane){
        .tenant = srv->tenant,
        .server_url = srv->server_url,
        .cfg = &srv->cfg,
        .ca_pem = srv->paths.ca_pem,
    };
    srv->vault = (struct vault_plane){
        .tenant = srv->tenant,
        .server_url = srv->server_url,
        .issuer = srv->issuer,
        .vault_resource = srv->vault_resource,
        .vault_suffix = srv->cfg.vault_suffix,
        .throttle_ops = srv->cfg.throttle_ops,
        .throttle_creates = srv->cfg.throttle_creates,
        .refused_per_caller = srv->cfg.refused_per_caller,
        .data_key = srv->data_key,
    };
}

static mv_rc load(struct mv_server *srv, const char *state_dir, const char *listen)
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    struct mv_listen l;
    CHECK(state_paths(state_dir, &srv->paths));
    rc = state_config_load(&srv->paths, &srv->cfg);
    ENSURE_MSG(rc == MV_OK, rc, "no mivault state in %s (run `mivault init` first)", srv->paths.dir);
    if (listen) { /* only where this server listens: every URL still derives from publicUrl */
        CHECK(mv_parse_listen(listen, &l));
        CHECK(mv_copy(srv->cfg.server_host, sizeof srv->cfg.server_host, l.host));
        srv->cfg.server_port = l.port;
    }
    CHECK(state_store_location(&srv->paths, &srv->cfg, srv->store, sizeof srv->store));
    CHECK(store_open(srv->store, &st));
    CHECK(state_tenant(st, &srv->tenant));
    CHECK(state_data_key(&srv->paths, st, srv->data_key));
    CHECK(state_server_url(&srv->cfg, srv->server_url, sizeof srv->server_url));
    CHECK(state_issuer(&srv->cfg, srv->tenant.tenant_id, srv->issuer, sizeof srv->issuer));
    CHECK(state_vault_resource(&srv->cfg, srv->vault_resource, sizeof srv->vault_resource));
    srv->vault_audiences[0] = srv->vault_resource;
    srv->vault_audiences[1] = VAULT_AZURE_AUDIENCE;
    planes(srv);
    CHECK(authority_load_keys(&srv->authority, st));
    CHECK(audit_open(srv->paths.audit_log, &srv->audit));
    srv->authority.audit = srv->arm.audit = srv->vault.audit = srv->audit;
    audit_set_rotation(srv->audit, srv->cfg.audit_max_bytes, srv->cfg.audit_keep);
    CHECK(state_server_id(&srv->paths, 1, srv->server_id));
    CHECK(audit_set_writer(srv->audit, srv->server_id));
    CHECK(state_audit_key(&srv->paths, srv->audit_key));
    CHECK(audit_set_key(srv->audit, srv->audit_key));
out:
    store_close(st);
    return rc;
}

struct server_handle {
    struct mv_server *srv;
    struct http_server *hs;
    SSL_CTX *ssl;
};

void server_stop(struct server_handle *h)
{
    if (!h)
        return;
    /* Loops first (each frees its worker): the writer then finishes what was queued, and
     * completions for loops that are gone are dropped by the writer (their clients are gone
     * with them). The writer stops before the loops' bases are freed. */
    if (h->hs)
        http_server_halt(h->hs);
    if (h->srv) {
        http_offload_stop(h->srv->offload);
        store_writer_stop(h->srv->writer);
        audit_checkpointer_stop(h->srv->checkpointer); /* the last checkpoint: after the loops */
    }
    http_server_free(h->hs);
    SSL_CTX_free(h->ssl);
    if (h->srv) {
        authority_free_keys(&h->srv->authority);
        audit_close(h->srv->audit);
        mv_secmem_free(h->srv, sizeof *h->srv); /* wipes the data and audit keys */
    }
    free(h);
}

mv_rc server_start(const char *state_dir, const char *listen, struct server_handle **out)
{
    mv_rc rc = MV_OK;
    struct server_handle *h = calloc(1, sizeof *h);
    *out = NULL;
    ENSURE(h != NULL, MV_ERR_INTERNAL);
    /* The data key is in here: pages left out of core dumps (docs/security.md). */
    h->srv = mv_secmem_alloc(sizeof *h->srv);
    ENSURE(h->srv != NULL, MV_ERR_INTERNAL);
    struct mv_server *srv = h->srv;
    CHECK(load(srv, state_dir, listen));
    CHECK(http_tls_ctx(srv->paths.server_pem, srv->paths.server_key, &h->ssl));
    struct http_server_cfg hc = {
        .addr = srv->cfg.server_host,
        .port = srv->cfg.server_port,
        .ssl = h->ssl,
        .threads = srv->cfg.threads,
        .max_body = MV_MAX_BODY_BYTES,
        .max_headers = MV_MAX_HEADER_BYTES,
        .timeout_secs = MV_HTTP_TIMEOUT_SECS,
        .max_connections = srv->cfg.max_connections,
        .header_timeout_secs = srv->cfg.header_timeout_secs,
        .body_min_rate = srv->cfg.body_min_rate,
        .limits = route_limits,
        .shape = HTTP_SHAPE_AZURE,
        .handler = route,
        .worker_init = worker_init,
        .worker_free = worker_free,
        .arg = srv,
        .epoll_changelist = 1, /* no dup()ed fds on these loops: 2 epoll_ctl per request, not 4 */
    };
    /* SIGINT/SIGTERM blocked before the first thread starts (each inherits the mask): else the
     * kernel may hand the signal to the writer or the checkpointer, whose default action ends
     * the process at once, with no last checkpoint, instead of http_server_wait's clean stop. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    ENSURE_MSG(pthread_sigmask(SIG_BLOCK, &sigs, NULL) == 0, MV_ERR_INTERNAL, "pthread_sigmask");
    CHECK(store_writer_start(srv->store, &srv->writer));
    CHECK(audit_checkpointer_start(srv->audit, srv->store, srv->server_id, srv->audit_key,
                                   srv->cfg.audit_checkpoint_secs, &srv->checkpointer));
    srv->vault.writer = srv->authority.writer = srv->writer;
    CHECK(http_offload_start(SERVER_OFFLOAD_THREADS, &srv->offload));
    srv->vault.offload = srv->offload;
    CHECK(http_server_start(&hc, &h->hs));
    LOG_INFO("server listening on %s port %d, public URL %s (tenant %s)", srv->cfg.server_host,
             http_server_port(h->hs), srv->server_url, srv->tenant.tenant_id);
    *out = h;
    h = NULL;
out:
    if (rc != MV_OK)
        LOG_ERROR("server: %s", mv_last_detail());
    server_stop(h);
    return rc;
}

mv_rc server_run(const char *state_dir, const char *listen, const struct mv_user *run_as)
{
    mv_rc rc = MV_OK;
    struct server_handle *h = NULL;
    /* Before any thread exists (server_start starts the store writer, the checkpointer and the
     * change feed before http_server_start blocks these in its own thread): every thread
     * inherits the mask, so SIGINT/SIGTERM reach only http_server_wait's signalfd and the stop
     * is clean (queued writes run, the last audit checkpoint is written). Without it the
     * kernel delivered them to one of those threads and the process died on the spot. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    CHECK(server_start(state_dir, listen, &h));
    if (run_as && run_as->set) {
        CHECK(mv_state_handover(h->srv->paths.dir, run_as)); /* the store's -wal, audit.log... */
        CHECK(mv_drop_to(run_as));
    }
    http_server_wait(h->hs);
    LOG_INFO("server stopped");
out:
    server_stop(h);
    return rc;
}
