/* keys.c: the authority's token signing keys (DESIGN §4): RSA-2048, private part sealed at rest
 * with the data key, published in the JWKS together with every retired key whose tokens may
 * still be alive.
 *
 * Invariants:
 *   - a key's private PKCS#8 PEM exists in clear only inside authority_new_signing_key and
 *     while being loaded, and is wiped right after; the sealed form binds it to its kid (AAD
 *     "signing-key:<kid>"), so rows cannot be swapped;
 *   - the current key is the newest one with retired == 0; creating a key retires the others
 *     (after the new one is stored, so a crash in between leaves two published keys, never none);
 *   - a retired key stays in the JWKS until every token it signed has expired: the token
 *     lifetime after retirement, plus the clock skew validators allow;
 *   - kid = x5t = the key's thumbprint (reference §3.1), checked again at load.
 * authority_load_keys builds everything before touching srv, and is meant for start-up (srv is
 * read-only once the loop threads run). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "authority/internal.h"
#include "common/b64.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/aead.h"
#include "crypto/ca.h"
#include "crypto/jwk.h"
#include "crypto/keys.h"
#include "token/validate.h"

#define SIGNING_KEY_BITS 2048
#define KEY_PEM_MAX (16 * 1024)
#define KEY_AAD_MAX 64

static mv_rc key_aad(const char *kid, char aad[KEY_AAD_MAX])
{
    return mv_fmt(aad, KEY_AAD_MAX, "signing-key:%s", kid);
}

/* Marks every other current key retired as of now (store_signing_key_put replaces by kid). */
static mv_rc retire_others(struct store *st, const char *kid, int64_t now)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    CHECK(store_signing_keys(st, &keys, &n));
    for (size_t i = 0; i < n; i++) {
        if (keys[i].retired != 0 || strcmp(keys[i].kid, kid) == 0)
            continue;
        keys[i].retired = now;
        CHECK(store_signing_key_put(st, &keys[i]));
    }
out:
    st_signing_keys_free(keys, n);
    return rc;
}

mv_rc authority_new_signing_key(struct store *st, const unsigned char data_key[32])
{
    mv_rc rc = MV_OK;
    EVP_PKEY *k = NULL;
    struct st_signing_key sk;
    char aad[KEY_AAD_MAX];
    mv_buf priv, sealed, sealed_b64, pub, x5c;
    memset(&sk, 0, sizeof sk);
    mv_buf_init(&priv, KEY_PEM_MAX);
    mv_buf_init(&sealed, KEY_PEM_MAX + AEAD_OVERHEAD);
    mv_buf_init(&sealed_b64, 2 * KEY_PEM_MAX);
    mv_buf_init(&pub, KEY_PEM_MAX);
    mv_buf_init(&x5c, KEY_PEM_MAX);

    CHECK(keys_gen_rsa(SIGNING_KEY_BITS, &k));
    CHECK(keys_thumbprint(k, sk.kid));
    CHECK(keys_private_pem(k, &priv));
    CHECK(key_aad(sk.kid, aad));
    CHECK(aead_seal(data_key, aad, priv.p, priv.len, &sealed));
    CHECK(b64_encode(&sealed_b64, sealed.p, sealed.len));
    CHECK(keys_public_pem(k, &pub));
    CHECK(ca_self_signed_b64(k, &x5c));
    sk.sealed_private_b64 = sealed_b64.p;
    sk.public_pem = pub.p;
    sk.x5c_b64 = x5c.p;
    sk.created = mv_now();
    sk.retired = 0;
    CHECK(store_signing_key_put(st, &sk));
    CHECK(retire_others(st, sk.kid, sk.created));
    LOG_INFO("authority: new signing key %s", sk.kid);
out:
    mv_buf_free_secret(&priv);
    mv_buf_free(&sealed);
    mv_buf_free(&sealed_b64);
    mv_buf_free(&pub);
    mv_buf_free(&x5c);
    EVP_PKEY_free(k);
    return rc;
}

#define ROTATE_LOCK "mivault:signing-key"

mv_rc authority_rotate(struct store *st, const unsigned char data_key[32], int days, int *rotated)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    int in_tx = 0;
    *rotated = 0;
    CHECK(store_begin(st));
    in_tx = 1;
    CHECK(store_xact_lock(st, ROTATE_LOCK));
    if (days > 0) { /* the schedule: re-checked under the lock, so one server rotates */
        CHECK(store_signing_keys(st, &keys, &n));
        int64_t newest = 0;
        for (size_t i = 0; i < n; i++)
            if (keys[i].retired == 0 && keys[i].created > newest)
                newest = keys[i].created;
        if (newest != 0 && mv_now() - newest < (int64_t)days * 86400)
            goto out; /* not due (rolled back below: nothing was written) */
    }
    CHECK(authority_new_signing_key(st, data_key));
    CHECK(store_commit(st));
    in_tx = 0;
    *rotated = 1;
out:
    if (in_tx)
        store_rollback(st);
    st_signing_keys_free(keys, n);
    return rc;
}

mv_rc authority_retire_key(struct store *st, const char *kid, int token_lifetime, int force)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    int in_tx = 0;
    const struct st_signing_key *k = NULL;
    CHECK(store_begin(st));
    in_tx = 1;
    CHECK(store_xact_lock(st, ROTATE_LOCK));
    CHECK(store_signing_keys(st, &keys, &n));
    for (size_t i = 0; i < n && !k; i++)
        if (strcmp(keys[i].kid, kid) == 0)
            k = &keys[i];
    ENSURE_MSG(k != NULL, MV_ERR_NOT_FOUND, "no signing key %s", kid);
    ENSURE_MSG(k->retired != 0, MV_ERR_CONFLICT,
               "%s is the current signing key: `mivault authority key rotate` first", kid);
    int64_t lifetime = token_lifetime > 0 ? token_lifetime : MV_TOKEN_LIFETIME_SECS;
    ENSURE_MSG(force || !token_key_published(k->retired, mv_now(), lifetime), MV_ERR_CONFLICT,
               "tokens signed by %s may be valid until %lld (Unix time): retire it then, or "
               "pass --force to refuse them now",
               kid, (long long)(k->retired + lifetime + MV_CLOCK_SKEW_SECS));
    CHECK(store_signing_key_delete(st, kid));
    CHECK(store_commit(st));
    in_tx = 0;
    LOG_INFO("authority: signing key %s retired%s", kid, force ? " (forced)" : "");
out:
    if (in_tx)
        store_rollback(st);
    st_signing_keys_free(keys, n);
    return rc;
}

/* The private key of k, unsealed with the data key. */
static mv_rc unseal(const struct st_signing_key *k, const unsigned char data_key[32],
                    EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    char aad[KEY_AAD_MAX];
    char kid[32];
    mv_buf sealed, pem;
    *out = NULL;
    mv_buf_init(&sealed, 2 * KEY_PEM_MAX);
    mv_buf_init(&pem, 2 * KEY_PEM_MAX);
    ENSURE(k->sealed_private_b64 != NULL, MV_ERR_INTERNAL);
    CHECK(b64_decode(&sealed, k->sealed_private_b64, strlen(k->sealed_private_b64)));
    CHECK(key_aad(k->kid, aad));
    ENSURE_MSG(aead_open(data_key, aad, sealed.p, sealed.len, &pem) == MV_OK, MV_ERR_INTERNAL,
               "signing key %s does not unseal (wrong master key?)", k->kid);
    CHECK(keys_from_private_pem(pem.p, pem.len, out));
    ENSURE(keys_is_rsa(*out), MV_ERR_INTERNAL);
    CHECK(keys_thumbprint(*out, kid));
    ENSURE_MSG(strcmp(kid, k->kid) == 0, MV_ERR_INTERNAL, "signing key %s: kid mismatch", k->kid);
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    mv_buf_free_secret(&pem);
    mv_buf_free(&sealed);
    return rc;
}

/* One JWKS entry (reference §3.3): kty, use, kid, x5t, n, e, x5c, issuer. */
static mv_rc jwks_entry(const struct authority_plane *srv, const struct st_signing_key *k, json_t *keys)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *pub = NULL;
    json_t *jwk = NULL, *x5c = NULL;
    ENSURE(k->public_pem != NULL, MV_ERR_INTERNAL);
    CHECK(keys_from_public_pem(k->public_pem, strlen(k->public_pem), &pub));
    ENSURE(keys_is_rsa(pub), MV_ERR_INTERNAL);
    CHECK(jwk_from_public(pub, k->kid, &jwk));
    ENSURE(json_object_set_new(jwk, "x5t", json_string(k->kid)) == 0, MV_ERR_INTERNAL);
    if (k->x5c_b64 && *k->x5c_b64) {
        x5c = json_array();
        ENSURE(x5c && json_array_append_new(x5c, json_string(k->x5c_b64)) == 0, MV_ERR_INTERNAL);
        ENSURE(json_object_set(jwk, "x5c", x5c) == 0, MV_ERR_INTERNAL);
    }
    ENSURE(json_object_set_new(jwk, "issuer", json_string(srv->issuer)) == 0, MV_ERR_INTERNAL);
    ENSURE(json_array_append(keys, jwk) == 0, MV_ERR_INTERNAL);
out:
    json_decref(x5c);
    json_decref(jwk);
    EVP_PKEY_free(pub);
    return rc;
}

/* The newest key that still signs, or NULL. keys are newest first. */
static const struct st_signing_key *current(const struct st_signing_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i].retired == 0)
            return &keys[i];
    return NULL;
}

/* The JWKS document of keys (newest first): every key some unexpired token may carry. */
static mv_rc jwks_doc(const struct authority_plane *srv, const struct st_signing_key *keys, size_t n,
                      char **out, size_t *published)
{
    mv_rc rc = MV_OK;
    json_t *doc = NULL, *arr = NULL;
    int64_t now = mv_now();
    int64_t lifetime = srv->token_lifetime > 0 ? srv->token_lifetime : MV_TOKEN_LIFETIME_SECS;
    arr = json_array();
    doc = json_object();
    ENSURE(arr && doc && json_object_set(doc, "keys", arr) == 0, MV_ERR_INTERNAL);
    for (size_t i = 0; i < n; i++) {
        if (!token_key_published(keys[i].retired, now, lifetime))
            continue; /* every token it signed has expired */
        CHECK(jwks_entry(srv, &keys[i], arr));
    }
    *out = json_dumps(doc, JSON_COMPACT);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
    if (published)
        *published = json_array_size(arr);
out:
    json_decref(arr);
    json_decref(doc);
    return rc;
}

mv_rc authority_jwks_build(const struct authority_plane *srv, struct store *st, char **out)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    *out = NULL;
    CHECK(store_signing_keys(st, &keys, &n));
    CHECK(jwks_doc(srv, keys, n, out, NULL));
out:
    st_signing_keys_free(keys, n);
    return rc;
}

mv_rc authority_current_key(const struct authority_plane *srv, struct store *st, EVP_PKEY **key,
                            char kid[32])
{
    mv_rc rc = MV_OK;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    *key = NULL;
    CHECK(store_signing_keys(st, &keys, &n));
    const struct st_signing_key *cur = current(keys, n);
    ENSURE(cur != NULL, MV_ERR_NOT_FOUND);
    CHECK(unseal(cur, srv->data_key, key));
    memcpy(kid, cur->kid, sizeof cur->kid);
out:
    st_signing_keys_free(keys, n);
    return rc;
}

mv_rc authority_load_keys(struct authority_plane *srv, struct store *st)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *keys = NULL;
    size_t n = 0, published = 0;
    EVP_PKEY *sign = NULL;
    char *jwks = NULL;

    CHECK(store_signing_keys(st, &keys, &n));
    if (!current(keys, n)) {
        st_signing_keys_free(keys, n);
        keys = NULL, n = 0;
        CHECK(authority_new_signing_key(st, srv->data_key));
        CHECK(store_signing_keys(st, &keys, &n));
    }
    const struct st_signing_key *cur = current(keys, n);
    ENSURE_MSG(cur != NULL, MV_ERR_INTERNAL, "no current signing key after creating one");
    CHECK(unseal(cur, srv->data_key, &sign));
    CHECK(jwks_doc(srv, keys, n, &jwks, &published));

    authority_free_keys(srv);
    CHECK(mv_copy(srv->sign_kid, sizeof srv->sign_kid, cur->kid));
    srv->sign_key = sign;
    srv->jwks_json = jwks;
    sign = NULL, jwks = NULL;
    LOG_INFO("authority: signing with key %s, %zu key(s) published", srv->sign_kid, published);
out:
    free(jwks);
    EVP_PKEY_free(sign);
    st_signing_keys_free(keys, n);
    return rc;
}

void authority_free_keys(struct authority_plane *srv)
{
    EVP_PKEY_free(srv->sign_key);
    srv->sign_key = NULL;
    srv->sign_kid[0] = '\0';
    free(srv->jwks_json);
    srv->jwks_json = NULL;
}
