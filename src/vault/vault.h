/* vault.h: the Key Vault data plane (reference §4): requests whose Host is
 * {vault}.{vault_suffix}. Challenge, token validation, RBAC per data action, secrets.
 *
 * The vault sees the server only through its two contexts, which the server builds: a
 * vault_plane, shared read-only by every loop, and a vault_loop per loop thread. */
#ifndef MV_VAULT_VAULT_H
#define MV_VAULT_VAULT_H

#include "http/server.h"
#include "state/state.h"
#include "store/store.h"
#include "token/validate.h"

/* DESIGN §4: the vault accepts tokens for its own challenge resource (vault_plane.vault_resource)
 * or for Azure's, nothing else: the audiences of the vault's token verifier. */
#define VAULT_AZURE_AUDIENCE "https://vault.azure.net"

struct audit;
struct event_base;
struct http_offload;
struct store_snapshot;
struct store_writer;
struct vault_state;

/* What the vault needs of the server. Strings are borrowed and outlive the loops. */
struct vault_plane {
    struct mv_tenant tenant;       /* tenant id (challenge), subscription (resource ids) */
    const char *server_url;        /* the challenge's authority: "https://127.0.0.1:8443" */
    const char *issuer;            /* the issuer named in AKV10032 */
    const char *vault_resource;    /* the challenge's resource: "https://vault.localhost:8443" */
    const char *vault_suffix;      /* "vault.localhost" */
    int throttle_ops;              /* per vault per 10 s; 0 = off */
    int throttle_creates;
    int refused_per_caller;        /* 401/403 per caller per 10 s, then 429; 0 = off */
    const unsigned char *data_key; /* 32 bytes: seals secret values and backups */
    struct store_writer *writer;   /* group commit of durable writes (store/writer.h) */
    struct http_offload *offload;  /* key generation off the loops (http/offload.h); NULL: inline */
    struct audit *audit;           /* NULL: no audit log */
};

/* What one loop thread gives the vault; touched by that thread only. */
struct vault_loop {
    const struct vault_plane *srv;
    struct store *st;              /* the loop's connection */
    struct store_snapshot *snap;   /* read snapshot shared within a loop iteration */
    struct event_base *base;       /* the loop: where deferred writes complete */
    struct token_verifier *tv;     /* over the loop's key set, accepting the audiences above */
    struct vault_state *vault_state; /* caches (state.c), made by vault_worker_init */
    struct vault_keycache *keycache; /* parsed private keys (keyops.c), made on first use */
};

/* If host is NAME.{suffix}, copies NAME into name (lower-case) and returns 1. */
int vault_host_match(const struct vault_plane *srv, const char *host, char *name, size_t len);
void vault_handle(struct vault_loop *w, http_req *req, const char *vault_name);
/* The largest body a vault request may carry (raw request-target): restore's blob, else a
 * set-secret body. Applied before the body is read (http_limits_fn). */
size_t vault_body_cap(enum http_method m, const char *target);
/* Per-loop state (token cache, vault rows, RBAC), in w->vault_state. */
MV_MUST_CHECK mv_rc vault_worker_init(struct vault_loop *w);
void vault_worker_free(struct vault_loop *w);
/* Performs the due Rotate actions of every key rotation policy (keyrot.c); one loop of each
 * server calls it every VAULT_ROTATION_TICK_SECS. With several servers on one store, each due
 * rotation happens once (claimed in the store first). */
#define VAULT_ROTATION_TICK_SECS 5
void vault_key_rotation_tick(const struct vault_plane *srv, struct store *st, int64_t now);
/* Renews the certificates whose policy (issuer Self) has a due AutoRenew lifetime action
 * (certs.c; docs/certificates.md "Auto-renewal"): called with the rotation tick. */
void vault_cert_renewal_tick(const struct vault_plane *srv, struct store *st, int64_t now);

#endif
