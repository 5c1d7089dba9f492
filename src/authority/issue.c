/* issue.c: the access tokens the authority signs: Entra v1.0 app-only tokens with the claims of
 * reference §3.2, signed RS256 with the current signing key (header kid = x5t = thumbprint,
 * reference §3.1). This RSA signature is the only per-token cost the authority keeps (DESIGN §7).
 *
 * Invariants: aud is the requested resource verbatim (reference §9 item 7); iss and idp are
 * srv->issuer (v1, trailing slash); oid = sub = the principal's object id; appid is the
 * principal's client id; iat = nbf = now and exp = now + the configured lifetime, all JSON
 * integers (RFC 7519 §2 NumericDate). aio, rh and uti are random and carry no meaning. */
#include <jansson.h>
#include <string.h>

#include "authority/internal.h"
#include "common/b64.h"
#include "common/util.h"

#define ISSUE_UTI_BYTES 16    /* 22 base64url chars, like Entra's uti */
#define ISSUE_OPAQUE_BYTES 24 /* aio, rh: 32 base64url chars */

static mv_rc set(json_t *o, const char *key, json_t *v)
{
    mv_rc rc = MV_OK;
    ENSURE(v != NULL && json_object_set_new(o, key, v) == 0, MV_ERR_INTERNAL);
out:
    return rc;
}

/* A string claim of n random bytes, base64url. */
static mv_rc set_random(json_t *o, const char *key, size_t n)
{
    mv_rc rc = MV_OK;
    unsigned char r[ISSUE_OPAQUE_BYTES];
    mv_buf b;
    mv_buf_init(&b, 64);
    ENSURE(n <= sizeof r, MV_ERR_INTERNAL);
    CHECK(mv_random(r, n));
    CHECK(b64url_encode(&b, r, n));
    CHECK(set(o, key, json_string(b.p)));
out:
    mv_buf_free(&b);
    return rc;
}

mv_rc authority_issue(const struct mv_server *srv, const struct st_principal *p,
                      const char *resource, mv_buf *out, int64_t *exp_out)
{
    mv_rc rc = MV_OK;
    json_t *c = json_object();
    int64_t now = mv_now();
    int64_t lifetime = srv->cfg.token_lifetime > 0 ? srv->cfg.token_lifetime
                                                    : MV_TOKEN_LIFETIME_SECS;
    int64_t exp = now + lifetime;
    ENSURE(c != NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(srv->sign_key != NULL, MV_ERR_UNAVAILABLE, "no signing key loaded");
    ENSURE(resource && *resource && p->id[0] && p->client_id[0], MV_ERR_INTERNAL);

    CHECK(set(c, "aud", json_string(resource)));
    CHECK(set(c, "iss", json_string(srv->issuer)));
    CHECK(set(c, "iat", json_integer((json_int_t)now)));
    CHECK(set(c, "nbf", json_integer((json_int_t)now)));
    CHECK(set(c, "exp", json_integer((json_int_t)exp)));
    CHECK(set_random(c, "aio", ISSUE_OPAQUE_BYTES));
    CHECK(set(c, "appid", json_string(p->client_id)));
    /* "2": the client authenticated with a certificate-like key (reference §3.2). */
    CHECK(set(c, "appidacr", json_string("2")));
    CHECK(set(c, "idp", json_string(srv->issuer)));
    CHECK(set(c, "idtyp", json_string("app")));
    CHECK(set(c, "oid", json_string(p->id)));
    CHECK(set_random(c, "rh", ISSUE_OPAQUE_BYTES));
    CHECK(set(c, "sub", json_string(p->id)));
    CHECK(set(c, "tid", json_string(srv->tenant.tenant_id)));
    CHECK(set_random(c, "uti", ISSUE_UTI_BYTES));
    CHECK(set(c, "ver", json_string("1.0")));
    if (p->resource_id[0])
        CHECK(set(c, "xms_mirid", json_string(p->resource_id)));

    CHECK(jws_sign(srv->sign_key, JWS_RS256, srv->sign_kid, c, out));
    if (exp_out)
        *exp_out = exp;
out:
    json_decref(c);
    return rc;
}
