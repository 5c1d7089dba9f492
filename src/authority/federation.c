/* federation.c: the keys of external OIDC issuers (workload identity federation).
 *
 * A federated identity credential trusts tokens of one issuer (a Kubernetes cluster's
 * service-account issuer, GitHub Actions...). Their signing keys are found as Entra finds them:
 * GET {issuer}/.well-known/openid-configuration over HTTPS, its "issuer" must be the token's
 * issuer exactly, then GET its jwks_uri (HTTPS too); no redirects. RSA keys only (Entra refuses
 * ES256 with AADSTS5002738).
 *
 * Cache: one JWKS document per issuer, shared by every loop of the process under one mutex,
 * kept FED_TTL_SECS; a kid the cached document does not hold re-fetches it once, such re-fetches
 * at most every FED_REFETCH_SECS per issuer (a flood of tokens with made-up kids costs one fetch
 * each 10 s); a failed fetch is not retried for FED_REFETCH_SECS either.
 * At most FED_MAX_ISSUERS issuers are cached (the least recently fetched gives way); issuers
 * are only ever fetched for a token whose issuer a stored federated credential names.
 *
 * Limits: a fetch runs on the calling loop thread (at most 3 s to connect, 5 s in all) and
 * holds the mutex; other issuers' cached keys are not affected once fetched.
 *
 * Trust: the system store plus the CA files given with --trust-ca (authority_trust_ca_add). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "authority/internal.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/jwk.h"
#include "http/client.h"

#define FED_MAX_ISSUERS 64
#define FED_TTL_SECS 600
#define FED_REFETCH_SECS 10
#define FED_DOC_MAX (256 * 1024)
#define FED_CONNECT_MS 3000
#define FED_TOTAL_MS 5000
#define FED_MAX_TRUST 16

struct fed_entry {
    char *issuer;
    char *jwks; /* the JWKS document as fetched */
    int64_t fetched;
    int64_t kid_refetched; /* when an unknown kid last made it fetch again */
};

static pthread_mutex_t fed_lock = PTHREAD_MUTEX_INITIALIZER;
static mv_buf trust_pem; /* the --trust-ca files' PEM text, read when given (before privileges drop) */
static size_t n_trust;
static struct fed_entry cache[FED_MAX_ISSUERS];

mv_rc authority_trust_ca_add(const char *file)
{
    mv_rc rc = MV_OK;
    char *pem = NULL;
    size_t len = 0;
    pthread_mutex_lock(&fed_lock);
    ENSURE_MSG(n_trust < FED_MAX_TRUST, MV_ERR_BAD_REQUEST, "at most %d --trust-ca files",
               FED_MAX_TRUST);
    CHECK(mv_read_file(file, 1024 * 1024, &pem, &len));
    ENSURE_MSG(strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL, MV_ERR_BAD_REQUEST,
               "%s holds no PEM certificate", file);
    if (n_trust == 0)
        mv_buf_init(&trust_pem, FED_MAX_TRUST * (1024 * 1024 + 1));
    CHECK(mv_buf_add(&trust_pem, pem, len));
    CHECK(mv_buf_add(&trust_pem, "\n", 1));
    n_trust++;
out:
    pthread_mutex_unlock(&fed_lock);
    free(pem);
    return rc;
}

void authority_federation_reset(void)
{
    pthread_mutex_lock(&fed_lock);
    for (size_t i = 0; i < FED_MAX_ISSUERS; i++) {
        free(cache[i].issuer);
        free(cache[i].jwks);
        memset(&cache[i], 0, sizeof cache[i]);
    }
    if (n_trust)
        mv_buf_free(&trust_pem);
    n_trust = 0;
    pthread_mutex_unlock(&fed_lock);
}

static int https_url(const char *u) { return u && strncmp(u, "https://", 8) == 0 && u[8]; }

mv_rc authority_fed_discovery_parse(const char *body, size_t len, const char *issuer,
                                    char jwks_uri[MV_MAX_URL])
{
    mv_rc rc = MV_OK;
    json_error_t err;
    json_t *d = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    ENSURE_MSG(json_is_object(d), MV_ERR_BAD_REQUEST, "discovery document is not a JSON object");
    const char *iss = json_string_value(json_object_get(d, "issuer"));
    ENSURE_MSG(iss && strcmp(iss, issuer) == 0, MV_ERR_BAD_REQUEST,
               "discovery document names another issuer");
    const char *ju = json_string_value(json_object_get(d, "jwks_uri"));
    ENSURE_MSG(https_url(ju), MV_ERR_BAD_REQUEST, "discovery document has no https jwks_uri");
    CHECK(mv_copy(jwks_uri, MV_MAX_URL, ju));
out:
    json_decref(d);
    return rc;
}

mv_rc authority_fed_jwks_key(const char *body, size_t len, const char *kid, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    json_error_t err;
    json_t *d = json_loadb(body, len, 0, &err), *k, *only = NULL;
    size_t i, n_rsa = 0;
    *out = NULL;
    json_t *keys = json_object_get(d, "keys");
    ENSURE_MSG(json_is_array(keys), MV_ERR_BAD_REQUEST, "JWKS without a keys array");
    json_array_foreach(keys, i, k) {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        if (!kty || strcmp(kty, "RSA") != 0 || (use && strcmp(use, "sig") != 0))
            continue;
        n_rsa++;
        only = k;
        const char *kk = json_string_value(json_object_get(k, "kid"));
        if (kid && kk && strcmp(kid, kk) == 0) {
            rc = jwk_to_public(k, out);
            ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST, "JWKS key %s is not a usable RSA key", kid);
            goto out;
        }
    }
    /* A token without a kid is tried with the issuer's only RSA key. */
    ENSURE(!kid && n_rsa == 1, MV_ERR_NOT_FOUND);
    rc = jwk_to_public(only, out);
    ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST, "JWKS key is not a usable RSA key");
out:
    json_decref(d);
    return rc;
}

static mv_rc get(struct http_client *h, const char *url, char **out)
{
    mv_rc rc = MV_OK;
    struct http_client_resp resp;
    const char *hdrs[] = {"Accept: application/json", NULL};
    memset(&resp, 0, sizeof resp);
    *out = NULL;
    ENSURE_MSG(https_url(url), MV_ERR_UNAVAILABLE, "%s is not an https URL", url);
    rc = http_client_do(h, "GET", url, hdrs, NULL, 0, FED_DOC_MAX, &resp);
    ENSURE_MSG(rc == MV_OK, MV_ERR_UNAVAILABLE, "GET %s: %s", url, http_client_error(h));
    ENSURE_MSG(resp.status == 200, MV_ERR_UNAVAILABLE, "GET %s: HTTP %ld", url, resp.status);
    *out = malloc(resp.body.len + 1);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
    memcpy(*out, resp.body.p ? resp.body.p : "", resp.body.len);
    (*out)[resp.body.len] = '\0';
out:
    http_client_resp_free(&resp);
    return rc;
}

/* Fetches issuer's JWKS (under fed_lock). */
static mv_rc fetch_jwks(const char *issuer, char **jwks)
{
    mv_rc rc = MV_OK;
    struct http_client *h = NULL;
    char url[MV_MAX_URL], jwks_uri[MV_MAX_URL];
    char *doc = NULL;
    *jwks = NULL;
    size_t n = strlen(issuer);
    while (n > 0 && issuer[n - 1] == '/')
        n--;
    CHECK(mv_fmt(url, sizeof url, "%.*s/.well-known/openid-configuration", (int)n, issuer));
    CHECK(http_client_new_trusting(n_trust ? trust_pem.p : NULL, n_trust ? trust_pem.len : 0, &h));
    http_client_set_timeouts(h, FED_CONNECT_MS, FED_TOTAL_MS);
    CHECK(get(h, url, &doc));
    rc = authority_fed_discovery_parse(doc, strlen(doc), issuer, jwks_uri);
    ENSURE_MSG(rc == MV_OK, MV_ERR_UNAVAILABLE, "%s: %s", url, mv_last_detail());
    CHECK(get(h, jwks_uri, jwks));
out:
    free(doc);
    http_client_free(h);
    return rc;
}

static struct fed_entry *slot(const char *issuer, int *found)
{
    size_t victim = 0;
    for (size_t i = 0; i < FED_MAX_ISSUERS; i++) {
        if (cache[i].issuer && strcmp(cache[i].issuer, issuer) == 0) {
            *found = 1;
            return &cache[i];
        }
        if (!cache[i].issuer || (cache[victim].issuer && cache[i].fetched < cache[victim].fetched))
            victim = i;
    }
    *found = 0;
    return &cache[victim];
}

static mv_rc refresh(struct fed_entry *e, const char *issuer, int64_t now)
{
    mv_rc rc = MV_OK;
    char *jwks = NULL;
    e->fetched = now; /* a failed fetch also waits FED_REFETCH_SECS before the next */
    CHECK(fetch_jwks(issuer, &jwks));
    if (!e->issuer || strcmp(e->issuer, issuer) != 0) {
        free(e->issuer);
        e->issuer = strdup(issuer);
        ENSURE(e->issuer != NULL, MV_ERR_INTERNAL);
    }
    free(e->jwks);
    e->jwks = jwks;
    jwks = NULL;
out:
    free(jwks);
    return rc;
}

mv_rc authority_federation_key(const char *issuer, const char *kid, int64_t now, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    int found = 0;
    *out = NULL;
    pthread_mutex_lock(&fed_lock);
    struct fed_entry *e = slot(issuer, &found);
    if (!found) {
        free(e->issuer);
        free(e->jwks);
        memset(e, 0, sizeof *e);
        e->issuer = strdup(issuer);
        ENSURE(e->issuer != NULL, MV_ERR_INTERNAL);
    }
    if (!e->jwks || now - e->fetched >= FED_TTL_SECS) {
        if (e->jwks || now - e->fetched >= FED_REFETCH_SECS || !e->fetched)
            rc = refresh(e, issuer, now);
        else {
            rc = MV_ERR_UNAVAILABLE;
            mv_fail(rc, "issuer %s: its last fetch failed; retried after %d s", issuer,
                    FED_REFETCH_SECS);
        }
        if (rc != MV_OK && !e->jwks)
            goto out;
        rc = MV_OK; /* a stale document still serves while its issuer is unreachable */
    }
    rc = authority_fed_jwks_key(e->jwks, strlen(e->jwks), kid, out);
    if (rc == MV_ERR_NOT_FOUND && now - e->kid_refetched >= FED_REFETCH_SECS) {
        e->kid_refetched = now;
        CHECK(refresh(e, issuer, now)); /* a key rotated in since: fetch once more */
        rc = authority_fed_jwks_key(e->jwks, strlen(e->jwks), kid, out);
    }
out:
    pthread_mutex_unlock(&fed_lock);
    return rc;
}
