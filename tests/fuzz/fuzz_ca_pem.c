/* fuzz_ca_pem.c: the CA certificate an agent fetches, unverified, before it checks it against
 * its join token's pin (src/agent/join.c → ca_spki_sha256 in src/crypto/ca.c).
 *
 * The input is the reply body. The PEM and X.509 parsing itself is OpenSSL's (not instrumented
 * here, so the fuzzer gets no coverage feedback from inside it); what runs under the sanitizers
 * is mivault's handling of the buffer, the DER re-encoding and the digest. Checked: the same
 * bytes give the same pin twice, and a result is a success, a refusal or a limit, never an
 * internal error. */
#include <string.h>

#include "crypto/ca.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char a[32], b[32];
    mv_rc rc = ca_spki_sha256((const char *)data, size, a);
    FUZZ_ASSERT(rc == MV_OK || rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT);
    if (rc == MV_OK) {
        FUZZ_ASSERT(ca_spki_sha256((const char *)data, size, b) == MV_OK);
        FUZZ_ASSERT(memcmp(a, b, sizeof a) == 0);
    }
    return 0;
}
