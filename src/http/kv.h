/* kv.h: application/x-www-form-urlencoded parsing (URL queries and form bodies).
 *
 * Names and values are percent-decoded ('+' is a space); a name given twice is remembered so
 * callers can refuse duplicates (IMDS does, reference §1.1). At most MV_KV_MAX pairs. */
#ifndef MV_HTTP_KV_H
#define MV_HTTP_KV_H

#include <stddef.h>

#include "common/buf.h"
#include "common/result.h"

#define MV_KV_MAX 32

typedef struct kv_list {
    size_t n;
    int has_dup;    /* some name appeared twice */
    char *name[MV_KV_MAX];
    char *value[MV_KV_MAX];
} kv_list;

/* Parses s[0..len). Refuses bad percent-escapes, NUL bytes and more than MV_KV_MAX pairs. */
MV_MUST_CHECK mv_rc kv_parse(const char *s, size_t len, kv_list *out);
/* Value of name (exact, case-sensitive) or NULL. */
const char *kv_get(const kv_list *l, const char *name);
/* Same, ASCII case-insensitive name match (Key Vault's maxresults, $skiptoken). */
const char *kv_get_ci(const kv_list *l, const char *name);
void kv_free(kv_list *l);
/* Percent-encodes s for use in a URL query value into out (capped buffer). */
MV_MUST_CHECK mv_rc kv_escape(const char *s, struct mv_buf *out);

#endif
