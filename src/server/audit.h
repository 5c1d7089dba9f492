/* audit.h: the audit trail (DESIGN §8): one JSON line per control- and data-plane decision
 * (time, plane, principal, action, scope, result, request id), append-only, each line carrying
 * the SHA-256 of the previous line so that an edit or a removed line breaks the chain.
 * Never pass a token or a secret value: callers pass a token's hash if they need one. */
#ifndef MV_SERVER_AUDIT_H
#define MV_SERVER_AUDIT_H

#include "common/result.h"

struct audit;

MV_MUST_CHECK mv_rc audit_open(const char *path, struct audit **out);
void audit_close(struct audit *a);
/* Thread-safe. Failures to write are logged, never surfaced to the request. */
void audit_record(struct audit *a, const char *plane, const char *principal, const char *action,
                  const char *scope, int status, const char *request_id);
/* Verifies the chain of the file at path: MV_OK if intact (used by `mivault audit verify`). */
MV_MUST_CHECK mv_rc audit_verify(const char *path, long *lines);

#endif
