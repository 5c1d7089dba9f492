/* internal.h: what the loop code (server.c) shares with the request code (request.c)
 * and the TLS code (tls.c).
 * Private to src/http/; nothing outside this directory includes it. */
#ifndef MV_HTTP_INTERNAL_H
#define MV_HTTP_INTERNAL_H

#include "http/server.h"

struct http_gate;
struct evconnlistener;
struct evhttp_uri;

/* One per loop thread; the gencb argument of that loop's evhttp. */
struct http_dispatch_ctx {
    http_handler handler;
    void *worker; /* written before the loop serves, read only on the loop thread after */
    int tls;      /* the listener is TLS: refuse a connection that is somehow not */
    struct http_gate *gate;
};

/* gate.c: the connection cap, deadlines and strict head parse in front of evhttp (one per
 * loop). */
struct http_gate_cfg {
    SSL_CTX *ssl;             /* NULL = plain HTTP */
    int cap;                  /* connections on this loop */
    size_t max_headers;       /* a head longer than this is refused (431) */
    size_t max_body;          /* the listener's largest body */
    int header_timeout_secs;
    int body_min_rate;
    http_limits_fn limits;
    enum http_shape shape;
    const struct http_dispatch_ctx *ctx; /* its worker is the limits callback's argument */
};
MV_MUST_CHECK mv_rc http_gate_new(struct event_base *base, const struct http_gate_cfg *cfg,
                                  struct http_gate **out);
/* After evhttp_free (which closes the gated connections). */
void http_gate_free(struct http_gate *g);
/* evhttp bevcb: makes and gates each accepted connection's bufferevent. */
struct bufferevent *http_gate_bevcb(struct event_base *base, void *gate);
/* The listener the gate pauses at the cap and on EMFILE/ENFILE. */
void http_gate_listen(struct http_gate *g, struct evconnlistener *lev);
/* On the loop's thread, before it serves. */
void http_gate_enter_thread(struct http_gate *g);
/* From http_dispatch: the connection now has a request in flight; *close_after is set when the
 * reply must close it. */
void http_gate_dispatched(struct http_gate *g, struct evhttp_request *ev, int *close_after);
void http_gate_reply_done(struct evhttp_request *ev, void *conn);

/* evhttp generic callback: builds an http_req, runs the handler, makes sure of one reply. */
void http_dispatch(struct evhttp_request *ev, void *ctx);

/* The two parsers of http_dispatch, on the values evhttp gives it (exposed for
 * tests/fuzz/fuzz_target.c). http_parse_target sets req->path (to free), raw_query (points
 * into u), query and query_ok from the raw request target uri and evhttp's parse u of it;
 * http_parse_host sets req->host and host_port from the Host header h (NULL: absent). */
MV_MUST_CHECK mv_rc http_parse_target(http_req *req, const char *uri, const struct evhttp_uri *u);
MV_MUST_CHECK mv_rc http_parse_host(http_req *req, const char *h);

/* evhttp bevcb for a TLS listener (tls.c): a server-side bufferevent_openssl on a new SSL from
 * the SSL_CTX in arg. */
struct bufferevent *http_tls_bevcb(struct event_base *base, void *ssl_ctx);

#endif
