/* store.h: the one storage interface of mivault (DESIGN §5), with two backends behind it
 * (store.c dispatches): SQLite (sqlite.c and the st_*.c files; a file in the state dir) and
 * PostgreSQL (pg_*.c; several servers on one database). docs/store.md describes both.
 *
 * A `struct store` is one connection, used by one thread only (one per event loop). Writes are
 * durable when the call returns (SQLite: WAL, synchronous=FULL; PostgreSQL: its COMMIT, with
 * synchronous replication if the cluster has it): acknowledged means on disk.
 *
 * On PostgreSQL a call outside store_begin/commit survives a lost connection or a failover: it
 * reconnects and runs again (for up to 30 s, then MV_ERR_UNAVAILABLE), and every write is
 * idempotent so that a re-run after an unknown commit outcome converges. Inside store_begin a
 * lost connection makes store_commit fail with MV_ERR_UNAVAILABLE (nothing committed, or the
 * outcome is unknown: the caller's request answers 503 and the client retries).
 *
 * Values that must be secret at rest (secret values, private keys) arrive here already sealed
 * (crypto/aead.h); the store never sees plaintext secrets.
 *
 * Conventions: getters fill a caller-owned struct and return MV_ERR_NOT_FOUND when absent;
 * list calls allocate an array (free with free()) and its count; names compare ASCII
 * case-insensitively where Azure does (vault, secret, VM, identity and resource-group names,
 * role-assignment scopes). */
#ifndef MV_STORE_STORE_H
#define MV_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/limits.h"
#include "common/util.h"

struct store;

#define ST_ID (MV_UUID_LEN + 1)
#define ST_NAME (MV_MAX_NAME + 1)
#define ST_SCOPE MV_MAX_SCOPE

/* path: a SQLite file path, or a libpq URL (postgresql://... or postgres://..., multi-host
 * allowed) for the PostgreSQL backend. Creates or migrates the schema. */
MV_MUST_CHECK mv_rc store_open(const char *path, struct store **out);
/* 1 if s names a PostgreSQL database (postgresql:// or postgres://). */
int store_is_url(const char *s);
void store_close(struct store *st);
MV_MUST_CHECK mv_rc store_begin(struct store *st);  /* BEGIN IMMEDIATE */
MV_MUST_CHECK mv_rc store_commit(struct store *st);
void store_rollback(struct store *st);
/* A read transaction around several reads of one request: they see one snapshot, and the WAL
 * read lock (fcntl calls under SQLite's process-wide VFS mutex) is taken once instead of once
 * per statement. Nothing may be written through st until store_read_end. */
MV_MUST_CHECK mv_rc store_read_begin(struct store *st);
void store_read_end(struct store *st);
/* Increases on every change to principals, VMs, identities, role assignments, vaults: caches
 * of RBAC decisions and identity lookups compare it (shared across connections). SQLite: in
 * the same transaction as the change. PostgreSQL: no query per call; a per-process poller of
 * the change log, so another server's change shows within about a second, this process's own
 * at once. */
MV_MUST_CHECK mv_rc store_generation(struct store *st, int64_t *gen);

/* Can this connection serve reads and writes right now? The probe behind GET /healthz, cheap
 * enough to run once a second: a read of the meta table and the write lock taken and given back
 * (SQLite: BEGIN IMMEDIATE + ROLLBACK, waiting at most ST_HEALTH_WAIT_MS for another writer; a
 * PostgreSQL backend: a query that fails on a read-only standby, e.g. SELECT NOT
 * pg_is_in_recovery()). MV_ERR_UNAVAILABLE when it cannot. Call outside any transaction. */
#define ST_HEALTH_WAIT_MS 250
MV_MUST_CHECK mv_rc store_health(struct store *st);

/* 1 if other servers may use this store at the same moment (PostgreSQL: several servers on
 * one database), so that a count kept in one process does not bound the installation; 0 for
 * SQLite, whose supported shape is one process (`mivault up` or one `mivault server`). */
int store_shared(const struct store *st);

/* Inside store_begin/commit: waits for and holds, until the transaction ends, a lock named
 * `name` that every server of the store shares (PostgreSQL: an advisory transaction lock on
 * the name's hash; SQLite: nothing to do, BEGIN IMMEDIATE already excludes other writers). For
 * jobs one server at a time must do (the signing-key schedule, the master-key rewrap). */
MV_MUST_CHECK mv_rc store_xact_lock(struct store *st, const char *name);

/* Small key/value settings (tenant id, subscription id, wrapped data key, ...). */
MV_MUST_CHECK mv_rc store_meta_get(struct store *st, const char *key, mv_buf *out);
MV_MUST_CHECK mv_rc store_meta_set(struct store *st, const char *key, const char *value);

/* ---- principals (service principals: admin, system- and user-assigned identities) ---- */
enum st_principal_kind {
    ST_PRINCIPAL_ADMIN = 1,
    ST_PRINCIPAL_SYSTEM = 2,
    ST_PRINCIPAL_USER = 3,
    ST_PRINCIPAL_APP = 4, /* a service principal (app registration): secrets and certificates */
};
struct st_principal {
    char id[ST_ID];                /* object id (oid/sub) */
    char client_id[ST_ID];         /* appid */
    enum st_principal_kind kind;
    char name[ST_NAME];
    char resource_id[ST_SCOPE];    /* xms_mirid: the VM or the user-assigned identity; "" admin */
    char *public_key_pem;          /* admin only: key its client assertions are verified with */
};
MV_MUST_CHECK mv_rc store_principal_put(struct store *st, const struct st_principal *p);
MV_MUST_CHECK mv_rc store_principal_get(struct store *st, const char *id, struct st_principal *out);
MV_MUST_CHECK mv_rc store_principal_by_client(struct store *st, const char *client_id,
                                              struct st_principal *out);
MV_MUST_CHECK mv_rc store_principal_delete(struct store *st, const char *id);
void st_principal_clear(struct st_principal *p); /* frees public_key_pem */
/* Every principal of one kind, by name then id (free each with st_principal_clear, then free()). */
MV_MUST_CHECK mv_rc store_principal_list(struct store *st, enum st_principal_kind kind,
                                         struct st_principal **out, size_t *n);
void st_principals_free(struct st_principal *p, size_t n);

/* ---- a service principal's credentials (client secrets and certificates) ----
 * A secret is kept only as the SHA-256 of its text (it is 40 random characters: no salt or
 * stretching needed); a certificate by its PEM and its SHA-1 and SHA-256 thumbprints (x5t and
 * x5t#S256 of client assertions, lower-case hex). Removed with their principal. */
enum st_cred_kind { ST_CRED_SECRET = 1, ST_CRED_CERT = 2 };
struct st_app_credential {
    char key_id[ST_ID];            /* GUID */
    char client_id[ST_ID];         /* the app id it belongs to */
    enum st_cred_kind kind;
    char hint[4];                  /* secret: its first 3 characters (Entra's hint) */
    char secret_sha256[65];        /* secret: hex SHA-256; "" for a certificate */
    char thumb_sha1[41];           /* certificate: hex SHA-1 of the DER */
    char thumb_sha256[65];         /* certificate: hex SHA-256 of the DER */
    char *cert_pem;                /* certificate: PEM; NULL for a secret */
    int64_t created, expires;      /* expires 0 = never */
};
MV_MUST_CHECK mv_rc store_app_credential_add(struct store *st, const struct st_app_credential *c);
/* A client's credentials, oldest first. */
MV_MUST_CHECK mv_rc store_app_credentials(struct store *st, const char *client_id,
                                          struct st_app_credential **out, size_t *n);
/* Removes every credential of client_id (MV_OK also when it had none). */
MV_MUST_CHECK mv_rc store_app_credentials_delete(struct store *st, const char *client_id);
void st_app_credentials_free(struct st_app_credential *c, size_t n);

/* ---- federated identity credentials of a user-assigned identity ----
 * Unique per (identity, name) (names case-insensitive) and per (identity, issuer, subject)
 * (byte-exact): put is CONFLICT when another credential of the identity has that pair. Removed
 * with their identity. */
#define ST_FIC_TEXT 601 /* issuer, subject, audience: at most 600 characters (Entra) */
#define ST_FIC_MAX 20   /* per identity (Entra) */
struct st_fic {
    char identity[ST_NAME];
    char name[ST_NAME + 64]; /* Entra allows 3..120 characters */
    char issuer[ST_FIC_TEXT];
    char subject[ST_FIC_TEXT];
    char audience[ST_FIC_TEXT];
    int64_t created;
};
MV_MUST_CHECK mv_rc store_fic_put(struct store *st, const struct st_fic *f); /* upsert on name */
MV_MUST_CHECK mv_rc store_fic_get(struct store *st, const char *identity, const char *name,
                                  struct st_fic *out);
/* An identity's credentials by name (free with free()). */
MV_MUST_CHECK mv_rc store_fic_list(struct store *st, const char *identity, struct st_fic **out,
                                   size_t *n);
MV_MUST_CHECK mv_rc store_fic_delete(struct store *st, const char *identity, const char *name);

/* ---- per-process identity bindings (docs/agent.md "Per-process identities") ----
 * A user-assigned identity of a VM bound to local callers: issued on that VM only to a caller
 * with one of its uids or in one of its cgroups (path prefix). Unique per (vm, identity, kind,
 * value); removed with their VM or identity. */
enum st_binding_kind { ST_BIND_UID = 1, ST_BIND_CGROUP = 2 };
#define ST_BIND_VALUE 1024 /* a cgroup path */
struct st_binding {
    char vm[ST_NAME];
    char identity[ST_NAME];
    int kind;
    char value[ST_BIND_VALUE]; /* decimal uid, or an absolute cgroup v2 path */
    int64_t created;
};
/* Idempotent. */
MV_MUST_CHECK mv_rc store_binding_add(struct store *st, const struct st_binding *b);
/* MV_ERR_NOT_FOUND if there was no such binding. */
MV_MUST_CHECK mv_rc store_binding_remove(struct store *st, const struct st_binding *b);
/* A VM's bindings by identity, kind, value (free with free()). */
MV_MUST_CHECK mv_rc store_binding_list(struct store *st, const char *vm, struct st_binding **out,
                                       size_t *n);

/* ---- token signing keys ---- */
struct st_signing_key {
    char kid[32];
    char *sealed_private_b64; /* aead-sealed PKCS#8 PEM, base64 */
    char *public_pem;
    char *x5c_b64;            /* self-signed cert, standard base64 DER */
    int64_t created;
    int64_t retired;          /* 0 while current; else when it stopped signing */
};
MV_MUST_CHECK mv_rc store_signing_key_put(struct store *st, const struct st_signing_key *k);
/* All keys, newest first. */
MV_MUST_CHECK mv_rc store_signing_keys(struct store *st, struct st_signing_key **out, size_t *n);
/* Removes a key for good (`mivault authority key retire`): it leaves the JWKS and every
 * validator (through the change generation), and its sealed private key is gone.
 * MV_ERR_NOT_FOUND if there is no such kid. */
MV_MUST_CHECK mv_rc store_signing_key_delete(struct store *st, const char *kid);
void st_signing_keys_free(struct st_signing_key *k, size_t n);

/* ---- VMs ---- */
struct st_vm {
    char name[ST_NAME];
    char rg[ST_NAME];
    char vm_id[ST_ID];
    int system_assigned;            /* identity.type includes SystemAssigned */
    char system_principal_id[ST_ID];/* "" if none */
    char resource_id[ST_SCOPE];
    int64_t created;
};
MV_MUST_CHECK mv_rc store_vm_put(struct store *st, const struct st_vm *vm); /* insert or replace */
MV_MUST_CHECK mv_rc store_vm_get(struct store *st, const char *name, struct st_vm *out);
MV_MUST_CHECK mv_rc store_vm_list(struct store *st, struct st_vm **out, size_t *n);
/* Deletes the VM, its user-assigned links, its nodes and its join tokens. */
MV_MUST_CHECK mv_rc store_vm_delete(struct store *st, const char *name);
/* User-assigned identities attached to a VM (by identity name). set replaces the whole list. */
MV_MUST_CHECK mv_rc store_vm_uai_set(struct store *st, const char *vm, const char *const *names, size_t n);
MV_MUST_CHECK mv_rc store_vm_uai_list(struct store *st, const char *vm, char (**names)[ST_NAME], size_t *n);

/* ---- user-assigned identities ---- */
struct st_identity {
    char name[ST_NAME];
    char rg[ST_NAME];
    char principal_id[ST_ID];
    char client_id[ST_ID];
    char resource_id[ST_SCOPE];
    int64_t created;
};
MV_MUST_CHECK mv_rc store_identity_put(struct store *st, const struct st_identity *id);
MV_MUST_CHECK mv_rc store_identity_get(struct store *st, const char *name, struct st_identity *out);
MV_MUST_CHECK mv_rc store_identity_list(struct store *st, struct st_identity **out, size_t *n);
/* Also removes it from every VM's list. */
MV_MUST_CHECK mv_rc store_identity_delete(struct store *st, const char *name);

/* ---- enrolled nodes (host agents) and one-time join tokens ---- */
struct st_node {
    char client_id[ST_ID];
    char vm[ST_NAME];
    char *public_key_pem;
    int64_t created;
};
MV_MUST_CHECK mv_rc store_node_put(struct store *st, const struct st_node *n);
MV_MUST_CHECK mv_rc store_node_get(struct store *st, const char *client_id, struct st_node *out);
void st_node_clear(struct st_node *n);
/* token_hash: hex SHA-256 of the join token (the token itself is never stored). */
MV_MUST_CHECK mv_rc store_join_put(struct store *st, const char *token_hash, const char *vm, int64_t expires);
/* Atomically marks the token used and returns its VM. NOT_FOUND if unknown, used or expired. */
MV_MUST_CHECK mv_rc store_join_consume(struct store *st, const char *token_hash, int64_t now,
                                       char vm_out[ST_NAME]);

/* Removes every node enrolled for vm (its earlier keys: a VM enrolls again with a new one) and
 * join tokens past their expiry (of any VM). */
MV_MUST_CHECK mv_rc store_node_revoke_vm(struct store *st, const char *vm, int64_t now);

/* ---- client assertions accepted (RFC 7523 §3 item 7: replay) ---- */
/* Records that client_id used an assertion with this jti, kept until keep_until (Unix s): MV_OK
 * the first time; MV_ERR_CONFLICT if the pair is recorded and still kept at now (a replay). One
 * write (on PostgreSQL: shared by every server of the database); records past keep_until are
 * pruned by the same call at most every ST_JTI_PRUNE_SECS per connection. */
#define ST_JTI_PRUNE_SECS 60
MV_MUST_CHECK mv_rc store_assertion_use(struct store *st, const char *client_id, const char *jti,
                                        int64_t keep_until, int64_t now);

/* ---- vaults ---- */
struct st_vault {
    char name[ST_NAME];
    char rg[ST_NAME];
    char vault_id[ST_ID];
    int soft_delete_days;      /* 7..90 */
    int purge_protection;
    int64_t created;
};
MV_MUST_CHECK mv_rc store_vault_put(struct store *st, const struct st_vault *v);
MV_MUST_CHECK mv_rc store_vault_get(struct store *st, const char *name, struct st_vault *out);
MV_MUST_CHECK mv_rc store_vault_list(struct store *st, struct st_vault **out, size_t *n);
/* Deletes the vault and all its secrets. */
MV_MUST_CHECK mv_rc store_vault_delete(struct store *st, const char *name);

/* ---- role assignments ---- */
struct st_role_assignment {
    char id[ST_ID];                /* assignment name (GUID) */
    char principal_id[ST_ID];
    char role_id[ST_ID];           /* role definition GUID */
    char scope[ST_SCOPE];          /* as given; matched case-insensitively */
    int64_t created;
};
MV_MUST_CHECK mv_rc store_role_assignment_put(struct store *st, const struct st_role_assignment *a);
MV_MUST_CHECK mv_rc store_role_assignment_get(struct store *st, const char *id, struct st_role_assignment *out);
/* Filters may be NULL. scope filter: assignments whose scope equals it (case-insensitive). */
MV_MUST_CHECK mv_rc store_role_assignment_list(struct store *st, const char *principal_id,
                                               const char *scope, struct st_role_assignment **out,
                                               size_t *n);
MV_MUST_CHECK mv_rc store_role_assignment_delete(struct store *st, const char *id);

/* ---- secrets (one row per version) ---- */
struct st_secret {
    char vault[ST_NAME];
    char name[MV_SECRET_MAX_NAME + 1];   /* as first set (case preserved) */
    char version[MV_VERSION_LEN + 1];
    mv_buf sealed;                       /* aead-sealed value */
    char *content_type;                  /* NULL if none */
    char *tags_json;                     /* JSON object text, NULL if none */
    int enabled;
    int64_t nbf, exp;                    /* 0 = unset */
    int64_t created, updated;
    int64_t deleted;                     /* 0 unless soft-deleted */
    int64_t purge_at;                    /* scheduled purge date when deleted */
};
void st_secret_clear(struct st_secret *s);
void st_secrets_free(struct st_secret *s, size_t n);

/* Adds a version. CONFLICT if the name is soft-deleted in this vault. On success s->name holds
 * the name as stored: an existing secret keeps the spelling it was created with. */
MV_MUST_CHECK mv_rc store_secret_add(struct store *st, struct st_secret *s);
/* store_secret_add for a client's PUT: FORBIDDEN, nothing written, when a live certificate owns
 * the name (its managed secret), checked in the same transaction as the write. */
MV_MUST_CHECK mv_rc store_secret_set(struct store *st, struct st_secret *s);
/* store_secret_set for a job of the group-commit writer: the outcome goes to *out, and on
 * PostgreSQL in a lean batch it is known only once store_commit returned (the statement is
 * queued in the batch's pipeline: BEGIN, every job's statement and COMMIT in one round trip).
 * The return value is MV_OK when queued; s and out must live until the batch is done. */
MV_MUST_CHECK mv_rc store_secret_set_deferred(struct store *st, struct st_secret *s, mv_rc *out);
/* version NULL or "" = latest (most recently created) version. Excludes deleted secrets. */
MV_MUST_CHECK mv_rc store_secret_get(struct store *st, const char *vault, const char *name,
                                     const char *version, struct st_secret *out);
/* Updates content_type, tags_json, enabled, nbf, exp, updated of one version (fields as given
 * in s: the caller merges first). */
MV_MUST_CHECK mv_rc store_secret_update(struct store *st, const struct st_secret *s);
/* Latest version of each live secret, by name (case-insensitive order), names > after
 * (after NULL = from the start), at most limit. Values are not loaded (sealed left empty). */
MV_MUST_CHECK mv_rc store_secret_list(struct store *st, const char *vault, const char *after,
                                      size_t limit, struct st_secret **out, size_t *n);
/* Versions of one live secret ordered by (created, version), after the given version. */
MV_MUST_CHECK mv_rc store_secret_versions(struct store *st, const char *vault, const char *name,
                                          const char *after_version, size_t limit,
                                          struct st_secret **out, size_t *n);
/* Soft delete (purge_at = now + days) or, when days == 0, delete at once. Returns the latest
 * version's row as it is after deletion. unmanaged (a client's DELETE): FORBIDDEN, nothing
 * changed, when a live certificate owns the name, checked in the delete's own transaction under
 * the per-name lock a certificate's write takes too (no window between check and delete). */
MV_MUST_CHECK mv_rc store_secret_delete(struct store *st, const char *vault, const char *name,
                                        int64_t now, int days, int unmanaged, struct st_secret *out);
/* Latest version of a soft-deleted secret. */
MV_MUST_CHECK mv_rc store_secret_get_deleted(struct store *st, const char *vault, const char *name,
                                             struct st_secret *out);
MV_MUST_CHECK mv_rc store_secret_list_deleted(struct store *st, const char *vault, const char *after,
                                              size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc store_secret_recover(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc store_secret_purge(struct store *st, const char *vault, const char *name);
/* Removes soft-deleted secrets whose purge date has passed. */
MV_MUST_CHECK mv_rc store_secret_purge_expired(struct store *st, int64_t now);

/* ---- Key Vault keys (one row per version; the rules of secrets above) ----
 * sealed: the private key (PKCS#8 DER) sealed by the vault (vault/keys.c); jwk_json: the public
 * JWK without kid (kty, key_ops, n/e or crv/x/y); managed: the key of a certificate. */
struct st_key {
    char vault[ST_NAME];
    char name[MV_SECRET_MAX_NAME + 1];   /* as first created (case preserved) */
    char version[MV_VERSION_LEN + 1];
    mv_buf sealed;
    char *jwk_json;
    char *tags_json;                     /* JSON object text, NULL if none */
    int enabled;
    int64_t nbf, exp;                    /* 0 = unset */
    int64_t created, updated;
    int64_t deleted;                     /* 0 unless soft-deleted */
    int64_t purge_at;
    int managed;
};
void st_key_clear(struct st_key *k);
void st_keys_free(struct st_key *k, size_t n);
/* Adds a version. CONFLICT if the name is soft-deleted in this vault (or the version exists). */
MV_MUST_CHECK mv_rc store_key_add(struct store *st, const struct st_key *k);
/* version NULL or "" = latest. Excludes deleted keys. */
MV_MUST_CHECK mv_rc store_key_get(struct store *st, const char *vault, const char *name,
                                  const char *version, struct st_key *out);
/* Updates jwk_json, tags_json, enabled, nbf, exp, updated of one version. */
MV_MUST_CHECK mv_rc store_key_update(struct store *st, const struct st_key *k);
MV_MUST_CHECK mv_rc store_key_list(struct store *st, const char *vault, const char *after,
                                   size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc store_key_versions(struct store *st, const char *vault, const char *name,
                                       const char *after_version, size_t limit,
                                       struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc store_key_delete(struct store *st, const char *vault, const char *name,
                                     int64_t now, int days, struct st_key *out);
MV_MUST_CHECK mv_rc store_key_get_deleted(struct store *st, const char *vault, const char *name,
                                          struct st_key *out);
MV_MUST_CHECK mv_rc store_key_list_deleted(struct store *st, const char *vault, const char *after,
                                           size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc store_key_recover(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc store_key_purge(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc store_key_purge_expired(struct store *st, int64_t now);

/* Rotation policies, one per key name. claimed: the version the last scheduled rotation
 * started from. */
struct st_key_policy {
    char vault[ST_NAME];
    char name[MV_SECRET_MAX_NAME + 1];
    char *policy_json;
    int64_t created, updated;
    char claimed[MV_VERSION_LEN + 1];
};
void st_key_policies_free(struct st_key_policy *p, size_t n);
/* Insert or replace the policy text (created kept on replace). */
MV_MUST_CHECK mv_rc store_key_policy_put(struct store *st, const struct st_key_policy *p);
MV_MUST_CHECK mv_rc store_key_policy_get(struct store *st, const char *vault, const char *name,
                                         struct st_key_policy *out);
/* Every policy of every vault (the rotation scheduler). */
MV_MUST_CHECK mv_rc store_key_policy_list(struct store *st, struct st_key_policy **out, size_t *n);
/* Sets claimed = version unless it already is: MV_OK if this call claimed it, CONFLICT if some
 * other call (maybe another server) did. */
MV_MUST_CHECK mv_rc store_key_policy_claim(struct store *st, const char *vault, const char *name,
                                           const char *version);
/* ---- certificates (docs/certificates.md) ----
 * Everything of a Key Vault certificate lives in one table of objects keyed by (vault, kind,
 * name, version), names and versions compared case-insensitively: the versions of each
 * certificate (kind CERT, its private key sealed), its policy and pending operation (version
 * ""), the vault's issuers (name = issuer) and its contacts (name "", version ""). doc is the
 * JSON text the vault layer owns; the store never parses it. */
enum st_cert_kind {
    ST_CERT_VERSION = 1,
    ST_CERT_POLICY = 2,
    ST_CERT_PENDING = 3,
    ST_CERT_ISSUER = 4,
    ST_CERT_CONTACTS = 5,
};
struct st_certobj {
    char vault[ST_NAME];
    int kind;                            /* enum st_cert_kind */
    char name[MV_SECRET_MAX_NAME + 1];   /* as the row was put (callers keep the first spelling) */
    char version[MV_VERSION_LEN + 1];    /* "" for the one-per-name kinds */
    char *doc;                           /* JSON text */
    mv_buf sealed;                       /* aead-sealed private key; may be empty */
    int64_t created;                     /* orders versions: latest = greatest, then insert order */
    int64_t deleted;                     /* 0 unless soft-deleted */
    int64_t purge_at;
};
void st_certobj_clear(struct st_certobj *o);
void st_certobjs_free(struct st_certobj *o, size_t n);
/* Insert, or replace doc, sealed, deleted and purge_at of the row with the same key (created
 * and the row's name spelling stay). NOT_FOUND if the vault does not exist. */
MV_MUST_CHECK mv_rc store_cert_put(struct store *st, const struct st_certobj *o);
/* One row: version "" or NULL = the latest of (kind, name). deleted = 0: live rows only; 1:
 * soft-deleted rows only. */
MV_MUST_CHECK mv_rc store_cert_get(struct store *st, const char *vault, int kind,
                                   const char *name, const char *version, int deleted,
                                   struct st_certobj *out);
/* name NULL: the latest row of each name of kind, names > after (NULL = from the start), by
 * name; name given: the versions of that name, versions > after, by version. At most limit;
 * live (deleted = 0) or soft-deleted (1) rows. sealed is not loaded. */
MV_MUST_CHECK mv_rc store_cert_list(struct store *st, const char *vault, int kind,
                                    const char *name, const char *after, size_t limit,
                                    int deleted, struct st_certobj **out, size_t *n);
/* Sets deleted/purge_at on every row of name of the kinds VERSION and POLICY (soft delete:
 * deleted = when; recover: 0, 0). NOT_FOUND if there is none. */
MV_MUST_CHECK mv_rc store_cert_mark(struct store *st, const char *vault, const char *name,
                                    int64_t deleted, int64_t purge_at);
/* Replaces the doc of the live POLICY row of name only if it is still old_doc (a compare and
 * swap: with several servers on one store, one of them claims a renewal). CONFLICT if the doc
 * changed (or the row is gone). */
MV_MUST_CHECK mv_rc store_cert_claim(struct store *st, const char *vault, const char *name,
                                     const char *old_doc, const char *new_doc);
/* Deletes the rows of (kind, name) (kind 0: of every kind but ISSUER and CONTACTS), one
 * version or all (version NULL). NOT_FOUND if it removed nothing. */
MV_MUST_CHECK mv_rc store_cert_remove(struct store *st, const char *vault, int kind,
                                      const char *name, const char *version);

/* ---- audit checkpoints (docs/audit.md) ----
 * Each server keeps its own hash-chained audit log; now and then it pins its chain head here.
 * The checkpoints of all servers form one hash chain of their own, in seq order (1, 2, ...
 * without gaps), appended under a lock (PostgreSQL: pg_advisory_xact_lock; SQLite: the write
 * transaction), so a removed, edited or reordered checkpoint breaks it. */
#define ST_HASH_HEX 65 /* 64 hex digits of a SHA-256 and the NUL */
struct st_checkpoint {
    int64_t seq;                /* position in the global checkpoint chain, from 1 */
    char writer[ST_ID];         /* the server (STATE/server.id) whose chain head this pins */
    int64_t records;            /* records in that server's chain since its start */
    char head_hash[ST_HASH_HEX];/* hash of its record number `records` */
    int64_t at;                 /* Unix seconds */
    char prev_hash[ST_HASH_HEX];/* hash of checkpoint seq - 1; 64 zeros for the first */
    char hash[ST_HASH_HEX];     /* store_checkpoint_hash of the fields above */
};
/* The hash a checkpoint carries: hex SHA-256 of its fields joined in a fixed text form
 * ("mivault-audit-checkpoint-1|seq|writer|records|head_hash|at|prev_hash"). */
MV_MUST_CHECK mv_rc store_checkpoint_hash(const struct st_checkpoint *c, char out[ST_HASH_HEX]);
/* Appends a checkpoint of writer's chain head (out: the row as stored). When the writer's
 * newest checkpoint already pins the same (records, head_hash), nothing is added and that one
 * is returned: a re-run after an unknown commit outcome converges. BAD_REQUEST unless writer
 * is a UUID, head_hash 64 lower-case hex digits and records > 0. */
MV_MUST_CHECK mv_rc store_checkpoint_add(struct store *st, const char *writer, int64_t records,
                                         const char *head_hash, int64_t at,
                                         struct st_checkpoint *out);
/* Each writer's chain head (docs/audit.md): the newest (records, hash) the writer's checkpointer
 * saw written and synced, and mac = HMAC-SHA256 under the audit key of
 * "mivault-audit-head-1|writer|records|head_hash" (audit_head_mac), so that only a holder of the
 * master key can move it. One row per writer, updated in place; a head with fewer records than
 * the stored one is ignored (it never goes back). */
struct st_audit_head {
    char writer[ST_ID];
    int64_t records;
    char head_hash[ST_HASH_HEX];
    char mac[ST_HASH_HEX];
    int64_t at;
};
MV_MUST_CHECK mv_rc store_audit_head_put(struct store *st, const struct st_audit_head *h);
/* Every writer's head, by writer (free with free()). */
MV_MUST_CHECK mv_rc store_audit_head_list(struct store *st, struct st_audit_head **out, size_t *n);
/* Every checkpoint, by seq (free with free()). */
MV_MUST_CHECK mv_rc store_checkpoint_list(struct store *st, struct st_checkpoint **out, size_t *n);
/* ---- quota leases: Key Vault's per-vault limits shared by the servers of one store ----
 * A row per (vault, window_start, kind) counts the permits handed out for that window; a server
 * leases them in blocks and spends them locally (vault/throttle.c, docs/ha.md). */
enum st_quota_kind { ST_QUOTA_OPS = 1, ST_QUOTA_CREATES = 2 };
#define ST_QUOTA_KEEP_SECS 300 /* rows of windows older than this are pruned */
/* Atomically grants *granted = min(want, limit - used) permits (0 when none are left) and adds
 * them to used, so the grants of one row never add up to more than limit, whoever asks. The
 * first lease of a newer window on a connection also deletes rows older than
 * ST_QUOTA_KEEP_SECS. One attempt, never retried (unlike every other call): a lost connection is
 * MV_ERR_UNAVAILABLE at once, so the caller decides what a throttle does without its database
 * instead of waiting up to 30 s. A lease lost with its connection may have been counted: that
 * can only make the limit stricter. vault compares case-insensitively. Outside transactions. */
MV_MUST_CHECK mv_rc store_quota_lease(struct store *st, const char *vault, int64_t window_start,
                                      enum st_quota_kind kind, int64_t want, int64_t limit,
                                      int64_t *granted);

#endif
