/* control.c: the control-plane verbs (vm, identity, keyvault, role), as the admin principal
 * through ARM-shaped REST calls (docs/internal-protocol.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

#define T_VM "Microsoft.Compute/virtualMachines"
#define T_UAI "Microsoft.ManagedIdentity/userAssignedIdentities"
#define T_KV "Microsoft.KeyVault/vaults"
#define RA_PATH "/providers/Microsoft.Authorization/roleAssignments"

static const char *const VM_COLS[] = {"name", "identity.type", "identity.principalId", "properties.vmId", "joinToken", NULL};
static const char *const UAI_COLS[] = {"name", "properties.principalId", "properties.clientId", "id", NULL};
static const char *const KV_COLS[] = {"name", "properties.vaultUri", "properties.softDeleteRetentionInDays", "properties.enablePurgeProtection", NULL};
static const char *const RA_COLS[] = {"name", "properties.principalId", "properties.roleDefinitionId", "properties.scope", NULL};
static const char *const RD_COLS[] = {"name", "properties.roleName", "properties.description", NULL};

/* Opens state + admin session; prints its own errors. */
static int session(struct cli *c, struct arm_client **a)
{
    if (cli_load_state(c) != MV_OK)
        return 1;
    return arm_client_new(c, a) == MV_OK ? 0 : 1;
}

/* One call whose result is printed: the common shape of most verbs. */
static int call_print(struct cli *c, const char *method, const char *type, const char *name, json_t *body,
                      const char *const *cols)
{
    struct arm_client *a = NULL;
    json_t *out = NULL;
    char path[1024];
    int status = 1;
    if (session(c, &a))
        goto done;
    if (arm_provider_path(a, type, name, path, sizeof path) != MV_OK)
        goto done;
    if (arm_call(a, method, path, body, &out, NULL) != MV_OK)
        goto done;
    if (out && json_is_array(json_object_get(out, "value")))
        cli_print(c, json_incref(json_object_get(out, "value")), cols);
    else if (out)
        cli_print(c, json_incref(out), cols);
    status = 0;
done:
    json_decref(out);
    json_decref(body);
    arm_client_free(a);
    return status;
}

static int named(struct cli *c, const char *method, const char *type, json_t *body, const char *const *cols)
{
    const char *name;
    if (cli_require(c, "name", &name) != MV_OK) {
        json_decref(body);
        return 2;
    }
    return call_print(c, method, type, name, body, cols);
}

/* ---- vm ---- */

/* Identity block: type from --assign-identity/--system and --user-assigned names or ids. */
static json_t *identity_block(struct arm_client *a, int system, const char **uai, int nuai)
{
    json_t *ids = json_object();
    for (int i = 0; i < nuai; i++) {
        char id[1024];
        if (uai[i][0] == '/')
            snprintf(id, sizeof id, "%s", uai[i]);
        else if (arm_provider_path(a, T_UAI, uai[i], id, sizeof id) != MV_OK)
            continue;
        json_object_set_new(ids, id, json_object());
    }
    const char *type = system && nuai ? "SystemAssigned, UserAssigned" : system ? "SystemAssigned" : nuai ? "UserAssigned" : "None";
    json_t *ident = json_pack("{s:s}", "type", type);
    if (nuai)
        json_object_set_new(ident, "userAssignedIdentities", ids);
    else
        json_decref(ids);
    return ident;
}

static int join_token_into(struct arm_client *a, const char *vm, json_t *into)
{
    char path[1024];
    json_t *jt = NULL;
    if (arm_provider_path(a, T_VM, vm, path, sizeof path) != MV_OK)
        return 1;
    size_t n = strlen(path);
    snprintf(path + n, sizeof path - n, "/generateJoinToken");
    if (arm_call(a, "POST", path, NULL, &jt, NULL) != MV_OK)
        return 1;
    json_object_set(into, "joinToken", json_object_get(jt, "joinToken"));
    json_object_set(into, "joinTokenExpiresOn", json_object_get(jt, "expiresOn"));
    json_decref(jt);
    return 0;
}

int verb_vm_create(struct cli *c)
{
    const char *name, *uai[16];
    if (cli_require(c, "name", &name) != MV_OK)
        return 2;
    int nuai = cli_get_all(c, "user-assigned", uai, 16);
    struct arm_client *a = NULL;
    json_t *out = NULL;
    char path[1024];
    int status = 1;
    if (session(c, &a))
        goto done;
    json_t *body = json_pack("{s:s, s:o}", "location", "local", "identity",
                             identity_block(a, cli_flag(c, "assign-identity"), uai, nuai));
    if (arm_provider_path(a, T_VM, name, path, sizeof path) != MV_OK) {
        json_decref(body);
        goto done;
    }
    mv_rc rc = arm_call(a, "PUT", path, body, &out, NULL);
    json_decref(body);
    if (rc != MV_OK || join_token_into(a, name, out))
        goto done;
    cli_print(c, json_incref(out), VM_COLS);
    status = 0;
done:
    json_decref(out);
    arm_client_free(a);
    return status;
}

int verb_vm_join_token(struct cli *c)
{
    const char *name;
    if (cli_require(c, "name", &name) != MV_OK)
        return 2;
    struct arm_client *a = NULL;
    int status = 1;
    json_t *out = json_pack("{s:s}", "name", name);
    if (session(c, &a) || join_token_into(a, name, out))
        goto done;
    cli_print(c, json_incref(out), (const char *const[]){"name", "joinToken", "joinTokenExpiresOn", NULL});
    status = 0;
done:
    json_decref(out);
    arm_client_free(a);
    return status;
}

/* assign/remove: read the VM, change its identity block, write it back. */
static int vm_identity_change(struct cli *c, int assign)
{
    const char *name, *uai[16];
    if (cli_require(c, "name", &name) != MV_OK)
        return 2;
    int nuai = cli_get_all(c, "user-assigned", uai, 16);
    int sys_flag = cli_flag(c, "system") || (!nuai && assign);
    struct arm_client *a = NULL;
    json_t *vm = NULL, *out = NULL;
    char path[1024];
    int status = 1;
    if (session(c, &a) || arm_provider_path(a, T_VM, name, path, sizeof path) != MV_OK)
        goto done;
    if (arm_call(a, "GET", path, NULL, &vm, NULL) != MV_OK)
        goto done;
    json_t *ident = json_object_get(vm, "identity");
    const char *type = json_string_value(json_object_get(ident, "type"));
    int system = type && strstr(type, "SystemAssigned") != NULL;
    const char *cur[32];
    int ncur = 0;
    const char *key;
    json_t *val;
    json_object_foreach(json_object_get(ident, "userAssignedIdentities"), key, val)
    {
        if (ncur < 32)
            cur[ncur++] = key;
    }
    const char *next[48];
    int nnext = 0;
    char ids[16][1024];
    for (int i = 0; i < nuai; i++) {
        if (uai[i][0] == '/')
            snprintf(ids[i], sizeof ids[i], "%s", uai[i]);
        else if (arm_provider_path(a, T_UAI, uai[i], ids[i], sizeof ids[i]) != MV_OK)
            goto done;
    }
    for (int i = 0; i < ncur; i++) {
        int drop = 0;
        for (int k = 0; !assign && k < nuai; k++)
            drop |= mv_streq_ci(cur[i], ids[k]);
        if (!drop)
            next[nnext++] = cur[i];
    }
    for (int k = 0; assign && k < nuai; k++) {
        int have = 0;
        for (int i = 0; i < ncur; i++)
            have |= mv_streq_ci(cur[i], ids[k]);
        if (!have)
            next[nnext++] = ids[k];
    }
    if (sys_flag)
        system = assign;
    json_t *body = json_pack("{s:s, s:o}", "location", "local", "identity", identity_block(a, system, next, nnext));
    mv_rc rc = arm_call(a, "PUT", path, body, &out, NULL);
    json_decref(body);
    if (rc != MV_OK)
        goto done;
    cli_print(c, json_incref(out), VM_COLS);
    status = 0;
done:
    json_decref(vm);
    json_decref(out);
    arm_client_free(a);
    return status;
}

/* bind/unbind/bindings: per-process identities (docs/agent.md). */
static int vm_binding(struct cli *c, const char *action)
{
    static const char *const COLS[] = {"identity", "uid", "cgroup", NULL};
    const char *name, *ident = NULL, *uid = NULL, *cg = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return 2;
    json_t *body = NULL;
    if (action) {
        if (cli_require(c, "identity", &ident) != MV_OK)
            return 2;
        uid = cli_get(c, "uid");
        cg = cli_get(c, "cgroup");
        if ((uid != NULL) == (cg != NULL))
            return cli_error("give exactly one of --uid N and --cgroup PATH") + 1;
        int64_t u = 0;
        if (uid && (mv_parse_i64(uid, &u) != MV_OK || u < 0))
            return cli_error("--uid must be a user id (a number)") + 1;
        body = uid ? json_pack("{s:s, s:I}", "identity", ident, "uid", (json_int_t)u)
                   : json_pack("{s:s, s:s}", "identity", ident, "cgroup", cg);
    }
    struct arm_client *a = NULL;
    json_t *out = NULL;
    char path[1024];
    long st = 0;
    int status = 1;
    if (session(c, &a) || arm_provider_path(a, T_VM, name, path, sizeof path) != MV_OK)
        goto done;
    size_t n = strlen(path);
    snprintf(path + n, sizeof path - n, "/%s", action ? action : "identityBindings");
    if (arm_call(a, action ? "POST" : "GET", path, body, &out, &st) != MV_OK)
        goto done;
    if (action && strcmp(action, "unbindIdentity") == 0) {
        if (st == 204) {
            cli_error("no such binding of '%s' on VM '%s'", ident, name);
            goto done;
        }
    } else if (out && json_is_array(json_object_get(out, "value"))) {
        cli_print(c, json_incref(json_object_get(out, "value")), COLS);
    } else if (out) {
        cli_print(c, json_incref(out), COLS);
    }
    status = 0;
done:
    json_decref(out);
    json_decref(body);
    arm_client_free(a);
    return status;
}

int verb_vm_identity_bind(struct cli *c) { return vm_binding(c, "bindIdentity"); }
int verb_vm_identity_unbind(struct cli *c) { return vm_binding(c, "unbindIdentity"); }
int verb_vm_identity_bindings(struct cli *c) { return vm_binding(c, NULL); }

int verb_vm_identity_assign(struct cli *c) { return vm_identity_change(c, 1); }
int verb_vm_identity_remove(struct cli *c) { return vm_identity_change(c, 0); }
int verb_vm_show(struct cli *c) { return named(c, "GET", T_VM, NULL, VM_COLS); }
int verb_vm_list(struct cli *c) { return call_print(c, "GET", T_VM, NULL, NULL, VM_COLS); }

static int delete_named(struct cli *c, const char *type)
{
    const char *name;
    if (cli_require(c, "name", &name) != MV_OK)
        return 2;
    struct arm_client *a = NULL;
    json_t *out = NULL;
    char path[1024];
    long st = 0;
    int status = 1;
    if (session(c, &a) || arm_provider_path(a, type, name, path, sizeof path) != MV_OK)
        goto done;
    if (arm_call(a, "DELETE", path, NULL, &out, &st) != MV_OK)
        goto done;
    if (st == 204) {
        cli_error("%s '%s' was not found", type, name);
        goto done;
    }
    status = 0;
done:
    json_decref(out);
    arm_client_free(a);
    return status;
}

int verb_vm_delete(struct cli *c) { return delete_named(c, T_VM); }

/* ---- identity ---- */
int verb_identity_create(struct cli *c) { return named(c, "PUT", T_UAI, json_pack("{s:s}", "location", "local"), UAI_COLS); }
int verb_identity_show(struct cli *c) { return named(c, "GET", T_UAI, NULL, UAI_COLS); }
int verb_identity_list(struct cli *c) { return call_print(c, "GET", T_UAI, NULL, NULL, UAI_COLS); }
int verb_identity_delete(struct cli *c) { return delete_named(c, T_UAI); }

/* ---- keyvault ---- */
int verb_keyvault_create(struct cli *c)
{
    json_t *props = json_object();
    const char *days = cli_get(c, "retention-days");
    if (days) {
        int64_t d;
        if (mv_parse_i64(days, &d) != MV_OK) {
            json_decref(props);
            return cli_error("--retention-days must be a number of days (7-90)") + 1;
        }
        json_object_set_new(props, "softDeleteRetentionInDays", json_integer(d));
    }
    if (cli_flag(c, "enable-purge-protection"))
        json_object_set_new(props, "enablePurgeProtection", json_true());
    return named(c, "PUT", T_KV, json_pack("{s:s, s:o}", "location", "local", "properties", props), KV_COLS);
}
int verb_keyvault_show(struct cli *c) { return named(c, "GET", T_KV, NULL, KV_COLS); }
int verb_keyvault_list(struct cli *c) { return call_print(c, "GET", T_KV, NULL, NULL, KV_COLS); }
int verb_keyvault_delete(struct cli *c) { return delete_named(c, T_KV); }

/* ---- role ---- */

/* Scope shortcuts: "/", a full ARM id, or "vault:NAME" / "secret:VAULT/NAME" / "key:VAULT/NAME"
 * for convenience. */
static int scope_path(struct arm_client *a, const char *scope, char *out, size_t len)
{
    const struct mv_tenant *t = arm_client_tenant(a);
    if (strcmp(scope, "/") == 0)
        return snprintf(out, len, "%s", "") >= (int)len;
    if (strncmp(scope, "vault:", 6) == 0)
        return arm_provider_path(a, T_KV, scope + 6, out, len) != MV_OK;
    int is_key = strncmp(scope, "key:", 4) == 0;
    if (is_key || strncmp(scope, "secret:", 7) == 0) {
        const char *rest = scope + (is_key ? 4 : 7);
        char v[128];
        const char *slash = strchr(rest, '/');
        if (!slash || (size_t)(slash - rest) >= sizeof v)
            return 1;
        snprintf(v, sizeof v, "%.*s", (int)(slash - rest), rest);
        char vp[1024];
        if (arm_provider_path(a, T_KV, v, vp, sizeof vp) != MV_OK)
            return 1;
        return snprintf(out, len, "%s/%s/%s", vp, is_key ? "keys" : "secrets", slash + 1) >= (int)len;
    }
    if (strcmp(scope, "subscription") == 0)
        return snprintf(out, len, "/subscriptions/%s", t->subscription_id) >= (int)len;
    if (strcmp(scope, "resource-group") == 0)
        return snprintf(out, len, "/subscriptions/%s/resourceGroups/%s", t->subscription_id, t->resource_group) >= (int)len;
    size_t n = strlen(scope);
    while (n > 1 && scope[n - 1] == '/')
        n--;
    return snprintf(out, len, "%.*s", (int)n, scope) >= (int)len;
}

int verb_role_assignment_create(struct cli *c)
{
    const char *assignee, *role, *scope;
    if (cli_require(c, "assignee", &assignee) != MV_OK || cli_require(c, "role", &role) != MV_OK ||
        cli_require(c, "scope", &scope) != MV_OK)
        return 2;
    struct arm_client *a = NULL;
    json_t *defs = NULL, *out = NULL;
    char sp[1024], path[1400], id[MV_UUID_LEN + 1];
    int status = 1;
    if (session(c, &a))
        goto done;
    if (scope_path(a, scope, sp, sizeof sp)) {
        cli_error("invalid --scope");
        goto done;
    }
    /* Resolve a role name to its definition id, as az does. */
    const char *role_id = NULL;
    if (arm_call(a, "GET", "/providers/Microsoft.Authorization/roleDefinitions", NULL, &defs, NULL) != MV_OK)
        goto done;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(defs, "value"), i, d)
    {
        const char *rn = json_string_value(json_object_get(json_object_get(d, "properties"), "roleName"));
        const char *nm = json_string_value(json_object_get(d, "name"));
        if ((rn && mv_streq_ci(rn, role)) || (nm && mv_streq_ci(nm, role)))
            role_id = json_string_value(json_object_get(d, "id"));
    }
    if (!role_id) {
        cli_error("role '%s' not found (see `mivault role definition list`)", role);
        goto done;
    }
    if (mv_uuid(id) != MV_OK || mv_fmt(path, sizeof path, "%s" RA_PATH "/%s", sp, id) != MV_OK)
        goto done;
    json_t *body = json_pack("{s:{s:s, s:s}}", "properties", "roleDefinitionId", role_id, "principalId", assignee);
    mv_rc rc = arm_call(a, "PUT", path, body, &out, NULL);
    json_decref(body);
    if (rc != MV_OK)
        goto done;
    cli_print(c, json_incref(out), RA_COLS);
    status = 0;
done:
    json_decref(defs);
    json_decref(out);
    arm_client_free(a);
    return status;
}

int verb_role_assignment_list(struct cli *c)
{
    const char *assignee = cli_get(c, "assignee"), *scope = cli_get(c, "scope");
    struct arm_client *a = NULL;
    json_t *out = NULL;
    char sp[1024] = "", path[1600];
    int status = 1;
    if (session(c, &a))
        goto done;
    if (scope && scope_path(a, scope, sp, sizeof sp)) {
        cli_error("invalid --scope");
        goto done;
    }
    if (assignee) {
        if (!mv_is_uuid(assignee)) {
            cli_error("--assignee must be a principal (object) id");
            goto done;
        }
        if (mv_fmt(path, sizeof path, "%s" RA_PATH "?$filter=principalId%%20eq%%20'%s'", sp, assignee) != MV_OK)
            goto done;
    } else if (mv_fmt(path, sizeof path, "%s" RA_PATH, sp) != MV_OK) {
        goto done;
    }
    if (arm_call(a, "GET", path, NULL, &out, NULL) != MV_OK)
        goto done;
    cli_print(c, json_incref(json_object_get(out, "value")), RA_COLS);
    status = 0;
done:
    json_decref(out);
    arm_client_free(a);
    return status;
}

int verb_role_assignment_delete(struct cli *c)
{
    const char *ids;
    if (cli_require(c, "ids", &ids) != MV_OK)
        return 2;
    struct arm_client *a = NULL;
    json_t *out = NULL;
    char path[1400];
    long st = 0;
    int status = 1;
    if (session(c, &a))
        goto done;
    if (ids[0] == '/') {
        if (mv_copy(path, sizeof path, ids) != MV_OK)
            goto done;
    } else if (mv_fmt(path, sizeof path, RA_PATH "/%s", ids) != MV_OK) {
        goto done;
    }
    if (arm_call(a, "DELETE", path, NULL, &out, &st) != MV_OK)
        goto done;
    if (st == 204) {
        cli_error("role assignment not found");
        goto done;
    }
    status = 0;
done:
    json_decref(out);
    arm_client_free(a);
    return status;
}

int verb_role_definition_list(struct cli *c)
{
    struct arm_client *a = NULL;
    json_t *out = NULL;
    int status = 1;
    if (session(c, &a))
        goto done;
    if (arm_call(a, "GET", "/providers/Microsoft.Authorization/roleDefinitions", NULL, &out, NULL) != MV_OK)
        goto done;
    cli_print(c, json_incref(json_object_get(out, "value")), RD_COLS);
    status = 0;
done:
    json_decref(out);
    arm_client_free(a);
    return status;
}
