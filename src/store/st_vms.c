/* st_vms.c: VMs and their user-assigned identity links (vm_uai).
 *
 * put is an upsert on the (case-insensitive) name: the name keeps the case it was created with
 * and the VM's links, nodes and join tokens survive (INSERT OR REPLACE would cascade-delete
 * them). Deleting a VM cascades to its links, nodes and join tokens (schema.c). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

#define VM_COLS "name, rg, vm_id, system_assigned, system_principal_id, resource_id, created"

mv_rc sq_vm_put(struct store *st, const struct st_vm *vm)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(vm->name[0], MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_VM_PUT,
                  "INSERT INTO vms (" VM_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                  " ON CONFLICT (name) DO UPDATE SET rg = excluded.rg, vm_id = excluded.vm_id,"
                  " system_assigned = excluded.system_assigned,"
                  " system_principal_id = excluded.system_principal_id,"
                  " resource_id = excluded.resource_id, created = excluded.created",
                  &s));
    st_bind_text(st, s, 1, vm->name);
    st_bind_text(st, s, 2, vm->rg);
    st_bind_text(st, s, 3, vm->vm_id);
    st_bind_i64(st, s, 4, vm->system_assigned ? 1 : 0);
    st_bind_text(st, s, 5, vm->system_principal_id);
    st_bind_text(st, s, 6, vm->resource_id);
    st_bind_i64(st, s, 7, vm->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc read_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_vm *vm = item;
    CHECK(st_col_text(s, 0, vm->name, sizeof vm->name));
    CHECK(st_col_text(s, 1, vm->rg, sizeof vm->rg));
    CHECK(st_col_text(s, 2, vm->vm_id, sizeof vm->vm_id));
    vm->system_assigned = sqlite3_column_int64(s, 3) != 0;
    CHECK(st_col_text(s, 4, vm->system_principal_id, sizeof vm->system_principal_id));
    CHECK(st_col_text(s, 5, vm->resource_id, sizeof vm->resource_id));
    vm->created = (int64_t)sqlite3_column_int64(s, 6);
out:
    return rc;
}

mv_rc sq_vm_get(struct store *st, const char *name, struct st_vm *out)
{
    return st_get_by_key(st, ST_Q_VM_GET, "SELECT " VM_COLS " FROM vms WHERE name = ?1",
                         name, read_row, out, sizeof *out);
}

mv_rc sq_vm_list(struct store *st, struct st_vm **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_list_all(st, ST_Q_VM_LIST, "SELECT " VM_COLS " FROM vms ORDER BY name", sizeof **out, read_row, &arr, n);
    *out = arr;
    return rc;
}

mv_rc sq_vm_delete(struct store *st, const char *name)
{
    return st_delete_by_key(st, ST_Q_VM_DELETE, "DELETE FROM vms WHERE name = ?1", name);
}

static mv_rc vm_exists(struct store *st, const char *name)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    CHECK(st_prep(st, ST_Q_VM_EXISTS, "SELECT 1 FROM vms WHERE name = ?1", &s));
    st_bind_text(st, s, 1, name);
    CHECK(st_step(st, s, &row));
    ENSURE_MSG(row, MV_ERR_NOT_FOUND, "store: no VM %s", name);
out:
    st_done(s);
    return rc;
}

static mv_rc uai_add(struct store *st, const char *vm, const char *identity)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    /* The same identity twice (in any case) is one link. An unknown identity fails the
     * foreign key: NOT_FOUND. */
    CHECK(st_prep(st, ST_Q_UAI_ADD,
                  "INSERT INTO vm_uai (vm, identity) VALUES (?1, ?2)"
                  " ON CONFLICT (vm, identity) DO NOTHING",
                  &s));
    st_bind_text(st, s, 1, vm);
    st_bind_text(st, s, 2, identity);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_vm_uai_set(struct store *st, const char *vm, const char *const *names, size_t n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    struct st_tx tx = {0};
    CHECK(st_tx_begin(st, &tx));
    CHECK(vm_exists(st, vm));
    CHECK(st_prep(st, ST_Q_UAI_CLEAR, "DELETE FROM vm_uai WHERE vm = ?1", &s));
    st_bind_text(st, s, 1, vm);
    CHECK(st_run(st, s, NULL));
    st_done(s);
    s = NULL;
    for (size_t i = 0; i < n; i++) {
        ENSURE(names[i] && names[i][0], MV_ERR_BAD_REQUEST);
        CHECK(uai_add(st, vm, names[i]));
    }
    CHECK(st_tx_commit(st, &tx));
out:
    st_done(s);
    st_tx_end(st, &tx);
    return rc;
}

static mv_rc read_name(sqlite3_stmt *s, void *item)
{
    return st_col_text(s, 0, item, ST_NAME);
}

mv_rc sq_vm_uai_list(struct store *st, const char *vm, char (**names)[ST_NAME], size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *names = NULL;
    *n = 0;
    /* identities.name: the case the identity was created with */
    CHECK(st_prep(st, ST_Q_UAI_LIST,
                  "SELECT i.name FROM vm_uai u JOIN identities i ON i.name = u.identity"
                  " WHERE u.vm = ?1 ORDER BY u.rowid",
                  &s));
    st_bind_text(st, s, 1, vm);
    CHECK(st_collect(st, s, sizeof **names, read_name, NULL, &arr, n));
    if (*n == 0)
        CHECK(vm_exists(st, vm));
    *names = arr;
out:
    st_done(s);
    return rc;
}

/* ---- per-process identity bindings ---- */

#define BIND_COLS "vm, identity, kind, value, created"

static int binding_ok(const struct st_binding *b)
{
    return b->vm[0] && b->identity[0] && b->value[0] &&
           (b->kind == ST_BIND_UID || b->kind == ST_BIND_CGROUP);
}

mv_rc sq_binding_add(struct store *st, const struct st_binding *b)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(binding_ok(b), MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_BIND_ADD,
                  "INSERT INTO vm_bindings (" BIND_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)"
                  " ON CONFLICT (vm, identity, kind, value) DO NOTHING",
                  &s));
    st_bind_text(st, s, 1, b->vm);
    st_bind_text(st, s, 2, b->identity);
    st_bind_i64(st, s, 3, b->kind);
    st_bind_text(st, s, 4, b->value);
    st_bind_i64(st, s, 5, b->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_binding_remove(struct store *st, const struct st_binding *b)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_BIND_REMOVE,
                  "DELETE FROM vm_bindings WHERE vm = ?1 AND identity = ?2 AND kind = ?3"
                  " AND value = ?4",
                  &s));
    st_bind_text(st, s, 1, b->vm);
    st_bind_text(st, s, 2, b->identity);
    st_bind_i64(st, s, 3, b->kind);
    st_bind_text(st, s, 4, b->value);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

static mv_rc binding_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_binding *b = item;
    CHECK(st_col_text(s, 0, b->vm, sizeof b->vm));
    CHECK(st_col_text(s, 1, b->identity, sizeof b->identity));
    b->kind = (int)sqlite3_column_int64(s, 2);
    CHECK(st_col_text(s, 3, b->value, sizeof b->value));
    b->created = (int64_t)sqlite3_column_int64(s, 4);
out:
    return rc;
}

mv_rc sq_binding_list(struct store *st, const char *vm, struct st_binding **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    CHECK(st_prep(st, ST_Q_BIND_LIST,
                  "SELECT " BIND_COLS " FROM vm_bindings WHERE vm = ?1"
                  " ORDER BY identity, kind, value",
                  &s));
    st_bind_text(st, s, 1, vm);
    CHECK(st_collect(st, s, sizeof **out, binding_row, NULL, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}
