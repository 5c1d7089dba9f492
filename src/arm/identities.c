/* identities.c: Microsoft.ManagedIdentity/userAssignedIdentities — identities that exist on
 * their own and are attached to VMs (vms.c).
 *
 *   PUT    …/userAssignedIdentities/{name}    create (201) or, when it exists, no change (200)
 *   GET    …/userAssignedIdentities/{name}, …/userAssignedIdentities
 *   DELETE …/userAssignedIdentities/{name}    200, or 204 when absent
 *
 * Invariants: each identity has one service principal (kind USER, xms_mirid = the identity's
 * resource id) created with it and deleted with it, together with the principal's role
 * assignments and its links to VMs, in one transaction. */
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"
#include "common/limits.h"

#define UAI_TYPE "Microsoft.ManagedIdentity/userAssignedIdentities"
#define UAI_READ UAI_TYPE "/read"
#define UAI_WRITE UAI_TYPE "/write"
#define UAI_DELETE UAI_TYPE "/delete"

/* Inside the transaction. */
static mv_rc uai_create(struct arm_req *ar, const char *name, const char *id, struct st_identity *out,
                        int *created)
{
    mv_rc rc = MV_OK;
    struct st_principal p;
    memset(&p, 0, sizeof p);
    rc = store_identity_get(ar->st, name, out);
    if (rc != MV_ERR_NOT_FOUND) /* exists (idempotent PUT), or a store error */
        return rc;
    rc = MV_OK;
    memset(out, 0, sizeof *out);
    CHECK(mv_uuid(p.id));
    CHECK(mv_uuid(p.client_id));
    p.kind = ST_PRINCIPAL_USER;
    CHECK(mv_copy(p.name, sizeof p.name, name));
    CHECK(mv_copy(p.resource_id, sizeof p.resource_id, id));
    CHECK(store_principal_put(ar->st, &p));
    CHECK(mv_copy(out->name, sizeof out->name, name));
    CHECK(mv_copy(out->rg, sizeof out->rg, ar->srv->tenant.resource_group));
    CHECK(mv_copy(out->principal_id, sizeof out->principal_id, p.id));
    CHECK(mv_copy(out->client_id, sizeof out->client_id, p.client_id));
    CHECK(mv_copy(out->resource_id, sizeof out->resource_id, id));
    out->created = mv_now();
    CHECK(store_identity_put(ar->st, out));
    *created = 1;
out:
    return rc;
}

void arm_uai_put(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL;
    struct st_identity ident;
    int in_txn = 0, created = 0;
    const char *name = ar->cap[2];
    char id[ST_SCOPE];
    if (!arm_identity_name_ok(name)) {
        rc = arm_fail(ar, 400, "InvalidResourceName",
                      "Resource name %s is invalid. The name can be up to %d characters long, contain only "
                      "letters, numbers, hyphens and underscores, and start with a letter or number.",
                      name, MV_MAX_NAME);
        goto out;
    }
    CHECK(arm_resource_id(ar->srv, UAI_TYPE, name, id));
    ENSURE(arm_authorize(ar, UAI_WRITE, id), MV_ERR_FORBIDDEN);
    CHECK(arm_body(ar, &body)); /* location and tags: accepted, not kept */
    CHECK(store_begin(ar->st));
    in_txn = 1;
    CHECK(uai_create(ar, name, id, &ident, &created));
    CHECK(store_commit(ar->st));
    in_txn = 0;
    arm_reply(ar, created ? 201 : 200, arm_identity_json(ar->srv, &ident));
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    json_decref(body);
}

void arm_uai_get(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_identity ident;
    char id[ST_SCOPE];
    CHECK(arm_resource_id(ar->srv, UAI_TYPE, ar->cap[2], id));
    ENSURE(arm_authorize(ar, UAI_READ, id), MV_ERR_FORBIDDEN);
    rc = store_identity_get(ar->st, ar->cap[2], &ident);
    if (rc == MV_ERR_NOT_FOUND)
        rc = arm_not_found(ar, UAI_TYPE, ar->cap[2]);
    CHECK(rc);
    arm_reply(ar, 200, arm_identity_json(ar->srv, &ident));
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

static mv_rc uai_item_json(struct arm_req *ar, const void *item, json_t **out)
{
    *out = arm_identity_json(ar->srv, item);
    return *out ? MV_OK : MV_ERR_INTERNAL;
}

void arm_uai_list(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_identity *ids = NULL;
    size_t n = 0;
    CHECK(arm_list_scope(ar, UAI_READ));
    CHECK(store_identity_list(ar->st, &ids, &n));
    arm_reply_list(ar, ids, n, sizeof *ids, uai_item_json);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    free(ids);
}

void arm_uai_delete(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_identity ident;
    char id[ST_SCOPE];
    int in_txn = 0, found = 0;
    CHECK(arm_resource_id(ar->srv, UAI_TYPE, ar->cap[2], id));
    ENSURE(arm_authorize(ar, UAI_DELETE, id), MV_ERR_FORBIDDEN);
    CHECK(store_begin(ar->st));
    in_txn = 1;
    rc = store_identity_get(ar->st, ar->cap[2], &ident);
    found = rc == MV_OK;
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    if (found) {
        CHECK(arm_drop_principal(ar->st, ident.principal_id));
        CHECK(store_identity_delete(ar->st, ident.name)); /* also unlinks it from every VM */
    }
    CHECK(store_commit(ar->st));
    in_txn = 0;
    arm_reply_empty(ar, found ? 200 : 204);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}
