/* auth.c: who is calling (bearer token) and may they (RBAC), with Key Vault's replies.
 *
 * Reference §4.4: a request without a token gets 401 + the challenge
 *   WWW-Authenticate: Bearer authorization="<authority>/<tid>", resource="<resource>"
 * (double quotes, comma + space: JS splits on /,? +/ and keeps only key="value" items; Python
 * requires `authorization`). It must come before any look at route, api-version or body, since
 * both SDKs send their first request without a body (reference §9 item 8). Token failures get
 * the same challenge with AKV-style messages (reference §4.3); nothing of the token beyond its
 * aud / iss is ever echoed, and nothing of it is logged.
 *
 * Reference §6.2/§6.3: the data action of the route must be allowed to the token's oid at the
 * vault or secret scope; a denial is 403 Forbidden / ForbiddenByRbac in the service's words. */
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "http/reply.h"
#include "token/validate.h"
#include "vault/vault_internal.h"

static void set_challenge(struct vault_ctx *c)
{
    char hdr[768];
    const struct vault_plane *srv = c->w->srv;
    if (mv_fmt(hdr, sizeof hdr, "Bearer authorization=\"%s/%s\", resource=\"%s\"", srv->server_url,
               srv->tenant.tenant_id, srv->vault_resource) == MV_OK)
        http_set_header(c->req, "WWW-Authenticate", hdr);
}

static void unauthorized(struct vault_ctx *c, const char *message)
{
    set_challenge(c);
    vault_error(c, 401, "Unauthorized", message, NULL);
}

/* A claim echoed into a message: printable ASCII only, no quotes or backslashes. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e || *s == '"' || *s == '\\')
            *s = '?';
}

static void token_failed(struct vault_ctx *c, enum token_failure why, struct token_info *info)
{
    char msg[768];
    const char *fixed = "AKV10016: Token validation failed.";
    mv_rc rc = MV_OK;
    sanitize(info->aud);
    sanitize(info->iss);
    switch (why) {
    case TOKEN_BAD_AUDIENCE:
        rc = mv_fmt(msg, sizeof msg, "AKV10022: Invalid audience. Expected %s, found: %s.",
                    c->w->srv->vault_resource, info->aud);
        break;
    case TOKEN_BAD_ISSUER:
    case TOKEN_BAD_TENANT:
        rc = mv_fmt(msg, sizeof msg, "AKV10032: Invalid issuer. Expected one of %s, found %s.",
                    c->w->srv->issuer, info->iss);
        break;
    case TOKEN_EXPIRED:
        rc = mv_copy(msg, sizeof msg, "AKV10017: The token has expired.");
        break;
    default:
        rc = mv_copy(msg, sizeof msg, fixed);
        break;
    }
    unauthorized(c, rc == MV_OK ? msg : fixed);
}

/* "Bearer" 1*SP <rest>: the rest, as token_from_authorization would return it if it passes
 * that function's character check. Used only to look the token up among verified tokens: each
 * of those passed the full check, so an exact match of one passes it too (and the token is
 * then what token_from_authorization returns). */
static const char *bearer_candidate(const char *hdr, size_t *len)
{
    static const char SCHEME[] = "Bearer";
    if (strncasecmp(hdr, SCHEME, sizeof SCHEME - 1) != 0 || hdr[sizeof SCHEME - 1] != ' ')
        return NULL;
    const char *p = hdr + sizeof SCHEME - 1;
    while (*p == ' ')
        p++;
    *len = strlen(p);
    return p;
}

int vault_authenticate(struct vault_ctx *c)
{
    static const char MISSING[] = "AKV10000: Request is missing a Bearer or PoP token.";
    const char *hdr = http_header(c->req, "Authorization");
    size_t tlen = 0;
    const char *tok = NULL;
    if (hdr && *hdr) {
        tok = bearer_candidate(hdr, &tlen);
        if (tok && tlen > 0 && tlen <= MV_MAX_TOKEN_BYTES &&
            vault_state_token_get(c->w, tok, tlen, mv_now(), &c->tok)) {
            c->authenticated = 1;
            return 1;
        }
        tlen = 0;
        tok = token_from_authorization(hdr, &tlen);
    }
    if (!tok || tlen == 0) {
        unauthorized(c, MISSING);
        return 0;
    }
    if (tlen > MV_MAX_TOKEN_BYTES) {
        unauthorized(c, "AKV10016: Token validation failed.");
        return 0;
    }
    /* DESIGN §4: the verifier accepts the vault's own challenge resource or Azure's. */
    enum token_failure why = TOKEN_OK;
    struct token_info info;
    memset(&info, 0, sizeof info);
    mv_rc rc = token_validate(c->w->tv, tok, tlen, &info, &why);
    if (rc != MV_OK || why != TOKEN_OK) {
        if (why == TOKEN_OK && (rc == MV_ERR_INTERNAL || rc == MV_ERR_UNAVAILABLE)) {
            vault_rc_error(c, rc);
            return 0;
        }
        LOG_INFO("vault %s: token refused (%d)", c->vault_name, (int)why);
        token_failed(c, why, &info);
        return 0;
    }
    vault_state_token_put(c->w, tok, tlen, &info);
    c->tok = info;
    c->authenticated = 1;
    return 1;
}

static void forbidden(struct vault_ctx *c)
{
    char res[sizeof c->resource];
    char msg[2048];
    memcpy(res, c->resource, sizeof res);
    mv_lower(res);
    /* Wording as observed (reference §4.3, "RBAC deny"), \r\n separated, the trailing space
     * after DeniedWithNoValidRBAC included. */
    if (mv_fmt(msg, sizeof msg,
               "Caller is not authorized to perform action on resource.\r\n"
               "If role assignments, deny assignments or role definitions were changed recently, "
               "please observe propagation time.\r\n"
               "Caller: appid=%s;oid=%s;iss=%s\r\n"
               "Action: '%s'\r\n"
               "Resource: '%s'\r\n"
               "Assignment: (not found)\r\n"
               "DenyAssignmentId: null\r\n"
               "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
               "Vault: %s;location=" VAULT_REGION "\r\n",
               c->tok.appid, c->tok.oid, c->tok.iss, c->route->action, res, c->vault.name) != MV_OK &&
        mv_copy(msg, sizeof msg, "Caller is not authorized to perform action on resource.") != MV_OK)
        msg[0] = '\0';
    vault_error(c, 403, "Forbidden", msg, "ForbiddenByRbac");
}

int vault_authorize(struct vault_ctx *c)
{
    int allowed = 0;
    mv_rc rc = vault_state_rbac(c->w, c->tok.oid, c->route->action, c->resource, &allowed);
    if (rc != MV_OK) {
        vault_rc_error(c, rc == MV_ERR_UNAVAILABLE ? rc : MV_ERR_INTERNAL);
        return 0;
    }
    if (!allowed) {
        forbidden(c);
        return 0;
    }
    return 1;
}
