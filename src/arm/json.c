/* json.c: how the control plane replies and reads request bodies.
 *
 * Every reply of src/arm/ goes through arm_reply / arm_reply_empty / arm_fail so that
 * ar->status holds the status actually sent (the audit line records it). Error messages are
 * Azure's texts, with at most the names the caller sent in the path or body, never internal
 * state; the detail of an internal failure goes to the log (mv_last_detail). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "arm/arm_internal.h"
#include "common/limits.h"
#include "common/log.h"
#include "http/reply.h"

void arm_reply(struct arm_req *ar, int status, json_t *body)
{
    if (!body) {
        LOG_ERROR("arm: could not build the reply body (request %s)", ar->req->request_id);
        status = 500;
    }
    ar->status = status;
    http_reply_json(ar->req, status, body);
}

void arm_reply_empty(struct arm_req *ar, int status)
{
    ar->status = status;
    http_reply(ar->req, status, NULL, NULL, 0);
}

static mv_rc rc_of_status(int status)
{
    switch (status) {
    case 400: return MV_ERR_BAD_REQUEST;
    case 401: return MV_ERR_UNAUTHENTICATED;
    case 403: return MV_ERR_FORBIDDEN;
    case 404: return MV_ERR_NOT_FOUND;
    case 409: return MV_ERR_CONFLICT;
    case 413: return MV_ERR_LIMIT;
    case 503: return MV_ERR_UNAVAILABLE;
    default: return MV_ERR_INTERNAL;
    }
}

mv_rc arm_fail(struct arm_req *ar, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    /* A message longer than the buffer is cut: it is prose, not data. */
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    ar->status = status;
    reply_azure_error(ar->req, status, code, msg, NULL);
    return rc_of_status(status);
}

void arm_fail_rc(struct arm_req *ar, mv_rc rc)
{
    if (ar->status || ar->req->replied)
        return;
    if (rc == MV_OK)
        rc = MV_ERR_INTERNAL;
    if (rc == MV_ERR_INTERNAL || rc == MV_ERR_UNAVAILABLE)
        LOG_ERROR("arm: %s: %s (request %s)", mv_rc_name(rc), mv_last_detail(), ar->req->request_id);
    ar->status = rc == MV_ERR_LIMIT ? 413 : rc_http_status(rc);
    reply_rc_azure(ar->req, rc);
}

/* Depth of nested arrays/objects, so a body cannot be deeper than MV_MAX_JSON_DEPTH. */
static size_t json_depth(const json_t *j, size_t limit)
{
    if (limit == 0)
        return 1;
    size_t max = 0;
    if (json_is_object(j)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            size_t d = json_depth(v, limit - 1);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    if (json_is_array(j)) {
        size_t i;
        const json_t *v;
        json_array_foreach(j, i, v) {
            size_t d = json_depth(v, limit - 1);
            if (d > max)
                max = d;
        }
        return max + 1;
    }
    return 0;
}

mv_rc arm_parse_body(const char *p, size_t len, json_t **out)
{
    *out = NULL;
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (i == len) { /* no body: the same as {} */
        *out = json_object();
        return *out ? MV_OK : MV_ERR_INTERNAL;
    }
    if (len > MV_MAX_BODY_BYTES)
        return MV_ERR_LIMIT;
    json_error_t err;
    /* JSON_REJECT_DUPLICATES: two "identity" members must not mean two things; NULs in strings
     * are refused by default (no JSON_ALLOW_NUL). */
    json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &err);
    if (!j || !json_is_object(j) || json_depth(j, MV_MAX_JSON_DEPTH + 1) > MV_MAX_JSON_DEPTH) {
        json_decref(j);
        return MV_ERR_BAD_REQUEST;
    }
    *out = j;
    return MV_OK;
}

mv_rc arm_body(struct arm_req *ar, json_t **out)
{
    mv_rc rc = arm_parse_body(ar->req->body.p, ar->req->body.len, out);
    if (rc == MV_ERR_LIMIT)
        return arm_fail(ar, 413, "RequestTooLarge", "The request content is too large.");
    if (rc == MV_ERR_BAD_REQUEST)
        return arm_fail(ar, 400, "InvalidRequestContent",
                        "The request content was invalid and could not be deserialized.");
    return rc;
}

void arm_iso8601(int64_t t, char out[40])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 40, "%Y-%m-%dT%H:%M:%S.0000000Z", &tm) == 0)
        out[0] = '\0';
}
