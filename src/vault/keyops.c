/* keyops.c: the cryptographic operations of Key Vault keys (reference §2.4): sign, verify,
 * encrypt, decrypt, wrapkey, unwrapkey on POST /keys/{n}/{v}/{op} (empty {v} = latest).
 *
 * Order of checks (reference §3): body (400), key (404 KeyNotFound), disabled (403 KeyDisabled),
 * op in key_ops (403 KeyOperationForbidden), nbf/exp for encrypt, wrapkey and sign only (403:
 * an expired key still decrypts, unwraps and verifies, pitfall 8), then the algorithm against
 * the key and the digest length (400 BadParameter). The private key is opened for the one
 * operation and freed; results are base64url without padding. */
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"
#include "common/util.h"
#include "vault/keys.h"
#include "vault/vault_internal.h"

/* The parsed private keys of recent operations, per loop thread. Opening a sealed key (AES-GCM,
 * the PKCS#8 decoder) and its first use (an RSA key's Montgomery contexts and blinding) cost
 * several times the signature itself; the material of a version never changes, so the parsed
 * key is kept, keyed by the exact sealed bytes of the row (a random nonce makes them unique to
 * one version of one key: a row that changed, moved or was restored elsewhere misses). Only
 * the parse is cached: every operation still reads the row (deleted, disabled, key_ops,
 * nbf/exp are checked each time). Entries live KEYCACHE_TTL_SECS at most. */
#define KEYCACHE_SLOTS 64
#define KEYCACHE_TTL_SECS 300

struct keycache_entry {
    unsigned char *sealed;
    size_t len;
    EVP_PKEY *pkey;
    int64_t at;
};

struct vault_keycache {
    struct keycache_entry e[KEYCACHE_SLOTS];
};

static void entry_clear(struct keycache_entry *e)
{
    free(e->sealed);
    EVP_PKEY_free(e->pkey);
    memset(e, 0, sizeof *e);
}

void vault_keycache_free(struct vault_loop *w)
{
    if (!w->keycache)
        return;
    for (size_t i = 0; i < KEYCACHE_SLOTS; i++)
        entry_clear(&w->keycache->e[i]);
    free(w->keycache);
    w->keycache = NULL;
}

/* The parsed private key of row k (a reference of the caller's own: EVP_PKEY_free it). */
static mv_rc open_key(struct vault_loop *w, const struct st_key *k, EVP_PKEY **out)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the sealed bytes */
    for (size_t i = 0; i < k->sealed.len; i++) {
        h ^= (unsigned char)k->sealed.p[i];
        h *= 1099511628211ULL;
    }
    int64_t now = mv_now();
    if (!w->keycache)
        w->keycache = calloc(1, sizeof *w->keycache);
    struct keycache_entry *e = w->keycache ? &w->keycache->e[h % KEYCACHE_SLOTS] : NULL;
    if (e && e->pkey && e->len == k->sealed.len && now - e->at < KEYCACHE_TTL_SECS &&
        memcmp(e->sealed, k->sealed.p, e->len) == 0 && EVP_PKEY_up_ref(e->pkey) == 1) {
        *out = e->pkey;
        return MV_OK;
    }
    mv_rc rc = vault_key_open(w->srv->data_key, k, out);
    if (rc != MV_OK || !e)
        return rc;
    entry_clear(e);
    if ((e->sealed = malloc(k->sealed.len ? k->sealed.len : 1)) && EVP_PKEY_up_ref(*out) == 1) {
        memcpy(e->sealed, k->sealed.p, k->sealed.len);
        e->len = k->sealed.len;
        e->pkey = *out;
        e->at = now;
    } else {
        free(e->sealed);
        e->sealed = NULL;
    }
    return MV_OK;
}

enum key_op { OP_SIGN, OP_VERIFY, OP_ENCRYPT, OP_DECRYPT, OP_WRAP, OP_UNWRAP };

static const char *const OP_NAMES[] = {"sign", "verify", "encrypt", "decrypt", "wrapKey",
                                       "unwrapKey"};

void vault_key_op_input_free(struct vault_key_op_input *in)
{
    if (in->root) {
        vault_json_wipe(in->root);
        json_decref(in->root);
    }
    mv_buf_free_secret(&in->value);
    mv_buf_free_secret(&in->digest);
    memset(in, 0, sizeof *in);
}

mv_rc vault_parse_key_op(const char *body, size_t len, int verify, struct vault_key_op_input *in,
                         const char **why)
{
    json_error_t jerr;
    memset(in, 0, sizeof *in);
    mv_buf_init(&in->value, 0);
    mv_buf_init(&in->digest, 0);
    *why = "The request body is not a valid JSON object.";
    if (!body || len == 0 || !vault_json_depth_ok(body, len, MV_MAX_JSON_DEPTH))
        return MV_ERR_BAD_REQUEST;
    in->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(in->root))
        return MV_ERR_BAD_REQUEST;
    in->alg = json_string_value(json_object_get(in->root, "alg"));
    if (!in->alg) {
        *why = "The value of 'alg' is required.";
        return MV_ERR_BAD_REQUEST;
    }
    *why = "The value of 'value' must be base64url.";
    if (vkey_b64_member(in->root, "value", &in->value) != MV_OK)
        return MV_ERR_BAD_REQUEST;
    if (verify) {
        *why = "The value of 'digest' must be base64url.";
        if (vkey_b64_member(in->root, "digest", &in->digest) != MV_OK)
            return MV_ERR_BAD_REQUEST;
    }
    return MV_OK;
}

static int key_has_op(const char *jwk_json, const char *op)
{
    json_error_t jerr;
    json_t *jwk = json_loads(jwk_json ? jwk_json : "", 0, &jerr);
    json_t *ops = json_object_get(jwk, "key_ops");
    size_t i;
    json_t *v;
    int found = 0;
    json_array_foreach(ops, i, v) {
        const char *s = json_string_value(v);
        if (s && strcmp(s, op) == 0)
            found = 1;
    }
    json_decref(jwk);
    return found;
}

static void forbidden(struct vault_ctx *c, const char *fmt, const char *op, const char *inner)
{
    char msg[160];
    if (mv_fmt(msg, sizeof msg, fmt, op) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 403, "Forbidden", msg, inner);
}

static mv_rc add_b64(json_t *o, const char *name, const void *p, size_t n)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, 2 * n + 8);
    CHECK(b64url_encode(&b, p, n));
    ENSURE(json_object_set_new(o, name, json_string(b.p ? b.p : "")) == 0, MV_ERR_INTERNAL);
out:
    mv_buf_free_secret(&b);
    return rc;
}

static void key_op(struct vault_ctx *c, enum key_op op)
{
    mv_rc rc = MV_OK;
    struct vault_key_op_input in;
    struct st_key k;
    EVP_PKEY *pkey = NULL;
    const char *why = NULL;
    char msg[512], kid[MV_MAX_URL + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    mv_buf res, out_text;
    json_t *body = NULL;
    int valid = 0;
    memset(&k, 0, sizeof k);
    mv_buf_init(&res, 0);
    mv_buf_init(&out_text, 0);
    msg[0] = '\0';
    if (vault_parse_key_op(c->req->body.p, c->req->body.len, op == OP_VERIFY, &in, &why) !=
        MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    rc = store_key_get(c->w->st, c->vault.name, c->name, c->version[0] ? c->version : NULL, &k);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_key_not_found(c, c->name, c->version);
        goto out;
    }
    CHECK(rc);
    const char *name = OP_NAMES[op];
    if (!k.enabled) {
        forbidden(c, "Operation %s is not allowed on a disabled key.", name, "KeyDisabled");
        goto out;
    }
    if (!key_has_op(k.jwk_json, name)) {
        forbidden(c, "Operation %s is not permitted on this key.", name, "KeyOperationForbidden");
        goto out;
    }
    if (op == OP_SIGN || op == OP_ENCRYPT || op == OP_WRAP) {
        int64_t now = mv_now();
        if (k.nbf && now < k.nbf) {
            forbidden(c, "Operation %s is not allowed on a key that is not yet valid.", name,
                      "KeyNotYetValid");
            goto out;
        }
        if (k.exp && now > k.exp) {
            forbidden(c, "Operation %s is not allowed on an expired key.", name, "KeyExpired");
            goto out;
        }
    }
    CHECK(vault_cat(kid, sizeof kid, c->url, "/keys/", k.name, "/", k.version, (char *)NULL));
    CHECK(open_key(c->w, &k, &pkey));
    const unsigned char *v = (const unsigned char *)(in.value.p ? in.value.p : "");
    switch (op) {
    case OP_SIGN:
        rc = vkey_sign(pkey, kid, in.alg, v, in.value.len, &res, msg, sizeof msg);
        break;
    case OP_VERIFY:
        rc = vkey_verify(pkey, kid, in.alg, (const unsigned char *)in.digest.p, in.digest.len, v,
                         in.value.len, &valid, msg, sizeof msg);
        break;
    default:
        rc = vkey_crypt(pkey, in.alg, op == OP_DECRYPT || op == OP_UNWRAP, v, in.value.len, &res,
                        msg, sizeof msg);
        break;
    }
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, msg);
        goto out;
    }
    CHECK(rc);
    if (op == OP_SIGN) {
        /* The sign hot path (docs/benchmarks.md "Keys"): {"kid","value"} written straight into
         * the reply buffer, as the secret GET does, not built and dumped through jansson. */
        mv_buf_init(&out_text, 2 * sizeof kid + 4 * res.len + 64);
        CHECK(mv_buf_add(&out_text, "{\"kid\":", 7));
        CHECK(vault_json_escape(&out_text, kid, strlen(kid)));
        CHECK(mv_buf_add(&out_text, ",\"value\":\"", 10));
        CHECK(b64url_encode(&out_text, res.p ? res.p : "", res.len));
        CHECK(mv_buf_add(&out_text, "\"}", 2));
        vault_reply_body(c, 200, out_text.p, out_text.len);
        goto out;
    }
    body = json_object();
    ENSURE(body != NULL, MV_ERR_INTERNAL);
    if (op == OP_VERIFY) {
        ENSURE(json_object_set_new(body, "value", json_boolean(valid)) == 0, MV_ERR_INTERNAL);
    } else {
        ENSURE(json_object_set_new(body, "kid", json_string(kid)) == 0, MV_ERR_INTERNAL);
        CHECK(add_b64(body, "value", res.p ? res.p : "", res.len));
    }
    vault_reply_json(c, 200, body);
    body = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    if (body) {
        vault_json_wipe(body);
        json_decref(body);
    }
    EVP_PKEY_free(pkey);
    mv_buf_free_secret(&res);
    mv_buf_free(&out_text);
    st_key_clear(&k);
    vault_key_op_input_free(&in);
}

void vault_op_key_sign(struct vault_ctx *c) { key_op(c, OP_SIGN); }
void vault_op_key_verify(struct vault_ctx *c) { key_op(c, OP_VERIFY); }
void vault_op_key_encrypt(struct vault_ctx *c) { key_op(c, OP_ENCRYPT); }
void vault_op_key_decrypt(struct vault_ctx *c) { key_op(c, OP_DECRYPT); }
void vault_op_key_wrap(struct vault_ctx *c) { key_op(c, OP_WRAP); }
void vault_op_key_unwrap(struct vault_ctx *c) { key_op(c, OP_UNWRAP); }
