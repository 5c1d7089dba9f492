/* fuzz_cert_import.c: the value of a certificate import (POST /certificates/{name}/import) and
 * the x5c of a merge, both straight from the client (src/crypto/certs.c: certs_import,
 * certs_merge).
 *
 * The first byte picks the password (none, "", "pw"); the rest is the value, sniffed as PEM
 * text, base64 of PEM or base64 of a PKCS#12. OpenSSL's ASN.1 and PKCS#12 parsing is not
 * instrumented here; what runs under the sanitizers is mivault's sniffing, base64 handling,
 * PEM block walk, chain building and leaf selection. Checked: a result is a success or a
 * refusal (400 / limit), never an internal error; a success has a key and a chain whose first
 * certificate is that key's; the same input gives the same answer twice. The same bytes, split
 * at newlines, are also handed to certs_merge as x5c entries with a fixed key. */
#include <openssl/evp.h>
#include <string.h>

#include "crypto/certs.h"
#include "fuzz.h"

static EVP_PKEY *merge_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (certs_gen_key("EC", 0, "P-256", &merge_key) != MV_OK)
        abort();
    return 0;
}

static mv_rc once(const char *v, size_t n, const char *pw, int *nchain)
{
    EVP_PKEY *k = NULL;
    STACK_OF(X509) *ch = NULL;
    enum certs_format fmt = 0;
    const char *why = NULL;
    mv_rc rc = certs_import(v, n, pw, &k, &ch, &fmt, &why);
    FUZZ_ASSERT(rc == MV_OK || rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT);
    if (rc == MV_OK) {
        FUZZ_ASSERT(k != NULL && ch != NULL && sk_X509_num(ch) >= 1);
        FUZZ_ASSERT(certs_key_matches(sk_X509_value(ch, 0), k));
        FUZZ_ASSERT(fmt == CERTS_FMT_PEM || fmt == CERTS_FMT_PKCS12);
        *nchain = sk_X509_num(ch);
    } else {
        FUZZ_ASSERT(k == NULL && ch == NULL && why != NULL);
    }
    EVP_PKEY_free(k);
    sk_X509_pop_free(ch, X509_free);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const PW[] = {NULL, "", "pw"};
    const char *pw = PW[data[0] % 3];
    char *v = fuzz_str(data + 1, size - 1);
    int a = 0, b = 0;
    mv_rc r1 = once(v, size - 1, pw, &a);
    mv_rc r2 = once(v, size - 1, pw, &b);
    FUZZ_ASSERT(r1 == r2 && a == b);

    /* merge: lines as x5c entries */
    const char *x5c[CERTS_MAX_CHAIN + 1];
    size_t n = 0;
    for (char *p = v, *save = NULL, *tok; n <= CERTS_MAX_CHAIN && (tok = strtok_r(p, "\n", &save));
         p = NULL)
        x5c[n++] = tok;
    STACK_OF(X509) *ch = NULL;
    const char *why = NULL;
    mv_rc m = certs_merge(merge_key, x5c, n, &ch, &why);
    FUZZ_ASSERT(m == MV_OK || m == MV_ERR_BAD_REQUEST);
    if (m == MV_OK)
        FUZZ_ASSERT(certs_key_matches(sk_X509_value(ch, 0), merge_key));
    sk_X509_pop_free(ch, X509_free);
    free(v);
    return 0;
}
