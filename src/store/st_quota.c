/* st_quota.c: quota leases on SQLite (store.h store_quota_lease). The vault does not use them
 * on SQLite (store_shared is 0: one process keeps the counters in memory), but the interface
 * is whole on both backends and behaves the same: one upsert grants min(want, limit - used)
 * while used < limit and RETURNING hands back the grant it stored in last_grant (in SQLite's
 * DO UPDATE, bare column names are the existing row's). The statement is atomic on its own:
 * SQLite takes the write lock for it. */
#include "store/sqlite_internal.h"

static mv_rc prune(struct store *st, int64_t window_start)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    if (window_start <= st->quota_pruned)
        return MV_OK;
    CHECK(st_prep(st, ST_Q_QUOTA_PRUNE, "DELETE FROM quota_leases WHERE window_start < ?1", &s));
    st_bind_i64(st, s, 1, window_start - ST_QUOTA_KEEP_SECS);
    CHECK(st_run(st, s, NULL));
    st->quota_pruned = window_start;
out:
    st_done(s);
    return rc;
}

mv_rc sq_quota_lease(struct store *st, const char *vault, int64_t window_start,
                     enum st_quota_kind kind, int64_t want, int64_t limit, int64_t *granted)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    *granted = 0;
    ENSURE(vault && vault[0] && want > 0 && limit > 0, MV_ERR_BAD_REQUEST);
    ENSURE(kind == ST_QUOTA_OPS || kind == ST_QUOTA_CREATES, MV_ERR_BAD_REQUEST);
    CHECK(prune(st, window_start));
    CHECK(st_prep(st, ST_Q_QUOTA_LEASE,
                  "INSERT INTO quota_leases (vault, window_start, kind, used, last_grant)"
                  " VALUES (?1, ?2, ?3, min(?4, ?5), min(?4, ?5))"
                  " ON CONFLICT (vault, window_start, kind) DO UPDATE"
                  " SET used = used + min(?4, ?5 - used), last_grant = min(?4, ?5 - used)"
                  " WHERE used < ?5"
                  " RETURNING last_grant",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_i64(st, s, 2, window_start);
    st_bind_i64(st, s, 3, kind);
    st_bind_i64(st, s, 4, want);
    st_bind_i64(st, s, 5, limit);
    CHECK(st_step(st, s, &row));
    if (row) {
        *granted = (int64_t)sqlite3_column_int64(s, 0);
        CHECK(st_step(st, s, &row)); /* to SQLITE_DONE: the implicit COMMIT's error shows here */
    }
    ENSURE_MSG(*granted >= 0 && *granted <= want, MV_ERR_INTERNAL, "store: lease of %lld",
               (long long)*granted);
out:
    st_done(s);
    if (rc != MV_OK)
        *granted = 0;
    return rc;
}
