/* runas.c: which user `init`, `server`, `agent` and `up` hand the state dir to, when started as
 * root (docs/operations.md "Users and permissions").
 *
 * --user NAME, else the state dir's owner if that is not root (the user an earlier init chose),
 * else MV_DEFAULT_USER, created as a system user if missing. The state dir becomes that user's
 * (mv_state_handover): workloads of other users may open the files meant for them by name
 * (env.sh, ca.pem, ca-bundle.pem, agents/VM/env.sh: 0644) and nothing else (keys 0600, no
 * listing). Not root: the
 * process already is the user it will run as, and nothing changes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/privs.h"

/* useradd(8) of a system user with no home and no login shell. */
static mv_rc create_user(const char *name)
{
    mv_rc rc = MV_OK;
    char *const argv[] = {"useradd",   "--system", "--user-group",      "--no-create-home",
                          "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                          (char *)name, NULL};
    pid_t pid = fork();
    ENSURE_MSG(pid >= 0, MV_ERR_INTERNAL, "fork: %s", strerror(errno));
    if (pid == 0) {
        execvp("useradd", argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    ENSURE_MSG(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 9), MV_ERR_INTERNAL,
               "cannot create the system user %s (useradd); create it, or pass --user NAME", name);
out:
    return rc;
}

mv_rc cli_state_user(const struct cli *c, const char *dir, struct mv_user *u)
{
    mv_rc rc = MV_OK;
    struct stat st;
    memset(u, 0, sizeof *u);
    if (geteuid() != 0)
        goto out;
    const char *name = cli_get(c, "user");
    if (name) {
        ENSURE_MSG(mv_user_lookup(name, u) == MV_OK, MV_ERR_BAD_REQUEST, "--user %s: no such user",
                   name);
    } else if (stat(dir, &st) == 0 && st.st_uid != 0 && mv_user_by_uid(st.st_uid, u) == MV_OK) {
        /* the user an earlier init chose */
    } else if (mv_user_lookup(MV_DEFAULT_USER, u) != MV_OK) {
        CHECK(create_user(MV_DEFAULT_USER));
        CHECK(mv_user_lookup(MV_DEFAULT_USER, u));
    }
    ENSURE_MSG(u->uid != 0, MV_ERR_BAD_REQUEST, "--user: the state dir's user must not be root");
    CHECK(mv_state_handover(dir, u));
out:
    return rc;
}
