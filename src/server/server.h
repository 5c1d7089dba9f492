/* server.h: `mivault server`: the authority, the control plane and the vault behind one HTTPS
 * listener, routed by Host and path (docs/internal-protocol.md). */
#ifndef MV_SERVER_SERVER_H
#define MV_SERVER_SERVER_H

#include "common/result.h"

/* Loads the state (which must have been initialised), serves until SIGINT/SIGTERM. */
MV_MUST_CHECK mv_rc server_run(const char *state_dir);

#endif
