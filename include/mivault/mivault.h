/* mivault.h: libmivault, the C client of managed identity and Key Vault secrets.
 *
 * It behaves as the official Azure SDKs do, against Azure or against mivault:
 *   - mv_credential gets tokens from the IMDS endpoint of the machine (no credential held by the
 *     caller), exactly as ManagedIdentityCredential does, and caches them per resource;
 *   - mv_secret_client talks to a Key Vault (secrets API 7.5): it learns the token resource from
 *     the vault's 401 challenge, checks that the vault belongs to that resource's domain, and
 *     sends the token.
 *
 * Conventions: every fallible function returns an int from enum mv_status (0 = MV_STATUS_OK);
 * on failure mv_last_error() describes it (thread-local, valid until the next call on the same
 * thread). Strings handed out by the library are freed with mv_free(), which wipes them first
 * (they may hold tokens or secret values). Types are opaque.
 *
 * Threads: an mv_credential may be shared between threads (it locks its cache); an
 * mv_secret_client must be used by one thread at a time. A secret client borrows its credential:
 * free the client before the credential. */
#ifndef MIVAULT_MIVAULT_H
#define MIVAULT_MIVAULT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mv_status {
    MV_STATUS_OK = 0,
    MV_STATUS_ERROR,              /* anything else: bad reply, out of memory, 500 */
    MV_STATUS_BAD_REQUEST,        /* invalid argument, or the service answered 400 */
    MV_STATUS_UNAVAILABLE,        /* cannot reach the endpoint, or 502/503/504 */
    MV_STATUS_IDENTITY_NOT_FOUND, /* IMDS: no managed identity matches ("Identity not found") */
    MV_STATUS_UNAUTHORIZED,       /* 401, or the vault's challenge was refused */
    MV_STATUS_FORBIDDEN,          /* 403 (e.g. ForbiddenByRbac) */
    MV_STATUS_NOT_FOUND,          /* 404 (e.g. SecretNotFound) */
    MV_STATUS_CONFLICT,           /* 409 (e.g. ObjectIsDeletedButRecoverable) */
    MV_STATUS_THROTTLED,          /* 429 */
};

/* "ok", "unavailable", ... for a status value. */
const char *mv_status_name(int status);
/* The last failure on this thread: "<code> (<http status>): <service message>" when the service
 * answered with an error, otherwise a description of what failed. "" after a success. */
const char *mv_last_error(void);
/* Wipes and frees a string returned by the library. NULL is fine. */
void mv_free(char *s);

/* ---- managed-identity credential ---- */

struct mv_credential;

/* endpoint: scheme://host[:port] of the IMDS endpoint; NULL means $AZURE_POD_IDENTITY_AUTHORITY_HOST
 * if set, else http://169.254.169.254 (as the SDKs do). At most one of client_id, object_id,
 * msi_res_id selects a user-assigned identity; all NULL means the system-assigned one. */
int mv_credential_new(const char *endpoint, const char *client_id, const char *object_id,
                      const char *msi_res_id, struct mv_credential **out);
void mv_credential_free(struct mv_credential *cred);
/* A token for resource (an AAD v1 resource such as "https://vault.azure.net"; one trailing
 * "/.default" is stripped, as the SDKs do). Cached until 5 minutes before expiry. *token is
 * freed with mv_free; expires_on (Unix seconds) may be NULL. */
int mv_credential_get_token(struct mv_credential *cred, const char *resource, char **token,
                            int64_t *expires_on);

/* ---- Key Vault secrets ---- */

struct mv_secret_client;

/* Skip the check that the vault's host lies under the challenge resource's domain (the SDKs'
 * verify_challenge_resource=False / disableChallengeResourceVerification). Not recommended. */
#define MV_SECRET_CLIENT_NO_CHALLENGE_CHECK 0x1u

/* vault_url: "https://NAME.vault.azure.net" (https only). ca_file: PEM bundle to trust, NULL
 * for the system store. flags: 0 or MV_SECRET_CLIENT_*. cred is borrowed. */
int mv_secret_client_new(const char *vault_url, struct mv_credential *cred, const char *ca_file,
                         unsigned flags, struct mv_secret_client **out);
void mv_secret_client_free(struct mv_secret_client *sc);

/* Each returns the service's JSON reply text in *json (free with mv_free); json may be NULL when
 * the caller does not need it. */
/* PUT /secrets/{name}: a new version. content_type may be NULL. Reply: SecretBundle with value. */
int mv_secret_set(struct mv_secret_client *sc, const char *name, const char *value,
                  const char *content_type, char **json);
/* GET /secrets/{name}/{version}; version NULL or "" for the latest. */
int mv_secret_get(struct mv_secret_client *sc, const char *name, const char *version, char **json);
/* GET /secrets, following nextLink: one JSON array of every SecretItem. */
int mv_secret_list(struct mv_secret_client *sc, char **json);
/* DELETE /secrets/{name}: DeletedSecretBundle. */
int mv_secret_delete(struct mv_secret_client *sc, const char *name, char **json);
/* POST /deletedsecrets/{name}/recover: SecretBundle (no value). */
int mv_secret_recover(struct mv_secret_client *sc, const char *name, char **json);
/* DELETE /deletedsecrets/{name}: 204, no reply body. */
int mv_secret_purge(struct mv_secret_client *sc, const char *name);
/* POST /secrets/{name}/backup: {"value":"<base64url blob>"}. */
int mv_secret_backup(struct mv_secret_client *sc, const char *name, char **json);
/* POST /secrets/restore with backup_json as returned by mv_secret_backup: SecretBundle. */
int mv_secret_restore(struct mv_secret_client *sc, const char *backup_json, char **json);

/* ---- Key Vault keys (on the same vault client) ---- */

/* POST /keys/{name}/create: kty "RSA" (NULL), "RSA-HSM", "EC", "EC-HSM"; size 0 for the default
 * (RSA 2048); curve NULL for the default (P-256). Reply: KeyBundle (public JWK only). */
int mv_key_create(struct mv_secret_client *sc, const char *name, const char *kty, int size,
                  const char *curve, char **json);
/* GET /keys/{name}/{version}; version NULL or "" for the latest. */
int mv_key_get(struct mv_secret_client *sc, const char *name, const char *version, char **json);
/* GET /keys, following nextLink: one JSON array of every KeyItem. */
int mv_key_list(struct mv_secret_client *sc, char **json);
/* DELETE /keys/{name}: DeletedKeyBundle. */
int mv_key_delete(struct mv_secret_client *sc, const char *name, char **json);
/* POST /keys/{name}/{version}/{op}: op "sign" (value = the digest), "verify" (digest and value =
 * the signature), "encrypt", "decrypt", "wrapkey", "unwrapkey"; alg as Key Vault names them
 * (RS256, PS256, ES256, RSA-OAEP-256, ...); value and digest base64url; version NULL or "" for
 * the latest. Reply: {"kid","value"} or, for verify, {"value": true|false}. */
int mv_key_op(struct mv_secret_client *sc, const char *name, const char *version, const char *op,
              const char *alg, const char *value, const char *digest, char **json);

#ifdef __cplusplus
}
#endif

#endif
