/* test_certs.c: the X.509 layer of Key Vault certificates (src/crypto/certs.c): keys for each
 * kty/size/curve, self-signed certificates carrying the policy's subject, SANs, key usage, EKUs
 * and validity, CSRs, PKCS#12 without password, PEM, import of PEM (raw and base64) and PFX (with
 * and without password), merge of a chain signed elsewhere, and refusals of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "common/b64.h"
#include "crypto/certs.h"

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

static struct certs_spec spec_basic(void)
{
    struct certs_spec s;
    memset(&s, 0, sizeof s);
    s.subject = "CN=www.example.test, O=Contoso\\, Ltd, C=US";
    s.dns[0] = "www.example.test";
    s.dns[1] = "example.test";
    s.n_dns = 2;
    s.emails[0] = "admin@example.test";
    s.n_emails = 1;
    s.upns[0] = "user@example.test";
    s.n_upns = 1;
    s.ekus[0] = "1.3.6.1.5.5.7.3.1";
    s.ekus[1] = "1.3.6.1.5.5.7.3.2";
    s.n_ekus = 2;
    s.key_usage = CERTS_KU_DIGITAL_SIGNATURE | CERTS_KU_KEY_ENCIPHERMENT;
    s.validity_months = 12;
    return s;
}

static void test_keys(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    assert_int_equal(certs_gen_key("RSA", 0, NULL, &k), MV_OK);
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    EVP_PKEY_free(k);
    assert_int_equal(certs_gen_key("RSA-HSM", 3072, NULL, &k), MV_OK);
    assert_int_equal(EVP_PKEY_get_bits(k), 3072);
    EVP_PKEY_free(k);
    static const char *crvs[] = {"P-256", "P-384", "P-521", "P-256K"};
    static const int bits[] = {256, 384, 521, 256};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(certs_gen_key("EC", 0, crvs[i], &k), MV_OK);
        assert_int_equal(EVP_PKEY_get_bits(k), bits[i]);
        EVP_PKEY_free(k);
    }
    assert_int_equal(certs_gen_key("RSA", 1024, NULL, &k), MV_ERR_BAD_REQUEST);
    assert_int_equal(certs_gen_key("EC", 0, "P-192", &k), MV_ERR_BAD_REQUEST);
    assert_int_equal(certs_gen_key("oct", 0, NULL, &k), MV_ERR_BAD_REQUEST);
}

static void test_subject(void **state)
{
    (void)state;
    assert_true(certs_subject_ok("CN=a"));
    assert_true(certs_subject_ok("CN=a, O=b, OU=c, L=d, ST=e, C=US, E=x@y.z, DC=com"));
    assert_true(certs_subject_ok("cn=lower"));
    assert_false(certs_subject_ok(""));
    assert_false(certs_subject_ok("a"));
    assert_false(certs_subject_ok("XX=a"));
    assert_false(certs_subject_ok("CN="));
    assert_false(certs_subject_ok("CN=a,,O=b"));
    assert_false(certs_subject_ok("CN=a\nO=b"));
    assert_int_equal(certs_ku_bit("keyEncipherment"), CERTS_KU_KEY_ENCIPHERMENT);
    assert_int_equal(certs_ku_bit("KeyEncipherment"), 0);
    assert_string_equal(certs_ku_name(CERTS_KU_DECIPHER_ONLY), "decipherOnly");
}

static void test_self_signed(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    struct certs_spec s = spec_basic();
    assert_int_equal(certs_gen_key("RSA", 2048, NULL, &k), MV_OK);
    assert_int_equal(certs_self_signed(k, &s, NOW, &x), MV_OK);
    assert_int_equal(X509_verify(x, k), 1);
    assert_true(certs_key_matches(x, k));
    int64_t nbf = 0, exp = 0;
    assert_int_equal(certs_validity(x, &nbf, &exp), MV_OK);
    assert_int_equal(nbf, NOW);
    assert_int_equal(exp, 1798761600); /* 2027-01-01 */
    char x5t[32];
    assert_int_equal(certs_x5t(x, x5t), MV_OK);
    assert_int_equal(strlen(x5t), 27);

    struct certs_desc d;
    assert_int_equal(certs_describe(x, &d), MV_OK);
    assert_string_equal(d.subject, "CN=www.example.test, O=Contoso\\, Ltd, C=US");
    assert_int_equal(d.spec.n_dns, 2);
    assert_string_equal(d.spec.dns[1], "example.test");
    assert_int_equal(d.spec.n_emails, 1);
    assert_string_equal(d.spec.emails[0], "admin@example.test");
    assert_int_equal(d.spec.n_upns, 1);
    assert_string_equal(d.spec.upns[0], "user@example.test");
    assert_int_equal(d.spec.n_ekus, 2);
    assert_string_equal(d.spec.ekus[0], "1.3.6.1.5.5.7.3.1");
    assert_int_equal(d.spec.key_usage, CERTS_KU_DIGITAL_SIGNATURE | CERTS_KU_KEY_ENCIPHERMENT);
    assert_int_equal(d.spec.validity_months, 12);
    assert_int_equal(d.key_size, 2048);
    assert_false(d.is_ec);
    certs_desc_free(&d);
    X509_free(x);

    /* 31 Jan + 1 month = 28 Feb (clamped), SAN only, EC */
    struct certs_spec t;
    memset(&t, 0, sizeof t);
    t.dns[0] = "only.san.test";
    t.n_dns = 1;
    t.validity_months = 1;
    EVP_PKEY *e = NULL;
    assert_int_equal(certs_gen_key("EC", 0, "P-384", &e), MV_OK);
    assert_int_equal(certs_self_signed(e, &t, 1769817600 /* 2026-01-31 */, &x), MV_OK);
    assert_int_equal(certs_validity(x, &nbf, &exp), MV_OK);
    assert_int_equal(exp, 1772236800); /* 2026-02-28 */
    assert_int_equal(certs_describe(x, &d), MV_OK);
    assert_string_equal(d.crv, "P-384");
    assert_string_equal(d.subject, "");
    certs_desc_free(&d);
    X509_free(x);

    t.n_dns = 0; /* neither subject nor SAN */
    assert_int_equal(certs_self_signed(e, &t, NOW, &x), MV_ERR_BAD_REQUEST);
    t.n_dns = 1;
    t.validity_months = 0;
    assert_int_equal(certs_self_signed(e, &t, NOW, &x), MV_ERR_BAD_REQUEST);
    t.validity_months = 1;
    t.ekus[0] = "not-an-oid";
    t.n_ekus = 1;
    assert_int_equal(certs_self_signed(e, &t, NOW, &x), MV_ERR_BAD_REQUEST);
    EVP_PKEY_free(e);
    EVP_PKEY_free(k);
}

static X509_REQ *parse_csr(const mv_buf *der)
{
    const unsigned char *p = (const unsigned char *)der->p;
    return d2i_X509_REQ(NULL, &p, (long)der->len);
}

/* A CA of the test's own signs the CSR: what an external issuer would do. */
static X509 *sign_csr(X509_REQ *req, X509 **ca_out, EVP_PKEY **ca_key_out)
{
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;
    struct certs_spec cs;
    memset(&cs, 0, sizeof cs);
    cs.subject = "CN=Test Issuing CA";
    cs.validity_months = 24;
    cs.key_usage = CERTS_KU_KEY_CERT_SIGN | CERTS_KU_CRL_SIGN;
    assert_int_equal(certs_gen_key("EC", 0, "P-256", &ca_key), MV_OK);
    assert_int_equal(certs_self_signed(ca_key, &cs, NOW, &ca), MV_OK);
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_subject_name(x, X509_REQ_get_subject_name(req));
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    X509_set_pubkey(x, X509_REQ_get0_pubkey(req));
    assert_true(X509_sign(x, ca_key, EVP_sha256()) > 0);
    *ca_out = ca;
    *ca_key_out = ca_key;
    return x;
}

static char *der_b64(X509 *x)
{
    mv_buf d, b;
    mv_buf_init(&d, 1 << 16);
    mv_buf_init(&b, 1 << 17);
    assert_int_equal(certs_der(x, &d), MV_OK);
    assert_int_equal(b64_encode(&b, d.p, d.len), MV_OK);
    mv_buf_free(&d);
    return mv_buf_take(&b);
}

static void test_csr_merge(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL, *ca_key = NULL, *other = NULL;
    X509 *ca = NULL;
    struct certs_spec s = spec_basic();
    mv_buf der;
    mv_buf_init(&der, 1 << 16);
    assert_int_equal(certs_gen_key("RSA", 2048, NULL, &k), MV_OK);
    assert_int_equal(certs_csr(k, &s, &der), MV_OK);
    X509_REQ *req = parse_csr(&der);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, k), 1);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    assert_int_equal(sk_X509_EXTENSION_num(exts), 3); /* SAN, KU, EKU */
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);

    X509 *leaf = sign_csr(req, &ca, &ca_key);
    char *x5c[2] = {der_b64(ca), der_b64(leaf)}; /* CA first: the merge puts the leaf first */
    STACK_OF(X509) *chain = NULL;
    const char *why = NULL;
    assert_int_equal(certs_merge(k, (const char *const *)x5c, 2, &chain, &why), MV_OK);
    assert_int_equal(sk_X509_num(chain), 2);
    assert_true(certs_key_matches(sk_X509_value(chain, 0), k));
    sk_X509_pop_free(chain, X509_free);

    assert_int_equal(certs_gen_key("RSA", 2048, NULL, &other), MV_OK);
    assert_int_equal(certs_merge(other, (const char *const *)x5c, 2, &chain, &why),
                     MV_ERR_BAD_REQUEST);
    assert_null(chain);
    const char *bad[] = {"!!!"};
    assert_int_equal(certs_merge(k, bad, 1, &chain, &why), MV_ERR_BAD_REQUEST);
    const char *notder[] = {"AAAA"};
    assert_int_equal(certs_merge(k, notder, 1, &chain, &why), MV_ERR_BAD_REQUEST);
    assert_int_equal(certs_merge(k, bad, 0, &chain, &why), MV_ERR_BAD_REQUEST);

    free(x5c[0]);
    free(x5c[1]);
    X509_free(leaf);
    X509_free(ca);
    X509_REQ_free(req);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(k);
    mv_buf_free(&der);
}

static STACK_OF(X509) *one_chain(EVP_PKEY *k)
{
    X509 *x = NULL;
    struct certs_spec s = spec_basic();
    assert_int_equal(certs_self_signed(k, &s, NOW, &x), MV_OK);
    STACK_OF(X509) *ch = sk_X509_new_null();
    sk_X509_push(ch, x);
    return ch;
}

static void test_pkcs12_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    assert_int_equal(certs_gen_key("EC", 0, "P-256", &k), MV_OK);
    STACK_OF(X509) *ch = one_chain(k);
    mv_buf p12;
    mv_buf_init(&p12, 1 << 20);
    assert_int_equal(certs_pkcs12(k, ch, &p12), MV_OK);

    /* opens with no password and with the empty one, as Key Vault's PFX do */
    const char *pws[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        const unsigned char *p = (const unsigned char *)p12.p;
        PKCS12 *pk = d2i_PKCS12(NULL, &p, (long)p12.len);
        assert_non_null(pk);
        EVP_PKEY *kk = NULL;
        X509 *xx = NULL;
        STACK_OF(X509) *ca = NULL;
        assert_int_equal(PKCS12_parse(pk, pws[i], &kk, &xx, &ca), 1);
        assert_int_equal(EVP_PKEY_eq(kk, k), 1);
        assert_int_equal(X509_cmp(xx, sk_X509_value(ch, 0)), 0);
        EVP_PKEY_free(kk);
        X509_free(xx);
        sk_X509_pop_free(ca, X509_free);
        PKCS12_free(pk);
    }

    /* and imports back: base64 of the PFX */
    mv_buf b;
    mv_buf_init(&b, 1 << 21);
    assert_int_equal(b64_encode(&b, p12.p, p12.len), MV_OK);
    EVP_PKEY *ik = NULL;
    STACK_OF(X509) *ich = NULL;
    enum certs_format fmt = 0;
    const char *why = NULL;
    assert_int_equal(certs_import(b.p, b.len, NULL, &ik, &ich, &fmt, &why), MV_OK);
    assert_int_equal(fmt, CERTS_FMT_PKCS12);
    assert_int_equal(EVP_PKEY_eq(ik, k), 1);
    assert_int_equal(sk_X509_num(ich), 1);
    EVP_PKEY_free(ik);
    sk_X509_pop_free(ich, X509_free);
    mv_buf_free(&b);

    /* a password-protected PFX: the right password opens it, a wrong one is a 400 */
    PKCS12 *enc = PKCS12_create("s3cret", NULL, k, sk_X509_value(ch, 0), NULL, 0, 0, 0, 0, 0);
    assert_non_null(enc);
    unsigned char *der = NULL;
    int n = i2d_PKCS12(enc, &der);
    mv_buf_init(&b, 1 << 21);
    assert_int_equal(b64_encode(&b, der, (size_t)n), MV_OK);
    assert_int_equal(certs_import(b.p, b.len, "s3cret", &ik, &ich, &fmt, &why), MV_OK);
    EVP_PKEY_free(ik);
    sk_X509_pop_free(ich, X509_free);
    assert_int_equal(certs_import(b.p, b.len, "wrong", &ik, &ich, &fmt, &why),
                     MV_ERR_BAD_REQUEST);
    assert_null(ik);
    assert_null(ich);
    assert_int_equal(certs_import(b.p, b.len, NULL, &ik, &ich, &fmt, &why), MV_ERR_BAD_REQUEST);
    mv_buf_free(&b);
    OPENSSL_free(der);
    PKCS12_free(enc);

    sk_X509_pop_free(ch, X509_free);
    mv_buf_free_secret(&p12);
    EVP_PKEY_free(k);
}

static void test_pem_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    assert_int_equal(certs_gen_key("RSA", 2048, NULL, &k), MV_OK);
    STACK_OF(X509) *ch = one_chain(k);
    mv_buf pem;
    mv_buf_init(&pem, 1 << 20);
    assert_int_equal(certs_pem(k, ch, &pem), MV_OK);
    assert_non_null(strstr(pem.p, "-----BEGIN PRIVATE KEY-----"));
    assert_true(strstr(pem.p, "-----BEGIN PRIVATE KEY-----") <
                strstr(pem.p, "-----BEGIN CERTIFICATE-----"));

    EVP_PKEY *ik = NULL;
    STACK_OF(X509) *ich = NULL;
    enum certs_format fmt = 0;
    const char *why = NULL;
    /* raw PEM text (JS, az) */
    assert_int_equal(certs_import(pem.p, pem.len, NULL, &ik, &ich, &fmt, &why), MV_OK);
    assert_int_equal(fmt, CERTS_FMT_PEM);
    assert_int_equal(EVP_PKEY_eq(ik, k), 1);
    EVP_PKEY_free(ik);
    sk_X509_pop_free(ich, X509_free);
    /* base64 of the PEM file (Python) */
    mv_buf b;
    mv_buf_init(&b, 1 << 21);
    assert_int_equal(b64_encode(&b, pem.p, pem.len), MV_OK);
    assert_int_equal(certs_import(b.p, b.len, NULL, &ik, &ich, &fmt, &why), MV_OK);
    assert_int_equal(fmt, CERTS_FMT_PEM);
    EVP_PKEY_free(ik);
    sk_X509_pop_free(ich, X509_free);
    mv_buf_free(&b);

    /* certificate first, then the key: still the leaf first */
    mv_buf certs_only, swapped;
    mv_buf_init(&certs_only, 1 << 20);
    mv_buf_init(&swapped, 1 << 20);
    assert_int_equal(certs_chain_pem(ch, &certs_only), MV_OK);
    STACK_OF(X509) *back = NULL;
    assert_int_equal(certs_chain_from_pem(certs_only.p, certs_only.len, &back), MV_OK);
    assert_int_equal(sk_X509_num(back), 1);
    sk_X509_pop_free(back, X509_free);
    assert_int_equal(mv_buf_add(&swapped, certs_only.p, certs_only.len), MV_OK);
    const char *key_start = strstr(pem.p, "-----BEGIN PRIVATE KEY-----");
    const char *key_end = strstr(pem.p, "-----BEGIN CERTIFICATE-----");
    assert_int_equal(mv_buf_add(&swapped, key_start, (size_t)(key_end - key_start)), MV_OK);
    assert_int_equal(certs_import(swapped.p, swapped.len, NULL, &ik, &ich, &fmt, &why), MV_OK);
    EVP_PKEY_free(ik);
    sk_X509_pop_free(ich, X509_free);

    /* refusals: certificate without key, key without certificate, garbage, another's key */
    assert_int_equal(certs_import(certs_only.p, certs_only.len, NULL, &ik, &ich, &fmt, &why),
                     MV_ERR_BAD_REQUEST);
    assert_int_equal(certs_import(key_start, (size_t)(key_end - key_start), NULL, &ik, &ich,
                                  &fmt, &why),
                     MV_ERR_BAD_REQUEST);
    assert_int_equal(certs_import("hello world", 11, NULL, &ik, &ich, &fmt, &why),
                     MV_ERR_BAD_REQUEST);
    assert_int_equal(certs_import("AAAA", 4, NULL, &ik, &ich, &fmt, &why), MV_ERR_BAD_REQUEST);
    EVP_PKEY *other = NULL;
    assert_int_equal(certs_gen_key("RSA", 2048, NULL, &other), MV_OK);
    mv_buf mixed;
    mv_buf_init(&mixed, 1 << 20);
    STACK_OF(X509) *none = sk_X509_new_null();
    assert_int_equal(certs_pem(other, none, &mixed), MV_OK);
    assert_int_equal(mv_buf_add(&mixed, certs_only.p, certs_only.len), MV_OK);
    assert_int_equal(certs_import(mixed.p, mixed.len, NULL, &ik, &ich, &fmt, &why),
                     MV_ERR_BAD_REQUEST);
    assert_string_equal(why, "The specified certificate does not match the private key.");
    sk_X509_free(none);
    mv_buf_free_secret(&mixed);
    EVP_PKEY_free(other);

    /* PKCS#8 DER round trip (what is sealed at rest) */
    mv_buf kd;
    mv_buf_init(&kd, 1 << 16);
    assert_int_equal(certs_key_der(k, &kd), MV_OK);
    assert_int_equal(certs_key_from_der((const unsigned char *)kd.p, kd.len, &ik), MV_OK);
    assert_int_equal(EVP_PKEY_eq(ik, k), 1);
    EVP_PKEY_free(ik);
    mv_buf_free_secret(&kd);

    mv_buf_free(&certs_only);
    mv_buf_free_secret(&swapped);
    mv_buf_free_secret(&pem);
    sk_X509_pop_free(ch, X509_free);
    EVP_PKEY_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_csr_merge),
        cmocka_unit_test(test_pkcs12_roundtrip),
        cmocka_unit_test(test_pem_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
