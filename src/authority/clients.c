/* clients.c: how service principals and federated identities authenticate at the token
 * endpoint (token.c picks the path by the client), refused in Entra's shape (aad.c):
 *
 * - client_secret: the SHA-256 of the secret equals one of the principal's stored secret
 *   hashes (constant-time compare), not expired: else 7000215 (7000222 when only an expired one
 *   matches);
 * - a certificate assertion (MSAL: Python RS256 with x5t, Node PS256 with x5t#S256): the
 *   thumbprint names a registered certificate, its key verifies the signature (700027), the
 *   time is right (700024) and the RFC 7523 claims hold (assertion.c; 50027); its jti is
 *   recorded by token.c (one token per assertion);
 * - a federated assertion (the client is a user-assigned identity): issuer, subject and one
 *   audience equal, byte for byte, those of one of its federated credentials (70021 names what
 *   was presented), RSA only (5002738), the issuer's key (federation.c; 50166 when it cannot be
 *   fetched) verifies the signature (700027) and the time is right (700024). No jti record:
 *   the SDKs send one projected token for many requests, as Entra allows.
 *
 * An unknown client id is 700016. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authority/internal.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/cert.h"
#include "crypto/digest.h"

#define FIC_DOC "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
#define CERT_DOC "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"

mv_rc authority_unknown_client(const struct authority_plane *srv, const char *client_id,
                               struct authority_refusal *ref)
{
    return authority_refuse_aad(
        ref, 400, "unauthorized_client", 700016,
        "Application with identifier '%s' was not found in the directory '%s'. This can happen if "
        "the application has not been installed by the administrator of the tenant or consented "
        "to by any user in the tenant. You may have sent your authentication request to the wrong "
        "tenant.",
        client_id, srv->tenant.tenant_id);
}

mv_rc authority_sp_secret(struct authority_loop *w, const char *client_id, const char *secret,
                          int64_t now, struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    struct st_app_credential *cs = NULL;
    size_t n = 0;
    char hash[65];
    int ok = 0, expired = 0;
    CHECK(store_app_credentials(w->st, client_id, &cs, &n));
    CHECK(digest_sha256_hex(secret, strlen(secret), hash));
    for (size_t i = 0; i < n; i++) {
        if (cs[i].kind != ST_CRED_SECRET ||
            !mv_ct_eq(hash, 64, cs[i].secret_sha256, strlen(cs[i].secret_sha256)))
            continue;
        if (cs[i].expires && cs[i].expires <= now)
            expired = 1;
        else
            ok = 1;
    }
    if (!ok && expired) {
        rc = authority_refuse_aad(ref, 401, "invalid_client", 7000222,
                                  "The provided client secret keys for app '%s' are expired. "
                                  "Create new keys for your app, or consider using certificate "
                                  "credentials for added security.",
                                  client_id);
        goto out;
    }
    if (!ok)
        rc = authority_refuse_aad(ref, 401, "invalid_client", 7000215,
                                  "Invalid client secret provided. Ensure the secret being sent in "
                                  "the request is the client secret value, not the client secret "
                                  "ID, for a secret added to app '%s'.",
                                  client_id);
out:
    st_app_credentials_free(cs, n);
    return rc;
}

static void iso(int64_t t, char out[40])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 40, "%m/%d/%Y %H:%M:%S", &tm);
}

/* exp required, nbf optional, both with MV_CLOCK_SKEW_SECS (Entra allows 5 minutes). */
static mv_rc check_time(const jwt *t, int64_t now, struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    json_t *jexp = json_object_get(t->claims, "exp"), *jnbf = json_object_get(t->claims, "nbf");
    char a[40], b[40], c[40];
    /* NumericDate (RFC 7519 §2) may be non-integer: MSAL Python sends time.time() + 600 */
    int ok_exp = json_is_number(jexp) && json_number_value(jexp) > -1e15 && json_number_value(jexp) < 1e15;
    int ok_nbf = !jnbf || (json_is_number(jnbf) && json_number_value(jnbf) > -1e15 &&
                           json_number_value(jnbf) < 1e15);
    int64_t exp = ok_exp ? (int64_t)json_number_value(jexp) : 0;
    int64_t nbf = ok_nbf && jnbf ? (int64_t)json_number_value(jnbf) : 0;
    if (ok_exp && ok_nbf && exp > now - MV_CLOCK_SKEW_SECS && nbf <= now + MV_CLOCK_SKEW_SECS)
        return MV_OK;
    iso(now, a);
    iso(nbf, b);
    iso(exp, c);
    rc = authority_refuse_aad(ref, 401, "invalid_client", 700024,
                              "Client assertion is not within its valid time range. Current time: "
                              "%s, assertion valid from %s, expiry time of assertion %s. Review "
                              "the documentation at " CERT_DOC " .",
                              a, jnbf ? b : "(none)", c);
    return rc;
}

static mv_rc bad_signature(struct authority_refusal *ref, const char *reason)
{
    return authority_refuse_aad(ref, 401, "invalid_client", 700027,
                                "Client assertion failed signature validation. (Reason - %s) "
                                "Review the documentation at " CERT_DOC " .",
                                reason);
}

mv_rc authority_sp_assertion(struct authority_loop *w, const http_req *req, const jwt *t,
                             const char *client_id, int64_t now, struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    struct st_app_credential *cs = NULL;
    size_t n = 0;
    EVP_PKEY *pub = NULL;
    struct cert_info ci;
    char s1[41] = "", s256[65] = "";
    const char *x5t = json_string_value(json_object_get(t->header, "x5t"));
    const char *x5ts = json_string_value(json_object_get(t->header, "x5t#S256"));
    const struct st_app_credential *cert = NULL;
    if (!(t->alg != JWS_ES256 && ((x5ts && cert_thumb_hex(x5ts, 32, s256)) ||
                                  (x5t && cert_thumb_hex(x5t, 20, s1))))) {
        rc = bad_signature(ref, "The key was not found.");
        goto out;
    }
    CHECK(store_app_credentials(w->st, client_id, &cs, &n));
    for (size_t i = 0; i < n && !cert; i++)
        if (cs[i].kind == ST_CRED_CERT && ((s256[0] && strcmp(cs[i].thumb_sha256, s256) == 0) ||
                                           (s1[0] && strcmp(cs[i].thumb_sha1, s1) == 0)))
            cert = &cs[i];
    if (!cert) {
        rc = bad_signature(ref, "The key was not found.");
        goto out;
    }
    CHECK(cert_parse_pem(cert->cert_pem, strlen(cert->cert_pem), &pub, &ci));
    if (jwt_verify(t, pub) != MV_OK) {
        rc = bad_signature(ref, "The provided signature value did not match the expected "
                                "signature value.");
        goto out;
    }
    CHECK(check_time(t, now, ref));
    rc = authority_check_assertion_claims(w->srv, req, t, client_id, now);
    if (rc == MV_ERR_UNAUTHENTICATED) {
        LOG_INFO("token: client %s refused: %s", client_id, mv_last_detail());
        rc = authority_refuse_aad(ref, 401, "invalid_client", 50027,
                                  "JWT token is invalid or malformed.");
    }
out:
    EVP_PKEY_free(pub);
    st_app_credentials_free(cs, n);
    return rc;
}

/* aud as a string or an array: 1 if want is one of its values. */
static int aud_has(const jwt *t, const char *want)
{
    json_t *aud = json_object_get(t->claims, "aud"), *v;
    size_t i;
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    }
    return 0;
}

static const char *aud_first(const jwt *t)
{
    json_t *aud = json_object_get(t->claims, "aud");
    if (json_is_array(aud))
        aud = json_array_get(aud, 0);
    return json_is_string(aud) ? json_string_value(aud) : "";
}

mv_rc authority_federated_assertion(struct authority_loop *w, const jwt *t,
                                    const struct st_principal *identity, int64_t now,
                                    struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    struct st_fic *fics = NULL;
    size_t n = 0;
    EVP_PKEY *key = NULL;
    const struct st_fic *hit = NULL;
    const char *iss = jwt_claim_str(t, "iss");
    const char *sub = jwt_claim_str(t, "sub");
    if (identity->kind == ST_PRINCIPAL_USER)
        CHECK(store_fic_list(w->st, identity->name, &fics, &n));
    for (size_t i = 0; i < n && !hit && iss && sub; i++)
        if (strcmp(fics[i].issuer, iss) == 0 && strcmp(fics[i].subject, sub) == 0 &&
            aud_has(t, fics[i].audience))
            hit = &fics[i];
    if (!hit) {
        rc = authority_refuse_aad(ref, 400, "invalid_request", 70021,
                                  "No matching federated identity record found for presented "
                                  "assertion. Assertion Issuer: '%.600s'. Assertion Subject: "
                                  "'%.600s'. Assertion Audience: '%.600s'. " FIC_DOC,
                                  iss ? iss : "", sub ? sub : "", aud_first(t));
        goto out;
    }
    if (t->alg == JWS_ES256) {
        rc = authority_refuse_aad(ref, 401, "invalid_client", 5002738,
                                  "'ES256' is not a supported signature algorithm. Supported "
                                  "algorithms are: RS256, RS384, RS512, PS256, PS384, PS512.");
        goto out;
    }
    rc = authority_federation_key(iss, t->kid, now, &key);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = bad_signature(ref, "The key was not found.");
        goto out;
    }
    if (rc == MV_ERR_UNAVAILABLE || rc == MV_ERR_BAD_REQUEST) {
        LOG_WARN("token: issuer %s: %s", iss, mv_last_detail());
        rc = authority_refuse_aad(ref, 401, "invalid_client", 50166,
                                  "Request to External OIDC endpoint failed.");
        goto out;
    }
    CHECK(rc);
    if (jwt_verify(t, key) != MV_OK) {
        rc = bad_signature(ref, "The provided signature value did not match the expected "
                                "signature value.");
        goto out;
    }
    CHECK(check_time(t, now, ref));
out:
    EVP_PKEY_free(key);
    free(fics);
    return rc;
}
