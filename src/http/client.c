/* client.c: outbound HTTP(S) on one reused libcurl easy handle (see client.h).
 *
 * Invariants: the handle is reset before each request (curl_easy_reset keeps live connections,
 * so keep-alive reuse survives it) and every option is set again; no proxy is ever used (IMDS and
 * authority traffic must not leave the host through one, reference §1.1); redirects are not
 * followed; the response body never grows past the caller's cap. */
#include "http/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"

#define CLIENT_MAX_CA_BYTES (4 * 1024 * 1024)
#define CLIENT_ERR_MAX (PATH_MAX + 1024) /* a CA bundle path, a URL origin and curl's text */
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
    char ca_path[PATH_MAX]; /* for error messages: which bundle was trusted */
    char err[CLIENT_ERR_MAX];
};

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
    if (ca_file) {
        CHECK(mv_read_file(ca_file, CLIENT_MAX_CA_BYTES, &c->ca_pem, &c->ca_len));
        CHECK(mv_copy(c->ca_path, sizeof c->ca_path, ca_file));
    }
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

mv_rc http_client_new_trusting(const char *extra_pem, size_t len, struct http_client **out)
{
    mv_rc rc = MV_OK;
    mv_buf pem;
    char *part = NULL;
    size_t plen = 0;
    mv_buf_init(&pem, 2 * CLIENT_MAX_CA_BYTES);
    CHECK(http_client_new(NULL, out));
    if (!extra_pem || len == 0)
        goto out;
    /* The system store first (libcurl's default bundle), then the extra CAs. */
    const curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
    const char *sys = vi && vi->cainfo ? vi->cainfo : "/etc/ssl/certs/ca-certificates.crt";
    if (mv_read_file(sys, CLIENT_MAX_CA_BYTES, &part, &plen) == MV_OK) {
        CHECK(mv_buf_add(&pem, part, plen));
        CHECK(mv_buf_add(&pem, "\n", 1));
    }
    CHECK(mv_buf_add(&pem, extra_pem, len));
    (*out)->ca_pem = malloc(pem.len + 1);
    ENSURE((*out)->ca_pem != NULL, MV_ERR_INTERNAL);
    memcpy((*out)->ca_pem, pem.p, pem.len);
    (*out)->ca_pem[pem.len] = '\0';
    (*out)->ca_len = pem.len;
    CHECK(mv_copy((*out)->ca_path, sizeof (*out)->ca_path, "the system store and --trust-ca"));
out:
    if (rc != MV_OK) {
        http_client_free(*out);
        *out = NULL;
    }
    free(part);
    mv_buf_free(&pem);
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
    /* Bodies carry tokens, secret values and backups: wiped. */
    mv_buf_free_secret(&resp->body);
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

const char *http_client_error(const struct http_client *c) { return c->err; }

/* "https://host:port" of url, and its host, for messages; the URL itself if curl cannot parse
 * it. Never the path or query: those may carry more than a person needs to see. */
static void url_origin(const char *url, char *origin, size_t olen, char *host, size_t hlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *h = NULL, *port = NULL;
    snprintf(origin, olen, "%s", url);
    snprintf(host, hlen, "%s", url);
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
        snprintf(host, hlen, "%s", h);
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
            snprintf(origin, olen, "%s://%s:%s", scheme, h, port);
        else
            snprintf(origin, olen, "%s://%s", scheme, h);
    }
    curl_free(scheme);
    curl_free(h);
    curl_free(port);
    curl_url_cleanup(u);
}

/* X.509 verification results that mean "no trusted CA vouches for this certificate". */
static int untrusted_issuer(long v)
{
    return v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
           v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT || v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
           v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
           v == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
           v == X509_V_ERR_CERT_SIGNATURE_FAILURE;
}

/* Says what a failed transfer could not do, in words a person can act on (curl's codes plus its
 * error buffer, the TLS verification result and the socket errno). */
static void explain(struct http_client *c, CURLcode cr, const char *url, const char *errbuf)
{
    char origin[300], host[260];
    long verify = 0, oserr = 0;
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cr);
    url_origin(url, origin, sizeof origin, host, sizeof host);
    switch (cr) {
    case CURLE_PEER_FAILED_VERIFICATION: /* also CURLE_SSL_CACERT since curl 7.62 */
        if (curl_easy_getinfo(c->h, CURLINFO_SSL_VERIFYRESULT, &verify) != CURLE_OK)
            verify = -1;
        /* curl checks the name itself after OpenSSL verified the chain, and then reports
         * X509_V_ERR_UNSPECIFIED with "... does not match target host name" (curl 7.88). */
        if (verify == X509_V_OK || verify == X509_V_ERR_HOSTNAME_MISMATCH ||
            verify == X509_V_ERR_IP_ADDRESS_MISMATCH ||
            (verify == X509_V_ERR_UNSPECIFIED && strstr(detail, "target host name")))
            snprintf(c->err, sizeof c->err, "TLS: the server's certificate does not name %s (%s)",
                     host, origin);
        else if (untrusted_issuer(verify))
            snprintf(c->err, sizeof c->err,
                     "TLS: certificate not signed by a trusted CA (CA bundle: %s) at %s",
                     c->ca_path[0] ? c->ca_path : "the system's CA store", origin);
        else if (verify > 0)
            snprintf(c->err, sizeof c->err, "TLS: the server's certificate at %s was refused: %s",
                     origin, X509_verify_cert_error_string(verify));
        else
            snprintf(c->err, sizeof c->err, "TLS: %s (%s)", detail, origin);
        break;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(c->err, sizeof c->err, "TLS: cannot use the CA bundle %s: %s",
                 c->ca_path[0] ? c->ca_path : "(system)", detail);
        break;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(c->err, sizeof c->err, "TLS: the handshake with %s failed: %s", origin, detail);
        break;
    case CURLE_COULDNT_CONNECT:
        if (curl_easy_getinfo(c->h, CURLINFO_OS_ERRNO, &oserr) == CURLE_OK && oserr == ECONNREFUSED)
            snprintf(c->err, sizeof c->err, "cannot reach the server at %s: connection refused", origin);
        else
            snprintf(c->err, sizeof c->err, "cannot reach the server at %s: %s", origin, detail);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(c->err, sizeof c->err, "cannot reach the server at %s: cannot resolve %s", origin, host);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(c->err, sizeof c->err, "cannot reach the server at %s: timed out (%s)", origin, detail);
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        snprintf(c->err, sizeof c->err, "the server at %s dropped the connection: %s", origin, detail);
        break;
    default:
        snprintf(c->err, sizeof c->err, "%s: %s", origin, detail);
        break;
    }
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
    c->err[0] = '\0';

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
    if ((cr == CURLE_WRITE_ERROR && x.over_cap) || cr == CURLE_FILESIZE_EXCEEDED) {
        snprintf(c->err, sizeof c->err, "the response is over %zu bytes", max_resp);
        ENSURE_MSG(0, MV_ERR_LIMIT, "%s %s: response body over %zu bytes", method, url, max_resp);
    }
    if (cr != CURLE_OK)
        explain(c, cr, url, errbuf);
    ENSURE_MSG(cr == CURLE_OK, MV_ERR_UNAVAILABLE, "%s %s: %s", method, url, c->err);
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
