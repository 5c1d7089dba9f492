/* client_internal.h: what the files of libmivault share, and its pure parsers (tested without a
 * network by tests/unit/test_client_parse.c).
 *
 * Inside the library, functions return mv_rc like the rest of mivault; the public entry points
 * translate to enum mv_status at the boundary (client_begin / client_end). A failure that has a
 * more precise public status or a service message records it with client_set_error before
 * returning; client_end keeps the first one recorded during the call. */
#ifndef MV_CLIENT_CLIENT_INTERNAL_H
#define MV_CLIENT_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/limits.h"
#include "common/result.h"
#include "mivault/mivault.h"

#define CLIENT_IMDS_API_VERSION "2018-02-01"
#define CLIENT_KV_API_VERSION "7.5"
#define CLIENT_DEFAULT_IMDS "http://169.254.169.254"
#define CLIENT_REFRESH_MARGIN_SECS 300   /* re-ask for a token 5 min before it expires */
#define CLIENT_IMDS_MAX_RESP (16 * 1024) /* a token reply: token (≤ 8 KiB) + a few fields */
#define CLIENT_KV_MAX_RESP MV_MAX_BODY_BYTES
#define CLIENT_LIST_MAX_PAGES 4096       /* nextLink loops end here */
#define CLIENT_LIST_MAX_BYTES (16 * 1024 * 1024)
#define CLIENT_MAX_VERSION 64
#define CLIENT_ERR_TEXT 2048 /* Azure's ForbiddenByRbac message alone is ~700 bytes */

/* ---- errors (error.c) ---- */
/* Clears this thread's error at the start of a public call. */
void client_begin(void);
/* Maps rc to the public status; a status recorded by client_set_error during the call wins. */
int client_end(mv_rc rc);
/* Records a public status and its text (first one wins until client_begin). Returns rc_for. */
mv_rc client_set_error(int status, mv_rc rc_for, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Public status of an HTTP status >= 400. */
int client_http_status(long http_status);
/* mv_rc of an HTTP status >= 400 (to unwind with). */
mv_rc client_http_rc(long http_status);
/* Records the error of a Key Vault reply: {"error":{"code","message"}} → "Code (404): message". */
mv_rc client_vault_error(long http_status, const char *body, size_t len);
/* Records the error of an IMDS reply: {"error","error_description"}; 400 invalid_request
 * "Identity not found" becomes MV_STATUS_IDENTITY_NOT_FOUND. */
mv_rc client_imds_error(long http_status, const char *body, size_t len);

/* ---- IMDS token reply (credential.c) ---- */
/* Reference §1.2: all values are strings. Needs access_token and expires_on (an integer string;
 * a JSON integer is also taken, as msal-node does); token_type, when present, must be Bearer.
 * *token gets a copy (capped at MV_MAX_TOKEN_BYTES, wipe with mv_buf_free_secret). */
MV_MUST_CHECK mv_rc client_imds_parse(const char *body, size_t len, mv_buf *token, int64_t *expires_on);
/* Drops one trailing "/.default" (the SDKs' scope → resource conversion, reference §1.1). */
MV_MUST_CHECK mv_rc client_scope_to_resource(const char *scope, char *out, size_t len);

/* ---- the Key Vault challenge (challenge.c), reference §4.4 ---- */
struct client_challenge {
    char authorization[MV_MAX_URL]; /* authorization or authorization_uri */
    char tenant[128];               /* first path segment of authorization ("" if none) */
    char resource[MV_MAX_URL];      /* token resource: scope minus "/.default", else resource */
};
/* Parses `Bearer authorization="…", resource="…"` with the Python SDK's rules: scheme, then
 * comma-separated name=value items (exactly one '='), quotes and spaces stripped; needs
 * authorization or authorization_uri, and a resource (or scope). Values in single quotes and a
 * scheme other than Bearer are refused. */
MV_MUST_CHECK mv_rc client_challenge_parse(const char *header, struct client_challenge *out);
/* The domain check: the request URL's host must end with "." + the resource's host; when the
 * resource names a port, the request's host:port must end with "." + host:port. */
MV_MUST_CHECK mv_rc client_challenge_check(const char *request_url, const char *resource);
/* Authority part of an absolute http(s) URL ("host[:port]", lower case); refuses userinfo. */
MV_MUST_CHECK mv_rc client_url_netloc(const char *url, char *out, size_t len);

/* ---- token access for the secret client (credential.c) ---- */
struct mv_credential;
/* force: skip the cache (the vault refused the cached token). token is a secret buffer. */
MV_MUST_CHECK mv_rc client_credential_token(struct mv_credential *cred, const char *resource,
                                            int force, mv_buf *token, int64_t *expires_on);

/* ---- the vault request engine (secret_client.c) ---- */
struct mv_secret_client;
/* Sends method path_or_url (relative "/secrets/x" or an absolute nextLink on the vault's own
 * origin) with the challenge protocol. api-version is added unless already present. A reply
 * status other than expect becomes an error (client_vault_error). *resp_body gets the reply
 * (secret: free with mv_buf_free_secret). */
MV_MUST_CHECK mv_rc client_kv_call(struct mv_secret_client *sc, const char *method,
                                   const char *path_or_url, const char *body, long expect,
                                   mv_buf *resp_body);
/* The vault URL, without trailing slash. */
const char *client_kv_url(const struct mv_secret_client *sc);

/* GET first (a path under the vault), then every nextLink: one JSON array of all the pages'
 * "value" items in *json (NULL: not kept). secrets.c; used by keys.c too. */
MV_MUST_CHECK mv_rc client_list(struct mv_secret_client *sc, const char *first, char **json);

#endif
