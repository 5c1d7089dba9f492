/* buf.h: length-carrying slices and capped, growable buffers for untrusted bytes.
 *
 * A buffer never grows past the cap set at init (MV_ERR_LIMIT instead), keeps a NUL after its
 * content so it can be handed to C string APIs, and is wiped on free when it held a secret.
 * Growing wipes the block it leaves (buf.c), so a secret leaves no copies in freed heap. */
#ifndef MV_COMMON_BUF_H
#define MV_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/result.h"

typedef struct mv_slice {
    const char *p;
    size_t len;
} mv_slice;

typedef struct mv_buf {
    char *p;    /* NUL-terminated content, or NULL while empty */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard cap on len */
} mv_buf;

#define MV_SLICE_LIT(s) ((mv_slice){(s), sizeof(s) - 1})
mv_slice mv_slice_cstr(const char *s);
int mv_slice_eq(mv_slice a, const char *lit);
int mv_slice_eq_ci(mv_slice a, const char *lit);

void mv_buf_init(mv_buf *b, size_t max);
MV_MUST_CHECK mv_rc mv_buf_add(mv_buf *b, const void *p, size_t n);
MV_MUST_CHECK mv_rc mv_buf_adds(mv_buf *b, const char *s);
MV_MUST_CHECK mv_rc mv_buf_addf(mv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
MV_MUST_CHECK mv_rc mv_buf_vaddf(mv_buf *b, const char *fmt, va_list ap);
void mv_buf_reset(mv_buf *b);
/* Frees the buffer; mv_buf_free_secret also wipes it first. */
void mv_buf_free(mv_buf *b);
void mv_buf_free_secret(mv_buf *b);
/* Detaches the content (caller frees); the buffer is left empty. Never NULL on success. */
char *mv_buf_take(mv_buf *b);

/* snprintf that fails (MV_ERR_LIMIT) instead of truncating. */
MV_MUST_CHECK mv_rc mv_fmt(char *dst, size_t dstlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* strlcpy-like copy that fails (MV_ERR_LIMIT) instead of truncating. */
MV_MUST_CHECK mv_rc mv_copy(char *dst, size_t dstlen, const char *src);

#endif
