/* fuzz_b64.c: base64 and base64url decoding (src/common/b64.c), under JWT parts, JWK members,
 * backup blobs, $skiptoken and the sealed keys of the state directory.
 *
 * The first byte picks the alphabet and an output cap, the rest is the text. Checked: a decode
 * stays within its cap (else MV_ERR_LIMIT) and yields at most 3 bytes per 4 characters; what
 * decodes re-encodes to text that decodes to the same bytes; and any bytes encode to text that
 * decodes back to them. */
#include <string.h>

#include "common/b64.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

typedef mv_rc (*codec)(mv_buf *, const void *, size_t);
typedef mv_rc (*decoder)(mv_buf *, const char *, size_t);

static void encode_decode(codec enc, decoder dec, const void *p, size_t n)
{
    mv_buf text, back;
    mv_buf_init(&text, 2 * n + 8);
    mv_buf_init(&back, n + 8);
    FUZZ_ASSERT(enc(&text, p, n) == MV_OK);
    FUZZ_ASSERT(dec(&back, text.p, text.len) == MV_OK);
    FUZZ_ASSERT(back.len == n && (n == 0 || memcmp(back.p, p, n) == 0));
    mv_buf_free(&text);
    mv_buf_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int url = data[0] & 1;
    size_t cap = (data[0] & 2) ? 16 : 1u << 20;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    decoder dec = url ? b64url_decode : b64_decode;
    codec enc = url ? b64url_encode : b64_encode;
    mv_buf out;
    mv_buf_init(&out, cap);
    mv_rc rc = dec(&out, in, n);
    if (rc == MV_OK) {
        FUZZ_ASSERT(out.p != NULL && out.len <= cap && out.len <= n / 4 * 3 + 2);
        encode_decode(enc, dec, out.p, out.len);
    } else {
        FUZZ_ASSERT(rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT);
    }
    mv_buf_free(&out);
    encode_decode(enc, dec, in, n);
    return 0;
}
