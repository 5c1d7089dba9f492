/* roleassignments.c: Microsoft.Authorization/roleAssignments at any scope mivault knows:
 * "/" or anything within its subscription (route.c has checked ar->scope with arm_check_scope).
 *
 *   PUT    {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}   201 created
 *   GET    {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}
 *   DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}   200, 204 when absent
 *   GET    {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]
 *
 * Invariants (Azure's): the assignment name is a GUID; the role must be a known role definition
 * and the principal an existing one; an assignment's principal, role and scope never change
 * (RoleAssignmentUpdateNotPermitted); one (principal, role, scope) is assigned once
 * (RoleAssignmentExists). The caller needs roleAssignments/write|delete over the scope, and a
 * Key Vault Data Access Administrator grant only counts for the Key Vault data roles. A list
 * shows assignments at, above and below the scope (atScope(): at and above only). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arm/arm_internal.h"
#include "http/kv.h"

#define RA_READ "Microsoft.Authorization/roleAssignments/read"
#define RA_WRITE "Microsoft.Authorization/roleAssignments/write"
#define RA_DELETE "Microsoft.Authorization/roleAssignments/delete"

/* The role a roleDefinitionId names: a bare GUID or a …/providers/Microsoft.Authorization/
 * roleDefinitions/<guid> id at the root or in our subscription. */
static const struct role_def *role_of(const struct arm_req *ar, const char *rdid)
{
    static const char SUBS[] = "/subscriptions/";
    if (!strchr(rdid, '/'))
        return mv_is_uuid(rdid) ? rbac_role_find(rdid) : NULL;
    if (strncasecmp(rdid, SUBS, sizeof SUBS - 1) == 0) {
        const char *sub = rdid + sizeof SUBS - 1;
        size_t n = strlen(ar->srv->tenant.subscription_id);
        if (strncasecmp(sub, ar->srv->tenant.subscription_id, n) != 0 || sub[n] != '/')
            return NULL;
    }
    return rbac_role_find(rdid);
}

static int same_scope(const char *a, const char *b) { return mv_streq_ci(a, b); }

static mv_rc not_found(struct arm_req *ar, const char *name)
{
    return arm_fail(ar, 404, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name);
}

/* Inside the transaction. *created: a new assignment (else the identical one that exists). */
static mv_rc ra_write(struct arm_req *ar, struct st_role_assignment *a, int *created)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment old, *dups = NULL;
    size_t n = 0;
    rc = store_role_assignment_get(ar->st, a->id, &old);
    if (rc == MV_OK) {
        if (mv_streq_ci(old.principal_id, a->principal_id) && mv_streq_ci(old.role_id, a->role_id) &&
            same_scope(old.scope, a->scope)) {
            *a = old;
            *created = 0;
            goto out;
        }
        rc = arm_fail(ar, 409, "RoleAssignmentUpdateNotPermitted",
                      "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.");
        goto out;
    }
    ENSURE(rc == MV_ERR_NOT_FOUND, rc);
    rc = MV_OK;
    CHECK(store_role_assignment_list(ar->st, a->principal_id, a->scope, &dups, &n));
    for (size_t i = 0; i < n; i++) {
        if (mv_streq_ci(dups[i].role_id, a->role_id)) {
            rc = arm_fail(ar, 409, "RoleAssignmentExists", "The role assignment already exists.");
            goto out;
        }
    }
    rc = store_role_assignment_put(ar->st, a);
    if (rc == MV_ERR_CONFLICT) /* the UNIQUE (principal, role, scope) of the store */
        rc = arm_fail(ar, 409, "RoleAssignmentExists", "The role assignment already exists.");
    CHECK(rc);
    *created = 1;
out:
    free(dups);
    return rc;
}

void arm_ra_put(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL;
    struct st_role_assignment a;
    struct st_principal p;
    int in_txn = 0, created = 0;
    const char *name = ar->cap[0];
    memset(&a, 0, sizeof a);
    memset(&p, 0, sizeof p);
    if (!mv_is_uuid(name)) {
        rc = arm_fail(ar, 400, "InvalidRoleAssignmentId",
                      "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name);
        goto out;
    }
    CHECK(arm_body(ar, &body));
    json_t *props = json_object_get(body, "properties");
    const char *rdid = json_string_value(json_object_get(props, "roleDefinitionId"));
    const char *pid = json_string_value(json_object_get(props, "principalId"));
    if (!json_is_object(props) || !rdid || !pid) {
        rc = arm_fail(ar, 400, "InvalidRequestContent",
                      "The request content must have 'properties.roleDefinitionId' and "
                      "'properties.principalId' strings.");
        goto out;
    }
    const struct role_def *role = role_of(ar, rdid);
    if (!role) {
        rc = arm_fail(ar, 400, "RoleDefinitionDoesNotExist",
                      "The specified role definition with ID '%s' does not exist.", rdid);
        goto out;
    }
    ENSURE(arm_authorize_target(ar, RA_WRITE, ar->scope, role->id), MV_ERR_FORBIDDEN);
    rc = mv_is_uuid(pid) ? store_principal_get(ar->st, pid, &p) : MV_ERR_NOT_FOUND;
    if (rc == MV_ERR_NOT_FOUND) {
        rc = arm_fail(ar, 400, "PrincipalNotFound", "Principal %s does not exist in the directory %s.", pid,
                      ar->srv->tenant.tenant_id);
        goto out;
    }
    CHECK(rc);
    CHECK(mv_copy(a.id, sizeof a.id, name));
    mv_lower(a.id);
    CHECK(mv_copy(a.principal_id, sizeof a.principal_id, p.id));
    CHECK(mv_copy(a.role_id, sizeof a.role_id, role->id));
    CHECK(mv_copy(a.scope, sizeof a.scope, ar->scope));
    a.created = mv_now();
    CHECK(store_begin(ar->st));
    in_txn = 1;
    CHECK(ra_write(ar, &a, &created));
    CHECK(store_commit(ar->st));
    in_txn = 0;
    arm_reply(ar, created ? 201 : 200, arm_assignment_json(ar->srv, &a));
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    st_principal_clear(&p);
    json_decref(body);
}

/* The assignment named by the path, if it exists at the path's scope. */
static mv_rc ra_at_scope(struct arm_req *ar, struct st_role_assignment *a, int *found)
{
    *found = 0;
    if (!mv_is_uuid(ar->cap[0]))
        return MV_OK;
    mv_rc rc = store_role_assignment_get(ar->st, ar->cap[0], a);
    if (rc == MV_ERR_NOT_FOUND)
        return MV_OK;
    if (rc == MV_OK)
        *found = same_scope(a->scope, ar->scope);
    return rc;
}

void arm_ra_get(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment a;
    int found = 0;
    ENSURE(arm_authorize(ar, RA_READ, ar->scope), MV_ERR_FORBIDDEN);
    CHECK(ra_at_scope(ar, &a, &found));
    if (!found) {
        rc = not_found(ar, ar->cap[0]);
        goto out;
    }
    arm_reply(ar, 200, arm_assignment_json(ar->srv, &a));
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

void arm_ra_delete(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment a;
    int found = 0;
    CHECK(ra_at_scope(ar, &a, &found));
    ENSURE(arm_authorize_target(ar, RA_DELETE, ar->scope, found ? a.role_id : NULL), MV_ERR_FORBIDDEN);
    if (found) {
        rc = store_role_assignment_delete(ar->st, a.id);
        if (rc == MV_ERR_NOT_FOUND) { /* deleted meanwhile */
            rc = MV_OK;
            found = 0;
        }
        CHECK(rc);
    }
    if (found)
        arm_reply(ar, 200, arm_assignment_json(ar->srv, &a));
    else
        arm_reply_empty(ar, 204);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

void arm_ra_list(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct arm_filter f;
    struct st_role_assignment *as = NULL;
    size_t n = 0;
    json_t *list = NULL;
    const char *filter = kv_get_ci(&ar->req->query, "$filter");
    if (!arm_filter_parse(filter ? filter : "", &f) || f.role_name[0] || f.type[0]) {
        rc = arm_fail(ar, 400, "UnsupportedQuery",
                      "The $filter is not supported. Use principalId eq '{id}', assignedTo('{id}') or atScope().");
        goto out;
    }
    ENSURE(arm_authorize(ar, RA_READ, ar->scope), MV_ERR_FORBIDDEN);
    CHECK(store_role_assignment_list(ar->st, f.principal_id[0] ? f.principal_id : NULL, NULL, &as, &n));
    list = json_array();
    ENSURE(list != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; i < n; i++) {
        int above_or_at = rbac_scope_covers(as[i].scope, ar->scope);
        int below = rbac_scope_covers(ar->scope, as[i].scope);
        if (!above_or_at && (f.at_scope || !below))
            continue;
        ENSURE(json_array_append_new(list, arm_assignment_json(ar->srv, &as[i])) == 0, MV_ERR_INTERNAL);
    }
    arm_reply(ar, 200, json_pack("{s:o}", "value", list));
    list = NULL;
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    json_decref(list);
    free(as);
}
