/* fuzz_keyjwk.c: the keys API's parsers of untrusted bytes (src/vault/keys.c, keyops.c,
 * keymat.c, keybackup.c): the create/import/update body (vault_parse_key_body) and the private
 * JWK import behind it (vkey_import_jwk: base64url members, RSA/EC parameters, the pairwise
 * check), the operation bodies (vault_parse_key_op) and then sign / verify / encrypt / decrypt
 * with fuzzed algorithm names, digests and signatures on fixed keys, and the key restore body
 * (vault_key_backup_open).
 *
 * Input: one mode byte (low 2 bits), then the bytes. Checked: a parsed body's fields are what
 * their rules say (known key_ops, a JWK object); an imported key's public JWK has no private
 * member; an operation either succeeds or is MV_ERR_BAD_REQUEST with a message; verify of a
 * fuzzed signature is MV_OK (valid or not) or a 400, never anything else. */
#include <jansson.h>
#include <string.h>

#include <openssl/evp.h>

#include "crypto/aead.h"
#include "fuzz.h"
#include "vault/vault_internal.h"

static const unsigned char KEY[AEAD_KEY_LEN] = {
    0x6d, 0x69, 0x76, 0x61, 0x75, 0x6c, 0x74, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x74, 0x65, 0x73,
    0x74, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x6e, 0x6f, 0x74, 0x2d, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74,
};
static EVP_PKEY *FIXED_RSA, *FIXED_EC;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *why = NULL;
    fuzz_quiet();
    if (vkey_generate(1, 2048, NULL, &FIXED_RSA, &why) != MV_OK ||
        vkey_generate(0, 0, "P-256", &FIXED_EC, &why) != MV_OK)
        fuzz_fail("key generation");
    return 0;
}

static void no_private_member(EVP_PKEY *k)
{
    json_t *jwk = NULL;
    FUZZ_ASSERT(vkey_public_jwk(k, "RSA", NULL, &jwk) == MV_OK);
    static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "k"};
    for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++)
        FUZZ_ASSERT(json_object_get(jwk, priv[i]) == NULL);
    json_decref(jwk);
}

static void key_body(const char *p, size_t n)
{
    struct vault_key_input in;
    const char *why = NULL;
    mv_rc rc = vault_parse_key_body(p, n, &in, &why);
    if (rc != MV_OK) {
        FUZZ_ASSERT(why != NULL);
        vault_key_input_free(&in);
        return;
    }
    size_t i;
    const json_t *op;
    json_array_foreach(in.key_ops, i, op) FUZZ_ASSERT(json_is_string(op));
    const json_t *jwk = in.key ? in.key : in.root;
    EVP_PKEY *k = NULL;
    int rsa = 0;
    rc = vkey_import_jwk(jwk, &rsa, &k, &why);
    if (rc == MV_OK) {
        FUZZ_ASSERT(k != NULL && rsa == vkey_is_rsa(k));
        no_private_member(k);
        mv_buf der;
        FUZZ_ASSERT(vkey_to_der(k, &der) == MV_OK);
        EVP_PKEY *back = NULL;
        FUZZ_ASSERT(vkey_from_der(der.p, der.len, &back) == MV_OK);
        FUZZ_ASSERT(EVP_PKEY_eq(k, back) == 1);
        EVP_PKEY_free(back);
        mv_buf_free_secret(&der);
    } else {
        FUZZ_ASSERT(k == NULL && why != NULL);
    }
    EVP_PKEY_free(k);
    vault_key_input_free(&in);
}

static void op_body(const char *p, size_t n, int verify)
{
    struct vault_key_op_input in;
    const char *why = NULL;
    char msg[512];
    mv_rc rc = vault_parse_key_op(p, n, verify, &in, &why);
    if (rc == MV_OK) {
        FUZZ_ASSERT(in.alg != NULL);
        const unsigned char *v = (const unsigned char *)(in.value.p ? in.value.p : "");
        for (int which = 0; which < 2; which++) {
            EVP_PKEY *k = which ? FIXED_EC : FIXED_RSA;
            mv_buf out;
            mv_buf_init(&out, 4096);
            int valid = 0;
            msg[0] = '\0';
            if (verify)
                rc = vkey_verify(k, "kid", in.alg, (const unsigned char *)in.digest.p,
                                 in.digest.len, v, in.value.len, &valid, msg, sizeof msg);
            else
                rc = vkey_sign(k, "kid", in.alg, v, in.value.len, &out, msg, sizeof msg);
            FUZZ_ASSERT(rc == MV_OK || (rc == MV_ERR_BAD_REQUEST && msg[0]));
            mv_buf_free_secret(&out);
            mv_buf_init(&out, 4096);
            msg[0] = '\0';
            rc = vkey_crypt(k, in.alg, 1, v, in.value.len, &out, msg, sizeof msg);
            FUZZ_ASSERT(rc == MV_OK || (rc == MV_ERR_BAD_REQUEST && msg[0]));
            mv_buf_free_secret(&out);
        }
    } else {
        FUZZ_ASSERT(why != NULL);
    }
    vault_key_op_input_free(&in);
}

static void restore_body(const char *p, size_t n)
{
    json_t *doc = NULL;
    mv_rc rc = vault_key_backup_open(KEY, p, n, &doc);
    if (rc != MV_OK) {
        FUZZ_ASSERT(doc == NULL && (rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT));
        return;
    }
    FUZZ_ASSERT(json_array_size(json_object_get(doc, "versions")) >= 1);
    vault_json_wipe(doc);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0: key_body(p, n); break;
    case 1: op_body(p, n, 0); break;
    case 2: op_body(p, n, 1); break;
    default: restore_body(p, n); break;
    }
    return 0;
}

/* libFuzzer never calls a destructor hook; free the fixed keys at exit for LeakSanitizer. */
__attribute__((destructor)) static void free_keys(void)
{
    EVP_PKEY_free(FIXED_RSA);
    EVP_PKEY_free(FIXED_EC);
}
