/* key_ops.c: use a Key Vault key with libmivault, as a workload on a VM does: read its public JWK,
 * sign a digest and have the vault verify the signature, and (RSA keys) encrypt/decrypt and
 * wrap/unwrap round trips. The private key never leaves the vault.
 *
 *   cc -o key_ops key_ops.c $(pkg-config --cflags --libs mivault)
 *
 * Run: key_ops VAULT_URL KEY_NAME ALG DIGEST_HEX [CA_FILE] [ENC_ALG]. The IMDS endpoint is
 * $AZURE_POD_IDENTITY_AUTHORITY_HOST when set (mivault's env.sh sets it), else
 * http://169.254.169.254. Prints the KeyBundle (JSON) on the first line, the signature in hex on
 * the second, then "verified", and with ENC_ALG "decrypted" and "unwrapped" after the round
 * trips. */
#include <mivault/mivault.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int from_hex(const char *h, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(h);
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = h[2 * i + (size_t)k];
            v = v * 16 + (unsigned)(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 99);
        }
        if (v > 255)
            return -1;
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return 0;
}

static int fail(int st, const char *what)
{
    fprintf(stderr, "key_ops: %s: %s: %s\n", what, mv_status_name(st), mv_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s VAULT_URL KEY_NAME ALG DIGEST_HEX [CA_FILE] [ENC_ALG]\n", argv[0]);
        return 2;
    }
    const char *name = argv[2], *alg = argv[3], *enc_alg = argc > 6 ? argv[6] : NULL;
    unsigned char digest[64];
    size_t dlen = 0;
    if (from_hex(argv[4], digest, sizeof digest, &dlen) != 0) {
        fprintf(stderr, "key_ops: DIGEST_HEX is not hex (at most 64 bytes)\n");
        return 2;
    }
    struct mv_credential *cred = NULL;
    struct mv_secret_client *sc = NULL;
    char *jwk = NULL;
    unsigned char *sig = NULL, *ct = NULL, *pt = NULL;
    size_t sig_len = 0, ct_len = 0, pt_len = 0;
    int valid = 0, status = 1, st;
    static const unsigned char msg[] = "a data-encryption key, 32 bytes";

    if ((st = mv_credential_new(NULL, NULL, NULL, NULL, &cred)) != MV_STATUS_OK ||
        (st = mv_secret_client_new(argv[1], cred, argc > 5 ? argv[5] : NULL, 0, &sc)) != MV_STATUS_OK) {
        status = fail(st, "client");
        goto out;
    }
    if ((st = mv_key_get(sc, name, NULL, &jwk)) != MV_STATUS_OK) {
        status = fail(st, "get");
        goto out;
    }
    printf("%s\n", jwk);
    if ((st = mv_key_sign(sc, name, NULL, alg, digest, dlen, &sig, &sig_len)) != MV_STATUS_OK) {
        status = fail(st, "sign");
        goto out;
    }
    for (size_t i = 0; i < sig_len; i++)
        printf("%02x", sig[i]);
    printf("\n");
    if ((st = mv_key_verify(sc, name, NULL, alg, digest, dlen, sig, sig_len, &valid)) != MV_STATUS_OK || !valid) {
        status = st != MV_STATUS_OK ? fail(st, "verify") : (fprintf(stderr, "key_ops: not verified\n"), 1);
        goto out;
    }
    printf("verified\n");
    if (enc_alg) {
        if ((st = mv_key_encrypt(sc, name, NULL, enc_alg, msg, 32, &ct, &ct_len)) != MV_STATUS_OK ||
            (st = mv_key_decrypt(sc, name, NULL, enc_alg, ct, ct_len, &pt, &pt_len)) != MV_STATUS_OK) {
            status = fail(st, "encrypt/decrypt");
            goto out;
        }
        if (pt_len == 32 && memcmp(pt, msg, 32) == 0)
            printf("decrypted\n");
        mv_bytes_free(ct, ct_len);
        mv_bytes_free(pt, pt_len);
        ct = pt = NULL;
        if ((st = mv_key_wrap(sc, name, NULL, enc_alg, msg, 32, &ct, &ct_len)) != MV_STATUS_OK ||
            (st = mv_key_unwrap(sc, name, NULL, enc_alg, ct, ct_len, &pt, &pt_len)) != MV_STATUS_OK) {
            status = fail(st, "wrap/unwrap");
            goto out;
        }
        if (pt_len == 32 && memcmp(pt, msg, 32) == 0)
            printf("unwrapped\n");
    }
    status = 0;
out:
    mv_bytes_free(sig, sig_len);
    mv_bytes_free(ct, ct_len);
    mv_bytes_free(pt, pt_len);
    mv_free(jwk);
    mv_secret_client_free(sc);
    mv_credential_free(cred);
    return status;
}
