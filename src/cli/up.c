/* up.c: `mivault up`, the embedded default (DESIGN §2): init if needed, one server, vault `dev`,
 * VM `localvm` with a system-assigned identity granted Key Vault Secrets Officer on `dev`, its
 * agent; then env.sh and the hosts-file line; runs until interrupted.
 *
 * One process: the server and the agent run as threads of `up` itself (server_start,
 * agent_start), not as child processes, so the libraries and the binary are in memory once
 * (docs/benchmarks.md, "What changed: agent"). Only this thread waits for SIGINT/SIGTERM: they
 * are blocked before any thread exists, so every thread inherits the mask and sigwait here sees
 * them; then the agent stops first (it is the server's client), then the server. The agent
 * enrolls over HTTPS with the in-process server, which listens before the control-plane steps.
 *
 * --imds-address A is the exception: the agent then runs as a child process `mivault agent
 * --imds-address A` (IMDS on A:80; as root it binds, then drops privileges to nobody,
 * docs/imds-on-a-host.md). Dropping privileges is per process, and the server must keep its
 * access to the 0700 state dir, so that agent keeps its own process; up then also watches for
 * it to exit (SIGCHLD). At 169.254.169.254, the address every SDK and az use without
 * configuration, env.sh names no identity endpoint at all. */
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "cli/launch.h"
#include "common/log.h"
#include "common/privs.h"
#include "common/secmem.h"
#include "common/util.h"
#include "server/server.h"

#define UP_VM "localvm"
#define UP_VAULT "dev"
#define UP_IMDS_PORT 80
/* DOC-VMTOKEN: the address SDKs and az use when no environment variable names another. */
#define UP_WELL_KNOWN_IMDS "169.254.169.254"

/* The agent's base URL: its --imds-address on port 80 (port omitted), else the config's. */
static mv_rc agent_url(const struct cli *c, const char *imds, char *out, size_t len)
{
    if (!imds)
        return mv_fmt(out, len, "http://%s:%d", c->cfg.agent_host, c->cfg.agent_port);
    int v6 = strchr(imds, ':') != NULL;
    return mv_fmt(out, len, "http://%s%s%s", v6 ? "[" : "", imds, v6 ? "]" : "");
}

static mv_rc write_env(const struct cli *c, const char *imds)
{
    mv_rc rc = MV_OK;
    char vault_url[512], agent[128];
    mv_buf b;
    mv_buf_init(&b, 8192);
    CHECK(state_vault_url(&c->cfg, UP_VAULT, vault_url, sizeof vault_url));
    CHECK(agent_url(c, imds, agent, sizeof agent));
    CHECK(mv_buf_addf(&b,
                      "# written by `mivault up`: source it in a workload's shell\n"
                      "export MIVAULT_HOME='%s'\n",
                      c->paths.dir));
    /* MSI_ENDPOINT is deliberately absent: with it set, the JS SDK takes the Cloud-Shell path,
     * which refuses user-assigned identities (docs/compatibility.md). */
    if (imds && strcmp(imds, UP_WELL_KNOWN_IMDS) == 0)
        CHECK(mv_buf_addf(&b, "# IMDS is at %s, where every SDK and az look by default: no identity endpoint "
                              "variable\n",
                          agent));
    else
        CHECK(mv_buf_addf(&b,
                          "export AZURE_POD_IDENTITY_AUTHORITY_HOST='%s'\n"
                          "export MSAL_MANAGED_IDENTITY_ENDPOINT='%s/metadata/identity/oauth2/token'\n",
                          agent, agent));
    CHECK(mv_buf_addf(&b,
                      "export REQUESTS_CA_BUNDLE='%s'\n"
                      "export SSL_CERT_FILE='%s'\n"
                      "export NODE_EXTRA_CA_CERTS='%s'\n"
                      "export MIVAULT_VAULT_URL='%s'\n",
                      c->paths.bundle, c->paths.bundle, c->paths.ca_pem, vault_url));
    CHECK(mv_write_file(c->paths.env_sh, b.p, b.len, 0644));
out:
    mv_buf_free(&b);
    return rc;
}

/* The agent of UP_VM: in this process, or (with --imds-address) a child process. */
static mv_rc start_agent(struct cli *c, const char *imds, const char *join, char *state_arg,
                         struct agent_handle **agent, pid_t *agent_pid)
{
    if (!imds) {
        struct agent_opts o = {
            .state_dir = c->paths.dir,
            .vm = UP_VM,
            .join_token = join[0] ? join : NULL,
        };
        return agent_start(&o, agent);
    }
    char *argv[13] = {"mivault", "agent", "--vm", UP_VM, "--state", state_arg};
    int n = 6;
    const char *log_format = cli_get(c, "log-format");
    if (log_format) { /* the child logs as up does */
        argv[n++] = "--log-format";
        argv[n++] = (char *)log_format;
    }
    if (join[0]) {
        argv[n++] = "--join";
        argv[n++] = (char *)join;
    }
    argv[n++] = "--imds-address";
    argv[n++] = (char *)imds;
    mv_rc rc = launch_child(argv, 0, agent_pid);
    if (rc == MV_OK)
        rc = launch_wait_port(imds, UP_IMDS_PORT, *agent_pid, 20000);
    return rc;
}

int verb_up(struct cli *c)
{
    struct mv_config cfg;
    enum state_init_outcome created = STATE_EXISTING;
    int status = 1;
    pid_t agent_pid = -1;
    struct server_handle *server = NULL;
    struct agent_handle *agent = NULL;
    struct arm_client *a = NULL;
    char principal[64], join[128] = "", state_arg[PATH_MAX], agent_base[128];
    const char *imds = cli_get(c, "imds-address");
    /* Before any thread exists: every thread inherits the mask, so only sigwait below sees
     * these (http_server_start blocks SIGINT/SIGTERM too, and ignores SIGPIPE). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sigs, NULL);

    const char *listen = NULL, *metrics_at = NULL;
    struct cli_metrics *metrics = NULL;
    if (cli_config_from_flags(c, &cfg) || cli_listen_flag(c, &listen) || cli_metrics_flag(c, &metrics_at) ||
        cli_trust_ca_flags(c))
        return 2;
    if (mv_protect_daemon() != MV_OK)
        return cli_error("%s", cli_detail());
    if (imds && !*imds) {
        cli_error("up: --imds-address wants an address, e.g. %s", UP_WELL_KNOWN_IMDS);
        return 2;
    }
    umask(077);
    int usage = 0;
    if (launch_init(c, &cfg, &created, &usage) != MV_OK)
        return usage ? 2 : 1;
    struct mv_user run_as;
    if (cli_state_user(c, c->paths.dir, &run_as) != MV_OK) {
        cli_error("%s", cli_detail());
        return 1;
    }
    if (mv_copy(state_arg, sizeof state_arg, c->paths.dir) != MV_OK)
        return 1;
    char listen_at[128];
    if (listen)
        snprintf(listen_at, sizeof listen_at, "%s", listen);
    else
        snprintf(listen_at, sizeof listen_at, "%s:%d", c->cfg.server_host, c->cfg.server_port);
    if (server_start(c->paths.dir, listen, &server) != MV_OK) {
        cli_error("the server did not start on %s (port in use? see the messages above)", listen_at);
        goto done;
    }
    char db[PATH_MAX];
    if (metrics_at && (state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK ||
                       cli_metrics_start(metrics_at, db, &metrics) != MV_OK))
        goto done;
    if (arm_client_new(c, &a) != MV_OK || launch_ensure_vault(a, UP_VAULT) != MV_OK ||
        launch_ensure_vm(a, UP_VM, 1, principal, sizeof principal) != MV_OK ||
        launch_grant(a, principal, ROLE_SECRETS_OFFICER, UP_VAULT) != MV_OK)
        goto done;
    if (!launch_agent_enrolled(c, UP_VM) && launch_join_token(a, UP_VM, join, sizeof join) != MV_OK)
        goto done;
    arm_client_free(a);
    a = NULL;
    const char *agent_host = imds ? imds : c->cfg.agent_host;
    int agent_port = imds ? UP_IMDS_PORT : c->cfg.agent_port;
    if (start_agent(c, imds, join, state_arg, &agent, &agent_pid) != MV_OK) {
        cli_error("the agent did not start on %s:%d", agent_host, agent_port);
        goto done;
    }
    OPENSSL_cleanse(join, sizeof join);
    if (write_env(c, imds) != MV_OK || agent_url(c, imds, agent_base, sizeof agent_base) != MV_OK) {
        cli_error("cannot write %s", c->paths.env_sh);
        goto done;
    }
    /* As root: the server and the agent listen and hold their keys; the rest runs as the state
     * dir's user. Not with --imds-address: up must still be able to stop its root-started
     * agent child (which drops to nobody itself). */
    if (run_as.set && !imds &&
        (mv_state_handover(c->paths.dir, &run_as) != MV_OK || mv_drop_to(&run_as) != MV_OK)) {
        cli_error("%s", cli_detail());
        goto done;
    }
    char vault_url[512];
    if (state_vault_url(&c->cfg, UP_VAULT, vault_url, sizeof vault_url) != MV_OK)
        goto done;
    printf("mivault is up (%s state in %s)\n\n"
           "  server    %s   (authority, control plane, vaults; listening on %s)\n"
           "  agent     %s    (IMDS of VM '%s', identity %s)\n"
           "  vault     %s   ('%s' has Key Vault Secrets Officer)\n\n"
           "Add this line to /etc/hosts (once):\n"
           "  127.0.0.1 %s.%s %s\n\n"
           "Then, in the workload's shell:\n"
           "  . %s\n\n"
           "Ctrl-C stops mivault.\n",
           created == STATE_CREATED ? "new" : created == STATE_JOINED ? "joined" : "existing", c->paths.dir,
           c->cfg.public_url, listen_at, agent_base, UP_VM,
           principal, vault_url, UP_VM, UP_VAULT, c->cfg.vault_suffix, c->cfg.vault_suffix, c->paths.env_sh);
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
            if (p == agent_pid) {
                cli_error("the agent exited (status %d); stopping",
                          WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                agent_pid = -1;
                died = 1;
            }
        }
        if (died)
            break;
    }
done:
    OPENSSL_cleanse(join, sizeof join);
    arm_client_free(a);
    agent_stop(agent);
    launch_stop(agent_pid);
    cli_metrics_stop(metrics);
    server_stop(server);
    return status;
}
