/* pg_quota.c: quota leases on PostgreSQL, the counters behind Key Vault's per-vault limits when
 * several servers share the database (store.h store_quota_lease; vault/throttle.c spends them).
 *
 * Invariant: for each (vault, window_start, kind) row, the sum of all grants ever returned is
 * at most the limit the callers pass. One statement does the whole lease: an upsert whose
 * DO UPDATE re-reads the row under its row lock (READ COMMITTED re-checks a conflicting row's
 * newest version), grants min(want, limit - used) only WHERE used < limit, and stores that
 * grant in last_grant so RETURNING can hand it back (RETURNING sees only the new row).
 *
 * Unlike every other call of the backend this one is not run through pg_run: it makes one
 * attempt and never reconnects, so a database outage costs a request nothing here (the
 * caller fails open, docs/ha.md) and the request's own store call does the reconnecting. A
 * lease re-run after an unknown outcome could only count permits twice, never hand out more
 * than the limit, but it is not re-run at all. */
#include <string.h>

#include "store/pg_internal.h"

/* The first lease of a newer window on this connection prunes old windows: at most one extra
 * statement per connection per window, on an index. */
static mv_rc prune(struct pg_store *pg, int64_t window_start)
{
    mv_rc rc = MV_OK;
    struct pg_params pp = {0};
    if (window_start <= pg->quota_pruned)
        return MV_OK;
    pp_i64(&pp, window_start - ST_QUOTA_KEEP_SECS);
    CHECK(pg_exec(pg, "DELETE FROM quota_leases WHERE window_start < $1::bigint", &pp, NULL, NULL));
    pg->quota_pruned = window_start;
out:
    return rc;
}

mv_rc pg_quota_lease(struct pg_store *pg, const char *vault, int64_t window_start,
                     enum st_quota_kind kind, int64_t want, int64_t limit, int64_t *granted)
{
    mv_rc rc = MV_OK;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    *granted = 0;
    pg->retry = PG_RETRY_NONE;
    ENSURE(vault && vault[0] && want > 0 && limit > 0, MV_ERR_BAD_REQUEST);
    ENSURE(kind == ST_QUOTA_OPS || kind == ST_QUOTA_CREATES, MV_ERR_BAD_REQUEST);
    ENSURE_MSG(!pg->in_tx, MV_ERR_INTERNAL, "store_quota_lease inside a transaction");
    CHECK(prune(pg, window_start));
    pp_text(&pp, vault);
    pp_i64(&pp, window_start);
    pp_i64(&pp, kind);
    pp_i64(&pp, want);
    pp_i64(&pp, limit);
    CHECK(pg_exec(pg,
                  "INSERT INTO quota_leases AS q (vault, window_start, kind, used, last_grant)"
                  " VALUES (lower($1), $2::bigint, $3::integer, least($4::bigint, $5::bigint),"
                  " least($4::bigint, $5::bigint))"
                  " ON CONFLICT (vault, window_start, kind) DO UPDATE"
                  " SET used = q.used + least($4::bigint, $5::bigint - q.used),"
                  " last_grant = least($4::bigint, $5::bigint - q.used)"
                  " WHERE q.used < $5::bigint"
                  " RETURNING last_grant",
                  &pp, &r, NULL));
    if (PQntuples(r) == 1)
        *granted = pg_col_i64(r, 0, 0);
    ENSURE_MSG(*granted >= 0 && *granted <= want, MV_ERR_INTERNAL, "store: lease of %lld",
               (long long)*granted);
out:
    if (rc != MV_OK && pg->retry == PG_RETRY_CONN)
        pg_disconnect(pg); /* the next pg_run reconnects (to the new primary, if any) */
    if (rc != MV_OK && pg->retry != PG_RETRY_NONE)
        rc = MV_ERR_UNAVAILABLE;
    if (rc != MV_OK)
        *granted = 0;
    PQclear(r);
    return rc;
}
