/* text.c: bounded concatenation for the request path (vault_cat), where several strings are
 * joined per request (resource ids, the vault URL, the AAD, a header value): mv_fmt's vsnprintf
 * cost more than the rest of the join. Same contract as mv_fmt: the whole result or
 * MV_ERR_LIMIT, never a truncated string. */
#include <stdarg.h>
#include <string.h>

#include "vault/vault_internal.h"

mv_rc vault_cat(char *dst, size_t cap, ...)
{
    va_list ap;
    size_t len = 0;
    mv_rc rc = MV_OK;
    if (cap == 0)
        return MV_ERR_LIMIT;
    va_start(ap, cap);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        if (n >= cap - len) {
            rc = MV_ERR_LIMIT;
            break;
        }
        memcpy(dst + len, s, n);
        len += n;
    }
    va_end(ap);
    if (rc != MV_OK) {
        dst[0] = '\0';
        mv_fail(MV_ERR_LIMIT, "string too long");
        return rc;
    }
    dst[len] = '\0';
    return MV_OK;
}

const char *vault_utoa(unsigned long v, char buf[24])
{
    char *p = buf + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}
