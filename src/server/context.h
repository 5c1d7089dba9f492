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
#include "token/validate.h"

struct mv_server {
    struct mv_paths paths;
    struct mv_config cfg;
    struct mv_tenant tenant;
    char server_url[256];        /* https://127.0.0.1:8443 */
    char issuer[320];            /* https://127.0.0.1:8443/{tid}/ */
    char vault_resource[256];    /* https://vault.localhost:8443 */
    unsigned char data_key[32];
    EVP_PKEY *sign_key;          /* current RS256 signing key */
    char sign_kid[32];
    char *jwks_json;             /* {"keys":[...]} as served at /{tid}/discovery/v2.0/keys */
    const char *vault_audiences[3]; /* DESIGN §4: vault_resource, https://vault.azure.net */
    struct audit *audit;
    struct store_writer *writer; /* group commit of durable writes (store/writer.h) */
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
    void *vault_state;           /* vault/: per-thread caches (token cache, throttle) */
    void *authority_state;       /* authority/: per-thread caches (client keys, signer) */
};

#endif
