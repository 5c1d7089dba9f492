/* st_principals.c: service principals (admin, system- and user-assigned identities).
 * id and client_id are GUIDs, unique and matched case-insensitively. put is an upsert on id. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

#define PRINCIPAL_COLS "id, client_id, kind, name, resource_id, public_key_pem"

void st_principal_clear(struct st_principal *p)
{
    if (!p)
        return;
    free(p->public_key_pem);
    p->public_key_pem = NULL;
}

mv_rc sq_principal_put(struct store *st, const struct st_principal *p)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(p->kind >= ST_PRINCIPAL_ADMIN && p->kind <= ST_PRINCIPAL_APP, MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_PRINCIPAL_PUT,
                  "INSERT INTO principals (" PRINCIPAL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                  " ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id,"
                  " kind = excluded.kind, name = excluded.name,"
                  " resource_id = excluded.resource_id, public_key_pem = excluded.public_key_pem",
                  &s));
    st_bind_text(st, s, 1, p->id);
    st_bind_text(st, s, 2, p->client_id);
    st_bind_i64(st, s, 3, (int64_t)p->kind);
    st_bind_text(st, s, 4, p->name);
    st_bind_text(st, s, 5, p->resource_id);
    st_bind_text(st, s, 6, p->public_key_pem);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc read_row(sqlite3_stmt *s, struct st_principal *out)
{
    mv_rc rc = MV_OK;
    CHECK(st_col_text(s, 0, out->id, sizeof out->id));
    CHECK(st_col_text(s, 1, out->client_id, sizeof out->client_id));
    int64_t kind = (int64_t)sqlite3_column_int64(s, 2);
    ENSURE_MSG(kind >= ST_PRINCIPAL_ADMIN && kind <= ST_PRINCIPAL_APP, MV_ERR_INTERNAL,
               "store: principal kind %lld", (long long)kind);
    out->kind = (enum st_principal_kind)kind;
    CHECK(st_col_text(s, 3, out->name, sizeof out->name));
    CHECK(st_col_text(s, 4, out->resource_id, sizeof out->resource_id));
    CHECK(st_col_dup(s, 5, &out->public_key_pem));
out:
    return rc;
}

static mv_rc get_by(struct store *st, enum st_q id, const char *sql, const char *key,
                    struct st_principal *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    CHECK(st_prep(st, id, sql, &s));
    st_bind_text(st, s, 1, key);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(read_row(s, out));
out:
    st_done(s);
    if (rc != MV_OK)
        st_principal_clear(out);
    return rc;
}

mv_rc sq_principal_get(struct store *st, const char *id, struct st_principal *out)
{
    return get_by(st, ST_Q_PRINCIPAL_GET,
                  "SELECT " PRINCIPAL_COLS " FROM principals WHERE id = ?1", id, out);
}

mv_rc sq_principal_by_client(struct store *st, const char *client_id, struct st_principal *out)
{
    return get_by(st, ST_Q_PRINCIPAL_BY_CLIENT,
                  "SELECT " PRINCIPAL_COLS " FROM principals WHERE client_id = ?1", client_id, out);
}

mv_rc sq_principal_delete(struct store *st, const char *id)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_PRINCIPAL_DELETE, "DELETE FROM principals WHERE id = ?1", &s));
    st_bind_text(st, s, 1, id);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}
