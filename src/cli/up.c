/* up.c: `mivault up`, the embedded default (DESIGN §2): init if needed, one server, vault `dev`,
 * VM `localvm` with a system-assigned identity granted Key Vault Secrets Officer on `dev`, its
 * agent; then env.sh and the hosts-file line; runs until interrupted. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/launch.h"
#include "common/log.h"
#include "common/util.h"

#define UP_VM "localvm"
#define UP_VAULT "dev"

static mv_rc write_env(const struct cli *c)
{
    mv_rc rc = MV_OK;
    char vault_url[512], agent[128];
    mv_buf b;
    mv_buf_init(&b, 8192);
    CHECK(state_vault_url(&c->cfg, UP_VAULT, vault_url, sizeof vault_url));
    CHECK(mv_fmt(agent, sizeof agent, "http://%s:%d", c->cfg.agent_host, c->cfg.agent_port));
    /* MSI_ENDPOINT is deliberately absent: with it set, the JS SDK takes the Cloud-Shell path,
     * which refuses user-assigned identities (docs/compatibility.md). */
    CHECK(mv_buf_addf(&b,
                      "# written by `mivault up`: source it in a workload's shell\n"
                      "export MIVAULT_HOME='%s'\n"
                      "export AZURE_POD_IDENTITY_AUTHORITY_HOST='%s'\n"
                      "export MSAL_MANAGED_IDENTITY_ENDPOINT='%s/metadata/identity/oauth2/token'\n"
                      "export REQUESTS_CA_BUNDLE='%s'\n"
                      "export SSL_CERT_FILE='%s'\n"
                      "export NODE_EXTRA_CA_CERTS='%s'\n"
                      "export MIVAULT_VAULT_URL='%s'\n",
                      c->paths.dir, agent, agent, c->paths.bundle, c->paths.bundle, c->paths.ca_pem, vault_url));
    CHECK(mv_write_file(c->paths.env_sh, b.p, b.len, 0644));
out:
    mv_buf_free(&b);
    return rc;
}

int verb_up(struct cli *c)
{
    struct mv_config cfg;
    int created = 0, status = 1;
    pid_t server = -1, agent = -1;
    struct arm_client *a = NULL;
    char principal[64], join[128], state_arg[PATH_MAX];
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sigs, NULL);

    if (cli_config_from_flags(c, &cfg))
        return 2;
    if (launch_init(c, &cfg, &created) != MV_OK)
        return 1;
    if (mv_copy(state_arg, sizeof state_arg, c->paths.dir) != MV_OK)
        return 1;
    char *server_argv[] = {"mivault", "server", "--state", state_arg, NULL};
    if (launch_child(server_argv, 0, &server) != MV_OK ||
        launch_wait_port(c->cfg.server_host, c->cfg.server_port, server, 20000) != MV_OK) {
        cli_error("the server did not start on %s:%d (port in use? see the messages above)", c->cfg.server_host,
                  c->cfg.server_port);
        goto done;
    }
    if (arm_client_new(c, &a) != MV_OK || launch_ensure_vault(a, UP_VAULT) != MV_OK ||
        launch_ensure_vm(a, UP_VM, 1, principal, sizeof principal) != MV_OK ||
        launch_grant(a, principal, ROLE_SECRETS_OFFICER, UP_VAULT) != MV_OK)
        goto done;
    char *agent_argv[] = {"mivault", "agent", "--vm", UP_VM, "--state", state_arg, NULL, NULL, NULL};
    if (!launch_agent_enrolled(c, UP_VM)) {
        if (launch_join_token(a, UP_VM, join, sizeof join) != MV_OK)
            goto done;
        agent_argv[6] = "--join";
        agent_argv[7] = join;
    }
    arm_client_free(a);
    a = NULL;
    if (launch_child(agent_argv, 0, &agent) != MV_OK ||
        launch_wait_port(c->cfg.agent_host, c->cfg.agent_port, agent, 20000) != MV_OK) {
        cli_error("the agent did not start on %s:%d", c->cfg.agent_host, c->cfg.agent_port);
        goto done;
    }
    if (write_env(c) != MV_OK) {
        cli_error("cannot write %s", c->paths.env_sh);
        goto done;
    }
    char vault_url[512];
    if (state_vault_url(&c->cfg, UP_VAULT, vault_url, sizeof vault_url) != MV_OK)
        goto done;
    printf("mivault is up (%s state in %s)\n\n"
           "  server    https://%s:%d   (authority, control plane, vaults)\n"
           "  agent     http://%s:%d    (IMDS of VM '%s', identity %s)\n"
           "  vault     %s   ('%s' has Key Vault Secrets Officer)\n\n"
           "Add this line to /etc/hosts (once):\n"
           "  127.0.0.1 %s.%s %s\n\n"
           "Then, in the workload's shell:\n"
           "  . %s\n\n"
           "Ctrl-C stops mivault.\n",
           created ? "new" : "existing", c->paths.dir, c->cfg.server_host, c->cfg.server_port, c->cfg.agent_host,
           c->cfg.agent_port, UP_VM, principal, vault_url, UP_VM, UP_VAULT, c->cfg.vault_suffix,
           c->cfg.vault_suffix, c->paths.env_sh);
    fflush(stdout);
    for (;;) {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (sig != SIGCHLD) {
            status = 0;
            break;
        }
        int st;
        pid_t p;
        int died = 0;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            if (p == server || p == agent) {
                cli_error("the %s exited (status %d); stopping", p == server ? "server" : "agent",
                          WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                if (p == server)
                    server = -1;
                else
                    agent = -1;
                died = 1;
            }
        }
        if (died)
            break;
    }
done:
    arm_client_free(a);
    launch_stop(agent);
    launch_stop(server);
    return status;
}
