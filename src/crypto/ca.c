/* ca.c: the local CA made at `mivault init`, the TLS server certificate it signs, and the
 * self-signed certificate that wraps a token-signing key for the JWKS x5c member (DESIGN §8).
 *
 * Invariants: certificates follow RFC 5280 profiles strict verifiers insist on (Python 3.13's
 * VERIFY_X509_STRICT, Node, Go): v3, positive random serials, SKI on every cert, AKI on every
 * cert a CA signed, critical basicConstraints and keyUsage on the CA. SANs are built as
 * GENERAL_NAMEs, never by pasting the configured suffix into a config string, and the suffix is
 * checked to be a plain DNS name first. Private keys are written 0600, certificates 0644. */
#include "crypto/ca.h"

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/b64.h"
#include "common/limits.h"
#include "common/util.h"
#include "crypto/keys.h"

#define CA_DAYS (10 * 365 + 2)
#define SERVER_DAYS (2 * 365)
#define SIGNING_CERT_DAYS (5 * 365 + 1)
#define CA_SERIAL_LEN 16
#define CA_BACKDATE_SECS MV_CLOCK_SKEW_SECS /* tolerate clocks a little behind ours */
#define CA_MAX_DNS 253
#define CA_MAX_PEM (64 * 1024)


/* RFC 5280 §4.1.2.2: serial is a positive integer of at most 20 octets, unique per CA; 16
 * random octets with the top bit cleared and a non-zero first octet. */
static mv_rc set_serial(X509 *x)
{
    mv_rc rc = MV_OK;
    unsigned char r[CA_SERIAL_LEN];
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

static mv_rc set_cn(X509_NAME *name, const char *cn)
{
    mv_rc rc = MV_OK;
    ENSURE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                      -1, 0) == 1,
           MV_ERR_INTERNAL);
out:
    return rc;
}

/* A v3 certificate for key, subject CN=cn, valid from a little before now for days. */
static mv_rc cert_new(EVP_PKEY *key, const char *cn, long days, X509 **out)
{
    mv_rc rc = MV_OK;
    X509 *x = X509_new();
    ENSURE(x != NULL, MV_ERR_INTERNAL);
    ENSURE(X509_set_version(x, X509_VERSION_3) == 1, MV_ERR_INTERNAL);
    CHECK(set_serial(x));
    ENSURE(X509_gmtime_adj(X509_getm_notBefore(x), -(long)CA_BACKDATE_SECS) != NULL,
           MV_ERR_INTERNAL);
    ENSURE(X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) != NULL, MV_ERR_INTERNAL);
    CHECK(set_cn(X509_get_subject_name(x), cn));
    ENSURE(X509_set_pubkey(x, key) == 1, MV_ERR_INTERNAL);
    *out = x;
    x = NULL;
out:
    X509_free(x);
    return rc;
}

/* Adds one extension from its OpenSSL config text (fixed strings only, never user input). */
static mv_rc add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    mv_rc rc = MV_OK;
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    ENSURE_MSG(ext != NULL, MV_ERR_INTERNAL, "ca: extension %d", nid);
    ENSURE(X509_add_ext(x, ext, -1) == 1, MV_ERR_INTERNAL);
out:
    X509_EXTENSION_free(ext);
    return rc;
}

static mv_rc push_dns(GENERAL_NAMES *gens, const char *prefix, const char *name)
{
    mv_rc rc = MV_OK;
    char buf[CA_MAX_DNS + 3];
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ENSURE(g != NULL && s != NULL, MV_ERR_INTERNAL);
    CHECK(mv_fmt(buf, sizeof buf, "%s%s", prefix, name));
    ENSURE(ASN1_STRING_set(s, buf, -1) == 1, MV_ERR_INTERNAL);
    GENERAL_NAME_set0_value(g, GEN_DNS, s);
    s = NULL;
    ENSURE(sk_GENERAL_NAME_push(gens, g) > 0, MV_ERR_INTERNAL);
    g = NULL;
out:
    ASN1_IA5STRING_free(s);
    GENERAL_NAME_free(g);
    return rc;
}

static mv_rc push_ip(GENERAL_NAMES *gens, const char *ip)
{
    mv_rc rc = MV_OK;
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_OCTET_STRING *o = a2i_IPADDRESS(ip);
    ENSURE(g != NULL && o != NULL, MV_ERR_INTERNAL);
    GENERAL_NAME_set0_value(g, GEN_IPADD, o);
    o = NULL;
    ENSURE(sk_GENERAL_NAME_push(gens, g) > 0, MV_ERR_INTERNAL);
    g = NULL;
out:
    ASN1_OCTET_STRING_free(o);
    GENERAL_NAME_free(g);
    return rc;
}

static int is_ip_literal(const char *s)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* DESIGN §8: SANs cover localhost, 127.0.0.1, ::1, the public URL's host, the vault suffix and
 * *.suffix. */
static mv_rc add_san(X509 *x, const char *suffix, const char *public_host)
{
    mv_rc rc = MV_OK;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    ENSURE(gens != NULL, MV_ERR_INTERNAL);
    CHECK(push_dns(gens, "", "localhost"));
    CHECK(push_ip(gens, "127.0.0.1"));
    CHECK(push_ip(gens, "::1"));
    if (public_host && *public_host && strcmp(public_host, "localhost") != 0 &&
        strcmp(public_host, suffix) != 0) {
        unsigned char a[16], lo4[16], lo6[16];
        int v4 = inet_pton(AF_INET, public_host, a) == 1;
        int v6 = !v4 && inet_pton(AF_INET6, public_host, a) == 1;
        inet_pton(AF_INET, "127.0.0.1", lo4);
        inet_pton(AF_INET6, "::1", lo6);
        if ((v4 && memcmp(a, lo4, 4) != 0) || (v6 && memcmp(a, lo6, 16) != 0))
            CHECK(push_ip(gens, public_host));
        else if (!v4 && !v6)
            CHECK(push_dns(gens, "", public_host));
    }
    CHECK(push_dns(gens, "", suffix));
    CHECK(push_dns(gens, "*.", suffix));
    ENSURE(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0) == 1, MV_ERR_INTERNAL);
out:
    GENERAL_NAMES_free(gens);
    return rc;
}

static mv_rc make_ca(EVP_PKEY *key, X509 **out)
{
    mv_rc rc = MV_OK;
    X509 *x = NULL;
    CHECK(cert_new(key, "mivault local CA", CA_DAYS, &x));
    ENSURE(X509_set_issuer_name(x, X509_get_subject_name(x)) == 1, MV_ERR_INTERNAL);
    CHECK(add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE"));
    CHECK(add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign"));
    CHECK(add_ext(x, x, NID_subject_key_identifier, "hash"));
    ENSURE(X509_sign(x, key, EVP_sha256()) > 0, MV_ERR_INTERNAL);
    *out = x;
    x = NULL;
out:
    X509_free(x);
    return rc;
}

static mv_rc make_server(EVP_PKEY *key, X509 *ca, EVP_PKEY *ca_key, const char *suffix,
                         const char *public_host, X509 **out)
{
    mv_rc rc = MV_OK;
    X509 *x = NULL;
    CHECK(cert_new(key, "localhost", SERVER_DAYS, &x));
    ENSURE(X509_set_issuer_name(x, X509_get_subject_name(ca)) == 1, MV_ERR_INTERNAL);
    CHECK(add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE"));
    CHECK(add_ext(x, ca, NID_key_usage, "critical,digitalSignature"));
    CHECK(add_ext(x, ca, NID_ext_key_usage, "serverAuth"));
    CHECK(add_ext(x, ca, NID_subject_key_identifier, "hash"));
    CHECK(add_ext(x, ca, NID_authority_key_identifier, "keyid:always"));
    CHECK(add_san(x, suffix, public_host));
    ENSURE(X509_sign(x, ca_key, EVP_sha256()) > 0, MV_ERR_INTERNAL);
    *out = x;
    x = NULL;
out:
    X509_free(x);
    return rc;
}

static mv_rc cert_pem(X509 *x, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char *p = NULL;
    BIO *bio = BIO_new(BIO_s_mem());
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    ENSURE(PEM_write_bio_X509(bio, x) == 1, MV_ERR_INTERNAL);
    long n = BIO_get_mem_data(bio, &p);
    ENSURE(n > 0 && p != NULL, MV_ERR_INTERNAL);
    CHECK(mv_buf_add(out, p, (size_t)n));
out:
    BIO_free(bio);
    return rc;
}

static mv_rc write_in(const char *dir, const char *name, const mv_buf *b, unsigned mode)
{
    mv_rc rc = MV_OK;
    char path[PATH_MAX];
    CHECK(mv_fmt(path, sizeof path, "%s/%s", dir, name));
    CHECK(mv_write_file(path, b->p, b->len, mode));
out:
    return rc;
}

mv_rc ca_create(mv_buf *cert_out, mv_buf *key_out)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;
    CHECK(keys_gen_ec_p256(&ca_key));
    CHECK(make_ca(ca_key, &ca));
    CHECK(cert_pem(ca, cert_out));
    CHECK(keys_private_pem(ca_key, key_out));
out:
    if (rc != MV_OK)
        ERR_clear_error();
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    return rc;
}

/* Checked before anything is made or written: they become SANs. */
static mv_rc names_ok(const char *vault_suffix, const char *public_host)
{
    mv_rc rc = MV_OK;
    ENSURE_MSG(vault_suffix && mv_dns_name_ok(vault_suffix, strlen(vault_suffix)), MV_ERR_BAD_REQUEST,
               "ca: vault DNS suffix is not a DNS name");
    ENSURE_MSG(!public_host || !*public_host || mv_dns_name_ok(public_host, strlen(public_host)) ||
                   is_ip_literal(public_host),
               MV_ERR_BAD_REQUEST, "ca: the public host is neither a DNS name nor an IP address");
out:
    return rc;
}

static mv_rc read_in(const char *dir, const char *name, char **data, size_t *len)
{
    mv_rc rc = MV_OK;
    char path[PATH_MAX];
    CHECK(mv_fmt(path, sizeof path, "%s/%s", dir, name));
    CHECK(mv_read_file(path, CA_MAX_PEM, data, len));
out:
    return rc;
}

mv_rc ca_server_cert(const char *dir, const char *vault_suffix, const char *public_host)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *ca_key = NULL, *srv_key = NULL;
    X509 *ca = NULL, *srv = NULL;
    BIO *bio = NULL;
    char *ca_text = NULL, *key_text = NULL;
    size_t ca_len = 0, key_len = 0;
    mv_buf srv_pem, srv_keypem;
    mv_buf_init(&srv_pem, CA_MAX_PEM);
    mv_buf_init(&srv_keypem, CA_MAX_PEM);
    ENSURE_MSG(dir && *dir, MV_ERR_BAD_REQUEST, "ca: no directory");
    CHECK(names_ok(vault_suffix, public_host));
    CHECK(read_in(dir, "ca.pem", &ca_text, &ca_len));
    CHECK(read_in(dir, "ca.key", &key_text, &key_len));
    ENSURE(ca_len <= INT_MAX, MV_ERR_INTERNAL);
    bio = BIO_new_mem_buf(ca_text, (int)ca_len);
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    ENSURE_MSG(ca != NULL, MV_ERR_INTERNAL, "ca: %s/ca.pem is not a certificate", dir);
    CHECK(keys_from_private_pem(key_text, key_len, &ca_key));
    ENSURE_MSG(X509_check_private_key(ca, ca_key) == 1, MV_ERR_INTERNAL,
               "ca: %s/ca.key is not the key of ca.pem", dir);
    CHECK(keys_gen_ec_p256(&srv_key));
    CHECK(make_server(srv_key, ca, ca_key, vault_suffix, public_host, &srv));
    CHECK(cert_pem(srv, &srv_pem));
    CHECK(cert_pem(ca, &srv_pem)); /* chain: server, then CA */
    CHECK(keys_private_pem(srv_key, &srv_keypem));
    /* Key first: a certificate file on disk always has its key next to it. */
    CHECK(write_in(dir, "server.key", &srv_keypem, 0600));
    CHECK(write_in(dir, "server.pem", &srv_pem, 0644));
out:
    if (rc != MV_OK)
        ERR_clear_error();
    BIO_free(bio);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(srv_key);
    X509_free(ca);
    X509_free(srv);
    free(ca_text);
    if (key_text) {
        OPENSSL_cleanse(key_text, key_len);
        free(key_text);
    }
    mv_buf_free(&srv_pem);
    mv_buf_free_secret(&srv_keypem);
    return rc;
}

mv_rc ca_init(const char *dir, const char *vault_suffix, const char *public_host)
{
    mv_rc rc = MV_OK;
    mv_buf ca_pem, ca_keypem;
    mv_buf_init(&ca_pem, CA_MAX_PEM);
    mv_buf_init(&ca_keypem, CA_MAX_PEM);
    ENSURE_MSG(dir && *dir, MV_ERR_BAD_REQUEST, "ca: no directory");
    CHECK(names_ok(vault_suffix, public_host));
    CHECK(ca_create(&ca_pem, &ca_keypem));
    CHECK(write_in(dir, "ca.key", &ca_keypem, 0600));
    CHECK(write_in(dir, "ca.pem", &ca_pem, 0644));
    CHECK(ca_server_cert(dir, vault_suffix, public_host));
out:
    mv_buf_free(&ca_pem);
    mv_buf_free_secret(&ca_keypem);
    return rc;
}

mv_rc ca_self_signed_b64(EVP_PKEY *key, mv_buf *out)
{
    mv_rc rc = MV_OK;
    X509 *x = NULL;
    unsigned char *der = NULL;
    ENSURE(key != NULL, MV_ERR_INTERNAL);
    CHECK(cert_new(key, "mivault token signing", SIGNING_CERT_DAYS, &x));
    ENSURE(X509_set_issuer_name(x, X509_get_subject_name(x)) == 1, MV_ERR_INTERNAL);
    CHECK(add_ext(x, x, NID_basic_constraints, "critical,CA:FALSE"));
    CHECK(add_ext(x, x, NID_key_usage, "critical,digitalSignature"));
    CHECK(add_ext(x, x, NID_subject_key_identifier, "hash"));
    ENSURE(X509_sign(x, key, EVP_sha256()) > 0, MV_ERR_INTERNAL);
    int n = i2d_X509(x, &der);
    ENSURE(n > 0, MV_ERR_INTERNAL);
    /* RFC 7517 §4.7: x5c members are base64 (not base64url) DER. */
    CHECK(b64_encode(out, der, (size_t)n));
out:
    if (rc != MV_OK)
        ERR_clear_error();
    OPENSSL_free(der);
    X509_free(x);
    return rc;
}

/* RFC 7469 §2.4 pins the same bytes (the DER SubjectPublicKeyInfo) for the same reason: a CA
 * re-issued with the same key still matches, anything else does not. */
mv_rc ca_spki_sha256(const char *pem, size_t len, unsigned char out[32])
{
    mv_rc rc = MV_OK;
    BIO *bio = NULL;
    X509 *cert = NULL;
    unsigned char *der = NULL;
    ENSURE(len <= CA_MAX_PEM && len <= INT_MAX, MV_ERR_LIMIT);
    bio = BIO_new_mem_buf(pem, (int)len);
    ENSURE(bio != NULL, MV_ERR_INTERNAL);
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    ENSURE_MSG(cert != NULL, MV_ERR_BAD_REQUEST, "no PEM certificate");
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    ENSURE(n > 0 && der != NULL, MV_ERR_INTERNAL);
    ENSURE(EVP_Digest(der, (size_t)n, out, NULL, EVP_sha256(), NULL) == 1, MV_ERR_INTERNAL);
out:
    ERR_clear_error();
    OPENSSL_free(der);
    X509_free(cert);
    BIO_free(bio);
    return rc;
}

mv_rc ca_file_spki_sha256(const char *path, unsigned char out[32])
{
    mv_rc rc = MV_OK;
    char *pem = NULL;
    size_t len = 0;
    CHECK(mv_read_file(path, CA_MAX_PEM, &pem, &len));
    CHECK(ca_spki_sha256(pem, len, out));
out:
    free(pem);
    return rc;
}
