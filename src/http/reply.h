/* reply.h: error replies in each plane's Azure shape (DESIGN §3, reference §1.3, §4.3).
 *
 * The message text is chosen by the caller from fixed strings; never echo request input or
 * internal state beyond what Azure itself puts there (names the caller sent, the action). */
#ifndef MV_HTTP_REPLY_H
#define MV_HTTP_REPLY_H

#include "common/result.h"
#include "http/server.h"

/* Key Vault / ARM: {"error":{"code","message"[,"innererror":{"code"}]}}. inner may be NULL. */
void reply_azure_error(http_req *req, int status, const char *code, const char *message,
                       const char *inner);
/* OAuth / IMDS: {"error","error_description"}. */
void reply_oauth_error(http_req *req, int status, const char *error, const char *description);
/* Maps an mv_rc category to its status + a generic Azure-shaped body. */
void reply_rc_azure(http_req *req, mv_rc rc);
void reply_rc_oauth(http_req *req, mv_rc rc);
int rc_http_status(mv_rc rc);

#endif
