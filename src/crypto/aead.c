/* aead.c: AES-256-GCM sealing of values at rest (see aead.h for the format).
 *
 * Invariants: a fresh random 96-bit nonce per seal (NIST SP 800-38D §8.2.2, random IV
 * construction; a data key seals far fewer than 2^32 values); the version byte and the caller's
 * AAD string are both authenticated; aead_open writes nothing to out unless the tag verified,
 * and every failure is the same MV_ERR_INTERNAL (a bad blob at rest is corruption or tampering,
 * never the client's fault). Decrypted plaintext is wiped from temporary memory. */
#include "crypto/aead.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

#include "common/util.h"

#define AEAD_VERSION 1
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_MAX_PT (INT_MAX - 64) /* EVP update lengths are int */

/* AES-256-GCM fetched from the provider once: passing EVP_aes_256_gcm() makes OpenSSL 3 fetch
 * the implementation again on every EVP_CipherInit_ex (a third of an open's cost on the vault's
 * GET path, docs/benchmarks.md). Kept for the life of the process. */
static EVP_CIPHER *gcm_fetched;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void) { gcm_fetched = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL); }

static const EVP_CIPHER *aes_gcm(void)
{
    pthread_once(&gcm_once, gcm_fetch);
    return gcm_fetched ? gcm_fetched : EVP_aes_256_gcm();
}

/* Cipher context keyed for one message, with AAD = version byte || aad. */
static mv_rc start(EVP_CIPHER_CTX *ctx, int enc, const unsigned char *key,
                   const unsigned char *nonce, const char *aad)
{
    mv_rc rc = MV_OK;
    static const unsigned char version = AEAD_VERSION;
    int n = 0;
    size_t aadlen = aad ? strlen(aad) : 0;
    ENSURE(aadlen <= INT_MAX, MV_ERR_INTERNAL);
    ENSURE(EVP_CipherInit_ex(ctx, aes_gcm(), NULL, NULL, NULL, enc) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) == 1,
           MV_ERR_INTERNAL);
    ENSURE(EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_CipherUpdate(ctx, NULL, &n, &version, 1) == 1, MV_ERR_INTERNAL);
    if (aadlen)
        ENSURE(EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)aadlen) == 1,
               MV_ERR_INTERNAL);
out:
    return rc;
}

mv_rc aead_seal(const unsigned char key[AEAD_KEY_LEN], const char *aad, const void *pt,
                size_t ptlen, mv_buf *out)
{
    mv_rc rc = MV_OK;
    unsigned char head[1 + AEAD_NONCE_LEN];
    unsigned char tag[AEAD_TAG_LEN];
    unsigned char *ct = NULL;
    int n = 0, fin = 0;
    size_t start_len = out->len;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    ENSURE(ctx != NULL, MV_ERR_INTERNAL);
    ENSURE(ptlen <= AEAD_MAX_PT, MV_ERR_LIMIT);
    head[0] = AEAD_VERSION;
    CHECK(mv_random(head + 1, AEAD_NONCE_LEN));
    CHECK(start(ctx, 1, key, head + 1, aad));
    ct = OPENSSL_malloc(ptlen ? ptlen : 1);
    ENSURE(ct != NULL, MV_ERR_INTERNAL);
    if (ptlen)
        ENSURE(EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) == 1, MV_ERR_INTERNAL);
    ENSURE(EVP_EncryptFinal_ex(ctx, ct + n, &fin) == 1, MV_ERR_INTERNAL);
    ENSURE((size_t)n + (size_t)fin == ptlen, MV_ERR_INTERNAL);
    ENSURE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) == 1,
           MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, head, sizeof head));
    CHECK(mv_buf_add(out, ct, ptlen));
    CHECK(mv_buf_add(out, tag, sizeof tag));
out:
    if (rc != MV_OK && out->p) {
        out->len = start_len;
        out->p[start_len] = '\0';
    }
    OPENSSL_free(ct);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

mv_rc aead_open(const unsigned char key[AEAD_KEY_LEN], const char *aad, const void *ct,
                size_t ctlen, mv_buf *out)
{
    mv_rc rc = MV_OK;
    const unsigned char *in = ct;
    unsigned char tag[AEAD_TAG_LEN];
    unsigned char *pt = NULL;
    size_t ptlen = 0;
    int n = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    ENSURE(ctx != NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(in != NULL && ctlen >= AEAD_OVERHEAD && ctlen - AEAD_OVERHEAD <= AEAD_MAX_PT,
               MV_ERR_INTERNAL, "aead: sealed value has a bad length");
    ENSURE_MSG(in[0] == AEAD_VERSION, MV_ERR_INTERNAL, "aead: unknown format version");
    ptlen = ctlen - AEAD_OVERHEAD;
    memcpy(tag, in + ctlen - AEAD_TAG_LEN, AEAD_TAG_LEN);
    CHECK(start(ctx, 0, key, in + 1, aad));
    pt = OPENSSL_malloc(ptlen ? ptlen : 1);
    ENSURE(pt != NULL, MV_ERR_INTERNAL);
    if (ptlen)
        ENSURE(EVP_DecryptUpdate(ctx, pt, &n, in + 1 + AEAD_NONCE_LEN, (int)ptlen) == 1,
               MV_ERR_INTERNAL);
    ENSURE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tag) == 1,
           MV_ERR_INTERNAL);
    /* SP 800-38D §7.2: if the tag does not verify, return FAIL and no plaintext. */
    ENSURE_MSG(EVP_DecryptFinal_ex(ctx, pt + n, &fin) == 1, MV_ERR_INTERNAL,
               "aead: authentication failed (wrong key, AAD or tampered value)");
    ENSURE((size_t)n + (size_t)fin == ptlen, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, pt, ptlen));
out:
    if (pt)
        OPENSSL_clear_free(pt, ptlen ? ptlen : 1);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}
