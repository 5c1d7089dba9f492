/* vaults.c: Microsoft.KeyVault/vaults — the management side of the vaults the data plane
 * (src/vault/) serves at https://{name}.{vault_suffix}[:port]/.
 *
 *   PUT    …/vaults/{name}    create (201) or update (200)
 *   GET    …/vaults/{name}, …/vaults
 *   DELETE …/vaults/{name}    200 (the vault and its secrets), or 204 when absent
 *
 * Every vault uses the RBAC permission model and soft delete (Azure no longer lets soft delete
 * be turned off). Purge protection, once enabled, cannot be disabled (as in Azure).
 * softDeleteRetentionInDays is 7..90, default 90. Role assignments at a deleted vault's scope
 * stay, as they do in Azure (a scope is a string). */
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"
#include "common/limits.h"

#define KV_TYPE "Microsoft.KeyVault/vaults"
#define KV_READ KV_TYPE "/read"
#define KV_WRITE KV_TYPE "/write"
#define KV_DELETE KV_TYPE "/delete"
#define RETENTION_MIN 7
#define RETENTION_MAX 90

/* Applies body.properties onto v (fresh defaults or the stored vault). */
static mv_rc apply_properties(struct arm_req *ar, json_t *body, struct st_vault *v, int found)
{
    json_t *props = json_object_get(body, "properties");
    if (!props || json_is_null(props))
        return MV_OK;
    if (!json_is_object(props))
        return arm_fail(ar, 400, "InvalidRequestContent", "The property 'properties' must be an object.");
    json_t *days = json_object_get(props, "softDeleteRetentionInDays");
    if (days && !json_is_null(days)) {
        json_int_t d = json_is_integer(days) ? json_integer_value(days) : -1;
        if (d < RETENTION_MIN || d > RETENTION_MAX)
            return arm_fail(ar, 400, "BadRequest",
                            "The property 'softDeleteRetentionInDays' must be an integer between %d and %d.",
                            RETENTION_MIN, RETENTION_MAX);
        v->soft_delete_days = (int)d;
    }
    json_t *sd = json_object_get(props, "enableSoftDelete");
    if (sd && !json_is_null(sd)) {
        if (!json_is_boolean(sd))
            return arm_fail(ar, 400, "InvalidRequestContent", "The property 'enableSoftDelete' must be a boolean.");
        if (json_is_false(sd))
            return arm_fail(ar, 400, "BadRequest",
                            "Soft delete cannot be disabled: it is always enabled on key vaults.");
    }
    json_t *pp = json_object_get(props, "enablePurgeProtection");
    if (pp && !json_is_null(pp)) {
        if (!json_is_boolean(pp))
            return arm_fail(ar, 400, "InvalidRequestContent",
                            "The property 'enablePurgeProtection' must be a boolean.");
        if (found && v->purge_protection && json_is_false(pp))
            return arm_fail(ar, 400, "BadRequest",
                            "Purge protection cannot be disabled once it has been enabled on a vault.");
        v->purge_protection = json_is_true(pp);
    }
    return MV_OK;
}

void arm_vault_put(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL, *reply = NULL;
    struct st_vault v;
    int in_txn = 0, found = 0;
    const char *name = ar->cap[2];
    char id[ST_SCOPE];
    if (!arm_vault_name_ok(name)) {
        rc = arm_fail(ar, 400, "VaultNameNotValid",
                      "The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric "
                      "characters. The name must begin with a letter, end with a letter or digit, and not "
                      "contain consecutive hyphens.", name);
        goto out;
    }
    CHECK(arm_resource_id(ar->srv, KV_TYPE, name, id));
    ENSURE(arm_authorize(ar, KV_WRITE, id), MV_ERR_FORBIDDEN);
    CHECK(arm_body(ar, &body));
    CHECK(store_begin(ar->st));
    in_txn = 1;
    rc = store_vault_get(ar->st, name, &v);
    found = rc == MV_OK;
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        memset(&v, 0, sizeof v);
        CHECK(mv_copy(v.name, sizeof v.name, name));
        CHECK(mv_copy(v.rg, sizeof v.rg, ar->srv->tenant.resource_group));
        CHECK(mv_uuid(v.vault_id));
        v.soft_delete_days = RETENTION_MAX;
        v.created = mv_now();
    }
    CHECK(rc);
    CHECK(apply_properties(ar, body, &v, found));
    CHECK(store_vault_put(ar->st, &v));
    CHECK(store_commit(ar->st));
    in_txn = 0;
    CHECK(arm_vault_json(ar->srv, &v, &reply));
    arm_reply(ar, found ? 200 : 201, reply);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    json_decref(body);
}

void arm_vault_get(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vault v;
    json_t *reply = NULL;
    char id[ST_SCOPE];
    CHECK(arm_resource_id(ar->srv, KV_TYPE, ar->cap[2], id));
    ENSURE(arm_authorize(ar, KV_READ, id), MV_ERR_FORBIDDEN);
    rc = store_vault_get(ar->st, ar->cap[2], &v);
    if (rc == MV_ERR_NOT_FOUND)
        rc = arm_not_found(ar, KV_TYPE, ar->cap[2]);
    CHECK(rc);
    CHECK(arm_vault_json(ar->srv, &v, &reply));
    arm_reply(ar, 200, reply);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

static mv_rc vault_item_json(struct arm_req *ar, const void *item, json_t **out)
{
    return arm_vault_json(ar->srv, item, out);
}

void arm_vault_list(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vault *vs = NULL;
    size_t n = 0;
    CHECK(arm_list_scope(ar, KV_READ));
    CHECK(store_vault_list(ar->st, &vs, &n));
    arm_reply_list(ar, vs, n, sizeof *vs, vault_item_json);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    free(vs);
}

void arm_vault_delete(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    char id[ST_SCOPE];
    int found = 0;
    CHECK(arm_resource_id(ar->srv, KV_TYPE, ar->cap[2], id));
    ENSURE(arm_authorize(ar, KV_DELETE, id), MV_ERR_FORBIDDEN);
    rc = store_vault_delete(ar->st, ar->cap[2]);
    found = rc == MV_OK;
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    arm_reply_empty(ar, found ? 200 : 204);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}
