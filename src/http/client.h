/* client.h: outbound HTTP(S) on libcurl, one reusable handle per client (connection reuse).
 * Used by the agent (to the authority), the CLI and libmivault. Not thread-safe: one per thread. */
#ifndef MV_HTTP_CLIENT_H
#define MV_HTTP_CLIENT_H

#include <stddef.h>

#include "common/buf.h"

struct http_client;

/* ca_file: PEM bundle to trust (the local CA), or NULL for the system store. */
MV_MUST_CHECK mv_rc http_client_new(const char *ca_file, struct http_client **out);
/* A client that checks neither the server's certificate nor its name: only for fetching a
 * public CA certificate whose key the caller then checks against a pin it already holds (the
 * agent's first join, docs/internal-protocol.md "Join tokens"). Never send a secret on it. */
MV_MUST_CHECK mv_rc http_client_new_unverified(struct http_client **out);
/* A client trusting the system store and, in addition, the CA certificates of extra_pem
 * (PEM text; NULL or empty: the system store only, as http_client_new(NULL)). */
MV_MUST_CHECK mv_rc http_client_new_trusting(const char *extra_pem, size_t len,
                                             struct http_client **out);
void http_client_free(struct http_client *c);
/* Connect (TCP + TLS) and whole-request timeouts for later requests (defaults 5 s and 30 s). */
void http_client_set_timeouts(struct http_client *c, long connect_ms, long total_ms);

struct http_client_resp {
    long status;
    mv_buf body;          /* capped at the max given to the call */
    char retry_after[32]; /* Retry-After header if any */
    char www_authenticate[512];
};

/* headers: NULL-terminated array of "Name: value". body may be NULL. Transport failures are
 * MV_ERR_UNAVAILABLE (http_client_error says what failed); any HTTP status is MV_OK (look at
 * resp->status). Free with http_client_resp_free. */
MV_MUST_CHECK mv_rc http_client_do(struct http_client *c, const char *method, const char *url,
                                   const char *const *headers, const char *body, size_t body_len,
                                   size_t max_resp, struct http_client_resp *resp);
void http_client_resp_free(struct http_client_resp *resp);

/* What the last failed http_client_do could not do, for people ("" after a success), e.g.
 *   TLS: the server's certificate does not name HOST (https://HOST:PORT)
 *   TLS: certificate not signed by a trusted CA (CA bundle: PATH)
 *   cannot reach the server at https://HOST:PORT: connection refused */
const char *http_client_error(const struct http_client *c);

#endif
