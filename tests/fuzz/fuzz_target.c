/* fuzz_target.c: the request target and the Host header, as http_dispatch parses them
 * (src/http/request.c: http_parse_target, http_parse_host).
 *
 * Input: "<request target>\n<Host value>" (no '\n': no Host header). The target goes through
 * evhttp's own parse first, with the flag evhttp's request-line parser uses, so the harness
 * sees what a server loop would. Checked: request.c's invariants (a decoded path that starts
 * with '/', has no NUL and is within MV_MAX_URI_BYTES; a parsed query of at most MV_KV_MAX
 * pairs; a lower-case Host without its port, and a port in 1..65535, or both cleared). */
#include <event2/http.h>
#include <string.h>

#include "common/limits.h"
#include "fuzz.h"
#include "http/internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void target(const char *uri)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT);
    if (!u)
        return;
    http_req req;
    memset(&req, 0, sizeof req);
    if (http_parse_target(&req, uri, u) == MV_OK) {
        FUZZ_ASSERT(req.path != NULL && req.path[0] == '/');
        FUZZ_ASSERT(strlen(req.path) <= MV_MAX_URI_BYTES);
        FUZZ_ASSERT(req.query.n <= MV_KV_MAX);
        for (size_t i = 0; i < req.query.n; i++)
            FUZZ_ASSERT(req.query.name[i] != NULL && req.query.value[i] != NULL);
        if (!req.query_ok)
            FUZZ_ASSERT(req.query.n == 0);
    }
    free(req.path);
    kv_free(&req.query);
    evhttp_uri_free(u);
}

static void host(const char *h)
{
    http_req req;
    memset(&req, 0, sizeof req);
    if (http_parse_host(&req, h) != MV_OK) {
        FUZZ_ASSERT(req.host[0] == '\0' && req.host_port == 0);
        return;
    }
    FUZZ_ASSERT(memchr(req.host, '\0', sizeof req.host) != NULL);
    FUZZ_ASSERT(req.host_port >= 0 && req.host_port <= 65535);
    for (const char *c = req.host; *c; c++)
        FUZZ_ASSERT(!(*c >= 'A' && *c <= 'Z'));
    /* The port is gone: a ':' is left only inside an IPv6 literal. */
    if (req.host[0] != '[')
        FUZZ_ASSERT(strchr(req.host, ':') == NULL);
    else
        FUZZ_ASSERT(strchr(req.host, ']') != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *rest;
    size_t n, m;
    int has_host = fuzz_split(data, size, &rest, &n, &m);
    char *uri = fuzz_str(data, n);
    char *h = has_host ? fuzz_str(rest, m) : NULL;
    target(uri);
    host(h);
    free(uri);
    free(h);
    return 0;
}
