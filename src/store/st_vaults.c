/* st_vaults.c: vaults. put is an upsert on the (case-insensitive) name, keeping its first
 * case and its secrets; delete removes every secret of the vault with it (ON DELETE CASCADE). */
#include <string.h>

#include "store/sqlite_internal.h"

#define VAULT_COLS "name, rg, vault_id, soft_delete_days, purge_protection, created"

mv_rc sq_vault_put(struct store *st, const struct st_vault *v)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(v->name[0], MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_VAULT_PUT,
                  "INSERT INTO vaults (" VAULT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                  " ON CONFLICT (name) DO UPDATE SET rg = excluded.rg,"
                  " vault_id = excluded.vault_id, soft_delete_days = excluded.soft_delete_days,"
                  " purge_protection = excluded.purge_protection, created = excluded.created",
                  &s));
    st_bind_text(st, s, 1, v->name);
    st_bind_text(st, s, 2, v->rg);
    st_bind_text(st, s, 3, v->vault_id);
    st_bind_i64(st, s, 4, v->soft_delete_days);
    st_bind_i64(st, s, 5, v->purge_protection ? 1 : 0);
    st_bind_i64(st, s, 6, v->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc read_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_vault *v = item;
    CHECK(st_col_text(s, 0, v->name, sizeof v->name));
    CHECK(st_col_text(s, 1, v->rg, sizeof v->rg));
    CHECK(st_col_text(s, 2, v->vault_id, sizeof v->vault_id));
    int64_t days = (int64_t)sqlite3_column_int64(s, 3);
    ENSURE_MSG(days >= 0 && days <= 365, MV_ERR_INTERNAL, "store: soft_delete_days %lld",
               (long long)days);
    v->soft_delete_days = (int)days;
    v->purge_protection = sqlite3_column_int64(s, 4) != 0;
    v->created = (int64_t)sqlite3_column_int64(s, 5);
out:
    return rc;
}

mv_rc sq_vault_get(struct store *st, const char *name, struct st_vault *out)
{
    return st_get_by_key(st, ST_Q_VAULT_GET, "SELECT " VAULT_COLS " FROM vaults WHERE name = ?1",
                         name, read_row, out, sizeof *out);
}

mv_rc sq_vault_list(struct store *st, struct st_vault **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_list_all(st, ST_Q_VAULT_LIST, "SELECT " VAULT_COLS " FROM vaults ORDER BY name", sizeof **out, read_row, &arr, n);
    *out = arr;
    return rc;
}

mv_rc sq_vault_delete(struct store *st, const char *name)
{
    return st_delete_by_key(st, ST_Q_VAULT_DELETE, "DELETE FROM vaults WHERE name = ?1", name);
}
