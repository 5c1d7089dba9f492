/* reply.c: error replies in each plane's Azure shape (see reply.h).
 *
 * Key Vault / ARM errors are {"error":{"code","message"[,"innererror":{"code"}]}} (reference
 * §4.3); token / IMDS errors are OAuth's {"error","error_description"} (RFC 6749 §5.2, reference
 * §1.3). The generic mv_rc replies use fixed texts only: the detail of what failed is in the log
 * (mv_fail), never in the reply. */
#include "http/reply.h"

#include <string.h>

#include "common/metrics.h"

#include <jansson.h>

#include "common/log.h"

void reply_azure_error(http_req *req, int status, const char *code, const char *message,
                       const char *inner)
{
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (err && inner && json_object_set_new(err, "innererror", json_pack("{s:s}", "code", inner)) != 0) {
        json_decref(err);
        err = NULL;
    }
    /* "o" steals err; a NULL err makes json_pack fail and http_reply_json sends a fixed 500. */
    json_t *body = err ? json_pack("{s:o}", "error", err) : NULL;
    if (!body)
        LOG_ERROR("could not build error body for status %d", status);
    http_reply_json(req, status, body);
}

/* The OAuth error as a label with the process's lifetime (metrics.h): the codes of RFC 6749
 * §5.2 and IMDS's, else "other". */
static const char *refusal_reason(const char *error)
{
    static const char *const KNOWN[] = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                                        "unsupported_grant_type", "invalid_scope", "invalid_resource",
                                        "unknown_error", "temporarily_unavailable", "server_error",
                                        "too_many_requests", "not_found", "bad_request", "access_denied",
                                        "method_not_allowed", "bad_request_102", NULL};
    for (int i = 0; error && KNOWN[i]; i++)
        if (strcmp(KNOWN[i], error) == 0)
            return KNOWN[i];
    return "other";
}

void reply_oauth_error(http_req *req, int status, const char *error, const char *description)
{
    if (req->m_token)
        mv_metric_inc(MV_M_TOKENS_REFUSED, req->m_plane ? req->m_plane : "http", refusal_reason(error));
    json_t *body = json_pack("{s:s, s:s}", "error", error, "error_description", description);
    if (!body)
        LOG_ERROR("could not build OAuth error body for status %d", status);
    http_reply_json(req, status, body);
}

int rc_http_status(mv_rc rc)
{
    switch (rc) {
    case MV_OK: return 200;
    case MV_ERR_BAD_REQUEST: return 400;
    case MV_ERR_UNAUTHENTICATED: return 401;
    case MV_ERR_FORBIDDEN: return 403;
    case MV_ERR_NOT_FOUND: return 404;
    case MV_ERR_CONFLICT: return 409;
    case MV_ERR_LIMIT: return 413;
    case MV_ERR_THROTTLED: return 429;
    case MV_ERR_UNAVAILABLE: return 503;
    case MV_ERR_INTERNAL: return 500;
    }
    return 500;
}

struct rc_text {
    const char *azure_code;
    const char *azure_message;
    const char *oauth_error;
    const char *oauth_description;
};

static struct rc_text rc_text(mv_rc rc)
{
    switch (rc) {
    case MV_ERR_BAD_REQUEST:
        return (struct rc_text){"BadParameter", "The request is invalid.", "invalid_request",
                                "The request is invalid."};
    case MV_ERR_UNAUTHENTICATED:
        return (struct rc_text){"Unauthorized", "The request is not authenticated.",
                                "invalid_client", "Client authentication failed."};
    case MV_ERR_FORBIDDEN:
        return (struct rc_text){"Forbidden", "The caller is not authorized to perform this action.",
                                "unauthorized_client",
                                "The client is not authorized to perform this action."};
    case MV_ERR_NOT_FOUND:
        return (struct rc_text){"NotFound", "The requested resource was not found.", "not_found",
                                "The requested resource was not found."};
    case MV_ERR_CONFLICT:
        return (struct rc_text){"Conflict", "The request conflicts with the current state.",
                                "invalid_request", "The request conflicts with the current state."};
    case MV_ERR_LIMIT:
        return (struct rc_text){"RequestTooLarge", "The request exceeds a size limit.",
                                "invalid_request", "The request exceeds a size limit."};
    case MV_ERR_THROTTLED:
        return (struct rc_text){"Throttled", "Too many requests; retry later.", "too_many_requests",
                                "Too many requests; retry later."};
    case MV_ERR_UNAVAILABLE:
        return (struct rc_text){"ServiceUnavailable", "The service is temporarily unavailable.",
                                "temporarily_unavailable",
                                "The service is temporarily unavailable."};
    case MV_OK:
    case MV_ERR_INTERNAL:
        break;
    }
    return (struct rc_text){"InternalServerError", "The server encountered an internal error.",
                            "server_error", "The server encountered an internal error."};
}

/* Reference §4.5: a 429 always carries Retry-After (JS SDKs retry only when it is there); no
 * other error does, so that nothing else gets retried. */
static void add_retry_after(http_req *req, mv_rc rc)
{
    if (rc == MV_ERR_THROTTLED)
        http_set_header(req, "Retry-After", "10");
}

void reply_rc_azure(http_req *req, mv_rc rc)
{
    struct rc_text t = rc_text(rc);
    add_retry_after(req, rc);
    reply_azure_error(req, rc == MV_OK ? 500 : rc_http_status(rc), t.azure_code, t.azure_message,
                      NULL);
}

void reply_rc_oauth(http_req *req, mv_rc rc)
{
    struct rc_text t = rc_text(rc);
    add_retry_after(req, rc);
    reply_oauth_error(req, rc == MV_OK ? 500 : rc_http_status(rc), t.oauth_error,
                      t.oauth_description);
}
