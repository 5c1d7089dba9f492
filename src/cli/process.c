/* process.c: the verbs that run or prepare mivault's processes: init, server, audit (agent:
 * agent.c). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "authority/authority.h"
#include "cli/cli.h"
#include "cli/launch.h"
#include "common/privs.h"
#include "common/secmem.h"
#include "common/util.h"
#include "server/server.h"

const char *cli_detail(void)
{
    /* mv_fail records "message (file:line, category)": people get the message. */
    static _Thread_local char msg[256];
    const char *d = mv_last_detail();
    const char *cut = strrchr(d, '(');
    size_t n = cut && cut > d ? (size_t)(cut - d) : strlen(d);
    while (n > 0 && d[n - 1] == ' ')
        n--;
    if (n >= sizeof msg)
        n = sizeof msg - 1;
    memcpy(msg, d, n);
    msg[n] = '\0';
    return msg;
}

/* Config for a new state: defaults, then --server-port / --agent-port / --vault-suffix /
 * --threads / --throttle-ops / --throttle-creates / --imds-rate-limit / --public-url. */
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
    /* Hidden: the SQLite file of another state dir, so a test can join an installation without
     * PostgreSQL (docs/config.md, "store"). */
    const char *sf = cli_get(c, "sqlite-file");
    if (sf && (sf[0] != '/' || mv_copy(cfg->store, sizeof cfg->store, sf) != MV_OK))
        return cli_error("--sqlite-file wants an absolute path");
    /* DESIGN §3: the public URL defaults to the server's own address and port. */
    if (state_config_public_url(cfg, cli_get(c, "public-url")) != MV_OK)
        return cli_error("--public-url: %s", cli_detail());
    return 0;
}

int verb_init(struct cli *c)
{
    struct mv_config cfg;
    enum state_init_outcome outcome = STATE_EXISTING;
    if (cli_config_from_flags(c, &cfg))
        return 2;
    const char *mk = cli_get(c, "master-key");
    if (mk && !*mk)
        return cli_error("--master-key wants a file: a copy of the first server's master.key") + 1;
    umask(077);
    int usage = 0;
    if (launch_init(c, &cfg, &outcome, &usage) != MV_OK)
        return usage ? 2 : 1;
    struct mv_user u;
    if (cli_state_user(c, c->paths.dir, &u) != MV_OK)
        return cli_error("%s", cli_detail());
    struct store *st = NULL;
    struct mv_tenant t;
    char url[256], db[PATH_MAX];
    if (state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK || store_open(db, &st) != MV_OK ||
        state_tenant(st, &t) != MV_OK || state_server_url(&c->cfg, url, sizeof url) != MV_OK) {
        store_close(st);
        return cli_error("cannot read the new state: %s", cli_detail());
    }
    store_close(st);
    cli_print(c,
              json_pack("{s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:s, s:s}", "stateDir", c->paths.dir, "created",
                        outcome == STATE_CREATED, "joined", outcome == STATE_JOINED, "tenantId", t.tenant_id,
                        "subscriptionId", t.subscription_id, "resourceGroup", t.resource_group, "adminPrincipalId",
                        t.admin_principal_id, "serverUrl", url, "publicUrl", url),
              (const char *const[]){"stateDir", "tenantId", "subscriptionId", "serverUrl", NULL});
    return 0;
}

int cli_listen_flag(const struct cli *c, const char **listen)
{
    struct mv_listen l;
    *listen = cli_get(c, "listen");
    if (*listen && mv_parse_listen(*listen, &l) != MV_OK)
        return cli_error("--listen: %s", cli_detail());
    return 0;
}

int cli_trust_ca_flags(const struct cli *c)
{
    const char *files[16];
    int n = cli_get_all(c, "trust-ca", files, 16);
    for (int i = 0; i < n; i++)
        if (authority_trust_ca_add(files[i]) != MV_OK)
            return cli_error("--trust-ca %s: %s", files[i], cli_detail()) + 1;
    return 0;
}

int verb_server(struct cli *c)
{
    const char *listen = NULL, *metrics_at = NULL;
    struct cli_metrics *metrics = NULL;
    char db[PATH_MAX];
    if (cli_listen_flag(c, &listen) || cli_metrics_flag(c, &metrics_at) || cli_trust_ca_flags(c))
        return 2;
    if (mv_protect_daemon() != MV_OK)
        return cli_error("%s", cli_detail());
    umask(077); /* the store and the audit log: 0600 */
    if (cli_load_state(c) != MV_OK)
        return 1;
    struct mv_user u;
    if (cli_state_user(c, c->paths.dir, &u) != MV_OK)
        return cli_error("%s", cli_detail());
    if (metrics_at && (state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK ||
                       cli_metrics_start(metrics_at, db, &metrics) != MV_OK))
        return 1;
    int status = server_run(c->paths.dir, listen, &u) == MV_OK ? 0 : 1;
    cli_metrics_stop(metrics);
    return status;
}

/* --logs values: a state dir (its audit.log, and its server.id as the expected writer) or an
 * audit.log file (rotated files beside it). */
#define AUDIT_MAX_LOGS 16
struct log_arg {
    char path[PATH_MAX];
    char writer[ST_ID];
};

static int log_arg(const struct mv_paths *p, const char *given, struct log_arg *out)
{
    struct stat sb;
    struct mv_paths other;
    out->writer[0] = '\0';
    if (!p && (stat(given, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        return mv_copy(out->path, sizeof out->path, given) == MV_OK ? 0 : cli_error("--logs: path too long");
    if (!p) {
        if (state_paths(given, &other) != MV_OK)
            return cli_error("--logs %s: %s", given, cli_detail());
        p = &other;
    }
    if (mv_copy(out->path, sizeof out->path, p->audit_log) != MV_OK)
        return cli_error("--logs: path too long");
    if (mv_file_exists(p->server_id) && state_server_id(p, 0, out->writer) != MV_OK)
        return cli_error("%s", cli_detail());
    return 0;
}

int verb_audit_verify(struct cli *c)
{
    const char *given[AUDIT_MAX_LOGS];
    struct log_arg args[AUDIT_MAX_LOGS + 1];
    struct audit_log_src src[AUDIT_MAX_LOGS + 1];
    struct store *st = NULL;
    json_t *report = NULL;
    char db[PATH_MAX];
    int n = cli_get_all(c, "logs", given, AUDIT_MAX_LOGS);
    if (cli_load_state(c) != MV_OK)
        return 1;
    if (log_arg(&c->paths, NULL, &args[0]))
        return 1;
    for (int i = 0; i < n; i++)
        if (log_arg(NULL, given[i], &args[i + 1]))
            return 1;
    for (int i = 0; i <= n; i++)
        src[i] = (struct audit_log_src){.path = args[i].path, .writer = args[i].writer[0] ? args[i].writer : NULL};
    if (state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK || store_open(db, &st) != MV_OK)
        return cli_error("audit: cannot open the store (it holds the checkpoints): %s", cli_detail());
    /* The audit key (from the master key) checks the records' macs and the store's heads. */
    unsigned char key[32];
    if (state_audit_key(&c->paths, key) != MV_OK) {
        store_close(st);
        return cli_error("audit: cannot derive the audit key (verify needs the master key of the"
                         " state dir): %s", cli_detail());
    }
    mv_rc rc = audit_verify_all(st, src, (size_t)n + 1, key, &report);
    OPENSSL_cleanse(key, sizeof key);
    store_close(st);
    if (rc != MV_OK)
        return cli_error("audit: NOT intact: %s", cli_detail());
    /* the first writer is this state dir's log: its file and lines, as before N writers */
    json_t *self = json_array_get(json_object_get(report, "writers"), 0);
    json_object_set(report, "file", json_object_get(self, "file"));
    json_object_set(report, "lines", json_object_get(self, "lines"));
    if (!json_is_true(json_object_get(report, "complete")))
        fprintf(stderr, "mivault: audit: some writers have checkpoints but no log was given (writersWithoutLog);"
                        " pass their state dirs with --logs to check them\n");
    cli_print(c, report, NULL);
    return 0;
}
