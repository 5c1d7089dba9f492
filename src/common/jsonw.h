/* jsonw.h: JSON written straight into a buffer, for the hot documents that are cheaper to write
 * than to build as a jansson tree and dump (the IMDS reply, the token and its reply, the
 * SecretBundle). Strings are escaped exactly as jansson's compact dump escapes them, so the
 * bytes match what json_dumps would write (RFC 8259 §7: '"', '\\' and U+0000..U+001F escaped;
 * \b \f \n \r \t short; other controls \u00XX with upper-case hex; '/' and UTF-8 as they are). */
#ifndef MV_COMMON_JSONW_H
#define MV_COMMON_JSONW_H

#include <stddef.h>

#include "common/buf.h"

enum jsonw_invalid {
    JSONW_STRICT,  /* bytes that are not UTF-8 (RFC 3629 §4): MV_ERR_BAD_REQUEST, like json_string */
    JSONW_REPLACE, /* each such byte becomes \ufffd (the audit log must never drop a record) */
};

/* The escaped characters of s[0..len), without quotes. */
MV_MUST_CHECK mv_rc jsonw_escape(mv_buf *b, const char *s, size_t len, enum jsonw_invalid mode);
/* s[0..len) as a quoted JSON string. */
MV_MUST_CHECK mv_rc jsonw_str(mv_buf *b, const char *s, size_t len, enum jsonw_invalid mode);
/* A decimal integer. */
MV_MUST_CHECK mv_rc jsonw_int(mv_buf *b, long long v);

#endif
