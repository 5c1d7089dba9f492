/* test_http_server.c: the evhttp server (http/server.h, http/reply.h) and the libcurl client
 * (http/client.h) against each other on loopback, plain and TLS, plus raw-socket requests for
 * what a well-behaved client never sends (oversized bodies and headers, bad paths, stray bodies).
 *
 * Regression guards named after what they guard: the 413 arrives before the body is read, the
 * body at exactly max_body is accepted, a GET body is never parsed as a second request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "http/client.h"
#include "http/reply.h"
#include "http/server.h"

#define MAX_BODY 4096
#define MAX_HEADERS 8192
#define RAW_MAX (64 * 1024)

static atomic_int workers_live;
static atomic_int workers_freed;

/* ---------------------------------------------------------------- server side */

struct worker {
    int idx;
};

static void *worker_init(int idx, struct event_base *base, void *arg)
{
    (void)arg;
    assert_non_null(base);
    if (idx == *(const int *)arg)
        return NULL; /* the failing-init test asks loop `arg` to fail */
    struct worker *w = malloc(sizeof *w);
    w->idx = idx;
    atomic_fetch_add(&workers_live, 1);
    return w;
}

static void worker_free(void *p)
{
    free(p);
    atomic_fetch_add(&workers_freed, 1);
}

static int conn_fd_info(const http_req *req, int *peer_port)
{
    struct evhttp_connection *c = evhttp_request_get_connection(req->ev);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c);
    int fd = (int)bufferevent_getfd(bev);
    int nodelay = 0;
    socklen_t l = sizeof nodelay;
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &l) != 0)
        nodelay = -1;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    *peer_port = getpeername(fd, (struct sockaddr *)&sa, &sl) == 0 ? ntohs(sa.sin_port) : 0;
    return nodelay;
}

static const char *method_name(enum http_method m)
{
    static const char *n[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OTHER"};
    return n[m];
}

static void handler(http_req *req)
{
    if (strcmp(req->path, "/noreply") == 0)
        return;
    if (strcmp(req->path, "/twice") == 0) {
        http_reply(req, 202, "text/plain", "first", 5);
        http_reply(req, 500, "text/plain", "second", 6);
        return;
    }
    if (strcmp(req->path, "/nocontent") == 0) {
        http_reply(req, 204, "text/plain", "ignored", 7);
        return;
    }
    if (strcmp(req->path, "/throttle") == 0) {
        reply_rc_azure(req, MV_ERR_THROTTLED);
        return;
    }
    if (strcmp(req->path, "/oauth") == 0) {
        http_set_header(req, "WWW-Authenticate", "Bearer authorization=\"https://x/t\", resource=\"https://v\"");
        reply_rc_oauth(req, MV_ERR_UNAUTHENTICATED);
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        static char big[10000];
        memset(big, 'x', sizeof big);
        http_reply(req, 200, "text/plain", big, sizeof big);
        return;
    }
    if (strcmp(req->path, "/inner") == 0) {
        reply_azure_error(req, 403, "Forbidden", "Caller is not authorized.", "ForbiddenByRbac");
        return;
    }
    int peer_port = 0;
    int nodelay = conn_fd_info(req, &peer_port);
    json_t *q = json_object();
    for (size_t i = 0; i < req->query.n; i++)
        if (!json_object_get(q, req->query.name[i])) /* first one wins, as kv_get */
            json_object_set_new(q, req->query.name[i], json_string(req->query.value[i]));
    const struct worker *w = req->worker;
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:s?, s:o, s:b, s:b, s:I, s:s, s:i, s:i, s:i, s:i, s:s?}",
                              "method", method_name(req->method), "path", req->path, "raw_query",
                              req->raw_query, "query", q, "query_ok", req->query_ok, "dup",
                              req->query.has_dup, "body_len", (json_int_t)req->body.len, "host",
                              req->host, "host_port", req->host_port, "nodelay", nodelay,
                              "peer_port", peer_port, "worker", w ? w->idx : -1, "hdr",
                              http_header(req, "X-Test")));
}

struct fixture {
    struct http_server *srv;
    int port;
    int fail_idx;
    char base[64];
};

static struct http_server_cfg plain_cfg(int *fail_idx)
{
    struct http_server_cfg cfg = {
        .addr = "127.0.0.1",
        .port = 0,
        .threads = 2,
        .max_body = MAX_BODY,
        .max_headers = MAX_HEADERS,
        .timeout_secs = 5,
        .handler = handler,
        .worker_init = worker_init,
        .worker_free = worker_free,
        .arg = fail_idx,
    };
    return cfg;
}

static int setup_with(void **state, int changelist)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    f.fail_idx = -1;
    atomic_store(&workers_live, 0);
    atomic_store(&workers_freed, 0);
    struct http_server_cfg cfg = plain_cfg(&f.fail_idx);
    cfg.epoll_changelist = changelist;
    if (http_server_start(&cfg, &f.srv) != MV_OK)
        return -1;
    f.port = http_server_port(f.srv);
    snprintf(f.base, sizeof f.base, "http://127.0.0.1:%d", f.port);
    *state = &f;
    return 0;
}

static int setup(void **state) { return setup_with(state, 0); }
/* The same tests on loops with libevent's epoll changelist (what the agent uses). */
static int setup_changelist(void **state) { return setup_with(state, 1); }

static int teardown(void **state)
{
    struct fixture *f = *state;
    http_server_stop(f->srv);
    http_server_wait(f->srv);
    /* every loop freed its worker on the way out */
    int live = atomic_load(&workers_live), freed = atomic_load(&workers_freed);
    http_server_free(f->srv);
    return live == 2 && freed == 2 ? 0 : -1;
}

/* ---------------------------------------------------------------- raw socket helpers */

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void raw_send(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        assert_true(w > 0);
        p += w;
        len -= (size_t)w;
    }
}

struct raw_resp {
    char buf[RAW_MAX];
    size_t len;
    int status;
    const char *body; /* inside buf */
    size_t body_len;
    int closed;       /* the server closed the connection after it */
};

/* Reads one response (headers + Content-Length body). Returns 0 if none came. */
static int raw_read(int fd, struct raw_resp *r)
{
    memset(r, 0, sizeof *r);
    size_t need = 0;
    char *hend = NULL;
    for (;;) {
        if (hend && r->len >= need)
            break;
        ssize_t n = recv(fd, r->buf + r->len, sizeof r->buf - 1 - r->len, 0);
        if (n <= 0) {
            r->closed = 1;
            break;
        }
        r->len += (size_t)n;
        r->buf[r->len] = '\0';
        if (!hend && (hend = strstr(r->buf, "\r\n\r\n")) != NULL) {
            long cl = 0;
            const char *c = strcasestr(r->buf, "\r\nContent-Length:");
            if (c && c < hend)
                cl = strtol(c + 17, NULL, 10);
            need = (size_t)(hend - r->buf) + 4 + (size_t)cl;
        }
    }
    if (!hend)
        return 0;
    r->status = (int)strtol(r->buf + 9, NULL, 10);
    r->body = hend + 4;
    r->body_len = r->len - (size_t)(hend + 4 - r->buf);
    return 1;
}

/* The same without waiting: 1 only if the close has already arrived. */
static int raw_peer_closed_nowait(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Whether the peer has closed: a further read gets EOF (or a reset). */
static int raw_peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static const char *raw_header(const struct raw_resp *r, const char *name, char *out, size_t outlen)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    const char *h = strcasestr(r->buf, pat);
    if (!h || h > r->body)
        return NULL;
    h += strlen(pat);
    while (*h == ' ')
        h++;
    size_t n = strcspn(h, "\r");
    if (n >= outlen)
        return NULL;
    memcpy(out, h, n);
    out[n] = '\0';
    return out;
}

static int raw_exchange(int port, const char *req, size_t len, struct raw_resp *r)
{
    int fd = raw_connect(port);
    raw_send(fd, req, len);
    int ok = raw_read(fd, r);
    close(fd);
    return ok ? r->status : 0;
}

static json_t *body_json(const char *p, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(p, len, 0, &e);
    assert_non_null(j);
    return j;
}

/* ---------------------------------------------------------------- client helpers */

static json_t *client_json(struct http_client *c, const char *method, const char *url,
                           const char *body, long want_status)
{
    struct http_client_resp resp;
    const char *hdrs[] = {"X-Test: yes", NULL};
    assert_int_equal(http_client_do(c, method, url, hdrs, body, body ? strlen(body) : 0, 65536,
                                    &resp),
                     MV_OK);
    assert_int_equal(resp.status, want_status);
    json_t *j = body_json(resp.body.p, resp.body.len);
    http_client_resp_free(&resp);
    return j;
}

/* ---------------------------------------------------------------- tests */

static void test_methods_routed(void **state)
{
    struct fixture *f = *state;
    struct http_client *c;
    assert_int_equal(http_client_new(NULL, &c), MV_OK);
    char url[256];
    snprintf(url, sizeof url, "%s/echo", f->base);
    static const struct {
        const char *m;
        const char *body;
        long len;
    } cases[] = {{"GET", NULL, 0}, {"POST", "a=1", 3}, {"PUT", "hello", 5},
                 {"PATCH", "{\"x\":1}", 7}, {"DELETE", NULL, 0}, {"POST", NULL, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = client_json(c, cases[i].m, url, cases[i].body, 200);
        assert_string_equal(json_string_value(json_object_get(j, "method")), cases[i].m);
        assert_string_equal(json_string_value(json_object_get(j, "path")), "/echo");
        assert_int_equal(json_integer_value(json_object_get(j, "body_len")), cases[i].len);
        assert_string_equal(json_string_value(json_object_get(j, "hdr")), "yes");
        assert_string_equal(json_string_value(json_object_get(j, "host")), "127.0.0.1");
        assert_int_equal(json_integer_value(json_object_get(j, "host_port")), f->port);
        /* the listener's TCP_NODELAY reached the accepted socket */
        assert_int_equal(json_integer_value(json_object_get(j, "nodelay")), 1);
        int w = (int)json_integer_value(json_object_get(j, "worker"));
        assert_true(w == 0 || w == 1);
        json_decref(j);
    }
    http_client_free(c);
}

static void test_path_and_query_decoded(void **state)
{
    struct fixture *f = *state;
    struct http_client *c;
    assert_int_equal(http_client_new(NULL, &c), MV_OK);
    char url[256];
    snprintf(url, sizeof url, "%s/secrets/a%%20b/c%%2Fd+e?x=1&y=%%41+b&x=2&flag", f->base);
    json_t *j = client_json(c, "GET", url, NULL, 200);
    /* '+' stays a plus in a path, '%2F' becomes '/' */
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/secrets/a b/c/d+e");
    assert_string_equal(json_string_value(json_object_get(j, "raw_query")), "x=1&y=%41+b&x=2&flag");
    json_t *q = json_object_get(j, "query");
    assert_string_equal(json_string_value(json_object_get(q, "x")), "1");
    assert_string_equal(json_string_value(json_object_get(q, "y")), "A b");
    assert_string_equal(json_string_value(json_object_get(q, "flag")), "");
    assert_true(json_is_true(json_object_get(j, "query_ok")));
    assert_true(json_is_true(json_object_get(j, "dup")));
    json_decref(j);

    /* an origin-form path may start with an empty segment: "//a/b" is a path, not an authority */
    const char dbl[] = "GET //meta%20data/endpoints?api-version=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct raw_resp *r = malloc(sizeof *r);
    assert_int_equal(raw_exchange(f->port, dbl, sizeof dbl - 1, r), 200);
    j = body_json(r->body, r->body_len);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "//meta data/endpoints");
    assert_string_equal(json_string_value(json_object_get(j, "raw_query")), "api-version=1");
    json_decref(j);
    free(r);

    /* a bad query escape reaches the handler with query_ok = 0 */
    snprintf(url, sizeof url, "%s/q?a=%%zz", f->base);
    j = client_json(c, "GET", url, NULL, 200);
    assert_true(json_is_false(json_object_get(j, "query_ok")));
    assert_int_equal(json_object_size(json_object_get(j, "query")), 0);
    json_decref(j);
    http_client_free(c);
}

static void test_request_id_and_reply_shapes(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    char h1[64], h2[64], v[128];
    const char get[] = "GET /echo HTTP/1.1\r\nHost: Example.COM:8443\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, get, sizeof get - 1, r), 200);
    assert_non_null(raw_header(r, "x-ms-request-id", h1, sizeof h1));
    assert_true(mv_is_uuid(h1));
    assert_string_equal(raw_header(r, "Content-Type", v, sizeof v), "application/json; charset=utf-8");
    assert_non_null(strstr(r->buf, "HTTP/1.1 200 OK\r\n"));
    json_t *j = body_json(r->body, r->body_len);
    assert_string_equal(json_string_value(json_object_get(j, "host")), "example.com");
    assert_int_equal(json_integer_value(json_object_get(j, "host_port")), 8443);
    json_decref(j);
    assert_int_equal(raw_exchange(f->port, get, sizeof get - 1, r), 200);
    assert_non_null(raw_header(r, "x-ms-request-id", h2, sizeof h2));
    assert_string_not_equal(h1, h2);
    /* RFC 9110 §6.6.1: a Date in IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") */
    assert_non_null(raw_header(r, "Date", v, sizeof v));
    assert_int_equal(strlen(v), 29);
    assert_string_equal(v + 25, " GMT");
    /* ids stay v4 UUIDs and distinct across refills of the per-thread random pool (256 each) */
    for (int i = 0; i < 300; i++) {
        assert_int_equal(raw_exchange(f->port, get, sizeof get - 1, r), 200);
        assert_non_null(raw_header(r, "x-ms-request-id", h1, sizeof h1));
        assert_true(mv_is_uuid(h1));
        assert_string_not_equal(h1, h2);
        memcpy(h2, h1, sizeof h2);
    }

    /* no reply from the handler: a logged 500 in the Azure shape */
    const char noreply[] = "GET /noreply HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, noreply, sizeof noreply - 1, r), 500);
    assert_non_null(strstr(r->buf, "500 Internal Server Error"));
    assert_non_null(raw_header(r, "x-ms-request-id", h1, sizeof h1));
    j = body_json(r->body, r->body_len);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "InternalServerError");
    json_decref(j);

    /* a second reply is ignored */
    const char twice[] = "GET /twice HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, twice, sizeof twice - 1, r), 202);
    assert_int_equal(r->body_len, 5);
    assert_memory_equal(r->body, "first", 5);

    /* 204: no body, no Content-Type */
    const char nc[] = "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, nc, sizeof nc - 1, r), 204);
    assert_int_equal(r->body_len, 0);
    assert_null(raw_header(r, "Content-Type", v, sizeof v));
    assert_non_null(raw_header(r, "x-ms-request-id", v, sizeof v));

    /* 429 carries Retry-After; others do not */
    const char th[] = "GET /throttle HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, th, sizeof th - 1, r), 429);
    assert_non_null(strstr(r->buf, "429 Too Many Requests"));
    assert_string_equal(raw_header(r, "Retry-After", v, sizeof v), "10");
    j = body_json(r->body, r->body_len);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "Throttled");
    json_decref(j);
    const char oa[] = "GET /oauth HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, oa, sizeof oa - 1, r), 401);
    assert_non_null(strstr(r->buf, "401 Unauthorized"));
    assert_null(raw_header(r, "Retry-After", v, sizeof v));
    j = body_json(r->body, r->body_len);
    assert_string_equal(json_string_value(json_object_get(j, "error")), "invalid_client");
    assert_non_null(json_string_value(json_object_get(j, "error_description")));
    json_decref(j);
    const char in[] = "GET /inner HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, in, sizeof in - 1, r), 403);
    assert_string_equal(r->body, "{\"error\":{\"code\":\"Forbidden\",\"message\":\"Caller is not "
                                 "authorized.\",\"innererror\":{\"code\":\"ForbiddenByRbac\"}}}");

    /* HEAD: headers only */
    const char hd[] = "HEAD /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    int fd = raw_connect(f->port);
    raw_send(fd, hd, sizeof hd - 1);
    char buf[2048];
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(buf, "x-ms-request-id: "));
    assert_non_null(strcasestr(buf, "Content-Type: application/json"));
    assert_null(strcasestr(buf, "Content-Length: 0\r\n")); /* the GET length, not 0 */
    const char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    assert_int_equal(got, (size_t)(end + 4 - buf));
    free(r);
}

static void test_keepalive_reuse(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    /* three requests, one connection */
    int fd = raw_connect(f->port);
    for (int i = 0; i < 3; i++) {
        const char put[] = "PUT /k HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        raw_send(fd, put, sizeof put - 1);
        assert_true(raw_read(fd, r));
        assert_int_equal(r->status, 200);
        assert_false(r->closed);
        json_t *j = body_json(r->body, r->body_len);
        assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 3);
        json_decref(j);
    }
    close(fd);

    /* libcurl reuses its connection: the server sees one client port */
    struct http_client *c;
    assert_int_equal(http_client_new(NULL, &c), MV_OK);
    char url[128];
    snprintf(url, sizeof url, "%s/ka", f->base);
    json_t *a = client_json(c, "GET", url, NULL, 200);
    json_t *b = client_json(c, "PUT", url, "x", 200);
    json_t *d = client_json(c, "GET", url, NULL, 200);
    json_int_t pa = json_integer_value(json_object_get(a, "peer_port"));
    assert_true(pa > 0);
    assert_int_equal(pa, json_integer_value(json_object_get(b, "peer_port")));
    assert_int_equal(pa, json_integer_value(json_object_get(d, "peer_port")));
    json_decref(a);
    json_decref(b);
    json_decref(d);
    http_client_free(c);
    free(r);
}

static void test_413_before_body_is_read(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    int fd = raw_connect(f->port);
    const char req[] = "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 50000000\r\n\r\n0123456789";
    int64_t t0 = mv_now_ms();
    raw_send(fd, req, sizeof req - 1);
    assert_true(raw_read(fd, r));
    int64_t dt = mv_now_ms() - t0;
    assert_int_equal(r->status, 413);
    assert_true(dt < 2000);
    /* and the connection does not wait for the other 49,999,990 bytes */
    assert_true(raw_peer_closed(fd));
    close(fd);

    /* one byte over max_body, declared: 413 */
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n",
                     MAX_BODY + 1);
    fd = raw_connect(f->port);
    raw_send(fd, hdr, (size_t)n);
    assert_true(raw_read(fd, r));
    assert_int_equal(r->status, 413);
    close(fd);

    /* chunked: one declared chunk over the cap is refused before its data arrives */
    const char ch1[] = "POST /x HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2FAF080\r\n0123456789";
    fd = raw_connect(f->port);
    t0 = mv_now_ms();
    raw_send(fd, ch1, sizeof ch1 - 1);
    assert_true(raw_read(fd, r));
    assert_int_equal(r->status, 413);
    assert_true(mv_now_ms() - t0 < 2000);
    close(fd);

    /* chunked: small chunks that add up to more than the cap are cut off */
    fd = raw_connect(f->port);
    const char ch2[] = "POST /x HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    raw_send(fd, ch2, sizeof ch2 - 1);
    char chunk[1100];
    memcpy(chunk, "400\r\n", 5);
    memset(chunk + 5, 'z', 1024);
    memcpy(chunk + 5 + 1024, "\r\n", 2);
    int status = 0;
    for (int i = 0; i < 8 && !status; i++) {
        if (send(fd, chunk, 5 + 1024 + 2, MSG_NOSIGNAL) <= 0)
            break;
        if (i == 4) /* 5 KiB sent: over the 4 KiB cap */
            status = raw_read(fd, r) ? r->status : -1;
    }
    assert_int_equal(status, 413);
    close(fd);
    free(r);
}

static void test_body_at_exactly_max_accepted(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    char *req = malloc(256 + MAX_BODY);
    int n = snprintf(req, 256, "PUT /exact HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n",
                     MAX_BODY);
    memset(req + n, 'b', MAX_BODY);
    assert_int_equal(raw_exchange(f->port, req, (size_t)n + MAX_BODY, r), 200);
    json_t *j = body_json(r->body, r->body_len);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), MAX_BODY);
    json_decref(j);

    /* the same through chunks */
    int m = snprintf(req, 256, "POST /exact HTTP/1.1\r\nHost: a\r\nAuthorization: x\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n%x\r\n",
                     MAX_BODY);
    memset(req + m, 'c', MAX_BODY);
    memcpy(req + m + MAX_BODY, "\r\n0\r\n\r\n", 7);
    assert_int_equal(raw_exchange(f->port, req, (size_t)m + MAX_BODY + 7, r), 200);
    j = body_json(r->body, r->body_len);
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), MAX_BODY);
    json_decref(j);
    free(req);
    free(r);
}

static void test_oversize_headers_refused(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    size_t cap = MAX_HEADERS + 1024;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "GET /h HTTP/1.1\r\nHost: a\r\nX-Big: ");
    memset(req + n, 'h', MAX_HEADERS);
    memcpy(req + n + MAX_HEADERS, "\r\n\r\n", 4);
    int st = raw_exchange(f->port, req, (size_t)n + MAX_HEADERS + 4, r);
    assert_true(st >= 400 && st < 500);
    free(req);
    free(r);
}

static void test_bad_targets_refused(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    static const char *bad[] = {
        "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",  /* NUL after decoding */
        "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n",   /* bad escape */
        "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n",    /* truncated escape */
        "GET /a HTTP/1.1\r\nHost: a:99999\r\n\r\n", /* bad Host port */
        "GET /a HTTP/1.1\r\nHost: a:b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(raw_exchange(f->port, bad[i], strlen(bad[i]), r), 400);
        json_t *j = body_json(r->body, r->body_len);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                            "BadParameter");
        json_decref(j);
    }
    const char nul[] = "GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, nul, sizeof nul - 1, r), 400);
    assert_string_equal(r->body,
                        "{\"error\":{\"code\":\"BadParameter\",\"message\":\"Invalid request URI.\"}}");

    /* a URI longer than MV_MAX_URI_BYTES (headers cap is 8 KiB, so it reaches the server code) */
    char *req = malloc(6000);
    int n = snprintf(req, 6000, "GET /");
    memset(req + n, 'p', 5000);
    n += 5000;
    n += snprintf(req + n, (size_t)(6000 - n), " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(raw_exchange(f->port, req, (size_t)n, r), 400);
    free(req);

    /* a method evhttp is not allowed to serve */
    const char opt[] = "OPTIONS /a HTTP/1.1\r\nHost: a\r\n\r\n";
    int st = raw_exchange(f->port, opt, sizeof opt - 1, r);
    assert_true(st >= 400);
    free(r);
}

static void test_get_body_not_parsed_as_request(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
    const char smuggle[] = "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 34\r\n\r\n"
                           "GET /noreply HTTP/1.1\r\nHost: a\r\n\r\n";
    int fd = raw_connect(f->port);
    raw_send(fd, smuggle, sizeof smuggle - 1);
    assert_true(raw_read(fd, r));
    assert_int_equal(r->status, 400);
    /* nothing else comes: the connection is closed, not read as a second request */
    assert_true(raw_peer_closed(fd));
    close(fd);
    /* Content-Length: 0 on a DELETE is fine (SDKs send it) */
    const char del[] = "DELETE /d HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, del, sizeof del - 1, r), 200);
    free(r);
}

/* Issue 8 point 5: what evhttp's lenient parser accepted is refused with 400 and a close, before
 * routing; a request smuggled behind such a head never runs. */
static void test_framing_refused(void **state)
{
    struct fixture *f = *state;
    struct raw_resp *r = malloc(sizeof *r);
#define SMUGGLED "GET /twice HTTP/1.1\r\nHost: a\r\n\r\n"
    static const struct {
        const char *req;
        size_t len;
    } bad[] = {
#define C(s) {s, sizeof s - 1}
        C("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 34\r\n\r\n" SMUGGLED),
        C("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n" SMUGGLED),
        C("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +0\r\n\r\n" SMUGGLED),
        C("POST /echo HTTP/1.1\r\nHost: a\r\nX-Test: a\0b\r\nContent-Length: 0\r\n\r\n" SMUGGLED),
        C("GET /echo HTTP/1.1\r\n\r\n" SMUGGLED),                             /* 1.1 without Host */
        C("GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" SMUGGLED),
        C("GET /echo HTTP/1.1\r\nHost: a\r\n X-Fold: b\r\n\r\n" SMUGGLED),   /* obs-fold */
        C("GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n" SMUGGLED),    /* bare CR */
        C("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        C("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        C("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx"),
        C("GET /echo HTTP/1.1\r\nHost: a\r\nX-Mivault-Refused: 200 a\r\n\r\n"),
        C("GET  /echo HTTP/1.1\r\nHost: a\r\n\r\n"),
        C("GET /echo HTTP/1.2\r\nHost: a\r\n\r\n"),
#undef C
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = raw_connect(f->port);
        raw_send(fd, bad[i].req, bad[i].len);
        assert_true(raw_read(fd, r));
        if (r->status != 400)
            fail_msg("case %zu: status %d", i, r->status);
        assert_null(strstr(r->buf, "first")); /* /twice never ran */
        assert_true(raw_peer_closed(fd));
        close(fd);
    }
    /* HTTP/1.0 needs no Host; pipelined requests are each checked and all answered */
    const char h10[] = "GET /echo HTTP/1.0\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, h10, sizeof h10 - 1, r), 200);
    const char pipe[] = "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"
                        "PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                        "GET /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx";
    int fd = raw_connect(f->port);
    raw_send(fd, pipe, sizeof pipe - 1);
    char all[8192];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof all - 1 && (n = recv(fd, all + got, sizeof all - 1 - got, 0)) > 0)
        got += (size_t)n;
    all[got] = '\0';
    close(fd);
    /* two answered, then the GET with a body refused and the connection closed (n == 0) */
    const char *a = strstr(all, "HTTP/1.1 200 OK");
    assert_non_null(a);
    const char *b = strstr(a + 1, "HTTP/1.1 200 OK");
    assert_non_null(b);
    assert_non_null(strstr(b, "\"body_len\":3"));
    assert_non_null(strstr(b + 1, "HTTP/1.1 400 Bad Request"));
    json_t *j;
    /* a refusal before the body is read has the Azure shape and a request id */
    const char big[] = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, big, sizeof big - 1, r), 413);
    char id[64];
    assert_non_null(raw_header(r, "x-ms-request-id", id, sizeof id));
    j = body_json(r->body, r->body_len);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "RequestTooLarge");
    json_decref(j);
    /* a chunked body needs an Authorization header (411 otherwise) */
    const char ch[] = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n";
    assert_int_equal(raw_exchange(f->port, ch, sizeof ch - 1, r), 411);
    free(r);
#undef SMUGGLED
}

static void test_client_limits_and_headers(void **state)
{
    struct fixture *f = *state;
    struct http_client *c;
    struct http_client_resp resp;
    assert_int_equal(http_client_new(NULL, &c), MV_OK);
    char url[128];

    /* a response over the cap */
    snprintf(url, sizeof url, "%s/big", f->base);
    assert_int_equal(http_client_do(c, "GET", url, NULL, NULL, 0, 100, &resp), MV_ERR_LIMIT);
    assert_null(resp.body.p);
    assert_int_equal(http_client_do(c, "GET", url, NULL, NULL, 0, 10000, &resp), MV_OK);
    assert_int_equal(resp.body.len, 10000);
    http_client_resp_free(&resp);

    /* Retry-After and WWW-Authenticate captured; any status is MV_OK */
    snprintf(url, sizeof url, "%s/throttle", f->base);
    assert_int_equal(http_client_do(c, "GET", url, NULL, NULL, 0, 4096, &resp), MV_OK);
    assert_int_equal(resp.status, 429);
    assert_string_equal(resp.retry_after, "10");
    assert_string_equal(resp.www_authenticate, "");
    http_client_resp_free(&resp);
    snprintf(url, sizeof url, "%s/oauth", f->base);
    assert_int_equal(http_client_do(c, "GET", url, NULL, NULL, 0, 4096, &resp), MV_OK);
    assert_int_equal(resp.status, 401);
    assert_string_equal(resp.retry_after, "");
    assert_string_equal(resp.www_authenticate,
                        "Bearer authorization=\"https://x/t\", resource=\"https://v\"");
    http_client_resp_free(&resp);

    /* the client's own body goes through whole; a server 413 is a status, not an error */
    snprintf(url, sizeof url, "%s/echo", f->base);
    char *big = malloc(MAX_BODY + 2);
    memset(big, 'q', MAX_BODY + 1);
    big[MAX_BODY + 1] = '\0';
    assert_int_equal(http_client_do(c, "POST", url, NULL, big, MAX_BODY + 1, 4096, &resp), MV_OK);
    assert_int_equal(resp.status, 413);
    http_client_resp_free(&resp);
    free(big);

    /* transport failure: nothing listens there */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(sa.sin_port));
    assert_int_equal(http_client_do(c, "GET", url, NULL, NULL, 0, 4096, &resp),
                     MV_ERR_UNAVAILABLE);
    assert_non_null(strstr(mv_last_detail(), "127.0.0.1"));
    close(fd);
    /* a bad scheme is refused too */
    assert_int_equal(http_client_do(c, "GET", "file:///etc/passwd", NULL, NULL, 0, 4096, &resp),
                     MV_ERR_UNAVAILABLE);
    http_client_free(c);
}

/* ---------------------------------------------------------------- lifecycle */

static void test_bind_errors_surface(void **state)
{
    (void)state;
    int fail = -1;
    struct http_server_cfg cfg = plain_cfg(&fail);
    struct http_server *s = NULL;

    /* a port another socket listens on (without SO_REUSEPORT) */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    cfg.port = ntohs(sa.sin_port);
    assert_int_equal(http_server_start(&cfg, &s), MV_ERR_UNAVAILABLE);
    assert_null(s);
    close(fd);

    /* a port another mivault-style SO_REUSEPORT listener already holds */
    cfg.port = 0;
    struct http_server *first = NULL;
    assert_int_equal(http_server_start(&cfg, &first), MV_OK);
    cfg.port = http_server_port(first);
    assert_int_equal(http_server_start(&cfg, &s), MV_ERR_UNAVAILABLE);
    http_server_stop(first);
    http_server_wait(first);
    http_server_free(first);

    /* an address not on this host, and a name that does not resolve */
    cfg.port = 0;
    cfg.addr = "192.0.2.1";
    assert_int_equal(http_server_start(&cfg, &s), MV_ERR_UNAVAILABLE);
    cfg.addr = "no-such-host.invalid";
    assert_int_equal(http_server_start(&cfg, &s), MV_ERR_BAD_REQUEST);
    cfg.addr = "127.0.0.1:80";
    assert_int_equal(http_server_start(&cfg, &s), MV_ERR_BAD_REQUEST);
    assert_null(s);
    /* a name is resolved */
    cfg.addr = "localhost";
    assert_int_equal(http_server_start(&cfg, &s), MV_OK);
    http_server_stop(s);
    http_server_wait(s);
    http_server_free(s);
}

static void test_worker_init_failure(void **state)
{
    (void)state;
    int fail = 2; /* the third of four loops fails */
    atomic_store(&workers_live, 0);
    atomic_store(&workers_freed, 0);
    struct http_server_cfg cfg = plain_cfg(&fail);
    cfg.threads = 4;
    struct http_server *s = NULL;
    assert_int_equal(http_server_start(&cfg, &s), MV_ERR_INTERNAL);
    assert_null(s);
    assert_int_equal(atomic_load(&workers_live), 3);
    assert_int_equal(atomic_load(&workers_freed), 3);
}

/* http_server_halt: the loops end without a signal wait (mivault up waits for signals itself
 * and halts its servers); each loop freed its worker; halting twice is harmless. */
static void test_halt_without_wait(void **state)
{
    (void)state;
    int fail = -1;
    atomic_store(&workers_live, 0);
    atomic_store(&workers_freed, 0);
    struct http_server_cfg cfg = plain_cfg(&fail);
    struct http_server *s = NULL;
    assert_int_equal(http_server_start(&cfg, &s), MV_OK);
    struct raw_resp *r = malloc(sizeof *r);
    const char get[] = "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(http_server_port(s), get, sizeof get - 1, r), 200);
    http_server_halt(s);
    assert_int_equal(atomic_load(&workers_freed), 2);
    http_server_halt(s);
    assert_int_equal(atomic_load(&workers_freed), 2);
    http_server_free(s);
    free(r);
}

/* Issue 8 point 2: a head that trickles in is closed at its total deadline, whatever its pace. */
static void test_head_deadline(void **state)
{
    (void)state;
    int fail = -1;
    struct http_server_cfg cfg = plain_cfg(&fail);
    cfg.header_timeout_secs = 1;
    struct http_server *s = NULL;
    assert_int_equal(http_server_start(&cfg, &s), MV_OK);
    int fd = raw_connect(http_server_port(s));
    raw_send(fd, "GET /echo HTTP/1.1\r\n", 21);
    int64_t t0 = mv_now_ms();
    int closed = 0;
    for (int i = 0; i < 20 && !closed; i++) {
        usleep(200 * 1000);
        closed = send(fd, "X", 1, MSG_NOSIGNAL) <= 0 || raw_peer_closed_nowait(fd);
    }
    assert_true(closed);
    assert_true(mv_now_ms() - t0 < 2500);
    close(fd);
    http_server_stop(s);
    http_server_wait(s);
    http_server_free(s);
}

/* Issue 8 point 1: at the cap, a new connection displaces the oldest idle one. */
static void test_connection_cap_displaces_idle(void **state)
{
    (void)state;
    int fail = -1;
    struct http_server_cfg cfg = plain_cfg(&fail);
    cfg.threads = 1;
    cfg.max_connections = 4;
    struct http_server *s = NULL;
    assert_int_equal(http_server_start(&cfg, &s), MV_OK);
    int idle[12];
    for (int i = 0; i < 12; i++)
        idle[i] = raw_connect(http_server_port(s));
    struct raw_resp *r = malloc(sizeof *r);
    const char get[] = "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n";
    int64_t t0 = mv_now_ms();
    assert_int_equal(raw_exchange(http_server_port(s), get, sizeof get - 1, r), 200);
    assert_true(mv_now_ms() - t0 < 2000);
    assert_true(raw_peer_closed(idle[0])); /* the oldest went first */
    for (int i = 0; i < 12; i++)
        close(idle[i]);
    free(r);
    http_server_stop(s);
    http_server_wait(s);
    http_server_free(s);
}

static void test_sigterm_ends_wait(void **state)
{
    (void)state;
    int fail = -1;
    atomic_store(&workers_live, 0);
    atomic_store(&workers_freed, 0);
    struct http_server_cfg cfg = plain_cfg(&fail);
    cfg.threads = 0; /* one per CPU */
    cfg.addr = "::1";
    struct http_server *s = NULL;
    mv_rc rc = http_server_start(&cfg, &s);
    if (rc == MV_ERR_UNAVAILABLE) { /* no IPv6 loopback here */
        cfg.addr = "127.0.0.1";
        rc = http_server_start(&cfg, &s);
    }
    assert_int_equal(rc, MV_OK);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(atomic_load(&workers_live), cpus);
    /* blocked by http_server_start, so it waits for the signalfd instead of killing us */
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    http_server_wait(s);
    assert_int_equal(atomic_load(&workers_freed), cpus);
    http_server_free(s);
}

/* ---------------------------------------------------------------- TLS */

static void test_tls(void **state)
{
    (void)state;
    char dir[] = "/tmp/mv-http-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1024], cert[128], key[128], other[128];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(other, sizeof other, "%s/other.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             "-keyout %s -out %s 2>/dev/null && "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null",
             key, cert, other);
    assert_int_equal(system(cmd), 0);

    SSL_CTX *bad = NULL;
    assert_int_equal(http_tls_ctx(cert, other, &bad), MV_ERR_INTERNAL); /* key mismatch */
    assert_null(bad);
    assert_int_equal(http_tls_ctx("/nonexistent.pem", key, &bad), MV_ERR_INTERNAL);

    SSL_CTX *ctx = NULL;
    assert_int_equal(http_tls_ctx(cert, key, &ctx), MV_OK);
    int fail = -1;
    atomic_store(&workers_live, 0);
    atomic_store(&workers_freed, 0);
    struct http_server_cfg cfg = plain_cfg(&fail);
    cfg.ssl = ctx;
    struct http_server *s = NULL;
    assert_int_equal(http_server_start(&cfg, &s), MV_OK);
    int port = http_server_port(s);

    struct http_client *c;
    assert_int_equal(http_client_new(cert, &c), MV_OK);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/tls%%2Fpath?a=b", port);
    json_t *a = client_json(c, "PUT", url, "secret", 200);
    assert_string_equal(json_string_value(json_object_get(a, "path")), "/tls/path");
    assert_int_equal(json_integer_value(json_object_get(a, "body_len")), 6);
    assert_string_equal(json_string_value(json_object_get(a, "host")), "localhost");
    assert_int_equal(json_integer_value(json_object_get(a, "nodelay")), 1);
    json_t *b = client_json(c, "GET", url, NULL, 200);
    /* keep-alive over TLS */
    assert_int_equal(json_integer_value(json_object_get(a, "peer_port")),
                     json_integer_value(json_object_get(b, "peer_port")));
    json_decref(a);
    json_decref(b);

    /* 413 over TLS too */
    struct http_client_resp resp;
    char *big = calloc(1, MAX_BODY + 1);
    memset(big, 'x', MAX_BODY + 1);
    assert_int_equal(http_client_do(c, "POST", url, NULL, big, MAX_BODY + 1, 4096, &resp), MV_OK);
    assert_int_equal(resp.status, 413);
    http_client_resp_free(&resp);
    free(big);
    http_client_free(c);

    /* without the CA the certificate is refused */
    assert_int_equal(http_client_new(NULL, &c), MV_OK);
    assert_int_equal(http_client_do(c, "GET", url, NULL, NULL, 0, 4096, &resp), MV_ERR_UNAVAILABLE);
    http_client_free(c);

    /* plain HTTP to the TLS port gets no HTTP answer */
    struct raw_resp *r = malloc(sizeof *r);
    const char get[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(raw_exchange(port, get, sizeof get - 1, r), 0);
    free(r);

    http_server_stop(s);
    http_server_wait(s);
    assert_int_equal(atomic_load(&workers_freed), 2);
    http_server_free(s);
    SSL_CTX_free(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest served[] = {
        cmocka_unit_test(test_methods_routed),
        cmocka_unit_test(test_path_and_query_decoded),
        cmocka_unit_test(test_request_id_and_reply_shapes),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_413_before_body_is_read),
        cmocka_unit_test(test_body_at_exactly_max_accepted),
        cmocka_unit_test(test_oversize_headers_refused),
        cmocka_unit_test(test_bad_targets_refused),
        cmocka_unit_test(test_get_body_not_parsed_as_request),
        cmocka_unit_test(test_client_limits_and_headers),
        cmocka_unit_test(test_framing_refused),
    };
    const struct CMUnitTest lifecycle[] = {
        cmocka_unit_test(test_bind_errors_surface),
        cmocka_unit_test(test_worker_init_failure),
        cmocka_unit_test(test_halt_without_wait),
        cmocka_unit_test(test_head_deadline),
        cmocka_unit_test(test_connection_cap_displaces_idle),
        cmocka_unit_test(test_sigterm_ends_wait),
        cmocka_unit_test(test_tls),
    };
    int fails = cmocka_run_group_tests_name("http_server", served, setup, teardown);
    fails += cmocka_run_group_tests_name("http_server_changelist", served, setup_changelist, teardown);
    fails += cmocka_run_group_tests_name("http_lifecycle", lifecycle, NULL, NULL);
    libevent_global_shutdown();
    return fails;
}
