/* b64.c: base64 / base64url codecs (RFC 4648). Decoding is strict: any byte outside the
 * alphabet, or a dangling single character, is MV_ERR_BAD_REQUEST. */
#include "common/b64.h"

#include <stdint.h>

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static mv_rc encode(mv_buf *out, const unsigned char *in, size_t len, const char *alpha, int pad)
{
    mv_rc rc;
    char q[4];
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        q[0] = alpha[v >> 18 & 63], q[1] = alpha[v >> 12 & 63];
        q[2] = alpha[v >> 6 & 63], q[3] = alpha[v & 63];
        if ((rc = mv_buf_add(out, q, 4)) != MV_OK)
            return rc;
    }
    size_t rest = len - i;
    if (rest) {
        uint32_t v = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        q[0] = alpha[v >> 18 & 63], q[1] = alpha[v >> 12 & 63];
        q[2] = rest == 2 ? alpha[v >> 6 & 63] : '=';
        q[3] = '=';
        size_t n = pad ? 4 : rest + 1;
        if ((rc = mv_buf_add(out, q, n)) != MV_OK)
            return rc;
    }
    if (!out->p)
        return mv_buf_add(out, "", 0);
    return MV_OK;
}

static int val(char c, int url)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (url && c == '-') return 62;
    if (url && c == '_') return 63;
    if (!url && c == '+') return 62;
    if (!url && c == '/') return 63;
    return -1;
}

static mv_rc decode(mv_buf *out, const char *in, size_t len, int url)
{
    mv_rc rc;
    while (len && in[len - 1] == '=')
        len--;
    if (len % 4 == 1) {
        mv_fail(MV_ERR_BAD_REQUEST, "bad base64 length");
        return MV_ERR_BAD_REQUEST;
    }
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = val(in[i], url);
        if (v < 0) {
            mv_fail(MV_ERR_BAD_REQUEST, "bad base64 character");
            return MV_ERR_BAD_REQUEST;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            unsigned char c = (unsigned char)(acc >> bits & 0xff);
            if ((rc = mv_buf_add(out, &c, 1)) != MV_OK)
                return rc;
        }
    }
    if (!out->p)
        return mv_buf_add(out, "", 0);
    return MV_OK;
}

mv_rc b64url_encode(mv_buf *out, const void *in, size_t len) { return encode(out, in, len, URL, 0); }
mv_rc b64_encode(mv_buf *out, const void *in, size_t len) { return encode(out, in, len, STD, 1); }
mv_rc b64url_decode(mv_buf *out, const char *in, size_t len) { return decode(out, in, len, 1); }
mv_rc b64_decode(mv_buf *out, const char *in, size_t len) { return decode(out, in, len, 0); }
