/* certs.h: the X.509 work of Key Vault certificates: key generation for a policy, self-signed
 * certificates and CSRs from a policy's x509 properties, PKCS#12 (no password) and PEM export,
 * PFX/PEM import, and the merge of a signed chain with a pending key. OpenSSL 3 only.
 *
 * Everything here is pure (no store, no clock but the `now` passed in). Private keys cross this
 * interface as EVP_PKEYs; their serialised forms are secrets (free with mv_buf_free_secret). */
#ifndef MV_CRYPTO_CERTS_H
#define MV_CRYPTO_CERTS_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>

#include "common/buf.h"

#define CERTS_MAX_NAMES 64          /* SAN entries of each kind, EKUs */
#define CERTS_MAX_SUBJECT 1024      /* subject DN text */
#define CERTS_MAX_CHAIN 10          /* certificates in an imported or merged chain */
#define CERTS_MAX_IMPORT (256 * 1024) /* an import value (PFX base64 or PEM text) */
#define CERTS_MAX_MONTHS 1200

/* key_usage bits, in the order of the X.509 KeyUsage BIT STRING (RFC 5280 §4.2.1.3). */
enum {
    CERTS_KU_DIGITAL_SIGNATURE = 1 << 0,
    CERTS_KU_NON_REPUDIATION = 1 << 1,
    CERTS_KU_KEY_ENCIPHERMENT = 1 << 2,
    CERTS_KU_DATA_ENCIPHERMENT = 1 << 3,
    CERTS_KU_KEY_AGREEMENT = 1 << 4,
    CERTS_KU_KEY_CERT_SIGN = 1 << 5,
    CERTS_KU_CRL_SIGN = 1 << 6,
    CERTS_KU_ENCIPHER_ONLY = 1 << 7,
    CERTS_KU_DECIPHER_ONLY = 1 << 8,
};
/* "digitalSignature" ... "decipherOnly" (Key Vault's KeyUsageType names, exact case) → bit;
 * 0 if unknown. */
unsigned certs_ku_bit(const char *name);
/* The name of one bit (a single CERTS_KU_*), NULL if not one. */
const char *certs_ku_name(unsigned bit);

struct certs_spec {
    const char *subject;              /* "CN=a, O=b" (may be NULL or "" when SANs are given) */
    const char *dns[CERTS_MAX_NAMES];
    size_t n_dns;
    const char *emails[CERTS_MAX_NAMES];
    size_t n_emails;
    const char *upns[CERTS_MAX_NAMES];
    size_t n_upns;
    const char *ekus[CERTS_MAX_NAMES]; /* dotted OIDs */
    size_t n_ekus;
    unsigned key_usage;                /* CERTS_KU_* bits; 0 = no extension */
    int validity_months;               /* 1..CERTS_MAX_MONTHS */
};

/* A key for a policy: kty "RSA"/"RSA-HSM" with key_size 2048/3072/4096 (0 = 2048), or
 * "EC"/"EC-HSM" with crv "P-256"/"P-384"/"P-521"/"P-256K" (NULL = P-256). Anything else is
 * MV_ERR_BAD_REQUEST. */
MV_MUST_CHECK mv_rc certs_gen_key(const char *kty, int key_size, const char *crv, EVP_PKEY **out);
/* Checks a subject DN text parses ("CN=x, O=y": attributes CN, O, OU, L, ST, C, E, DC,
 * SERIALNUMBER, STREET; values may use \, for a comma). */
int certs_subject_ok(const char *subject);
/* A v3 self-signed certificate for key: serial random, notBefore = now, notAfter = now +
 * validity months (same day of month, clamped), SKI, the SANs, key usage (critical), EKUs.
 * MV_ERR_BAD_REQUEST if the spec does not make a certificate (bad subject, bad OID, no subject
 * and no SAN). */
MV_MUST_CHECK mv_rc certs_self_signed(EVP_PKEY *key, const struct certs_spec *spec, int64_t now,
                                      X509 **out);
/* A PKCS#10 request for key with the spec's subject and extensions, DER into out. */
MV_MUST_CHECK mv_rc certs_csr(EVP_PKEY *key, const struct certs_spec *spec, mv_buf *out);

/* PKCS#12 of key (may be NULL: certificates only) and chain (leaf first), no password (MAC
 * keyed with the empty password, bags not encrypted), DER into out (a secret). */
MV_MUST_CHECK mv_rc certs_pkcs12(EVP_PKEY *key, STACK_OF(X509) *chain, mv_buf *out);
/* PEM: the PKCS#8 private key (if key) then each certificate of the chain. A secret. */
MV_MUST_CHECK mv_rc certs_pem(EVP_PKEY *key, STACK_OF(X509) *chain, mv_buf *out);
/* The chain as PEM certificates only (what the store keeps in clear). */
MV_MUST_CHECK mv_rc certs_chain_pem(STACK_OF(X509) *chain, mv_buf *out);
/* Parses PEM certificates (nothing else allowed) into a chain. */
MV_MUST_CHECK mv_rc certs_chain_from_pem(const char *pem, size_t len, STACK_OF(X509) **out);

enum certs_format { CERTS_FMT_PKCS12 = 1, CERTS_FMT_PEM = 2 };
/* An import value as clients send it (reference: Python sends standard base64 of the file,
 * JS and az the raw PEM text for PEM): raw PEM text, or base64 of PEM text, or base64 of a
 * PKCS#12 (opened with password; NULL = none/empty). Gives the private key and the chain with
 * the certificate of that key first. MV_ERR_BAD_REQUEST for anything that does not hold exactly
 * one private key and a certificate for it (message in *why, fixed text). */
MV_MUST_CHECK mv_rc certs_import(const char *value, size_t len, const char *password,
                                 EVP_PKEY **key, STACK_OF(X509) **chain, enum certs_format *fmt,
                                 const char **why);
/* A merge: x5c (standard base64 DER certificates) whose certificate for key's public key
 * becomes the leaf (first) of the chain. MV_ERR_BAD_REQUEST (*why) if none matches. */
MV_MUST_CHECK mv_rc certs_merge(EVP_PKEY *key, const char *const *x5c, size_t n,
                                STACK_OF(X509) **chain, const char **why);

/* base64url (unpadded) SHA-1 of the DER certificate: 27 characters. */
MV_MUST_CHECK mv_rc certs_x5t(X509 *x, char out[32]);
/* DER of x into out (appended). */
MV_MUST_CHECK mv_rc certs_der(X509 *x, mv_buf *out);
/* notBefore / notAfter as Unix seconds. */
MV_MUST_CHECK mv_rc certs_validity(X509 *x, int64_t *nbf, int64_t *exp);
/* What an imported certificate says, for the policy Key Vault derives from it. The strings
 * point into *d and live until certs_desc_free. */
struct certs_desc {
    char subject[CERTS_MAX_SUBJECT];  /* "CN=a, O=b" */
    struct certs_spec spec;           /* subject, dns, emails, upns, ekus, key_usage, months */
    char *strings;                    /* backing storage */
    int is_ec;
    int key_size;                     /* RSA bits */
    const char *crv;                  /* EC curve name, NULL for RSA */
};
MV_MUST_CHECK mv_rc certs_describe(X509 *x, struct certs_desc *d);
void certs_desc_free(struct certs_desc *d);
/* EVP_PKEY_eq on the public halves. */
int certs_key_matches(X509 *x, EVP_PKEY *key);

/* PKCS#8 DER of key (a secret) and back. */
MV_MUST_CHECK mv_rc certs_key_der(EVP_PKEY *key, mv_buf *out);
MV_MUST_CHECK mv_rc certs_key_from_der(const unsigned char *der, size_t len, EVP_PKEY **out);

#endif
