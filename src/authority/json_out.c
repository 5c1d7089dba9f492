/* json_out.c: JSON strings written straight into a buffer, for the two documents the token
 * endpoint writes per request (the token's claims, the token reply). Building a jansson tree and
 * dumping it costs more than the rest of the request besides the crypto (docs/benchmarks.md).
 * The escaping is common/jsonw.c's, which writes the bytes jansson's compact dump would. */
#include <string.h>

#include "authority/internal.h"
#include "common/jsonw.h"

mv_rc authority_json_str(mv_buf *b, const char *s)
{
    mv_rc rc = jsonw_str(b, s, strlen(s), JSONW_STRICT);
    /* Every string the authority writes comes from its own store or checked input: one that is
     * not UTF-8 is a bug here, not the caller's. */
    return rc == MV_ERR_BAD_REQUEST ? MV_ERR_INTERNAL : rc;
}
