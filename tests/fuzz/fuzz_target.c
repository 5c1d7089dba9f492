/* fuzz_target.c: the request target and the Host header, as http_dispatch parses them
 * (src/http/request.c: http_parse_target, http_parse_host).
 *
 * Input: "<request target>\n<Host value>" (no '\n': no Host header). The target goes through
 * evhttp's own parse first, with the flag evhttp's request-line parser uses, so the harness
 * sees what a server loop would. Checked: request.c's invariants (a decoded path that starts
 * with '/', has no NUL and is within MV_MAX_URI_BYTES; a parsed query of at most MV_KV_MAX
 * pairs; a lower-case Host without its port, and a port in 1..65535, or both cleared). What the
 * server then does with them runs too: arm_owns_path on the path, vault_host_match and
 * vault_request_url on the Host (a vault name is one lower-case label of at most 24). */
#include <event2/http.h>
#include <string.h>

#include "arm/arm.h"
#include "common/limits.h"
#include "fuzz.h"
#include "http/internal.h"
#include "vault/vault_internal.h"

static struct vault_plane plane;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    plane.vault_suffix = "vault.localhost";
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
        (void)arm_owns_path(req.path);
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
    char name[MV_VAULT_NAME_MAX + 1];
    if (vault_host_match(&plane, req.host, name, sizeof name)) {
        size_t n = strlen(name);
        FUZZ_ASSERT(n >= 1 && n <= MV_VAULT_NAME_MAX && !strchr(name, '.'));
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(!(name[i] >= 'A' && name[i] <= 'Z'));
    }
    char url[MV_MAX_URL];
    mv_rc rc = vault_request_url(&req, url, sizeof url);
    FUZZ_ASSERT(rc == MV_OK || rc == MV_ERR_LIMIT);
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
