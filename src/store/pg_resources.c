/* pg_resources.c: VMs (and their user-assigned identity links), user-assigned identities,
 * vaults and role assignments on PostgreSQL.
 *
 * Puts are upserts on the lowered name (k) or id, keeping the first spelling of the name and
 * the children (VM links, nodes, join tokens; a vault's secrets). Deletes cascade through the
 * foreign keys of pg_schema.c. Every call converges when re-run after an unknown commit:
 * upserts rewrite the same row, uai_set replaces the whole list, deletes accept "already gone"
 * on a re-run. */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define VM_COLS "name, rg, vm_id, system_assigned, system_principal_id, resource_id, created"
#define IDENTITY_COLS "name, rg, principal_id, client_id, resource_id, created"
#define VAULT_COLS "name, rg, vault_id, soft_delete_days, purge_protection, created"
#define RA_COLS "id, principal_id, role_id, scope, created"

static mv_rc bad(const char *what)
{
    mv_fail(MV_ERR_BAD_REQUEST, "store: %s", what);
    return MV_ERR_BAD_REQUEST;
}

/* ---- VMs ---- */

mv_rc pg_vm_put(struct pg_store *pg, const struct st_vm *vm)
{
    struct pg_params pp = {0};
    if (!vm->name[0])
        return bad("VM without a name");
    pp_text(&pp, vm->name);
    pp_text(&pp, vm->rg);
    pp_text(&pp, vm->vm_id);
    pp_i64(&pp, vm->system_assigned ? 1 : 0);
    pp_text(&pp, vm->system_principal_id);
    pp_text(&pp, vm->resource_id);
    pp_i64(&pp, vm->created);
    return pg_write_one(pg,
                        "INSERT INTO vms (k, " VM_COLS ") VALUES (lower($1), $1, $2, $3, $4, $5, $6, $7)"
                        " ON CONFLICT (k) DO UPDATE SET rg = excluded.rg, vm_id = excluded.vm_id,"
                        " system_assigned = excluded.system_assigned,"
                        " system_principal_id = excluded.system_principal_id,"
                        " resource_id = excluded.resource_id, created = excluded.created",
                        &pp, 1);
}

static mv_rc vm_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_vm *vm = item;
    CHECK(pg_col_text(r, row, 0, vm->name, sizeof vm->name));
    CHECK(pg_col_text(r, row, 1, vm->rg, sizeof vm->rg));
    CHECK(pg_col_text(r, row, 2, vm->vm_id, sizeof vm->vm_id));
    vm->system_assigned = pg_col_i64(r, row, 3) != 0;
    CHECK(pg_col_text(r, row, 4, vm->system_principal_id, sizeof vm->system_principal_id));
    CHECK(pg_col_text(r, row, 5, vm->resource_id, sizeof vm->resource_id));
    vm->created = pg_col_i64(r, row, 6);
out:
    return rc;
}

mv_rc pg_vm_get(struct pg_store *pg, const char *name, struct st_vm *out)
{
    return pg_get_by_key(pg, "SELECT " VM_COLS " FROM vms WHERE k = lower($1)", name, vm_row,
                         NULL, out, sizeof *out);
}

mv_rc pg_vm_list(struct pg_store *pg, struct st_vm **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = pg_list_all(pg, "SELECT " VM_COLS " FROM vms ORDER BY k", sizeof **out, vm_row,
                           NULL, &arr, n);
    *out = arr;
    return rc;
}

mv_rc pg_vm_delete(struct pg_store *pg, const char *name)
{
    return pg_delete_by_key(pg, "DELETE FROM vms WHERE k = lower($1)", name, 1);
}

struct uai_call {
    const char *vm;
    const char *const *names;
    size_t n;
    char (**out)[ST_NAME];
    size_t *nout;
};

static mv_rc vm_exists(struct pg_store *pg, const char *vm)
{
    mv_rc rc = MV_OK;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    pp_text(&pp, vm);
    CHECK(pg_exec(pg, "SELECT 1 FROM vms WHERE k = lower($1)", &pp, &r, NULL));
    ENSURE_MSG(PQntuples(r) == 1, MV_ERR_NOT_FOUND, "store: no VM %s", vm);
out:
    PQclear(r);
    return rc;
}

static mv_rc uai_set_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct uai_call *c = arg;
    struct pg_params pp = {0};
    CHECK(vm_exists(pg, c->vm));
    pp_text(&pp, c->vm);
    CHECK(pg_exec(pg, "DELETE FROM vm_uai WHERE vm = lower($1)", &pp, NULL, NULL));
    for (size_t i = 0; i < c->n; i++) {
        ENSURE(c->names[i] && c->names[i][0], MV_ERR_BAD_REQUEST);
        pp.n = 0;
        pp_text(&pp, c->vm);
        pp_text(&pp, c->names[i]);
        /* The same identity twice (in any case) is one link; an unknown one fails the
         * foreign key: NOT_FOUND. */
        CHECK(pg_exec(pg,
                      "INSERT INTO vm_uai (vm, identity) VALUES (lower($1), lower($2))"
                      " ON CONFLICT (vm, identity) DO NOTHING",
                      &pp, NULL, NULL));
    }
    pg->touched = 1;
out:
    return rc;
}

mv_rc pg_vm_uai_set(struct pg_store *pg, const char *vm, const char *const *names, size_t n)
{
    struct uai_call c = {.vm = vm, .names = names, .n = n};
    return pg_run(pg, PG_WRITE, uai_set_fn, &c);
}

static mv_rc name_row(const PGresult *r, int row, void *item)
{
    return pg_col_text(r, row, 0, item, ST_NAME);
}

static mv_rc uai_list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct uai_call *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    void *arr = NULL;
    pp_text(&pp, c->vm);
    /* identities.name: the case the identity was created with */
    CHECK(pg_exec(pg,
                  "SELECT i.name FROM vm_uai u JOIN identities i ON i.k = u.identity"
                  " WHERE u.vm = lower($1) ORDER BY u.seq",
                  &pp, &r, NULL));
    CHECK(pg_collect(r, sizeof **c->out, name_row, NULL, &arr, c->nout));
    if (*c->nout == 0)
        CHECK(vm_exists(pg, c->vm));
    *c->out = arr;
    arr = NULL;
out:
    free(arr);
    PQclear(r);
    return rc;
}

mv_rc pg_vm_uai_list(struct pg_store *pg, const char *vm, char (**names)[ST_NAME], size_t *n)
{
    struct uai_call c = {.vm = vm, .out = names, .nout = n};
    *names = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, uai_list_fn, &c);
}

/* ---- user-assigned identities ---- */

mv_rc pg_identity_put(struct pg_store *pg, const struct st_identity *id)
{
    struct pg_params pp = {0};
    if (!id->name[0])
        return bad("identity without a name");
    pp_text(&pp, id->name);
    pp_text(&pp, id->rg);
    pp_text(&pp, id->principal_id);
    pp_text(&pp, id->client_id);
    pp_text(&pp, id->resource_id);
    pp_i64(&pp, id->created);
    return pg_write_one(pg,
                        "INSERT INTO identities (k, " IDENTITY_COLS ")"
                        " VALUES (lower($1), $1, $2, $3, $4, $5, $6)"
                        " ON CONFLICT (k) DO UPDATE SET rg = excluded.rg,"
                        " principal_id = excluded.principal_id, client_id = excluded.client_id,"
                        " resource_id = excluded.resource_id, created = excluded.created",
                        &pp, 1);
}

static mv_rc identity_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_identity *id = item;
    CHECK(pg_col_text(r, row, 0, id->name, sizeof id->name));
    CHECK(pg_col_text(r, row, 1, id->rg, sizeof id->rg));
    CHECK(pg_col_text(r, row, 2, id->principal_id, sizeof id->principal_id));
    CHECK(pg_col_text(r, row, 3, id->client_id, sizeof id->client_id));
    CHECK(pg_col_text(r, row, 4, id->resource_id, sizeof id->resource_id));
    id->created = pg_col_i64(r, row, 5);
out:
    return rc;
}

mv_rc pg_identity_get(struct pg_store *pg, const char *name, struct st_identity *out)
{
    return pg_get_by_key(pg, "SELECT " IDENTITY_COLS " FROM identities WHERE k = lower($1)", name,
                         identity_row, NULL, out, sizeof *out);
}

mv_rc pg_identity_list(struct pg_store *pg, struct st_identity **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = pg_list_all(pg, "SELECT " IDENTITY_COLS " FROM identities ORDER BY k", sizeof **out,
                           identity_row, NULL, &arr, n);
    *out = arr;
    return rc;
}

mv_rc pg_identity_delete(struct pg_store *pg, const char *name)
{
    return pg_delete_by_key(pg, "DELETE FROM identities WHERE k = lower($1)", name, 1);
}

/* ---- vaults ---- */

mv_rc pg_vault_put(struct pg_store *pg, const struct st_vault *v)
{
    struct pg_params pp = {0};
    if (!v->name[0])
        return bad("vault without a name");
    pp_text(&pp, v->name);
    pp_text(&pp, v->rg);
    pp_text(&pp, v->vault_id);
    pp_i64(&pp, v->soft_delete_days);
    pp_i64(&pp, v->purge_protection ? 1 : 0);
    pp_i64(&pp, v->created);
    return pg_write_one(pg,
                        "INSERT INTO vaults (k, " VAULT_COLS ") VALUES (lower($1), $1, $2, $3, $4, $5, $6)"
                        " ON CONFLICT (k) DO UPDATE SET rg = excluded.rg,"
                        " vault_id = excluded.vault_id, soft_delete_days = excluded.soft_delete_days,"
                        " purge_protection = excluded.purge_protection, created = excluded.created",
                        &pp, 1);
}

static mv_rc vault_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_vault *v = item;
    CHECK(pg_col_text(r, row, 0, v->name, sizeof v->name));
    CHECK(pg_col_text(r, row, 1, v->rg, sizeof v->rg));
    CHECK(pg_col_text(r, row, 2, v->vault_id, sizeof v->vault_id));
    int64_t days = pg_col_i64(r, row, 3);
    ENSURE_MSG(days >= 0 && days <= 365, MV_ERR_INTERNAL, "store: soft_delete_days %lld",
               (long long)days);
    v->soft_delete_days = (int)days;
    v->purge_protection = pg_col_i64(r, row, 4) != 0;
    v->created = pg_col_i64(r, row, 5);
out:
    return rc;
}

mv_rc pg_vault_get(struct pg_store *pg, const char *name, struct st_vault *out)
{
    return pg_get_by_key(pg, "SELECT " VAULT_COLS " FROM vaults WHERE k = lower($1)", name,
                         vault_row, NULL, out, sizeof *out);
}

mv_rc pg_vault_list(struct pg_store *pg, struct st_vault **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = pg_list_all(pg, "SELECT " VAULT_COLS " FROM vaults ORDER BY k", sizeof **out,
                           vault_row, NULL, &arr, n);
    *out = arr;
    return rc;
}

mv_rc pg_vault_delete(struct pg_store *pg, const char *name)
{
    return pg_delete_by_key(pg, "DELETE FROM vaults WHERE k = lower($1)", name, 1);
}

/* ---- role assignments ---- */

mv_rc pg_role_assignment_put(struct pg_store *pg, const struct st_role_assignment *a)
{
    struct pg_params pp = {0};
    if (!a->id[0] || !a->principal_id[0] || !a->role_id[0] || !a->scope[0])
        return bad("incomplete role assignment");
    pp_text(&pp, a->id);
    pp_text(&pp, a->principal_id);
    pp_text(&pp, a->role_id);
    pp_text(&pp, a->scope);
    pp_i64(&pp, a->created);
    /* Another id for the same (principal, role, scope) violates the unique index: CONFLICT. */
    return pg_write_one(pg,
                        "INSERT INTO role_assignments (" RA_COLS ") VALUES ($1, $2, $3, $4, $5)"
                        " ON CONFLICT ((lower(id))) DO UPDATE SET principal_id = excluded.principal_id,"
                        " role_id = excluded.role_id, scope = excluded.scope,"
                        " created = excluded.created",
                        &pp, 1);
}

static mv_rc ra_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment *a = item;
    CHECK(pg_col_text(r, row, 0, a->id, sizeof a->id));
    CHECK(pg_col_text(r, row, 1, a->principal_id, sizeof a->principal_id));
    CHECK(pg_col_text(r, row, 2, a->role_id, sizeof a->role_id));
    CHECK(pg_col_text(r, row, 3, a->scope, sizeof a->scope));
    a->created = pg_col_i64(r, row, 4);
out:
    return rc;
}

mv_rc pg_role_assignment_get(struct pg_store *pg, const char *id, struct st_role_assignment *out)
{
    return pg_get_by_key(pg, "SELECT " RA_COLS " FROM role_assignments WHERE lower(id) = lower($1)",
                         id, ra_row, NULL, out, sizeof *out);
}

/* One statement per filter combination, so each can use its index. */
static const char *const RA_LISTS[4] = {
    "SELECT " RA_COLS " FROM role_assignments ORDER BY created, seq",
    "SELECT " RA_COLS " FROM role_assignments WHERE lower(principal_id) = lower($1)"
    " ORDER BY created, seq",
    "SELECT " RA_COLS " FROM role_assignments WHERE lower(scope) = lower($1)"
    " ORDER BY created, seq",
    "SELECT " RA_COLS " FROM role_assignments WHERE lower(principal_id) = lower($1)"
    " AND lower(scope) = lower($2) ORDER BY created, seq",
};

struct ra_list {
    const char *principal_id, *scope;
    struct st_role_assignment **out;
    size_t *n;
};

static mv_rc ra_list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct ra_list *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    void *arr = NULL;
    size_t which = (c->principal_id ? 1u : 0u) | (c->scope ? 2u : 0u);
    if (c->principal_id)
        pp_text(&pp, c->principal_id);
    if (c->scope)
        pp_text(&pp, c->scope);
    CHECK(pg_exec(pg, RA_LISTS[which], &pp, &r, NULL));
    CHECK(pg_collect(r, sizeof **c->out, ra_row, NULL, &arr, c->n));
    *c->out = arr;
out:
    PQclear(r);
    return rc;
}

mv_rc pg_role_assignment_list(struct pg_store *pg, const char *principal_id, const char *scope,
                              struct st_role_assignment **out, size_t *n)
{
    struct ra_list c = {principal_id, scope, out, n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, ra_list_fn, &c);
}

mv_rc pg_role_assignment_delete(struct pg_store *pg, const char *id)
{
    return pg_delete_by_key(pg, "DELETE FROM role_assignments WHERE lower(id) = lower($1)", id, 1);
}

/* ---- per-process identity bindings (vm and identity stored lowered, as in vm_uai) ---- */

mv_rc pg_binding_add(struct pg_store *pg, const struct st_binding *b)
{
    struct pg_params pp = {0};
    if (!b->vm[0] || !b->identity[0] || !b->value[0] ||
        (b->kind != ST_BIND_UID && b->kind != ST_BIND_CGROUP))
        return bad("incomplete identity binding");
    pp_text(&pp, b->vm);
    pp_text(&pp, b->identity);
    pp_i64(&pp, b->kind);
    pp_text(&pp, b->value);
    pp_i64(&pp, b->created);
    return pg_write_one(pg,
                        "INSERT INTO vm_bindings (vm, identity, kind, value, created)"
                        " VALUES (lower($1), lower($2), $3, $4, $5)"
                        " ON CONFLICT (vm, identity, kind, value) DO NOTHING",
                        &pp, 1);
}

static mv_rc binding_remove_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    const struct st_binding *b = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, b->vm);
    pp_text(&pp, b->identity);
    pp_i64(&pp, b->kind);
    pp_text(&pp, b->value);
    CHECK(pg_exec(pg,
                  "DELETE FROM vm_bindings WHERE vm = lower($1) AND identity = lower($2)"
                  " AND kind = $3 AND value = $4",
                  &pp, NULL, &changes));
    ENSURE(changes > 0 || pg->replay, MV_ERR_NOT_FOUND);
    pg->touched = 1;
out:
    return rc;
}

mv_rc pg_binding_remove(struct pg_store *pg, const struct st_binding *b)
{
    return pg_run(pg, PG_WRITE1, binding_remove_fn, (void *)b);
}

static mv_rc binding_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_binding *b = item;
    CHECK(pg_col_text(r, row, 0, b->vm, sizeof b->vm));
    CHECK(pg_col_text(r, row, 1, b->identity, sizeof b->identity));
    b->kind = (int)pg_col_i64(r, row, 2);
    CHECK(pg_col_text(r, row, 3, b->value, sizeof b->value));
    b->created = pg_col_i64(r, row, 4);
out:
    return rc;
}

struct binding_list {
    const char *vm;
    struct st_binding **out;
    size_t *n;
};

static mv_rc binding_list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct binding_list *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    void *arr = NULL;
    pp_text(&pp, c->vm);
    CHECK(pg_exec(pg,
                  "SELECT vm, identity, kind, value, created FROM vm_bindings"
                  " WHERE vm = lower($1) ORDER BY identity, kind, value",
                  &pp, &r, NULL));
    CHECK(pg_collect(r, sizeof **c->out, binding_row, NULL, &arr, c->n));
    *c->out = arr;
    arr = NULL;
out:
    free(arr);
    PQclear(r);
    return rc;
}

mv_rc pg_binding_list(struct pg_store *pg, const char *vm, struct st_binding **out, size_t *n)
{
    struct binding_list c = {vm, out, n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, binding_list_fn, &c);
}
