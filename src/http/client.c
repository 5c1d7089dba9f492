/* client.c: outbound HTTP(S) on one reused libcurl easy handle (see client.h).
 *
 * Invariants: the handle is reset before each request (curl_easy_reset keeps live connections,
 * so keep-alive reuse survives it) and every option is set again; no proxy is ever used (IMDS and
 * authority traffic must not leave the host through one, reference §1.1); redirects are not
 * followed; the response body never grows past the caller's cap. */
#include "http/client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"

#define CLIENT_CONNECT_TIMEOUT_MS 5000L
#define CLIENT_TOTAL_TIMEOUT_MS 30000L
#define CLIENT_MAX_HEADERS 64

/* The trusted CA bundle is read once, at creation, and handed to curl from memory: a process
 * that drops privileges afterwards (the agent on port 80) can no longer read the state dir, and
 * curl would otherwise re-read the file whenever its CA cache expires. */
struct http_client {
    CURL *h;
    char *ca_pem;
    size_t ca_len;
    int unverified; /* http_client_new_unverified: a pinned-CA fetch, nothing else */
    long connect_ms, total_ms;
};

#define CLIENT_MAX_CA_BYTES (4 * 1024 * 1024)

struct xfer {
    struct http_client_resp *resp;
    int over_cap;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT; /* written once under curl_once */

static void curl_setup(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

mv_rc http_client_new(const char *ca_file, struct http_client **out)
{
    mv_rc rc = MV_OK;
    struct http_client *c = NULL;
    *out = NULL;
    pthread_once(&curl_once, curl_setup);
    ENSURE_MSG(curl_init_rc == CURLE_OK, MV_ERR_INTERNAL, "curl_global_init failed");
    c = calloc(1, sizeof *c);
    ENSURE(c != NULL, MV_ERR_INTERNAL);
    if (ca_file)
        CHECK(mv_read_file(ca_file, CLIENT_MAX_CA_BYTES, &c->ca_pem, &c->ca_len));
    c->connect_ms = CLIENT_CONNECT_TIMEOUT_MS;
    c->total_ms = CLIENT_TOTAL_TIMEOUT_MS;
    c->h = curl_easy_init();
    ENSURE_MSG(c->h != NULL, MV_ERR_INTERNAL, "curl_easy_init failed");
    *out = c;
    c = NULL;
out:
    http_client_free(c);
    return rc;
}

void http_client_set_timeouts(struct http_client *c, long connect_ms, long total_ms)
{
    c->connect_ms = connect_ms;
    c->total_ms = total_ms;
}

mv_rc http_client_new_unverified(struct http_client **out)
{
    mv_rc rc = http_client_new(NULL, out);
    if (rc == MV_OK)
        (*out)->unverified = 1;
    return rc;
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    free(c->ca_pem);
    free(c);
}

void http_client_resp_free(struct http_client_resp *resp)
{
    mv_buf_free(&resp->body);
    resp->status = 0;
    resp->retry_after[0] = '\0';
    resp->www_authenticate[0] = '\0';
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (mv_buf_add(&x->resp->body, p, len) != MV_OK) {
        x->over_cap = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return len;
}

/* Copies the value of "Name: value\r\n" into dst if the name matches (ASCII case-insensitive,
 * RFC 9110 §5.1). A value too long for dst is dropped rather than cut. */
static void capture(const char *line, size_t len, const char *name, char *dst, size_t dstlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - v);
    if (vl >= dstlen || memchr(v, '\0', vl)) {
        LOG_WARN("response header %s too long or malformed; ignored", name);
        return;
    }
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    /* A new status line (after a 100 Continue) starts a new header block. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        x->resp->retry_after[0] = '\0';
        x->resp->www_authenticate[0] = '\0';
    }
    capture(p, len, "retry-after", x->resp->retry_after, sizeof x->resp->retry_after);
    capture(p, len, "www-authenticate", x->resp->www_authenticate,
            sizeof x->resp->www_authenticate);
    return len;
}

#define SETOPT(opt, val) ENSURE_MSG(curl_easy_setopt(h, (opt), (val)) == CURLE_OK, MV_ERR_INTERNAL, \
                                    "curl_easy_setopt(%s) failed", #opt)

static int method_has_body(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0;
}

mv_rc http_client_do(struct http_client *c, const char *method, const char *url,
                     const char *const *headers, const char *body, size_t body_len,
                     size_t max_resp, struct http_client_resp *resp)
{
    mv_rc rc = MV_OK;
    CURL *h = c->h;
    struct curl_slist *hl = NULL;
    char errbuf[CURL_ERROR_SIZE];
    struct xfer x = {resp, 0};
    memset(resp, 0, sizeof *resp);
    mv_buf_init(&resp->body, max_resp);
    errbuf[0] = '\0';

    curl_easy_reset(h);
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, c->total_ms);
    SETOPT(CURLOPT_NOPROXY, "*");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    if (c->ca_pem) {
        struct curl_blob ca = {c->ca_pem, c->ca_len, CURL_BLOB_NOCOPY};
        SETOPT(CURLOPT_CAINFO_BLOB, &ca);
    }
    if (c->unverified) {
        SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, &x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, &x);
    /* A Content-Length over the cap fails before any of the body is read. */
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_resp);

    if (strcmp(method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (method_has_body(method)) {
        /* POSTFIELDS with an explicit size: the body is sent as given, Content-Length always. */
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        SETOPT(CURLOPT_POSTFIELDS, body ? body : "");
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    } else {
        ENSURE_MSG(!body || body_len == 0, MV_ERR_INTERNAL, "%s with a body", method);
        SETOPT(CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }

    /* No "Expect: 100-continue" round trip on bodies (curl adds it to large POSTs). */
    hl = curl_slist_append(hl, "Expect:");
    ENSURE(hl != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; headers && headers[i]; i++) {
        ENSURE_MSG(i < CLIENT_MAX_HEADERS, MV_ERR_INTERNAL, "too many request headers");
        struct curl_slist *t = curl_slist_append(hl, headers[i]);
        ENSURE(t != NULL, MV_ERR_INTERNAL);
        hl = t;
    }
    SETOPT(CURLOPT_HTTPHEADER, hl);

    CURLcode cr = curl_easy_perform(h);
    if (cr == CURLE_WRITE_ERROR && x.over_cap)
        ENSURE_MSG(0, MV_ERR_LIMIT, "%s %s: response body over %zu bytes", method, url, max_resp);
    if (cr == CURLE_FILESIZE_EXCEEDED)
        ENSURE_MSG(0, MV_ERR_LIMIT, "%s %s: response body over %zu bytes", method, url, max_resp);
    ENSURE_MSG(cr == CURLE_OK, MV_ERR_UNAVAILABLE, "%s %s: %s", method, url,
               errbuf[0] ? errbuf : curl_easy_strerror(cr));
    ENSURE(curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status) == CURLE_OK,
           MV_ERR_INTERNAL);
out:
    /* The handle must not keep pointers to this call's stack or headers. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hl);
    if (rc != MV_OK)
        http_client_resp_free(resp);
    return rc;
}
