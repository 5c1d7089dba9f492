/* validate.h: access-token validation on the resource side (vault, control plane).
 *
 * Checks, in this order: size, compact form, header alg in the allowlist (RS256 only), kid
 * present and known (refresh of the key set rate-limited on an unknown kid), signature, iss ==
 * our issuer, tid == our tenant, aud in the verifier's accepted list, exp / nbf with
 * MV_CLOCK_SKEW_SECS, oid present.
 *
 * The keys are the store's signing keys (store_signing_keys), not a document handed down by the
 * authority: a key another server added to a shared store verifies here after a reload. */
#ifndef MV_TOKEN_VALIDATE_H
#define MV_TOKEN_VALIDATE_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "common/result.h"
#include "store/store.h"

#define TOKEN_MAX_KEYS 8

enum token_failure {
    TOKEN_OK = 0,
    TOKEN_MALFORMED,   /* not a JWS, bad JSON, bad alg, no kid */
    TOKEN_BAD_SIGNATURE, /* unknown kid or signature mismatch */
    TOKEN_BAD_ISSUER,
    TOKEN_BAD_TENANT,
    TOKEN_BAD_AUDIENCE,
    TOKEN_EXPIRED,
    TOKEN_NOT_YET_VALID,
};

struct token_info {
    char oid[ST_ID];
    char appid[ST_ID];
    char tid[ST_ID];
    char aud[256];
    char iss[320];
    int64_t exp;
    char kid[32];      /* the key that signed it */
    char hash[65];     /* hex SHA-256 of the token: for caches and the audit log */
};

struct token_key {
    char kid[32];
    EVP_PKEY *key;
};

/* The public keys tokens are verified with, parsed once (DESIGN §6: never per request). One per
 * loop thread, touched by that thread only; zero-initialised it is empty and loads on first use.
 * Free with token_keyset_free. */
struct token_keyset {
    struct token_key keys[TOKEN_MAX_KEYS];
    size_t n;
    int64_t loaded_ms; /* when last (re)loaded; 0 = never */
    int64_t gen;       /* store generation it was loaded at (-1: unknown) */
    int64_t checked_ms; /* when the generation was last compared */
};

/* What one plane accepts, over one loop's key set. Every pointer is borrowed: the strings live
 * as long as the server, keys and st as long as the loop. */
struct token_verifier {
    const char *issuer;           /* "https://127.0.0.1:8443/{tid}/" */
    const char *tenant_id;
    const char *const *audiences; /* NULL-terminated */
    int64_t token_lifetime;       /* seconds (0: MV_TOKEN_LIFETIME_SECS): how long a retired key
                                   * still verifies */
    struct token_keyset *keys;
    struct store *st;             /* where keys reload from: the loop's connection */
};

/* Rebuilds ks from the signing keys of st that still verify tokens (token_key_published). Keys
 * that do not parse or are not RSA are skipped (logged): one bad row must not take the others
 * down. If the store cannot be read, ks keeps its keys. Either way ks->loaded_ms is now. */
MV_MUST_CHECK mv_rc token_keyset_reload(struct token_keyset *ks, struct store *st,
                                        int64_t token_lifetime);
/* 1 if kid is still in tv's key set. At most once per TOKEN_KEYSET_CHECK_MS the store's change
 * generation is compared and the set reloaded when it moved: a key retired on any server (a
 * deleted row) leaves every loop's set within about that long (plus the PostgreSQL feed's
 * delay; and, should the feed stall, once the set is 30 s old). For caches of verified tokens
 * (the vault's), whose hits skip token_validate. */
#define TOKEN_KEYSET_CHECK_MS 1000
int token_keyset_knows(struct token_verifier *tv, const char *kid);
/* Frees the keys; ks is empty again (and loads again on next use). */
void token_keyset_free(struct token_keyset *ks);
/* 1 if a signing key retired at `retired` (0: still signing) may have signed a token that has
 * not expired at now: such keys are published in the JWKS and accepted here. */
int token_key_published(int64_t retired, int64_t now, int64_t token_lifetime);

/* On failure *why says which check failed and info holds what could be read (aud, iss) for the
 * error message. */
MV_MUST_CHECK mv_rc token_validate(struct token_verifier *tv, const char *token, size_t len,
                                   struct token_info *info, enum token_failure *why);
/* The bearer token of an Authorization header value, or NULL if not "Bearer <token>". */
const char *token_from_authorization(const char *header, size_t *len);

#endif
