/* subscriptions.c: the tenant-level reads az needs: the subscription list of `az login`
 * (reference §7.1 step 6), the subscription, its one resource group, and the cloud metadata
 * document `az cloud register` reads (reference §7.3).
 *
 * Visibility: a principal sees the subscription if it holds any role assignment at "/" or at or
 * under /subscriptions/<s> — so a VM identity with only a vault data role can `az login
 * --identity` (Azure lists a subscription to anyone with an assignment inside it). */
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"

#define SUB_READ "Microsoft.Resources/subscriptions/read"
#define RG_READ "Microsoft.Resources/subscriptions/resourceGroups/read"

void arm_metadata_endpoints(struct arm_req *ar)
{
    const struct arm_plane *srv = ar->srv;
    char rm[300], kv[140];
    if (mv_fmt(rm, sizeof rm, "%s/", srv->server_url) != MV_OK ||
        mv_fmt(kv, sizeof kv, ".%s", srv->cfg->vault_suffix) != MV_OK) {
        arm_fail_rc(ar, MV_ERR_INTERNAL);
        return;
    }
    /* msrestazure reads authentication.loginEndpoint, authentication.audiences[0] (the resource
     * of `az login --identity`), graphEndpoint and galleryEndpoint (reference §7.3). */
    arm_reply(ar, 200,
              json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:[s, s]}, s:s, s:s, s:{s:s}}", "galleryEndpoint", "",
                        "graphEndpoint", "https://graph.mivault.local/", "portalEndpoint", "", "name", "mivault",
                        "authentication", "loginEndpoint", srv->server_url, "audiences",
                        "https://management.core.windows.net/", "https://management.azure.com/",
                        "resourceManagerEndpoint", rm, "keyVaultDnsSuffix", kv, "suffixes", "keyVaultDns", kv));
}

/* Does the caller hold some assignment at "/" or at or under our subscription? */
static mv_rc sub_visible(struct arm_req *ar, int *visible)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment *as = NULL;
    size_t n = 0;
    char sub[ST_SCOPE];
    *visible = 0;
    CHECK(arm_sub_id(ar->srv, sub));
    CHECK(store_role_assignment_list(ar->st, ar->tok.oid, NULL, &as, &n));
    for (size_t i = 0; i < n && !*visible; i++)
        if (rbac_scope_covers(as[i].scope, sub) || rbac_scope_covers(sub, as[i].scope))
            *visible = 1;
out:
    free(as);
    return rc;
}

void arm_sub_list(struct arm_req *ar)
{
    int visible = 0;
    char sub[ST_SCOPE];
    mv_rc rc = sub_visible(ar, &visible);
    if (rc == MV_OK)
        rc = arm_sub_id(ar->srv, sub);
    if (rc != MV_OK) {
        arm_fail_rc(ar, rc);
        return;
    }
    arm_audit_now(ar, SUB_READ, sub, visible ? 200 : 403);
    json_t *list = json_array();
    if (list && visible && json_array_append_new(list, arm_subscription_json(ar->srv)) != 0) {
        json_decref(list);
        list = NULL;
    }
    arm_reply(ar, 200,
              json_pack("{s:o, s:{s:s, s:i}}", "value", list, "count", "type", "Total", "value", visible ? 1 : 0));
}

void arm_sub_get(struct arm_req *ar)
{
    int visible = 0;
    char sub[ST_SCOPE];
    mv_rc rc = sub_visible(ar, &visible);
    if (rc == MV_OK)
        rc = arm_sub_id(ar->srv, sub);
    if (rc != MV_OK) {
        arm_fail_rc(ar, rc);
        return;
    }
    if (!visible) {
        arm_audit_now(ar, SUB_READ, sub, 403);
        (void)arm_fail(ar, 403, "AuthorizationFailed",
                       "The client '%s' with object id '%s' does not have authorization to perform action "
                       "'%s' over scope '%s' or the scope is invalid.",
                       ar->tok.oid, ar->tok.oid, SUB_READ, sub);
        return;
    }
    arm_audit_now(ar, SUB_READ, sub, 200);
    arm_reply(ar, 200, arm_subscription_json(ar->srv));
}

void arm_rg_list(struct arm_req *ar)
{
    char rg[ST_SCOPE];
    int allowed = 0;
    mv_rc rc = arm_rg_id(ar->srv, rg);
    if (rc == MV_OK)
        rc = rbac_check(ar->st, ar->tok.oid, RG_READ, 0, rg, &allowed);
    if (rc != MV_OK) {
        arm_fail_rc(ar, rc);
        return;
    }
    /* Listing shows what the caller may read, and refuses nothing. */
    arm_audit_now(ar, RG_READ, rg, allowed ? 200 : 403);
    json_t *list = json_array();
    if (list && allowed && json_array_append_new(list, arm_rg_json(ar->srv)) != 0) {
        json_decref(list);
        list = NULL;
    }
    arm_reply(ar, 200, json_pack("{s:o}", "value", list));
}

void arm_rg_get(struct arm_req *ar)
{
    char rg[ST_SCOPE];
    if (arm_rg_id(ar->srv, rg) != MV_OK) {
        arm_fail_rc(ar, MV_ERR_INTERNAL);
        return;
    }
    if (!arm_authorize(ar, RG_READ, rg))
        return;
    if (ar->req->method == HTTP_HEAD) { /* az group exists */
        arm_reply_empty(ar, 204);
        return;
    }
    arm_reply(ar, 200, arm_rg_json(ar->srv));
}
