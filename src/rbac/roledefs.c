/* roledefs.c: the built-in role definitions mivault knows (reference §6.1), with Azure's real
 * GUIDs, names, descriptions, actions and data actions, so that role assignments made with
 * `az role assignment create --role "Key Vault Secrets User"` (or the GUID) mean here what they
 * mean in Azure.
 *
 * Invariants: the table is constant; every pattern list is NULL-terminated (an empty list is
 * {NULL}); GUIDs are lower case. The management-plane "actions" of the Key Vault roles are kept
 * as Azure has them even where mivault has no such resource (alert rules, deployments): a role
 * listing must look like Azure's, and a pattern that matches nothing grants nothing. */
#include "rbac/rbac.h"

#define KV "Microsoft.KeyVault/vaults/"
#define RBAC_ONLY " Only works for key vaults that use the 'Azure role-based access control' permission model."

static const char *const NONE[] = {NULL};

/* ---- general roles ---- */
static const char *const ALL[] = {"*", NULL};
static const char *const CONTRIB_NOT[] = {"Microsoft.Authorization/*/Delete",
                                          "Microsoft.Authorization/*/Write",
                                          "Microsoft.Authorization/elevateAccess/Action", NULL};
static const char *const READ_ALL[] = {"*/read", NULL};
static const char *const UAA[] = {"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*", NULL};

/* ---- Key Vault roles: the management-plane actions most of them share ---- */
static const char *const KV_MGMT_READ[] = {
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
    NULL};

static const char *const KV_ADMIN_DATA[] = {KV "*", NULL};
static const char *const KV_READER_DATA[] = {KV "*/read", KV "secrets/readMetadata/action", NULL};
static const char *const KV_SECRETS_OFFICER_DATA[] = {KV "secrets/*", NULL};
static const char *const KV_SECRETS_USER_DATA[] = {KV "secrets/getSecret/action",
                                                   KV "secrets/readMetadata/action", NULL};
static const char *const KV_CRYPTO_OFFICER_DATA[] = {KV "keys/*", KV "keyrotationpolicies/*", NULL};
static const char *const KV_CRYPTO_USER_DATA[] = {
    KV "keys/read",           KV "keys/update/action",  KV "keys/backup/action",
    KV "keys/encrypt/action", KV "keys/decrypt/action", KV "keys/wrap/action",
    KV "keys/unwrap/action",  KV "keys/sign/action",    KV "keys/verify/action",
    NULL};
static const char *const KV_CSE_USER_ACTIONS[] = {"Microsoft.EventGrid/eventSubscriptions/write",
                                                  "Microsoft.EventGrid/eventSubscriptions/read",
                                                  "Microsoft.EventGrid/eventSubscriptions/delete", NULL};
static const char *const KV_CSE_USER_DATA[] = {KV "keys/read", KV "keys/wrap/action",
                                               KV "keys/unwrap/action", NULL};
static const char *const KV_RELEASE_USER_DATA[] = {KV "keys/release/action", NULL};
static const char *const KV_CERTS_OFFICER_DATA[] = {KV "certificatecas/*", KV "certificates/*",
                                                    KV "certificatecontacts/write", NULL};
static const char *const KV_CERT_USER_DATA[] = {KV "certificates/read", KV "secrets/getSecret/action",
                                                KV "secrets/readMetadata/action", KV "keys/read", NULL};
static const char *const KV_CONTRIB_ACTIONS[] = {
    "Microsoft.Authorization/*/read",    "Microsoft.Insights/alertRules/*",
    "Microsoft.KeyVault/*",              "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*", NULL};
static const char *const KV_CONTRIB_NOT[] = {"Microsoft.KeyVault/locations/deletedVaults/purge/action",
                                             "Microsoft.KeyVault/hsmPools/*",
                                             "Microsoft.KeyVault/managedHsms/*", NULL};
/* Azure attaches an ABAC condition to this role's roleAssignments/write|delete: only the Key
 * Vault data roles may be assigned or removed with it. mivault enforces that in
 * rbac_check_assignment (arm/arm_internal.h). */
static const char *const KV_DAA_ACTIONS[] = {
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Authorization/*/read",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Resources/subscriptions/read",
    "Microsoft.Management/managementGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/vaults/*/read",
    NULL};

const struct role_def ROLE_DEFS[] = {
    {ROLE_OWNER_ID, "Owner",
     "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
     ALL, NONE, NONE, NONE},
    {"b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
     "Grants full access to manage all resources, but does not allow you to assign roles in Azure "
     "RBAC, manage assignments in Azure Blueprints, or share image galleries.",
     ALL, CONTRIB_NOT, NONE, NONE},
    {"acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
     "View all resources, but does not allow you to make any changes.", READ_ALL, NONE, NONE, NONE},
    {"18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
     "Lets you manage user access to Azure resources.", UAA, NONE, NONE, NONE},
    {"00482a5a-887f-4fb3-b363-3b7fe8e74483", "Key Vault Administrator",
     "Perform all data plane operations on a key vault and all objects in it, including "
     "certificates, keys, and secrets. Cannot manage key vault resources or manage role "
     "assignments." RBAC_ONLY,
     KV_MGMT_READ, NONE, KV_ADMIN_DATA, NONE},
    {"21090545-7ca7-4776-b22c-e363652d74d2", "Key Vault Reader",
     "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive "
     "values such as secret contents or key material." RBAC_ONLY,
     KV_MGMT_READ, NONE, KV_READER_DATA, NONE},
    {"b86a8fe4-44ce-4948-aee5-eccb2c155cd7", "Key Vault Secrets Officer",
     "Perform any action on the secrets of a key vault, except manage permissions." RBAC_ONLY,
     KV_MGMT_READ, NONE, KV_SECRETS_OFFICER_DATA, NONE},
    {"4633458b-17de-408a-b874-0445c86b69e6", "Key Vault Secrets User",
     "Read secret contents." RBAC_ONLY, NONE, NONE, KV_SECRETS_USER_DATA, NONE},
    {"14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "Key Vault Crypto Officer",
     "Perform any action on the keys of a key vault, except manage permissions." RBAC_ONLY,
     KV_MGMT_READ, NONE, KV_CRYPTO_OFFICER_DATA, NONE},
    {"12338af0-0e69-4776-bea7-57ae8d297424", "Key Vault Crypto User",
     "Perform cryptographic operations using keys." RBAC_ONLY, NONE, NONE, KV_CRYPTO_USER_DATA, NONE},
    {"e147488a-f6f5-4113-8e2d-b22465e65bf6", "Key Vault Crypto Service Encryption User",
     "Read metadata of keys and perform wrap/unwrap operations." RBAC_ONLY,
     KV_CSE_USER_ACTIONS, NONE, KV_CSE_USER_DATA, NONE},
    {"08bbd89e-9f13-488c-ac41-acfcb10c90ab", "Key Vault Crypto Service Release User",
     "Release keys." RBAC_ONLY, NONE, NONE, KV_RELEASE_USER_DATA, NONE},
    {"a4417e6f-fecd-4de8-b567-7b0420556985", "Key Vault Certificates Officer",
     "Perform any action on the certificates of a key vault, except managing permissions." RBAC_ONLY,
     KV_MGMT_READ, NONE, KV_CERTS_OFFICER_DATA, NONE},
    {"db79e9a7-68ee-4b58-9aeb-b90e7c24fcba", "Key Vault Certificate User",
     "Read entire certificate contents including secret and key portion." RBAC_ONLY,
     NONE, NONE, KV_CERT_USER_DATA, NONE},
    {"f25e0fa2-a7c8-4377-a976-54943a77a395", "Key Vault Contributor",
     "Manage key vaults, but does not allow you to assign roles in Azure RBAC, and does not allow "
     "you to access secrets, keys, or certificates.",
     KV_CONTRIB_ACTIONS, KV_CONTRIB_NOT, NONE, NONE},
    {"8b54135c-b56d-4d72-a534-26097cfdc8d8", "Key Vault Data Access Administrator",
     "Manage access to Azure Key Vault by adding or removing role assignments for the Key Vault "
     "Administrator, Key Vault Certificates Officer, Key Vault Crypto Officer, Key Vault Crypto "
     "Service Encryption User, Key Vault Crypto User, Key Vault Reader, Key Vault Secrets Officer, "
     "or Key Vault Secrets User roles. Includes an ABAC condition to constrain role assignments.",
     KV_DAA_ACTIONS, NONE, NONE, NONE},
};

const size_t ROLE_DEFS_COUNT = sizeof ROLE_DEFS / sizeof ROLE_DEFS[0];
