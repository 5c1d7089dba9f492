/* launch.h: what `up` and `demo` share: initialising a state dir, starting the server and an
 * agent as child processes of this binary, and waiting for them to listen. */
#ifndef MV_CLI_LAUNCH_H
#define MV_CLI_LAUNCH_H

#include <sys/types.h>

#include "cli/cli.h"

/* Init (idempotent; joins with --master-key, see state_init) with cfg for a new state; then
 * loads paths/config into c. On an existing state, applies the run-time flags to config.json and
 * refuses a changed init-only flag (*usage set: exit 2). Prints errors. usage may be NULL. */
MV_MUST_CHECK mv_rc launch_init(struct cli *c, const struct mv_config *cfg,
                                enum state_init_outcome *outcome, int *usage);
/* fork + exec of this binary with argv (NULL-terminated, argv[0] ignored); quiet: child's
 * stderr to /dev/null unless MIVAULT_VERBOSE is set. */
MV_MUST_CHECK mv_rc launch_child(char *const argv[], int quiet, pid_t *pid);
/* Waits until host:port accepts a TCP connection, or timeout, or the child exits. */
MV_MUST_CHECK mv_rc launch_wait_port(const char *host, int port, pid_t child, int timeout_ms);
void launch_stop(pid_t pid);
/* Returns a free TCP port on 127.0.0.1 (for demo state dirs). */
int launch_free_port(void);

/* Control-plane steps (as admin); each prints its errors. */
MV_MUST_CHECK mv_rc launch_ensure_vault(struct arm_client *a, const char *name);
/* Creates the VM if absent (system identity on/off); principal id out ("" if none). */
MV_MUST_CHECK mv_rc launch_ensure_vm(struct arm_client *a, const char *name, int system, char *principal, size_t len);
MV_MUST_CHECK mv_rc launch_grant(struct arm_client *a, const char *principal, const char *role_guid, const char *vault);
MV_MUST_CHECK mv_rc launch_join_token(struct arm_client *a, const char *vm, char *out, size_t len);
int launch_agent_enrolled(const struct cli *c, const char *vm);

#define ROLE_SECRETS_OFFICER "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"

#endif
