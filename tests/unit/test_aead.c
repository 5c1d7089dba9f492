/* test_aead.c: AES-256-GCM sealing (src/crypto/aead.c): round trips, the sealed format, and
 * refusal of every change: AAD, ciphertext bit, tag, nonce, version, key, length. A refused
 * open must leave the output buffer untouched (no partial plaintext). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/aead.h"

#define MAXB (1 << 20)

static const unsigned char KEY[AEAD_KEY_LEN] = "0123456789abcdef0123456789abcde";
static const unsigned char KEY2[AEAD_KEY_LEN] = "0123456789abcdef0123456789abcdX";

static void seal(const unsigned char *key, const char *aad, const void *pt, size_t n, mv_buf *out)
{
    mv_buf_init(out, MAXB);
    assert_int_equal(aead_seal(key, aad, pt, n, out), MV_OK);
}

/* Opening must fail with MV_ERR_INTERNAL and leave the (pre-filled) output as it was. */
static void refuse(const unsigned char *key, const char *aad, const void *ct, size_t n)
{
    mv_buf out;
    mv_buf_init(&out, MAXB);
    assert_int_equal(mv_buf_adds(&out, "keep"), MV_OK);
    assert_int_equal(aead_open(key, aad, ct, n, &out), MV_ERR_INTERNAL);
    assert_int_equal(out.len, 4);
    assert_string_equal(out.p, "keep");
    mv_buf_free(&out);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 25 * 1024, 100000};
    const char *aads[] = {"", "secret:dev/db/0123", NULL};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *pt = malloc(sizes[i] + 1);
        for (size_t j = 0; j < sizes[i]; j++)
            pt[j] = (unsigned char)(j * 7 + i);
        for (size_t a = 0; a < 3; a++) {
            mv_buf ct, back;
            seal(KEY, aads[a], pt, sizes[i], &ct);
            assert_int_equal(ct.len, sizes[i] + AEAD_OVERHEAD);
            assert_int_equal((unsigned char)ct.p[0], 1); /* format version */
            mv_buf_init(&back, MAXB);
            assert_int_equal(aead_open(KEY, aads[a], ct.p, ct.len, &back), MV_OK);
            assert_int_equal(back.len, sizes[i]);
            if (sizes[i])
                assert_memory_equal(back.p, pt, sizes[i]);
            assert_non_null(back.p);
            mv_buf_free_secret(&back);
            mv_buf_free(&ct);
        }
        free(pt);
    }
}

static void test_format_and_fresh_nonce(void **state)
{
    (void)state;
    static const char msg[] = "the same plaintext";
    mv_buf a, b;
    seal(KEY, "x", msg, sizeof msg - 1, &a);
    seal(KEY, "x", msg, sizeof msg - 1, &b);
    assert_int_equal(a.len, 1 + 12 + (sizeof msg - 1) + 16);
    /* Random nonces: two seals of the same value differ in nonce and ciphertext. */
    assert_memory_not_equal(a.p + 1, b.p + 1, 12);
    assert_memory_not_equal(a.p + 13, b.p + 13, sizeof msg - 1);
    /* The plaintext does not appear in the sealed value. */
    assert_null(memmem(a.p, a.len, "same", 4));
    /* Independent decryption with EVP (format: v || nonce || ct || tag, AAD = v || aad). */
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char out[64];
    int n = 0, f = 0;
    unsigned char v = 1;
    size_t ctl = a.len - 29;
    assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, KEY,
                                        (unsigned char *)a.p + 1), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &n, &v, 1), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)"x", 1), 1);
    assert_int_equal(EVP_DecryptUpdate(ctx, out, &n, (unsigned char *)a.p + 13, (int)ctl), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, a.p + 13 + ctl), 1);
    assert_int_equal(EVP_DecryptFinal_ex(ctx, out + n, &f), 1);
    assert_int_equal((size_t)(n + f), sizeof msg - 1);
    assert_memory_equal(out, msg, sizeof msg - 1);
    EVP_CIPHER_CTX_free(ctx);
    mv_buf_free(&a);
    mv_buf_free(&b);
}

static void test_wrong_aad(void **state)
{
    (void)state;
    mv_buf ct;
    seal(KEY, "secret:dev/db/1", "pw", 2, &ct);
    refuse(KEY, "secret:dev/db/2", ct.p, ct.len);
    refuse(KEY, "secret:dev/db/1 ", ct.p, ct.len);
    refuse(KEY, "", ct.p, ct.len);
    refuse(KEY, NULL, ct.p, ct.len);
    mv_buf_free(&ct);
    /* Empty AAD and NULL AAD are the same thing; a non-empty one differs. */
    seal(KEY, "", "pw", 2, &ct);
    mv_buf back;
    mv_buf_init(&back, 64);
    assert_int_equal(aead_open(KEY, NULL, ct.p, ct.len, &back), MV_OK);
    refuse(KEY, "a", ct.p, ct.len);
    mv_buf_free(&back);
    mv_buf_free(&ct);
}

static void test_flipped_bits(void **state)
{
    (void)state;
    static const char msg[] = "correct horse battery staple";
    mv_buf ct;
    seal(KEY, "aad", msg, sizeof msg - 1, &ct);
    /* Every bit of every byte: version, nonce, ciphertext and tag. */
    for (size_t i = 0; i < ct.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            ct.p[i] ^= (char)(1 << bit);
            refuse(KEY, "aad", ct.p, ct.len);
            ct.p[i] ^= (char)(1 << bit);
        }
    }
    mv_buf back;
    mv_buf_init(&back, 64);
    assert_int_equal(aead_open(KEY, "aad", ct.p, ct.len, &back), MV_OK);
    assert_string_equal(back.p, msg);
    mv_buf_free_secret(&back);
    mv_buf_free(&ct);
}

static void test_wrong_key(void **state)
{
    (void)state;
    mv_buf ct;
    seal(KEY, "aad", "value", 5, &ct);
    refuse(KEY2, "aad", ct.p, ct.len);
    mv_buf_free(&ct);
    seal(KEY, "aad", "", 0, &ct); /* even an empty value is bound to its key */
    refuse(KEY2, "aad", ct.p, ct.len);
    mv_buf_free(&ct);
}

static void test_truncated_and_extended(void **state)
{
    (void)state;
    mv_buf ct;
    seal(KEY, "aad", "some value", 10, &ct);
    for (size_t n = 0; n < ct.len; n++)
        refuse(KEY, "aad", ct.p, n);
    refuse(KEY, "aad", NULL, 0);
    /* Appending bytes moves the tag: refused too. */
    assert_int_equal(mv_buf_add(&ct, "\0", 1), MV_OK);
    refuse(KEY, "aad", ct.p, ct.len);
    mv_buf_free(&ct);
}

static void test_output_cap(void **state)
{
    (void)state;
    mv_buf ct, small;
    seal(KEY, "", "0123456789", 10, &ct);
    mv_buf_init(&small, 5);
    assert_int_equal(aead_open(KEY, "", ct.p, ct.len, &small), MV_ERR_LIMIT);
    assert_int_equal(small.len, 0);
    mv_buf_free(&small);
    mv_buf_init(&small, 10 + AEAD_OVERHEAD - 1);
    assert_int_equal(aead_seal(KEY, "", "0123456789", 10, &small), MV_ERR_LIMIT);
    assert_int_equal(small.len, 0);
    mv_buf_free(&small);
    mv_buf_free(&ct);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_format_and_fresh_nonce),
        cmocka_unit_test(test_wrong_aad),
        cmocka_unit_test(test_flipped_bits),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_output_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
