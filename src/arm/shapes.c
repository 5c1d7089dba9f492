/* shapes.c: the ARM JSON of each control-plane resource, as az and the Azure SDKs read it.
 *
 * Shapes follow Azure's (reference §7 for subscriptions; Microsoft.Compute, ManagedIdentity,
 * KeyVault and Authorization resource models for the rest). mivault does not keep locations or
 * tags: every resource is in location "local" with no tags. Builders return NULL on
 * out-of-memory; arm_reply turns a NULL body into a 500. */
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"
#include "state/state.h"

json_t *arm_subscription_json(const struct arm_plane *srv)
{
    char id[ST_SCOPE];
    if (arm_sub_id(srv, id) != MV_OK)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:[]}", "id", id,
                     "authorizationSource", "RoleBased", "subscriptionId", srv->tenant.subscription_id,
                     "tenantId", srv->tenant.tenant_id, "displayName", "mivault", "state", "Enabled",
                     "subscriptionPolicies", "locationPlacementId", "Public_2014-09-01", "quotaId",
                     "PayAsYouGo_2014-09-01", "spendingLimit", "Off", "managedByTenants");
}

json_t *arm_rg_json(const struct arm_plane *srv)
{
    char id[ST_SCOPE];
    if (arm_rg_id(srv, id) != MV_OK)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "id", id, "name", srv->tenant.resource_group,
                     "type", "Microsoft.Resources/resourceGroups", "location", ARM_LOCATION,
                     "properties", "provisioningState", "Succeeded");
}

/* identity.userAssignedIdentities: {"<uai id>":{"principalId","clientId"}} */
static mv_rc vm_uais(struct arm_req *ar, const char *vm, json_t **out)
{
    mv_rc rc = MV_OK;
    char(*names)[ST_NAME] = NULL;
    size_t n = 0;
    json_t *o = json_object();
    ENSURE(o != NULL, MV_ERR_INTERNAL);
    CHECK(store_vm_uai_list(ar->st, vm, &names, &n));
    for (size_t i = 0; i < n; i++) {
        struct st_identity id;
        rc = store_identity_get(ar->st, names[i], &id);
        if (rc == MV_ERR_NOT_FOUND) { /* deleted since: store_identity_delete unlinks it */
            rc = MV_OK;
            continue;
        }
        CHECK(rc);
        ENSURE(json_object_set_new(o, id.resource_id,
                                   json_pack("{s:s, s:s}", "principalId", id.principal_id, "clientId",
                                             id.client_id)) == 0,
               MV_ERR_INTERNAL);
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    free(names);
    return rc;
}

mv_rc arm_vm_json(struct arm_req *ar, const struct st_vm *vm, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *uais = NULL, *identity = NULL, *vmj = NULL;
    const char *tid = ar->srv->tenant.tenant_id;
    int sys = vm->system_principal_id[0] != '\0';
    CHECK(vm_uais(ar, vm->name, &uais));
    int user = json_object_size(uais) > 0;
    /* Always present, {"type":"None"} without an identity, so callers can read identity.type. */
    identity = json_pack("{s:s}", "type", sys && user ? "SystemAssigned, UserAssigned"
                                          : sys      ? "SystemAssigned"
                                          : user     ? "UserAssigned"
                                                     : "None");
    ENSURE(identity != NULL, MV_ERR_INTERNAL);
    if (sys)
        ENSURE(json_object_set_new(identity, "principalId", json_string(vm->system_principal_id)) == 0 &&
                   json_object_set_new(identity, "tenantId", json_string(tid)) == 0,
               MV_ERR_INTERNAL);
    if (user)
        ENSURE(json_object_set(identity, "userAssignedIdentities", uais) == 0, MV_ERR_INTERNAL);
    vmj = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "id", vm->resource_id, "name", vm->name, "type",
                    "Microsoft.Compute/virtualMachines", "location", ARM_LOCATION, "properties", "vmId",
                    vm->vm_id, "provisioningState", "Succeeded");
    ENSURE(vmj != NULL, MV_ERR_INTERNAL);
    ENSURE(json_object_set(vmj, "identity", identity) == 0, MV_ERR_INTERNAL);
    *out = vmj;
    vmj = NULL;
out:
    json_decref(vmj);
    json_decref(identity);
    json_decref(uais);
    return rc;
}

json_t *arm_identity_json(const struct arm_plane *srv, const struct st_identity *id)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{}, s:{s:s, s:s, s:s}}", "id", id->resource_id, "name", id->name,
                     "type", "Microsoft.ManagedIdentity/userAssignedIdentities", "location", ARM_LOCATION,
                     "tags", "properties", "tenantId", srv->tenant.tenant_id, "principalId",
                     id->principal_id, "clientId", id->client_id);
}

mv_rc arm_vault_json(const struct arm_plane *srv, const struct st_vault *v, json_t **out)
{
    mv_rc rc = MV_OK;
    char id[ST_SCOPE], lname[ST_NAME], uri[MV_MAX_URL];
    CHECK(arm_resource_id(srv, "Microsoft.KeyVault/vaults", v->name, id));
    CHECK(mv_copy(lname, sizeof lname, v->name));
    mv_lower(lname); /* a DNS label: Azure prints vaultUri in lower case */
    CHECK(state_vault_url(srv->cfg, lname, uri, sizeof uri - 1));
    size_t n = strlen(uri);
    uri[n] = '/';
    uri[n + 1] = '\0';
    *out = json_pack("{s:s, s:s, s:s, s:s, s:{}, s:{s:s, s:{s:s, s:s}, s:s, s:b, s:b, s:i, s:b, s:s}}",
                     "id", id, "name", v->name, "type", "Microsoft.KeyVault/vaults", "location",
                     ARM_LOCATION, "tags", "properties", "tenantId", srv->tenant.tenant_id, "sku",
                     "family", "A", "name", "standard", "vaultUri", uri, "enableRbacAuthorization", 1,
                     "enableSoftDelete", 1, "softDeleteRetentionInDays", v->soft_delete_days,
                     "enablePurgeProtection", v->purge_protection ? 1 : 0, "provisioningState", "Succeeded");
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    return rc;
}

json_t *arm_assignment_json(const struct arm_plane *srv, const struct st_role_assignment *a)
{
    char id[ST_SCOPE + 128], rd[256], created[40];
    int root = a->scope[0] == '\0' || strcmp(a->scope, "/") == 0;
    if (mv_fmt(id, sizeof id, "%s/providers/Microsoft.Authorization/roleAssignments/%s", root ? "" : a->scope,
               a->id) != MV_OK ||
        mv_fmt(rd, sizeof rd, "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
               srv->tenant.subscription_id, a->role_id) != MV_OK)
        return NULL;
    arm_iso8601(a->created, created);
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:n, s:n, s:n}}", "id", id, "name",
                     a->id, "type", "Microsoft.Authorization/roleAssignments", "properties",
                     "roleDefinitionId", rd, "principalId", a->principal_id, "principalType",
                     "ServicePrincipal", "scope", root ? "/" : a->scope, "createdOn", created, "updatedOn",
                     created, "condition", "conditionVersion", "description");
}

static json_t *strings(const char *const *list)
{
    json_t *a = json_array();
    for (size_t i = 0; a && list && list[i]; i++) {
        if (json_array_append_new(a, json_string(list[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

json_t *arm_roledef_json(const struct arm_plane *srv, const struct role_def *r, int sub_level)
{
    char id[256];
    if ((sub_level ? mv_fmt(id, sizeof id, "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
                            srv->tenant.subscription_id, r->id)
                   : mv_fmt(id, sizeof id, "/providers/Microsoft.Authorization/roleDefinitions/%s", r->id)) != MV_OK)
        return NULL;
    /* "o" steals each array; json_pack fails (and frees them) if one is NULL. */
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:[{s:o, s:o, s:o, s:o}], s:[s]}}", "id", id, "name",
                     r->id, "type", "Microsoft.Authorization/roleDefinitions", "properties", "roleName",
                     r->name, "description", r->description, "type", "BuiltInRole", "permissions",
                     "actions", strings(r->actions), "notActions", strings(r->not_actions), "dataActions",
                     strings(r->data_actions), "notDataActions", strings(r->not_data_actions),
                     "assignableScopes", "/");
}
