/* util.h: small helpers shared by every layer: randomness, ids, time, files, comparisons. */
#ifndef MV_COMMON_UTIL_H
#define MV_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/result.h"

#define MV_UUID_LEN 36    /* xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx */
#define MV_VERSION_LEN 32 /* Key Vault object version: 32 lower-case hex */

MV_MUST_CHECK mv_rc mv_random(void *out, size_t len);
/* Random v4 UUID, lower case, NUL-terminated (buffer of MV_UUID_LEN + 1). */
MV_MUST_CHECK mv_rc mv_uuid(char out[MV_UUID_LEN + 1]);
/* Random 32-hex-char id (buffer of MV_VERSION_LEN + 1). */
MV_MUST_CHECK mv_rc mv_hexid(char out[MV_VERSION_LEN + 1]);
void mv_hex(char *out, const unsigned char *in, size_t len); /* out has 2*len+1 bytes */
int mv_hexval(char c); /* 0..15 for a hex digit of either case, else -1 */
int mv_is_uuid(const char *s);

int64_t mv_now(void);     /* Unix seconds */
int64_t mv_now_ms(void);  /* monotonic milliseconds */

/* Constant-time equality of two byte strings (lengths compared first, not secret). */
int mv_ct_eq(const void *a, size_t alen, const void *b, size_t blen);

/* Case-insensitive ASCII string equality / prefix. */
int mv_streq_ci(const char *a, const char *b);
void mv_lower(char *s);

/* Files. mv_read_file caps at max bytes; the result is NUL-terminated (caller frees). */
MV_MUST_CHECK mv_rc mv_read_file(const char *path, size_t max, char **out, size_t *len);
/* Writes atomically (temp file + fsync + rename) with the given mode. */
MV_MUST_CHECK mv_rc mv_write_file(const char *path, const void *data, size_t len, unsigned mode);
MV_MUST_CHECK mv_rc mv_mkdirs(const char *path, unsigned mode);
int mv_file_exists(const char *path);

/* Strict integer parse of a whole string (no sign for unsigned). */
MV_MUST_CHECK mv_rc mv_parse_i64(const char *s, int64_t *out);

#endif
