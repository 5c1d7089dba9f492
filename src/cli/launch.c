/* launch.c: child processes and first-run resources for `up` and `demo` (see launch.h). */
#include "cli/launch.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "authority/authority.h"
#include "common/log.h"
#include "common/util.h"
#include <openssl/crypto.h>

/* 1 if the files hold the same bytes (the --master-key given and the state dir's). */
static int same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = mv_read_file(a, 4096, &x, &nx) == MV_OK && mv_read_file(b, 4096, &y, &ny) == MV_OK && nx == ny &&
               memcmp(x, y, nx) == 0;
    if (x)
        OPENSSL_cleanse(x, nx);
    if (y)
        OPENSSL_cleanse(y, ny);
    free(x);
    free(y);
    return same;
}

/* An existing state dir and the flags of init/up (docs/operations.md, "Flags on an existing
 * state"): a run-time flag that differs from config.json is written there and applies from this
 * start on; an init-only flag is refused, naming it, unless it repeats what the state holds.
 * flags: the config the flags made (cli_config_from_flags). 0 or an error already printed. */
static int existing_flags(struct cli *c, const struct mv_config *flags)
{
    static const struct {
        const char *name;
        size_t off;
    } RUNTIME[] = {
        {"throttle-ops", offsetof(struct mv_config, throttle_ops)},
        {"throttle-creates", offsetof(struct mv_config, throttle_creates)},
        {"imds-rate-limit", offsetof(struct mv_config, imds_rate_limit)},
        {"threads", offsetof(struct mv_config, threads)},
    };
    const char *why = NULL, *bad = NULL;
    if (cli_get(c, "server-port") && flags->server_port != c->cfg.server_port)
        bad = "server-port", why = "the public URL and the issuer derive from it; use --listen to serve elsewhere";
    else if (cli_get(c, "agent-port") && flags->agent_port != c->cfg.agent_port)
        bad = "agent-port", why = "agents and env.sh were set up with it";
    else if (cli_get(c, "vault-suffix") && strcmp(flags->vault_suffix, c->cfg.vault_suffix) != 0)
        bad = "vault-suffix", why = "vault URLs and token audiences derive from it";
    else if ((cli_get(c, "store") || cli_get(c, "sqlite-file")) && strcmp(flags->store, c->cfg.store) != 0)
        bad = cli_get(c, "store") ? "store" : "sqlite-file", why = "use `mivault store migrate` to move the store";
    else if (cli_get(c, "public-url") && strcmp(flags->public_url, c->cfg.public_url) != 0)
        bad = "public-url", why = "it is the issuer of every token";
    else if (cli_get(c, "master-key") && !same_file(cli_get(c, "master-key"), c->paths.master_key))
        bad = "master-key", why = "the state dir has its master key";
    if (bad) {
        cli_error("%s: --%s cannot change on the existing state %s (%s); it is an init-only option",
                  c->verb, bad, c->paths.dir, why);
        return 2;
    }
    int changed = 0;
    for (size_t i = 0; i < sizeof RUNTIME / sizeof RUNTIME[0]; i++) {
        int *now = (int *)(void *)((char *)&c->cfg + RUNTIME[i].off);
        const int *want = (const int *)(const void *)((const char *)flags + RUNTIME[i].off);
        if (!cli_get(c, RUNTIME[i].name) || *now == *want)
            continue;
        LOG_INFO("%s: --%s %d applies to the existing state (config.json had %d)", c->verb, RUNTIME[i].name, *want,
                 *now);
        *now = *want;
        changed = 1;
    }
    if (changed && state_config_save(&c->paths, &c->cfg) != MV_OK) {
        cli_error("%s: cannot update %s: %s", c->verb, c->paths.config, cli_detail());
        return 1;
    }
    return 0;
}

mv_rc launch_init(struct cli *c, const struct mv_config *cfg, enum state_init_outcome *outcome, int *usage)
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    struct st_signing_key *keys = NULL;
    size_t nkeys = 0;
    unsigned char dk[32];
    char db[PATH_MAX];
    int reported = 0;
    CHECK(state_paths(c->state_dir, &c->paths));
    rc = state_init(&c->paths, cfg, cli_get(c, "master-key"), outcome);
    if (rc != MV_OK) {
        cli_error("cannot initialise %s: %s", c->paths.dir, cli_detail());
        reported = 1;
        goto out;
    }
    CHECK(state_paths(c->state_dir, &c->paths)); /* again: config.json may name a store URL now */
    CHECK(state_config_load(&c->paths, &c->cfg));
    int bad = *outcome == STATE_EXISTING ? existing_flags(c, cfg) : 0;
    if (bad) {
        if (usage)
            *usage = bad == 2;
        reported = 1;
        rc = MV_ERR_BAD_REQUEST;
        goto out;
    }
    /* The first RS256 signing key is made here, so a fresh state is complete before serving. */
    CHECK(state_store_location(&c->paths, &c->cfg, db, sizeof db));
    CHECK(store_open(db, &st));
    CHECK(store_signing_keys(st, &keys, &nkeys));
    if (nkeys == 0) {
        CHECK(state_data_key(&c->paths, st, dk));
        CHECK(authority_new_signing_key(st, dk));
    }
out:
    if (rc != MV_OK && !reported)
        cli_error("cannot initialise %s: %s", c->paths.dir, cli_detail());
    OPENSSL_cleanse(dk, sizeof dk);
    st_signing_keys_free(keys, nkeys);
    store_close(st);
    return rc;
}

mv_rc launch_child(char *const argv[], int quiet, pid_t *pid)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return MV_ERR_INTERNAL;
    self[n] = '\0';
    pid_t p = fork();
    if (p < 0)
        return MV_ERR_INTERNAL;
    if (p == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (quiet && !getenv("MIVAULT_VERBOSE")) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        } else {
            dup2(2, 1); /* children's informational lines go to stderr: stdout is the verb's */
        }
        execv(self, argv);
        _exit(127);
    }
    *pid = p;
    return MV_OK;
}

mv_rc launch_wait_port(const char *host, int port, pid_t child, int timeout_ms)
{
    int64_t end = mv_now_ms() + timeout_ms;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return MV_ERR_BAD_REQUEST;
    while (mv_now_ms() < end) {
        int status;
        if (child > 0 && waitpid(child, &status, WNOHANG) == child)
            return MV_ERR_UNAVAILABLE;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(fd);
            return MV_OK;
        }
        if (fd >= 0)
            close(fd);
        poll(NULL, 0, 50);
    }
    return MV_ERR_UNAVAILABLE;
}

void launch_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        poll(NULL, 0, 50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int launch_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

mv_rc launch_ensure_vault(struct arm_client *a, const char *name)
{
    mv_rc rc = MV_OK;
    char path[1024];
    json_t *out = NULL;
    CHECK(arm_provider_path(a, "Microsoft.KeyVault/vaults", name, path, sizeof path));
    json_t *body = json_pack("{s:s, s:{}}", "location", "local", "properties");
    rc = arm_call(a, "PUT", path, body, &out, NULL);
    json_decref(body);
out:
    json_decref(out);
    return rc;
}

mv_rc launch_ensure_vm(struct arm_client *a, const char *name, int system, char *principal, size_t len)
{
    mv_rc rc = MV_OK;
    char path[1024];
    json_t *out = NULL;
    long status = 0;
    CHECK(arm_provider_path(a, "Microsoft.Compute/virtualMachines", name, path, sizeof path));
    json_t *body = json_pack("{s:s, s:{s:s}}", "location", "local", "identity", "type",
                             system ? "SystemAssigned" : "None");
    rc = arm_call(a, "PUT", path, body, &out, &status);
    json_decref(body);
    CHECK(rc);
    const char *pid = json_string_value(json_object_get(json_object_get(out, "identity"), "principalId"));
    CHECK(mv_copy(principal, len, pid ? pid : ""));
out:
    json_decref(out);
    return rc;
}

mv_rc launch_grant(struct arm_client *a, const char *principal, const char *role_guid, const char *vault)
{
    mv_rc rc = MV_OK;
    char scope[1024], path[1400], id[MV_UUID_LEN + 1];
    json_t *list = NULL, *out = NULL;
    CHECK(arm_provider_path(a, "Microsoft.KeyVault/vaults", vault, scope, sizeof scope));
    CHECK(mv_fmt(path, sizeof path, "%s/providers/Microsoft.Authorization/roleAssignments?$filter=principalId%%20eq%%20'%s'",
                 scope, principal));
    CHECK(arm_call(a, "GET", path, NULL, &list, NULL));
    size_t i;
    json_t *ra;
    json_array_foreach(json_object_get(list, "value"), i, ra)
    {
        json_t *p = json_object_get(ra, "properties");
        const char *rd = json_string_value(json_object_get(p, "roleDefinitionId"));
        const char *sc = json_string_value(json_object_get(p, "scope"));
        if (rd && sc && strstr(rd, role_guid) && mv_streq_ci(sc, scope))
            goto out; /* already granted */
    }
    CHECK(mv_uuid(id));
    CHECK(mv_fmt(path, sizeof path, "%s/providers/Microsoft.Authorization/roleAssignments/%s", scope, id));
    char rd[256];
    CHECK(mv_fmt(rd, sizeof rd, "/providers/Microsoft.Authorization/roleDefinitions/%s", role_guid));
    json_t *body = json_pack("{s:{s:s, s:s}}", "properties", "roleDefinitionId", rd, "principalId", principal);
    rc = arm_call(a, "PUT", path, body, &out, NULL);
    json_decref(body);
out:
    json_decref(list);
    json_decref(out);
    return rc;
}

mv_rc launch_join_token(struct arm_client *a, const char *vm, char *out, size_t len)
{
    mv_rc rc = MV_OK;
    char path[1100];
    json_t *jt = NULL;
    CHECK(arm_provider_path(a, "Microsoft.Compute/virtualMachines", vm, path, sizeof path));
    size_t n = strlen(path);
    CHECK(mv_fmt(path + n, sizeof path - n, "/generateJoinToken"));
    CHECK(arm_call(a, "POST", path, NULL, &jt, NULL));
    const char *t = json_string_value(json_object_get(jt, "joinToken"));
    ENSURE(t != NULL, MV_ERR_INTERNAL);
    CHECK(mv_copy(out, len, t));
out:
    json_decref(jt);
    return rc;
}

int launch_agent_enrolled(const struct cli *c, const char *vm)
{
    char p[PATH_MAX];
    return mv_fmt(p, sizeof p, "%s/%s/node.json", c->paths.agents, vm) == MV_OK && mv_file_exists(p);
}
