/* agent.h: the host agent of one VM (DESIGN §2): enrolls its node key with a join token once,
 * then serves the IMDS token endpoint (reference §1), the App Service (IDENTITY_ENDPOINT) and
 * Cloud-Shell (MSI_ENDPOINT POST) protocols, and caches tokens per (identity, resource). */
#ifndef MV_AGENT_AGENT_H
#define MV_AGENT_AGENT_H

#include "common/result.h"

struct agent_opts {
    const char *state_dir;     /* --state */
    const char *vm;            /* --vm */
    const char *join_token;    /* --join, NULL if already enrolled */
    const char *listen;        /* --listen ADDR:PORT, NULL = config agent_host:agent_port */
    const char *imds_address;  /* --imds-address: serve port 80 there */
    const char *server_url;    /* --server, NULL = from config */
};

/* Runs until SIGINT/SIGTERM. */
MV_MUST_CHECK mv_rc agent_run(const struct agent_opts *o);

#endif
