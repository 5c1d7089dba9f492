/* buf.c: capped buffers (see buf.h).
 *
 * Any buffer may hold a secret (a token reply, a backup's plaintext, a curl body), and a buffer
 * does not know whether it does. So every growth goes through OPENSSL_clear_realloc, which
 * copies into a new block and wipes the old one before freeing it: a plain realloc would leave
 * every earlier block's bytes in freed heap, and mv_buf_free_secret could only wipe the last. */
#include "common/buf.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

mv_slice mv_slice_cstr(const char *s) { return (mv_slice){s, s ? strlen(s) : 0}; }

int mv_slice_eq(mv_slice a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.p, lit, n) == 0;
}

int mv_slice_eq_ci(mv_slice a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.p, lit, n) == 0;
}

void mv_buf_init(mv_buf *b, size_t max) { *b = (mv_buf){NULL, 0, 0, max}; }

static mv_rc grow(mv_buf *b, size_t need)
{
    if (need > b->max || need + 1 < need) {
        mv_fail(MV_ERR_LIMIT, "buffer cap %zu exceeded", b->max);
        return MV_ERR_LIMIT;
    }
    if (need + 1 <= b->cap)
        return MV_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = OPENSSL_clear_realloc(b->p, b->cap, cap);
    if (!p) {
        mv_fail(MV_ERR_INTERNAL, "out of memory");
        return MV_ERR_INTERNAL;
    }
    b->p = p;
    b->cap = cap;
    return MV_OK;
}

mv_rc mv_buf_add(mv_buf *b, const void *p, size_t n)
{
    mv_rc rc = grow(b, b->len + n);
    if (rc != MV_OK)
        return rc;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return MV_OK;
}

mv_rc mv_buf_adds(mv_buf *b, const char *s) { return mv_buf_add(b, s, strlen(s)); }

mv_rc mv_buf_vaddf(mv_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return MV_ERR_INTERNAL;
    mv_rc rc = grow(b, b->len + (size_t)n);
    if (rc != MV_OK)
        return rc;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return MV_OK;
}

mv_rc mv_buf_addf(mv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mv_rc rc = mv_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void mv_buf_reset(mv_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void mv_buf_free(mv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void mv_buf_free_secret(mv_buf *b)
{
    if (b->p)
        OPENSSL_cleanse(b->p, b->cap);
    mv_buf_free(b);
}

char *mv_buf_take(mv_buf *b)
{
    if (!b->p && grow(b, 0) != MV_OK)
        return NULL;
    if (b->len == 0)
        b->p[0] = '\0';
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

mv_rc mv_fmt(char *dst, size_t dstlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, dstlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= dstlen) {
        mv_fail(MV_ERR_LIMIT, "formatted string too long");
        return MV_ERR_LIMIT;
    }
    return MV_OK;
}

mv_rc mv_copy(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstlen) {
        mv_fail(MV_ERR_LIMIT, "string too long");
        return MV_ERR_LIMIT;
    }
    memcpy(dst, src, n + 1);
    return MV_OK;
}
