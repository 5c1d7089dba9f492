/* fuzz_jwt.c: compact JWS / JWT parsing and verification (src/crypto/jws.c), what every bearer
 * token (vault, control plane) and every client assertion (token endpoint) goes through.
 *
 * The input is the token. jwt_parse runs with both algorithms allowed, as the token endpoint
 * does; a parsed token is then verified, with the one-shot and the reusable verifier, against
 * an RSA-2048 and a P-256 key made once at start-up. Checked: a refused token leaves nothing
 * behind; a parsed one has objects for header and claims, an allowed alg, a kid that is the
 * header's, the signing input that is the token's first two parts, and a signature of the
 * alg's length; and no input verifies (that would be a forgery). */
#include <jansson.h>
#include <string.h>

#include "common/limits.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "fuzz.h"

static EVP_PKEY *rsa_key, *ec_key;
static jws_verifier *rsa_v, *ec_v;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (keys_gen_rsa(2048, &rsa_key) != MV_OK || keys_gen_ec_p256(&ec_key) != MV_OK ||
        jws_verifier_new(rsa_key, &rsa_v) != MV_OK || jws_verifier_new(ec_key, &ec_v) != MV_OK)
        fuzz_fail("key setup");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jwt t;
    const char *tok = (const char *)data;
    if (jwt_parse(tok, size, JWS_ALLOW(JWS_RS256) | JWS_ALLOW(JWS_ES256), &t) != MV_OK) {
        FUZZ_ASSERT(t.header == NULL && t.claims == NULL && t.signing_input.p == NULL &&
                    t.signature.p == NULL && t.kid == NULL);
        jwt_free(&t);
        return 0;
    }
    FUZZ_ASSERT(size <= MV_MAX_TOKEN_BYTES);
    FUZZ_ASSERT(json_is_object(t.header) && json_is_object(t.claims));
    FUZZ_ASSERT(t.alg == JWS_RS256 || t.alg == JWS_ES256);
    const json_t *kid = json_object_get(t.header, "kid");
    FUZZ_ASSERT(kid ? t.kid == json_string_value(kid) : t.kid == NULL);
    /* The signing input is the token up to its second '.'. */
    FUZZ_ASSERT(t.signing_input.len < size);
    FUZZ_ASSERT(memcmp(t.signing_input.p, tok, t.signing_input.len) == 0);
    FUZZ_ASSERT(tok[t.signing_input.len] == '.');
    if (t.alg == JWS_ES256)
        FUZZ_ASSERT(t.signature.len == 64);
    else
        FUZZ_ASSERT(t.signature.len >= 256);
    long long v;
    if (jwt_claim_int(&t, "exp", &v) == MV_OK)
        FUZZ_ASSERT(json_is_integer(json_object_get(t.claims, "exp")));
    (void)jwt_claim_str(&t, "iss");
    FUZZ_ASSERT(jwt_verify(&t, rsa_key) != MV_OK);
    FUZZ_ASSERT(jwt_verify(&t, ec_key) != MV_OK);
    FUZZ_ASSERT(jwt_verify_with(&t, rsa_v) != MV_OK);
    FUZZ_ASSERT(jwt_verify_with(&t, ec_v) != MV_OK);
    jwt_free(&t);
    return 0;
}
