/* arm.h: the ARM-shaped control plane (DESIGN §3): subscriptions, resource groups, VMs,
 * user-assigned identities, vaults, role definitions and assignments, and the cloud metadata
 * endpoint az reads. Every write needs the caller to be authorized by RBAC (Owner: "*"). */
#ifndef MV_ARM_ARM_H
#define MV_ARM_ARM_H

#include "http/server.h"

/* Handles /subscriptions..., /providers/..., /metadata/endpoints. */
void arm_handle(http_req *req);
/* Does this path belong to the control plane? */
int arm_owns_path(const char *path);

/* Audiences the control plane accepts (NULL-terminated). */
extern const char *const ARM_AUDIENCES[];

#endif
