/* auth.c: who is calling the control plane, and may they do this.
 *
 * Authentication: the bearer token is validated by token_validate (token/validate.h) against
 * ARM's audiences. A refusal is ARM's 401: {"error":{"code","message"}} plus
 *   WWW-Authenticate: Bearer authorization_uri="{server}/{tid}", error="invalid_token",
 *                     error_description="..."
 * (RFC 6750 §3: error="invalid_token" for an expired, revoked, malformed or otherwise invalid
 * token). The header's description is one of our fixed strings, never token content.
 *
 * Authorization: RBAC with the ARM action on the resource id (rbac.h). Every decision is
 * audited: refusals at once (status 403), grants at the end of the request with the status the
 * request ended with (arm_audit_flush). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arm/arm.h"
#include "arm/arm_internal.h"
#include "audit/audit.h"
#include "common/log.h"

const char *const ARM_AUDIENCES[] = {"https://management.core.windows.net/", "https://management.azure.com",
                                     "https://management.azure.com/", NULL};

static int unauthenticated(struct arm_req *ar, const char *code, const char *message,
                           const char *description)
{
    char challenge[512];
    if (snprintf(challenge, sizeof challenge,
                 "Bearer authorization_uri=\"%s/%s\", error=\"invalid_token\", error_description=\"%s\"",
                 ar->srv->server_url, ar->srv->tenant.tenant_id, description) < (int)sizeof challenge)
        http_set_header(ar->req, "WWW-Authenticate", challenge);
    (void)arm_fail(ar, 401, code, "%s", message);
    arm_audit_now(ar, "authenticate", ar->req->path, 401);
    return 0;
}

int arm_authenticate(struct arm_req *ar)
{
    const char *h = http_header(ar->req, "Authorization");
    if (!h || !*h)
        return unauthenticated(ar, "AuthenticationFailed",
                               "Authentication failed. The 'Authorization' header is missing.",
                               "The authentication failed because of missing 'Authorization' header.");
    size_t len = 0;
    const char *token = token_from_authorization(h, &len);
    if (!token)
        return unauthenticated(ar, "AuthenticationFailed",
                               "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                               "The authentication failed because of invalid 'Authorization' header.");
    enum token_failure why = TOKEN_OK;
    mv_rc rc = token_validate(ar->w->tv, token, len, &ar->tok, &why);
    if (rc == MV_OK && ar->tok.oid[0])
        return 1;
    if (rc != MV_OK && rc != MV_ERR_UNAUTHENTICATED && rc != MV_ERR_BAD_REQUEST && rc != MV_ERR_LIMIT) {
        arm_fail_rc(ar, rc); /* ours broke (key set, memory): not the caller's fault */
        return 0;
    }
    LOG_INFO("arm: token refused (%d): %s (request %s)", (int)why, mv_last_detail(), ar->req->request_id);
    char msg[640];
    switch (why) {
    case TOKEN_BAD_AUDIENCE:
        snprintf(msg, sizeof msg,
                 "The access token has been obtained for wrong audience or resource '%s'. It should "
                 "exactly match with one of the allowed audiences 'https://management.core.windows.net/',"
                 "'https://management.azure.com','https://management.azure.com/'.",
                 ar->tok.aud);
        return unauthenticated(ar, "InvalidAuthenticationTokenAudience", msg,
                               "The access token has been obtained for wrong audience or resource.");
    case TOKEN_EXPIRED: {
        char exp[40], now[40];
        arm_iso8601(ar->tok.exp, exp);
        arm_iso8601(mv_now(), now);
        if (ar->tok.exp > 0)
            snprintf(msg, sizeof msg, "The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
                     exp, now);
        else
            snprintf(msg, sizeof msg, "The access token has expired.");
        return unauthenticated(ar, "ExpiredAuthenticationToken", msg, "The access token is expired.");
    }
    case TOKEN_BAD_ISSUER:
    case TOKEN_BAD_TENANT:
        snprintf(msg, sizeof msg, "The access token is from the wrong issuer. It must match the tenant "
                 "'%s' associated with this subscription.", ar->srv->tenant.tenant_id);
        return unauthenticated(ar, "InvalidAuthenticationToken", msg, "The access token is from the wrong issuer.");
    case TOKEN_BAD_SIGNATURE:
        return unauthenticated(ar, "InvalidAuthenticationToken", "The access token has an invalid signature.",
                               "The access token has an invalid signature.");
    case TOKEN_NOT_YET_VALID:
        return unauthenticated(ar, "InvalidAuthenticationToken", "The access token is not yet valid.",
                               "The access token is not yet valid.");
    case TOKEN_OK:
    case TOKEN_MALFORMED:
        break;
    }
    return unauthenticated(ar, "InvalidAuthenticationToken", "The access token is invalid.",
                           "The access token is invalid.");
}

void arm_audit_now(struct arm_req *ar, const char *action, const char *scope, int status)
{
    if (ar->srv->audit)
        audit_record(ar->srv->audit, "arm", ar->tok.oid[0] ? ar->tok.oid : NULL, action, scope,
                     status, ar->req->request_id);
}

void arm_audit_grant(struct arm_req *ar, const char *action, const char *scope)
{
    if (ar->naudit < ARM_MAX_AUDIT &&
        mv_copy(ar->audit[ar->naudit].scope, sizeof ar->audit[0].scope, scope) == MV_OK) {
        ar->audit[ar->naudit++].action = action;
        return;
    }
    arm_audit_now(ar, action, scope, 200); /* no room: recorded as granted, without the outcome */
}

void arm_audit_flush(struct arm_req *ar)
{
    for (size_t i = 0; i < ar->naudit; i++)
        arm_audit_now(ar, ar->audit[i].action, ar->audit[i].scope, ar->status ? ar->status : 500);
    ar->naudit = 0;
}

/* The decision; on refusal or failure the reply is left to the caller. */
static mv_rc decide(struct arm_req *ar, const char *action, const char *scope, const char *target_role,
                    int *allowed)
{
    mv_rc rc = rbac_check_target(ar->st, ar->tok.oid, action, 0, scope, target_role, allowed);
    if (rc != MV_OK) {
        arm_audit_now(ar, action, scope, 500);
        arm_fail_rc(ar, rc);
    } else if (*allowed) {
        arm_audit_grant(ar, action, scope);
    } else {
        arm_audit_now(ar, action, scope, 403);
    }
    return rc;
}

int arm_authorize_target(struct arm_req *ar, const char *action, const char *scope, const char *target_role)
{
    int allowed = 0;
    if (decide(ar, action, scope, target_role, &allowed) != MV_OK)
        return 0;
    if (allowed)
        return 1;
    /* The text ARM sends (the caller learns its own oid, the action and the scope it asked for). */
    (void)arm_fail(ar, 403, "AuthorizationFailed",
                   "The client '%s' with object id '%s' does not have authorization to perform action "
                   "'%s' over scope '%s' or the scope is invalid.",
                   ar->tok.oid, ar->tok.oid, action, scope);
    return 0;
}

int arm_authorize(struct arm_req *ar, const char *action, const char *scope)
{
    return arm_authorize_target(ar, action, scope, NULL);
}

int arm_authorize_linked(struct arm_req *ar, const char *write_action, const char *write_scope,
                         const char *action, const char *scope)
{
    int allowed = 0;
    if (decide(ar, action, scope, NULL, &allowed) != MV_OK)
        return 0;
    if (allowed)
        return 1;
    (void)arm_fail(ar, 403, "LinkedAuthorizationFailed",
                   "The client '%s' with object id '%s' has permission to perform action '%s' on scope "
                   "'%s'; however, it does not have permission to perform action(s) '%s' on the linked "
                   "scope(s) '%s' or the linked scope(s) are invalid.",
                   ar->tok.oid, ar->tok.oid, write_action, write_scope, action, scope);
    return 0;
}

mv_rc arm_drop_principal(struct store *st, const char *principal_id)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment *as = NULL;
    size_t n = 0;
    if (!principal_id || !*principal_id)
        return MV_OK;
    CHECK(store_role_assignment_list(st, principal_id, NULL, &as, &n));
    for (size_t i = 0; i < n; i++) {
        rc = store_role_assignment_delete(st, as[i].id);
        ENSURE(rc == MV_OK || rc == MV_ERR_NOT_FOUND, rc);
        rc = MV_OK;
    }
    rc = store_principal_delete(st, principal_id);
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
out:
    free(as);
    return rc;
}
