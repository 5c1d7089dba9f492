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

void agent_route(http_req *req)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (req->path && strcmp(req->path, routes[i].path) == 0) {
            routes[i].handler(req);
            return;
        }
    }
    agent_reply_error(req, 404, "not_found", "The requested path was not found");
}
