/* b64.h: base64 (standard, padded) and base64url (RFC 4648 §5, unpadded) on capped buffers.
 * Decoders accept base64url with or without padding (reference §4.1) and reject anything else. */
#ifndef MV_COMMON_B64_H
#define MV_COMMON_B64_H

#include <stddef.h>

#include "common/buf.h"

MV_MUST_CHECK mv_rc b64url_encode(mv_buf *out, const void *in, size_t len);
MV_MUST_CHECK mv_rc b64url_decode(mv_buf *out, const char *in, size_t len);
MV_MUST_CHECK mv_rc b64_encode(mv_buf *out, const void *in, size_t len);
MV_MUST_CHECK mv_rc b64_decode(mv_buf *out, const char *in, size_t len);

#endif
