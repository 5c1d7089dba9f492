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
#include "common/b64.h"
#include "common/util.h"

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

/* ---- bytes in, bytes out (mv_key_sign ... mv_key_unwrap) ----
 * Bytes go out and come back base64url-encoded in {"alg","value"} bodies; the caller gets raw
 * bytes. The library's own buffers that held a plaintext or a key (request body, reply, decoded
 * bytes) are wiped before they are freed; the reply's parse tree (jansson) is not.
 * client_key_reply (pure, fuzzed by tests/fuzz/fuzz_client.c) reads the service's reply. */

#define KEY_MAX_INPUT (64 * 1024) /* digests, RSA blocks and keys to wrap are far smaller */

void mv_bytes_free(unsigned char *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

int client_valid_name(const char *s, size_t max, int dash)
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

/* "/keys/NAME/VERSION" (empty VERSION: the latest, as the SDKs send it) + suffix. */
static mv_rc key_path(const char *name, const char *version, const char *suffix, char *out, size_t len)
{
    if (!client_valid_name(name, MV_SECRET_MAX_NAME, 1))
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                                "key names are 1-127 characters of 0-9, a-z, A-Z and '-'");
    if (version && *version && !client_valid_name(version, CLIENT_MAX_VERSION, 0))
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "a key version is letters and digits");
    return mv_fmt(out, len, "/keys/%s/%s%s", name, version ? version : "", suffix);
}

mv_rc client_key_reply(const char *body, size_t len, int want_bool, mv_buf *bytes, int *flag)
{
    mv_rc rc = MV_OK;
    json_t *j = json_loadb(body ? body : "", len, 0, NULL);
    json_t *v = json_object_get(j, "value");
    if (want_bool) {
        ENSURE_MSG(json_is_boolean(v), MV_ERR_UNAVAILABLE, "verify reply has no boolean value");
        *flag = json_is_true(v);
    } else {
        ENSURE_MSG(json_is_string(v), MV_ERR_UNAVAILABLE, "reply has no value");
        ENSURE_MSG(b64url_decode(bytes, json_string_value(v), json_string_length(v)) == MV_OK,
                   MV_ERR_UNAVAILABLE, "reply value is not base64url");
    }
out:
    if (rc != MV_OK)
        rc = client_set_error(MV_STATUS_ERROR, rc, "the vault's key operation reply is malformed");
    json_decref(j);
    return rc;
}

/* One POST /keys/NAME/VERSION/OP {"alg", "value", "digest"?}; the reply's value decoded into
 * *out (want_bool: its boolean into *valid). */
static int key_op(struct mv_secret_client *sc, const char *name, const char *version, const char *op,
                  const char *alg, const unsigned char *in, size_t in_len, const unsigned char *digest,
                  size_t digest_len, unsigned char **out, size_t *out_len, int *valid)
{
    client_begin();
    mv_rc rc = MV_OK;
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 32];
    mv_buf enc, denc, body, reply, bytes;
    mv_buf_init(&enc, 4 * KEY_MAX_INPUT);
    mv_buf_init(&body, 12 * KEY_MAX_INPUT);
    mv_buf_init(&denc, 4 * KEY_MAX_INPUT);
    mv_buf_init(&reply, 0);
    mv_buf_init(&bytes, 4 * KEY_MAX_INPUT);
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (valid)
        *valid = 0;
    ENSURE_MSG(sc != NULL && alg != NULL && (in != NULL || in_len == 0) && (out || valid), MV_ERR_BAD_REQUEST,
               "NULL argument");
    if (in_len == 0 || in_len > KEY_MAX_INPUT || !*alg || strlen(alg) > 32) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                              "the input must be 1-%d bytes and alg a JWA name", KEY_MAX_INPUT);
        goto out;
    }
    CHECK(key_path(name, version, op, path, sizeof path));
    /* A JWA name: letters, digits, '-' and '_' (so it needs no JSON escaping). */
    if (strspn(alg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(alg)) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "alg is not a JWA algorithm name");
        goto out;
    }
    /* The body is written by hand into a buffer that is wiped: it carries the plaintext or the key
     * to wrap (base64url needs no escaping). */
    CHECK(b64url_encode(&enc, in, in_len));
    CHECK(mv_buf_addf(&body, "{\"alg\":\"%s\",\"value\":\"%s\"", alg, enc.p ? enc.p : ""));
    if (digest) {
        ENSURE_MSG(digest_len > 0 && digest_len <= KEY_MAX_INPUT, MV_ERR_BAD_REQUEST, "bad digest length");
        CHECK(b64url_encode(&denc, digest, digest_len));
        CHECK(mv_buf_addf(&body, ",\"digest\":\"%s\"", denc.p ? denc.p : ""));
    }
    CHECK(mv_buf_adds(&body, "}"));
    CHECK(client_kv_call(sc, "POST", path, body.p, 200, &reply));
    CHECK(client_key_reply(reply.p, reply.len, valid != NULL, &bytes, valid));
    if (out) {
        *out = malloc(bytes.len ? bytes.len : 1);
        ENSURE_MSG(*out != NULL, MV_ERR_INTERNAL, "out of memory");
        if (bytes.len)
            memcpy(*out, bytes.p, bytes.len);
        if (out_len)
            *out_len = bytes.len;
    }
out:
    mv_buf_free_secret(&body);
    mv_buf_free_secret(&enc);
    mv_buf_free_secret(&denc);
    mv_buf_free_secret(&reply);
    mv_buf_free_secret(&bytes);
    return client_end(rc);
}

int mv_key_sign(struct mv_secret_client *sc, const char *name, const char *version, const char *alg,
                const unsigned char *digest, size_t digest_len, unsigned char **sig, size_t *sig_len)
{
    if (!sig || !sig_len) {
        client_begin();
        return client_end(client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "NULL argument"));
    }
    return key_op(sc, name, version, "/sign", alg, digest, digest_len, NULL, 0, sig, sig_len, NULL);
}

int mv_key_verify(struct mv_secret_client *sc, const char *name, const char *version, const char *alg,
                  const unsigned char *digest, size_t digest_len, const unsigned char *sig, size_t sig_len,
                  int *valid)
{
    if (!valid || !digest) {
        client_begin();
        return client_end(client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "NULL argument"));
    }
    /* docs/keys.md: {"alg", "digest", "value": signature} → {"value": true|false}. */
    return key_op(sc, name, version, "/verify", alg, sig, sig_len, digest, digest_len, NULL, NULL, valid);
}

#define BYTES_OP(fn, op)                                                                                   \
    int fn(struct mv_secret_client *sc, const char *name, const char *version, const char *alg,               \
           const unsigned char *in, size_t in_len, unsigned char **out, size_t *out_len)                   \
    {                                                                                                      \
        if (!out || !out_len) {                                                                            \
            client_begin();                                                                                \
            return client_end(client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "NULL argument")); \
        }                                                                                                  \
        return key_op(sc, name, version, op, alg, in, in_len, NULL, 0, out, out_len, NULL);                \
    }

BYTES_OP(mv_key_encrypt, "/encrypt")
BYTES_OP(mv_key_decrypt, "/decrypt")
BYTES_OP(mv_key_wrap, "/wrapkey")
BYTES_OP(mv_key_unwrap, "/unwrapkey")
