/* keys.c: the Key Vault keys operations of libmivault (docs/keys.md), on the same vault client as
 * the secrets (mv_secret_client: one vault URL, one credential, the challenge protocol). Each is
 * one request through client_kv_call and returns the service's JSON text; list follows nextLink.
 * Names and versions are checked here, so they need no escaping in paths. Values of operations
 * (digests, ciphertext, plaintext) travel base64url as the service wants them. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

static int word_ok(const char *s, size_t max, int dash)
{
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (dash && c == '-')))
            return 0;
        if (n >= max)
            return 0;
    }
    return n > 0;
}

static mv_rc start(struct mv_secret_client *sc, const char *name, const char *version, char **json)
{
    client_begin();
    if (json)
        *json = NULL;
    if (!sc)
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "no vault client");
    if (name && !word_ok(name, MV_SECRET_MAX_NAME, 1))
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                                "key names are 1-127 characters of 0-9, a-z, A-Z and '-'");
    if (version && *version && !word_ok(version, CLIENT_MAX_VERSION, 0))
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                                "a key version is letters and digits");
    return MV_OK;
}

/* One call: method path [body] → *json. */
static mv_rc call(struct mv_secret_client *sc, const char *method, const char *path, const char *body,
                  long expect, char **json)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, 0);
    CHECK(client_kv_call(sc, method, path, body, expect, &b));
    if (json) {
        *json = mv_buf_take(&b);
        ENSURE_MSG(*json != NULL, MV_ERR_INTERNAL, "out of memory");
    }
out:
    mv_buf_free_secret(&b);
    return rc;
}

/* Sends o (stolen) as the JSON body. */
static mv_rc call_json(struct mv_secret_client *sc, const char *method, const char *path, json_t *o,
                       char **json)
{
    mv_rc rc = MV_OK;
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    ENSURE_MSG(body != NULL, MV_ERR_BAD_REQUEST, "a value is not valid UTF-8");
    CHECK(call(sc, method, path, body, 200, json));
out:
    if (body) {
        OPENSSL_cleanse(body, strlen(body));
        free(body);
    }
    json_decref(o);
    return rc;
}

int mv_key_create(struct mv_secret_client *sc, const char *name, const char *kty, int size,
                  const char *curve, char **json)
{
    char path[MV_SECRET_MAX_NAME + 32];
    json_t *o = NULL;
    mv_rc rc = start(sc, name, NULL, json);
    if (rc != MV_OK)
        goto out;
    o = json_pack("{s:s}", "kty", kty ? kty : "RSA");
    ENSURE_MSG(o != NULL, MV_ERR_BAD_REQUEST, "kty is not valid UTF-8");
    if (size > 0)
        ENSURE_MSG(json_object_set_new(o, "key_size", json_integer(size)) == 0, MV_ERR_INTERNAL, "out of memory");
    if (curve)
        ENSURE_MSG(json_object_set_new(o, "crv", json_string(curve)) == 0, MV_ERR_BAD_REQUEST, "bad curve");
    CHECK(mv_fmt(path, sizeof path, "/keys/%s/create", name));
    rc = call_json(sc, "POST", path, o, json);
    o = NULL;
out:
    json_decref(o);
    return client_end(rc);
}

int mv_key_get(struct mv_secret_client *sc, const char *name, const char *version, char **json)
{
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 16];
    mv_rc rc = start(sc, name, version, json);
    if (rc == MV_OK)
        rc = mv_fmt(path, sizeof path, "/keys/%s/%s", name, version ? version : "");
    if (rc == MV_OK)
        rc = call(sc, "GET", path, NULL, 200, json);
    return client_end(rc);
}

int mv_key_list(struct mv_secret_client *sc, char **json)
{
    mv_rc rc = start(sc, NULL, NULL, json);
    if (rc == MV_OK)
        rc = client_list(sc, "/keys?maxresults=25", json);
    return client_end(rc);
}

int mv_key_delete(struct mv_secret_client *sc, const char *name, char **json)
{
    char path[MV_SECRET_MAX_NAME + 16];
    mv_rc rc = start(sc, name, NULL, json);
    if (rc == MV_OK)
        rc = mv_fmt(path, sizeof path, "/keys/%s", name);
    if (rc == MV_OK)
        rc = call(sc, "DELETE", path, NULL, 200, json);
    return client_end(rc);
}

int mv_key_op(struct mv_secret_client *sc, const char *name, const char *version, const char *op,
              const char *alg, const char *value, const char *digest, char **json)
{
    static const char *const OPS[] = {"sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey", NULL};
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 32];
    json_t *o = NULL;
    mv_rc rc = start(sc, name, version, json);
    if (rc != MV_OK)
        goto out;
    int known = 0;
    for (size_t i = 0; op && OPS[i]; i++)
        known |= strcmp(op, OPS[i]) == 0;
    if (!known || !alg || !value || (strcmp(op, "verify") == 0) != (digest != NULL)) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                              "an operation is sign, verify (with a digest), encrypt, decrypt, wrapkey or "
                              "unwrapkey, with an algorithm and a base64url value");
        goto out;
    }
    o = json_pack("{s:s, s:s}", "alg", alg, "value", value);
    ENSURE_MSG(o != NULL, MV_ERR_BAD_REQUEST, "alg or value is not valid UTF-8");
    if (digest)
        ENSURE_MSG(json_object_set_new(o, "digest", json_string(digest)) == 0, MV_ERR_BAD_REQUEST,
                   "digest is not valid UTF-8");
    /* an empty version segment is the latest version (the SDKs' form, docs/keys.md) */
    CHECK(mv_fmt(path, sizeof path, "/keys/%s/%s/%s", name, version ? version : "", op));
    rc = call_json(sc, "POST", path, o, json);
    o = NULL;
out:
    json_decref(o);
    return client_end(rc);
}
