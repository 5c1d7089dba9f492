/* rbac.c: Azure RBAC decisions (rbac.h): action pattern matching, scope covering, role lookup,
 * and the decision against a principal's stored role assignments.
 *
 * Invariants: matching is ASCII case-insensitive throughout (Azure compares actions and scopes
 * case-insensitively, reference §6.3); a scope covers a resource only at a '/' boundary, so
 * ".../vaults/dev" never covers ".../vaults/dev2"; a role allows an action only if an allowed
 * pattern matches and no not-pattern does (Azure: "NotActions are subtracted from Actions");
 * no assignment means no access.
 *
 * Decisions read the store every time. A per-worker cache keyed on (principal, action, is_data,
 * resource) and invalidated when store_generation() moves is the planned optimisation
 * (DESIGN §7); it belongs in the callers' worker state, not here, to keep this file pure. */
#include "rbac/rbac.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

static int lc(char c) { return tolower((unsigned char)c); }

/* Glob match with '*' = any run of characters (including '/' and the empty run). Iterative
 * with one backtrack point, so linear-ish on the short, trusted patterns of role definitions. */
int rbac_action_match(const char *pattern, const char *action)
{
    if (!pattern || !action)
        return 0;
    const char *p = pattern, *a = action;
    const char *star = NULL, *resume = NULL;
    while (*a) {
        if (*p == '*') {
            star = p++;
            resume = a;
        } else if (*p && lc(*p) == lc(*a)) {
            p++;
            a++;
        } else if (star) {
            p = star + 1;
            a = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

/* Length of scope without trailing '/' ("/subscriptions/x/" is "/subscriptions/x"). */
static size_t scope_len(const char *scope)
{
    size_t n = strlen(scope);
    while (n > 0 && scope[n - 1] == '/')
        n--;
    return n;
}

int rbac_scope_covers(const char *scope, const char *resource)
{
    if (!scope || !resource)
        return 0;
    size_t n = scope_len(scope);
    if (n == 0) /* "/" or "": the root scope covers every resource */
        return 1;
    if (strncasecmp(scope, resource, n) != 0)
        return 0;
    return resource[n] == '\0' || resource[n] == '/';
}

static int any_match(const char *const *patterns, const char *action)
{
    for (size_t i = 0; patterns && patterns[i]; i++)
        if (rbac_action_match(patterns[i], action))
            return 1;
    return 0;
}

int rbac_role_allows(const struct role_def *r, const char *action, int is_data)
{
    if (!r || !action)
        return 0;
    const char *const *allow = is_data ? r->data_actions : r->actions;
    const char *const *deny = is_data ? r->not_data_actions : r->not_actions;
    return any_match(allow, action) && !any_match(deny, action);
}

/* "/providers/Microsoft.Authorization/roleDefinitions" ends every role definition id, with or
 * without a "/subscriptions/<s>" (or other scope) prefix. */
#define RD_SUFFIX "/providers/Microsoft.Authorization/roleDefinitions"

const struct role_def *rbac_role_find(const char *name_or_id)
{
    if (!name_or_id || !*name_or_id)
        return NULL;
    const char *guid = name_or_id;
    const char *slash = strrchr(name_or_id, '/');
    if (slash) {
        size_t pre = (size_t)(slash - name_or_id), sl = sizeof RD_SUFFIX - 1;
        if (pre < sl || strncasecmp(slash - sl, RD_SUFFIX, sl) != 0)
            return NULL;
        guid = slash + 1;
    }
    for (size_t i = 0; i < ROLE_DEFS_COUNT; i++) {
        if (mv_streq_ci(ROLE_DEFS[i].id, guid))
            return &ROLE_DEFS[i];
    }
    if (slash)
        return NULL;
    for (size_t i = 0; i < ROLE_DEFS_COUNT; i++) {
        if (mv_streq_ci(ROLE_DEFS[i].name, name_or_id))
            return &ROLE_DEFS[i];
    }
    return NULL;
}

/* Roles that Key Vault Data Access Administrator may assign or remove: Azure's ABAC condition
 * on that role (its description lists them). */
static const char *const KV_DAA_ASSIGNABLE[] = {
    "00482a5a-887f-4fb3-b363-3b7fe8e74483", /* Key Vault Administrator */
    "a4417e6f-fecd-4de8-b567-7b0420556985", /* Key Vault Certificates Officer */
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", /* Key Vault Crypto Officer */
    "e147488a-f6f5-4113-8e2d-b22465e65bf6", /* Key Vault Crypto Service Encryption User */
    "12338af0-0e69-4776-bea7-57ae8d297424", /* Key Vault Crypto User */
    "21090545-7ca7-4776-b22c-e363652d74d2", /* Key Vault Reader */
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", /* Key Vault Secrets Officer */
    "4633458b-17de-408a-b874-0445c86b69e6", /* Key Vault Secrets User */
    NULL};

/* The condition a role's grant carries, if any: may this grant act on an assignment of
 * target_role? (target_role NULL: the action is not about a role assignment.) */
static int condition_ok(const struct role_def *granting, const char *target_role)
{
    if (!target_role || !mv_streq_ci(granting->id, RBAC_KV_DAA_ID))
        return 1;
    for (size_t i = 0; KV_DAA_ASSIGNABLE[i]; i++)
        if (mv_streq_ci(KV_DAA_ASSIGNABLE[i], target_role))
            return 1;
    return 0;
}

mv_rc rbac_check_target(struct store *st, const char *principal_id, const char *action, int is_data,
                        const char *resource, const char *target_role, int *allowed)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment *as = NULL;
    size_t n = 0;
    *allowed = 0;
    ENSURE(action && resource, MV_ERR_INTERNAL);
    if (!principal_id || !*principal_id) /* no principal, no assignment, no access */
        goto out;
    CHECK(store_role_assignment_list(st, principal_id, NULL, &as, &n));
    for (size_t i = 0; i < n && !*allowed; i++) {
        if (!rbac_scope_covers(as[i].scope, resource))
            continue;
        const struct role_def *r = rbac_role_find(as[i].role_id);
        if (r && rbac_role_allows(r, action, is_data) && condition_ok(r, target_role))
            *allowed = 1;
    }
out:
    free(as);
    return rc;
}

mv_rc rbac_check(struct store *st, const char *principal_id, const char *action, int is_data,
                 const char *resource, int *allowed)
{
    return rbac_check_target(st, principal_id, action, is_data, resource, NULL, allowed);
}
