/* jsonw.c: see jsonw.h. One escaper for the whole code base. */
#include "common/jsonw.h"

/* Length of the UTF-8 sequence at s[0..n) (RFC 3629 §4: no overlongs, no surrogates, nothing
 * above U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Bytes copied as they are: printable ASCII but '"' and '\\' (and DEL, as jansson). */
static int plain(unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

mv_rc jsonw_escape(mv_buf *b, const char *s, size_t len, enum jsonw_invalid mode)
{
    static const char HEX[] = "0123456789ABCDEF";
    mv_rc rc = MV_OK;
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0; /* run: start of the pending bytes that need no escaping */
    while (i < len) {
        while (i < len && plain(u[i]))
            i++;
        if (i == len)
            break;
        unsigned char ch = u[i];
        char esc[6];
        size_t en = 2, step = 1;
        if (ch >= 0x80) {
            size_t n = utf8_seq(u + i, len - i);
            if (n) {
                i += n;
                continue;
            }
            ENSURE_MSG(mode == JSONW_REPLACE, MV_ERR_BAD_REQUEST, "json: a string is not UTF-8");
            esc[0] = '\\', esc[1] = 'u', esc[2] = 'f', esc[3] = 'f', esc[4] = 'f', esc[5] = 'd';
            en = 6;
        } else {
            esc[0] = '\\';
            switch (ch) {
            case '"': esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = HEX[ch >> 4], esc[5] = HEX[ch & 15];
                en = 6;
            }
        }
        CHECK(mv_buf_add(b, s + run, i - run));
        CHECK(mv_buf_add(b, esc, en));
        i += step;
        run = i;
    }
    CHECK(mv_buf_add(b, s + run, len - run));
out:
    return rc;
}

mv_rc jsonw_str(mv_buf *b, const char *s, size_t len, enum jsonw_invalid mode)
{
    mv_rc rc = MV_OK;
    CHECK(mv_buf_add(b, "\"", 1));
    CHECK(jsonw_escape(b, s, len, mode));
    CHECK(mv_buf_add(b, "\"", 1));
out:
    return rc;
}

mv_rc jsonw_int(mv_buf *b, long long v)
{
    char d[24];
    size_t i = sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--i] = '-';
    return mv_buf_add(b, d + i, sizeof d - i);
}
