/* error.c: libmivault's public status codes and its thread-local last-error text.
 *
 * Invariant: the text never holds a token or a secret value: it is built from the service's
 * error code and message (which Azure and mivault keep free of request input beyond names), an
 * HTTP status, or a fixed description of what failed. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

static _Thread_local char t_text[CLIENT_ERR_TEXT];
static _Thread_local int t_status; /* 0: none recorded during this call */

const char *mv_status_name(int status)
{
    switch (status) {
    case MV_STATUS_OK: return "ok";
    case MV_STATUS_ERROR: return "error";
    case MV_STATUS_BAD_REQUEST: return "bad_request";
    case MV_STATUS_UNAVAILABLE: return "unavailable";
    case MV_STATUS_IDENTITY_NOT_FOUND: return "identity_not_found";
    case MV_STATUS_UNAUTHORIZED: return "unauthorized";
    case MV_STATUS_FORBIDDEN: return "forbidden";
    case MV_STATUS_NOT_FOUND: return "not_found";
    case MV_STATUS_CONFLICT: return "conflict";
    case MV_STATUS_THROTTLED: return "throttled";
    }
    return "unknown";
}

const char *mv_last_error(void) { return t_text; }

void mv_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void client_begin(void)
{
    t_text[0] = '\0';
    t_status = 0;
}

static int rc_status(mv_rc rc)
{
    switch (rc) {
    case MV_OK: return MV_STATUS_OK;
    case MV_ERR_BAD_REQUEST: return MV_STATUS_BAD_REQUEST;
    case MV_ERR_UNAUTHENTICATED: return MV_STATUS_UNAUTHORIZED;
    case MV_ERR_FORBIDDEN: return MV_STATUS_FORBIDDEN;
    case MV_ERR_NOT_FOUND: return MV_STATUS_NOT_FOUND;
    case MV_ERR_CONFLICT: return MV_STATUS_CONFLICT;
    case MV_ERR_THROTTLED: return MV_STATUS_THROTTLED;
    case MV_ERR_UNAVAILABLE: return MV_STATUS_UNAVAILABLE;
    case MV_ERR_LIMIT:
    case MV_ERR_INTERNAL: return MV_STATUS_ERROR;
    }
    return MV_STATUS_ERROR;
}

int client_end(mv_rc rc)
{
    if (rc == MV_OK) {
        t_text[0] = '\0';
        t_status = 0;
        return MV_STATUS_OK;
    }
    if (t_status != 0)
        return t_status;
    /* Nothing more precise was recorded: the internal detail says what failed (file:line). */
    const char *d = mv_last_detail();
    snprintf(t_text, sizeof t_text, "%s", d && *d ? d : mv_rc_name(rc));
    return rc_status(rc);
}

mv_rc client_set_error(int status, mv_rc rc_for, const char *fmt, ...)
{
    if (t_status != 0)
        return rc_for;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_text, sizeof t_text, fmt, ap);
    va_end(ap);
    t_status = status;
    return rc_for;
}

int client_http_status(long s)
{
    switch (s) {
    case 400: return MV_STATUS_BAD_REQUEST;
    case 401: return MV_STATUS_UNAUTHORIZED;
    case 403: return MV_STATUS_FORBIDDEN;
    case 404: return MV_STATUS_NOT_FOUND;
    case 409: return MV_STATUS_CONFLICT;
    case 429: return MV_STATUS_THROTTLED;
    case 502:
    case 503:
    case 504: return MV_STATUS_UNAVAILABLE;
    default: return MV_STATUS_ERROR;
    }
}

mv_rc client_http_rc(long s)
{
    switch (s) {
    case 400: return MV_ERR_BAD_REQUEST;
    case 401: return MV_ERR_UNAUTHENTICATED;
    case 403: return MV_ERR_FORBIDDEN;
    case 404: return MV_ERR_NOT_FOUND;
    case 409: return MV_ERR_CONFLICT;
    case 429: return MV_ERR_THROTTLED;
    case 502:
    case 503:
    case 504: return MV_ERR_UNAVAILABLE;
    default: return MV_ERR_INTERNAL;
    }
}

/* Reference §4.3: {"error":{"code":"<Code>","message":"<text>","innererror":{"code"}}}. */
mv_rc client_vault_error(long s, const char *body, size_t len)
{
    json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    const char *inner = json_string_value(json_object_get(json_object_get(e, "innererror"), "code"));
    mv_rc rc;
    if (code && inner)
        rc = client_set_error(client_http_status(s), client_http_rc(s), "%s/%s (%ld): %s", code, inner,
                              s, msg ? msg : "");
    else if (code)
        rc = client_set_error(client_http_status(s), client_http_rc(s), "%s (%ld): %s", code, s,
                              msg ? msg : "");
    else
        rc = client_set_error(client_http_status(s), client_http_rc(s),
                              "the vault answered HTTP %ld without an error body", s);
    json_decref(j);
    return rc;
}

/* Reference §1.3: {"error":"<code>","error_description":"<text>"}; "Identity not found" is
 * 400 invalid_request and means no identity of this machine matches the request. */
mv_rc client_imds_error(long s, const char *body, size_t len)
{
    json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(j, "error"));
    const char *desc = json_string_value(json_object_get(j, "error_description"));
    mv_rc rc;
    if (s == 400 && code && desc && strcmp(code, "invalid_request") == 0 &&
        strcmp(desc, "Identity not found") == 0)
        rc = client_set_error(MV_STATUS_IDENTITY_NOT_FOUND, MV_ERR_NOT_FOUND, "%s (%ld): %s", code, s,
                              desc);
    else if (code)
        rc = client_set_error(client_http_status(s), client_http_rc(s), "%s (%ld): %s", code, s,
                              desc ? desc : "");
    else
        rc = client_set_error(client_http_status(s), client_http_rc(s),
                              "the identity endpoint answered HTTP %ld without an error body", s);
    json_decref(j);
    return rc;
}
