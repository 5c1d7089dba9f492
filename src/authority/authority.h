/* authority.h: the identity authority (DESIGN §4): OIDC discovery, JWKS, the token endpoint
 * (RFC 6749 client_credentials with RFC 7523 private_key_jwt client assertions), node
 * enrollment by one-time join token, and issuing RS256 v1 access tokens (reference §3.2). */
#ifndef MV_AUTHORITY_AUTHORITY_H
#define MV_AUTHORITY_AUTHORITY_H

#include <openssl/evp.h>

#include "common/buf.h"
#include "http/server.h"
#include "state/state.h"
#include "store/store.h"

struct audit;
struct authority_state;

/* What the authority needs of the server, shared read-only by every loop once the keys are
 * loaded (the server builds it; `mivault token mint` too). Strings are borrowed. */
struct event_base;
struct store_writer;

struct authority_plane {
    struct mv_tenant tenant;
    const char *server_url;        /* "https://127.0.0.1:8443": endpoints, assertion audiences */
    const char *issuer;            /* "https://127.0.0.1:8443/{tid}/" */
    int token_lifetime;            /* seconds; 0 = MV_TOKEN_LIFETIME_SECS */
    const unsigned char *data_key; /* 32 bytes: unseals the signing key */
    const char *ca_pem;            /* the CA certificate served at /mivault/ca.pem */
    struct audit *audit;           /* NULL: no audit log */
    /* The group-committing writer (store/writer.h) that records accepted assertion ids, so
     * their fsync is shared by a batch; NULL: recorded on the loop's connection (tests, CLI). */
    struct store_writer *writer;
    /* Owned, set by authority_load_keys and freed by authority_free_keys: */
    EVP_PKEY *sign_key;            /* current RS256 signing key */
    char sign_kid[32];
    char *jwks_json;               /* {"keys":[...]} as served at /{tid}/discovery/v2.0/keys */
};

/* What one loop thread gives the authority. */
struct authority_loop {
    const struct authority_plane *srv;
    struct store *st;                        /* the loop's connection */
    struct event_base *base;                 /* the loop (writer completions run there) */
    struct authority_state *authority_state; /* caches (cache.c), made on first use */
};

/* Routes /{tenant}/... requests (discovery, keys, token, enroll). Replies 404 JSON otherwise. */
void authority_handle(struct authority_loop *w, http_req *req);
/* The largest body an authority request may carry (raw request-target): the token endpoint's
 * form, enrollment's JSON, nothing else. Applied before the body is read (http_limits_fn). */
size_t authority_body_cap(const char *target);

/* Start-up: loads the signing keys from the store (unsealing the current private key with the
 * data key), builds srv->jwks_json. Creates the first signing key if none exists. */
MV_MUST_CHECK mv_rc authority_load_keys(struct authority_plane *srv, struct store *st);
void authority_free_keys(struct authority_plane *srv);
/* Creates and stores a new RS256 signing key (used by init and by rotation). */
MV_MUST_CHECK mv_rc authority_new_signing_key(struct store *st, const unsigned char data_key[32]);

/* Rotation and retirement (docs/operations.md, "Rotating the token-signing key").
 *
 * authority_rotate: a new current key in one transaction under the store's "signing-key" lock,
 * the previous one rotated out (still published, its tokens still valid until they expire).
 * With days > 0 only if the current key is at least that many days old (the schedule:
 * signingKeyRotationDays; every server tries, the lock and the re-check inside it make one of
 * them do it). *rotated: 1 if a key was made.
 *
 * authority_retire_key: removes kid for good (the row and its sealed private key): every
 * server's JWKS, validators and cached tokens drop it within TOKEN_KEYSET_CHECK_MS plus the
 * change feed's delay. Refused with MV_ERR_CONFLICT for the current key (rotate first), and,
 * unless force, while a token it signed may still be unexpired: until rotated-out time + the
 * token lifetime + MV_CLOCK_SKEW_SECS (the latest expiry any server could have issued with it,
 * see token_key_published). NOT_FOUND for an unknown kid. */
MV_MUST_CHECK mv_rc authority_rotate(struct store *st, const unsigned char data_key[32], int days,
                                     int *rotated);
MV_MUST_CHECK mv_rc authority_retire_key(struct store *st, const char *kid, int token_lifetime,
                                         int force);

/* Workload identity federation (federation.c): an extra CA file (PEM) trusted, besides the
 * system store, when fetching external issuers' discovery documents and keys (--trust-ca).
 * Call before the server starts. authority_federation_reset forgets them and the cached keys. */
MV_MUST_CHECK mv_rc authority_trust_ca_add(const char *file);
void authority_federation_reset(void);

/* Frees the loop's authority caches (w->authority_state, made on first use); the server
 * calls it when a loop exits. */
void authority_worker_free(struct authority_loop *w);

/* Issues an access token for principal p and audience resource, signed with srv's current
 * key. mirid may be "" (no xms_mirid). out: compact JWT; *exp_out: its exp. */
MV_MUST_CHECK mv_rc authority_issue(const struct authority_plane *srv, const struct st_principal *p,
                                    const char *resource, mv_buf *out, int64_t *exp_out);

/* Join tokens: a fresh one-time token for vm, "mvj1.<secret>.sha256:<ca_pin>" (format in
 * crypto/join_token.h; ca_pin: SHA-256 of the CA's SubjectPublicKeyInfo). Only the SHA-256 of
 * the secret part is stored. out: JOIN_TOKEN_MAX bytes. */
MV_MUST_CHECK mv_rc authority_join_token(struct store *st, const char *vm, int ttl,
                                         const unsigned char ca_pin[32], char *out);

#endif
