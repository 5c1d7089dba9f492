/* st_roles.c: role assignments (RBAC grants of a role definition to a principal at a scope).
 * Scopes are stored as given and compared case-insensitively (COLLATE NOCASE); prefix matching
 * of scopes is the RBAC layer's (rbac/rbac.h). One (principal, role, scope) triple can be
 * assigned once (CONFLICT otherwise, as Azure's RoleAssignmentExists). */
#include <string.h>

#include "store/sqlite_internal.h"

#define RA_COLS "id, principal_id, role_id, scope, created"

mv_rc sq_role_assignment_put(struct store *st, const struct st_role_assignment *a)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(a->id[0] && a->principal_id[0] && a->role_id[0] && a->scope[0], MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_RA_PUT,
                  "INSERT INTO role_assignments (" RA_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)"
                  " ON CONFLICT (id) DO UPDATE SET principal_id = excluded.principal_id,"
                  " role_id = excluded.role_id, scope = excluded.scope,"
                  " created = excluded.created",
                  &s));
    st_bind_text(st, s, 1, a->id);
    st_bind_text(st, s, 2, a->principal_id);
    st_bind_text(st, s, 3, a->role_id);
    st_bind_text(st, s, 4, a->scope);
    st_bind_i64(st, s, 5, a->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc read_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment *a = item;
    CHECK(st_col_text(s, 0, a->id, sizeof a->id));
    CHECK(st_col_text(s, 1, a->principal_id, sizeof a->principal_id));
    CHECK(st_col_text(s, 2, a->role_id, sizeof a->role_id));
    CHECK(st_col_text(s, 3, a->scope, sizeof a->scope));
    a->created = (int64_t)sqlite3_column_int64(s, 4);
out:
    return rc;
}

mv_rc sq_role_assignment_get(struct store *st, const char *id, struct st_role_assignment *out)
{
    return st_get_by_key(st, ST_Q_RA_GET, "SELECT " RA_COLS " FROM role_assignments WHERE id = ?1",
                         id, read_row, out, sizeof *out);
}

/* One statement per filter combination, so each one can use its index. */
static const struct {
    enum st_q id;
    const char *sql;
} ra_lists[4] = {
    {ST_Q_RA_LIST_ALL, "SELECT " RA_COLS " FROM role_assignments ORDER BY created, rowid"},
    {ST_Q_RA_LIST_PRINCIPAL, "SELECT " RA_COLS " FROM role_assignments"
                             " WHERE principal_id = ?1 ORDER BY created, rowid"},
    {ST_Q_RA_LIST_SCOPE, "SELECT " RA_COLS " FROM role_assignments"
                         " WHERE scope = ?2 ORDER BY created, rowid"},
    {ST_Q_RA_LIST_BOTH, "SELECT " RA_COLS " FROM role_assignments"
                        " WHERE principal_id = ?1 AND scope = ?2 ORDER BY created, rowid"},
};

mv_rc sq_role_assignment_list(struct store *st, const char *principal_id, const char *scope,
                                 struct st_role_assignment **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    size_t which = (principal_id ? 1u : 0u) | (scope ? 2u : 0u);
    CHECK(st_prep(st, ra_lists[which].id, ra_lists[which].sql, &s));
    if (principal_id)
        st_bind_text(st, s, 1, principal_id);
    if (scope)
        st_bind_text(st, s, 2, scope);
    CHECK(st_collect(st, s, sizeof **out, read_row, NULL, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}

mv_rc sq_role_assignment_delete(struct store *st, const char *id)
{
    return st_delete_by_key(st, ST_Q_RA_DELETE, "DELETE FROM role_assignments WHERE id = ?1", id);
}
