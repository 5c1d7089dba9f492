/* rbac.h: role definitions (the built-in ones, with their real GUIDs and actions, reference
 * §6.1) and authorization decisions.
 *
 * A principal may perform an action on a resource if some assignment of theirs has a scope
 * that is "/" or equal to the resource id or a prefix of it ending at a '/' boundary (ASCII
 * case-insensitive), and that assignment's role allows the action: it matches one of the
 * role's actions (or dataActions, for data actions) and none of its notActions. Patterns use
 * '*' as in Azure, matching any run of characters including '/': "Microsoft.KeyVault/vaults/"
 * then '*' then "/read" matches "Microsoft.KeyVault/vaults/secrets/read". */
#ifndef MV_RBAC_RBAC_H
#define MV_RBAC_RBAC_H

#include <stddef.h>

#include "store/store.h"

struct role_def {
    const char *id;           /* GUID */
    const char *name;         /* "Key Vault Secrets Officer" */
    const char *description;
    const char *const *actions;
    const char *const *not_actions;
    const char *const *data_actions;
    const char *const *not_data_actions;
};

extern const struct role_def ROLE_DEFS[];
extern const size_t ROLE_DEFS_COUNT;
#define ROLE_OWNER_ID "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
/* Key Vault Data Access Administrator: its grants carry Azure's ABAC condition. */
#define RBAC_KV_DAA_ID "8b54135c-b56d-4d72-a534-26097cfdc8d8"

/* By GUID, by full role definition id (…/roleDefinitions/<guid>) or by name (case-insensitive). */
const struct role_def *rbac_role_find(const char *name_or_id);
/* Azure action pattern match (case-insensitive, '*' matches any run of characters). */
int rbac_action_match(const char *pattern, const char *action);
/* Does scope cover resource? ("/" covers everything.) */
int rbac_scope_covers(const char *scope, const char *resource);
int rbac_role_allows(const struct role_def *r, const char *action, int is_data);

/* Decision against the store. *allowed = 1/0. */
MV_MUST_CHECK mv_rc rbac_check(struct store *st, const char *principal_id, const char *action,
                               int is_data, const char *resource, int *allowed);
/* rbac_check, where the action is about an assignment of role target_role (GUID): grants whose
 * role carries a condition (Key Vault Data Access Administrator) count only if it admits it. */
MV_MUST_CHECK mv_rc rbac_check_target(struct store *st, const char *principal_id, const char *action,
                                      int is_data, const char *resource, const char *target_role,
                                      int *allowed);

#endif
