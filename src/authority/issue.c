/* issue.c: the access tokens the authority signs: Entra v1.0 app-only tokens with the claims of
 * reference §3.2, signed RS256 with the current signing key (header kid = x5t = thumbprint,
 * reference §3.1). This RSA signature is the only per-token cost the authority keeps (DESIGN §7).
 *
 * Invariants: aud is the requested resource verbatim (reference §9 item 7); iss and idp are
 * srv->issuer (v1, trailing slash); oid = sub = the principal's object id; appid is the
 * principal's client id; iat = nbf = now and exp = now + the configured lifetime, all JSON
 * integers (RFC 7519 §2 NumericDate). aio, rh and uti are random and carry no meaning.
 *
 * Per token: the claims are written straight into a buffer and signed with the worker's
 * jws_signer (header encoded and signing context set up once per worker, cache.c). */
#include <openssl/crypto.h>
#include <string.h>

#include "authority/internal.h"
#include "common/b64.h"
#include "common/util.h"

#define ISSUE_UTI_BYTES 16    /* 22 base64url chars, like Entra's uti */
#define ISSUE_OPAQUE_BYTES 24 /* aio, rh: 32 base64url chars */
#define ISSUE_CLAIMS_MAX 4096 /* the claims below with every string at its store maximum fit */

/* ,"name":"<base64url of n random bytes>" */
static mv_rc add_random(mv_buf *b, const char *name, const unsigned char *r, size_t n)
{
    mv_rc rc = MV_OK;
    CHECK(mv_buf_addf(b, ",\"%s\":\"", name));
    CHECK(b64url_encode(b, r, n));
    CHECK(mv_buf_add(b, "\"", 1));
out:
    return rc;
}

/* ,"name":<s as a JSON string> */
static mv_rc add_str(mv_buf *b, const char *name, const char *s)
{
    mv_rc rc = MV_OK;
    CHECK(mv_buf_addf(b, ",\"%s\":", name));
    CHECK(authority_json_str(b, s));
out:
    return rc;
}

/* The claims of reference §3.2 as one compact JSON object, written directly (json_out.c says
 * why), in the order Entra's v1 tokens carry them. */
static mv_rc claims_json(const struct authority_plane *srv, const struct st_principal *p,
                         const char *resource, int64_t now, int64_t exp, mv_buf *b)
{
    mv_rc rc = MV_OK;
    unsigned char r[2 * ISSUE_OPAQUE_BYTES + ISSUE_UTI_BYTES];
    CHECK(mv_random(r, sizeof r));
    CHECK(mv_buf_adds(b, "{\"aud\":"));
    CHECK(authority_json_str(b, resource));
    CHECK(add_str(b, "iss", srv->issuer));
    CHECK(mv_buf_addf(b, ",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld", (long long)now,
                      (long long)now, (long long)exp));
    CHECK(add_random(b, "aio", r, ISSUE_OPAQUE_BYTES));
    CHECK(add_str(b, "appid", p->client_id));
    /* "2": the client authenticated with a certificate-like key (reference §3.2). */
    CHECK(mv_buf_adds(b, ",\"appidacr\":\"2\""));
    CHECK(add_str(b, "idp", srv->issuer));
    CHECK(mv_buf_adds(b, ",\"idtyp\":\"app\""));
    CHECK(add_str(b, "oid", p->id));
    CHECK(add_random(b, "rh", r + ISSUE_OPAQUE_BYTES, ISSUE_OPAQUE_BYTES));
    CHECK(add_str(b, "sub", p->id));
    CHECK(add_str(b, "tid", srv->tenant.tenant_id));
    CHECK(add_random(b, "uti", r + 2 * ISSUE_OPAQUE_BYTES, ISSUE_UTI_BYTES));
    CHECK(mv_buf_adds(b, ",\"ver\":\"1.0\""));
    if (p->resource_id[0])
        CHECK(add_str(b, "xms_mirid", p->resource_id));
    CHECK(mv_buf_add(b, "}", 1));
out:
    OPENSSL_cleanse(r, sizeof r);
    return rc;
}

mv_rc authority_issue_with(const struct authority_plane *srv, jws_signer *signer,
                           const struct st_principal *p, const char *resource, mv_buf *out,
                           int64_t *exp_out)
{
    mv_rc rc = MV_OK;
    jws_signer *own = NULL;
    mv_buf claims;
    mv_buf_init(&claims, ISSUE_CLAIMS_MAX);
    int64_t now = mv_now();
    int64_t lifetime = srv->token_lifetime > 0 ? srv->token_lifetime : MV_TOKEN_LIFETIME_SECS;
    int64_t exp = now + lifetime;
    ENSURE_MSG(srv->sign_key != NULL, MV_ERR_UNAVAILABLE, "no signing key loaded");
    ENSURE(resource && *resource && p->id[0] && p->client_id[0], MV_ERR_INTERNAL);
    /* A worker's signer is for the current key: the start-up one, or the one a rotation seen
     * through the change generation put in its place (cache.c). */
    if (!signer) {
        CHECK(jws_signer_new(srv->sign_key, JWS_RS256, srv->sign_kid, &own));
        signer = own;
    }
    CHECK(claims_json(srv, p, resource, now, exp, &claims));
    CHECK(jws_signer_sign(signer, claims.p, claims.len, out));
    if (exp_out)
        *exp_out = exp;
out:
    jws_signer_free(own);
    mv_buf_free(&claims);
    return rc;
}

mv_rc authority_issue(const struct authority_plane *srv, const struct st_principal *p,
                      const char *resource, mv_buf *out, int64_t *exp_out)
{
    return authority_issue_with(srv, NULL, p, resource, out, exp_out);
}
