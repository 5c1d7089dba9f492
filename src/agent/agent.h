/* agent.h: the host agent of one VM (DESIGN §2): enrolls its node key with a join token once,
 * then serves the IMDS token endpoint (reference §1), the App Service (IDENTITY_ENDPOINT) and
 * Cloud-Shell (MSI_ENDPOINT POST) protocols, and caches tokens per (identity, resource). */
#ifndef MV_AGENT_AGENT_H
#define MV_AGENT_AGENT_H

#include "common/privs.h"
#include "common/result.h"

struct agent_opts {
    const char *state_dir;     /* --state */
    const char *vm;            /* --vm */
    const char *join_token;    /* mvj1.<secret>.sha256:<CA pin>, NULL if already enrolled */
    /* NULL: as remembered in STATE/agents/VM/agent.json, else from a server state's config. */
    const char *listen;        /* --listen ADDR:PORT (else config agent_host:agent_port) */
    const char *imds_address;  /* --imds-address: serve port 80 there */
    const char *server_url;    /* --server */
    int threads;               /* event loops; 0 = one per core (at most 2) */
    /* agent_run started as root: the state dir's user, switched to once listening (NULL or
     * unset: stay). --imds-address switches to nobody instead. */
    const struct mv_user *run_as;
};

/* Runs until SIGINT/SIGTERM; as root, switches to run_as (or, with --imds-address, nobody)
 * once listening. */
MV_MUST_CHECK mv_rc agent_run(const struct agent_opts *o);

/* The same agent inside a process that waits for its signals itself (`mivault up`): agent_start
 * enrolls if asked (the server must be reachable), and returns once the loops serve;
 * agent_stop ends them and frees everything (NULL is a no-op). agent_start never drops
 * privileges (that would drop them for the whole process). */
struct agent_handle;
MV_MUST_CHECK mv_rc agent_start(const struct agent_opts *o, struct agent_handle **out);
int agent_port(const struct agent_handle *h);
void agent_stop(struct agent_handle *h);

#endif
