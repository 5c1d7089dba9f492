/* pg_internal.h: what the files of the PostgreSQL backend share (not part of store.h).
 *
 * Invariants:
 * - One struct pg_store = one libpq connection, used by one thread. It is opened from a libpq
 *   URI (multi-host allowed: postgresql://u@h1:5501,h2:5502/db?target_session_attrs=read-write)
 *   to which pg_conn.c adds keepalive / timeout defaults the URI does not set.
 * - Every statement is prepared once per connection (PQprepare, named by its slot) and run
 *   with PQexecPrepared; all values are parameters, no SQL is ever built from input. A
 *   statement is identified by the address of its SQL literal (one literal per call site).
 * - Every store call runs through pg_run: outside a caller's transaction it opens its own
 *   (writes) or runs in autocommit (reads), and on a lost connection, failover (25006, 57P0x,
 *   08xxx) or serialization failure (40001, 40P01) it reconnects and runs the whole call
 *   again, with backoff, for at most PG_RETRY_SECS. A call whose COMMIT outcome is unknown is
 *   re-run with pg->replay set: every write is written so that re-running it converges to the
 *   state of one run (docs/store.md lists how, per write).
 * - Inside a caller's transaction (store_begin, the writer's batches) a call runs in a
 *   savepoint (not in a lean batch, pg_batch_lean: the writer rolls all of it back and runs
 *   it again with savepoints if a call fails) and is not retried: a lost connection marks the transaction broken and the
 *   caller's store_commit fails with MV_ERR_UNAVAILABLE (the writer re-runs its batch).
 * - A lean batch opens its transaction lazily: BEGIN goes out with the first statement, and
 *   the vault's secret PUTs (pg_queue) are sent without waiting, their results read with the
 *   COMMIT's (pg_pipe_drain): a batch of PUTs is one round trip. Any synchronous statement
 *   first drains what was queued, so results are always read in the order sent.
 * - A COMMIT is never cancelled (no PQcancel anywhere). A notice "canceling wait for
 *   synchronous replication" on COMMIT makes its outcome unknown, as a lost connection does.
 * - Tables the caches depend on log every change into change_log (triggers, pg_schema.c); a
 *   per-process poller (pg_feed.c) turns that into the generation store_generation returns. */
#ifndef MV_STORE_PG_INTERNAL_H
#define MV_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define PG_RETRY_SECS 30     /* total time a call keeps retrying a lost database */
#define PG_MAX_STMTS 96      /* distinct SQL statements of the backend */
#define PG_MAX_PARAMS 16
#define PG_ADVISORY_MIGRATE 0x6d697661756c74LL /* "mivault": pg_advisory_xact_lock key */
#define PG_ADVISORY_CHECKPOINT 0x6d76636b7074LL /* "mvckpt": appends to audit_checkpoints */

enum pg_retry { PG_RETRY_NONE = 0, PG_RETRY_CONN, PG_RETRY_TX };

struct pg_feed;
struct pg_store;

/* A statement queued in a lean batch (pg_queue): called once its result is read, r NULL and
 * rc set when it failed, was never answered, or the pipeline aborted before it. */
typedef void (*pg_queued_fn)(struct pg_store *pg, const PGresult *r, mv_rc rc, void *a, void *b);
struct pg_queued {
    pg_queued_fn done;             /* NULL: only keep */
    void *a, *b;
    PGresult **keep;               /* not NULL: receives a successful result, for PQclear */
};

struct pg_store {
    PGconn *conn;
    char *url;                     /* as given; may hold a password: never logged */
    char hosts[256];               /* "h1:5501,h2:5502" for error messages */
    const char *stmts[PG_MAX_STMTS]; /* prepared on this connection, by SQL literal address */
    int nstmts;
    int in_tx;                     /* inside store_begin ... store_commit */
    int tx_broken;                 /* the connection died inside the caller's transaction */
    int touched;                   /* this transaction changed a change-feed table */
    int touched_secrets;           /* ... or a secret (the secrets generation, pg_feed.c) */
    struct pg_secret_cache *scache; /* recent secret reads of this connection (pg_secrets.c) */
    enum pg_retry retry;           /* class of the last failure */
    int commit_unknown;            /* notice: the sync-rep wait of a COMMIT was cancelled */
    int in_commit;                 /* a COMMIT is in flight (for the notice receiver) */
    int sql_error;                 /* a statement failed since the flag was cleared */
    int replay;                    /* this attempt re-runs a call whose commit is unknown */
    int lean;                      /* writer: calls in the transaction take no savepoint */
    int begin_pending;             /* writer: BEGIN goes out with the first statement (pg_exec) */
    int pipe_begin;                /* the open pipeline holds that BEGIN */
    struct pg_queued *queued;      /* the open pipeline's statements (pg_queue), in order */
    int nqueued, cap_queued;
    int batch_attempt;             /* writer: how often the current batch was re-run */
    int64_t batch_deadline_ms;
    int64_t quota_pruned;          /* window_start of the last prune of quota_leases */
    struct pg_feed *feed;
    int64_t jti_pruned;            /* when pg_assertions.c last pruned expired assertion ids */
};

/* Parameters of one statement: text values (NULL = SQL NULL) or binary bytea. */
struct pg_params {
    int n;
    const char *v[PG_MAX_PARAMS];
    int len[PG_MAX_PARAMS];
    int fmt[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
};
void pp_text(struct pg_params *pp, const char *v);
void pp_i64(struct pg_params *pp, int64_t v);
void pp_bytea(struct pg_params *pp, const void *p, size_t len);

/* Runs a prepared statement. *res (if res is not NULL) receives the result for PQclear;
 * *changes (may be NULL) the rows affected. Errors are classified into pg->retry and mapped:
 * 23505 unique -> CONFLICT, 23503 foreign key -> NOT_FOUND, connection/failover -> UNAVAILABLE,
 * else INTERNAL, with the detail in mv_last_detail. */
MV_MUST_CHECK mv_rc pg_exec(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                            PGresult **res, int64_t *changes);
/* A statement without parameters or result (BEGIN, SAVEPOINT ...). */
MV_MUST_CHECK mv_rc pg_simple(struct pg_store *pg, const char *sql);
/* In a lean batch's transaction: sends the prepared statement without waiting (libpq pipeline
 * mode, with the pending BEGIN before it); done(pg, result, rc, a, b) runs when the result is
 * read, which is at the COMMIT (pg_pipe_drain with "COMMIT": the whole batch is one round trip)
 * or before the next synchronous statement. The caller's a and b must live until then. */
MV_MUST_CHECK mv_rc pg_queue(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                             pg_queued_fn done, void *a, void *b);
/* Ends the open pipeline: sends final (NULL or "COMMIT") and a sync, reads every result in
 * order (each queued statement's done runs), leaves pipeline mode. MV_OK when BEGIN, every
 * queued statement and final succeeded (a COMMIT answered ROLLBACK is INTERNAL); otherwise the
 * first failure, classified as pg_exec does. Nothing to do (MV_OK) when no pipeline is open. */
MV_MUST_CHECK mv_rc pg_pipe_drain(struct pg_store *pg, const char *final);

/* Column readers on text-format results. */
MV_MUST_CHECK mv_rc pg_col_text(const PGresult *r, int row, int col, char *dst, size_t dstlen);
MV_MUST_CHECK mv_rc pg_col_dup(const PGresult *r, int row, int col, char **out);
int64_t pg_col_i64(const PGresult *r, int row, int col);
/* bytea (text format: \x followed by hex) into a fresh buffer. */
MV_MUST_CHECK mv_rc pg_col_bytea(const PGresult *r, int row, int col, mv_buf *out);

typedef mv_rc (*pg_read_fn)(const PGresult *r, int row, void *item);
typedef void (*pg_clear_fn)(void *item);
/* Every row of a result into a new zeroed array of elem-sized items, each filled by read;
 * on failure the items so far are cleared (clear may be NULL) and freed. */
MV_MUST_CHECK mv_rc pg_collect(const PGresult *r, size_t elem, pg_read_fn read, pg_clear_fn clear,
                               void **arr, size_t *n);

typedef mv_rc (*pg_fn)(struct pg_store *pg, void *arg);

/* Shared call shapes (pg_rows.c), each run through pg_run. get: the one row a text key names
 * (NOT_FOUND when absent) read into out (zeroed first; clear releases a half-read row).
 * delete: a DELETE with one text key, NOT_FOUND when it removed nothing, except when the call
 * is a re-run after an unknown commit ("already gone" is then success). touches: the table
 * is in the change feed. list: every row of a parameterless SELECT into a new array. */
MV_MUST_CHECK mv_rc pg_get_by_key(struct pg_store *pg, const char *sql, const char *key,
                                  pg_read_fn read, pg_clear_fn clear, void *out, size_t outlen);
MV_MUST_CHECK mv_rc pg_delete_by_key(struct pg_store *pg, const char *sql, const char *key,
                                     int touches);
MV_MUST_CHECK mv_rc pg_list_all(struct pg_store *pg, const char *sql, size_t elem, pg_read_fn read,
                                pg_clear_fn clear, void **arr, size_t *n);
/* An upsert-shaped write of one statement (idempotent by construction). */
MV_MUST_CHECK mv_rc pg_write_one(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                                 int touches);

/* One call of the store, run (and re-run) by pg_run. */
/* PG_READ: autocommit. PG_WRITE: BEGIN ... COMMIT around the call. PG_WRITE1: a call of one
 * statement, run in autocommit (one round trip; its own implicit transaction). */
enum pg_mode { PG_READ = 0, PG_WRITE = 1, PG_WRITE1 = 2 };
MV_MUST_CHECK mv_rc pg_run(struct pg_store *pg, enum pg_mode mode, pg_fn fn, void *arg);

/* Connection (pg_conn.c). */
MV_MUST_CHECK mv_rc pg_connect(struct pg_store *pg);
void pg_disconnect(struct pg_store *pg);
void pg_pipe_free(struct pg_store *pg); /* at close */
/* libpq keyword/value arrays: the URL expanded plus our defaults; free with pg_conn_params_free. */
MV_MUST_CHECK mv_rc pg_conn_params(const char *url, const char ***kw, const char ***val,
                                   char *hosts, size_t hostslen);
void pg_conn_params_free(const char **kw, const char **val);
int64_t pg_now_ms(void);
void pg_sleep_ms(int64_t ms);

/* Schema (pg_schema.c): creates or migrates under an advisory lock. */
MV_MUST_CHECK mv_rc pg_migrate(struct pg_store *pg);

/* Change feed (pg_feed.c): one poller per URL per process, shared by its connections. */
MV_MUST_CHECK mv_rc pg_feed_attach(const char *url, struct pg_feed **out);
void pg_feed_detach(struct pg_feed *f);
int64_t pg_feed_generation(struct pg_feed *f);
void pg_feed_bump(struct pg_feed *f); /* after a commit of our own that touched the feed */
void pg_feed_bump_secrets(struct pg_feed *f); /* ... that changed secrets */
int64_t pg_feed_secrets_generation(struct pg_feed *f);
/* After a commit of ours: bumps what it touched and clears the flags (pg_tx.c). */
void pg_feed_committed(struct pg_store *pg);
/* pg_secrets.c: frees the connection's secret cache (pg_close). */
void pg_secret_cache_free(struct pg_store *pg);

/* Shared secret-row reader (pg_secrets.c): PG_SECRET_COLS, then sealed if with_sealed. */
#define PG_SECRET_COLS                                                                             \
    "vault, name, version, content_type, tags_json, enabled, nbf, exp, created, updated, "        \
    "deleted, purge_at"
#define PG_KEY_COLS                                                                                \
    "vault, name, version, jwk_json, tags_json, enabled, nbf, exp, created, updated, "            \
    "deleted, purge_at, managed"
MV_MUST_CHECK mv_rc pg_key_row(const PGresult *r, int row, int with_sealed, struct st_key *out);
MV_MUST_CHECK mv_rc pg_secret_row(const PGresult *r, int row, int with_sealed, struct st_secret *out);

/* The PostgreSQL backend of every store.h function (store.c dispatches here). */
MV_MUST_CHECK mv_rc pg_open(const char *url, struct pg_store **out);
void pg_close(struct pg_store *pg);
MV_MUST_CHECK mv_rc pg_begin(struct pg_store *pg);
MV_MUST_CHECK mv_rc pg_commit(struct pg_store *pg);
void pg_rollback(struct pg_store *pg);
MV_MUST_CHECK mv_rc pg_read_begin(struct pg_store *pg);
void pg_read_end(struct pg_store *pg);
MV_MUST_CHECK mv_rc pg_generation(struct pg_store *pg, int64_t *gen);
MV_MUST_CHECK mv_rc pg_health(struct pg_store *pg);
MV_MUST_CHECK mv_rc pg_meta_get(struct pg_store *pg, const char *key, mv_buf *out);
MV_MUST_CHECK mv_rc pg_meta_set(struct pg_store *pg, const char *key, const char *value);
MV_MUST_CHECK mv_rc pg_principal_put(struct pg_store *pg, const struct st_principal *p);
MV_MUST_CHECK mv_rc pg_principal_get(struct pg_store *pg, const char *id, struct st_principal *out);
MV_MUST_CHECK mv_rc pg_principal_by_client(struct pg_store *pg, const char *client_id, struct st_principal *out);
MV_MUST_CHECK mv_rc pg_principal_delete(struct pg_store *pg, const char *id);
MV_MUST_CHECK mv_rc pg_principal_list(struct pg_store *pg, enum st_principal_kind kind, struct st_principal **out, size_t *n);
MV_MUST_CHECK mv_rc pg_app_credential_add(struct pg_store *pg, const struct st_app_credential *c);
MV_MUST_CHECK mv_rc pg_app_credentials(struct pg_store *pg, const char *client_id, struct st_app_credential **out, size_t *n);
MV_MUST_CHECK mv_rc pg_app_credentials_delete(struct pg_store *pg, const char *client_id);
MV_MUST_CHECK mv_rc pg_fic_put(struct pg_store *pg, const struct st_fic *f);
MV_MUST_CHECK mv_rc pg_fic_get(struct pg_store *pg, const char *identity, const char *name, struct st_fic *out);
MV_MUST_CHECK mv_rc pg_fic_list(struct pg_store *pg, const char *identity, struct st_fic **out, size_t *n);
MV_MUST_CHECK mv_rc pg_fic_delete(struct pg_store *pg, const char *identity, const char *name);
MV_MUST_CHECK mv_rc pg_signing_key_put(struct pg_store *pg, const struct st_signing_key *k);
MV_MUST_CHECK mv_rc pg_signing_key_delete(struct pg_store *pg, const char *kid);
MV_MUST_CHECK mv_rc pg_signing_keys(struct pg_store *pg, struct st_signing_key **out, size_t *n);
MV_MUST_CHECK mv_rc pg_vm_put(struct pg_store *pg, const struct st_vm *vm);
MV_MUST_CHECK mv_rc pg_vm_get(struct pg_store *pg, const char *name, struct st_vm *out);
MV_MUST_CHECK mv_rc pg_vm_list(struct pg_store *pg, struct st_vm **out, size_t *n);
MV_MUST_CHECK mv_rc pg_vm_delete(struct pg_store *pg, const char *name);
MV_MUST_CHECK mv_rc pg_vm_uai_set(struct pg_store *pg, const char *vm, const char *const *names, size_t n);
MV_MUST_CHECK mv_rc pg_binding_add(struct pg_store *pg, const struct st_binding *b);
MV_MUST_CHECK mv_rc pg_binding_remove(struct pg_store *pg, const struct st_binding *b);
MV_MUST_CHECK mv_rc pg_binding_list(struct pg_store *pg, const char *vm, struct st_binding **out,
                                    size_t *n);
MV_MUST_CHECK mv_rc pg_vm_uai_list(struct pg_store *pg, const char *vm, char (**names)[ST_NAME], size_t *n);
MV_MUST_CHECK mv_rc pg_identity_put(struct pg_store *pg, const struct st_identity *id);
MV_MUST_CHECK mv_rc pg_identity_get(struct pg_store *pg, const char *name, struct st_identity *out);
MV_MUST_CHECK mv_rc pg_identity_list(struct pg_store *pg, struct st_identity **out, size_t *n);
MV_MUST_CHECK mv_rc pg_identity_delete(struct pg_store *pg, const char *name);
MV_MUST_CHECK mv_rc pg_node_put(struct pg_store *pg, const struct st_node *n);
MV_MUST_CHECK mv_rc pg_node_get(struct pg_store *pg, const char *client_id, struct st_node *out);
MV_MUST_CHECK mv_rc pg_join_put(struct pg_store *pg, const char *token_hash, const char *vm, int64_t expires);
MV_MUST_CHECK mv_rc pg_join_consume(struct pg_store *pg, const char *token_hash, int64_t now, char vm_out[ST_NAME]);
MV_MUST_CHECK mv_rc pg_node_revoke_vm(struct pg_store *pg, const char *vm, int64_t now);
MV_MUST_CHECK mv_rc pg_assertion_use(struct pg_store *pg, const char *client_id, const char *jti, int64_t keep_until, int64_t now);
MV_MUST_CHECK mv_rc pg_vault_put(struct pg_store *pg, const struct st_vault *v);
MV_MUST_CHECK mv_rc pg_vault_get(struct pg_store *pg, const char *name, struct st_vault *out);
MV_MUST_CHECK mv_rc pg_vault_list(struct pg_store *pg, struct st_vault **out, size_t *n);
MV_MUST_CHECK mv_rc pg_vault_delete(struct pg_store *pg, const char *name);
MV_MUST_CHECK mv_rc pg_role_assignment_put(struct pg_store *pg, const struct st_role_assignment *a);
MV_MUST_CHECK mv_rc pg_role_assignment_get(struct pg_store *pg, const char *id, struct st_role_assignment *out);
MV_MUST_CHECK mv_rc pg_role_assignment_list(struct pg_store *pg, const char *principal_id, const char *scope, struct st_role_assignment **out, size_t *n);
MV_MUST_CHECK mv_rc pg_role_assignment_delete(struct pg_store *pg, const char *id);
MV_MUST_CHECK mv_rc pg_key_add(struct pg_store *pg, const struct st_key *k);
MV_MUST_CHECK mv_rc pg_key_get(struct pg_store *pg, const char *vault, const char *name, const char *version, struct st_key *out);
MV_MUST_CHECK mv_rc pg_key_update(struct pg_store *pg, const struct st_key *k);
MV_MUST_CHECK mv_rc pg_key_list(struct pg_store *pg, const char *vault, const char *after, size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc pg_key_versions(struct pg_store *pg, const char *vault, const char *name, const char *after_version, size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc pg_key_delete(struct pg_store *pg, const char *vault, const char *name, int64_t now, int days, struct st_key *out);
MV_MUST_CHECK mv_rc pg_key_get_deleted(struct pg_store *pg, const char *vault, const char *name, struct st_key *out);
MV_MUST_CHECK mv_rc pg_key_list_deleted(struct pg_store *pg, const char *vault, const char *after, size_t limit, struct st_key **out, size_t *n);
MV_MUST_CHECK mv_rc pg_key_recover(struct pg_store *pg, const char *vault, const char *name);
MV_MUST_CHECK mv_rc pg_key_purge(struct pg_store *pg, const char *vault, const char *name);
MV_MUST_CHECK mv_rc pg_key_purge_expired(struct pg_store *pg, int64_t now);
MV_MUST_CHECK mv_rc pg_key_policy_put(struct pg_store *pg, const struct st_key_policy *p);
MV_MUST_CHECK mv_rc pg_key_policy_get(struct pg_store *pg, const char *vault, const char *name, struct st_key_policy *out);
MV_MUST_CHECK mv_rc pg_key_policy_list(struct pg_store *pg, struct st_key_policy **out, size_t *n);
MV_MUST_CHECK mv_rc pg_key_policy_claim(struct pg_store *pg, const char *vault, const char *name, const char *version);
MV_MUST_CHECK mv_rc pg_cert_put(struct pg_store *pg, const struct st_certobj *o);
MV_MUST_CHECK mv_rc pg_cert_get(struct pg_store *pg, const char *vault, int kind, const char *name, const char *version, int deleted, struct st_certobj *out);
MV_MUST_CHECK mv_rc pg_cert_list(struct pg_store *pg, const char *vault, int kind, const char *name, const char *after, size_t limit, int deleted, struct st_certobj **out, size_t *n);
MV_MUST_CHECK mv_rc pg_cert_mark(struct pg_store *pg, const char *vault, const char *name, int64_t deleted, int64_t purge_at);
MV_MUST_CHECK mv_rc pg_cert_claim(struct pg_store *pg, const char *vault, const char *name, const char *old_doc, const char *new_doc);
MV_MUST_CHECK mv_rc pg_cert_remove(struct pg_store *pg, const char *vault, int kind, const char *name, const char *version);
MV_MUST_CHECK mv_rc pg_secret_add(struct pg_store *pg, struct st_secret *s, int unmanaged);
MV_MUST_CHECK mv_rc pg_secret_set_deferred(struct pg_store *pg, struct st_secret *s, mv_rc *out);
MV_MUST_CHECK mv_rc pg_secret_get(struct pg_store *pg, const char *vault, const char *name, const char *version, struct st_secret *out);
MV_MUST_CHECK mv_rc pg_secret_update(struct pg_store *pg, const struct st_secret *s);
MV_MUST_CHECK mv_rc pg_secret_list(struct pg_store *pg, const char *vault, const char *after, size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc pg_secret_versions(struct pg_store *pg, const char *vault, const char *name, const char *after_version, size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc pg_secret_delete(struct pg_store *pg, const char *vault, const char *name, int64_t now, int days, int unmanaged, struct st_secret *out);
MV_MUST_CHECK mv_rc pg_secret_get_deleted(struct pg_store *pg, const char *vault, const char *name, struct st_secret *out);
MV_MUST_CHECK mv_rc pg_secret_list_deleted(struct pg_store *pg, const char *vault, const char *after, size_t limit, struct st_secret **out, size_t *n);
MV_MUST_CHECK mv_rc pg_secret_recover(struct pg_store *pg, const char *vault, const char *name);
MV_MUST_CHECK mv_rc pg_secret_purge(struct pg_store *pg, const char *vault, const char *name);
MV_MUST_CHECK mv_rc pg_secret_purge_expired(struct pg_store *pg, int64_t now);
MV_MUST_CHECK mv_rc pg_checkpoint_add(struct pg_store *pg, const char *writer, int64_t records, const char *head_hash, int64_t at, struct st_checkpoint *out);
MV_MUST_CHECK mv_rc pg_checkpoint_list(struct pg_store *pg, struct st_checkpoint **out, size_t *n);
MV_MUST_CHECK mv_rc pg_audit_head_put(struct pg_store *pg, const struct st_audit_head *h);
MV_MUST_CHECK mv_rc pg_audit_head_list(struct pg_store *pg, struct st_audit_head **out, size_t *n);
MV_MUST_CHECK mv_rc pg_quota_lease(struct pg_store *pg, const char *vault, int64_t window_start, enum st_quota_kind kind, int64_t want, int64_t limit, int64_t *granted);
MV_MUST_CHECK mv_rc pg_savepoint(struct pg_store *pg);
MV_MUST_CHECK mv_rc pg_savepoint_release(struct pg_store *pg);
void pg_savepoint_rollback(struct pg_store *pg);
/* writer: whether the batch that just failed should be re-run (sleeps the backoff first). */
int pg_batch_retry(struct pg_store *pg);
void pg_batch_lean(struct pg_store *pg, int on);
void pg_batch_done(struct pg_store *pg);
int pg_tx_alive(const struct pg_store *pg);

#endif
