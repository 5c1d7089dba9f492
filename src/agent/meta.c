/* meta.c: the other IMDS endpoints (reference §1.7), with the same header rules as the token
 * endpoint (Metadata: true, no X-Forwarded-For), GET only:
 *
 *   GET /metadata/versions         {"apiVersions":[...]}
 *   GET /metadata/identity/info    {"tenantId":"..."} (SPEC-IMDS)
 *   GET /metadata/instance         {"compute":{...},"network":{"interface":[]}}
 *
 * api-version is optional here (SDKs never call these), but when given it must be one IMDS
 * accepts. DOC-IMDS: "all primitives are strings, missing values are """; the VM's ARM id (and
 * so subscription and resource group) is known once a system-assigned token has been issued. */
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "agent/agent_internal.h"
#include "common/buf.h"

/* 1 if the request may proceed; otherwise the refusal has been sent. */
static int meta_precheck(http_req *req)
{
    struct imds_error err;
    enum imds_outcome o =
        imds_check_headers(agent_proxy_header(req), http_header(req, "Metadata"),
                           http_header_count(req, "Metadata"));
    if (o == IMDS_OK && req->method != HTTP_GET)
        o = IMDS_ERR_METHOD;
    if (o == IMDS_OK && (!req->query_ok || req->query.has_dup))
        o = IMDS_ERR_QUERY;
    if (o == IMDS_OK) {
        const char *v = kv_get(&req->query, "api-version");
        if (v && !imds_api_version_ok(v))
            o = IMDS_ERR_API_VERSION;
    }
    if (o == IMDS_OK)
        return 1;
    imds_outcome_error(o, &err);
    agent_reply_error(req, err.status, err.error, err.description);
    return 0;
}

static void reply(http_req *req, json_t *o)
{
    http_set_header(req, "Server", AGENT_SERVER_HEADER);
    if (!o) {
        agent_reply_error(req, 500, "unknown", "Internal error");
        return;
    }
    http_reply_json(req, 200, o);
}

void imds_handle_versions(http_req *req)
{
    if (!meta_precheck(req))
        return;
    json_t *list = json_array();
    for (size_t i = 0; list && i < imds_api_versions_n; i++)
        json_array_append_new(list, json_string(imds_api_versions[i]));
    reply(req, list ? json_pack("{s:o}", "apiVersions", list) : NULL);
}

void imds_handle_info(http_req *req)
{
    const struct agent *a = ((const struct agent_loop *)req->worker)->a;
    if (!meta_precheck(req))
        return;
    reply(req, json_pack("{s:s}", "tenantId", a->node.tenant_id));
}

/* Copies the segment after "/key/" in an ARM id (case-insensitive key) into out, or "". */
static void arm_segment(const char *id, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *p = id; (p = strchr(p, '/')) != NULL; p++) {
        if (strncasecmp(p + 1, key, klen) != 0 || p[1 + klen] != '/')
            continue;
        const char *v = p + 2 + klen;
        size_t n = strcspn(v, "/");
        if (n < len) {
            memcpy(out, v, n);
            out[n] = '\0';
        }
        return;
    }
}

void imds_handle_instance(http_req *req)
{
    struct agent *a = ((struct agent_loop *)req->worker)->a;
    char sub[MV_MAX_NAME * 2], rg[MV_MAX_NAME * 2], vm_id[MV_MAX_SCOPE];
    if (!meta_precheck(req))
        return;
    agent_vm_resource_id(a, vm_id, sizeof vm_id);
    arm_segment(vm_id, "subscriptions", sub, sizeof sub);
    arm_segment(vm_id, "resourceGroups", rg, sizeof rg);
    json_t *compute = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[], s:s, s:s, s:s}", "azEnvironment",
        "mivault", "location", "local", "name", a->node.vm, "osType", "Linux",
        "resourceGroupName", rg, "resourceId", vm_id, "subscriptionId", sub, "tags",
        "", "tagsList", "vmId", "", "vmSize", "Standard_Local", "zone", "");
    reply(req, compute ? json_pack("{s:o, s:{s:[]}}", "compute", compute, "network", "interface")
                       : NULL);
}
