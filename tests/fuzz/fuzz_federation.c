/* fuzz_federation.c: what the token endpoint parses for service principals and workload
 * identity federation (src/authority/federation.c, clients.c, src/crypto/cert.c): an external
 * issuer's discovery document and JWKS (fetched over the network: untrusted), an external or
 * certificate client assertion (jwt_parse with every RSA algorithm and ES256) and its x5t /
 * x5t#S256 thumbprints, and a certificate PEM registered through the control plane.
 *
 * Input: one byte choosing the parser, then its bytes (for the JWKS: a kid line, then the
 * document). Checked: a parsed discovery document gives an https jwks_uri; a key taken from a
 * JWKS is RSA of at least 2048 bits; a parsed JWT's alg is in the allowlist; a thumbprint
 * decodes to exactly 20 or 32 bytes of lower-case hex; a parsed certificate has an RSA key of at
 * least 2048 bits and hex thumbprints. */
#include <jansson.h>
#include <string.h>

#include "authority/internal.h"
#include "crypto/cert.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "fuzz.h"

#define ISSUER "https://issuer.example/cluster1"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void check_hex(const char *h, size_t n)
{
    FUZZ_ASSERT(strlen(h) == n);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: {
        char uri[MV_MAX_URL];
        if (authority_fed_discovery_parse(p, n, ISSUER, uri) == MV_OK)
            FUZZ_ASSERT(strncmp(uri, "https://", 8) == 0 && strlen(uri) > 8);
        break;
    }
    case 1: {
        const char *nl = memchr(p, '\n', n);
        char kid[128];
        const char *k = NULL;
        if (nl && (size_t)(nl - p) < sizeof kid) {
            memcpy(kid, p, (size_t)(nl - p));
            kid[nl - p] = '\0';
            k = kid[0] ? kid : NULL;
            n -= (size_t)(nl - p) + 1;
            p = nl + 1;
        }
        EVP_PKEY *key = NULL;
        if (authority_fed_jwks_key(p, n, k, &key) == MV_OK) {
            FUZZ_ASSERT(key && keys_is_rsa(key) && EVP_PKEY_get_bits(key) >= 2048);
        } else {
            FUZZ_ASSERT(key == NULL);
        }
        EVP_PKEY_free(key);
        break;
    }
    case 2: {
        jwt t;
        if (jwt_parse(p, n, JWS_ALLOW(JWS_ES256) | JWS_ALLOW_RSA, &t) == MV_OK) {
            FUZZ_ASSERT(t.alg >= JWS_RS256 && t.alg <= JWS_PS512);
            const char *x5t = json_string_value(json_object_get(t.header, "x5t"));
            const char *x5ts = json_string_value(json_object_get(t.header, "x5t#S256"));
            char h1[41], h2[65];
            if (x5t && cert_thumb_hex(x5t, 20, h1))
                check_hex(h1, 40);
            if (x5ts && cert_thumb_hex(x5ts, 32, h2))
                check_hex(h2, 64);
            (void)jwt_claim_str(&t, "iss");
            (void)jwt_claim_str(&t, "sub");
        }
        jwt_free(&t);
        break;
    }
    default: {
        EVP_PKEY *key = NULL;
        struct cert_info ci;
        if (cert_parse_pem(p, n, &key, &ci) == MV_OK) {
            FUZZ_ASSERT(key && keys_is_rsa(key) && EVP_PKEY_get_bits(key) >= 2048);
            check_hex(ci.sha1_hex, 40);
            check_hex(ci.sha256_hex, 64);
        }
        EVP_PKEY_free(key);
        break;
    }
    }
    return 0;
}
