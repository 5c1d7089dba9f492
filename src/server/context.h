/* context.h: what the server process shares read-only across its loop threads (mv_server),
 * and what each loop thread owns (mv_worker). Handlers of the authority, the control plane and
 * the vault all receive an http_req whose ->worker is an mv_worker.
 *
 * Keys are parsed once at start-up (DESIGN §6) and never per request. */
#ifndef MV_SERVER_CONTEXT_H
#define MV_SERVER_CONTEXT_H

#include <openssl/evp.h>
#include <pthread.h>

#include "state/state.h"
#include "store/store.h"

#define MV_MAX_VERIFY_KEYS 8

struct mv_verify_key {
    char kid[32];
    EVP_PKEY *key;
};

struct mv_server {
    struct mv_paths paths;
    struct mv_config cfg;
    char store[PATH_MAX];        /* the store's location (state_store_location) */
    struct mv_tenant tenant;
    char server_url[256];        /* https://127.0.0.1:8443 */
    char issuer[320];            /* https://127.0.0.1:8443/{tid}/ */
    char vault_resource[256];    /* https://vault.localhost:8443 */
    unsigned char data_key[32];
    EVP_PKEY *sign_key;          /* current RS256 signing key */
    char sign_kid[32];
    char *jwks_json;             /* {"keys":[...]} as served at /{tid}/discovery/v2.0/keys */
    struct audit *audit;
    struct store_writer *writer; /* group commit of durable writes (store/writer.h) */
};

struct mv_worker {
    struct mv_server *srv;
    struct store *st;
    struct event_base *base;     /* this worker's loop: where deferred work completes */
    struct store_snapshot *snap; /* read snapshot shared within a loop iteration (store/snapshot.h) */
    int idx;
    /* Public keys this worker validates tokens with, parsed from srv->jwks_json (the same
     * document the authority serves): the resource side of the trust, refreshed on unknown kid. */
    struct mv_verify_key verify[MV_MAX_VERIFY_KEYS];
    size_t n_verify;
    int64_t verify_loaded_ms;
    void *vault_state;           /* vault/: per-thread caches (token cache, throttle) */
    void *authority_state;       /* authority/: per-thread caches (client keys, signer) */
};

#endif
