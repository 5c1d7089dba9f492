/* aad.c: refusals in Entra's shape (the token endpoint's answers to service principals and
 * federated identities), as Entra sends them and the SDKs parse them: msal-node reads
 * error_codes[0], timestamp, trace_id and correlation_id; azure-identity shows error and
 * error_description. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "authority/internal.h"
#include "common/util.h"
#include "http/reply.h"

mv_rc authority_refuse_aad(struct authority_refusal *r, int status, const char *error, int code,
                           const char *fmt, ...)
{
    mv_rc rc = status == 401 ? MV_ERR_UNAUTHENTICATED : MV_ERR_BAD_REQUEST;
    va_list ap;
    memset(r, 0, sizeof *r);
    r->status = status;
    r->error = error;
    r->code = code;
    va_start(ap, fmt);
    int n = vsnprintf(r->text, sizeof r->text, fmt, ap);
    va_end(ap);
    if (n < 0)
        r->text[0] = '\0';
    mv_fail(rc, "refused (%s, AADSTS%d): %s", error, code, r->text);
    return rc;
}

/* The client's client-request-id (query, form or header) when it is a GUID. */
static const char *client_request_id(http_req *req)
{
    const char *v = kv_get(&req->query, "client-request-id");
    if (!v || !mv_is_uuid(v))
        v = http_header(req, "client-request-id");
    return v && mv_is_uuid(v) ? v : NULL;
}

void authority_reply_aad(http_req *req, const struct authority_refusal *r)
{
    char trace[MV_UUID_LEN + 1], corr[MV_UUID_LEN + 1], ts[32], uri[80];
    char desc[AUTHORITY_REFUSAL_TEXT + 256];
    time_t now = time(NULL);
    struct tm tm;
    const char *crid = client_request_id(req);
    if (mv_uuid(trace) != MV_OK)
        trace[0] = '\0';
    if (crid)
        memcpy(corr, crid, sizeof corr - 1), corr[sizeof corr - 1] = '\0';
    else if (mv_uuid(corr) != MV_OK)
        corr[0] = '\0';
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%SZ", &tm);
    snprintf(desc, sizeof desc, "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
             r->code, r->text, trace, corr, ts);
    snprintf(uri, sizeof uri, "https://login.microsoftonline.com/error?code=%d", r->code);
    json_t *body = json_pack("{s:s, s:s, s:[i], s:s, s:s, s:s, s:s}", "error", r->error,
                             "error_description", desc, "error_codes", r->code, "timestamp", ts,
                             "trace_id", trace, "correlation_id", corr, "error_uri", uri);
    http_reply_json(req, r->status, body);
}
