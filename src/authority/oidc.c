/* oidc.c: OpenID Connect discovery (OpenID Connect Discovery 1.0 §3/§4) and the JWKS
 * (RFC 7517 §5), in Entra's v1 and v2 shapes (reference §3.3).
 *
 * Whatever tenant segment was used ("common", "organizations" or our id), the documents name
 * our one tenant: there is only one issuer, and every endpoint in them is ours. The JWKS is
 * the document built at start-up (keys.c), served as is. */
#include <jansson.h>
#include <string.h>

#include "authority/internal.h"
#include "common/buf.h"
#include "http/reply.h"

static mv_rc set(json_t *o, const char *key, json_t *v)
{
    mv_rc rc = MV_OK;
    ENSURE(v != NULL && json_object_set_new(o, key, v) == 0, MV_ERR_INTERNAL);
out:
    return rc;
}

static mv_rc set_url(json_t *o, const char *key, const struct authority_plane *srv, const char *suffix)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, MV_MAX_URL);
    CHECK(mv_buf_addf(&b, "%s/%s%s", srv->server_url, srv->tenant.tenant_id, suffix));
    CHECK(set(o, key, json_string(b.p)));
out:
    mv_buf_free(&b);
    return rc;
}

/* ["a","b",...] from a NULL-terminated list. */
static json_t *str_array(const char *const *items)
{
    json_t *a = json_array();
    for (; a && *items; items++) {
        if (json_array_append_new(a, json_string(*items)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static const char *const ALG_RS256[] = {"RS256", NULL};
static const char *const AUTH_METHODS[] = {"private_key_jwt", "client_secret_post", NULL};
static const char *const ASSERTION_ALGS[] = {"ES256", "RS256", "PS256", NULL};
static const char *const RESPONSE_TYPES[] = {"token", NULL};
static const char *const GRANT_TYPES[] = {"client_credentials", NULL};
static const char *const SUBJECT_TYPES[] = {"pairwise", NULL};
static const char *const CLAIMS[] = {"aud", "iss", "iat", "nbf", "exp", "appid", "appidacr",
                                     "idp", "idtyp", "oid", "sub", "tid", "uti", "ver",
                                     "xms_mirid", NULL};

static mv_rc build(const struct authority_plane *srv, int v2, json_t *d)
{
    mv_rc rc = MV_OK;
    mv_buf iss;
    mv_buf_init(&iss, MV_MAX_URL);
    /* v1 issuer is srv->issuer (trailing slash); v2 is {base}/{tid}/v2.0 (reference §3.3). */
    if (v2)
        CHECK(mv_buf_addf(&iss, "%s/%s/v2.0", srv->server_url, srv->tenant.tenant_id));
    else
        CHECK(mv_buf_adds(&iss, srv->issuer));
    CHECK(set(d, "issuer", json_string(iss.p)));
    CHECK(set_url(d, "token_endpoint", srv, v2 ? "/oauth2/v2.0/token" : "/oauth2/token"));
    /* Not served (client_credentials only), but OIDC Discovery §3 makes it REQUIRED and
     * MSAL's tenant discovery refuses a document without it. */
    CHECK(set_url(d, "authorization_endpoint", srv,
                  v2 ? "/oauth2/v2.0/authorize" : "/oauth2/authorize"));
    CHECK(set_url(d, "jwks_uri", srv, "/discovery/v2.0/keys"));
    CHECK(set(d, "id_token_signing_alg_values_supported", str_array(ALG_RS256)));
    CHECK(set(d, "token_endpoint_auth_methods_supported", str_array(AUTH_METHODS)));
    CHECK(set(d, "token_endpoint_auth_signing_alg_values_supported", str_array(ASSERTION_ALGS)));
    CHECK(set(d, "response_types_supported", str_array(RESPONSE_TYPES)));
    CHECK(set(d, "grant_types_supported", str_array(GRANT_TYPES)));
    CHECK(set(d, "subject_types_supported", str_array(SUBJECT_TYPES)));
    CHECK(set(d, "claims_supported", str_array(CLAIMS)));
    CHECK(set(d, "tenant_region_scope", json_string("NA")));
    CHECK(set(d, "cloud_instance_name", json_string("mivault.local")));
    if (!v2)
        CHECK(set(d, "microsoft_multi_refresh_token", json_true()));
    CHECK(set(d, "request_uri_parameter_supported", json_false()));
out:
    mv_buf_free(&iss);
    return rc;
}

void authority_discovery(http_req *req, const struct authority_route_args *a)
{
    const struct authority_loop *w = a->w;
    json_t *d = json_object();
    mv_rc rc = d ? build(w->srv, a->v2, d) : MV_ERR_INTERNAL;
    if (rc != MV_OK) {
        json_decref(d);
        reply_rc_oauth(req, rc);
        return;
    }
    http_reply_json(req, 200, d);
}

void authority_jwks(http_req *req, const struct authority_route_args *a)
{
    const char *jwks = authority_jwks_current(a->w);
    if (!jwks) {
        reply_rc_oauth(req, MV_ERR_UNAVAILABLE);
        return;
    }
    http_reply(req, 200, "application/json", jwks, strlen(jwks));
}
