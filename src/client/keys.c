/* keys.c: mv_key_client, the key operations of Key Vault (docs/keys.md) through the same request
 * engine and challenge protocol as the secret client: get (the public JWK), sign, verify,
 * encrypt, decrypt, wrapkey, unwrapkey.
 *
 * Bytes go out and come back base64url-encoded in {"alg","value"} bodies; the library hands the
 * caller raw bytes. The library's own buffers that held a plaintext or a key (request body, reply,
 * decoded bytes) are wiped before they are freed; the reply's parse tree (jansson) is not.
 * client_key_reply (pure, fuzzed by tests/fuzz/fuzz_client.c) reads the service's reply. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/b64.h"
#include "common/util.h"

#define KEY_MAX_INPUT (64 * 1024) /* digests, RSA blocks and keys to wrap are far smaller */

struct mv_key_client {
    struct mv_secret_client *engine; /* the request engine (secret_client.c) */
};

int mv_key_client_new(const char *vault_url, struct mv_credential *cred, const char *ca_file,
                      unsigned flags, struct mv_key_client **out)
{
    client_begin();
    mv_rc rc = MV_OK;
    struct mv_key_client *kc = NULL;
    ENSURE_MSG(out != NULL, MV_ERR_BAD_REQUEST, "NULL argument");
    *out = NULL;
    kc = calloc(1, sizeof *kc);
    ENSURE_MSG(kc != NULL, MV_ERR_INTERNAL, "out of memory");
    /* The engine records its own errors; keep its status. */
    int st = mv_secret_client_new(vault_url, cred, ca_file, flags, &kc->engine);
    if (st != MV_STATUS_OK) {
        free(kc);
        return st;
    }
    *out = kc;
    return MV_STATUS_OK;
out:
    free(kc);
    return client_end(rc);
}

void mv_key_client_free(struct mv_key_client *kc)
{
    if (!kc)
        return;
    mv_secret_client_free(kc->engine);
    free(kc);
}

void mv_bytes_free(unsigned char *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

struct mv_secret_client *client_key_engine(struct mv_key_client *kc) { return kc ? kc->engine : NULL; }

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

int mv_key_get(struct mv_key_client *kc, const char *name, const char *version, char **json)
{
    client_begin();
    mv_rc rc = MV_OK;
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 32];
    mv_buf b;
    mv_buf_init(&b, 0);
    if (json)
        *json = NULL;
    ENSURE_MSG(kc != NULL, MV_ERR_BAD_REQUEST, "no key client");
    CHECK(key_path(name, version, "", path, sizeof path));
    CHECK(client_kv_call(kc->engine, "GET", path, NULL, 200, &b));
    if (json) {
        *json = mv_buf_take(&b);
        ENSURE_MSG(*json != NULL, MV_ERR_INTERNAL, "out of memory");
    }
out:
    mv_buf_free(&b);
    return client_end(rc);
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
static int key_op(struct mv_key_client *kc, const char *name, const char *version, const char *op,
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
    ENSURE_MSG(kc != NULL && alg != NULL && (in != NULL || in_len == 0) && (out || valid), MV_ERR_BAD_REQUEST,
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
    CHECK(client_kv_call(kc->engine, "POST", path, body.p, 200, &reply));
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

int mv_key_sign(struct mv_key_client *kc, const char *name, const char *version, const char *alg,
                const unsigned char *digest, size_t digest_len, unsigned char **sig, size_t *sig_len)
{
    if (!sig || !sig_len) {
        client_begin();
        return client_end(client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "NULL argument"));
    }
    return key_op(kc, name, version, "/sign", alg, digest, digest_len, NULL, 0, sig, sig_len, NULL);
}

int mv_key_verify(struct mv_key_client *kc, const char *name, const char *version, const char *alg,
                  const unsigned char *digest, size_t digest_len, const unsigned char *sig, size_t sig_len,
                  int *valid)
{
    if (!valid || !digest) {
        client_begin();
        return client_end(client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "NULL argument"));
    }
    /* docs/keys.md: {"alg", "digest", "value": signature} → {"value": true|false}. */
    return key_op(kc, name, version, "/verify", alg, sig, sig_len, digest, digest_len, NULL, NULL, valid);
}

#define BYTES_OP(fn, op)                                                                                   \
    int fn(struct mv_key_client *kc, const char *name, const char *version, const char *alg,               \
           const unsigned char *in, size_t in_len, unsigned char **out, size_t *out_len)                   \
    {                                                                                                      \
        if (!out || !out_len) {                                                                            \
            client_begin();                                                                                \
            return client_end(client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "NULL argument")); \
        }                                                                                                  \
        return key_op(kc, name, version, op, alg, in, in_len, NULL, 0, out, out_len, NULL);                \
    }

BYTES_OP(mv_key_encrypt, "/encrypt")
BYTES_OP(mv_key_decrypt, "/decrypt")
BYTES_OP(mv_key_wrap, "/wrapkey")
BYTES_OP(mv_key_unwrap, "/unwrapkey")
