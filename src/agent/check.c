/* check.c: the pure request checks of the agent's token endpoints (no I/O, unit-tested).
 *
 * IMDS (reference §1.1, §1.3, §9): the order matters because DefaultAzureCredential probes the
 * endpoint without a Metadata header and often without any query, and needs a fast 400 JSON:
 * proxy headers, Metadata, method, query syntax, api-version, resource, selector. The Host
 * check (imds_host_ok) runs before all of these, in the router. Unknown
 * parameters are ignored (msal-node sends token_sha256_to_refresh, xms_cc; §9 item 6).
 * App Service 2019-08-01 (reference §2.2) swaps the Metadata check for X-IDENTITY-HEADER.
 *
 * Invariant: on IMDS_OK, out->resource is non-empty and at most one selector is set; every
 * pointer in out points into in->params. */
#include <string.h>
#include <strings.h>

#include "agent/agent_internal.h"
#include "common/util.h"

/* DOC-IMDS "Versioning": the dated list; the token endpoint exists since 2018-02-01. */
const char *const imds_api_versions[] = {
    "2018-02-01", "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30",
    "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01",
    "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01",
    "2021-03-01", "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01", "2021-11-15",
    "2021-12-13", "2022-02-01", "2022-03-01", "2022-07-01", "2022-08-01", "2022-11-01",
    "2023-07-01", "2023-11-15", "2024-03-15", "2024-07-17", "2025-04-07",
};
const size_t imds_api_versions_n = sizeof imds_api_versions / sizeof imds_api_versions[0];

#define APPSVC_API_VERSION "2019-08-01"

int imds_api_version_ok(const char *v)
{
    if (!v)
        return 0;
    for (size_t i = 0; i < imds_api_versions_n; i++)
        if (strcmp(v, imds_api_versions[i]) == 0)
            return 1;
    return 0;
}

enum imds_outcome imds_check_headers(const char *proxy, const char *metadata, int metadata_n)
{
    /* DOC-IMDS "Security and authentication": requests with X-Forwarded-For are rejected. A
     * request that says it passed a proxy (RFC 7239 Forwarded, X-Real-IP, RFC 9110 Via) is
     * refused the same way: IMDS must be reached directly, never relayed for someone else. */
    if (proxy)
        return IMDS_ERR_XFF;
    /* Two Metadata headers: which one counts would depend on the parser (an SSRF that can add
     * one header must not win by adding a second). */
    if (metadata_n > 1)
        return IMDS_ERR_METADATA_DUP;
    /* DOC-VMTOKEN: "Metadata: true" is required (SSRF mitigation). Docs write it in lower
     * case; the value is accepted case-insensitively. */
    if (!metadata || !mv_streq_ci(metadata, "true"))
        return IMDS_ERR_METADATA;
    return IMDS_OK;
}

/* An identity selector parameter: its kind, and the names that spell it. */
struct sel_name {
    const char *name;
    enum agent_sel sel;
};

static const struct sel_name imds_sels[] = {
    {"client_id", SEL_CLIENT_ID},
    {"object_id", SEL_OBJECT_ID},
    {"msi_res_id", SEL_RES_ID}, /* IMDS spelling (SPEC-IMDS) */
    {"mi_res_id", SEL_RES_ID},  /* App Service spelling, accepted too */
    {NULL, SEL_NONE},
};

static const struct sel_name appsvc_sels[] = {
    {"client_id", SEL_CLIENT_ID},
    {"principal_id", SEL_OBJECT_ID}, /* DOC-APPSVC */
    {"object_id", SEL_OBJECT_ID},
    {"mi_res_id", SEL_RES_ID},
    {"msi_res_id", SEL_RES_ID},
    {NULL, SEL_NONE},
};

/* Resource and selector, common to every protocol. An empty selector value counts as absent
 * (SDKs leave an empty AZURE_CLIENT_ID out, but be lenient). SPEC-IMDS: the selectors are
 * mutually exclusive. */
static enum imds_outcome check_params(const kv_list *p, const struct sel_name *sels,
                                      struct imds_token_req *out)
{
    const char *res = p ? kv_get(p, "resource") : NULL;
    if (!res || !*res)
        return IMDS_ERR_RESOURCE;
    out->resource = res;
    for (const struct sel_name *s = sels; p && s->name; s++) {
        const char *v = kv_get(p, s->name);
        if (!v || !*v)
            continue;
        if (out->sel != SEL_NONE)
            return IMDS_ERR_SELECTOR;
        out->sel = s->sel;
        out->sel_value = v;
    }
    return IMDS_OK;
}

static enum imds_outcome check_query(const kv_list *p, int ok)
{
    /* DOC-IMDS "Query parameters": duplicate names are rejected. */
    if (!ok || (p && p->has_dup))
        return IMDS_ERR_QUERY;
    return IMDS_OK;
}

enum imds_outcome imds_check_token(const struct imds_check_in *in, struct imds_token_req *out)
{
    *out = (struct imds_token_req){NULL, SEL_NONE, NULL, NULL};
    enum imds_outcome o = imds_check_headers(in->proxy, in->metadata, in->metadata_n);
    if (o != IMDS_OK)
        return o;
    /* DOC-IMDS "HTTP verbs": GET only; POST is the Cloud-Shell form (reference §2.2). */
    if (in->method != HTTP_GET && in->method != HTTP_POST)
        return IMDS_ERR_METHOD;
    if ((o = check_query(in->params, in->params_ok)) != IMDS_OK)
        return o;
    /* DOC-VMTOKEN: api-version "2018-02-01 or greater" is required on the GET. The Cloud-Shell
     * POST carries only resource (+ optional id) in its body. */
    if (in->method == HTTP_GET) {
        const char *v = in->params ? kv_get(in->params, "api-version") : NULL;
        if (!imds_api_version_ok(v))
            return IMDS_ERR_API_VERSION;
    }
    o = check_params(in->params, imds_sels, out);
    if (o != IMDS_OK)
        *out = (struct imds_token_req){NULL, SEL_NONE, NULL, NULL};
    return o;
}

enum imds_outcome appsvc_check_token(const struct appsvc_check_in *in, struct imds_token_req *out)
{
    *out = (struct imds_token_req){NULL, SEL_NONE, NULL, NULL};
    if (in->proxy)
        return IMDS_ERR_XFF;
    /* DOC-APPSVC: X-IDENTITY-HEADER must carry IDENTITY_HEADER. Compared in constant time. */
    if (!in->identity_header || !in->secret || !*in->secret ||
        !mv_ct_eq(in->identity_header, strlen(in->identity_header), in->secret,
                  strlen(in->secret)))
        return IMDS_ERR_UNAUTHORIZED;
    if (in->method != HTTP_GET)
        return IMDS_ERR_METHOD;
    enum imds_outcome o = check_query(in->params, in->params_ok);
    if (o != IMDS_OK)
        return o;
    const char *v = in->params ? kv_get(in->params, "api-version") : NULL;
    if (!v || strcmp(v, APPSVC_API_VERSION) != 0)
        return IMDS_ERR_API_VERSION;
    o = check_params(in->params, appsvc_sels, out);
    if (o != IMDS_OK)
        *out = (struct imds_token_req){NULL, SEL_NONE, NULL, NULL};
    return o;
}

/* A browser page whose name an attacker re-points at 127.0.0.1 (DNS rebinding) reaches the
 * agent "same-origin" and may send Metadata: true; its Host is still the attacker's name. Only
 * the agent's own names are served. The listen host arrives bare ("::1"), Host with brackets. */
int imds_host_ok(const char *host, int host_port, const char *listen_host, int port)
{
    static const char *const names[] = {"127.0.0.1", "localhost", "169.254.169.254"};
    if (!host[0])
        return 1; /* HTTP/1.0 without Host: no browser sends that */
    if (host_port != port && !(host_port == 0 && port == 80))
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(host, names[i]) == 0)
            return 1;
    size_t n = strlen(listen_host);
    if (host[0] == '[')
        return strlen(host) == n + 2 && host[n + 1] == ']' && n > 0 &&
               strncasecmp(host + 1, listen_host, n) == 0;
    return n > 0 && strcasecmp(host, listen_host) == 0;
}

void imds_outcome_error(enum imds_outcome o, struct imds_error *out)
{
    /* Every refusal has an "error" + "error_description" body: msal-node classifies replies by
     * body fields, not status (reference §1.3, §9 item 4). Fixed texts, nothing echoed. */
    switch (o) {
    case IMDS_OK:
        *out = (struct imds_error){200, "", ""};
        return;
    case IMDS_ERR_XFF:
        *out = (struct imds_error){400, "invalid_request",
                                   "Requests with X-Forwarded-For, Forwarded, X-Real-IP or Via "
                                   "headers are not allowed"};
        return;
    case IMDS_ERR_METADATA_DUP:
        *out = (struct imds_error){400, "invalid_request",
                                   "The Metadata header must be given exactly once"};
        return;
    case IMDS_ERR_HOST:
        *out = (struct imds_error){400, "invalid_request",
                                   "The Host header does not name this metadata endpoint"};
        return;
    case IMDS_ERR_BUSY:
        *out = (struct imds_error){429, "too_many_requests",
                                   "Too many concurrent requests to the metadata endpoint; retry "
                                   "after 1 second"};
        return;
    case IMDS_ERR_METADATA:
        *out = (struct imds_error){400, "bad_request_102", "Required metadata header not specified"};
        return;
    case IMDS_ERR_UNAUTHORIZED:
        *out = (struct imds_error){401, "unauthorized_client",
                                   "The X-IDENTITY-HEADER header is missing or invalid"};
        return;
    case IMDS_ERR_METHOD:
        *out = (struct imds_error){405, "method_not_allowed", "The HTTP method is not allowed"};
        return;
    case IMDS_ERR_QUERY:
        *out = (struct imds_error){400, "invalid_request",
                                   "The query is malformed or has duplicate parameters"};
        return;
    case IMDS_ERR_API_VERSION:
        *out = (struct imds_error){400, "invalid_request",
                                   "Bad request. api-version is invalid or was not specified in "
                                   "the request. For more information refer to aka.ms/azureimds"};
        return;
    case IMDS_ERR_RESOURCE:
        *out = (struct imds_error){400, "invalid_request",
                                   "Required query variable 'resource' is missing"};
        return;
    case IMDS_ERR_SELECTOR:
        *out = (struct imds_error){400, "invalid_request",
                                   "Only one of client_id, object_id or msi_res_id may be given"};
        return;
    }
    *out = (struct imds_error){500, "unknown", "Internal error"};
}
