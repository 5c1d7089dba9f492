/* validate.h: access-token validation on the resource side (vault, control plane).
 *
 * Checks, in this order: size, compact form, header alg in the allowlist (RS256 only), kid
 * present and known (refresh of the key set rate-limited on an unknown kid), signature, iss ==
 * our issuer, tid == our tenant, aud in the caller's accepted list, exp / nbf with
 * MV_CLOCK_SKEW_SECS, oid present. */
#ifndef MV_AUTHORITY_VALIDATE_H
#define MV_AUTHORITY_VALIDATE_H

#include "server/context.h"

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
    char hash[65];     /* hex SHA-256 of the token: for caches and the audit log */
};

/* audiences: NULL-terminated list. On failure *why says which check failed and info holds
 * what could be read (aud, iss) for the error message. */
MV_MUST_CHECK mv_rc token_validate(struct mv_worker *w, const char *token, size_t len,
                                   const char *const *audiences, struct token_info *info,
                                   enum token_failure *why);
/* The bearer token of an Authorization header value, or NULL if not "Bearer <token>". */
const char *token_from_authorization(const char *header, size_t *len);
/* Frees the worker's verification keys (w->verify); the server calls it when a worker exits.
 * The keys are loaded again on the next token_validate. */
void token_verify_keys_free(struct mv_worker *w);

#endif
