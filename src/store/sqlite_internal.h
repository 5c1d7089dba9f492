/* sqlite_internal.h: what the files of the SQLite backend share (not part of store.h).
 *
 * Invariants:
 * - One struct store = one sqlite3 connection, used by one thread (SQLITE_OPEN_NOMUTEX).
 * - Every statement is prepared once per connection (SQLITE_PREPARE_PERSISTENT) into the slot
 *   of its enum st_q id and kept until store_close. Each id is used by exactly one function,
 *   which passes its SQL text; the text is only read on the first use.
 * - After every use a statement is reset and its bindings cleared (st_done), so a statement
 *   never holds a read snapshot or a pointer into caller memory between calls. Text and blobs
 *   are bound SQLITE_STATIC for that reason.
 * - All values are bound; no SQL is ever built from input.
 * - Bind failures are remembered on the store and reported by the next st_step, so the code
 *   binding a statement reads straight down. */
#ifndef MV_STORE_SQLITE_INTERNAL_H
#define MV_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* One per cached statement. */
enum st_q {
    ST_Q_BEGIN,
    ST_Q_COMMIT,
    ST_Q_ROLLBACK,
    ST_Q_SAVEPOINT,
    ST_Q_RELEASE,
    ST_Q_ROLLBACK_TO,
    ST_Q_JOB_SAVEPOINT,
    ST_Q_JOB_RELEASE,
    ST_Q_JOB_ROLLBACK_TO,
    ST_Q_GENERATION,
    ST_Q_READ_BEGIN,
    ST_Q_META_GET,
    ST_Q_META_SET,
    ST_Q_PRINCIPAL_PUT,
    ST_Q_PRINCIPAL_GET,
    ST_Q_PRINCIPAL_BY_CLIENT,
    ST_Q_PRINCIPAL_DELETE,
    ST_Q_PRINCIPAL_LIST,
    ST_Q_CRED_ADD,
    ST_Q_CRED_LIST,
    ST_Q_CRED_DELETE,
    ST_Q_FIC_PUT,
    ST_Q_FIC_GET,
    ST_Q_FIC_LIST,
    ST_Q_FIC_DELETE,
    ST_Q_KEY_PUT,
    ST_Q_KEY_LIST,
    ST_Q_KEY_DELETE,
    ST_Q_VM_PUT,
    ST_Q_VM_GET,
    ST_Q_VM_LIST,
    ST_Q_VM_DELETE,
    ST_Q_VM_EXISTS,
    ST_Q_UAI_CLEAR,
    ST_Q_UAI_ADD,
    ST_Q_UAI_LIST,
    ST_Q_BIND_ADD,
    ST_Q_BIND_REMOVE,
    ST_Q_BIND_LIST,
    ST_Q_IDENTITY_PUT,
    ST_Q_IDENTITY_GET,
    ST_Q_IDENTITY_LIST,
    ST_Q_IDENTITY_DELETE,
    ST_Q_NODE_PUT,
    ST_Q_NODE_GET,
    ST_Q_JOIN_PUT,
    ST_Q_JOIN_CONSUME,
    ST_Q_NODE_REVOKE_VM,
    ST_Q_JOIN_PURGE,
    ST_Q_JTI_PRUNE,
    ST_Q_JTI_USE,
    ST_Q_VAULT_PUT,
    ST_Q_VAULT_GET,
    ST_Q_VAULT_LIST,
    ST_Q_VAULT_DELETE,
    ST_Q_RA_PUT,
    ST_Q_RA_GET,
    ST_Q_RA_LIST_ALL,
    ST_Q_RA_LIST_PRINCIPAL,
    ST_Q_RA_LIST_SCOPE,
    ST_Q_RA_LIST_BOTH,
    ST_Q_RA_DELETE,
    ST_Q_SECRET_STATE,
    ST_Q_SECRET_ADD,
    ST_Q_SECRET_GET_LATEST,
    ST_Q_SECRET_CERT_OWNS,
    ST_Q_SECRET_GET_VERSION,
    ST_Q_SECRET_UPDATE,
    ST_Q_SECRET_LIST,
    ST_Q_SECRET_VERSIONS_FIRST,
    ST_Q_SECRET_VERSIONS_AFTER,
    ST_Q_SECRET_SOFT_DELETE,
    ST_Q_SECRET_HARD_DELETE,
    ST_Q_SECRET_GET_DELETED,
    ST_Q_SECRET_LIST_DELETED,
    ST_Q_SECRET_RECOVER,
    ST_Q_SECRET_PURGE,
    ST_Q_SECRET_PURGE_EXPIRED,
    ST_Q_CHECKPOINT_LAST,
    ST_Q_CHECKPOINT_LAST_OF,
    ST_Q_CHECKPOINT_ADD,
    ST_Q_CHECKPOINT_LIST,
    ST_Q_AUDIT_HEAD_PUT,
    ST_Q_AUDIT_HEAD_LIST,
    ST_Q_QUOTA_LEASE,
    ST_Q_QUOTA_PRUNE,
    ST_Q_VKEY_STATE,
    ST_Q_VKEY_ADD,
    ST_Q_VKEY_GET_LATEST,
    ST_Q_VKEY_GET_VERSION,
    ST_Q_VKEY_UPDATE,
    ST_Q_VKEY_LIST,
    ST_Q_VKEY_VERSIONS_FIRST,
    ST_Q_VKEY_VERSIONS_AFTER,
    ST_Q_VKEY_SOFT_DELETE,
    ST_Q_VKEY_HARD_DELETE,
    ST_Q_VKEY_GET_DELETED,
    ST_Q_VKEY_LIST_DELETED,
    ST_Q_VKEY_RECOVER,
    ST_Q_VKEY_PURGE,
    ST_Q_VKEY_PURGE_EXPIRED,
    ST_Q_VKEY_POLICY_PUT,
    ST_Q_VKEY_POLICY_GET,
    ST_Q_VKEY_POLICY_LIST,
    ST_Q_VKEY_POLICY_CLAIM,
    ST_Q_CERT_PUT,
    ST_Q_CERT_GET_LATEST,
    ST_Q_CERT_GET_VERSION,
    ST_Q_CERT_LIST_NAMES,
    ST_Q_CERT_LIST_VERSIONS,
    ST_Q_CERT_MARK,
    ST_Q_CERT_REMOVE,
    ST_Q_CERT_CLAIM,
    ST_Q_COUNT
};

/* The one struct behind store.h's handle. pg is set for a PostgreSQL connection (store.c
 * dispatches every call to pg_*); otherwise the fields below are the SQLite connection. */
struct pg_store;
struct sq_file;
struct store {
    struct pg_store *pg;
    sqlite3 *db;
    sqlite3_stmt *q[ST_Q_COUNT];
    int bind_err; /* first failed sqlite3_bind_* since the last st_step, else SQLITE_OK */
    int64_t quota_pruned; /* window_start of the last prune of quota_leases */
    int64_t jti_pruned; /* when st_assertions.c last pruned expired assertion ids */
    struct sq_file *file; /* the corruption flag of the database file (sqlite.c) */
};

/* The SQLite backend of every store.h function (store.c dispatches here when st->pg is NULL). */
MV_MUST_CHECK mv_rc sq_open(const char *path, struct store **out);
void sq_close(struct store *st);
MV_MUST_CHECK mv_rc sq_begin(struct store *st);
MV_MUST_CHECK mv_rc sq_commit(struct store *st);
void sq_rollback(struct store *st);
MV_MUST_CHECK mv_rc sq_read_begin(struct store *st);
void sq_read_end(struct store *st);
MV_MUST_CHECK mv_rc sq_generation(struct store *st, int64_t *gen);
MV_MUST_CHECK mv_rc sq_health(struct store *st);
MV_MUST_CHECK mv_rc sq_meta_get(struct store *st, const char *key, mv_buf *out);
MV_MUST_CHECK mv_rc sq_meta_set(struct store *st, const char *key, const char *value);
MV_MUST_CHECK mv_rc sq_principal_put(struct store *st, const struct st_principal *p);
MV_MUST_CHECK mv_rc sq_principal_get(struct store *st, const char *id, struct st_principal *out);
MV_MUST_CHECK mv_rc sq_principal_by_client(struct store *st, const char *client_id, struct st_principal *out);
MV_MUST_CHECK mv_rc sq_principal_delete(struct store *st, const char *id);
MV_MUST_CHECK mv_rc sq_principal_list(struct store *st, enum st_principal_kind kind, struct st_principal **out, size_t *n);
MV_MUST_CHECK mv_rc sq_app_credential_add(struct store *st, const struct st_app_credential *c);
MV_MUST_CHECK mv_rc sq_app_credentials(struct store *st, const char *client_id, struct st_app_credential **out, size_t *n);
MV_MUST_CHECK mv_rc sq_app_credentials_delete(struct store *st, const char *client_id);
MV_MUST_CHECK mv_rc sq_fic_put(struct store *st, const struct st_fic *f);
MV_MUST_CHECK mv_rc sq_fic_get(struct store *st, const char *identity, const char *name, struct st_fic *out);
MV_MUST_CHECK mv_rc sq_fic_list(struct store *st, const char *identity, struct st_fic **out, size_t *n);
MV_MUST_CHECK mv_rc sq_fic_delete(struct store *st, const char *identity, const char *name);
MV_MUST_CHECK mv_rc sq_signing_key_put(struct store *st, const struct st_signing_key *k);
MV_MUST_CHECK mv_rc sq_signing_key_delete(struct store *st, const char *kid);
MV_MUST_CHECK mv_rc sq_signing_keys(struct store *st, struct st_signing_key **out, size_t *n);
MV_MUST_CHECK mv_rc sq_vm_put(struct store *st, const struct st_vm *vm);
MV_MUST_CHECK mv_rc sq_vm_get(struct store *st, const char *name, struct st_vm *out);
MV_MUST_CHECK mv_rc sq_vm_list(struct store *st, struct st_vm **out, size_t *n);
MV_MUST_CHECK mv_rc sq_vm_delete(struct store *st, const char *name);
MV_MUST_CHECK mv_rc sq_vm_uai_set(struct store *st, const char *vm, const char *const *names, size_t n);
MV_MUST_CHECK mv_rc sq_binding_add(struct store *st, const struct st_binding *b);
MV_MUST_CHECK mv_rc sq_binding_remove(struct store *st, const struct st_binding *b);
MV_MUST_CHECK mv_rc sq_binding_list(struct store *st, const char *vm, struct st_binding **out,
                                    size_t *n);
MV_MUST_CHECK mv_rc sq_vm_uai_list(struct store *st, const char *vm, char (**names)[ST_NAME], size_t *n);
MV_MUST_CHECK mv_rc sq_identity_put(struct store *st, const struct st_identity *id);
MV_MUST_CHECK mv_rc sq_identity_get(struct store *st, const char *name, struct st_identity *out);
MV_MUST_CHECK mv_rc sq_identity_list(struct store *st, struct st_identity **out, size_t *n);
MV_MUST_CHECK mv_rc sq_identity_delete(struct store *st, const char *name);
MV_MUST_CHECK mv_rc sq_node_put(struct store *st, const struct st_node *n);
MV_MUST_CHECK mv_rc sq_node_get(struct store *st, const char *client_id, struct st_node *out);
MV_MUST_CHECK mv_rc sq_join_put(struct store *st, const char *token_hash, const char *vm, int64_t expires);
MV_MUST_CHECK mv_rc sq_join_consume(struct store *st, const char *token_hash, int64_t now, char vm_out[ST_NAME]);
MV_MUST_CHECK mv_rc sq_node_revoke_vm(struct store *st, const char *vm, int64_t now);
MV_MUST_CHECK mv_rc sq_assertion_use(struct store *st, const char *client_id, const char *jti, int64_t keep_until, int64_t now);
MV_MUST_CHECK mv_rc sq_vault_put(struct store *st, const struct st_vault *v);
MV_MUST_CHECK mv_rc sq_vault_get(struct store *st, const char *name, struct st_vault *out);
MV_MUST_CHECK mv_rc sq_vault_list(struct store *st, struct st_vault **out, size_t *n);
MV_MUST_CHECK mv_rc sq_vault_delete(struct store *st, const char *name);
MV_MUST_CHECK mv_rc sq_role_assignment_put(struct store *st, const struct st_role_assignment *a);
MV_MUST_CHECK mv_rc sq_role_assignment_get(struct store *st, const char *id, struct st_role_assignment *out);
MV_MUST_CHECK mv_rc sq_role_assignment_list(struct store *st, const char *principal_id, const char *scope, struct st_role_assignment **out, size_t *n);
MV_MUST_CHECK mv_rc sq_role_assignment_delete(struct store *st, const char *id);
MV_MUST_CHECK mv_rc sq_key_add(struct store *st, const struct st_key *k);
MV_MUST_CHECK mv_rc sq_key_get(struct store *st, const char *vault, const char *name, const char *version, struct st_key *out);
MV_MUST_CHECK mv_rc sq_key_update(struct store *st, const struct st_key *k);
MV_MUST_CHECK mv_rc sq_key_list(struct store *st, const char *vault, const char *after, size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc sq_key_versions(struct store *st, const char *vault, const char *name, const char *after_version, size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc sq_key_delete(struct store *st, const char *vault, const char *name, int64_t now, int days, struct st_key *out);
MV_MUST_CHECK mv_rc sq_key_get_deleted(struct store *st, const char *vault, const char *name, struct st_key *out);
MV_MUST_CHECK mv_rc sq_key_list_deleted(struct store *st, const char *vault, const char *after, size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc sq_key_recover(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc sq_key_purge(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc sq_key_purge_expired(struct store *st, int64_t now);
MV_MUST_CHECK mv_rc sq_key_policy_put(struct store *st, const struct st_key_policy *p);
MV_MUST_CHECK mv_rc sq_key_policy_get(struct store *st, const char *vault, const char *name, struct st_key_policy *out);
MV_MUST_CHECK mv_rc sq_key_policy_list(struct store *st, struct st_key_policy **out, size_t *n);
MV_MUST_CHECK mv_rc sq_key_policy_claim(struct store *st, const char *vault, const char *name, const char *version);
MV_MUST_CHECK mv_rc sq_secret_add(struct store *st, struct st_secret *s, int unmanaged);
MV_MUST_CHECK mv_rc sq_secret_get(struct store *st, const char *vault, const char *name, const char *version, struct st_secret *out);
MV_MUST_CHECK mv_rc sq_secret_update(struct store *st, const struct st_secret *s);
MV_MUST_CHECK mv_rc sq_secret_list(struct store *st, const char *vault, const char *after, size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc sq_secret_versions(struct store *st, const char *vault, const char *name, const char *after_version, size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc sq_secret_delete(struct store *st, const char *vault, const char *name, int64_t now, int days, int unmanaged, struct st_secret *out);
/* Whether a live certificate owns the secret name in vault (its managed secret). */
MV_MUST_CHECK mv_rc sq_cert_owns(struct store *st, const char *vault, const char *name, int *owned);
MV_MUST_CHECK mv_rc sq_secret_get_deleted(struct store *st, const char *vault, const char *name, struct st_secret *out);
MV_MUST_CHECK mv_rc sq_secret_list_deleted(struct store *st, const char *vault, const char *after, size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc sq_secret_recover(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc sq_secret_purge(struct store *st, const char *vault, const char *name);
MV_MUST_CHECK mv_rc sq_secret_purge_expired(struct store *st, int64_t now);
MV_MUST_CHECK mv_rc sq_cert_put(struct store *st, const struct st_certobj *o);
MV_MUST_CHECK mv_rc sq_cert_get(struct store *st, const char *vault, int kind, const char *name, const char *version, int deleted, struct st_certobj *out);
MV_MUST_CHECK mv_rc sq_cert_list(struct store *st, const char *vault, int kind, const char *name, const char *after, size_t limit, int deleted, struct st_certobj **out, size_t *n);
MV_MUST_CHECK mv_rc sq_cert_mark(struct store *st, const char *vault, const char *name, int64_t deleted, int64_t purge_at);
MV_MUST_CHECK mv_rc sq_cert_claim(struct store *st, const char *vault, const char *name, const char *old_doc, const char *new_doc);
MV_MUST_CHECK mv_rc sq_cert_remove(struct store *st, const char *vault, int kind, const char *name, const char *version);
MV_MUST_CHECK mv_rc sq_checkpoint_add(struct store *st, const char *writer, int64_t records, const char *head_hash, int64_t at, struct st_checkpoint *out);
MV_MUST_CHECK mv_rc sq_checkpoint_list(struct store *st, struct st_checkpoint **out, size_t *n);
MV_MUST_CHECK mv_rc sq_audit_head_put(struct store *st, const struct st_audit_head *h);
MV_MUST_CHECK mv_rc sq_audit_head_list(struct store *st, struct st_audit_head **out, size_t *n);
MV_MUST_CHECK mv_rc sq_quota_lease(struct store *st, const char *vault, int64_t window_start, enum st_quota_kind kind, int64_t want, int64_t limit, int64_t *granted);
MV_MUST_CHECK mv_rc sq_savepoint(struct store *st);
MV_MUST_CHECK mv_rc sq_savepoint_release(struct store *st);
void sq_savepoint_rollback(struct store *st);

/* Corruption (sqlite.c): sq_mark_corrupt records, for every connection of the process to st's
 * database file (an atomic flag they share), that SQLite reported SQLITE_CORRUPT or
 * SQLITE_NOTADB (st_error_at calls it; quick_check at open too) and logs it loudly once; from
 * then on no connection to that file accepts a write (st_prep, sq_begin: MV_ERR_UNAVAILABLE)
 * and sq_health fails on each of them, so /healthz says 503 from every loop and a balancer stops
 * sending traffic. Reads go on where they can. */
void sq_mark_corrupt(struct store *st, const char *what, int src);
int sq_is_corrupt(const struct store *st);

/* Maps an SQLite result code to mv_rc and records the detail (with sqlite3_errmsg) for the log:
 * UNIQUE/PRIMARY KEY constraint -> CONFLICT; FOREIGN KEY constraint (the referenced VM, vault
 * or identity does not exist) -> NOT_FOUND; BUSY/LOCKED (after busy_timeout) -> UNAVAILABLE;
 * anything else -> INTERNAL. */
MV_MUST_CHECK mv_rc st_error_at(struct store *st, int src, const char *what, const char *file,
                                int line);
#define st_error(st, src, what) st_error_at((st), (src), (what), __FILE__, __LINE__)

/* The cached statement for id, prepared from sql on first use. */
MV_MUST_CHECK mv_rc st_prep(struct store *st, enum st_q id, const char *sql, sqlite3_stmt **out);
/* Reset + clear bindings; safe on NULL. Call on every path once a statement was prepared. */
void st_done(sqlite3_stmt *s);

/* Binders (1-based index). A NULL string binds SQL NULL. Failures surface in st_step. */
void st_bind_text(struct store *st, sqlite3_stmt *s, int i, const char *v);
void st_bind_i64(struct store *st, sqlite3_stmt *s, int i, int64_t v);
void st_bind_blob(struct store *st, sqlite3_stmt *s, int i, const void *p, size_t len);

/* One step: MV_OK with *row = 1 (a row) or 0 (done); otherwise the mapped error. */
MV_MUST_CHECK mv_rc st_step(struct store *st, sqlite3_stmt *s, int *row);
/* Steps a statement that returns no rows; *changes (may be NULL) = rows changed. */
MV_MUST_CHECK mv_rc st_run(struct store *st, sqlite3_stmt *s, int64_t *changes);

/* Column readers. st_col_text copies into a fixed field (INTERNAL if it does not fit; NULL
 * reads as ""). st_col_dup returns a malloc'd copy, or NULL for SQL NULL. */
MV_MUST_CHECK mv_rc st_col_text(sqlite3_stmt *s, int col, char *dst, size_t dstlen);
MV_MUST_CHECK mv_rc st_col_dup(sqlite3_stmt *s, int col, char **out);

/* Collects every row of a prepared, bound statement into a new array of elem-sized items
 * (zeroed, then filled by read). On failure the items read so far are released with clear
 * (may be NULL) and freed; *arr = NULL, *n = 0. The statement is left for the caller's
 * st_done. */
typedef mv_rc (*st_read_fn)(sqlite3_stmt *s, void *item);
typedef void (*st_clear_fn)(void *item);
MV_MUST_CHECK mv_rc st_collect(struct store *st, sqlite3_stmt *s, size_t elem, st_read_fn read,
                               st_clear_fn clear, void **arr, size_t *n);

/* The one row a single text key names (NOT_FOUND when absent), read into out (zeroed first,
 * outlen bytes). */
MV_MUST_CHECK mv_rc st_get_by_key(struct store *st, enum st_q id, const char *sql, const char *key,
                                  st_read_fn read, void *out, size_t outlen);
/* Every row of a parameterless SELECT, read into a new array (free with free()). */
MV_MUST_CHECK mv_rc st_list_all(struct store *st, enum st_q id, const char *sql, size_t elem,
                                st_read_fn read, void **arr, size_t *n);
/* Runs a DELETE with a single text key: NOT_FOUND when it removed nothing. */
MV_MUST_CHECK mv_rc st_delete_by_key(struct store *st, enum st_q id, const char *sql, const char *key);

/* Transaction for a multi-statement call: BEGIN IMMEDIATE when the connection is in
 * autocommit, else a SAVEPOINT inside the caller's transaction (store_begin). */
struct st_tx {
    int active;
    int owned; /* 1: we issued BEGIN; 0: savepoint */
};
MV_MUST_CHECK mv_rc st_tx_begin(struct store *st, struct st_tx *tx);
MV_MUST_CHECK mv_rc st_tx_commit(struct store *st, struct st_tx *tx);
/* Rolls back if still active (after a failed step); no-op after st_tx_commit. */
void st_tx_end(struct store *st, struct st_tx *tx);

/* Schema (schema.c). Brings the file to the latest version inside BEGIN IMMEDIATE. */
MV_MUST_CHECK mv_rc st_migrate(struct store *st);

/* Secrets: the shared row reader (st_secrets.c). Column order is ST_SECRET_COLS, then (if
 * with_sealed) the sealed blob. */
#define ST_SECRET_COLS                                                                             \
    "vault, name, version, content_type, tags_json, enabled, nbf, exp, created, updated, "        \
    "deleted, purge_at"
MV_MUST_CHECK mv_rc st_secret_row(sqlite3_stmt *s, int with_sealed, struct st_secret *out);
/* Runs a prepared and bound statement returning ST_SECRET_COLS rows into a new array. */
MV_MUST_CHECK mv_rc st_secret_rows(struct store *st, sqlite3_stmt *s, struct st_secret **out,
                                   size_t *n);
/* Keys (st_vkeys.c): ST_KEY_COLS, then (if with_sealed) the sealed blob. */
#define ST_KEY_COLS                                                                                \
    "vault, name, version, jwk_json, tags_json, enabled, nbf, exp, created, updated, "            \
    "deleted, purge_at, managed"
MV_MUST_CHECK mv_rc st_key_row(sqlite3_stmt *s, int with_sealed, struct st_key *out);
MV_MUST_CHECK mv_rc st_key_rows(struct store *st, sqlite3_stmt *s, struct st_key **out, size_t *n);
/* SQLite LIMIT value for a size_t page size. */
int64_t st_limit(size_t limit);

#endif
