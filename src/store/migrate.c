/* migrate.c: SQLite -> PostgreSQL copy (see migrate.h). The one file that sees both backends'
 * internals: it reads the SQLite tables row by row and inserts each row into its PostgreSQL
 * twin with bound parameters (integers travel as their text, the sealed blob as bytea), in
 * the order the foreign keys need, then commits once. Insertion order (SQLite's rowid) is
 * kept, so PostgreSQL's seq orders ties the same way. */
#include "store/migrate.h"

#include <string.h>

#include "common/log.h"
#include "store/pg_internal.h"
#include "store/sqlite_internal.h"

struct copy {
    const char *table;
    const char *select;  /* SQLite */
    const char *insert;  /* PostgreSQL, one $n per selected column */
    int blob_col;        /* the column copied as bytea, or -1 */
};

static const struct copy TABLES[STORE_MIGRATE_TABLES] = {
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
