/* internal.h: what the loop code (server.c) shares with the request code (request.c)
 * and the TLS code (tls.c).
 * Private to src/http/; nothing outside this directory includes it. */
#ifndef MV_HTTP_INTERNAL_H
#define MV_HTTP_INTERNAL_H

#include "http/server.h"

struct evhttp_uri;

/* One per loop thread; the gencb argument of that loop's evhttp. */
struct http_dispatch_ctx {
    http_handler handler;
    void *worker; /* written before the loop serves, read only on the loop thread after */
    int tls;      /* the listener is TLS: refuse a connection that is somehow not */
};

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
