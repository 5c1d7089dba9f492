/* certs.c: X.509 for Key Vault certificates (see certs.h).
 *
 * Invariants: every certificate made here is v3 with a positive random serial and an SKI;
 * subjects and SANs are built entry by entry (never by handing user text to OpenSSL's config
 * parser); imports accept exactly one private key and require a certificate for it, which
 * becomes the first of the chain. Private keys leave as PKCS#8 only into buffers the caller
 * frees with mv_buf_free_secret. */
#include "crypto/certs.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/b64.h"
#include "common/util.h"

#define CERTS_SERIAL_LEN 16
#define CERTS_MAX_VALUE 256          /* one RDN value */
#define CERTS_MAX_DER (64 * 1024)    /* one certificate */
#define CERTS_UPN_OID "1.3.6.1.4.1.311.20.2.3"

static const char *const KU_NAMES[] = {
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
    "keyCertSign",      "cRLSign",        "encipherOnly",    "decipherOnly",
};
#define KU_COUNT (sizeof KU_NAMES / sizeof KU_NAMES[0])

unsigned certs_ku_bit(const char *name)
{
    for (size_t i = 0; name && i < KU_COUNT; i++)
        if (strcmp(name, KU_NAMES[i]) == 0)
            return 1u << i;
    return 0;
}

const char *certs_ku_name(unsigned bit)
{
    for (size_t i = 0; i < KU_COUNT; i++)
        if (bit == 1u << i)
            return KU_NAMES[i];
    return NULL;
}

mv_rc certs_gen_key(const char *kty, int key_size, const char *crv, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *k = NULL;
    *out = NULL;
    ENSURE(kty != NULL, MV_ERR_BAD_REQUEST);
    if (strcmp(kty, "RSA") == 0 || strcmp(kty, "RSA-HSM") == 0) {
        if (key_size == 0)
            key_size = 2048;
        ENSURE(key_size == 2048 || key_size == 3072 || key_size == 4096, MV_ERR_BAD_REQUEST);
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)key_size);
    } else if (strcmp(kty, "EC") == 0 || strcmp(kty, "EC-HSM") == 0) {
        const char *group = NULL;
        if (!crv || strcmp(crv, "P-256") == 0)
            group = "P-256";
        else if (strcmp(crv, "P-384") == 0)
            group = "P-384";
        else if (strcmp(crv, "P-521") == 0)
            group = "P-521";
        else if (strcmp(crv, "P-256K") == 0)
            group = "secp256k1";
        ENSURE(group != NULL, MV_ERR_BAD_REQUEST);
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    } else {
        ENSURE_MSG(0, MV_ERR_BAD_REQUEST, "certs: kty %s", kty);
    }
    ENSURE(k != NULL, MV_ERR_INTERNAL);
    *out = k;
out:
    return rc;
}

/* ---- subject DN text ---- */

static const char *dn_field(const char *attr)
{
    static const char *const MAP[][2] = {
        {"CN", "CN"}, {"O", "O"}, {"OU", "OU"}, {"L", "L"}, {"ST", "ST"}, {"S", "ST"},
        {"C", "C"}, {"E", "emailAddress"}, {"EMAILADDRESS", "emailAddress"}, {"DC", "DC"},
        {"SERIALNUMBER", "serialNumber"}, {"STREET", "street"}, {"G", "GN"}, {"SN", "SN"},
    };
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (strcasecmp(attr, MAP[i][0]) == 0)
            return MAP[i][1];
    return NULL;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i]))
        i++;
    memmove(s, s + i, n - i + 1);
}

/* Parses "A=v, B=w" into name (when name != NULL) or only checks it. */
static mv_rc parse_dn(const char *text, X509_NAME *name)
{
    mv_rc rc = MV_OK;
    char attr[32], val[CERTS_MAX_VALUE + 1];
    size_t na = 0, nv = 0;
    int in_val = 0, entries = 0;
    ENSURE(text != NULL && strlen(text) < CERTS_MAX_SUBJECT, MV_ERR_BAD_REQUEST);
    for (const char *p = text;; p++) {
        char ch = *p;
        if (ch == '\\' && in_val && p[1]) {
            ENSURE(nv < CERTS_MAX_VALUE, MV_ERR_BAD_REQUEST);
            val[nv++] = *++p;
            continue;
        }
        if (ch == ',' || ch == ';' || ch == '\0') {
            if (na == 0 && nv == 0 && !in_val && ch == '\0' && entries > 0)
                break;
            ENSURE(in_val, MV_ERR_BAD_REQUEST);
            attr[na] = '\0';
            val[nv] = '\0';
            trim(attr);
            trim(val);
            const char *field = dn_field(attr);
            ENSURE_MSG(field != NULL, MV_ERR_BAD_REQUEST, "certs: subject attribute");
            ENSURE(val[0] != '\0', MV_ERR_BAD_REQUEST);
            ENSURE((unsigned char)val[0] >= 0x20, MV_ERR_BAD_REQUEST);
            if (name)
                ENSURE(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                                  (const unsigned char *)val, -1, -1, 0) == 1,
                       MV_ERR_BAD_REQUEST);
            entries++;
            na = nv = 0;
            in_val = 0;
            if (ch == '\0')
                break;
            continue;
        }
        ENSURE((unsigned char)ch >= 0x20, MV_ERR_BAD_REQUEST);
        if (!in_val) {
            if (ch == '=') {
                in_val = 1;
                continue;
            }
            ENSURE(na < sizeof attr - 1, MV_ERR_BAD_REQUEST);
            attr[na++] = ch;
        } else {
            ENSURE(nv < CERTS_MAX_VALUE, MV_ERR_BAD_REQUEST);
            val[nv++] = ch;
        }
    }
    ENSURE(entries > 0, MV_ERR_BAD_REQUEST);
out:
    return rc;
}

int certs_subject_ok(const char *subject)
{
    X509_NAME *n = X509_NAME_new();
    int ok = n && parse_dn(subject, n) == MV_OK;
    X509_NAME_free(n);
    return ok;
}

/* ---- extensions ---- */

static mv_rc push_ia5(GENERAL_NAMES *gens, int type, const char *value)
{
    mv_rc rc = MV_OK;
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ENSURE(g != NULL && s != NULL, MV_ERR_INTERNAL);
    ENSURE(value && *value && strlen(value) <= CERTS_MAX_VALUE, MV_ERR_BAD_REQUEST);
    for (const char *p = value; *p; p++)
        ENSURE((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f, MV_ERR_BAD_REQUEST);
    ENSURE(ASN1_STRING_set(s, value, -1) == 1, MV_ERR_INTERNAL);
    GENERAL_NAME_set0_value(g, type, s);
    s = NULL;
    ENSURE(sk_GENERAL_NAME_push(gens, g) > 0, MV_ERR_INTERNAL);
    g = NULL;
out:
    ASN1_IA5STRING_free(s);
    GENERAL_NAME_free(g);
    return rc;
}

static mv_rc push_upn(GENERAL_NAMES *gens, const char *value)
{
    mv_rc rc = MV_OK;
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_TYPE *t = ASN1_TYPE_new();
    ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();
    ASN1_OBJECT *oid = OBJ_txt2obj(CERTS_UPN_OID, 1);
    ENSURE(g && t && s && oid, MV_ERR_INTERNAL);
    ENSURE(value && *value && strlen(value) <= CERTS_MAX_VALUE, MV_ERR_BAD_REQUEST);
    ENSURE(ASN1_STRING_set(s, value, -1) == 1, MV_ERR_INTERNAL);
    ASN1_TYPE_set(t, V_ASN1_UTF8STRING, s);
    s = NULL;
    ENSURE(GENERAL_NAME_set0_othername(g, oid, t) == 1, MV_ERR_INTERNAL);
    oid = NULL;
    t = NULL;
    ENSURE(sk_GENERAL_NAME_push(gens, g) > 0, MV_ERR_INTERNAL);
    g = NULL;
out:
    ASN1_OBJECT_free(oid);
    ASN1_UTF8STRING_free(s);
    ASN1_TYPE_free(t);
    GENERAL_NAME_free(g);
    return rc;
}

static mv_rc push_ext(STACK_OF(X509_EXTENSION) *exts, int nid, int crit, void *value)
{
    mv_rc rc = MV_OK;
    X509_EXTENSION *e = X509V3_EXT_i2d(nid, crit, value);
    ENSURE(e != NULL, MV_ERR_INTERNAL);
    ENSURE(sk_X509_EXTENSION_push(exts, e) > 0, MV_ERR_INTERNAL);
    e = NULL;
out:
    X509_EXTENSION_free(e);
    return rc;
}

/* The SAN, key usage and EKU extensions of a spec. */
static mv_rc spec_exts(const struct certs_spec *spec, STACK_OF(X509_EXTENSION) *exts)
{
    mv_rc rc = MV_OK;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    ASN1_BIT_STRING *ku = NULL;
    EXTENDED_KEY_USAGE *eku = NULL;
    ENSURE(gens != NULL, MV_ERR_INTERNAL);
    ENSURE(spec->n_dns <= CERTS_MAX_NAMES && spec->n_emails <= CERTS_MAX_NAMES &&
               spec->n_upns <= CERTS_MAX_NAMES && spec->n_ekus <= CERTS_MAX_NAMES,
           MV_ERR_BAD_REQUEST);
    for (size_t i = 0; i < spec->n_dns; i++)
        CHECK(push_ia5(gens, GEN_DNS, spec->dns[i]));
    for (size_t i = 0; i < spec->n_emails; i++)
        CHECK(push_ia5(gens, GEN_EMAIL, spec->emails[i]));
    for (size_t i = 0; i < spec->n_upns; i++)
        CHECK(push_upn(gens, spec->upns[i]));
    if (sk_GENERAL_NAME_num(gens) > 0)
        CHECK(push_ext(exts, NID_subject_alt_name, 0, gens));
    if (spec->key_usage) {
        ku = ASN1_BIT_STRING_new();
        ENSURE(ku != NULL, MV_ERR_INTERNAL);
        for (size_t i = 0; i < KU_COUNT; i++)
            if (spec->key_usage & (1u << i))
                ENSURE(ASN1_BIT_STRING_set_bit(ku, (int)i, 1) == 1, MV_ERR_INTERNAL);
        CHECK(push_ext(exts, NID_key_usage, 1, ku));
    }
    if (spec->n_ekus) {
        eku = sk_ASN1_OBJECT_new_null();
        ENSURE(eku != NULL, MV_ERR_INTERNAL);
        for (size_t i = 0; i < spec->n_ekus; i++) {
            const char *o = spec->ekus[i];
            ENSURE(o && *o && strlen(o) < 128, MV_ERR_BAD_REQUEST);
            for (const char *p = o; *p; p++)
                ENSURE((*p >= '0' && *p <= '9') || *p == '.', MV_ERR_BAD_REQUEST);
            ASN1_OBJECT *obj = OBJ_txt2obj(o, 1);
            ENSURE_MSG(obj != NULL, MV_ERR_BAD_REQUEST, "certs: eku");
            if (sk_ASN1_OBJECT_push(eku, obj) <= 0) {
                ASN1_OBJECT_free(obj);
                ENSURE(0, MV_ERR_INTERNAL);
            }
        }
        CHECK(push_ext(exts, NID_ext_key_usage, 0, eku));
    }
out:
    GENERAL_NAMES_free(gens);
    ASN1_BIT_STRING_free(ku);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    return rc;
}

static int has_subject(const struct certs_spec *spec)
{
    return spec->subject && spec->subject[0];
}

static mv_rc spec_name(const struct certs_spec *spec, X509_NAME *name)
{
    mv_rc rc = MV_OK;
    ENSURE(has_subject(spec) || spec->n_dns || spec->n_emails || spec->n_upns,
           MV_ERR_BAD_REQUEST);
    if (has_subject(spec))
        CHECK(parse_dn(spec->subject, name));
out:
    return rc;
}

static const EVP_MD *md_for(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "EC")) {
        int bits = EVP_PKEY_get_bits(key);
        if (bits > 384)
            return EVP_sha512();
        if (bits > 256)
            return EVP_sha384();
    }
    return EVP_sha256();
}

static mv_rc set_serial(X509 *x)
{
    mv_rc rc = MV_OK;
    unsigned char r[CERTS_SERIAL_LEN];
    BIGNUM *bn = NULL;
    CHECK(mv_random(r, sizeof r));
    r[0] = (unsigned char)((r[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(r, sizeof r, NULL);
    ENSURE(bn != NULL, MV_ERR_INTERNAL);
    ENSURE(BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL, MV_ERR_INTERNAL);
out:
    BN_free(bn);
    return rc;
}

/* now + months, same day of month (clamped to the month's last day), same time of day. */
static int64_t add_months(int64_t now, int months)
{
    static const int DAYS[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    int m = tm.tm_mon + months;
    tm.tm_year += m / 12;
    tm.tm_mon = m % 12;
    int y = tm.tm_year + 1900;
    int last = DAYS[tm.tm_mon] + (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (tm.tm_mday > last)
        tm.tm_mday = last;
    return (int64_t)timegm(&tm);
}

mv_rc certs_self_signed(EVP_PKEY *key, const struct certs_spec *spec, int64_t now, X509 **out)
{
    mv_rc rc = MV_OK;
    X509 *x = X509_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ski = NULL;
    *out = NULL;
    ENSURE(x != NULL && exts != NULL, MV_ERR_INTERNAL);
    ENSURE(spec->validity_months >= 1 && spec->validity_months <= CERTS_MAX_MONTHS,
           MV_ERR_BAD_REQUEST);
    ENSURE(X509_set_version(x, X509_VERSION_3) == 1, MV_ERR_INTERNAL);
    CHECK(set_serial(x));
    ENSURE(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)now) != NULL, MV_ERR_INTERNAL);
    ENSURE(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)add_months(now, spec->validity_months)) !=
               NULL,
           MV_ERR_INTERNAL);
    CHECK(spec_name(spec, X509_get_subject_name(x)));
    ENSURE(X509_set_issuer_name(x, X509_get_subject_name(x)) == 1, MV_ERR_INTERNAL);
    ENSURE(X509_set_pubkey(x, key) == 1, MV_ERR_INTERNAL);
    CHECK(spec_exts(spec, exts));
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
        ENSURE(X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1) == 1, MV_ERR_INTERNAL);
    {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ski = X509V3_EXT_nconf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
        ENSURE(ski != NULL, MV_ERR_INTERNAL);
        ENSURE(X509_add_ext(x, ski, -1) == 1, MV_ERR_INTERNAL);
    }
    ENSURE(X509_sign(x, key, md_for(key)) > 0, MV_ERR_INTERNAL);
    *out = x;
    x = NULL;
out:
    X509_EXTENSION_free(ski);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_free(x);
    return rc;
}

mv_rc certs_csr(EVP_PKEY *key, const struct certs_spec *spec, mv_buf *out)
{
    mv_rc rc = MV_OK;
    X509_REQ *req = X509_REQ_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    unsigned char *der = NULL;
    ENSURE(req != NULL && exts != NULL, MV_ERR_INTERNAL);
    ENSURE(X509_REQ_set_version(req, X509_REQ_VERSION_1) == 1, MV_ERR_INTERNAL);
    CHECK(spec_name(spec, X509_REQ_get_subject_name(req)));
    ENSURE(X509_REQ_set_pubkey(req, key) == 1, MV_ERR_INTERNAL);
    CHECK(spec_exts(spec, exts));
    if (sk_X509_EXTENSION_num(exts) > 0)
        ENSURE(X509_REQ_add_extensions(req, exts) == 1, MV_ERR_INTERNAL);
    ENSURE(X509_REQ_sign(req, key, md_for(key)) > 0, MV_ERR_INTERNAL);
    int n = i2d_X509_REQ(req, &der);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, der, (size_t)n));
out:
    OPENSSL_free(der);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    return rc;
}

/* ---- export ---- */

mv_rc certs_pkcs12(EVP_PKEY *key, STACK_OF(X509) *chain, mv_buf *out)
{
    mv_rc rc = MV_OK;
    PKCS12 *p12 = NULL;
    STACK_OF(X509) *rest = NULL;
    unsigned char *der = NULL;
    int n = 0;
    ENSURE(chain != NULL && sk_X509_num(chain) >= 1, MV_ERR_INTERNAL);
    rest = sk_X509_new_null();
    ENSURE(rest != NULL, MV_ERR_INTERNAL);
    for (int i = 1; i < sk_X509_num(chain); i++)
        ENSURE(sk_X509_push(rest, sk_X509_value(chain, i)) > 0, MV_ERR_INTERNAL);
    /* Bags in clear (-1, -1), MAC keyed with "": opens with no password and with "". */
    p12 = PKCS12_create("", NULL, key, sk_X509_value(chain, 0), rest, -1, -1, 0, 0, 0);
    ENSURE(p12 != NULL, MV_ERR_INTERNAL);
    n = i2d_PKCS12(p12, &der);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, der, (size_t)n));
out:
    if (der) {
        OPENSSL_cleanse(der, (size_t)n);
        OPENSSL_free(der);
    }
    sk_X509_free(rest);
    PKCS12_free(p12);
    return rc;
}

static mv_rc bio_take(BIO *b, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    ENSURE(n >= 0, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, p, (size_t)n));
out:
    return rc;
}

mv_rc certs_chain_pem(STACK_OF(X509) *chain, mv_buf *out)
{
    mv_rc rc = MV_OK;
    BIO *b = BIO_new(BIO_s_mem());
    ENSURE(b != NULL, MV_ERR_INTERNAL);
    for (int i = 0; i < sk_X509_num(chain); i++)
        ENSURE(PEM_write_bio_X509(b, sk_X509_value(chain, i)) == 1, MV_ERR_INTERNAL);
    CHECK(bio_take(b, out));
out:
    BIO_free(b);
    return rc;
}

mv_rc certs_pem(EVP_PKEY *key, STACK_OF(X509) *chain, mv_buf *out)
{
    mv_rc rc = MV_OK;
    BIO *b = BIO_new(BIO_s_secmem());
    ENSURE(b != NULL, MV_ERR_INTERNAL);
    if (key)
        ENSURE(PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1,
               MV_ERR_INTERNAL);
    for (int i = 0; i < sk_X509_num(chain); i++)
        ENSURE(PEM_write_bio_X509(b, sk_X509_value(chain, i)) == 1, MV_ERR_INTERNAL);
    CHECK(bio_take(b, out));
out:
    BIO_free(b);
    return rc;
}

mv_rc certs_key_der(EVP_PKEY *key, mv_buf *out)
{
    mv_rc rc = MV_OK;
    BIO *b = BIO_new(BIO_s_secmem());
    ENSURE(b != NULL, MV_ERR_INTERNAL);
    ENSURE(i2d_PKCS8PrivateKey_bio(b, key, NULL, NULL, 0, NULL, NULL) == 1, MV_ERR_INTERNAL);
    CHECK(bio_take(b, out));
out:
    BIO_free(b);
    return rc;
}

mv_rc certs_key_from_der(const unsigned char *der, size_t len, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    const unsigned char *p = der;
    ENSURE(len > 0 && len < LONG_MAX, MV_ERR_BAD_REQUEST);
    *out = d2i_AutoPrivateKey(NULL, &p, (long)len);
    ENSURE(*out != NULL, MV_ERR_BAD_REQUEST);
out:
    return rc;
}

/* ---- import ---- */

static mv_rc chain_push(STACK_OF(X509) *chain, X509 *x)
{
    mv_rc rc = MV_OK;
    ENSURE(sk_X509_num(chain) < CERTS_MAX_CHAIN, MV_ERR_BAD_REQUEST);
    ENSURE(sk_X509_push(chain, x) > 0, MV_ERR_INTERNAL);
out:
    return rc;
}

int certs_key_matches(X509 *x, EVP_PKEY *key)
{
    EVP_PKEY *pub = X509_get0_pubkey(x);
    return pub && key && EVP_PKEY_eq(pub, key) == 1;
}

/* Moves the certificate of key to the front. */
static mv_rc leaf_first(STACK_OF(X509) *chain, EVP_PKEY *key, const char **why)
{
    mv_rc rc = MV_OK;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        if (certs_key_matches(x, key)) {
            if (i > 0) {
                (void)sk_X509_delete(chain, i);
                ENSURE(sk_X509_unshift(chain, x) > 0, MV_ERR_INTERNAL);
            }
            goto out;
        }
    }
    *why = "The specified certificate does not match the private key.";
    ENSURE(0, MV_ERR_BAD_REQUEST);
out:
    return rc;
}

static int is_key_block(const char *name)
{
    return strcmp(name, "PRIVATE KEY") == 0 || strcmp(name, "RSA PRIVATE KEY") == 0 ||
           strcmp(name, "EC PRIVATE KEY") == 0;
}

static mv_rc import_pem(const char *pem, size_t len, EVP_PKEY **key, STACK_OF(X509) *chain,
                        const char **why)
{
    mv_rc rc = MV_OK;
    BIO *b = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    ENSURE(len < INT_MAX, MV_ERR_LIMIT);
    b = BIO_new_mem_buf(pem, (int)len);
    ENSURE(b != NULL, MV_ERR_INTERNAL);
    while (PEM_read_bio(b, &name, &header, &data, &dlen) == 1) {
        const unsigned char *p = data;
        if (strcmp(name, "CERTIFICATE") == 0) {
            X509 *x = d2i_X509(NULL, &p, dlen);
            if (!x) {
                *why = "The certificate in the PEM content could not be parsed.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
            if ((rc = chain_push(chain, x)) != MV_OK) {
                X509_free(x);
                *why = "The certificate chain is too long.";
                goto out;
            }
        } else if (is_key_block(name)) {
            if (*key) {
                *why = "The PEM content holds more than one private key.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
            *key = d2i_AutoPrivateKey(NULL, &p, dlen);
            if (!*key) {
                *why = "The private key in the PEM content could not be parsed.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
        } else if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
            *why = "Encrypted PEM private keys are not supported; import a PKCS#12 file with a "
                   "password instead.";
            ENSURE(0, MV_ERR_BAD_REQUEST);
        }
        if (data)
            OPENSSL_cleanse(data, (size_t)dlen);
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = header = NULL;
        data = NULL;
    }
    ERR_clear_error();
out:
    if (data)
        OPENSSL_cleanse(data, (size_t)dlen);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(b);
    return rc;
}

static mv_rc import_p12(const unsigned char *der, size_t len, const char *password,
                        EVP_PKEY **key, STACK_OF(X509) *chain, const char **why)
{
    mv_rc rc = MV_OK;
    const unsigned char *p = der;
    PKCS12 *p12 = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *ca = NULL;
    ENSURE(len < LONG_MAX, MV_ERR_LIMIT);
    p12 = d2i_PKCS12(NULL, &p, (long)len);
    if (!p12) {
        *why = "The specified PEM X.509 certificate content is in an unexpected format. Please "
               "check if certificate is in valid PEM format.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    if (PKCS12_parse(p12, password && *password ? password : NULL, key, &cert, &ca) != 1) {
        *key = NULL;
        *why = "The specified PKCS#12 X.509 certificate content can not be read. Please check if "
               "certificate is in valid PKCS#12 format and the password is right.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    if (cert) {
        CHECK(chain_push(chain, cert));
        cert = NULL;
    }
    while (ca && sk_X509_num(ca) > 0) {
        X509 *x = sk_X509_shift(ca);
        if ((rc = chain_push(chain, x)) != MV_OK) {
            X509_free(x);
            *why = "The certificate chain is too long.";
            goto out;
        }
    }
out:
    ERR_clear_error();
    X509_free(cert);
    sk_X509_pop_free(ca, X509_free);
    PKCS12_free(p12);
    return rc;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p))
        p++;
    return p;
}

static int starts_pem(const char *p, size_t len)
{
    const char *q = skip_ws(p, p + len);
    size_t left = len - (size_t)(q - p);
    return left >= 10 && memcmp(q, "-----BEGIN", 10) == 0;
}

mv_rc certs_import(const char *value, size_t len, const char *password, EVP_PKEY **key,
                   STACK_OF(X509) **chain, enum certs_format *fmt, const char **why)
{
    mv_rc rc = MV_OK;
    mv_buf raw;
    mv_buf_init(&raw, CERTS_MAX_IMPORT);
    STACK_OF(X509) *ch = sk_X509_new_null();
    EVP_PKEY *k = NULL;
    *key = NULL;
    *chain = NULL;
    *why = "The specified certificate content could not be read.";
    ENSURE(ch != NULL, MV_ERR_INTERNAL);
    ENSURE(value != NULL && len > 0, MV_ERR_BAD_REQUEST);
    if (len > CERTS_MAX_IMPORT) {
        *why = "The certificate content is too large.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    if (starts_pem(value, len)) {
        *fmt = CERTS_FMT_PEM;
        CHECK(import_pem(value, len, &k, ch, why));
    } else {
        /* base64 of the file; tolerate line breaks */
        mv_buf clean;
        mv_buf_init(&clean, CERTS_MAX_IMPORT);
        for (size_t i = 0; i < len && rc == MV_OK; i++)
            if (!isspace((unsigned char)value[i]))
                rc = mv_buf_add(&clean, value + i, 1);
        if (rc == MV_OK)
            rc = clean.len ? b64_decode(&raw, clean.p, clean.len) : MV_ERR_BAD_REQUEST;
        mv_buf_free_secret(&clean);
        if (rc != MV_OK) {
            *why = "The certificate content is neither PEM text nor base64.";
            ENSURE(0, MV_ERR_BAD_REQUEST);
        }
        if (starts_pem(raw.p, raw.len)) {
            *fmt = CERTS_FMT_PEM;
            CHECK(import_pem(raw.p, raw.len, &k, ch, why));
        } else {
            *fmt = CERTS_FMT_PKCS12;
            CHECK(import_p12((const unsigned char *)raw.p, raw.len, password, &k, ch, why));
        }
    }
    if (!k) {
        *why = "The certificate content holds no private key.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    if (sk_X509_num(ch) < 1) {
        *why = "The certificate content holds no certificate.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    CHECK(leaf_first(ch, k, why));
    *key = k;
    *chain = ch;
    k = NULL;
    ch = NULL;
out:
    mv_buf_free_secret(&raw);
    EVP_PKEY_free(k);
    sk_X509_pop_free(ch, X509_free);
    return rc;
}

mv_rc certs_merge(EVP_PKEY *key, const char *const *x5c, size_t n, STACK_OF(X509) **chain,
                  const char **why)
{
    mv_rc rc = MV_OK;
    STACK_OF(X509) *ch = sk_X509_new_null();
    mv_buf der;
    mv_buf_init(&der, CERTS_MAX_DER);
    *chain = NULL;
    *why = "The x5c certificates could not be read.";
    ENSURE(ch != NULL, MV_ERR_INTERNAL);
    if (n < 1 || n > CERTS_MAX_CHAIN) {
        *why = "x5c must hold between 1 and 10 certificates.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    for (size_t i = 0; i < n; i++) {
        mv_buf_reset(&der);
        ENSURE(x5c[i] != NULL, MV_ERR_BAD_REQUEST);
        CHECK(b64_decode(&der, x5c[i], strlen(x5c[i])));
        const unsigned char *p = (const unsigned char *)der.p;
        ENSURE(der.len > 0, MV_ERR_BAD_REQUEST);
        X509 *x = d2i_X509(NULL, &p, (long)der.len);
        ENSURE(x != NULL, MV_ERR_BAD_REQUEST);
        if ((rc = chain_push(ch, x)) != MV_OK) {
            X509_free(x);
            goto out;
        }
    }
    CHECK(leaf_first(ch, key, why));
    *chain = ch;
    ch = NULL;
out:
    if (rc != MV_OK && rc != MV_ERR_INTERNAL)
        rc = MV_ERR_BAD_REQUEST;
    ERR_clear_error();
    mv_buf_free(&der);
    sk_X509_pop_free(ch, X509_free);
    return rc;
}

/* ---- facts about a certificate ---- */

mv_rc certs_der(X509 *x, mv_buf *out)
{
    mv_rc rc = MV_OK;
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, der, (size_t)n));
out:
    OPENSSL_free(der);
    return rc;
}

mv_rc certs_x5t(X509 *x, char out[32])
{
    mv_rc rc = MV_OK;
    unsigned char md[20];
    unsigned int n = 0;
    mv_buf b;
    mv_buf_init(&b, 64);
    ENSURE(X509_digest(x, EVP_sha1(), md, &n) == 1 && n == 20, MV_ERR_INTERNAL);
    CHECK(b64url_encode(&b, md, n));
    CHECK(mv_copy(out, 32, b.p));
out:
    mv_buf_free(&b);
    return rc;
}

static mv_rc asn1_secs(const ASN1_TIME *t, int64_t *out)
{
    mv_rc rc = MV_OK;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    ENSURE(ASN1_TIME_to_tm(t, &tm) == 1, MV_ERR_BAD_REQUEST);
    *out = (int64_t)timegm(&tm);
out:
    return rc;
}

mv_rc certs_validity(X509 *x, int64_t *nbf, int64_t *exp)
{
    mv_rc rc = MV_OK;
    CHECK(asn1_secs(X509_get0_notBefore(x), nbf));
    CHECK(asn1_secs(X509_get0_notAfter(x), exp));
out:
    return rc;
}

/* Appends s (NUL included) to the string pool; returns its offset. */
static mv_rc pool_add(mv_buf *pool, const char *s, size_t len, size_t *off)
{
    mv_rc rc = MV_OK;
    static const char nul = '\0';
    *off = pool->len;
    CHECK(mv_buf_add(pool, s, len));
    CHECK(mv_buf_add(pool, &nul, 1));
out:
    return rc;
}

static const char *short_name(int nid)
{
    switch (nid) {
    case NID_pkcs9_emailAddress:
        return "E";
    case NID_stateOrProvinceName:
        return "S";
    case NID_serialNumber:
        return "SERIALNUMBER";
    case NID_streetAddress:
        return "STREET";
    case NID_givenName:
        return "G";
    default:
        return OBJ_nid2sn(nid);
    }
}

mv_rc certs_describe(X509 *x, struct certs_desc *d)
{
    mv_rc rc = MV_OK;
    mv_buf pool;
    mv_buf_init(&pool, 256 * 1024);
    size_t off_dns[CERTS_MAX_NAMES], off_em[CERTS_MAX_NAMES], off_upn[CERTS_MAX_NAMES],
        off_eku[CERTS_MAX_NAMES];
    GENERAL_NAMES *gens = NULL;
    EXTENDED_KEY_USAGE *eku = NULL;
    memset(d, 0, sizeof *d);
    mv_buf subj;
    mv_buf_init(&subj, CERTS_MAX_SUBJECT - 1);
    const X509_NAME *name = X509_get_subject_name(x);
    for (int i = 0; i < X509_NAME_entry_count(name); i++) {
        const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        unsigned char *u = NULL;
        int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e));
        const char *sn = short_name(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)));
        if (n < 0 || !sn) {
            OPENSSL_free(u);
            continue;
        }
        if (subj.len)
            rc = mv_buf_adds(&subj, ", ");
        if (rc == MV_OK)
            rc = mv_buf_adds(&subj, sn);
        if (rc == MV_OK)
            rc = mv_buf_adds(&subj, "=");
        for (int j = 0; j < n && rc == MV_OK; j++) {
            if (u[j] == ',' || u[j] == '\\')
                rc = mv_buf_adds(&subj, "\\");
            if (rc == MV_OK)
                rc = mv_buf_add(&subj, u + j, 1);
        }
        OPENSSL_free(u);
        CHECK(rc);
    }
    CHECK(mv_copy(d->subject, sizeof d->subject, subj.p ? subj.p : ""));
    d->spec.subject = d->subject;

    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS && d->spec.n_dns < CERTS_MAX_NAMES)
            CHECK(pool_add(&pool, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                           (size_t)ASN1_STRING_length(g->d.dNSName), &off_dns[d->spec.n_dns++]));
        else if (g->type == GEN_EMAIL && d->spec.n_emails < CERTS_MAX_NAMES)
            CHECK(pool_add(&pool, (const char *)ASN1_STRING_get0_data(g->d.rfc822Name),
                           (size_t)ASN1_STRING_length(g->d.rfc822Name),
                           &off_em[d->spec.n_emails++]));
        else if (g->type == GEN_OTHERNAME && d->spec.n_upns < CERTS_MAX_NAMES &&
                 OBJ_obj2nid(g->d.otherName->type_id) == NID_ms_upn &&
                 g->d.otherName->value->type == V_ASN1_UTF8STRING) {
            ASN1_UTF8STRING *s = g->d.otherName->value->value.utf8string;
            CHECK(pool_add(&pool, (const char *)ASN1_STRING_get0_data(s),
                           (size_t)ASN1_STRING_length(s), &off_upn[d->spec.n_upns++]));
        }
    }
    eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku) && d->spec.n_ekus < CERTS_MAX_NAMES; i++) {
        char oid[128];
        int n = OBJ_obj2txt(oid, sizeof oid, sk_ASN1_OBJECT_value(eku, i), 1);
        if (n > 0 && (size_t)n < sizeof oid)
            CHECK(pool_add(&pool, oid, (size_t)n, &off_eku[d->spec.n_ekus++]));
    }
    uint32_t ku = X509_get_key_usage(x);
    if (ku != UINT32_MAX) {
        /* OpenSSL's KU_* are the DER bits as a little-endian pair of bytes */
        static const uint32_t OSSL[] = {KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION,
                                        KU_KEY_ENCIPHERMENT,  KU_DATA_ENCIPHERMENT,
                                        KU_KEY_AGREEMENT,     KU_KEY_CERT_SIGN,
                                        KU_CRL_SIGN,          KU_ENCIPHER_ONLY,
                                        KU_DECIPHER_ONLY};
        for (size_t i = 0; i < KU_COUNT; i++)
            if (ku & OSSL[i])
                d->spec.key_usage |= 1u << i;
    }
    int64_t nbf = 0, exp = 0;
    CHECK(certs_validity(x, &nbf, &exp));
    int64_t months = exp > nbf ? (exp - nbf + 15 * 86400) / (30 * 86400 + 37800) : 1;
    d->spec.validity_months = (int)(months < 1 ? 1 : months > CERTS_MAX_MONTHS ? CERTS_MAX_MONTHS
                                                                                : months);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    if (pub && EVP_PKEY_is_a(pub, "EC")) {
        char g[64];
        size_t gl = 0;
        d->is_ec = 1;
        if (EVP_PKEY_get_group_name(pub, g, sizeof g, &gl) == 1) {
            if (strcmp(g, "prime256v1") == 0 || strcmp(g, "P-256") == 0)
                d->crv = "P-256";
            else if (strcmp(g, "secp384r1") == 0 || strcmp(g, "P-384") == 0)
                d->crv = "P-384";
            else if (strcmp(g, "secp521r1") == 0 || strcmp(g, "P-521") == 0)
                d->crv = "P-521";
            else if (strcmp(g, "secp256k1") == 0)
                d->crv = "P-256K";
        }
    } else if (pub) {
        d->key_size = EVP_PKEY_get_bits(pub);
    }
    if (pool.len) {
        d->strings = mv_buf_take(&pool);
        for (size_t i = 0; i < d->spec.n_dns; i++)
            d->spec.dns[i] = d->strings + off_dns[i];
        for (size_t i = 0; i < d->spec.n_emails; i++)
            d->spec.emails[i] = d->strings + off_em[i];
        for (size_t i = 0; i < d->spec.n_upns; i++)
            d->spec.upns[i] = d->strings + off_upn[i];
        for (size_t i = 0; i < d->spec.n_ekus; i++)
            d->spec.ekus[i] = d->strings + off_eku[i];
    } else {
        d->spec.n_dns = d->spec.n_emails = d->spec.n_upns = d->spec.n_ekus = 0;
    }
out:
    GENERAL_NAMES_free(gens);
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    mv_buf_free(&subj);
    mv_buf_free(&pool);
    return rc;
}

void certs_desc_free(struct certs_desc *d)
{
    free(d->strings);
    d->strings = NULL;
}

mv_rc certs_chain_from_pem(const char *pem, size_t len, STACK_OF(X509) **out)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *k = NULL;
    const char *why = NULL;
    STACK_OF(X509) *ch = sk_X509_new_null();
    ENSURE(ch != NULL, MV_ERR_INTERNAL);
    CHECK(import_pem(pem, len, &k, ch, &why));
    ENSURE(k == NULL && sk_X509_num(ch) >= 1, MV_ERR_BAD_REQUEST);
    *out = ch;
    ch = NULL;
out:
    EVP_PKEY_free(k);
    sk_X509_pop_free(ch, X509_free);
    return rc;
}
