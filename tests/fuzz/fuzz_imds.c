/* fuzz_imds.c: the agent's IMDS and App Service token requests (src/agent/check.c), from the
 * raw request target through the checks to the echo of the caller's values in the reply
 * (src/agent/render.c).
 *
 * Input: one flags byte, then "<header value>\n<query or form body>". Flags: bits 0-1 the method
 * (GET, POST, PUT, DELETE), bit 2 an X-Forwarded-For header, bit 3 the App Service face instead
 * of IMDS (the header value is then X-IDENTITY-HEADER, else Metadata), bit 4 no header at all.
 * A GET's query goes through http_parse_target as the agent's loop parses it; a POST's form
 * through kv_parse, as imds.c does. Checked: check.c's invariant (on success a non-empty
 * resource and a selector that are values of the parsed parameters, a selector value exactly
 * when a selector is set); every outcome has an error reply; and the resource and selector,
 * echoed into the 200 body, give a JSON document that reads back the same values. */
#include <event2/http.h>
#include <jansson.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "fuzz.h"
#include "http/internal.h"

#define TARGET "/metadata/identity/oauth2/token?"
#define SECRET "5e1f0a8c3b2d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static int is_value_of(const kv_list *p, const char *v)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (p->value[i] == v)
            return 1;
    return 0;
}

/* The reply a cache entry for this request would give, with a fixed token. */
static void check_echo(const struct imds_token_req *r)
{
    struct agent_token t = {0};
    struct imds_body_tmpl b;
    char tok[] = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    t.access_token = tok;
    t.exp = 1700086400;
    t.nbf = 1700000000;
    if (imds_body_tmpl_make(r->resource, &t, 1700000000, &b) != MV_OK)
        return; /* a resource that is not UTF-8: refused, as jansson refuses it */
    char *out = malloc(imds_body_max(&b) + 1);
    FUZZ_ASSERT(out != NULL);
    size_t n = imds_body_render(&b, t.exp, 1700000100, out);
    FUZZ_ASSERT(n <= imds_body_max(&b));
    out[n] = '}';
    json_t *j = json_loadb(out, n + 1, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_ASSERT(j != NULL);
    FUZZ_ASSERT(strcmp(json_string_value(json_object_get(j, "resource")), r->resource) == 0);
    FUZZ_ASSERT(strcmp(json_string_value(json_object_get(j, "expires_in")), "86300") == 0);
    json_decref(j);
    free(out);
    imds_body_tmpl_free(&b);
    if (r->sel_value) {
        mv_buf e;
        mv_buf_init(&e, 8 * strlen(r->sel_value) + 8);
        if (mv_buf_add(&e, "\"", 1) == MV_OK && agent_json_escape(r->sel_value, &e) == MV_OK) {
            FUZZ_ASSERT(mv_buf_add(&e, "\"", 1) == MV_OK);
            json_t *s = json_loadb(e.p, e.len, JSON_DECODE_ANY, NULL);
            FUZZ_ASSERT(s && strcmp(json_string_value(s), r->sel_value) == 0);
            json_decref(s);
        }
        mv_buf_free(&e);
    }
}

static void check(const struct imds_token_req *r, const kv_list *params, enum imds_outcome o)
{
    struct imds_error err;
    imds_outcome_error(o, &err);
    FUZZ_ASSERT(err.error != NULL && err.description != NULL);
    if (o != IMDS_OK) {
        FUZZ_ASSERT(err.status >= 400 && r->resource == NULL && r->sel == SEL_NONE);
        return;
    }
    FUZZ_ASSERT(err.status == 200);
    FUZZ_ASSERT(r->resource && *r->resource && is_value_of(params, r->resource));
    FUZZ_ASSERT((r->sel == SEL_NONE) == (r->sel_value == NULL));
    if (r->sel_value)
        FUZZ_ASSERT(*r->sel_value && is_value_of(params, r->sel_value));
    check_echo(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum http_method methods[] = {HTTP_GET, HTTP_POST, HTTP_PUT, HTTP_DELETE};
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const uint8_t *q;
    size_t hn, qn;
    fuzz_split(data + 1, size - 1, &q, &hn, &qn);
    char *hdr = fuzz_str(data + 1, hn);
    const char *header = (flags & 16) ? NULL : hdr;
    enum http_method m = methods[flags & 3];

    /* The query as the loop parses it (GET), or the form body (POST). */
    http_req req;
    memset(&req, 0, sizeof req);
    struct evhttp_uri *u = NULL;
    char *target = NULL;
    kv_list form = {0};
    const kv_list *params = NULL;
    int params_ok = 1;
    if (m == HTTP_POST && !(flags & 8)) {
        params_ok = kv_parse((const char *)q, qn, &form) == MV_OK;
        params = &form;
    } else {
        target = malloc(sizeof TARGET + qn);
        FUZZ_ASSERT(target != NULL);
        memcpy(target, TARGET, sizeof TARGET - 1);
        memcpy(target + sizeof TARGET - 1, q, qn);
        target[sizeof TARGET - 1 + qn] = '\0';
        u = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
        if (!u || http_parse_target(&req, target, u) != MV_OK)
            goto out;
        params = req.raw_query ? &req.query : NULL;
        params_ok = req.query_ok;
    }

    struct imds_token_req r;
    enum imds_outcome o;
    if (flags & 8) {
        struct appsvc_check_in in = {m, (flags & 4) ? "10.0.0.1" : NULL, header, SECRET, params,
                                     params_ok};
        o = appsvc_check_token(&in, &r);
    } else {
        /* metadata_n: how many Metadata headers the request had (0 = not counted, 2 = repeated) */
        struct imds_check_in in = {m, (flags & 4) ? "10.0.0.1" : NULL, header, params, params_ok,
                                   (flags & 16) ? 2 : (header ? 1 : 0)};
        o = imds_check_token(&in, &r);
    }
    check(&r, params, o);
out:
    kv_free(&form);
    kv_free(&req.query);
    free(req.path);
    if (u)
        evhttp_uri_free(u);
    free(target);
    free(hdr);
    return 0;
}
