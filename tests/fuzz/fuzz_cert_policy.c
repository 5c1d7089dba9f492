/* fuzz_cert_policy.c: CertificatePolicy bodies as clients send them (create, import, PATCH
 * /policy; src/vault/certpolicy.c), and what a normalised policy asks of the X.509 layer.
 *
 * Input: one byte (bit 1 set: the rest is a certificate restore body for
 * vault_cert_backup_open with a fixed data key, which must open nothing it did not seal; else
 * bit 0: merge over a stored base policy, as PATCH /policy does), then JSON.
 * Checked: a refusal is MV_ERR_BAD_REQUEST with a fixed reason; an accepted policy normalises to
 * itself again (idempotent) with a subject or a SAN, a key size or curve Key Vault knows, a
 * content type of the two, and validity 1..1200 months; its spec makes a self-signed certificate
 * for a fixed P-256 key, or a refusal, never an internal error. */
#include <jansson.h>
#include <string.h>

#include "crypto/certs.h"
#include "fuzz.h"
#include "vault/vault_internal.h"

#define NOW 1767225600

static EVP_PKEY *key;
static json_t *base;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    const char *why = NULL;
    json_t *in = json_loads("{\"issuer\":{\"name\":\"Self\"},\"x509_props\":{\"subject\":\"CN=base\"}}",
                            0, NULL);
    if (certs_gen_key("EC", 0, "P-256", &key) != MV_OK || !in ||
        vault_cert_policy_normalize(in, NULL, NOW, &base, &why) != MV_OK)
        abort();
    json_decref(in);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 1 && (data[0] & 2)) {
        static const unsigned char dk[32] = {1, 2, 3};
        json_t *doc = NULL;
        mv_rc r = vault_cert_backup_open(dk, (const char *)data + 1, size - 1, &doc);
        FUZZ_ASSERT(r == MV_ERR_BAD_REQUEST || r == MV_ERR_LIMIT); /* nothing sealed opens */
        FUZZ_ASSERT(doc == NULL);
        return 0;
    }
    if (size < 1 || !vault_json_depth_ok((const char *)data + 1, size - 1, 16))
        return 0;
    json_t *in = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, NULL);
    if (!in)
        return 0;
    json_t *out = NULL, *again = NULL;
    const char *why = NULL;
    mv_rc rc = vault_cert_policy_normalize(in, (data[0] & 1) ? base : NULL, NOW, &out, &why);
    FUZZ_ASSERT(rc == MV_OK || rc == MV_ERR_BAD_REQUEST);
    if (rc != MV_OK) {
        FUZZ_ASSERT(why != NULL && *why && out == NULL);
    } else {
        FUZZ_ASSERT(vault_cert_policy_normalize(out, NULL, NOW, &again, &why) == MV_OK);
        FUZZ_ASSERT(json_equal(out, again));
        const json_t *xp = json_object_get(out, "x509_props");
        FUZZ_ASSERT(json_object_get(xp, "subject") || json_object_get(xp, "sans"));
        json_int_t m = json_integer_value(json_object_get(xp, "validity_months"));
        FUZZ_ASSERT(m >= 1 && m <= CERTS_MAX_MONTHS);
        const char *ct = json_string_value(
            json_object_get(json_object_get(out, "secret_props"), "contentType"));
        FUZZ_ASSERT(ct && (strcmp(ct, "application/x-pkcs12") == 0 ||
                           strcmp(ct, "application/x-pem-file") == 0));
        struct certs_spec spec;
        FUZZ_ASSERT(vault_cert_policy_spec(out, &spec) == MV_OK);
        X509 *x = NULL;
        mv_rc r2 = certs_self_signed(key, &spec, NOW, &x);
        FUZZ_ASSERT(r2 == MV_OK || r2 == MV_ERR_BAD_REQUEST);
        FUZZ_ASSERT((r2 == MV_OK) == (x != NULL));
        X509_free(x);
    }
    json_decref(in);
    json_decref(out);
    json_decref(again);
    return 0;
}
