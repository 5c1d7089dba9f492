/* reply.c: every reply of the vault goes through here, so the context records the status for
 * the audit line (written before the reply: fail closed, see audited()), and the error texts
 * stay in one place (reference §4.3).
 *
 * Messages are fixed strings; the only request-derived text in them is a secret name or
 * version that already passed validation (as Azure itself echoes names). */
#include <string.h>

#include "common/log.h"
#include "http/reply.h"
#include "vault/vault_internal.h"

/* Fail closed (docs/audit.md): the request's record is written before its reply goes out; if
 * it cannot be (disk full, I/O error), the reply is a 503 in Azure's shape instead, carrying
 * no secret, as HashiCorp Vault refuses a request it cannot audit. 1 = send the reply. */
static int audited(struct vault_ctx *c, int status)
{
    /* Refusals are counted per caller, apart from the vault's budget (throttle.c); a caller over
     * its limit gets 429 instead, for itself only. */
    if (status == 401 || status == 403) {
        char caller[VAULT_CALLER_MAX];
        vault_caller(c, caller);
        int retry = vault_refusals_count(caller, c->w->srv->refused_per_caller, mv_now());
        if (retry) {
            vault_refused_too_often(c, retry);
            return 0;
        }
    }
    c->status = status;
    if (vault_audit_now(c) == MV_OK)
        return 1;
    LOG_ERROR("vault %s: request refused: %s", c->vault_name, mv_last_detail());
    c->status = 503;
    reply_rc_azure(c->req, MV_ERR_UNAVAILABLE);
    return 0;
}

void vault_error(struct vault_ctx *c, int status, const char *code, const char *message,
                 const char *inner)
{
    if (audited(c, status))
        reply_azure_error(c->req, status, code, message, inner);
}

void vault_refused_too_often(struct vault_ctx *c, int retry)
{
    char ra[16];
    if (mv_fmt(ra, sizeof ra, "%d", retry) == MV_OK)
        http_set_header(c->req, "Retry-After", ra); /* reference §9 item 16 */
    vault_error(c, 429, "Throttled",
                "Request was not processed because too many requests were received. Reason: "
                "TooManyRefusedRequests",
                NULL);
}

void vault_bad_parameter(struct vault_ctx *c, const char *message)
{
    vault_error(c, 400, "BadParameter", message, NULL);
}

void vault_rc_error(struct vault_ctx *c, mv_rc rc)
{
    if (rc == MV_ERR_INTERNAL || rc == MV_ERR_UNAVAILABLE)
        LOG_ERROR("vault %s: %s", c->vault_name, mv_last_detail());
    if (audited(c, rc_http_status(rc)))
        reply_rc_azure(c->req, rc);
}

void vault_secret_not_found(struct vault_ctx *c, const char *name, const char *version)
{
    char msg[512];
    const char *sep = version && *version ? "/" : "";
    /* Wording as observed (reference §4.3, "not found"). */
    if (mv_fmt(msg, sizeof msg,
               "A secret with (name/id) %s%s%s was not found in this key vault. If you recently "
               "deleted this secret you may be able to recover it using the correct recovery "
               "command. For help resolving this issue, please see "
               "https://go.microsoft.com/fwlink/?linkid=2125182",
               name, sep, sep[0] ? version : "") != MV_OK)
        msg[0] = '\0';
    vault_error(c, 404, "SecretNotFound", msg, NULL);
}

void vault_reply_json(struct vault_ctx *c, int status, json_t *body)
{
    if (audited(c, status))
        http_reply_json(c->req, status, body);
    else
        json_decref(body);
}

void vault_reply_body(struct vault_ctx *c, int status, const char *body, size_t len)
{
    if (audited(c, status))
        http_reply(c->req, status, body ? "application/json; charset=utf-8" : NULL, body, len);
}

struct vault_view vault_view_of(const struct vault_ctx *c)
{
    return (struct vault_view){c->url, c->vault.soft_delete_days, c->vault.purge_protection};
}

void vault_reply_secret(struct vault_ctx *c, const struct st_secret *s, unsigned flags)
{
    struct vault_view v = vault_view_of(c);
    json_t *j = NULL;
    if (vault_secret_is_managed(c, s))
        flags |= VJ_MANAGED; /* a certificate's secret: kid and managed (docs/certificates.md) */
    mv_rc rc = vault_secret_json(s, &v, flags, &j);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    vault_reply_json(c, 200, j);
}
