/* process.c: the verbs that run or prepare mivault's processes: init, server, agent, audit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "cli/launch.h"
#include "common/util.h"
#include "server/audit.h"
#include "server/server.h"

/* Config for a new state: defaults, then --server-port / --agent-port / --vault-suffix /
 * --threads / --throttle-ops / --throttle-creates / --imds-rate-limit. */
int cli_config_from_flags(const struct cli *c, struct mv_config *cfg)
{
    state_config_defaults(cfg);
    const char *sp = cli_get(c, "server-port"), *ap = cli_get(c, "agent-port"), *vs = cli_get(c, "vault-suffix");
    const char *th = cli_get(c, "threads");
    int64_t v;
    if (sp) {
        if (mv_parse_i64(sp, &v) != MV_OK || v < 1 || v > 65535)
            return cli_error("--server-port must be a port number");
        cfg->server_port = (int)v;
    }
    if (ap) {
        if (mv_parse_i64(ap, &v) != MV_OK || v < 1 || v > 65535)
            return cli_error("--agent-port must be a port number");
        cfg->agent_port = (int)v;
    }
    if (th) {
        if (mv_parse_i64(th, &v) != MV_OK || v < 0 || v > 256)
            return cli_error("--threads must be 0..256");
        cfg->threads = (int)v;
    }
    if (vs && mv_copy(cfg->vault_suffix, sizeof cfg->vault_suffix, vs) != MV_OK)
        return cli_error("--vault-suffix is too long");
    /* Azure's Key Vault model: per vault, per 10 s window; 0 turns a limit off. */
    const char *to = cli_get(c, "throttle-ops"), *tc = cli_get(c, "throttle-creates");
    if (to) {
        if (mv_parse_i64(to, &v) != MV_OK || v < 0 || v > 1000000000)
            return cli_error("--throttle-ops must be a number of transactions per 10 s (0 = off)");
        cfg->throttle_ops = (int)v;
    }
    if (tc) {
        if (mv_parse_i64(tc, &v) != MV_OK || v < 0 || v > 1000000000)
            return cli_error("--throttle-creates must be a number of creates per 10 s (0 = off)");
        cfg->throttle_creates = (int)v;
    }
    /* The store: a PostgreSQL URL, else SQLite in the state dir (docs/store.md). */
    const char *su = cli_get(c, "store");
    if (su && (!store_is_url(su) || mv_copy(cfg->store, sizeof cfg->store, su) != MV_OK))
        return cli_error("--store must be a postgresql:// URL (at most %d bytes)", MV_STORE_URL_MAX - 1);
    /* The agent's IMDS token rate limit (DOC-IMDS "Rate limiting"); 0 turns it off. */
    const char *rl = cli_get(c, "imds-rate-limit");
    if (rl) {
        if (mv_parse_i64(rl, &v) != MV_OK || v < 0 || v > 1000000000)
            return cli_error("--imds-rate-limit must be a number of requests per second (0 = off)");
        cfg->imds_rate_limit = (int)v;
    }
    return 0;
}

int verb_init(struct cli *c)
{
    struct mv_config cfg;
    int created = 0;
    if (cli_config_from_flags(c, &cfg))
        return 2;
    if (launch_init(c, &cfg, &created) != MV_OK)
        return 1;
    struct store *st = NULL;
    struct mv_tenant t;
    char url[256];
    if (store_open(c->paths.db, &st) != MV_OK || state_tenant(st, &t) != MV_OK ||
        state_server_url(&c->cfg, url, sizeof url) != MV_OK) {
        store_close(st);
        return cli_error("cannot read the new state: %s", mv_last_detail());
    }
    store_close(st);
    cli_print(c,
              json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s}", "stateDir", c->paths.dir, "created", created,
                        "tenantId", t.tenant_id, "subscriptionId", t.subscription_id, "resourceGroup",
                        t.resource_group, "adminPrincipalId", t.admin_principal_id, "serverUrl", url),
              (const char *const[]){"stateDir", "tenantId", "subscriptionId", "serverUrl", NULL});
    return 0;
}

int verb_server(struct cli *c)
{
    if (cli_load_state(c) != MV_OK)
        return 1;
    return server_run(c->paths.dir) == MV_OK ? 0 : 1;
}

int verb_agent(struct cli *c)
{
    struct agent_opts o = {
        .state_dir = c->state_dir,
        .vm = cli_get(c, "vm"),
        .join_token = cli_get(c, "join"),
        .listen = cli_get(c, "listen"),
        .imds_address = cli_get(c, "imds-address"),
        .server_url = cli_get(c, "server"),
    };
    if (!o.vm || !*o.vm)
        return cli_error("agent: --vm is required") + 1;
    return agent_run(&o) == MV_OK ? 0 : 1;
}

int verb_audit_verify(struct cli *c)
{
    long lines = 0;
    if (state_paths(c->state_dir, &c->paths) != MV_OK)
        return 1;
    mv_rc rc = audit_verify(c->paths.audit_log, &lines);
    if (rc != MV_OK)
        return cli_error("audit log %s: %s", c->paths.audit_log, mv_last_detail());
    cli_print(c, json_pack("{s:s, s:I, s:b}", "file", c->paths.audit_log, "lines", (json_int_t)lines, "intact", 1), NULL);
    return 0;
}
