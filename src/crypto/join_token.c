/* join_token.c: format and parse join tokens (see join_token.h for the format and why). */
#include "crypto/join_token.h"

#include <openssl/crypto.h>
#include <string.h>

#include "common/b64.h"
#include "common/buf.h"

static int b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static int b64url_run(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!b64url_char(s[i]))
            return 0;
    return 1;
}

static int space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

mv_rc join_token_format(const unsigned char secret[JOIN_TOKEN_SECRET_BYTES],
                        const unsigned char pin[32], char out[JOIN_TOKEN_MAX])
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, JOIN_TOKEN_MAX - 1);
    out[0] = '\0';
    CHECK(mv_buf_adds(&b, JOIN_TOKEN_PREFIX));
    CHECK(b64url_encode(&b, secret, JOIN_TOKEN_SECRET_BYTES));
    CHECK(mv_buf_adds(&b, JOIN_TOKEN_PIN_TAG));
    CHECK(b64url_encode(&b, pin, 32));
    ENSURE(b.len == JOIN_TOKEN_LEN, MV_ERR_INTERNAL);
    memcpy(out, b.p, b.len);
    out[b.len] = '\0';
out:
    mv_buf_free_secret(&b);
    return rc;
}

mv_rc join_token_parse(const char *s, size_t len, int allow_bare, struct join_token *out)
{
    mv_rc rc = MV_OK;
    mv_buf pin;
    mv_buf_init(&pin, 64);
    memset(out, 0, sizeof *out);
    while (len && space(*s))
        s++, len--;
    while (len && space(s[len - 1]))
        len--;
    const size_t plen = sizeof JOIN_TOKEN_PREFIX - 1, tlen = sizeof JOIN_TOKEN_PIN_TAG - 1;
    ENSURE_MSG(len == JOIN_TOKEN_LEN || (allow_bare && len == JOIN_TOKEN_SECRET_LEN),
               MV_ERR_BAD_REQUEST, "a join token is %zu characters (mvj1.<secret>.sha256:<pin>)",
               (size_t)JOIN_TOKEN_LEN);
    ENSURE_MSG(memcmp(s, JOIN_TOKEN_PREFIX, plen) == 0 && b64url_run(s + plen, JOIN_TOKEN_B64_LEN),
               MV_ERR_BAD_REQUEST, "not a join token (mvj1.<secret>.sha256:<pin>)");
    memcpy(out->secret, s, JOIN_TOKEN_SECRET_LEN);
    out->secret[JOIN_TOKEN_SECRET_LEN] = '\0';
    if (len == JOIN_TOKEN_SECRET_LEN)
        goto out;
    const char *p = s + JOIN_TOKEN_SECRET_LEN;
    ENSURE_MSG(memcmp(p, JOIN_TOKEN_PIN_TAG, tlen) == 0 && b64url_run(p + tlen, JOIN_TOKEN_B64_LEN),
               MV_ERR_BAD_REQUEST, "the join token's CA pin is malformed");
    ENSURE_MSG(b64url_decode(&pin, p + tlen, JOIN_TOKEN_B64_LEN) == MV_OK && pin.len == 32,
               MV_ERR_BAD_REQUEST, "the join token's CA pin is malformed");
    memcpy(out->pin, pin.p, 32);
    out->has_pin = 1;
out:
    if (rc != MV_OK)
        join_token_wipe(out);
    mv_buf_free(&pin);
    return rc;
}

void join_token_wipe(struct join_token *t) { OPENSSL_cleanse(t, sizeof *t); }
