/* privs.c: the state dir's user (see privs.h). */
#include "common/privs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/secmem.h"

#define CHOWN_MAX_DEPTH 8 /* STATE/agents/VM/file is 3 deep; anything deeper is not ours */

static mv_rc from_passwd(const struct passwd *pw, struct mv_user *out)
{
    mv_rc rc = MV_OK;
    ENSURE_MSG(pw != NULL, MV_ERR_NOT_FOUND, "no such user");
    CHECK(mv_copy(out->name, sizeof out->name, pw->pw_name));
    out->uid = pw->pw_uid;
    out->gid = pw->pw_gid;
    out->set = 1;
out:
    return rc;
}

mv_rc mv_user_lookup(const char *name, struct mv_user *out)
{
    return from_passwd(getpwnam(name), out);
}

mv_rc mv_user_by_uid(uid_t uid, struct mv_user *out) { return from_passwd(getpwuid(uid), out); }

/* dfd is an open directory; its entries, recursively. Closes dfd. */
static mv_rc chown_dir(int dfd, const struct mv_user *u, int depth)
{
    mv_rc rc = MV_OK;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        ENSURE_MSG(0, MV_ERR_INTERNAL, "opendir: %s", strerror(errno));
    }
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISLNK(st.st_mode))
            continue;
        if (st.st_uid != u->uid || st.st_gid != u->gid)
            ENSURE_MSG(fchownat(dirfd(d), e->d_name, u->uid, u->gid, AT_SYMLINK_NOFOLLOW) == 0,
                       MV_ERR_INTERNAL, "chown %s: %s", e->d_name, strerror(errno));
        if (S_ISDIR(st.st_mode) && depth < CHOWN_MAX_DEPTH) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                CHECK(chown_dir(sub, u, depth + 1));
        }
    }
out:
    closedir(d);
    return rc;
}

mv_rc mv_chown_tree(const char *dir, const struct mv_user *u)
{
    mv_rc rc = MV_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "open %s: %s", dir, strerror(errno));
    if (fchown(fd, u->uid, u->gid) != 0) {
        close(fd);
        ENSURE_MSG(0, MV_ERR_INTERNAL, "chown %s: %s", dir, strerror(errno));
    }
    CHECK(chown_dir(fd, u, 1));
out:
    return rc;
}

/* dir/agents and each dir/agents/VM: 0711, so that a workload can open agents/VM/env.sh (0644)
 * by name; node keys, node.json, agent.json and identity_header stay 0600. */
static mv_rc open_agent_dirs(const char *dir)
{
    mv_rc rc = MV_OK;
    char path[4096];
    CHECK(mv_fmt(path, sizeof path, "%s/agents", dir));
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        goto out; /* no agents yet */
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        goto out;
    }
    if (fchmod(dirfd(d), MV_STATE_DIR_MODE) != 0)
        LOG_WARN("chmod %s: %s", path, strerror(errno));
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (fchmodat(dirfd(d), e->d_name, MV_STATE_DIR_MODE, 0) != 0)
            LOG_WARN("chmod agents/%s: %s", e->d_name, strerror(errno));
    }
    closedir(d);
out:
    return rc;
}

mv_rc mv_state_handover(const char *dir, const struct mv_user *u)
{
    mv_rc rc = MV_OK;
    CHECK(mv_chown_tree(dir, u));
    ENSURE_MSG(chmod(dir, MV_STATE_DIR_MODE) == 0, MV_ERR_INTERNAL, "chmod %s: %s", dir,
               strerror(errno));
    CHECK(open_agent_dirs(dir));
out:
    return rc;
}

mv_rc mv_drop_to(const struct mv_user *u)
{
    mv_rc rc = MV_OK;
    ENSURE_MSG(u->uid != 0, MV_ERR_BAD_REQUEST, "will not run as root's uid (user %s)", u->name);
    /* setgroups first, setuid last: once the uid is gone the groups could not change. */
    ENSURE_MSG(setgroups(0, NULL) == 0 && setresgid(u->gid, u->gid, u->gid) == 0 &&
                   setresuid(u->uid, u->uid, u->uid) == 0,
               MV_ERR_INTERNAL, "switching to user %s failed: %s", u->name, strerror(errno));
    /* A uid change from 0 clears the permitted and effective capabilities (capabilities(7));
     * no_new_privs keeps exec from bringing any back. */
    ENSURE_MSG(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, MV_ERR_INTERNAL,
               "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    ENSURE_MSG(setuid(0) != 0 && geteuid() == u->uid && getegid() == u->gid, MV_ERR_INTERNAL,
               "root could be regained after switching to %s", u->name);
    CHECK(mv_protect_process()); /* the uid change reset the dumpable flag */
    LOG_INFO("running as user %s (uid %d)", u->name, (int)u->uid);
out:
    return rc;
}
