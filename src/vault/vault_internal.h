/* vault_internal.h: what the files of src/vault/ share, and the pure helpers the unit tests call
 * (tests/unit/test_vault_parse.c). Not for use outside src/vault/.
 *
 * A request flows through route.c (vault_handle): service headers, authentication (auth.c),
 * vault lookup (state.c caches), api-version (params.c), throttle (throttle.c), route table,
 * parameter checks, RBAC (auth.c), then one handler in secrets.c / deleted.c / backup.c. Every
 * reply goes through the helpers of reply.c so the audit record at the end knows the status. */
#ifndef MV_VAULT_INTERNAL_H
#define MV_VAULT_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/limits.h"
#include "store/store.h"
#include "token/validate.h"
#include "vault/vault.h"

#define VAULT_SERVICE_VERSION "1.9.0.0"
#define VAULT_REGION "local"
#define VAULT_LATEST_API "2025-07-01"
#define VAULT_ACTION_PREFIX "Microsoft.KeyVault/vaults/secrets/"
#define VAULT_BACKUP_AAD "secret-backup:v1"
#define VAULT_BACKUP_MAX_B64 (1024 * 1024)       /* restore blob, base64url characters */
#define VAULT_BACKUP_MAX_VERSIONS 500            /* reference §4.2: ≤500 versions per backup */
#define VAULT_MAX_VERSION_SEG 64                 /* a {version} path segment we even look at */
#define VAULT_THROTTLE_WINDOW_SECS 10            /* reference §4.5: limits are per 10 s */
#define VAULT_RECOVERABLE_DAYS_MAX 90

/* ---- params.c: query and path parameters (pure) ---- */
int vault_api_version_ok(const char *v);
/* ^[0-9a-zA-Z-]{1,127}$ (reference §4.1). */
int vault_name_ok(const char *name);
/* "" (latest) or ^[0-9a-zA-Z]{1,32}$. */
int vault_version_ok(const char *v);
/* maxresults: NULL → MV_LIST_DEFAULT_PAGE; else an integer 1..MV_LIST_MAX_PAGE. */
MV_MUST_CHECK mv_rc vault_parse_maxresults(const char *s, size_t *out);
/* $skiptoken = base64url (unpadded) of the last key of a page; decode refuses anything that
 * does not decode to a valid name. */
MV_MUST_CHECK mv_rc vault_skiptoken_encode(const char *key, mv_buf *out);
MV_MUST_CHECK mv_rc vault_skiptoken_decode(const char *tok, char *out, size_t len);
/* "secret:<vault lower>/<name lower>/<version lower>": binds a sealed value to its row. */
MV_MUST_CHECK mv_rc vault_secret_aad(const char *vault, const char *name, const char *version,
                                     char *out, size_t len);

/* ---- body.c: set / update request bodies (pure) ---- */
struct vault_secret_input {
    json_t *root;             /* the parsed document; value/content_type point into it */
    const char *value;        /* NULL if absent */
    size_t value_len;
    const char *content_type; /* NULL if absent */
    char *tags_json;          /* compact JSON object text (malloc'd), NULL if absent */
    int has_tags;
    int has_enabled, enabled;
    int has_nbf, has_exp;
    int64_t nbf, exp;
};
/* Parses and validates a SecretSetParameters (require_value = 1) or SecretUpdateParameters body.
 * On failure returns MV_ERR_BAD_REQUEST and *why is a fixed message safe to send. Free with
 * vault_secret_input_free (which wipes the value) in every case. */
MV_MUST_CHECK mv_rc vault_parse_secret_body(const char *body, size_t len, int require_value,
                                            struct vault_secret_input *out, const char **why);
void vault_secret_input_free(struct vault_secret_input *in);
/* Nesting of [ and { outside strings never exceeds max (jansson has no depth option). */
int vault_json_depth_ok(const char *p, size_t len, int max);
/* tags: object of ≤ MV_SECRET_MAX_TAGS string → string, each ≤ MV_SECRET_MAX_TAG_LEN chars. */
int vault_tags_ok(const json_t *tags);
/* Number of UTF-8 characters (code points) of s[0..len). */
size_t vault_utf8_chars(const char *s, size_t len);
/* Zeroes every string value (recursively) of a document before it is freed. */
void vault_json_wipe(json_t *j);

/* ---- json.c: response shapes (pure) ---- */
struct vault_view {
    const char *url;       /* "https://dev.vault.localhost:8443" as the client addressed us */
    int days;              /* soft-delete retention; 0 = soft delete off */
    int purge_protection;
};
enum {
    VJ_ID_VERSION = 1, /* id ends with /<version> (bundles, version lists) */
    VJ_DELETED = 2,    /* add recoveryId, deletedDate, scheduledPurgeDate */
    VJ_ITEM = 4,       /* keys: the KeyItem shape (kid, no key material) */
    VJ_MANAGED = 8,    /* a certificate's secret: managed: true, and kid unless VJ_ITEM */
};
const char *vault_recovery_level(int days, int purge_protection);
/* SecretBundle / SecretItem / Deleted* without "value". */
MV_MUST_CHECK mv_rc vault_secret_json(const struct st_secret *s, const struct vault_view *v,
                                      unsigned flags, json_t **out);
/* out = {"value":<value>, ...fields of obj}: the value never passes through jansson, so its one
 * copy is out (free with mv_buf_free_secret). */
MV_MUST_CHECK mv_rc vault_json_with_value(const json_t *obj, const char *value, size_t len,
                                          mv_buf *out);
/* The SecretBundle of s with its value, the same bytes as vault_secret_json followed by
 * vault_json_with_value, written without building a jansson object (the GET hot path). out
 * must be empty (its cap is used as is); free it with mv_buf_free_secret. */
MV_MUST_CHECK mv_rc vault_bundle_json(const struct st_secret *s, const struct vault_view *v,
                                      unsigned flags, const char *value, size_t len,
                                      mv_buf *out);
/* Appends s[0..len) as a JSON string literal (quotes included). */
MV_MUST_CHECK mv_rc vault_json_escape(mv_buf *out, const char *s, size_t len);

/* ---- text.c ---- */
/* Joins the strings (a NULL-terminated argument list) into dst[0..cap): all of them, or
 * MV_ERR_LIMIT and dst = "". mv_fmt's contract, without vsnprintf. */
MV_MUST_CHECK mv_rc vault_cat(char *dst, size_t cap, ...) __attribute__((sentinel));
/* Decimal digits of v, written at the end of buf. */
const char *vault_utoa(unsigned long v, char buf[24]);

/* ---- throttle.c (process-wide) ---- */
/* 0 if the request may proceed (and is counted), else the seconds until the window ends (≥1).
 * A limit ≤ 0 disables that counter. st: the loop's connection; when store_shared(st), the
 * count is the installation's (leases from the store), else this process's (st may be NULL).
 * A lease that fails admits the request (fail open). */
int vault_throttle(struct store *st, const char *vault, int is_create, int ops_limit,
                   int creates_limit, int64_t now);
/* Permits leased at a time for a limit: limit / 50, at least 1. */
int vault_throttle_block(int limit);
/* Refused requests per caller (process-wide, per 10 s window, apart from the vault's budget):
 * vault_refusals_over: 0 if caller may still be refused normally, else the seconds until its
 * window ends (it gets 429 instead). vault_refusals_count: counts one refusal of caller, or,
 * when it is already over limit, counts nothing and returns the seconds to the window's end.
 * limit <= 0 = off (always 0). caller: "oid:<oid>" or "ip:<address>" (VAULT_CALLER_MAX). */
#define VAULT_CALLER_MAX 80
int vault_refusals_over(const char *caller, int limit, int64_t now);
int vault_refusals_count(const char *caller, int limit, int64_t now);

/* ---- backup.c ---- */
/* Opens a restore body {"value":"<base64url blob>"} sealed under key (the 32-byte data key)
 * into the checked backup document (*out, to wipe with vault_json_wipe and free). A body that is
 * malformed, does not open or does not hold a valid backup is MV_ERR_BAD_REQUEST (or
 * MV_ERR_LIMIT). Pure (tests/fuzz/fuzz_backup.c). */
MV_MUST_CHECK mv_rc vault_backup_open(const unsigned char *key, const char *body, size_t len,
                                      json_t **out);
struct vault_ctx;
/* The reply of every backup operation (secrets, keys, certificates): plain sealed under aad
 * with the data key, 200 {"value":"<base64url>"}. On an error nothing was sent. */
MV_MUST_CHECK mv_rc vault_backup_reply(struct vault_ctx *c, const char *aad, const void *plain,
                                       size_t len);

/* ---- keymat.c: key material (pure; OpenSSL 3 EVP) ---- */
#include <openssl/evp.h>
int vkey_is_rsa(EVP_PKEY *k);
/* "P-256", "P-384", "P-521", "P-256K", or NULL (RSA, other curves). */
const char *vkey_curve(EVP_PKEY *k);
/* RSA: size 0 (2048), 2048, 3072, 4096; EC: crv NULL (P-256) or one of vkey_curve's names. */
MV_MUST_CHECK mv_rc vkey_generate(int rsa, int size, const char *crv, EVP_PKEY **out,
                                  const char **why);
/* {"kty", "key_ops" (a copy of key_ops, or []), n/e or crv/x/y}: public members only. */
MV_MUST_CHECK mv_rc vkey_public_jwk(EVP_PKEY *k, const char *kty, const json_t *key_ops,
                                    json_t **out);
/* A private RSA or EC JWK (kty RSA/RSA-HSM/EC/EC-HSM); *rsa says which. The private parts must
 * match the public ones. MV_ERR_BAD_REQUEST with *why. */
MV_MUST_CHECK mv_rc vkey_import_jwk(const json_t *jwk, int *rsa, EVP_PKEY **out,
                                    const char **why);
/* base64url (padded or not) member of an object into out (init'd here; a secret). NOT_FOUND if
 * absent, BAD_REQUEST if not base64url. */
MV_MUST_CHECK mv_rc vkey_b64_member(const json_t *o, const char *name, mv_buf *out);
/* PKCS#8 DER (a secret: free_secret) and back. */
MV_MUST_CHECK mv_rc vkey_to_der(EVP_PKEY *k, mv_buf *out);
MV_MUST_CHECK mv_rc vkey_from_der(const void *p, size_t n, EVP_PKEY **out);
/* Sign / verify a digest (RS*, PS* with salt = digest length, ES* as raw r||s). BAD_REQUEST
 * with msg (the 400 text) for an unknown alg, an alg that does not fit the key, or a digest of
 * the wrong length. A signature that does not verify is *valid = 0, MV_OK. sig is init'd. */
MV_MUST_CHECK mv_rc vkey_sign(EVP_PKEY *k, const char *kid, const char *alg,
                              const unsigned char *digest, size_t dlen, mv_buf *sig, char *msg,
                              size_t msglen);
MV_MUST_CHECK mv_rc vkey_verify(EVP_PKEY *k, const char *kid, const char *alg,
                                const unsigned char *digest, size_t dlen,
                                const unsigned char *sig, size_t siglen, int *valid, char *msg,
                                size_t msglen);
/* RSA1_5, RSA-OAEP, RSA-OAEP-256 encrypt (decrypt = 0) or decrypt. out must be init'd. */
MV_MUST_CHECK mv_rc vkey_crypt(EVP_PKEY *k, const char *alg, int decrypt,
                               const unsigned char *in, size_t len, mv_buf *out, char *msg,
                               size_t msglen);

/* keys.c: a KeyCreateParameters / KeyImportParameters / KeyUpdateParameters body. Pure
 * (tests/fuzz/fuzz_keyjwk.c): the pointers point into root; free with vault_key_input_free in
 * every case (it wipes the document: an import body holds a private key). */
struct vault_key_input {
    json_t *root;
    const char *kty, *crv;
    int key_size;
    const json_t *key_ops; /* array of known op names, or NULL */
    const json_t *key;     /* import: the JWK object */
    char *tags_json;
    int has_tags, has_enabled, enabled, has_nbf, has_exp;
    int64_t nbf, exp;
};
MV_MUST_CHECK mv_rc vault_parse_key_body(const char *body, size_t len,
                                         struct vault_key_input *in, const char **why);
void vault_key_input_free(struct vault_key_input *in);

/* keyops.c: an operation body {"alg", "value"} (+ "digest" when verify). Pure
 * (tests/fuzz/fuzz_keyjwk.c); free with vault_key_op_input_free in every case. */
struct vault_key_op_input {
    json_t *root;
    const char *alg;
    mv_buf value, digest; /* decoded base64url */
};
MV_MUST_CHECK mv_rc vault_parse_key_op(const char *body, size_t len, int verify,
                                       struct vault_key_op_input *in, const char **why);
void vault_key_op_input_free(struct vault_key_op_input *in);
/* Frees w's cache of parsed private keys (keyops.c). */
void vault_keycache_free(struct vault_loop *w);
/* ---- certpolicy.c: CertificatePolicy documents (pure) ---- */
struct certs_spec;
struct certs_desc;
/* The policy in (may be NULL) over base (the stored policy for a PATCH, else NULL), validated
 * and with Key Vault's defaults filled in; attributes.updated = now. MV_ERR_BAD_REQUEST with a
 * fixed message in *why. */
MV_MUST_CHECK mv_rc vault_cert_policy_normalize(const json_t *in, const json_t *base, int64_t now,
                                                json_t **out, const char **why);
/* The certs_spec a normalised policy asks for (pointers into policy). */
MV_MUST_CHECK mv_rc vault_cert_policy_spec(const json_t *policy, struct certs_spec *spec);
/* The policy of an imported certificate: its own subject, SANs, EKUs, key usage, validity and
 * key over the given policy (may be NULL), with content_type. */
MV_MUST_CHECK mv_rc vault_cert_policy_from_cert(const struct certs_desc *d, const json_t *given,
                                                const char *content_type, int64_t now,
                                                json_t **out, const char **why);

/* ---- certs.c: the certificate operations ---- */
struct vault_ctx;
void vault_op_cert_create(struct vault_ctx *c);
void vault_op_cert_import(struct vault_ctx *c);
void vault_op_cert_get(struct vault_ctx *c);
void vault_op_cert_update(struct vault_ctx *c);
void vault_op_cert_list(struct vault_ctx *c);
void vault_op_cert_versions(struct vault_ctx *c);
void vault_op_cert_pending_get(struct vault_ctx *c);
void vault_op_cert_pending_cancel(struct vault_ctx *c);
void vault_op_cert_pending_delete(struct vault_ctx *c);
void vault_op_cert_merge(struct vault_ctx *c);
void vault_op_cert_policy_get(struct vault_ctx *c);
void vault_op_cert_policy_update(struct vault_ctx *c);
void vault_op_cert_delete(struct vault_ctx *c);
void vault_op_cert_get_deleted(struct vault_ctx *c);
void vault_op_cert_list_deleted(struct vault_ctx *c);
void vault_op_cert_recover(struct vault_ctx *c);
void vault_op_cert_purge(struct vault_ctx *c);
void vault_op_cert_issuer_get(struct vault_ctx *c);
void vault_op_cert_issuer_put(struct vault_ctx *c);
void vault_op_cert_issuer_delete(struct vault_ctx *c);
void vault_op_cert_issuer_list(struct vault_ctx *c);
void vault_op_cert_contacts_get(struct vault_ctx *c);
void vault_op_cert_contacts_put(struct vault_ctx *c);
void vault_op_cert_contacts_delete(struct vault_ctx *c);
void vault_op_cert_backup(struct vault_ctx *c);
void vault_op_cert_restore(struct vault_ctx *c);
/* Opens a certificate restore body into the checked backup document (wipe and free it);
 * MV_ERR_BAD_REQUEST for anything that does not open or is not a backup. */
MV_MUST_CHECK mv_rc vault_cert_backup_open(const unsigned char *key, const char *body, size_t len,
                                           json_t **out);

/* ---- request context ---- */
struct vault_ctx;
typedef void (*vault_op)(struct vault_ctx *c);

struct vault_route {
    enum http_method method;
    const char *pattern; /* segments; "{n}" = secret name, "{v}" = version, may be empty */
    const char *action;  /* data action (reference §6.2) */
    int is_create;       /* counts toward the create limit (reference §4.5) */
    size_t max_body;     /* 0 = the body is ignored */
    vault_op op;
};

struct vault_ctx {
    http_req *req;
    struct vault_loop *w;
    const char *vault_name;                 /* lower-case, from Host */
    struct st_vault vault;
    struct token_info tok;
    int authenticated;
    char url[MV_MAX_URL];                   /* https://host[:port] as addressed */
    const char *api_version;
    const struct vault_route *route;
    int path_known;                         /* some route matches the path (405 vs 404) */
    char name[MV_SECRET_MAX_NAME + 1];      /* {n} */
    char version[VAULT_MAX_VERSION_SEG + 1];/* {v}; "" = latest */
    int name_bad, version_bad;              /* segment too long to copy */
    char resource[MV_MAX_SCOPE + MV_SECRET_MAX_NAME + 16];
    int status;                             /* status of the reply sent, for the audit */
    int deferred;                           /* the op answers later (and audits then) */
    int audited;                            /* its record is written (or cannot be) */
    char peer[64];                          /* the client's address ("" if unknown) */
};

/* The request's audit record (route.c), written before its reply is sent (reply.c, docs/audit.md
 * "Fail closed"): MV_ERR_UNAVAILABLE if it could not be written, and the reply must then be a
 * 503 instead. Once per request. */
MV_MUST_CHECK mv_rc vault_audit_now(struct vault_ctx *c);
/* The caller a refusal is counted against: "oid:<oid>" with a valid token, else "ip:<peer>". */
void vault_caller(const struct vault_ctx *c, char out[VAULT_CALLER_MAX]);
/* 429 for a caller over its refusals (reply.c), with Retry-After: retry. */
void vault_refused_too_often(struct vault_ctx *c, int retry);
/* After the reply: nothing left to do once vault_audit_now ran (every reply of reply.c). */
void vault_audit(struct vault_ctx *c);

/* A request answered later, from its loop (a secret PUT after its batch commits, a create after
 * its key is generated): a copy of the context that outlives the handler. vault_defer fills d
 * from c (the request deferred with http_defer, vault name and api-version copied) and marks c
 * answered by someone else; the job's completion first calls vault_deferred_resume(d), answers
 * through &d->c, then calls vault_audit(&d->c) and vault_deferred_free(d). vault_deferred_fail
 * answers a job that could not be started. */
struct vault_deferred {
    struct vault_ctx c;
    char vault_name[MV_VAULT_NAME_MAX + 1];
    char api_version[32];
};
MV_MUST_CHECK mv_rc vault_defer(struct vault_ctx *c, struct vault_deferred *d);
void vault_deferred_fail(struct vault_deferred *d, mv_rc rc);
/* A completion runs as its own event of the loop, maybe in an iteration whose read snapshot a
 * GET opened on the loop's connection (store/snapshot.h): it ends that snapshot, so the
 * completion's writes run in their own transaction and see what is committed. */
void vault_deferred_resume(struct vault_deferred *d);
void vault_deferred_free(struct vault_deferred *d);

/* ---- host.c ---- */
MV_MUST_CHECK mv_rc vault_request_url(const http_req *req, char *out, size_t len);

/* ---- reply.c ---- */
void vault_error(struct vault_ctx *c, int status, const char *code, const char *message,
                 const char *inner);
void vault_bad_parameter(struct vault_ctx *c, const char *message);
void vault_rc_error(struct vault_ctx *c, mv_rc rc);
/* 404 SecretNotFound naming <name> or <name>/<version>. */
void vault_secret_not_found(struct vault_ctx *c, const char *name, const char *version);
void vault_reply_json(struct vault_ctx *c, int status, json_t *body); /* steals body */
void vault_reply_body(struct vault_ctx *c, int status, const char *body, size_t len);
struct vault_view vault_view_of(const struct vault_ctx *c);
/* *owned = whether a live certificate named name exists: its secret and key of that name are
 * managed by it and refused to the plain secrets/keys writes (docs/certificates.md). */
MV_MUST_CHECK mv_rc vault_cert_owns(struct vault_ctx *c, const char *name, int *owned);
/* Whether a key of name c->name whose row says managed still belongs to a live certificate (a
 * managed key restored from a backup without its certificate is an ordinary key). */
int vault_managed_key(struct vault_ctx *c, int managed);
/* The same among the soft-deleted certificates (deleted = 1) or the live ones (0). */
MV_MUST_CHECK mv_rc vault_cert_owns_as(struct vault_ctx *c, const char *name, int deleted,
                                       int *owned);
/* For recover and purge of a deleted secret or key: if it is a soft-deleted certificate's,
 * replies 403 (what: "Secret" or "Key"), or the store's error, and returns 1; 0 to go on. */
int vault_deleted_managed_refused(struct vault_ctx *c, const char *what);
/* 403 Forbidden: what ("Secret" or "Key") name is managed by the certificate of that name. */
void vault_managed_forbidden(struct vault_ctx *c, const char *what, const char *name);
/* Whether s is the secret of a certificate version (secrets.c). */
int vault_secret_is_managed(struct vault_ctx *c, const struct st_secret *s);
/* Replies with the bundle of s (no value). */
void vault_reply_secret(struct vault_ctx *c, const struct st_secret *s, unsigned flags);

/* ---- auth.c ---- */
/* 1 if authenticated (c->tok filled); else a 401 (or 5xx) has been sent. */
int vault_authenticate(struct vault_ctx *c);
/* 1 if c->tok.oid may perform c->route->action on c->resource; else a 403 (or 5xx) was sent. */
int vault_authorize(struct vault_ctx *c);

/* ---- state.c: per-worker caches ---- */
struct vault_state;
/* Verified tokens: a hit is an exact match of the token's bytes, not expired at now. */
int vault_state_token_get(struct vault_loop *w, const char *token, size_t len, int64_t now,
                          struct token_info *out);
void vault_state_token_put(struct vault_loop *w, const char *token, size_t len,
                           const struct token_info *info);
/* Vault rows, and RBAC decisions on data actions (rbac_check's rule, from each principal's
 * role assignments read once), valid while the store generation is unchanged. */
MV_MUST_CHECK mv_rc vault_state_vault(struct vault_loop *w, const char *name, struct st_vault *out);
MV_MUST_CHECK mv_rc vault_state_rbac(struct vault_loop *w, const char *oid, const char *action,
                                     const char *resource, int *allowed);

/* ---- seal.c: secret values at rest (DESIGN §5) ---- */
/* Seals pt under the data key with the AAD of (vault, name, version) into out. */
MV_MUST_CHECK mv_rc vault_seal_value(const struct vault_ctx *c, const char *name,
                                     const char *version, const char *pt, size_t len, mv_buf *out);
/* Opens s->sealed into out (a secret: free with mv_buf_free_secret). */
MV_MUST_CHECK mv_rc vault_open_value(const struct vault_ctx *c, const struct st_secret *s,
                                     mv_buf *out);

/* ---- handlers ---- */
void vault_op_set(struct vault_ctx *c);
void vault_op_get(struct vault_ctx *c);
void vault_op_update(struct vault_ctx *c);
void vault_op_list(struct vault_ctx *c);
void vault_op_versions(struct vault_ctx *c);
void vault_op_delete(struct vault_ctx *c);
void vault_op_get_deleted(struct vault_ctx *c);
void vault_op_list_deleted(struct vault_ctx *c);
void vault_op_recover(struct vault_ctx *c);
void vault_op_purge(struct vault_ctx *c);
void vault_op_backup(struct vault_ctx *c);
void vault_op_restore(struct vault_ctx *c);
/* keys.c, keyops.c, keyrot.c: the keys API (docs/keys.md) */
void vault_op_key_create(struct vault_ctx *c);
void vault_op_key_import(struct vault_ctx *c);
void vault_op_key_get(struct vault_ctx *c);
void vault_op_key_update(struct vault_ctx *c);
void vault_op_key_list(struct vault_ctx *c);
void vault_op_key_versions(struct vault_ctx *c);
void vault_op_key_delete(struct vault_ctx *c);
void vault_op_key_get_deleted(struct vault_ctx *c);
void vault_op_key_list_deleted(struct vault_ctx *c);
void vault_op_key_recover(struct vault_ctx *c);
void vault_op_key_purge(struct vault_ctx *c);
void vault_op_key_backup(struct vault_ctx *c);
void vault_op_key_restore(struct vault_ctx *c);
void vault_op_key_sign(struct vault_ctx *c);
void vault_op_key_verify(struct vault_ctx *c);
void vault_op_key_encrypt(struct vault_ctx *c);
void vault_op_key_decrypt(struct vault_ctx *c);
void vault_op_key_wrap(struct vault_ctx *c);
void vault_op_key_unwrap(struct vault_ctx *c);
void vault_op_key_rotate(struct vault_ctx *c);
void vault_op_key_policy_get(struct vault_ctx *c);
void vault_op_key_policy_put(struct vault_ctx *c);
/* keys.c: a new key version's row with key_ops given as a JSON array (vault_key_row's rules). */
#include "vault/keys.h"
MV_MUST_CHECK mv_rc vault_key_row_ops(const unsigned char *data_key, const char *vault,
                                      const char *name, const char *version, EVP_PKEY *pkey,
                                      const char *kty, const json_t *ops,
                                      const struct vault_key_attrs *a, int64_t now,
                                      struct st_key *out);
void vault_reply_key(struct vault_ctx *c, const struct st_key *k, unsigned flags);
/* 409 Conflict / ObjectIsDeletedButRecoverable for the key name. */
void vault_key_conflict_deleted(struct vault_ctx *c, const char *name);
/* keyrot.c: a new version of vault/name made like its latest one (kty, size or curve, key_ops,
 * tags), exp = now + the rotation policy's expiryTime if it has one; the new row in *out. */
MV_MUST_CHECK mv_rc vault_key_rotate(const struct vault_plane *srv, struct store *st,
                                     const char *vault, const char *name, int64_t now,
                                     struct st_key *out);
/* vault_key_rotate with the new key already made (off the loop) when made is not NULL: used
 * if it is still of the latest version's kind (else one is made here); made stays the
 * caller's. */
MV_MUST_CHECK mv_rc vault_key_rotate_made(const struct vault_plane *srv, struct store *st,
                                          const char *vault, const char *name, int64_t now,
                                          EVP_PKEY *made, struct st_key *out);
/* What rotating vault/name's latest version makes: rsa and bits, or the curve (crv). */
MV_MUST_CHECK mv_rc vault_key_rotate_kind(const struct vault_plane *srv, struct store *st,
                                          const char *vault, const char *name, int *rsa,
                                          int *bits, char *crv, size_t crvlen);
/* keybackup.c: opens a key restore body (vault_backup_open's rules; pure). */
MV_MUST_CHECK mv_rc vault_key_backup_open(const unsigned char *key, const char *body, size_t len,
                                          json_t **out);
/* ISO-8601 duration (PnYnMnDTnHnMnS, PnW; Y = 365 d, M = 30 d) in seconds; -1 if invalid. */
int64_t vault_iso_duration(const char *s);
/* 404 KeyNotFound naming <name> or <name>/<version>. */
void vault_key_not_found(struct vault_ctx *c, const char *name, const char *version);
/* The KeyBundle / KeyItem / Deleted* of k (flags: VJ_*; VJ_ITEM = item shape: kid, no key). */
MV_MUST_CHECK mv_rc vault_key_json(const struct st_key *k, const struct vault_view *v,
                                   unsigned flags, json_t **out);
/* list.c: one page of ready items (items stolen); last_key NULL = the last page. */
void vault_reply_items(struct vault_ctx *c, json_t *items, const char *last_key, size_t limit,
                       const char *link_path);

/* list.c: one page {"value":[...],"nextLink":...} of rows fetched with limit + 1. */
void vault_reply_page(struct vault_ctx *c, struct st_secret *rows, size_t n, size_t limit,
                      unsigned flags, const char *link_path, int key_is_version);
/* maxresults and $skiptoken of c->req; replies 400 and returns 0 if invalid. */
int vault_page_params(struct vault_ctx *c, size_t *limit, char *after, size_t after_len,
                      int *has_after);

#endif
