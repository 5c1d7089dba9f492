/* routes.c: the agent's route table (exact paths; each handler checks its own method and
 * headers so that refusals come in the order reference §1.1 prescribes). msal-node adds a
 * trailing slash to the token path when AZURE_POD_IDENTITY_AUTHORITY_HOST is set (reference
 * addendum), so both spellings are served. */
#include <string.h>

#include "agent/agent_internal.h"

struct route {
    const char *path;
    http_handler handler;
};

static const struct route routes[] = {
    {"/metadata/identity/oauth2/token", imds_handle_token},
    {"/metadata/identity/oauth2/token/", imds_handle_token},
    {"/metadata/identity/info", imds_handle_info},
    {"/metadata/versions", imds_handle_versions},
    {"/metadata/instance", imds_handle_instance},
    {"/metadata/instance/", imds_handle_instance},
    {"/msi/token", appsvc_handle_token},
    {"/msi/token/", appsvc_handle_token},
};

const char *agent_proxy_header(const http_req *req)
{
    static const char *const names[] = {"X-Forwarded-For", "Forwarded", "X-Real-IP", "Via"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = http_header(req, names[i]);
        if (v)
            return v;
    }
    return NULL;
}

void agent_route(http_req *req)
{
    const struct agent *a = ((const struct agent_loop *)req->worker)->a;
    req->m_plane = "imds"; /* the metrics' labels (http/server.h) */
    req->m_route = "unmatched";
    /* Before any route (reference §1.1 says nothing of Host; this is DNS rebinding). */
    if (!imds_host_ok(req->host, req->host_port, a->listen_host,
                      __atomic_load_n(&a->port, __ATOMIC_ACQUIRE))) {
        struct imds_error err;
        imds_outcome_error(IMDS_ERR_HOST, &err);
        agent_reply_error(req, err.status, err.error, err.description);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (req->path && strcmp(req->path, routes[i].path) == 0) {
            req->m_route = routes[i].path;
            req->m_token = routes[i].handler == imds_handle_token || routes[i].handler == appsvc_handle_token;
            routes[i].handler(req);
            return;
        }
    }
    agent_reply_error(req, 404, "not_found", "The requested path was not found");
}
