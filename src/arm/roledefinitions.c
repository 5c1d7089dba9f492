/* roledefinitions.c: the built-in role definitions (roledefs.c) in Azure's shape.
 *
 *   GET {scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=roleName eq '…']
 *   GET {scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}
 *
 * az resolves `--role "Key Vault Secrets User"` with the first form at the assignment's scope.
 * Any authenticated principal of the tenant may read them (they are public facts in Azure);
 * the read is audited like any grant. Ids are under /subscriptions/<s> except at the root. */
#include <string.h>

#include "arm/arm_internal.h"
#include "http/kv.h"

#define RD_READ "Microsoft.Authorization/roleDefinitions/read"

static int sub_level(const struct arm_req *ar) { return strcmp(ar->scope, "/") != 0; }

void arm_rd_list(struct arm_req *ar)
{
    struct arm_filter f;
    const char *filter = kv_get_ci(&ar->req->query, "$filter");
    if (!arm_filter_parse(filter ? filter : "", &f) || f.principal_id[0] || f.at_scope ||
        (f.type[0] && !mv_streq_ci(f.type, "BuiltInRole") && !mv_streq_ci(f.type, "CustomRole"))) {
        (void)arm_fail(ar, 400, "UnsupportedQuery",
                       "The $filter is not supported. Use roleName eq '{name}' or type eq 'BuiltInRole'.");
        return;
    }
    arm_audit_grant(ar, RD_READ, ar->scope);
    json_t *list = json_array();
    int custom_only = f.type[0] && mv_streq_ci(f.type, "CustomRole"); /* there are none */
    for (size_t i = 0; list && !custom_only && i < ROLE_DEFS_COUNT; i++) {
        if (f.role_name[0] && !mv_streq_ci(f.role_name, ROLE_DEFS[i].name))
            continue;
        if (json_array_append_new(list, arm_roledef_json(ar->srv, &ROLE_DEFS[i], sub_level(ar))) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    arm_reply(ar, 200, json_pack("{s:o}", "value", list));
}

void arm_rd_get(struct arm_req *ar)
{
    arm_audit_grant(ar, RD_READ, ar->scope);
    const struct role_def *r = mv_is_uuid(ar->cap[0]) ? rbac_role_find(ar->cap[0]) : NULL;
    if (!r) {
        (void)arm_fail(ar, 404, "RoleDefinitionDoesNotExist",
                       "The specified role definition with ID '%s' does not exist.", ar->cap[0]);
        return;
    }
    arm_reply(ar, 200, arm_roledef_json(ar->srv, r, sub_level(ar)));
}
