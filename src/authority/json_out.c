/* json_out.c: JSON strings written straight into a buffer, for the two documents the token
 * endpoint writes per request (the token's claims, the token reply). Building a jansson tree and
 * dumping it costs more than the rest of the request besides the crypto (docs/benchmarks.md).
 *
 * RFC 8259 §7: a string is quoted; '"', '\' and the control characters U+0000..U+001F must be
 * escaped. Printable ASCII is written as is (with those two escaped); a string with any other
 * byte goes through jansson, which escapes control characters and refuses invalid UTF-8, so the
 * output is always a valid JSON string with the same meaning as jansson's. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "authority/internal.h"

mv_rc authority_json_str(mv_buf *b, const char *s)
{
    mv_rc rc = MV_OK;
    json_t *j = NULL;
    char *dumped = NULL;
    size_t run = 0;
    const char *p = s;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e)
            break;
    }
    if (*p) {
        j = json_string(s);
        ENSURE_MSG(j != NULL, MV_ERR_INTERNAL, "json: string is not UTF-8");
        dumped = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        ENSURE(dumped != NULL, MV_ERR_INTERNAL);
        CHECK(mv_buf_adds(b, dumped));
        goto out;
    }
    CHECK(mv_buf_add(b, "\"", 1));
    for (p = s; *p; p++) {
        if (*p != '"' && *p != '\\') {
            run++;
            continue;
        }
        CHECK(mv_buf_add(b, p - run, run));
        CHECK(mv_buf_add(b, *p == '"' ? "\\\"" : "\\\\", 2));
        run = 0;
    }
    CHECK(mv_buf_add(b, p - run, run));
    CHECK(mv_buf_add(b, "\"", 1));
out:
    free(dumped);
    json_decref(j);
    return rc;
}
