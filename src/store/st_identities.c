/* st_identities.c: user-assigned managed identities. put is an upsert on the
 * (case-insensitive) name, keeping the name's first case and the VM links; delete cascades to
 * the VM links (schema.c). The identity's principal is the caller's to delete. */
#include <string.h>

#include "store/sqlite_internal.h"

#define IDENTITY_COLS "name, rg, principal_id, client_id, resource_id, created"

mv_rc sq_identity_put(struct store *st, const struct st_identity *id)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(id->name[0], MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_IDENTITY_PUT,
                  "INSERT INTO identities (" IDENTITY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                  " ON CONFLICT (name) DO UPDATE SET rg = excluded.rg,"
                  " principal_id = excluded.principal_id, client_id = excluded.client_id,"
                  " resource_id = excluded.resource_id, created = excluded.created",
                  &s));
    st_bind_text(st, s, 1, id->name);
    st_bind_text(st, s, 2, id->rg);
    st_bind_text(st, s, 3, id->principal_id);
    st_bind_text(st, s, 4, id->client_id);
    st_bind_text(st, s, 5, id->resource_id);
    st_bind_i64(st, s, 6, id->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc read_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_identity *id = item;
    CHECK(st_col_text(s, 0, id->name, sizeof id->name));
    CHECK(st_col_text(s, 1, id->rg, sizeof id->rg));
    CHECK(st_col_text(s, 2, id->principal_id, sizeof id->principal_id));
    CHECK(st_col_text(s, 3, id->client_id, sizeof id->client_id));
    CHECK(st_col_text(s, 4, id->resource_id, sizeof id->resource_id));
    id->created = (int64_t)sqlite3_column_int64(s, 5);
out:
    return rc;
}

mv_rc sq_identity_get(struct store *st, const char *name, struct st_identity *out)
{
    return st_get_by_key(st, ST_Q_IDENTITY_GET, "SELECT " IDENTITY_COLS " FROM identities WHERE name = ?1",
                         name, read_row, out, sizeof *out);
}

mv_rc sq_identity_list(struct store *st, struct st_identity **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_list_all(st, ST_Q_IDENTITY_LIST, "SELECT " IDENTITY_COLS " FROM identities ORDER BY name", sizeof **out, read_row, &arr, n);
    *out = arr;
    return rc;
}

mv_rc sq_identity_delete(struct store *st, const char *name)
{
    return st_delete_by_key(st, ST_Q_IDENTITY_DELETE, "DELETE FROM identities WHERE name = ?1", name);
}
