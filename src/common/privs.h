/* privs.h: running as the state dir's user (docs/operations.md "Users and permissions").
 *
 * Started as root, the long-running processes hand their state dir to a system user and switch
 * to it once they listen and have read their keys, keeping no capability: a workload of another
 * user can read env.sh and the CA bundle, and none of the keys. */
#ifndef MV_COMMON_PRIVS_H
#define MV_COMMON_PRIVS_H

#include <sys/types.h>

#include "common/result.h"

#define MV_DEFAULT_USER "mivault"

struct mv_user {
    int set; /* 0: no switch (not started as root) */
    uid_t uid;
    gid_t gid;
    char name[64];
};

/* The user named name, from the user database. MV_ERR_NOT_FOUND if there is none. */
MV_MUST_CHECK mv_rc mv_user_lookup(const char *name, struct mv_user *out);
MV_MUST_CHECK mv_rc mv_user_by_uid(uid_t uid, struct mv_user *out);
/* Every file and directory under dir (dir too) not owned by u becomes u's; symbolic links are
 * neither followed nor changed. */
MV_MUST_CHECK mv_rc mv_chown_tree(const char *dir, const struct mv_user *u);
/* The state dir to u: mv_chown_tree, and modes that let other users open by name what is
 * meant for them (env.sh, ca.pem, ca-bundle.pem, agents/VM/env.sh) and list nothing: the dir,
 * agents/ and agents/VM/ 0711 (every key is 0600 in them). */
#define MV_STATE_DIR_MODE 0711
MV_MUST_CHECK mv_rc mv_state_handover(const char *dir, const struct mv_user *u);
/* Switches to u for good: supplementary groups dropped, gid, uid, no new privileges; checks
 * that root (and with it every capability) cannot come back. */
MV_MUST_CHECK mv_rc mv_drop_to(const struct mv_user *u);

#endif
