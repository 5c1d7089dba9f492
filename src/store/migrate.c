/* migrate.c: SQLite -> PostgreSQL copy (see migrate.h). The one file that sees both backends'
 * internals: it reads the SQLite tables row by row and inserts each row into its PostgreSQL
 * twin with bound parameters (integers travel as their text, the sealed blob as bytea), in
 * the order the foreign keys need, then commits once. Insertion order (SQLite's rowid) is
 * kept, so PostgreSQL's seq orders ties the same way. */
#include "store/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "store/checkpoint.h"
#include "store/pg_internal.h"
#include "store/sqlite_internal.h"

struct copy {
    const char *table;
    const char *select;  /* SQLite */
    const char *insert;  /* PostgreSQL, one $n per selected column */
    int blob_col;        /* the column copied as bytea, or -1 */
};

static const struct copy TABLES[] = {
    {"meta", "SELECT key, value FROM meta WHERE key <> 'generation' ORDER BY key",
     "INSERT INTO meta (key, value) VALUES ($1, $2)", -1},
    {"principals",
     "SELECT id, client_id, kind, name, resource_id, public_key_pem FROM principals ORDER BY rowid",
     "INSERT INTO principals (id, client_id, kind, name, resource_id, public_key_pem)"
     " VALUES ($1, $2, $3, $4, $5, $6)",
     -1},
    {"signing_keys",
     "SELECT kid, sealed_private_b64, public_pem, x5c_b64, created, retired FROM signing_keys"
     " ORDER BY rowid",
     "INSERT INTO signing_keys (kid, sealed_private_b64, public_pem, x5c_b64, created, retired)"
     " VALUES ($1, $2, $3, $4, $5, $6)",
     -1},
    {"vms",
     "SELECT name, rg, vm_id, system_assigned, system_principal_id, resource_id, created FROM vms"
     " ORDER BY rowid",
     "INSERT INTO vms (k, name, rg, vm_id, system_assigned, system_principal_id, resource_id,"
     " created) VALUES (lower($1), $1, $2, $3, $4, $5, $6, $7)",
     -1},
    {"identities",
     "SELECT name, rg, principal_id, client_id, resource_id, created FROM identities ORDER BY rowid",
     "INSERT INTO identities (k, name, rg, principal_id, client_id, resource_id, created)"
     " VALUES (lower($1), $1, $2, $3, $4, $5, $6)",
     -1},
    {"vm_uai", "SELECT vm, identity FROM vm_uai ORDER BY rowid",
     "INSERT INTO vm_uai (vm, identity) VALUES (lower($1), lower($2))", -1},
    {"nodes", "SELECT client_id, vm, public_key_pem, created FROM nodes ORDER BY rowid",
     "INSERT INTO nodes (client_id, vm, vm_key, public_key_pem, created)"
     " VALUES ($1, $2, lower($2), $3, $4)",
     -1},
    {"join_tokens", "SELECT token_hash, vm, expires, used FROM join_tokens ORDER BY rowid",
     "INSERT INTO join_tokens (token_hash, vm, vm_key, expires, used)"
     " VALUES ($1, $2, lower($2), $3, $4)",
     -1},
    {"vaults",
     "SELECT name, rg, vault_id, soft_delete_days, purge_protection, created FROM vaults"
     " ORDER BY rowid",
     "INSERT INTO vaults (k, name, rg, vault_id, soft_delete_days, purge_protection, created)"
     " VALUES (lower($1), $1, $2, $3, $4, $5, $6)",
     -1},
    {"role_assignments",
     "SELECT id, principal_id, role_id, scope, created FROM role_assignments ORDER BY rowid",
     "INSERT INTO role_assignments (id, principal_id, role_id, scope, created)"
     " VALUES ($1, $2, $3, $4, $5)",
     -1},
    {"secrets",
     "SELECT vault, name, version, sealed, content_type, tags_json, enabled, nbf, exp, created,"
     " updated, deleted, purge_at FROM secrets ORDER BY rowid",
     "INSERT INTO secrets (vault, vault_key, name, version, sealed, content_type, tags_json,"
     " enabled, nbf, exp, created, updated, deleted, purge_at)"
     " VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
     3},
    {"vault_keys",
     "SELECT vault, name, version, sealed, jwk_json, tags_json, enabled, nbf, exp, created,"
     " updated, deleted, purge_at, managed FROM vault_keys ORDER BY rowid",
     "INSERT INTO vault_keys (vault, vault_key, name, version, sealed, jwk_json, tags_json,"
     " enabled, nbf, exp, created, updated, deleted, purge_at, managed)"
     " VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
     3},
    {"key_policies",
     "SELECT vault, name, policy_json, created, updated, claimed FROM key_policies ORDER BY rowid",
     "INSERT INTO key_policies (vault, vault_key, name, policy_json, created, updated, claimed)"
     " VALUES ($1, lower($1), $2, $3, $4, $5, $6)",
     -1},
    {"cert_objects",
     "SELECT vault, kind, name, version, doc, sealed, created, deleted, purge_at FROM cert_objects"
     " ORDER BY rowid",
     "INSERT INTO cert_objects (vault, vault_key, kind, name, version, doc, sealed, created,"
     " deleted, purge_at) VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9)",
     5},
    /* the audit checkpoint chain (docs/audit.md) as it is: seq, hashes and all, so `audit
     * verify` still anchors the records written before the move and the next checkpoint
     * continues the chain */
    {"audit_checkpoints",
     "SELECT seq, writer, records, head_hash, at, prev_hash, hash FROM audit_checkpoints ORDER BY seq",
     "INSERT INTO audit_checkpoints (seq, writer, records, head_hash, at, prev_hash, hash)"
     " VALUES ($1, $2, $3, $4, $5, $6, $7)",
     -1},
    /* client assertion ids still within their keep window stay one-time across the move;
     * 'migrated' is a nonce no call writes (pg_assertions.c writes random hex ids) */
    {"assertion_jti", "SELECT client_id, jti, keep_until FROM assertion_jti ORDER BY client_id, jti",
     "INSERT INTO assertion_jti (client_id, jti, keep_until, nonce) VALUES (lower($1), $2, $3, 'migrated')",
     -1},
    {"audit_heads", "SELECT " ST_AUDIT_HEAD_COLS " FROM audit_heads ORDER BY writer",
     "INSERT INTO audit_heads (" ST_AUDIT_HEAD_COLS ") VALUES ($1, $2::bigint, $3, $4, $5::bigint)",
     -1},
    {"app_credentials",
     "SELECT key_id, client_id, kind, hint, secret_sha256, thumb_sha1, thumb_sha256, cert_pem,"
     " created, expires FROM app_credentials ORDER BY rowid",
     "INSERT INTO app_credentials (key_id, client_id, kind, hint, secret_sha256, thumb_sha1,"
     " thumb_sha256, cert_pem, created, expires)"
     " VALUES (lower($1), lower($2), $3, $4, $5, $6, $7, $8, $9, $10)",
     -1},
    {"federated_credentials",
     "SELECT identity, name, issuer, subject, audience, created FROM federated_credentials"
     " ORDER BY rowid",
     "INSERT INTO federated_credentials (identity_key, name_key, identity, name, issuer, subject,"
     " audience, created) VALUES (lower($1), lower($2), $1, $2, $3, $4, $5, $6)",
     -1},
    {"vm_bindings", "SELECT vm, identity, kind, value, created FROM vm_bindings ORDER BY rowid",
     "INSERT INTO vm_bindings (vm, identity, kind, value, created)"
     " VALUES (lower($1), lower($2), $3, $4, $5)",
     -1},
};

static mv_rc copy_table(struct store *from, struct pg_store *to, const struct copy *c, int64_t *rows)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *rows = 0;
    int src = sqlite3_prepare_v2(from->db, c->select, -1, &s, NULL);
    if (src != SQLITE_OK) {
        rc = st_error(from, src, c->table);
        goto out;
    }
    for (;;) {
        src = sqlite3_step(s);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = st_error(from, src, c->table);
            goto out;
        }
        struct pg_params pp = {0};
        int cols = sqlite3_column_count(s);
        ENSURE(cols < PG_MAX_PARAMS, MV_ERR_INTERNAL);
        for (int i = 0; i < cols; i++) {
            if (i == c->blob_col)
                pp_bytea(&pp, sqlite3_column_blob(s, i), (size_t)sqlite3_column_bytes(s, i));
            else if (sqlite3_column_type(s, i) == SQLITE_NULL)
                pp_text(&pp, NULL);
            else
                pp_text(&pp, (const char *)sqlite3_column_text(s, i));
        }
        CHECK(pg_exec(to, c->insert, &pp, NULL, NULL));
        (*rows)++;
    }
out:
    sqlite3_finalize(s);
    return rc;
}

static mv_rc refuse_initialised(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    CHECK(pg_exec(pg, "SELECT 1 FROM meta WHERE key = 'tenant_id'", NULL, &r, NULL));
    ENSURE_MSG(PQntuples(r) == 0, MV_ERR_CONFLICT,
               "store migrate: the target database on %s already holds a tenant", pg->hosts);
out:
    PQclear(r);
    return rc;
}

mv_rc store_migrate_sqlite_to_pg(const char *db_path, const char *url,
                                 struct store_migrate_count counts[STORE_MIGRATE_TABLES])
{
    mv_rc rc = MV_OK;
    struct store *from = NULL, *to = NULL;
    int began = 0;
    ENSURE_MSG(!store_is_url(db_path), MV_ERR_BAD_REQUEST, "store migrate: the source is not SQLite");
    ENSURE_MSG(store_is_url(url), MV_ERR_BAD_REQUEST, "store migrate: --to must be a postgresql:// URL");
    CHECK(store_open(db_path, &from));
    CHECK(store_open(url, &to));
    CHECK(pg_begin(to->pg));
    began = 1;
    CHECK(refuse_initialised(to->pg));
    /* One snapshot of the source for the whole copy. */
    int src = sqlite3_exec(from->db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = st_error(from, src, "begin");
        goto out;
    }
    for (size_t i = 0; i < STORE_MIGRATE_TABLES; i++) {
        counts[i].table = TABLES[i].table;
        CHECK(copy_table(from, to->pg, &TABLES[i], &counts[i].rows));
    }
    sqlite3_exec(from->db, "COMMIT", NULL, NULL, NULL);
    to->pg->touched = 1; /* every cache of this process starts over */
    began = 0;
    CHECK(pg_commit(to->pg));
    LOG_INFO("store migrate: %s copied to PostgreSQL on %s", db_path, to->pg->hosts);
out:
    if (began)
        pg_rollback(to->pg);
    store_close(from);
    store_close(to);
    return rc;
}

/* ---- backup: any store into a new SQLite file ---- */

/* The SQLite file's snapshot, page by page (sqlite3_backup: one read transaction, so writers of
 * other connections go on and the copy is of one moment). */
static mv_rc backup_sqlite(const char *from, const char *dst)
{
    mv_rc rc = MV_OK;
    sqlite3 *src = NULL, *out = NULL;
    sqlite3_backup *b = NULL;
    int r = sqlite3_open_v2(from, &src, SQLITE_OPEN_READONLY, NULL);
    ENSURE_MSG(r == SQLITE_OK, MV_ERR_UNAVAILABLE, "backup: cannot open %s: %s", from,
               src ? sqlite3_errmsg(src) : "out of memory");
    sqlite3_busy_timeout(src, 10000);
    r = sqlite3_open_v2(dst, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    ENSURE_MSG(r == SQLITE_OK, MV_ERR_INTERNAL, "backup: cannot create %s", dst);
    b = sqlite3_backup_init(out, "main", src, "main");
    ENSURE_MSG(b != NULL, MV_ERR_INTERNAL, "backup: %s", sqlite3_errmsg(out));
    for (int tries = 0;; tries++) {
        r = sqlite3_backup_step(b, -1); /* all pages in one step: one snapshot */
        if (r == SQLITE_DONE)
            break;
        ENSURE_MSG((r == SQLITE_BUSY || r == SQLITE_LOCKED) && tries < 100, MV_ERR_UNAVAILABLE,
                   "backup: copying %s: %s", from, sqlite3_errstr(r));
        sqlite3_sleep(100);
    }
    r = sqlite3_backup_finish(b);
    b = NULL;
    ENSURE_MSG(r == SQLITE_OK, MV_ERR_INTERNAL, "backup: %s", sqlite3_errstr(r));
    /* A self-contained file: no -wal beside it. */
    r = sqlite3_exec(out, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    ENSURE_MSG(r == SQLITE_OK, MV_ERR_INTERNAL, "backup: %s", sqlite3_errmsg(out));
out:
    if (b)
        sqlite3_backup_finish(b);
    sqlite3_close(out);
    sqlite3_close(src);
    return rc;
}

/* PostgreSQL table i of TABLES read back: the same columns as the SQLite select (the
 * PostgreSQL-only lowered keys and seq are left out). */
static const char *const PG_SELECT[] = {
    "SELECT key, value FROM meta WHERE key NOT IN ('schema_version', 'generation') ORDER BY key",
    "SELECT id, client_id, kind, name, resource_id, public_key_pem FROM principals ORDER BY id",
    "SELECT kid, sealed_private_b64, public_pem, x5c_b64, created, retired FROM signing_keys"
    " ORDER BY seq",
    "SELECT name, rg, vm_id, system_assigned, system_principal_id, resource_id, created FROM vms"
    " ORDER BY created, k",
    "SELECT name, rg, principal_id, client_id, resource_id, created FROM identities"
    " ORDER BY created, k",
    "SELECT v.name, i.name FROM vm_uai u JOIN vms v ON v.k = u.vm JOIN identities i"
    " ON i.k = u.identity ORDER BY u.seq",
    "SELECT client_id, vm, public_key_pem, created FROM nodes ORDER BY created, client_id",
    "SELECT token_hash, vm, expires, used FROM join_tokens ORDER BY expires, token_hash",
    "SELECT name, rg, vault_id, soft_delete_days, purge_protection, created FROM vaults"
    " ORDER BY created, k",
    "SELECT id, principal_id, role_id, scope, created FROM role_assignments ORDER BY seq",
    "SELECT vault, name, version, sealed, content_type, tags_json, enabled, nbf, exp, created,"
    " updated, deleted, purge_at FROM secrets ORDER BY seq",
    "SELECT vault, name, version, sealed, jwk_json, tags_json, enabled, nbf, exp, created,"
    " updated, deleted, purge_at, managed FROM vault_keys ORDER BY seq",
    "SELECT vault, name, policy_json, created, updated, claimed FROM key_policies"
    " ORDER BY created, vault_key, lower(name)",
    "SELECT vault, kind, name, version, doc, sealed, created, deleted, purge_at FROM cert_objects"
    " ORDER BY seq",
    /* Not in a backup (NULL): audit checkpoints and assertion ids only matter to the servers
     * that wrote them, and a restored state is a new server (docs/operations.md). */
    NULL,
    NULL,
    NULL, /* audit_heads: likewise */
    "SELECT key_id, client_id, kind, hint, secret_sha256, thumb_sha1, thumb_sha256, cert_pem,"
    " created, expires FROM app_credentials ORDER BY seq",
    "SELECT identity, name, issuer, subject, audience, created FROM federated_credentials"
    " ORDER BY identity_key, name_key",
    "SELECT vm, identity, kind, value, created FROM vm_bindings ORDER BY seq",
};
/* A table added to one list and not the other does not build (backup once read a NULL query). */
_Static_assert(sizeof TABLES / sizeof TABLES[0] == STORE_MIGRATE_TABLES, "TABLES is complete");
_Static_assert(sizeof PG_SELECT / sizeof PG_SELECT[0] == STORE_MIGRATE_TABLES, "PG_SELECT is complete");

/* "INSERT OR REPLACE INTO t (cols of the SQLite select) VALUES (?1, ...)". */
static mv_rc sqlite_insert_for(const struct copy *c, char *out, size_t len)
{
    mv_rc rc = MV_OK;
    const char *cols = c->select + strlen("SELECT ");
    const char *end = strstr(cols, " FROM ");
    ENSURE(end != NULL, MV_ERR_INTERNAL);
    int n = 1;
    for (const char *p = cols; p < end; p++)
        n += *p == ',';
    char marks[PG_MAX_PARAMS * 5] = "";
    size_t at = 0;
    for (int i = 1; i <= n; i++) {
        int w = snprintf(marks + at, sizeof marks - at, "%s?%d", i > 1 ? "," : "", i);
        ENSURE(w > 0 && (size_t)w < sizeof marks - at, MV_ERR_INTERNAL);
        at += (size_t)w;
    }
    int w = snprintf(out, len, "INSERT OR REPLACE INTO %s (%.*s) VALUES (%s)", c->table,
                     (int)(end - cols), cols, marks);
    ENSURE(w > 0 && (size_t)w < len, MV_ERR_INTERNAL);
out:
    return rc;
}

static mv_rc pg_copy_table(struct pg_store *from, struct store *to, size_t t, int64_t *rows)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    sqlite3_stmt *s = NULL;
    mv_buf blob;
    char sql[1024];
    mv_buf_init(&blob, 64 * 1024 * 1024);
    *rows = 0;
    if (!PG_SELECT[t])
        goto out;
    CHECK(sqlite_insert_for(&TABLES[t], sql, sizeof sql));
    CHECK(pg_exec(from, PG_SELECT[t], NULL, &r, NULL));
    int src = sqlite3_prepare_v2(to->db, sql, -1, &s, NULL);
    if (src != SQLITE_OK) {
        rc = st_error(to, src, TABLES[t].table);
        goto out;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        for (int col = 0; col < PQnfields(r); col++) {
            if (PQgetisnull(r, row, col)) {
                sqlite3_bind_null(s, col + 1);
            } else if (col == TABLES[t].blob_col) {
                mv_buf_free(&blob); /* pg_col_bytea initialises it afresh */
                CHECK(pg_col_bytea(r, row, col, &blob));
                sqlite3_bind_blob(s, col + 1, blob.p ? blob.p : "", (int)blob.len, SQLITE_TRANSIENT);
            } else {
                sqlite3_bind_text(s, col + 1, PQgetvalue(r, row, col), -1, SQLITE_TRANSIENT);
            }
        }
        src = sqlite3_step(s);
        if (src != SQLITE_DONE) {
            rc = st_error(to, src, TABLES[t].table);
            goto out;
        }
        (*rows)++;
    }
out:
    sqlite3_finalize(s);
    PQclear(r);
    mv_buf_free(&blob);
    return rc;
}

static mv_rc backup_pg(const char *url, const char *dst,
                       struct store_migrate_count counts[STORE_MIGRATE_TABLES])
{
    mv_rc rc = MV_OK;
    struct store *from = NULL, *to = NULL;
    int began = 0, sq_began = 0;
    CHECK(store_open(url, &from));
    CHECK(store_open(dst, &to));
    CHECK(pg_simple(from->pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    began = 1;
    int src = sqlite3_exec(to->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = st_error(to, src, "begin");
        goto out;
    }
    sq_began = 1;
    for (size_t i = 0; i < STORE_MIGRATE_TABLES; i++) {
        counts[i].table = TABLES[i].table;
        CHECK(pg_copy_table(from->pg, to, i, &counts[i].rows));
    }
    src = sqlite3_exec(to->db, "COMMIT", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = st_error(to, src, "commit");
        goto out;
    }
    sq_began = 0;
    src = sqlite3_exec(to->db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        rc = st_error(to, src, "journal_mode");
out:
    if (sq_began)
        sqlite3_exec(to->db, "ROLLBACK", NULL, NULL, NULL);
    if (began && pg_simple(from->pg, "ROLLBACK") != MV_OK)
        LOG_WARN("backup: rollback of the read transaction failed");
    store_close(from);
    store_close(to);
    return rc;
}

mv_rc store_backup_to_sqlite(const char *from, const char *dst,
                             struct store_migrate_count counts[STORE_MIGRATE_TABLES])
{
    mv_rc rc = MV_OK;
    char side[PATH_MAX];
    for (size_t i = 0; i < STORE_MIGRATE_TABLES; i++)
        counts[i] = (struct store_migrate_count){TABLES[i].table, 0};
    unlink(dst);
    CHECK(mv_fmt(side, sizeof side, "%s-wal", dst));
    unlink(side);
    CHECK(mv_fmt(side, sizeof side, "%s-shm", dst));
    unlink(side);
    /* 0600 from its first byte, whatever the umask: it holds the store (sealed, but still). */
    int fd = open(dst, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "backup: cannot create %s: %s", dst, strerror(errno));
    close(fd);
    if (store_is_url(from))
        CHECK(backup_pg(from, dst, counts));
    else
        CHECK(backup_sqlite(from, dst));
out:
    if (rc != MV_OK)
        unlink(dst);
    return rc;
}
