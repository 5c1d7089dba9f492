/* test_rbac.c: Azure RBAC semantics of src/rbac/rbac.c: action patterns, scope covering, role
 * lookup, what each built-in Key Vault role allows (reference §6.1/§6.2), decisions against a
 * real SQLite store in a temporary directory, and the small parsers of the control plane that
 * feed them ($filter, names, resource ids). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arm/arm_internal.h"
#include "rbac/rbac.h"
#include "store/store.h"

#define KV "Microsoft.KeyVault/vaults/"
#define SUB "/subscriptions/11111111-2222-4333-8444-555555555555"
#define RG SUB "/resourceGroups/mivault"
#define VAULT RG "/providers/Microsoft.KeyVault/vaults/dev"
#define SECRET VAULT "/secrets/db"

#define GET_SECRET KV "secrets/getSecret/action"
#define READ_META KV "secrets/readMetadata/action"
#define SET_SECRET KV "secrets/setSecret/action"
#define DEL_SECRET KV "secrets/delete"
#define PURGE_SECRET KV "secrets/purge/action"
#define KEY_SIGN KV "keys/sign/action"
#define KEY_READ KV "keys/read"

static const struct role_def *role(const char *name)
{
    const struct role_def *r = rbac_role_find(name);
    assert_non_null(r);
    return r;
}

static int data(const char *name, const char *action) { return rbac_role_allows(role(name), action, 1); }
static int mgmt(const char *name, const char *action) { return rbac_role_allows(role(name), action, 0); }

/* ---- action patterns ---- */

static void action_exact_and_case(void **state)
{
    (void)state;
    assert_true(rbac_action_match(GET_SECRET, GET_SECRET));
    assert_true(rbac_action_match("microsoft.keyvault/VAULTS/secrets/GETSECRET/action", GET_SECRET));
    assert_false(rbac_action_match(GET_SECRET, SET_SECRET));
    assert_false(rbac_action_match("", GET_SECRET));
    assert_false(rbac_action_match(GET_SECRET, ""));
    assert_false(rbac_action_match(NULL, GET_SECRET));
}

static void action_star_suffix(void **state)
{
    (void)state;
    assert_true(rbac_action_match("*", GET_SECRET));
    assert_true(rbac_action_match(KV "secrets/*", GET_SECRET));
    assert_true(rbac_action_match(KV "secrets/*", DEL_SECRET));
    assert_true(rbac_action_match(KV "*", KEY_SIGN));
    assert_false(rbac_action_match(KV "secrets/*", KEY_SIGN));
    assert_false(rbac_action_match(KV "keys/*", GET_SECRET));
}

static void action_star_middle(void **state)
{
    (void)state;
    assert_true(rbac_action_match(KV "*/read", KV "secrets/read"));
    assert_true(rbac_action_match(KV "*/read", KEY_READ));
    assert_true(rbac_action_match("*/read", "Microsoft.Compute/virtualMachines/read"));
    assert_true(rbac_action_match("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/delete"));
    assert_false(rbac_action_match(KV "*/read", GET_SECRET));
    assert_false(rbac_action_match(KV "*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"));
    assert_false(rbac_action_match("*/read", "Microsoft.Compute/virtualMachines/write"));
    /* backtracking: the first "/read" is not the end */
    assert_true(rbac_action_match("*/read", "a/read/b/read"));
    assert_false(rbac_action_match("*/read", "a/read/b/write"));
}

static void action_no_partial_prefix(void **state)
{
    (void)state;
    assert_false(rbac_action_match(KV "secrets", GET_SECRET));
    assert_false(rbac_action_match(KV "secrets/", GET_SECRET));
    assert_false(rbac_action_match("Microsoft.KeyVault", GET_SECRET));
    assert_false(rbac_action_match(GET_SECRET "x", GET_SECRET));
    assert_false(rbac_action_match(KV "secrets/getSecret", GET_SECRET));
}

/* ---- scopes ---- */

static void scope_root_covers_all(void **state)
{
    (void)state;
    assert_true(rbac_scope_covers("/", SECRET));
    assert_true(rbac_scope_covers("", SECRET));
    assert_true(rbac_scope_covers("/", "/"));
}

static void scope_hierarchy(void **state)
{
    (void)state;
    assert_true(rbac_scope_covers(SUB, SECRET));
    assert_true(rbac_scope_covers(RG, SECRET));
    assert_true(rbac_scope_covers(VAULT, SECRET));
    assert_true(rbac_scope_covers(VAULT, VAULT));
    assert_true(rbac_scope_covers(SECRET, SECRET));
    assert_false(rbac_scope_covers(SECRET, VAULT));
    assert_false(rbac_scope_covers(VAULT, RG));
    assert_false(rbac_scope_covers(RG "/providers/Microsoft.KeyVault/vaults/other", SECRET));
    assert_false(rbac_scope_covers(VAULT "/secrets/other", SECRET));
    assert_false(rbac_scope_covers("/subscriptions/22222222-2222-4333-8444-555555555555", SECRET));
}

static void scope_case_and_trailing_slash(void **state)
{
    (void)state;
    assert_true(rbac_scope_covers("/SUBSCRIPTIONS/11111111-2222-4333-8444-555555555555/resourcegroups/MIVAULT"
                                  "/providers/microsoft.keyvault/VAULTS/DEV", SECRET));
    assert_true(rbac_scope_covers(VAULT "/", SECRET));
    assert_true(rbac_scope_covers(VAULT "/", VAULT));
}

static void scope_boundary(void **state)
{
    (void)state;
    assert_false(rbac_scope_covers(VAULT, VAULT "2"));
    assert_false(rbac_scope_covers(VAULT, VAULT "2/secrets/db"));
    assert_false(rbac_scope_covers(SECRET, SECRET "2"));
    assert_true(rbac_scope_covers(VAULT, VAULT "/secrets/db2"));
}

/* ---- role lookups ---- */

static void role_find_forms(void **state)
{
    (void)state;
    const struct role_def *r = rbac_role_find("Key Vault Secrets User");
    assert_non_null(r);
    assert_string_equal(r->id, "4633458b-17de-408a-b874-0445c86b69e6");
    assert_ptr_equal(rbac_role_find("key vault secrets user"), r);
    assert_ptr_equal(rbac_role_find("4633458B-17DE-408A-B874-0445C86B69E6"), r);
    assert_ptr_equal(rbac_role_find("/providers/Microsoft.Authorization/roleDefinitions/"
                                    "4633458b-17de-408a-b874-0445c86b69e6"), r);
    assert_ptr_equal(rbac_role_find(SUB "/providers/microsoft.authorization/roledefinitions/"
                                    "4633458b-17de-408a-b874-0445c86b69e6"), r);
    assert_string_equal(rbac_role_find(ROLE_OWNER_ID)->name, "Owner");
    assert_string_equal(rbac_role_find("Reader")->id, "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    assert_string_equal(rbac_role_find("Contributor")->id, "b24988ac-6180-42a0-ab88-20f7382dd24c");
    assert_string_equal(rbac_role_find("User Access Administrator")->id,
                        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9");
}

static void role_find_rejects(void **state)
{
    (void)state;
    assert_null(rbac_role_find(NULL));
    assert_null(rbac_role_find(""));
    assert_null(rbac_role_find("Key Vault Secrets"));
    assert_null(rbac_role_find("00000000-0000-4000-8000-000000000000"));
    /* a GUID behind anything but .../roleDefinitions/ is not a role id */
    assert_null(rbac_role_find("/providers/Microsoft.Authorization/roleAssignments/"
                               "4633458b-17de-408a-b874-0445c86b69e6"));
    assert_null(rbac_role_find("/providers/Microsoft.Authorization/roleDefinitions/Reader"));
}

static void role_table_well_formed(void **state)
{
    (void)state;
    static const char *const kv_roles[][2] = {
        {"Key Vault Administrator", "00482a5a-887f-4fb3-b363-3b7fe8e74483"},
        {"Key Vault Reader", "21090545-7ca7-4776-b22c-e363652d74d2"},
        {"Key Vault Secrets Officer", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"},
        {"Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6"},
        {"Key Vault Crypto Officer", "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"},
        {"Key Vault Crypto User", "12338af0-0e69-4776-bea7-57ae8d297424"},
        {"Key Vault Crypto Service Encryption User", "e147488a-f6f5-4113-8e2d-b22465e65bf6"},
        {"Key Vault Crypto Service Release User", "08bbd89e-9f13-488c-ac41-acfcb10c90ab"},
        {"Key Vault Certificates Officer", "a4417e6f-fecd-4de8-b567-7b0420556985"},
        {"Key Vault Certificate User", "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba"},
        {"Key Vault Contributor", "f25e0fa2-a7c8-4377-a976-54943a77a395"},
        {"Key Vault Data Access Administrator", "8b54135c-b56d-4d72-a534-26097cfdc8d8"},
    };
    for (size_t i = 0; i < sizeof kv_roles / sizeof kv_roles[0]; i++)
        assert_string_equal(role(kv_roles[i][0])->id, kv_roles[i][1]);
    assert_int_equal(ROLE_DEFS_COUNT, 16);
    for (size_t i = 0; i < ROLE_DEFS_COUNT; i++) {
        const struct role_def *r = &ROLE_DEFS[i];
        assert_true(mv_is_uuid(r->id));
        assert_non_null(r->actions);
        assert_non_null(r->not_actions);
        assert_non_null(r->data_actions);
        assert_non_null(r->not_data_actions);
        assert_true(strlen(r->description) > 0);
        for (size_t j = i + 1; j < ROLE_DEFS_COUNT; j++) {
            assert_false(mv_streq_ci(r->id, ROLE_DEFS[j].id));
            assert_false(mv_streq_ci(r->name, ROLE_DEFS[j].name));
        }
    }
}

/* ---- what each role allows ---- */

static void secrets_user(void **state)
{
    (void)state;
    const char *r = "Key Vault Secrets User";
    assert_true(data(r, GET_SECRET));
    assert_true(data(r, READ_META));
    assert_false(data(r, SET_SECRET));
    assert_false(data(r, DEL_SECRET));
    assert_false(data(r, PURGE_SECRET));
    assert_false(data(r, KEY_READ));
    assert_false(mgmt(r, "Microsoft.KeyVault/vaults/write"));
    /* an action granted as a data action is not a management action */
    assert_false(mgmt(r, GET_SECRET));
}

static void secrets_officer(void **state)
{
    (void)state;
    const char *r = "Key Vault Secrets Officer";
    static const char *const all[] = {GET_SECRET, READ_META, SET_SECRET, DEL_SECRET, PURGE_SECRET,
                                      KV "secrets/update/action", KV "secrets/backup/action",
                                      KV "secrets/restore/action", KV "secrets/recover/action"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        assert_true(data(r, all[i]));
    assert_false(data(r, KEY_READ));
    assert_false(data(r, KEY_SIGN));
    assert_false(data(r, KV "certificates/read"));
    assert_false(mgmt(r, "Microsoft.Authorization/roleAssignments/write"));
    assert_true(mgmt(r, "Microsoft.KeyVault/vaults/secrets/read"));
}

static void kv_administrator(void **state)
{
    (void)state;
    const char *r = "Key Vault Administrator";
    assert_true(data(r, GET_SECRET));
    assert_true(data(r, SET_SECRET));
    assert_true(data(r, PURGE_SECRET));
    assert_true(data(r, KEY_SIGN));
    assert_true(data(r, KV "certificates/create/action"));
    assert_false(data(r, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"));
    assert_false(mgmt(r, "Microsoft.KeyVault/vaults/write"));
    assert_false(mgmt(r, "Microsoft.Authorization/roleAssignments/write"));
}

static void kv_reader(void **state)
{
    (void)state;
    const char *r = "Key Vault Reader";
    assert_true(data(r, READ_META));
    assert_true(data(r, KEY_READ));
    assert_false(data(r, GET_SECRET));
    assert_false(data(r, SET_SECRET));
    assert_false(data(r, DEL_SECRET));
    assert_false(data(r, KEY_SIGN));
}

static void crypto_roles(void **state)
{
    (void)state;
    assert_true(data("Key Vault Crypto Officer", KEY_SIGN));
    assert_true(data("Key Vault Crypto Officer", KV "keys/delete"));
    assert_true(data("Key Vault Crypto Officer", KV "keyrotationpolicies/write"));
    assert_false(data("Key Vault Crypto Officer", GET_SECRET));
    assert_false(data("Key Vault Crypto Officer", READ_META));
    assert_true(data("Key Vault Crypto User", KEY_SIGN));
    assert_false(data("Key Vault Crypto User", KV "keys/delete"));
    assert_false(data("Key Vault Crypto User", GET_SECRET));
    assert_true(data("Key Vault Crypto Service Encryption User", KV "keys/wrap/action"));
    assert_false(data("Key Vault Crypto Service Encryption User", KEY_SIGN));
    assert_true(data("Key Vault Crypto Service Release User", KV "keys/release/action"));
    assert_false(data("Key Vault Crypto Service Release User", KEY_READ));
}

static void certificate_roles(void **state)
{
    (void)state;
    assert_true(data("Key Vault Certificates Officer", KV "certificates/create/action"));
    assert_true(data("Key Vault Certificates Officer", KV "certificatecontacts/write"));
    assert_false(data("Key Vault Certificates Officer", GET_SECRET));
    assert_true(data("Key Vault Certificate User", GET_SECRET));
    assert_true(data("Key Vault Certificate User", KEY_READ));
    assert_false(data("Key Vault Certificate User", SET_SECRET));
}

static void kv_contributor_and_daa(void **state)
{
    (void)state;
    assert_true(mgmt("Key Vault Contributor", "Microsoft.KeyVault/vaults/write"));
    assert_false(mgmt("Key Vault Contributor", "Microsoft.KeyVault/locations/deletedVaults/purge/action"));
    assert_false(mgmt("Key Vault Contributor", "Microsoft.Authorization/roleAssignments/write"));
    assert_false(data("Key Vault Contributor", GET_SECRET));
    assert_true(mgmt("Key Vault Data Access Administrator", "Microsoft.Authorization/roleAssignments/write"));
    assert_false(data("Key Vault Data Access Administrator", GET_SECRET));
}

static void general_roles(void **state)
{
    (void)state;
    /* Owner: every action, but no data action: it cannot read secret values, as in Azure */
    assert_true(mgmt("Owner", "Microsoft.Authorization/roleAssignments/write"));
    assert_true(mgmt("Owner", "Microsoft.Compute/virtualMachines/generateJoinToken/action"));
    assert_false(data("Owner", GET_SECRET));
    assert_false(data("Owner", READ_META));
    assert_true(mgmt("Contributor", "Microsoft.KeyVault/vaults/write"));
    assert_true(mgmt("Contributor", "Microsoft.Compute/virtualMachines/delete"));
    assert_false(mgmt("Contributor", "Microsoft.Authorization/roleAssignments/write"));
    assert_false(mgmt("Contributor", "Microsoft.Authorization/roleAssignments/delete"));
    assert_false(mgmt("Contributor", "Microsoft.Authorization/elevateAccess/action"));
    assert_true(mgmt("Contributor", "Microsoft.Authorization/roleAssignments/read"));
    assert_false(data("Contributor", GET_SECRET));
    assert_true(mgmt("Reader", "Microsoft.KeyVault/vaults/read"));
    assert_false(mgmt("Reader", "Microsoft.KeyVault/vaults/write"));
    assert_false(data("Reader", READ_META));
    assert_true(mgmt("User Access Administrator", "Microsoft.Authorization/roleAssignments/write"));
    assert_false(mgmt("User Access Administrator", "Microsoft.KeyVault/vaults/write"));
    assert_false(rbac_role_allows(NULL, GET_SECRET, 1));
}

/* ---- the $filter subset and ARM name rules the control plane parses (arm_internal.h) ---- */

static void filter_parse_accepts(void **state)
{
    (void)state;
    struct arm_filter f;
    assert_true(arm_filter_parse("", &f));
    assert_string_equal(f.principal_id, "");
    assert_false(f.at_scope);
    assert_true(arm_filter_parse("principalId eq 'abc'", &f));
    assert_string_equal(f.principal_id, "abc");
    assert_true(arm_filter_parse("  PRINCIPALID  eq  'x-1'  ", &f));
    assert_string_equal(f.principal_id, "x-1");
    assert_true(arm_filter_parse("atScope() and assignedTo('p1')", &f));
    assert_true(f.at_scope);
    assert_string_equal(f.principal_id, "p1");
    assert_true(arm_filter_parse("roleName eq 'Key Vault Secrets User'", &f));
    assert_string_equal(f.role_name, "Key Vault Secrets User");
    assert_true(arm_filter_parse("roleName eq 'O''Brien'", &f)); /* OData: '' is one quote */
    assert_string_equal(f.role_name, "O'Brien");
    assert_true(arm_filter_parse("type eq 'BuiltInRole'", &f));
    assert_string_equal(f.type, "BuiltInRole");
}

static void filter_parse_rejects(void **state)
{
    (void)state;
    struct arm_filter f;
    static const char *const bad[] = {
        "foo",
        "principalId eq abc",          /* not quoted */
        "principalId eq 'abc",         /* unterminated */
        "principalId ne 'abc'",
        "principalId eq'abc'",
        "atScope() or principalId eq 'a'",
        "atScope() and",
        "atScope() and foo",
        "assignedTo('a'",
        "principalId eq 'a' extra",
        "roleName eq '0123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789'", /* too long */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(arm_filter_parse(bad[i], &f));
}

static void name_rules(void **state)
{
    (void)state;
    assert_true(arm_vm_name_ok("vm1"));
    assert_true(arm_vm_name_ok("a"));
    assert_true(arm_vm_name_ok("Web_01.prod-x"));
    assert_false(arm_vm_name_ok(""));
    assert_false(arm_vm_name_ok("-vm"));
    assert_false(arm_vm_name_ok("vm/1"));
    assert_false(arm_vm_name_ok("vm 1"));
    assert_true(arm_vm_name_ok("a123456789012345678901234567890123456789012345678901234567890123"));  /* 64 */
    assert_false(arm_vm_name_ok("a1234567890123456789012345678901234567890123456789012345678901234")); /* 65 */
    assert_true(arm_identity_name_ok("u1"));
    assert_false(arm_identity_name_ok("u.1"));
    assert_false(arm_identity_name_ok("_u"));
    assert_true(arm_vault_name_ok("dev"));
    assert_true(arm_vault_name_ok("my-Vault-01"));
    assert_true(arm_vault_name_ok("a23456789012345678901234")); /* 24 */
    assert_false(arm_vault_name_ok("a234567890123456789012345")); /* 25 */
    assert_false(arm_vault_name_ok("ab"));
    assert_false(arm_vault_name_ok("1ab"));
    assert_false(arm_vault_name_ok("ab-"));
    assert_false(arm_vault_name_ok("a--b"));
    assert_false(arm_vault_name_ok("a_b"));
    assert_false(arm_vault_name_ok("a.b"));
}

static void resource_id_parse(void **state)
{
    (void)state;
    static struct arm_plane srv;
    memset(&srv, 0, sizeof srv);
    assert_int_equal(mv_copy(srv.tenant.subscription_id, sizeof srv.tenant.subscription_id,
                             "11111111-2222-4333-8444-555555555555"), MV_OK);
    assert_int_equal(mv_copy(srv.tenant.resource_group, sizeof srv.tenant.resource_group, "mivault"), MV_OK);
    const char *t = "Microsoft.ManagedIdentity/userAssignedIdentities";
    char name[ST_NAME];
    assert_true(arm_parse_resource_id(&srv, RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1", t, name));
    assert_string_equal(name, "u1");
    assert_true(arm_parse_resource_id(&srv, "/SUBSCRIPTIONS/11111111-2222-4333-8444-555555555555/resourcegroups/MIVAULT"
                                             "/providers/microsoft.managedidentity/USERASSIGNEDIDENTITIES/U2", t, name));
    assert_string_equal(name, "U2");
    assert_false(arm_parse_resource_id(&srv, RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1/x", t, name));
    assert_false(arm_parse_resource_id(&srv, RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/", t, name));
    assert_false(arm_parse_resource_id(&srv, RG "/providers/Microsoft.ManagedIdentity/userAssignedIdentities", t, name));
    assert_false(arm_parse_resource_id(&srv, RG "/providers/Microsoft.Compute/virtualMachines/u1", t, name));
    assert_false(arm_parse_resource_id(&srv, SUB "/resourceGroups/other/providers/Microsoft.ManagedIdentity/"
                                             "userAssignedIdentities/u1", t, name));
    assert_false(arm_parse_resource_id(&srv, "/subscriptions/22222222-2222-4333-8444-555555555555/resourceGroups/"
                                             "mivault/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1",
                                       t, name));
    assert_false(arm_parse_resource_id(&srv, "u1", t, name));
    assert_false(arm_parse_resource_id(&srv, "", t, name));
}

/* ---- decisions against a real store ---- */

struct fixture {
    char dir[64];
    char db[128];
    struct store *st;
};

static const char *const P1 = "aaaaaaaa-0000-4000-8000-000000000001";
static const char *const P2 = "aaaaaaaa-0000-4000-8000-000000000002";

static void put_principal(struct store *st, const char *id)
{
    struct st_principal p = {0};
    assert_int_equal(mv_copy(p.id, sizeof p.id, id), MV_OK);
    assert_int_equal(mv_uuid(p.client_id), MV_OK);
    p.kind = ST_PRINCIPAL_SYSTEM;
    assert_int_equal(mv_copy(p.name, sizeof p.name, "vm1"), MV_OK);
    assert_int_equal(store_principal_put(st, &p), MV_OK);
}

static void assign(struct store *st, const char *principal, const char *role_name, const char *scope)
{
    struct st_role_assignment a = {0};
    assert_int_equal(mv_uuid(a.id), MV_OK);
    assert_int_equal(mv_copy(a.principal_id, sizeof a.principal_id, principal), MV_OK);
    assert_int_equal(mv_copy(a.role_id, sizeof a.role_id, role(role_name)->id), MV_OK);
    assert_int_equal(mv_copy(a.scope, sizeof a.scope, scope), MV_OK);
    a.created = mv_now();
    assert_int_equal(store_role_assignment_put(st, &a), MV_OK);
}

static int setup_store(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mv-rbac-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/mivault.db", f->dir);
    assert_int_equal(store_open(f->db, &f->st), MV_OK);
    put_principal(f->st, P1);
    put_principal(f->st, P2);
    *state = f;
    return 0;
}

static int teardown_store(void **state)
{
    struct fixture *f = *state;
    store_close(f->st);
    char path[160];
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", f->db, suffixes[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int check(struct store *st, const char *p, const char *action, int is_data, const char *res)
{
    int allowed = -1;
    assert_int_equal(rbac_check(st, p, action, is_data, res, &allowed), MV_OK);
    assert_true(allowed == 0 || allowed == 1);
    return allowed;
}

static void check_no_assignment_no_access(void **state)
{
    struct fixture *f = *state;
    assert_false(check(f->st, P1, GET_SECRET, 1, SECRET));
    assert_false(check(f->st, P1, "Microsoft.KeyVault/vaults/read", 0, VAULT));
    assert_false(check(f->st, "", GET_SECRET, 1, SECRET));
}

static void check_vault_scope(void **state)
{
    struct fixture *f = *state;
    assign(f->st, P1, "Key Vault Secrets User", VAULT);
    assert_true(check(f->st, P1, GET_SECRET, 1, SECRET));
    assert_true(check(f->st, P1, READ_META, 1, VAULT));
    assert_true(check(f->st, P1, GET_SECRET, 1,
                      "/subscriptions/11111111-2222-4333-8444-555555555555/resourcegroups/mivault"
                      "/providers/microsoft.keyvault/vaults/DEV/secrets/db"));
    assert_false(check(f->st, P1, SET_SECRET, 1, SECRET));
    assert_false(check(f->st, P1, GET_SECRET, 1, VAULT "2/secrets/db"));
    assert_false(check(f->st, P1, GET_SECRET, 1, RG "/providers/Microsoft.KeyVault/vaults/other/secrets/db"));
    /* data roles give no management actions, and the other principal got nothing */
    assert_false(check(f->st, P1, GET_SECRET, 0, SECRET));
    assert_false(check(f->st, P2, GET_SECRET, 1, SECRET));
}

static void check_secret_scope(void **state)
{
    struct fixture *f = *state;
    assign(f->st, P2, "Key Vault Secrets Officer", SECRET);
    assert_true(check(f->st, P2, SET_SECRET, 1, SECRET));
    assert_true(check(f->st, P2, GET_SECRET, 1, SECRET));
    assert_false(check(f->st, P2, GET_SECRET, 1, VAULT "/secrets/db2"));
    assert_false(check(f->st, P2, GET_SECRET, 1, VAULT "/secrets/other"));
    assert_false(check(f->st, P2, READ_META, 1, VAULT));
    /* a second, wider assignment adds to the first */
    assign(f->st, P2, "Key Vault Reader", RG);
    assert_true(check(f->st, P2, READ_META, 1, VAULT));
    assert_false(check(f->st, P2, GET_SECRET, 1, VAULT "/secrets/other"));
    assert_true(check(f->st, P2, GET_SECRET, 1, SECRET));
}

static void check_owner_at_root(void **state)
{
    struct fixture *f = *state;
    assign(f->st, P1, "Owner", "/");
    assert_true(check(f->st, P1, "Microsoft.Authorization/roleAssignments/write", 0, "/"));
    assert_true(check(f->st, P1, "Microsoft.Compute/virtualMachines/write", 0,
                      RG "/providers/Microsoft.Compute/virtualMachines/vm1"));
    /* Owner still cannot read a secret it holds no data role for */
    assert_false(check(f->st, P1, GET_SECRET, 1, VAULT "/secrets/other"));
}

static void check_daa_condition(void **state)
{
    struct fixture *f = *state;
    assign(f->st, P1, "Key Vault Data Access Administrator", VAULT);
    int allowed = -1;
    const char *w = "Microsoft.Authorization/roleAssignments/write";
    assert_int_equal(rbac_check_target(f->st, P1, w, 0, VAULT, role("Key Vault Secrets User")->id, &allowed), MV_OK);
    assert_true(allowed);
    assert_int_equal(rbac_check_target(f->st, P1, w, 0, VAULT, ROLE_OWNER_ID, &allowed), MV_OK);
    assert_false(allowed);
    assert_int_equal(rbac_check_target(f->st, P1, w, 0, VAULT, role("Key Vault Data Access Administrator")->id,
                                       &allowed), MV_OK);
    assert_false(allowed);
    assert_int_equal(rbac_check_target(f->st, P1, w, 0, RG, role("Key Vault Secrets User")->id, &allowed), MV_OK);
    assert_false(allowed);
    /* an unconditional grant is not narrowed by the condition */
    assign(f->st, P2, "User Access Administrator", RG);
    assert_int_equal(rbac_check_target(f->st, P2, w, 0, VAULT, ROLE_OWNER_ID, &allowed), MV_OK);
    assert_true(allowed);
}

static void check_deleted_assignment_revokes(void **state)
{
    struct fixture *f = *state;
    struct st_role_assignment a = {0};
    assert_int_equal(mv_uuid(a.id), MV_OK);
    assert_int_equal(mv_copy(a.principal_id, sizeof a.principal_id, P1), MV_OK);
    assert_int_equal(mv_copy(a.role_id, sizeof a.role_id, role("Key Vault Secrets User")->id), MV_OK);
    assert_int_equal(mv_copy(a.scope, sizeof a.scope, VAULT), MV_OK);
    assert_int_equal(store_role_assignment_put(f->st, &a), MV_OK);
    assert_true(check(f->st, P1, GET_SECRET, 1, SECRET));
    assert_int_equal(store_role_assignment_delete(f->st, a.id), MV_OK);
    assert_false(check(f->st, P1, GET_SECRET, 1, SECRET));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(action_exact_and_case),
        cmocka_unit_test(action_star_suffix),
        cmocka_unit_test(action_star_middle),
        cmocka_unit_test(action_no_partial_prefix),
        cmocka_unit_test(scope_root_covers_all),
        cmocka_unit_test(scope_hierarchy),
        cmocka_unit_test(scope_case_and_trailing_slash),
        cmocka_unit_test(scope_boundary),
        cmocka_unit_test(role_find_forms),
        cmocka_unit_test(role_find_rejects),
        cmocka_unit_test(role_table_well_formed),
        cmocka_unit_test(secrets_user),
        cmocka_unit_test(secrets_officer),
        cmocka_unit_test(kv_administrator),
        cmocka_unit_test(kv_reader),
        cmocka_unit_test(crypto_roles),
        cmocka_unit_test(certificate_roles),
        cmocka_unit_test(kv_contributor_and_daa),
        cmocka_unit_test(general_roles),
        cmocka_unit_test(filter_parse_accepts),
        cmocka_unit_test(filter_parse_rejects),
        cmocka_unit_test(name_rules),
        cmocka_unit_test(resource_id_parse),
        cmocka_unit_test_setup_teardown(check_no_assignment_no_access, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(check_vault_scope, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(check_secret_scope, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(check_owner_at_root, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(check_daa_condition, setup_store, teardown_store),
        cmocka_unit_test_setup_teardown(check_deleted_assignment_revokes, setup_store, teardown_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
