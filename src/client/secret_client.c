/* secret_client.c: mv_secret_client and its request engine, the Key Vault challenge protocol of
 * the SDKs (reference §4.4, §8):
 *
 *   1. the first request goes out without Authorization and without its body;
 *   2. the vault answers 401 + `WWW-Authenticate: Bearer authorization="…", resource="…"`;
 *   3. the challenge is parsed and its resource checked against the vault's host (unless the
 *      caller turned that off), a token for the resource comes from the credential;
 *   4. the request is sent again with the token and the body.
 *
 * Later requests send the token at once (the credential reuses it until 5 minutes before it
 * expires). A 401 with a new challenge on an authenticated request is retried once, with a fresh
 * token for the challenge's resource. A token is only ever sent to the vault's own origin: a
 * nextLink to any other host:port is refused. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/util.h"
#include "http/client.h"

#define KV_AUTH_PREFIX "Authorization: Bearer "

struct mv_secret_client {
    struct http_client *http;
    struct mv_credential *cred; /* borrowed */
    unsigned flags;
    char url[MV_MAX_URL];       /* https://NAME.vault.azure.net[:port], no trailing slash */
    char netloc[MV_MAX_URL];    /* its host[:port], lower case */
    char resource[MV_MAX_URL];  /* token resource from the accepted challenge; "" before one */
};

const char *client_kv_url(const struct mv_secret_client *sc) { return sc->url; }

int mv_secret_client_new(const char *vault_url, struct mv_credential *cred, const char *ca_file,
                         unsigned flags, struct mv_secret_client **out)
{
    client_begin();
    mv_rc rc = MV_OK;
    struct mv_secret_client *sc = NULL;
    ENSURE_MSG(out != NULL && vault_url != NULL && cred != NULL, MV_ERR_BAD_REQUEST, "NULL argument");
    *out = NULL;
    /* Reference §4.1: Key Vault clients insist on https (Python's _enforce_tls). */
    if (strncmp(vault_url, "https://", 8) != 0) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "vault URL must start with https://");
        goto out;
    }
    sc = calloc(1, sizeof *sc);
    ENSURE_MSG(sc != NULL, MV_ERR_INTERNAL, "out of memory");
    sc->cred = cred;
    sc->flags = flags;
    if (client_url_netloc(vault_url, sc->netloc, sizeof sc->netloc) != MV_OK ||
        mv_fmt(sc->url, sizeof sc->url, "https://%s", sc->netloc) != MV_OK) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "vault URL is not valid");
        goto out;
    }
    /* Only "https://host[:port]" and an optional "/": paths are the operations'. */
    const char *rest = vault_url + 8 + strlen(sc->netloc);
    if (rest[0] && strcmp(rest, "/") != 0) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                              "vault URL must be https://HOST[:PORT] without a path");
        goto out;
    }
    CHECK(http_client_new(ca_file, &sc->http));
    *out = sc;
    sc = NULL;
out:
    mv_secret_client_free(sc);
    return client_end(rc);
}

void mv_secret_client_free(struct mv_secret_client *sc)
{
    if (!sc)
        return;
    http_client_free(sc->http);
    free(sc);
}

/* The request URL: the vault URL + a relative path, or a nextLink on the vault's own origin;
 * api-version added when absent. */
static mv_rc request_url(const struct mv_secret_client *sc, const char *path_or_url, mv_buf *url)
{
    mv_rc rc = MV_OK;
    if (path_or_url[0] == '/') {
        CHECK(mv_buf_addf(url, "%s%s", sc->url, path_or_url));
    } else {
        char netloc[MV_MAX_URL];
        /* Reference §4.2: nextLink is absolute; a token must not follow it to another origin. */
        rc = client_url_netloc(path_or_url, netloc, sizeof netloc);
        if (rc != MV_OK || strncmp(path_or_url, "https://", 8) != 0 || strcmp(netloc, sc->netloc) != 0) {
            rc = client_set_error(MV_STATUS_ERROR, MV_ERR_FORBIDDEN,
                                  "the vault's nextLink points outside %s; not followed", sc->url);
            goto out;
        }
        CHECK(mv_buf_adds(url, path_or_url));
    }
    const char *q = strchr(url->p, '?');
    if (!q || !strstr(q, "api-version="))
        CHECK(mv_buf_addf(url, "%capi-version=" CLIENT_KV_API_VERSION, q ? '&' : '?'));
out:
    return rc;
}

static mv_rc send_once(struct mv_secret_client *sc, const char *method, const char *url,
                       const char *auth, const char *body, struct http_client_resp *resp)
{
    char rid[64] = "x-ms-client-request-id: ";
    char uuid[MV_UUID_LEN + 1];
    if (mv_uuid(uuid) == MV_OK)
        memcpy(rid + strlen(rid), uuid, sizeof uuid);
    const char *hdrs[5];
    int n = 0;
    hdrs[n++] = "Accept: application/json";
    hdrs[n++] = rid;
    if (body)
        hdrs[n++] = "Content-Type: application/json";
    if (auth)
        hdrs[n++] = auth;
    hdrs[n] = NULL;
    mv_rc rc = http_client_do(sc->http, method, url, hdrs, body, body ? strlen(body) : 0,
                              CLIENT_KV_MAX_RESP, resp);
    if (rc == MV_ERR_LIMIT)
        return client_set_error(MV_STATUS_ERROR, rc, "the vault's reply is over %d bytes", CLIENT_KV_MAX_RESP);
    if (rc != MV_OK) {
        const char *why = http_client_error(sc->http);
        return client_set_error(MV_STATUS_UNAVAILABLE, MV_ERR_UNAVAILABLE, "cannot reach the vault at %s (%s)",
                                sc->url, why[0] ? why : "no answer");
    }
    return MV_OK;
}

/* Accepts the challenge of a 401 (reference §4.4): parse, domain check, remember the resource. */
static mv_rc take_challenge(struct mv_secret_client *sc, const char *url, const char *header)
{
    struct client_challenge ch;
    if (!header[0] || client_challenge_parse(header, &ch) != MV_OK)
        return client_set_error(MV_STATUS_UNAUTHORIZED, MV_ERR_UNAUTHENTICATED,
                                "the vault at %s answered 401 without a usable Bearer challenge", sc->url);
    if (!(sc->flags & MV_SECRET_CLIENT_NO_CHALLENGE_CHECK) && client_challenge_check(url, ch.resource) != MV_OK)
        return client_set_error(MV_STATUS_UNAUTHORIZED, MV_ERR_UNAUTHENTICATED,
                                "refusing the vault's challenge: resource %s does not cover host %s",
                                ch.resource, sc->netloc);
    memcpy(sc->resource, ch.resource, sizeof sc->resource);
    return MV_OK;
}

static void resp_wipe_free(struct http_client_resp *resp)
{
    mv_buf_free_secret(&resp->body);
    http_client_resp_free(resp);
}

mv_rc client_kv_call(struct mv_secret_client *sc, const char *method, const char *path_or_url,
                     const char *body, long expect, mv_buf *resp_body)
{
    mv_rc rc = MV_OK;
    mv_buf url, token, auth;
    struct http_client_resp resp;
    memset(&resp, 0, sizeof resp);
    mv_buf_init(&url, 4 * MV_MAX_URL);
    mv_buf_init(&token, MV_MAX_TOKEN_BYTES);
    mv_buf_init(&auth, MV_MAX_TOKEN_BYTES + sizeof KV_AUTH_PREFIX);
    CHECK(request_url(sc, path_or_url, &url));

    if (!sc->resource[0]) {
        /* Steps 1-2: no Authorization, no body (KV-PY/KV-JS strip it); expect a challenge. Any
         * other answer is the caller's, as in the SDKs. */
        CHECK(send_once(sc, method, url.p, NULL, NULL, &resp));
        if (resp.status != 401)
            goto reply;
        CHECK(take_challenge(sc, url.p, resp.www_authenticate));
        resp_wipe_free(&resp);
    }
    for (int attempt = 0;; attempt++) {
        /* Step 3: the credential serves its cached token unless the vault just refused it. */
        CHECK(client_credential_token(sc->cred, sc->resource, attempt > 0, &token, NULL));
        mv_buf_reset(&auth);
        CHECK(mv_buf_adds(&auth, KV_AUTH_PREFIX));
        CHECK(mv_buf_add(&auth, token.p, token.len));
        /* Step 4: with the token and the body. */
        CHECK(send_once(sc, method, url.p, auth.p, body, &resp));
        if (resp.status != 401 || attempt > 0 || !resp.www_authenticate[0])
            break;
        /* A new challenge (resource moved, token expired or revoked): once more. */
        CHECK(take_challenge(sc, url.p, resp.www_authenticate));
        resp_wipe_free(&resp);
    }
reply:
    if (resp.status != expect) {
        rc = client_vault_error(resp.status, resp.body.p, resp.body.len);
        goto out;
    }
    *resp_body = resp.body;
    mv_buf_init(&resp.body, 0);
out:
    resp_wipe_free(&resp);
    mv_buf_free(&url);
    mv_buf_free_secret(&token);
    mv_buf_free_secret(&auth);
    return rc;
}
