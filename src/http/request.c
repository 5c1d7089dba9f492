/* request.c: from an evhttp request to an http_req, and the replies (see server.h).
 *
 * Invariants: http_dispatch hands the handler a request whose path is percent-decoded, free of
 * NUL bytes and within MV_MAX_URI_BYTES; whose Host is lower-cased and split from its port; and
 * whose body is complete and within the evhttp limits. Every request gets exactly one reply:
 * a second reply is a logged no-op and a missing one becomes a logged 500. Per-request memory
 * (decoded path, query pairs) is freed when the handler returns. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <event2/util.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "http/head.h"
#include "http/internal.h"
#include "http/reply.h"
#include "http/server.h"

#define HTTP_TLS_RECORD_BYTES 16384 /* RFC 8446 §5.1: 2^14 bytes of plaintext per record */

static enum http_method method_of(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return HTTP_GET;
    case EVHTTP_REQ_POST: return HTTP_POST;
    case EVHTTP_REQ_PUT: return HTTP_PUT;
    case EVHTTP_REQ_PATCH: return HTTP_PATCH;
    case EVHTTP_REQ_DELETE: return HTTP_DELETE;
    case EVHTTP_REQ_HEAD: return HTTP_HEAD;
    default: return HTTP_OTHER;
    }
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Request target (RFC 9112 §3.2 origin-form): path starting with '/', optional query. */
mv_rc http_parse_target(http_req *req, const char *uri, const struct evhttp_uri *u)
{
    mv_rc rc = MV_OK;
    char *own = NULL;
    ENSURE(uri != NULL && u != NULL, MV_ERR_BAD_REQUEST);
    ENSURE_MSG(strlen(uri) <= MV_MAX_URI_BYTES, MV_ERR_BAD_REQUEST, "request URI too long");
    const char *p = evhttp_uri_get_path(u);
    /* RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ], and RFC 9110 §4.1's
     * absolute-path = 1*( "/" segment ) allows empty segments, so "//metadata/endpoints" is a
     * path (msrestazure sends it for an ARM endpoint ending in '/'). evhttp parses such a target
     * as a network-path reference with authority "metadata"; take the path from the target. */
    if (uri[0] == '/' && uri[1] == '/') {
        own = strndup(uri, strcspn(uri, "?#"));
        ENSURE(own != NULL, MV_ERR_INTERNAL);
        p = own;
    }
    ENSURE_MSG(p != NULL && p[0] == '/', MV_ERR_BAD_REQUEST, "request path not absolute");
    /* RFC 3986 §2.1: a '%' must start a pct-encoded triplet (evhttp_uridecode would pass a
     * malformed one through as-is). */
    for (const char *c = p; *c; c++)
        if (*c == '%')
            ENSURE_MSG(is_hex(c[1]) && is_hex(c[2]), MV_ERR_BAD_REQUEST, "bad escape in path");
    size_t n = 0;
    /* decode_plus = 0: '+' is a literal plus in a path (only forms turn it into a space). */
    req->path = evhttp_uridecode(p, 0, &n);
    ENSURE(req->path != NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(strlen(req->path) == n, MV_ERR_BAD_REQUEST, "NUL byte in path");
    req->raw_query = evhttp_uri_get_query(u);
    req->query_ok = 1;
    if (req->raw_query && kv_parse(req->raw_query, strlen(req->raw_query), &req->query) != MV_OK)
        req->query_ok = 0;
out:
    free(own);
    return rc;
}

/* Host (RFC 9110 §7.2): uri-host [ ":" port ]; an IPv6 literal keeps its brackets. */
mv_rc http_parse_host(http_req *req, const char *h)
{
    mv_rc rc = MV_OK;
    if (!h)
        goto out;
    CHECK(mv_copy(req->host, sizeof req->host, h));
    mv_lower(req->host);
    char *colon = NULL;
    if (req->host[0] == '[') {
        char *end = strchr(req->host, ']');
        ENSURE_MSG(end != NULL && (end[1] == '\0' || end[1] == ':'), MV_ERR_BAD_REQUEST,
                   "bad IPv6 Host");
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strchr(req->host, ':');
        ENSURE_MSG(!colon || !strchr(colon + 1, ':'), MV_ERR_BAD_REQUEST, "bad Host");
    }
    if (colon) {
        const char *d = colon + 1;
        long port = 0;
        ENSURE_MSG(*d != '\0' && strlen(d) <= 5, MV_ERR_BAD_REQUEST, "bad Host port");
        for (; *d; d++) {
            ENSURE_MSG(*d >= '0' && *d <= '9', MV_ERR_BAD_REQUEST, "bad Host port");
            port = port * 10 + (*d - '0');
        }
        ENSURE_MSG(port >= 1 && port <= 65535, MV_ERR_BAD_REQUEST, "bad Host port");
        req->host_port = (int)port;
        *colon = '\0';
    }
out:
    if (rc != MV_OK) {
        req->host[0] = '\0';
        req->host_port = 0;
    }
    return rc;
}

/* evhttp reads a body only for POST, PUT and PATCH. Bytes sent after the headers of any other
 * request would be parsed as the next request on the connection, so such a request is refused
 * and the connection closed (RFC 9112 §6.3 lets a server close when framing is in doubt). */
static int stray_body(const http_req *req)
{
    if (req->method == HTTP_POST || req->method == HTTP_PUT || req->method == HTTP_PATCH)
        return 0;
    const char *cl = http_header(req, "Content-Length");
    return http_header(req, "Transfer-Encoding") != NULL || (cl && strcmp(cl, "0") != 0);
}

/* x-ms-request-id: a version-4 UUID as mv_uuid makes it (RFC 9562 §5.4), from a per-thread
 * pool of RAND_bytes output drawn REQID_POOL bytes at a time: one DRBG call per 256 requests
 * instead of one each (with its snprintf, it was 15 % of a cached IMDS reply's instructions,
 * docs/benchmarks.md "What changed: agent"). Request ids are not secrets. */
#define REQID_POOL 4096
static _Thread_local unsigned char reqid_pool[REQID_POOL];
static _Thread_local size_t reqid_used = REQID_POOL;

static mv_rc request_id(char out[MV_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    if (reqid_used + 16 > REQID_POOL) {
        mv_rc rc = mv_random(reqid_pool, sizeof reqid_pool);
        if (rc != MV_OK)
            return rc;
        reqid_used = 0;
    }
    unsigned char *b = reqid_pool + reqid_used;
    reqid_used += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
    return MV_OK;
}

/* RFC 9110 §6.6.1: the Date header, which evhttp would otherwise format for every reply
 * (gmtime + snprintf); here once per second per thread, in evhttp's own format. */
static const char *http_date(void)
{
    static _Thread_local char date[64];
    static _Thread_local time_t date_at = (time_t)-1;
    time_t now = time(NULL);
    if (now != date_at) {
        struct tm tm;
        if (!gmtime_r(&now, &tm) || evutil_date_rfc1123(date, sizeof date, &tm) <= 0)
            return NULL;
        date_at = now;
    }
    return date;
}

/* A request the gate refused before routing (gate.c): "STATUS SHAPE" in HTTP_REFUSED_HEADER,
 * answered in the plane's shape with fixed texts; the connection closes with the reply. */
static int reply_refusal(http_req *req)
{
    static const struct {
        int status;
        const char *code, *message;
    } tab[] = {
        {400, "BadRequest", "The request is malformed."},
        {411, "LengthRequired", "A Content-Length is required."},
        {413, "RequestTooLarge", "The request content is too large."},
        {431, "RequestHeaderFieldsTooLarge", "The request headers are too large."},
    };
    const char *r = http_header(req, HTTP_REFUSED_HEADER);
    if (!r)
        return 0;
    int status = 500;
    if (strlen(r) == 5 && r[0] >= '1' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9' &&
        r[2] >= '0' && r[2] <= '9')
        status = (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0');
    const char *code = "InternalServerError", *message = "Internal server error.";
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (tab[i].status == status) {
            code = tab[i].code;
            message = tab[i].message;
        }
    http_set_header(req, "Connection", "close");
    if (r[strlen(r) - 1] == 'o')
        reply_oauth_error(req, status, "invalid_request", message);
    else
        reply_azure_error(req, status, code, message, NULL);
    return 1;
}

static int connection_is_tls(struct evhttp_request *ev)
{
    struct evhttp_connection *c = evhttp_request_get_connection(ev);
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

void http_dispatch(struct evhttp_request *ev, void *arg)
{
    const struct http_dispatch_ctx *ctx = arg;
    http_req req;
    memset(&req, 0, sizeof req);
    req.ev = ev;
    req.start_ns = mv_metrics_now_ns();
    req.worker = ctx->worker;
    req.method = method_of(evhttp_request_get_command(ev));
    if (request_id(req.request_id) != MV_OK) {
        evhttp_send_error(ev, 500, NULL);
        return;
    }
    int close_after = 0;
    http_gate_dispatched(ctx->gate, ev, &close_after);
    if (close_after)
        http_set_header(&req, "Connection", "close");
    if (reply_refusal(&req))
        goto out;
    if (ctx->tls && !connection_is_tls(ev)) {
        http_set_header(&req, "Connection", "close");
        reply_rc_azure(&req, MV_ERR_INTERNAL);
        goto out;
    }
    if (http_parse_target(&req, evhttp_request_get_uri(ev), evhttp_request_get_evhttp_uri(ev)) !=
        MV_OK) {
        reply_azure_error(&req, 400, "BadParameter", "Invalid request URI.", NULL);
        goto out;
    }
    if (http_parse_host(&req, http_header(&req, "Host")) != MV_OK) {
        reply_azure_error(&req, 400, "BadParameter", "Invalid Host header.", NULL);
        goto out;
    }
    if (stray_body(&req)) {
        http_set_header(&req, "Connection", "close");
        reply_azure_error(&req, 400, "BadParameter", "This request must not have a body.", NULL);
        goto out;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(ev);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (!body) {
        reply_rc_azure(&req, MV_ERR_INTERNAL);
        goto out;
    }
    req.body = (mv_slice){body, len};

    ctx->handler(&req);
    if (!req.replied) {
        LOG_ERROR("handler returned without a reply (request %s)", req.request_id);
        reply_rc_azure(&req, MV_ERR_INTERNAL);
    }
out:
    free(req.path);
    kv_free(&req.query);
}

http_req *http_defer(http_req *req)
{
    if (req->replied)
        return NULL;
    http_req *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    *d = *req;
    d->path = NULL;
    d->raw_query = NULL;
    memset(&d->query, 0, sizeof d->query);
    d->query_ok = 0;
    d->body = (mv_slice){NULL, 0};
    req->replied = 1; /* answered through d from now on */
    return d;
}

void http_deferred_free(http_req *d)
{
    if (d && !d->replied) {
        LOG_ERROR("deferred request %s freed without a reply", d->request_id);
        http_reply(d, 500, NULL, NULL, 0);
    }
    free(d);
}

const char *http_header(const http_req *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

int http_header_count(const http_req *req, const char *name)
{
    int n = 0;
    const struct evkeyval *kv;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req->ev), next)
        if (strcasecmp(kv->key, name) == 0)
            n++;
    return n;
}

void http_set_header(http_req *req, const char *name, const char *value)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req->ev);
    evhttp_remove_header(h, name);
    /* evhttp refuses CR/LF in names and values (no header injection). */
    if (evhttp_add_header(h, name, value) != 0)
        LOG_ERROR("refused to set header %s", name);
}

/* RFC 9110 §15 reason phrases (413 keeps its RFC 7231 name, which clients know). */
static const char *reason(int status)
{
    static const struct {
        int code;
        const char *text;
    } tab[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Payload Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {431, "Request Header Fields Too Large"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (tab[i].code == status)
            return tab[i].text;
    return status < 300 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
}

/* The reply in the metrics: the request by plane, route and status with its latency; a token
 * route's 200 as a token issued; the agent's 429s. */
static void count(const http_req *req, int status)
{
    const char *plane = req->m_plane ? req->m_plane : "http";
    static const char *const METHODS[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OTHER"};
    mv_metric_request(plane, req->m_route ? req->m_route : "unrouted", METHODS[req->method], status,
                      mv_metrics_now_ns() - req->start_ns);
    if (req->m_token && status == 200)
        mv_metric_inc(MV_M_TOKENS_ISSUED, plane, NULL);
    if (status == 429 && req->m_plane && strcmp(req->m_plane, "imds") == 0)
        mv_metric_inc(MV_M_IMDS_THROTTLED, NULL, NULL);
}

void http_reply(http_req *req, int status, const char *content_type, const char *body, size_t len)
{
    if (req->replied) {
        LOG_ERROR("second reply (status %d) to request %s ignored", status, req->request_id);
        return;
    }
    req->replied = 1;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req->ev);
    evhttp_remove_header(h, "x-ms-request-id");
    evhttp_add_header(h, "x-ms-request-id", req->request_id);
    struct evbuffer *b = NULL;
    if (req->method == HTTP_HEAD && status != 204 && body && len) {
        /* RFC 9110 §9.3.2: HEAD gets GET's header fields without the content. evhttp would send
         * whatever is in the buffer, so the length goes in a header and the body stays here. */
        char n[32];
        if (mv_fmt(n, sizeof n, "%zu", len) == MV_OK)
            http_set_header(req, "Content-Length", n);
        len = 0;
    }
    /* RFC 9110 §15.3.5: a 204 response cannot contain content. */
    if (status != 204 && body && len) {
        b = evbuffer_new();
        if (!b || evbuffer_add(b, body, len) != 0) {
            LOG_ERROR("out of memory building a reply");
            if (b)
                evbuffer_free(b);
            evhttp_send_reply(req->ev, 500, reason(500), NULL);
            return;
        }
    }
    if (content_type && status != 204)
        http_set_header(req, "Content-Type", content_type);
    const char *date = http_date();
    if (date && !evhttp_find_header(h, "Date"))
        evhttp_add_header(h, "Date", date);
    /* evhttp writes the status line and headers into the connection's output buffer and then
     * links the body's chain after them; bufferevent_openssl then makes one SSL_write, one TLS
     * record and one write(2) per chain. A reply that fits one record is made contiguous here,
     * before the loop writes it: one record and one syscall instead of two (docs/benchmarks.md,
     * vault path). Taken before sending: the request may be gone after. */
    struct evhttp_connection *conn = evhttp_request_get_connection(req->ev);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    if (bev && !bufferevent_openssl_get_ssl(bev))
        bev = NULL;
    evhttp_send_reply(req->ev, status, reason(status), b);
    if (b)
        evbuffer_free(b);
    count(req, status);
    if (bev) {
        struct evbuffer *out = bufferevent_get_output(bev);
        if (evbuffer_get_length(out) <= HTTP_TLS_RECORD_BYTES)
            evbuffer_pullup(out, -1);
    }
}

void http_reply_json(http_req *req, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        LOG_ERROR("could not serialise a JSON reply (status %d)", status);
        static const char fallback[] =
            "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"Internal server error.\"}}";
        http_reply(req, 500, "application/json; charset=utf-8", fallback, sizeof fallback - 1);
        return;
    }
    http_reply(req, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}
