/* assertion.c: client authentication by JWT assertion (RFC 7523 §2.2 and §3, RFC 7521 §4.2),
 * the only client authentication the token endpoint accepts (private_key_jwt).
 *
 * The caller has parsed the assertion with the ES256/RS256 allowlist and found the client's
 * key; this file checks the signature with that key and then each RFC 7523 §3 rule. Every
 * failure is MV_ERR_UNAUTHENTICATED with the reason in the log detail only: the client is told
 * a fixed "invalid_client" (STYLE: what failed is not what the client is told).
 *
 * Replay: jti is required here and remembered by token.c once everything else passed
 * (store_assertion_use, until exp + MV_CLOCK_SKEW_SECS, the last moment this file would still
 * accept the assertion): a second use of one assertion is refused with invalid_client, on every
 * server sharing the store. */
#include <jansson.h>
#include <string.h>

#include "authority/internal.h"
#include "common/buf.h"
#include "common/limits.h"

/* A jti is stored per use (token.c): cap it so an assertion cannot park a large row. */
#define ASSERTION_MAX_JTI 256

/* NumericDate claim (RFC 7519 §2): *present = 0 if absent. Our own clients (nodes, the admin)
 * send integers, and anything else from them is an error; real (RFC 7519 allows non-integer
 * values; MSAL Python sends time.time() + 600) is accepted, truncated, when allow_real. */
static mv_rc int_claim(const jwt *t, const char *name, int allow_real, int *present, int64_t *v)
{
    mv_rc rc = MV_OK;
    json_t *c = json_object_get(t->claims, name);
    *present = c != NULL;
    *v = 0;
    if (!c)
        goto out;
    if (allow_real && json_is_real(c)) {
        double d = json_real_value(c);
        ENSURE_MSG(d > -1e15 && d < 1e15, MV_ERR_UNAUTHENTICATED, "assertion %s out of range", name);
        *v = (int64_t)d;
        goto out;
    }
    ENSURE_MSG(json_is_integer(c), MV_ERR_UNAUTHENTICATED, "assertion %s is not an integer", name);
    *v = (int64_t)json_integer_value(c);
out:
    return rc;
}

/* RFC 7523 §3 item 3: "The JWT MUST contain an "aud" (audience) claim containing a value that
 * identifies the authorization server as an intended audience. The token endpoint URL of the
 * authorization server MAY be used as a value". We accept the URL of the endpoint called and
 * both spellings (v1, v2) of our token endpoint URL. aud may be a string or an array
 * (RFC 7519 §4.1.3). */
static int aud_one_ok(const struct authority_plane *srv, const http_req *req, const char *aud)
{
    char url[MV_MAX_URL];
    if (mv_fmt(url, sizeof url, "%s%s", srv->server_url, req->path) == MV_OK && strcmp(aud, url) == 0)
        return 1;
    if (mv_fmt(url, sizeof url, "%s/%s/oauth2/v2.0/token", srv->server_url,
               srv->tenant.tenant_id) == MV_OK && strcmp(aud, url) == 0)
        return 1;
    if (mv_fmt(url, sizeof url, "%s/%s/oauth2/token", srv->server_url, srv->tenant.tenant_id) ==
            MV_OK && strcmp(aud, url) == 0)
        return 1;
    return 0;
}

static int aud_ok(const struct authority_plane *srv, const http_req *req, const jwt *t)
{
    json_t *aud = json_object_get(t->claims, "aud");
    if (json_is_string(aud))
        return aud_one_ok(srv, req, json_string_value(aud));
    if (!json_is_array(aud))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && aud_one_ok(srv, req, json_string_value(v)))
            return 1;
    }
    return 0;
}

static mv_rc check_claims(const struct authority_plane *srv, const http_req *req, const jwt *t,
                          const char *client_id, int64_t now, int allow_real)
{
    mv_rc rc = MV_OK;
    const char *iss = jwt_claim_str(t, "iss");
    const char *sub = jwt_claim_str(t, "sub");
    const char *jti = jwt_claim_str(t, "jti");
    int has_exp, has_nbf, has_iat;
    int64_t exp, nbf, iat;

    /* §3 items 1 and 2: iss and sub both identify the client (client_credentials: the client
     * acts on its own behalf). */
    ENSURE_MSG(iss && strcmp(iss, client_id) == 0, MV_ERR_UNAUTHENTICATED, "assertion iss mismatch");
    ENSURE_MSG(sub && strcmp(sub, client_id) == 0, MV_ERR_UNAUTHENTICATED, "assertion sub mismatch");
    ENSURE_MSG(aud_ok(srv, req, t), MV_ERR_UNAUTHENTICATED, "assertion aud is not this endpoint");

    /* §3 item 4: "The JWT MUST contain an "exp" (expiration time) claim that limits the time
     * window during which the JWT can be used." We also bound the window from above. */
    CHECK(int_claim(t, "exp", allow_real, &has_exp, &exp));
    ENSURE_MSG(has_exp, MV_ERR_UNAUTHENTICATED, "assertion without exp");
    ENSURE_MSG(exp > now - MV_CLOCK_SKEW_SECS, MV_ERR_UNAUTHENTICATED, "assertion expired");
    ENSURE_MSG(exp <= now + MV_ASSERTION_MAX_LIFETIME_SECS + MV_CLOCK_SKEW_SECS,
               MV_ERR_UNAUTHENTICATED, "assertion lifetime too long");
    /* §3 items 5 and 6: nbf and iat, when present, are not in the future. */
    CHECK(int_claim(t, "nbf", allow_real, &has_nbf, &nbf));
    ENSURE_MSG(!has_nbf || nbf <= now + MV_CLOCK_SKEW_SECS, MV_ERR_UNAUTHENTICATED,
               "assertion not yet valid");
    CHECK(int_claim(t, "iat", allow_real, &has_iat, &iat));
    ENSURE_MSG(!has_iat || iat <= now + MV_CLOCK_SKEW_SECS, MV_ERR_UNAUTHENTICATED,
               "assertion issued in the future");
    /* §3 item 7: jti (we require it; see the file comment on replay). */
    ENSURE_MSG(jti && *jti, MV_ERR_UNAUTHENTICATED, "assertion without jti");
    ENSURE_MSG(strlen(jti) <= ASSERTION_MAX_JTI, MV_ERR_UNAUTHENTICATED, "assertion jti too long");
out:
    return rc;
}

mv_rc authority_check_assertion(const struct authority_plane *srv, const http_req *req, const jwt *t,
                                const char *client_id, jws_verifier *key, int64_t now)
{
    mv_rc rc = MV_OK;
    /* The key was parsed once and cached (cache.c); a client without a usable key fails. */
    ENSURE_MSG(key != NULL, MV_ERR_UNAUTHENTICATED, "client has no usable key");
    /* RFC 7523 §3 item 9: the JWT MUST be digitally signed; verify before trusting a claim. */
    rc = jwt_verify_with(t, key);
    ENSURE_MSG(rc == MV_OK, MV_ERR_UNAUTHENTICATED, "assertion signature does not verify");
    CHECK(check_claims(srv, req, t, client_id, now, 0));
out:
    if (rc != MV_OK && rc != MV_ERR_INTERNAL)
        rc = MV_ERR_UNAUTHENTICATED;
    return rc;
}

mv_rc authority_check_assertion_claims(const struct authority_plane *srv, const http_req *req,
                                       const jwt *t, const char *client_id, int64_t now)
{
    mv_rc rc = check_claims(srv, req, t, client_id, now, 1);
    if (rc != MV_OK && rc != MV_ERR_INTERNAL)
        rc = MV_ERR_UNAUTHENTICATED;
    return rc;
}
