/* server.h: `mivault server`: the authority, the control plane and the vault behind one HTTPS
 * listener, routed by Host and path (docs/internal-protocol.md). */
#ifndef MV_SERVER_SERVER_H
#define MV_SERVER_SERVER_H

#include "common/privs.h"
#include "common/result.h"

/* Loads the state (which must have been initialised), serves until SIGINT/SIGTERM. listen:
 * "ADDR:PORT" or "[V6]:PORT" to listen on instead of the config's serverHost:serverPort (behind a
 * load balancer each server listens where it likes; clients still see the public URL); NULL
 * keeps the config's. run_as (set when started as root): once listening, with its keys read,
 * the state dir is handed to that user again (files made while starting) and the process
 * switches to it for good. */
MV_MUST_CHECK mv_rc server_run(const char *state_dir, const char *listen,
                               const struct mv_user *run_as);

/* The same server inside a process that waits for its signals itself (`mivault up`):
 * server_start loads the state and returns once the loops serve (SIGINT/SIGTERM/SIGPIPE are
 * then blocked in the calling thread, see http/server.h); server_stop ends the loops, drains
 * the store writer and frees everything. server_stop(NULL) is a no-op. */
struct server_handle;
MV_MUST_CHECK mv_rc server_start(const char *state_dir, const char *listen,
                                 struct server_handle **out);
void server_stop(struct server_handle *h);

#endif
