/* vault.h: the Key Vault data plane (reference §4): requests whose Host is
 * {vault}.{vault_suffix}. Challenge, token validation, RBAC per data action, secrets. */
#ifndef MV_VAULT_VAULT_H
#define MV_VAULT_VAULT_H

#include "http/server.h"
#include "server/context.h"

/* If req->host is NAME.{suffix}, copies NAME into name (lower-case) and returns 1. */
int vault_host_match(const struct mv_server *srv, const char *host, char *name, size_t len);
void vault_handle(http_req *req, const char *vault_name);
/* Per-worker state (token cache, throttle counters). */
MV_MUST_CHECK mv_rc vault_worker_init(struct mv_worker *w);
void vault_worker_free(struct mv_worker *w);

#endif
