/* credential.c: mv_credential, the managed-identity credential of libmivault.
 *
 * It does what ManagedIdentityCredential does on a VM (reference §1): GET
 * <endpoint>/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…[&client_id=…] with
 * `Metadata: true`, no credential of its own. Tokens are cached per resource until
 * CLIENT_REFRESH_MARGIN_SECS before they expire (the SDKs' 5-minute margin, reference §1.6).
 *
 * Invariants: the cache and the HTTP handle are used under the mutex only, so one credential may
 * be shared by threads; tokens live in secret buffers, wiped when replaced or freed. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/util.h"
#include "http/client.h"
#include "http/kv.h"

#define CRED_CACHE_MAX 8
#define CRED_ID_PARAM_MAX (MV_MAX_URL * 3 + 32) /* "&msi_res_id=" + a percent-escaped ARM id */

struct cred_entry {
    char resource[MV_MAX_URL]; /* "" = free slot */
    mv_buf token;
    int64_t expires_on;
};

struct mv_credential {
    pthread_mutex_t mu;
    struct http_client *http;
    char endpoint[MV_MAX_URL];      /* scheme://host[:port], no trailing slash */
    char id_param[CRED_ID_PARAM_MAX]; /* "" or "&client_id=<escaped>" etc. */
    struct cred_entry cache[CRED_CACHE_MAX];
};

mv_rc client_imds_parse(const char *body, size_t len, mv_buf *token, int64_t *expires_on)
{
    mv_rc rc = MV_OK;
    json_t *j = NULL;
    ENSURE_MSG(body != NULL && len > 0, MV_ERR_UNAVAILABLE, "empty token reply");
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    ENSURE_MSG(json_is_object(j), MV_ERR_UNAVAILABLE, "token reply is not a JSON object");
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    ENSURE_MSG(tok && *tok, MV_ERR_UNAVAILABLE, "token reply has no access_token");
    /* Reference §1.2: "all primitives will be of type string"; expires_on = JWT exp. msal-node
     * also takes a number, so do we. */
    json_t *eo = json_object_get(j, "expires_on");
    int64_t exp = 0;
    if (json_is_string(eo))
        CHECK(mv_parse_i64(json_string_value(eo), &exp));
    else if (json_is_integer(eo))
        exp = (int64_t)json_integer_value(eo);
    else
        ENSURE_MSG(0, MV_ERR_UNAVAILABLE, "token reply has no expires_on");
    ENSURE_MSG(exp > 0, MV_ERR_UNAVAILABLE, "token reply has a bad expires_on");
    json_t *tt = json_object_get(j, "token_type");
    ENSURE_MSG(!tt || (json_is_string(tt) && mv_streq_ci(json_string_value(tt), "Bearer")),
               MV_ERR_UNAVAILABLE, "token reply is not a Bearer token");
    mv_buf_reset(token);
    CHECK(mv_buf_adds(token, tok));
    *expires_on = exp;
out:
    json_decref(j);
    return rc;
}

static mv_rc add_id_param(char *dst, size_t len, const char *name, const char *value)
{
    mv_rc rc = MV_OK;
    mv_buf esc;
    mv_buf_init(&esc, 3 * MV_MAX_URL);
    CHECK(kv_escape(value, &esc));
    CHECK(mv_fmt(dst, len, "&%s=%s", name, esc.p ? esc.p : ""));
out:
    mv_buf_free(&esc);
    return rc;
}

static mv_rc credential_init(struct mv_credential *c, const char *endpoint, const char *client_id,
                             const char *object_id, const char *msi_res_id)
{
    mv_rc rc = MV_OK;
    int nid = (client_id != NULL) + (object_id != NULL) + (msi_res_id != NULL);
    /* Reference §1.1: client_id / object_id / msi_res_id are mutually exclusive. */
    if (nid > 1)
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                                "give at most one of client_id, object_id, msi_res_id");
    if (!endpoint || !*endpoint) {
        /* Reference §2.1: the IMDS host is overridable by AZURE_POD_IDENTITY_AUTHORITY_HOST. */
        endpoint = getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        if (!endpoint || !*endpoint)
            endpoint = CLIENT_DEFAULT_IMDS;
    }
    char netloc[MV_MAX_URL];
    if (client_url_netloc(endpoint, netloc, sizeof netloc) != MV_OK ||
        mv_copy(c->endpoint, sizeof c->endpoint, endpoint) != MV_OK)
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                                "identity endpoint is not an http(s) URL");
    size_t n = strlen(c->endpoint);
    while (n > 0 && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = '\0';
    if (client_id)
        CHECK(add_id_param(c->id_param, sizeof c->id_param, "client_id", client_id));
    else if (object_id)
        CHECK(add_id_param(c->id_param, sizeof c->id_param, "object_id", object_id));
    else if (msi_res_id)
        CHECK(add_id_param(c->id_param, sizeof c->id_param, "msi_res_id", msi_res_id));
    CHECK(http_client_new(NULL, &c->http));
out:
    return rc;
}

int mv_credential_new(const char *endpoint, const char *client_id, const char *object_id,
                      const char *msi_res_id, struct mv_credential **out)
{
    client_begin();
    mv_rc rc = MV_OK;
    struct mv_credential *c = NULL;
    ENSURE_MSG(out != NULL, MV_ERR_BAD_REQUEST, "out is NULL");
    *out = NULL;
    c = calloc(1, sizeof *c);
    ENSURE_MSG(c != NULL, MV_ERR_INTERNAL, "out of memory");
    ENSURE_MSG(pthread_mutex_init(&c->mu, NULL) == 0, MV_ERR_INTERNAL, "mutex init failed");
    for (int i = 0; i < CRED_CACHE_MAX; i++)
        mv_buf_init(&c->cache[i].token, MV_MAX_TOKEN_BYTES);
    rc = credential_init(c, endpoint, client_id, object_id, msi_res_id);
    if (rc != MV_OK) {
        mv_credential_free(c);
        c = NULL;
        goto out;
    }
    *out = c;
out:
    return client_end(rc);
}

void mv_credential_free(struct mv_credential *c)
{
    if (!c)
        return;
    for (int i = 0; i < CRED_CACHE_MAX; i++)
        mv_buf_free_secret(&c->cache[i].token);
    http_client_free(c->http);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* One IMDS request (reference §1.1, §8 step 2). Called with the mutex held. */
static mv_rc imds_fetch(struct mv_credential *c, const char *resource, mv_buf *token, int64_t *exp)
{
    mv_rc rc = MV_OK;
    mv_buf url, esc;
    struct http_client_resp resp;
    memset(&resp, 0, sizeof resp);
    mv_buf_init(&url, 4 * MV_MAX_URL + sizeof c->id_param);
    mv_buf_init(&esc, 3 * MV_MAX_URL);
    CHECK(kv_escape(resource, &esc));
    CHECK(mv_buf_addf(&url, "%s/metadata/identity/oauth2/token?api-version=" CLIENT_IMDS_API_VERSION
                            "&resource=%s%s",
                      c->endpoint, esc.p ? esc.p : "", c->id_param));
    /* DOC-VMTOKEN: "Metadata: true" is required (SSRF mitigation). */
    const char *hdrs[] = {"Metadata: true", "Accept: application/json", NULL};
    rc = http_client_do(c->http, "GET", url.p, hdrs, NULL, 0, CLIENT_IMDS_MAX_RESP, &resp);
    if (rc == MV_ERR_LIMIT) {
        rc = client_set_error(MV_STATUS_ERROR, rc, "the identity endpoint's reply is over %d bytes",
                              CLIENT_IMDS_MAX_RESP);
        goto out;
    }
    if (rc != MV_OK) {
        const char *why = http_client_error(c->http);
        rc = client_set_error(MV_STATUS_UNAVAILABLE, MV_ERR_UNAVAILABLE,
                              "cannot reach the identity endpoint at %s (%s)", c->endpoint,
                              why[0] ? why : "no answer");
        goto out;
    }
    if (resp.status != 200) {
        rc = client_imds_error(resp.status, resp.body.p, resp.body.len);
        goto out;
    }
    rc = client_imds_parse(resp.body.p, resp.body.len, token, exp);
    if (rc != MV_OK)
        rc = client_set_error(MV_STATUS_ERROR, rc, "the identity endpoint's token reply is malformed (%s)",
                              mv_last_detail());
out:
    if (resp.body.p)
        mv_buf_free_secret(&resp.body);
    http_client_resp_free(&resp);
    mv_buf_free(&url);
    mv_buf_free(&esc);
    return rc;
}

/* The entry of resource (*hit = 1), else a free slot, else the one expiring first. */
static struct cred_entry *cache_slot(struct mv_credential *c, const char *resource, int *hit)
{
    struct cred_entry *free_slot = NULL, *oldest = &c->cache[0];
    *hit = 0;
    for (int i = 0; i < CRED_CACHE_MAX; i++) {
        struct cred_entry *e = &c->cache[i];
        if (!e->resource[0]) {
            if (!free_slot)
                free_slot = e;
        } else if (strcmp(e->resource, resource) == 0) {
            *hit = 1;
            return e;
        } else if (e->expires_on < oldest->expires_on) {
            oldest = e;
        }
    }
    return free_slot ? free_slot : oldest;
}

mv_rc client_credential_token(struct mv_credential *c, const char *scope, int force, mv_buf *token,
                              int64_t *expires_on)
{
    mv_rc rc = MV_OK;
    char resource[MV_MAX_URL];
    int hit = 0;
    rc = client_scope_to_resource(scope, resource, sizeof resource);
    if (rc != MV_OK)
        return client_set_error(MV_STATUS_BAD_REQUEST, rc, "resource is empty or too long");
    pthread_mutex_lock(&c->mu);
    struct cred_entry *e = cache_slot(c, resource, &hit);
    if (!hit || force || e->expires_on - mv_now() <= CLIENT_REFRESH_MARGIN_SECS) {
        int64_t exp = 0;
        mv_buf fresh;
        mv_buf_init(&fresh, MV_MAX_TOKEN_BYTES);
        rc = imds_fetch(c, resource, &fresh, &exp);
        if (rc != MV_OK) {
            mv_buf_free_secret(&fresh);
            goto out;
        }
        mv_buf_free_secret(&e->token);
        e->token = fresh;
        e->expires_on = exp;
        memcpy(e->resource, resource, strlen(resource) + 1);
    }
    mv_buf_reset(token);
    CHECK(mv_buf_add(token, e->token.p, e->token.len));
    if (expires_on)
        *expires_on = e->expires_on;
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mv_credential_get_token(struct mv_credential *c, const char *resource, char **token,
                            int64_t *expires_on)
{
    client_begin();
    mv_rc rc = MV_OK;
    mv_buf tok;
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    ENSURE_MSG(c && resource && token, MV_ERR_BAD_REQUEST, "NULL argument");
    *token = NULL;
    CHECK(client_credential_token(c, resource, 0, &tok, expires_on));
    *token = mv_buf_take(&tok);
    ENSURE_MSG(*token != NULL, MV_ERR_INTERNAL, "out of memory");
out:
    mv_buf_free_secret(&tok);
    return client_end(rc);
}
