/* fuzz_jwk.c: public JWK import (src/crypto/jwk.c), as the enrollment endpoint reads a node's
 * key (src/authority/enroll.c: JSON with duplicate members refused, then jwk_to_public).
 *
 * The input is the JWK's JSON text. Checked: an imported key is an RSA key of 2048..8192 bits or
 * a P-256 key, and exporting it again (jwk_from_public) gives back the members it came from,
 * byte for byte (the parser accepts only canonical base64url, so there is one text per key). */
#include <jansson.h>
#include <string.h>

#include "crypto/jwk.h"
#include "crypto/keys.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void same_member(const json_t *a, const json_t *b, const char *name)
{
    const char *x = json_string_value(json_object_get(a, name));
    const char *y = json_string_value(json_object_get(b, name));
    FUZZ_ASSERT(x && y && strcmp(x, y) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    EVP_PKEY *k = NULL;
    json_t *again = NULL;
    if (!in)
        return 0;
    if (jwk_to_public(in, &k) != MV_OK) {
        FUZZ_ASSERT(k == NULL);
        goto out;
    }
    FUZZ_ASSERT(k != NULL);
    FUZZ_ASSERT((keys_is_rsa(k) && EVP_PKEY_get_bits(k) >= 2048 && EVP_PKEY_get_bits(k) <= 8192) ||
                keys_is_ec_p256(k));
    FUZZ_ASSERT(jwk_from_public(k, NULL, &again) == MV_OK);
    if (keys_is_rsa(k)) {
        same_member(in, again, "n");
        same_member(in, again, "e");
    } else {
        same_member(in, again, "x");
        same_member(in, again, "y");
    }
out:
    json_decref(again);
    EVP_PKEY_free(k);
    json_decref(in);
    return 0;
}
