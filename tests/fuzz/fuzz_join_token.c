/* fuzz_join_token.c: join tokens (src/crypto/join_token.c), which the enrollment endpoint reads
 * from an unauthenticated request body (src/authority/enroll.c: whole token or its secret part)
 * and the agent from its command line.
 *
 * Input: one byte (bit 0: allow the bare secret part, as enrollment does), then the text.
 * Checked: a parsed token's secret part is "mvj1." and 43 base64url characters; a pin is there
 * exactly when the full form was given; and formatting the decoded secret and pin again gives a
 * token that parses to the same bytes. */
#include <string.h>

#include "common/b64.h"
#include "crypto/join_token.h"
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
    if (size < 1)
        return 0;
    int bare = data[0] & 1;
    struct join_token t, again;
    if (join_token_parse((const char *)data + 1, size - 1, bare, &t) != MV_OK)
        return 0;
    FUZZ_ASSERT(strlen(t.secret) == JOIN_TOKEN_SECRET_LEN);
    FUZZ_ASSERT(memcmp(t.secret, JOIN_TOKEN_PREFIX, sizeof JOIN_TOKEN_PREFIX - 1) == 0);
    FUZZ_ASSERT(bare || t.has_pin);
    if (!t.has_pin) {
        join_token_wipe(&t);
        return 0;
    }
    mv_buf secret;
    mv_buf_init(&secret, JOIN_TOKEN_SECRET_BYTES);
    FUZZ_ASSERT(b64url_decode(&secret, t.secret + sizeof JOIN_TOKEN_PREFIX - 1,
                              JOIN_TOKEN_B64_LEN) == MV_OK);
    FUZZ_ASSERT(secret.len == JOIN_TOKEN_SECRET_BYTES);
    char text[JOIN_TOKEN_MAX];
    FUZZ_ASSERT(join_token_format((const unsigned char *)secret.p, t.pin, text) == MV_OK);
    FUZZ_ASSERT(join_token_parse(text, strlen(text), 0, &again) == MV_OK);
    FUZZ_ASSERT(again.has_pin && memcmp(again.pin, t.pin, sizeof t.pin) == 0);
    mv_buf back;
    mv_buf_init(&back, JOIN_TOKEN_SECRET_BYTES);
    FUZZ_ASSERT(b64url_decode(&back, again.secret + sizeof JOIN_TOKEN_PREFIX - 1,
                              JOIN_TOKEN_B64_LEN) == MV_OK);
    FUZZ_ASSERT(back.len == secret.len && memcmp(back.p, secret.p, secret.len) == 0);
    mv_buf_free_secret(&back);
    mv_buf_free_secret(&secret);
    join_token_wipe(&again);
    join_token_wipe(&t);
    return 0;
}
