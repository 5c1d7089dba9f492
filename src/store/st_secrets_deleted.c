/* st_secrets_deleted.c: soft delete, the deleted-secrets view, recover and purge.
 *
 * A soft-deleted secret has deleted = the deletion time and purge_at = its scheduled purge on
 * every version (Key Vault recovery: the whole secret, all versions, is deleted and recovered
 * as one). Queries here carry "deleted <> 0" literally so they use the partial index
 * secrets_deleted; purge_expired uses secrets_purge. */
#include <string.h>

#include "store/sqlite_internal.h"

#define DAY_SECS 86400

#define SELECT_DELETED_LATEST                                                                      \
    "SELECT " ST_SECRET_COLS ", sealed FROM secrets"                                               \
    " WHERE vault = ?1 AND name = ?2 AND deleted <> 0"                                             \
    " ORDER BY created DESC, rowid DESC LIMIT 1"

mv_rc sq_secret_get_deleted(struct store *st, const char *vault, const char *name,
                               struct st_secret *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    CHECK(st_prep(st, ST_Q_SECRET_GET_DELETED, SELECT_DELETED_LATEST, &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(st_secret_row(s, 1, out));
out:
    st_done(s);
    if (rc != MV_OK)
        st_secret_clear(out);
    return rc;
}

static mv_rc soft_delete(struct store *st, const char *vault, const char *name, int64_t now,
                         int64_t purge_at)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_SECRET_SOFT_DELETE,
                  "UPDATE secrets SET deleted = ?3, purge_at = ?4"
                  " WHERE vault = ?1 AND name = ?2 AND deleted = 0",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    st_bind_i64(st, s, 3, now);
    st_bind_i64(st, s, 4, purge_at);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

static mv_rc hard_delete(struct store *st, const char *vault, const char *name)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_prep(st, ST_Q_SECRET_HARD_DELETE,
                  "DELETE FROM secrets WHERE vault = ?1 AND name = ?2 AND deleted = 0", &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_secret_delete(struct store *st, const char *vault, const char *name, int64_t now,
                          int days, int unmanaged, struct st_secret *out)
{
    mv_rc rc = MV_OK;
    struct st_tx tx = {0};
    memset(out, 0, sizeof *out);
    /* deleted = now must be non-zero (0 means live); days is 7..90 for Key Vault. */
    ENSURE(now > 0 && days >= 0 && days <= 3650, MV_ERR_BAD_REQUEST);
    CHECK(st_tx_begin(st, &tx));
    if (unmanaged) {
        int owned = 0;
        CHECK(sq_cert_owns(st, vault, name, &owned));
        ENSURE_MSG(!owned, MV_ERR_FORBIDDEN, "store: a certificate owns secret %s", name);
    }
    if (days > 0) {
        CHECK(soft_delete(st, vault, name, now, now + (int64_t)days * DAY_SECS));
        CHECK(store_secret_get_deleted(st, vault, name, out));
    } else {
        CHECK(store_secret_get(st, vault, name, NULL, out)); /* the row as it was */
        CHECK(hard_delete(st, vault, name));
    }
    CHECK(st_tx_commit(st, &tx));
out:
    st_tx_end(st, &tx);
    if (rc != MV_OK)
        st_secret_clear(out);
    return rc;
}

mv_rc sq_secret_list_deleted(struct store *st, const char *vault, const char *after,
                                size_t limit, struct st_secret **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *out = NULL;
    *n = 0;
    /* Same keyset walk as store_secret_list, over secrets_deleted. */
    CHECK(st_prep(st, ST_Q_SECRET_LIST_DELETED,
                  "SELECT " ST_SECRET_COLS " FROM secrets AS s"
                  " WHERE s.vault = ?1 AND s.deleted <> 0 AND s.name > ?2"
                  " AND s.rowid = (SELECT l.rowid FROM secrets AS l"
                  "  WHERE l.vault = ?1 AND l.name = s.name AND l.deleted <> 0"
                  "  ORDER BY l.created DESC, l.rowid DESC LIMIT 1)"
                  " ORDER BY s.name LIMIT ?3",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, after ? after : "");
    st_bind_i64(st, s, 3, st_limit(limit));
    CHECK(st_secret_rows(st, s, out, n));
out:
    st_done(s);
    return rc;
}

static mv_rc run_named(struct store *st, enum st_q id, const char *sql, const char *vault,
                       const char *name)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, id, sql, &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

mv_rc sq_secret_recover(struct store *st, const char *vault, const char *name)
{
    return run_named(st, ST_Q_SECRET_RECOVER,
                     "UPDATE secrets SET deleted = 0, purge_at = 0"
                     " WHERE vault = ?1 AND name = ?2 AND deleted <> 0",
                     vault, name);
}

mv_rc sq_secret_purge(struct store *st, const char *vault, const char *name)
{
    return run_named(st, ST_Q_SECRET_PURGE,
                     "DELETE FROM secrets WHERE vault = ?1 AND name = ?2 AND deleted <> 0", vault,
                     name);
}

mv_rc sq_secret_purge_expired(struct store *st, int64_t now)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_prep(st, ST_Q_SECRET_PURGE_EXPIRED,
                  "DELETE FROM secrets WHERE deleted <> 0 AND purge_at <= ?1", &s));
    st_bind_i64(st, s, 1, now);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}
