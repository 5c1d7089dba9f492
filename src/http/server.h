/* server.h: the HTTP(S) server every mivault process uses, on libevent evhttp.
 *
 * N event loops, one per thread, each with its own listening socket on SO_REUSEPORT (DESIGN §6):
 * no locks on the request path. TLS through bufferevent_openssl with one shared SSL_CTX;
 * listeners get TCP_NODELAY (inherited by accepted sockets). Header and body limits are set on
 * evhttp so an oversized request is refused (413) before its body is read.
 *
 * A handler runs on the loop thread that accepted the connection and must reply exactly once
 * (http_reply*). Per-thread application state comes from worker_init and is reachable as
 * req->worker. */
#ifndef MV_HTTP_SERVER_H
#define MV_HTTP_SERVER_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include <jansson.h>

#include "http/kv.h"

struct evhttp_request;
struct event_base;

enum http_method { HTTP_GET, HTTP_POST, HTTP_PUT, HTTP_PATCH, HTTP_DELETE, HTTP_HEAD, HTTP_OTHER };

typedef struct http_req {
    struct evhttp_request *ev;
    void *worker;             /* from worker_init, per loop thread */
    enum http_method method;
    char *path;               /* percent-decoded path, no query ("/secrets/a/") */
    const char *raw_query;    /* query string without '?', or NULL */
    kv_list query;            /* parsed query */
    int query_ok;             /* 0 if the query could not be parsed (bad escapes, too many) */
    char host[256];           /* Host header lower-cased, port stripped ("" if absent) */
    int host_port;            /* port in Host, or 0 */
    mv_slice body;            /* the whole body (buffered by evhttp, within limits) */
    char request_id[37];      /* x-ms-request-id sent with the reply */
    int replied;
    /* Metrics (common/metrics.h), set by the router: the labels the reply is counted under
     * (string literals; NULL: "http"/"unrouted", a refusal before routing), whether the route
     * issues tokens (its 200s count as issued, its OAuth errors as refused), and the dispatch
     * time. */
    const char *m_plane, *m_route;
    int m_token;
    int64_t start_ns;
} http_req;

typedef void (*http_handler)(http_req *req);

/* What a refusal made before routing looks like: the plane's error shape. */
enum http_shape { HTTP_SHAPE_AZURE, HTTP_SHAPE_OAUTH };

/* A request head as the gate sees it before the body is read (gate.c): enough to pick the
 * route's body cap. target is the raw request-target (not decoded, at most 512 bytes kept). */
struct http_head {
    enum http_method method;
    const char *target;
    const char *host;  /* lower-cased, without the port */
    int authorization; /* an Authorization header is present */
};

struct http_limits {
    size_t max_body;       /* the route's cap; a Content-Length over it is refused (413) unread */
    enum http_shape shape; /* the plane's error shape for that refusal */
};

/* Route caps, called on the loop thread with that loop's worker before any body byte is read. */
typedef void (*http_limits_fn)(void *worker, const struct http_head *head, struct http_limits *out);

struct http_server_cfg {
    const char *addr;          /* "127.0.0.1", "::1", "169.254.169.254" */
    int port;
    SSL_CTX *ssl;              /* NULL = plain HTTP */
    int threads;               /* event loops; 0 = number of CPUs */
    size_t max_body;           /* bytes; over it: 413 without reading the body */
    size_t max_headers;        /* bytes of all headers */
    int timeout_secs;          /* idle connection timeout (evhttp's, restarted by each byte) */
    /* Connection hardening (gate.c, docs/security.md "Connection limits"); 0 = the default. */
    int max_connections;       /* per listener (all its loops), MV_MAX_CONNECTIONS */
    int header_timeout_secs;   /* a request head must be complete within this, in total */
    int body_min_rate;         /* bytes/s a body must keep up after header_timeout_secs */
    http_limits_fn limits;     /* route caps; NULL = max_body for every request */
    enum http_shape shape;     /* error shape of refusals made before routing */
    http_handler handler;
    /* Called on each loop thread before it serves; returns the worker (NULL = fail). */
    void *(*worker_init)(int idx, struct event_base *base, void *arg);
    void (*worker_free)(void *worker);
    void *arg;
    /* 1: libevent's epoll changelist (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST): event changes
     * made during one loop iteration reach the kernel as one epoll_ctl per fd when the loop
     * next waits, so evhttp's read-off/write-on/write-off/read-on per keep-alive request costs
     * 2 epoll_ctl instead of 4. Unsafe only with dup()ed fds on the loop, which this server
     * never has. 0: one epoll_ctl per change. */
    int epoll_changelist;
};

struct http_server;

/* Binds (all sockets, so errors surface here) and starts the loop threads. */
MV_MUST_CHECK mv_rc http_server_start(const struct http_server_cfg *cfg, struct http_server **out);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);
/* Blocks until SIGINT/SIGTERM (installed by this call) or http_server_stop; then joins threads. */
void http_server_wait(struct http_server *s);
void http_server_stop(struct http_server *s);
/* Ends the loops and joins them (each calls worker_free on its way out) without waiting for a
 * signal: for a process that waits for its signals itself and runs several servers (`mivault
 * up`). Idempotent; the server must still be freed with http_server_free. */
void http_server_halt(struct http_server *s);
void http_server_free(struct http_server *s);

/* TLS server context from PEM files (chain + key), TLS 1.2+. */
MV_MUST_CHECK mv_rc http_tls_ctx(const char *cert_pem, const char *key_pem, SSL_CTX **out);

/* Request accessors. */
const char *http_header(const http_req *req, const char *name);
/* How many times the request carries header name (case-insensitive). */
int http_header_count(const http_req *req, const char *name);
void http_set_header(http_req *req, const char *name, const char *value);

/* Deferred replies, for work finished on another thread (the group-committing writer).
 * http_defer, called inside the handler, returns a heap copy of req that stays valid after the
 * handler returns; the original counts as answered. The copy keeps ev, worker, host, method and
 * request_id (not path, query or body, which the caller must copy first if it needs them) and
 * must be answered with http_reply* on the loop thread that owns the request, then freed with
 * http_deferred_free. If the client went away meanwhile, the reply is dropped safely (libevent
 * detaches a request whose connection closes before the user answers it). NULL on OOM. */
http_req *http_defer(http_req *req);
void http_deferred_free(http_req *d);

/* Replies. Status reason phrases are the standard ones ("Bad Request"). Every reply carries
 * x-ms-request-id. body may be NULL/0. */
void http_reply(http_req *req, int status, const char *content_type, const char *body, size_t len);
/* Serialises (compact) and sends with application/json; charset=utf-8. Steals the reference. */
void http_reply_json(http_req *req, int status, json_t *body);

#endif
