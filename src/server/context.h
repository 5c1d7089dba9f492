/* context.h: what the server process shares read-only across its loop threads (mv_server),
 * and what each loop thread owns (mv_worker). Requests arrive with an http_req whose ->worker
 * is an mv_worker; the router hands each plane only its own contexts (the *_plane and *_loop
 * structs of authority.h, arm.h, vault.h), built here from the server's.
 *
 * Keys are parsed once at start-up (DESIGN §6) and never per request. */
#ifndef MV_SERVER_CONTEXT_H
#define MV_SERVER_CONTEXT_H

#include <pthread.h>

/* Threads that generate keys for the vault (http/offload.h): two, so one RSA-4096 key does not
 * hold up every other create, and no more: key creation is rare next to reads. */
#define SERVER_OFFLOAD_THREADS 2

#include "arm/arm.h"
#include "authority/authority.h"
#include "state/state.h"
#include "store/store.h"
#include "token/validate.h"
#include "vault/vault.h"

struct mv_server {
    struct mv_paths paths;
    struct mv_config cfg;
    char store[PATH_MAX];        /* the store's location (state_store_location) */
    struct mv_tenant tenant;
    char server_url[256];        /* https://127.0.0.1:8443 */
    char issuer[320];            /* https://127.0.0.1:8443/{tid}/ */
    char vault_resource[256];    /* https://vault.localhost:8443 */
    unsigned char data_key[32];
    unsigned char audit_key[32]; /* the audit trail's HMAC key (state_audit_key) */
    const char *vault_audiences[3]; /* vault_resource, VAULT_AZURE_AUDIENCE */
    struct audit *audit;
    struct audit_checkpointer *checkpointer; /* pins the audit chain head in the store */
    char server_id[ST_ID];  /* STATE/server.id: the writer of this server's audit chain */
    struct store_writer *writer; /* group commit of durable writes (store/writer.h) */
    struct http_offload *offload; /* key generation off the loops (http/offload.h) */
    /* What each plane sees of the above (and the authority's signing keys, which it owns). */
    struct authority_plane authority;
    struct arm_plane arm;
    struct vault_plane vault;
};

struct mv_worker {
    struct mv_server *srv;
    struct store *st;
    struct event_base *base;     /* this worker's loop: where deferred work completes */
    struct store_snapshot *snap; /* read snapshot shared within a loop iteration (store/snapshot.h) */
    int idx;
    /* Public keys this worker validates tokens with (the store's signing keys, reloaded on an
     * unknown kid), and what the vault and the control plane each accept over them. */
    struct token_keyset keys;
    struct token_verifier vault_tv;
    struct token_verifier arm_tv;
    struct authority_loop authority;
    struct arm_loop arm;
    struct vault_loop vault;
};

#endif
