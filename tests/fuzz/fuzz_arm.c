/* fuzz_arm.c: what the control plane parses of a request (src/arm/): the JSON body of every PUT
 * (arm_parse_body, then the members the handlers read: identity.userAssignedIdentities keys as
 * resource ids, properties.roleDefinitionId as a role), the OData $filter of role listings
 * (filter.c) and the name and resource-id rules (names.c).
 *
 * Input: one byte choosing the parser, then its text. The per-resource PUT handlers themselves
 * run inside a store transaction and reply through evhttp, so they are not called here; the
 * integration tests drive them. Checked: a parsed body is a JSON object within
 * MV_MAX_JSON_DEPTH; a resource id parses only when it is ours and names a non-empty name
 * without '/'; a parsed filter's literals fit their fields; the name rules hold. */
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "arm/arm_internal.h"
#include "common/limits.h"
#include "fuzz.h"

#define SUB "0c2f3a6e-1b7c-4b5e-9a57-0d4a3a2f1e11"
#define RG "mivault"
#define UAI_TYPE "Microsoft.ManagedIdentity/userAssignedIdentities"

static struct arm_plane plane;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    memcpy(plane.tenant.subscription_id, SUB, sizeof SUB);
    memcpy(plane.tenant.resource_group, RG, sizeof RG);
    return 0;
}

static size_t depth(const json_t *j)
{
    size_t max = 0, i;
    const char *k;
    json_t *v;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, v) {
            size_t d = depth(v);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) {
            size_t d = depth(v);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}

static void resource_id(const char *id, const char *type)
{
    char name[ST_NAME];
    if (!arm_parse_resource_id(&plane, id, type, name))
        return;
    size_t n = strlen(name);
    FUZZ_ASSERT(n > 0 && n < ST_NAME && !strchr(name, '/'));
    /* Ours: the id starts with our subscription and resource group. */
    static const char ours[] = "/subscriptions/" SUB "/resourceGroups/" RG "/providers/";
    FUZZ_ASSERT(strncasecmp(id, ours, sizeof ours - 1) == 0);
}

static void body(const char *p, size_t n)
{
    json_t *b = NULL;
    mv_rc rc = arm_parse_body(p, n, &b);
    if (rc != MV_OK) {
        FUZZ_ASSERT(b == NULL && (rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT));
        return;
    }
    FUZZ_ASSERT(json_is_object(b) && depth(b) <= MV_MAX_JSON_DEPTH);
    /* vms.c reads identity.userAssignedIdentities' keys as resource ids. */
    json_t *uais = json_object_get(json_object_get(b, "identity"), "userAssignedIdentities");
    const char *key;
    json_t *val;
    if (json_is_object(uais))
        json_object_foreach(uais, key, val) resource_id(key, UAI_TYPE);
    /* roleassignments.c looks up properties.roleDefinitionId and checks principalId. */
    json_t *props = json_object_get(b, "properties");
    const char *rdid = json_string_value(json_object_get(props, "roleDefinitionId"));
    if (rdid)
        (void)rbac_role_find(rdid);
    const char *pid = json_string_value(json_object_get(props, "principalId"));
    if (pid && mv_is_uuid(pid))
        FUZZ_ASSERT(strlen(pid) == 36);
    json_decref(b);
}

static void filter(const char *s)
{
    struct arm_filter f;
    if (!arm_filter_parse(s, &f))
        return;
    FUZZ_ASSERT(memchr(f.principal_id, '\0', sizeof f.principal_id));
    FUZZ_ASSERT(memchr(f.role_name, '\0', sizeof f.role_name));
    FUZZ_ASSERT(memchr(f.type, '\0', sizeof f.type));
    FUZZ_ASSERT(f.at_scope == 0 || f.at_scope == 1);
}

static void names(const char *s)
{
    size_t n = strlen(s);
    if (arm_vm_name_ok(s) || arm_identity_name_ok(s))
        FUZZ_ASSERT(n >= 1 && n <= MV_MAX_NAME && !strchr(s, '/'));
    if (arm_vault_name_ok(s))
        FUZZ_ASSERT(n >= MV_VAULT_NAME_MIN && n <= MV_VAULT_NAME_MAX && !strstr(s, "--"));
    resource_id(s, UAI_TYPE);
    resource_id(s, "Microsoft.Compute/virtualMachines");
    resource_id(s, "Microsoft.KeyVault/vaults");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] % 3 == 0) {
        body(p, n);
        return 0;
    }
    char *s = fuzz_str(p, n);
    if (data[0] % 3 == 1)
        filter(s);
    else
        names(s);
    free(s);
    return 0;
}
