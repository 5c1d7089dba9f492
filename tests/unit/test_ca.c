/* test_ca.c: the local CA and server certificate (src/crypto/ca.c): file modes, a chain that
 * OpenSSL verifies against the CA in strict mode for the hostnames and addresses clients use,
 * refusal of a vault suffix that is not a DNS name, and the x5c signing certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/b64.h"
#include "crypto/ca.h"
#include "crypto/join_token.h"
#include "crypto/keys.h"

static char dir[] = "/tmp/mivault-ca-XXXXXX";

static void path_of(char *out, size_t n, const char *name)
{
    int w = snprintf(out, n, "%s/%s", dir, name);
    assert_true(w > 0 && (size_t)w < n);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    return ca_init(dir, "vault.localhost", "mv.example.test") == MV_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};
    char p[512];
    for (size_t i = 0; i < 4; i++) {
        path_of(p, sizeof p, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* All certificates of a PEM file, in order. */
static STACK_OF(X509) *load_certs(const char *name)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *x;
    while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, x);
    fclose(f);
    return sk;
}

static EVP_PKEY *load_key(const char *name)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static void test_file_modes(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        unsigned mode;
    } want[] = {{"ca.pem", 0644}, {"ca.key", 0600}, {"server.pem", 0644}, {"server.key", 0600}};
    for (size_t i = 0; i < 4; i++) {
        char p[512];
        struct stat st;
        path_of(p, sizeof p, want[i].name);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 0777, want[i].mode);
        assert_true(st.st_size > 100);
    }
}

static void test_ca_cert(void **state)
{
    (void)state;
    STACK_OF(X509) *ca = load_certs("ca.pem");
    assert_int_equal(sk_X509_num(ca), 1);
    X509 *c = sk_X509_value(ca, 0);
    EVP_PKEY *key = load_key("ca.key");
    assert_true(keys_is_ec_p256(key));
    assert_int_equal(X509_check_private_key(c, key), 1);
    assert_int_equal(X509_verify(c, key), 1); /* self-signed */
    assert_int_equal(X509_check_ca(c), 1);    /* CA:TRUE in basicConstraints */
    /* basicConstraints and keyUsage are critical on the CA (RFC 5280 §4.2.1.9, §4.2.1.3). */
    assert_int_equal(X509_EXTENSION_get_critical(
                         X509_get_ext(c, X509_get_ext_by_NID(c, NID_basic_constraints, -1))),
                     1);
    assert_int_equal(
        X509_EXTENSION_get_critical(X509_get_ext(c, X509_get_ext_by_NID(c, NID_key_usage, -1))),
        1);
    assert_true(X509_get_key_usage(c) & KU_KEY_CERT_SIGN);
    assert_non_null(X509_get0_subject_key_id(c));
    char cn[64];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn,
                                          sizeof cn) > 0);
    assert_string_equal(cn, "mivault local CA");
    /* Serial: positive, 16 bytes. */
    const ASN1_INTEGER *serial = X509_get0_serialNumber(c);
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    assert_false(BN_is_negative(bn));
    assert_int_equal(BN_num_bytes(bn), 16);
    BN_free(bn);
    /* About ten years of validity. */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(c), X509_get0_notAfter(c)),
                     1);
    assert_true(days >= 3650 && days <= 3655);
    EVP_PKEY_free(key);
    sk_X509_pop_free(ca, X509_free);
}

/* Verifies the server chain against the CA for host (or ip) with OpenSSL's strict checks. */
static int verify_for(X509 *leaf, STACK_OF(X509) *untrusted, X509 *root, const char *host,
                      const char *ip)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, untrusted);
    X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_X509_STRICT);
    X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
    if (host)
        X509_VERIFY_PARAM_set1_host(p, host, 0);
    if (ip)
        X509_VERIFY_PARAM_set1_ip_asc(p, ip);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        print_message("verify %s: %s\n", host ? host : ip,
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

static void test_server_chain(void **state)
{
    (void)state;
    STACK_OF(X509) *chain = load_certs("server.pem");
    STACK_OF(X509) *ca = load_certs("ca.pem");
    assert_int_equal(sk_X509_num(chain), 2);
    X509 *leaf = sk_X509_value(chain, 0), *root = sk_X509_value(ca, 0);
    /* The second certificate of server.pem is the CA. */
    assert_int_equal(X509_cmp(sk_X509_value(chain, 1), root), 0);
    EVP_PKEY *key = load_key("server.key");
    assert_true(keys_is_ec_p256(key));
    assert_int_equal(X509_check_private_key(leaf, key), 1);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
    assert_true(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE);
    assert_false(X509_get_key_usage(leaf) & KU_KEY_CERT_SIGN);
    assert_non_null(X509_get0_subject_key_id(leaf));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                           X509_get0_subject_key_id(root)),
                     0);
    int days = 0, secs = 0;
    assert_int_equal(
        ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
    assert_true(days >= 729 && days <= 731);

    /* Names clients use (DESIGN §3, §8). */
    assert_int_equal(X509_check_host(leaf, "dev.vault.localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "vault.localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "DEV.Vault.Localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
    assert_int_equal(X509_check_host(leaf, "mv.example.test", 0, 0, NULL), 1); /* public URL */
    /* ...and only those. */
    assert_int_equal(X509_check_host(leaf, "a.dev.vault.localhost", 0, 0, NULL), 0);
    assert_int_equal(X509_check_host(leaf, "example.com", 0, 0, NULL), 0);
    assert_int_equal(X509_check_host(leaf, "devvault.localhost", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.2", 0), 0);
    assert_int_equal(X509_check_ip_asc(leaf, "10.0.0.1", 0), 0);

    /* Full path validation, strict, with hostname / IP checks, from the CA and the file chain. */
    STACK_OF(X509) *rest = sk_X509_new_null();
    sk_X509_push(rest, sk_X509_value(chain, 1));
    assert_int_equal(verify_for(leaf, rest, root, "dev.vault.localhost", NULL), 1);
    assert_int_equal(verify_for(leaf, NULL, root, "localhost", NULL), 1);
    assert_int_equal(verify_for(leaf, NULL, root, NULL, "127.0.0.1"), 1);
    assert_int_equal(verify_for(leaf, NULL, root, NULL, "::1"), 1);
    assert_int_equal(verify_for(leaf, NULL, root, "example.com", NULL), 0);

    /* A different CA does not vouch for this server. */
    char other[] = "/tmp/mivault-ca2-XXXXXX";
    assert_non_null(mkdtemp(other));
    assert_int_equal(ca_init(other, "vault.localhost", NULL), MV_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/ca.pem", other);
    FILE *f = fopen(p, "r");
    X509 *stranger = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_int_equal(verify_for(leaf, NULL, stranger, "localhost", NULL), 0);
    X509_free(stranger);
    static const char *files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", other, files[i]);
        unlink(p);
    }
    rmdir(other);

    sk_X509_free(rest);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(ca, X509_free);
}

static void test_custom_suffix(void **state)
{
    (void)state;
    char d[] = "/tmp/mivault-ca3-XXXXXX";
    assert_non_null(mkdtemp(d));
    assert_int_equal(ca_init(d, "kv.example-corp.internal", "10.1.2.3"), MV_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/server.pem", d);
    FILE *f = fopen(p, "r");
    X509 *leaf = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_int_equal(X509_check_host(leaf, "prod.kv.example-corp.internal", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "kv.example-corp.internal", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(leaf, "dev.vault.localhost", 0, 0, NULL), 0);
    /* An IP literal as the public host is an IP SAN. */
    assert_int_equal(X509_check_ip_asc(leaf, "10.1.2.3", 0), 1);
    X509_free(leaf);
    static const char *files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        unlink(p);
    }
    rmdir(d);
}

/* A joining server issues its own certificate from the shared CA: the CA pin holds for both. */
static void test_second_server_same_ca(void **state)
{
    (void)state;
    STACK_OF(X509) *first = load_certs("server.pem");
    X509 *first_leaf = X509_dup(sk_X509_value(first, 0));
    assert_int_equal(ca_server_cert(dir, "vault.localhost", "mv2.example.test"), MV_OK);
    STACK_OF(X509) *chain = load_certs("server.pem");
    STACK_OF(X509) *ca = load_certs("ca.pem");
    X509 *leaf = sk_X509_value(chain, 0), *root = sk_X509_value(ca, 0);
    assert_int_not_equal(X509_cmp(leaf, first_leaf), 0);
    assert_int_equal(verify_for(leaf, NULL, root, "mv2.example.test", NULL), 1);
    assert_int_equal(verify_for(first_leaf, NULL, root, "mv.example.test", NULL), 1);
    assert_int_equal(verify_for(leaf, NULL, root, "mv.example.test", NULL), 0);
    assert_int_equal(X509_cmp(sk_X509_value(chain, 1), root), 0);
    /* A mismatched CA key is refused, and nothing is overwritten. */
    char p[512], other[] = "/tmp/mivault-ca5-XXXXXX";
    assert_non_null(mkdtemp(other));
    assert_int_equal(ca_init(other, "vault.localhost", NULL), MV_OK);
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/ca.key", dir);
    snprintf(dst, sizeof dst, "%s/ca.key", other);
    assert_int_equal(rename(src, dst), 0); /* other's ca.pem, our CA key (last test using it) */
    assert_int_equal(ca_server_cert(other, "vault.localhost", NULL), MV_ERR_INTERNAL);
    static const char *files[] = {"ca.pem", "ca.key", "server.pem", "server.key"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", other, files[i]);
        unlink(p);
    }
    rmdir(other);
    X509_free(first_leaf);
    sk_X509_pop_free(first, X509_free);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(ca, X509_free);
}

static void test_bad_suffix_refused(void **state)
{
    (void)state;
    static const char *bad[] = {"", "vault.localhost,DNS:evil.com", "*.vault.localhost",
                                ".vault.localhost", "vault.localhost.", "vault..localhost",
                                "-vault.localhost", "vault-.localhost", "vault localhost",
                                "vault.localhost\n", "v\xc3\xa4ult.localhost"};
    char d[] = "/tmp/mivault-ca4-XXXXXX";
    assert_non_null(mkdtemp(d));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(ca_init(d, bad[i], NULL), MV_ERR_BAD_REQUEST);
    assert_int_equal(ca_init(d, NULL, NULL), MV_ERR_BAD_REQUEST);
    /* The public host becomes a SAN too: the same rule. */
    assert_int_equal(ca_init(d, "vault.localhost", "mv.test,DNS:evil.com"), MV_ERR_BAD_REQUEST);
    assert_int_equal(ca_init(d, "vault.localhost", "*.mv.test"), MV_ERR_BAD_REQUEST);
    /* Nothing was written. */
    char p[512];
    snprintf(p, sizeof p, "%s/ca.pem", d);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(rmdir(d), 0);
    /* A directory that does not exist is an error, not a crash. */
    assert_int_equal(ca_init("/nonexistent/mivault/dir", "vault.localhost", NULL), MV_ERR_INTERNAL);
}

static void test_self_signed_b64(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    assert_int_equal(keys_gen_rsa(2048, &k), MV_OK);
    mv_buf b, der;
    mv_buf_init(&b, 8192);
    mv_buf_init(&der, 8192);
    assert_int_equal(ca_self_signed_b64(k, &b), MV_OK);
    /* Standard, padded base64 (RFC 7517 §4.7): length a multiple of 4, no url alphabet. */
    assert_int_equal(b.len % 4, 0);
    assert_null(strpbrk(b.p, "-_"));
    assert_int_equal(b64_decode(&der, b.p, b.len), MV_OK);
    const unsigned char *p = (const unsigned char *)der.p;
    X509 *x = d2i_X509(NULL, &p, (long)der.len);
    assert_non_null(x);
    assert_int_equal(X509_verify(x, k), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(x), k), 1);
    char cn[64];
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                          sizeof cn) > 0);
    assert_string_equal(cn, "mivault token signing");
    X509_free(x);
    mv_buf_free(&der);
    mv_buf_free(&b);
    EVP_PKEY_free(k);
}

/* The join token's CA pin: SHA-256 of the CA certificate's DER SubjectPublicKeyInfo. */
static void test_spki_pin(void **state)
{
    (void)state;
    char p[512];
    unsigned char pin[32], leaf_pin[32], want[32];
    path_of(p, sizeof p, "ca.pem");
    assert_int_equal(ca_file_spki_sha256(p, pin), MV_OK);
    STACK_OF(X509) *sk = load_certs("ca.pem");
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(sk_X509_value(sk, 0)), &der);
    assert_true(n > 0);
    assert_int_equal(EVP_Digest(der, (size_t)n, want, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(pin, want, 32);
    OPENSSL_free(der);
    sk_X509_pop_free(sk, X509_free);
    /* server.pem starts with the leaf: a different key, a different pin */
    path_of(p, sizeof p, "server.pem");
    assert_int_equal(ca_file_spki_sha256(p, leaf_pin), MV_OK);
    assert_memory_not_equal(pin, leaf_pin, 32);
    assert_int_equal(ca_spki_sha256("not a pem", 9, pin), MV_ERR_BAD_REQUEST);
    path_of(p, sizeof p, "no-such.pem");
    assert_int_not_equal(ca_file_spki_sha256(p, pin), MV_OK);
}

static void test_join_token_format(void **state)
{
    (void)state;
    unsigned char secret[32], pin[32];
    char tok[JOIN_TOKEN_MAX], bad[JOIN_TOKEN_MAX + 8];
    struct join_token t;
    for (int i = 0; i < 32; i++)
        secret[i] = (unsigned char)i, pin[i] = (unsigned char)(0xff - i);
    assert_int_equal(join_token_format(secret, pin, tok), MV_OK);
    assert_int_equal(strlen(tok), JOIN_TOKEN_LEN);
    assert_memory_equal(tok, "mvj1.", 5);
    assert_int_equal(join_token_parse(tok, strlen(tok), 0, &t), MV_OK);
    assert_true(t.has_pin);
    assert_memory_equal(t.pin, pin, 32);
    assert_memory_equal(t.secret, tok, JOIN_TOKEN_SECRET_LEN);
    assert_int_equal(strlen(t.secret), JOIN_TOKEN_SECRET_LEN);
    /* surrounding whitespace (a file's newline) is ignored */
    snprintf(bad, sizeof bad, "  %s\n", tok);
    assert_int_equal(join_token_parse(bad, strlen(bad), 0, &t), MV_OK);
    assert_memory_equal(t.pin, pin, 32);
    /* the secret part alone: only where allowed (the server), never for the agent */
    assert_int_equal(join_token_parse(tok, JOIN_TOKEN_SECRET_LEN, 1, &t), MV_OK);
    assert_false(t.has_pin);
    assert_int_equal(join_token_parse(tok, JOIN_TOKEN_SECRET_LEN, 0, &t), MV_ERR_BAD_REQUEST);
    /* negative cases */
    const char *refused[] = {"", "mvj1.", "mvj_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_int_equal(join_token_parse(refused[i], strlen(refused[i]), 1, &t),
                         MV_ERR_BAD_REQUEST);
    size_t at[] = {0, 3, 10, 49, 52, 60, JOIN_TOKEN_LEN - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        memcpy(bad, tok, JOIN_TOKEN_LEN + 1);
        bad[at[i]] = '.'; /* not base64url, and not the separator expected there */
        if (at[i] == 48)
            continue;
        assert_int_equal(join_token_parse(bad, strlen(bad), 0, &t), MV_ERR_BAD_REQUEST);
    }
    memcpy(bad, tok, JOIN_TOKEN_LEN + 1);
    memcpy(bad + 49, "sha1", 4); /* another algorithm tag */
    assert_int_equal(join_token_parse(bad, strlen(bad), 0, &t), MV_ERR_BAD_REQUEST);
    memcpy(bad, tok, JOIN_TOKEN_LEN + 1);
    bad[JOIN_TOKEN_LEN - 1] = '\0'; /* one character short */
    assert_int_equal(join_token_parse(bad, strlen(bad), 0, &t), MV_ERR_BAD_REQUEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_modes),
        cmocka_unit_test(test_ca_cert),
        cmocka_unit_test(test_server_chain),
        cmocka_unit_test(test_custom_suffix),
        cmocka_unit_test(test_bad_suffix_refused),
        cmocka_unit_test(test_second_server_same_ca),
        cmocka_unit_test(test_self_signed_b64),
        cmocka_unit_test(test_spki_pin),
        cmocka_unit_test(test_join_token_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
