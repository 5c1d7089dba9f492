/* head.h: the strict parser of an HTTP/1.1 request head (request line + header fields), run on
 * every head before evhttp sees it (gate.c). evhttp's own parser is lenient: it takes the first
 * of two Content-Length headers, "Content-Length: +2", a header name ending in a space
 * ("Transfer-Encoding :", which it then ignores), and silently cuts a value at a NUL byte; each
 * of those lets a request be framed one way by us and another way by whatever sits in front of
 * us (request smuggling). This parser refuses all of them (RFC 9112 §2.2, §3, §5, §6).
 *
 * Private to src/http/. Pure: no I/O, no allocation. */
#ifndef MV_HTTP_HEAD_H
#define MV_HTTP_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"

#define HTTP_HEAD_TARGET_KEEP 512 /* bytes of the request-target kept for routing decisions */

/* The header only the gate writes (a refusal it hands evhttp, see gate.c); refused from clients. */
#define HTTP_REFUSED_HEADER "X-Mivault-Refused"

struct http_head_info {
    enum http_method method;
    int http11;                               /* HTTP/1.1 (else HTTP/1.0) */
    char target[HTTP_HEAD_TARGET_KEEP + 1];   /* request-target, cut at HTTP_HEAD_TARGET_KEEP */
    char host[256];                           /* Host, lower-cased, port cut off ("" if none) */
    int has_host;
    int authorization;                        /* an Authorization header is present */
    int chunked;                              /* Transfer-Encoding: chunked */
    int64_t content_length;                   /* -1 if absent */
};

/* Parses a complete head of n bytes: the request line, the fields and the empty line that ends
 * them, each line ended by CRLF or a bare LF. Returns 0, or the HTTP status to refuse with
 * (400). */
int http_head_parse(const char *p, size_t n, struct http_head_info *out);

/* Length of the head at the start of p[0..n) (through its empty line), or 0 if not complete.
 * *scan is where to resume on the next call with more bytes (start with 0). */
size_t http_head_end(const char *p, size_t n, size_t *scan);

#endif
