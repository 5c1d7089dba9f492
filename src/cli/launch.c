/* launch.c: child processes and first-run resources for `up` and `demo` (see launch.h). */
#include "cli/launch.h"

#include <arpa/inet.h>
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

mv_rc launch_init(struct cli *c, const struct mv_config *cfg, enum state_init_outcome *outcome)
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
