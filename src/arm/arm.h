/* arm.h: the ARM-shaped control plane (DESIGN §3): subscriptions, resource groups, VMs,
 * user-assigned identities, vaults, role definitions and assignments, and the cloud metadata
 * endpoint az reads. Every write needs the caller to be authorized by RBAC (Owner: "*"). */
#ifndef MV_ARM_ARM_H
#define MV_ARM_ARM_H

#include "http/server.h"
#include "state/state.h"
#include "store/store.h"
#include "token/validate.h"

struct audit;

/* What the control plane needs of the server, shared read-only by every loop (the server builds
 * it). Pointers are borrowed and outlive the loops. */
struct arm_plane {
    struct mv_tenant tenant;        /* our one tenant, subscription and resource group */
    const char *server_url;         /* "https://127.0.0.1:8443": challenge, metadata endpoints */
    const struct mv_config *cfg;    /* vault URLs (state_vault_url) and the vault suffix */
    const char *ca_pem;             /* the CA certificate join tokens pin (STATE/ca.pem) */
    struct audit *audit;            /* NULL: no audit log */
};

/* What one loop thread gives the control plane. */
struct arm_loop {
    const struct arm_plane *srv;
    struct store *st;               /* the loop's connection */
    struct token_verifier *tv;      /* over the loop's key set, accepting ARM_AUDIENCES */
};

/* Handles /subscriptions..., /providers/..., /metadata/endpoints. */
void arm_handle(struct arm_loop *w, http_req *req);
/* Does this path belong to the control plane? */
int arm_owns_path(const char *path);

/* Audiences the control plane accepts (NULL-terminated). */
extern const char *const ARM_AUDIENCES[];

#endif
