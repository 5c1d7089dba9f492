/* opscmd.c: the operator's key verbs (docs/operations.md), run on a server's host against its
 * state dir; they open the store directly (never the network) and leave running servers
 * serving:
 *   authority key list|rotate|retire  the token-signing keys (authority/authority.h)
 *   master-key rotate                 re-wraps the data key (state/state.h)
 *   backup, restore                   the installation to and from one file (state/backup.h) */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authority/authority.h"
#include "cli/cli.h"
#include "common/limits.h"
#include "common/util.h"
#include "state/backup.h"
#include "token/validate.h"

/* ISO 8601 UTC of a Unix time ("" for 0). */
static void iso(int64_t t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    out[0] = '\0';
    if (t > 0 && gmtime_r(&tt, &tm))
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The state's store, opened; NULL (error printed) if not. */
static struct store *open_store(struct cli *c, const char *verb)
{
    struct store *st = NULL;
    char db[PATH_MAX];
    if (cli_load_state(c) != MV_OK)
        return NULL;
    if (state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK || store_open(db, &st) != MV_OK) {
        cli_error("%s: cannot open the store: %s", verb, cli_detail());
        return NULL;
    }
    return st;
}

int verb_authority_key_list(struct cli *c)
{
    struct store *st = open_store(c, "authority key list");
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    if (!st)
        return 1;
    if (store_signing_keys(st, &keys, &n) != MV_OK) {
        store_close(st);
        return cli_error("authority key list: %s", cli_detail());
    }
    json_t *arr = json_array();
    int64_t now = mv_now(), life = c->cfg.token_lifetime;
    for (size_t i = 0; arr && i < n; i++) {
        char created[32], rotated[32], until[32];
        const char *status = "signing";
        iso(keys[i].created, created);
        iso(keys[i].retired, rotated);
        until[0] = '\0';
        if (keys[i].retired) {
            iso(keys[i].retired + life + MV_CLOCK_SKEW_SECS, until);
            status = token_key_published(keys[i].retired, now, life) ? "published" : "expired";
        }
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "kid", keys[i].kid,
                                             "status", status, "created", created, "rotatedOut",
                                             rotated, "tokensValidUntil", until));
    }
    st_signing_keys_free(keys, n);
    store_close(st);
    cli_print(c, arr, (const char *const[]){"kid", "status", "created", "rotatedOut",
                                            "tokensValidUntil", NULL});
    return 0;
}

/* The data key of the state (error printed on failure). */
static int data_key(struct cli *c, struct store *st, unsigned char dk[32], const char *verb)
{
    if (state_data_key(&c->paths, st, dk) != MV_OK)
        return cli_error("%s: cannot unwrap the data key with this state's master key: %s", verb,
                         cli_detail());
    return 0;
}

int verb_authority_key_rotate(struct cli *c)
{
    unsigned char dk[32];
    int rotated = 0, status = 1;
    struct store *st = open_store(c, "authority key rotate");
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    if (!st)
        return 1;
    if (data_key(c, st, dk, "authority key rotate") != 0)
        goto done;
    if (authority_rotate(st, dk, 0, &rotated) != MV_OK || store_signing_keys(st, &keys, &n) != MV_OK ||
        n == 0) {
        cli_error("authority key rotate: %s", cli_detail());
        goto done;
    }
    cli_print(c, json_pack("{s:s, s:s}", "kid", keys[0].kid, "status", "signing"),
              (const char *const[]){"kid", "status", NULL});
    status = 0;
done:
    st_signing_keys_free(keys, n);
    OPENSSL_cleanse(dk, sizeof dk);
    store_close(st);
    return status;
}

int verb_authority_key_retire(struct cli *c)
{
    const char *kid = cli_get(c, "kid");
    if (!kid || !*kid)
        return cli_error("authority key retire: --kid KID is required") + 1;
    struct store *st = open_store(c, "authority key retire");
    if (!st)
        return 1;
    mv_rc rc = authority_retire_key(st, kid, c->cfg.token_lifetime, cli_flag(c, "force"));
    store_close(st);
    if (rc != MV_OK)
        return cli_error("authority key retire: %s", cli_detail());
    cli_print(c, json_pack("{s:s, s:s}", "kid", kid, "status", "retired"),
              (const char *const[]){"kid", "status", NULL});
    return 0;
}

/* --new-key FILE: read it (32 bytes), or make it (0600) when it does not exist. */
static int new_key_file(const char *file, unsigned char mk[32])
{
    char *data = NULL;
    size_t len = 0;
    if (!mv_file_exists(file)) {
        if (mv_random(mk, 32) != MV_OK || mv_write_file(file, mk, 32, 0600) != MV_OK)
            return cli_error("master-key rotate: cannot write %s: %s", file, cli_detail());
        return 0;
    }
    if (mv_read_file(file, 64, &data, &len) != MV_OK || len != 32) {
        if (data) {
            OPENSSL_cleanse(data, len);
            free(data);
        }
        return cli_error("master-key rotate: %s is not a master key (32 bytes)", file);
    }
    memcpy(mk, data, 32);
    OPENSSL_cleanse(data, len);
    free(data);
    return 0;
}

int verb_master_key_rotate(struct cli *c)
{
    const char *file = cli_get(c, "new-key");
    int stage = cli_flag(c, "stage"), commit = cli_flag(c, "commit"), status = 1;
    unsigned char mk[32];
    const char *env = getenv("MIVAULT_MASTER_KEY");
    if (stage && commit)
        return cli_error("master-key rotate: --stage and --commit are two steps: one at a time") + 1;
    if (commit && file)
        return cli_error("master-key rotate: --commit uses the state's master key (install the new "
                         "one first); --new-key goes with --stage") + 1;
    if (stage && !file)
        return cli_error("master-key rotate: --stage needs --new-key FILE (made if missing)") + 1;
    if (cli_load_state(c) != MV_OK)
        return 1;
    if (!stage && !commit && env && *env)
        return cli_error("master-key rotate: the master key comes from MIVAULT_MASTER_KEY: use "
                         "--stage --new-key FILE, put the new key in the environment, then --commit");
    if (commit) {
        if (state_master_key_commit(&c->paths) != MV_OK)
            return cli_error("master-key rotate --commit: %s", cli_detail());
        cli_print(c, json_pack("{s:s}", "masterKey", "committed"), (const char *const[]){"masterKey", NULL});
        return 0;
    }
    if (file ? new_key_file(file, mk) != 0 : mv_random(mk, 32) != MV_OK)
        goto done;
    if (state_master_key_stage(&c->paths, mk) != MV_OK) {
        cli_error("master-key rotate: %s", cli_detail());
        goto done;
    }
    if (stage) {
        cli_print(c, json_pack("{s:s, s:s}", "masterKey", "staged", "newKey", file),
                  (const char *const[]){"masterKey", "newKey", NULL});
        status = 0;
        goto done;
    }
    /* One step on this state dir: staged (both keys open), then master.key replaced, then the
     * old wrapping dropped. A crash in between leaves a store this state's key opens; running
     * `master-key rotate --commit` finishes. */
    if (state_master_key_install(&c->paths, mk) != MV_OK) {
        cli_error("master-key rotate: staged, but cannot write %s: %s", c->paths.master_key,
                  cli_detail());
        goto done;
    }
    if (state_master_key_commit(&c->paths) != MV_OK) {
        cli_error("master-key rotate: %s holds the new key; finishing failed (%s): run "
                  "`mivault master-key rotate --commit`", c->paths.master_key, cli_detail());
        goto done;
    }
    if (store_is_url(c->paths.db))
        fprintf(stderr, "mivault: master-key rotate: other servers of this PostgreSQL store keep "
                        "serving, but need %s copied into their state dirs before they restart "
                        "(docs/operations.md)\n", c->paths.master_key);
    cli_print(c, json_pack("{s:s, s:s}", "masterKey", "rotated", "file", c->paths.master_key),
              (const char *const[]){"masterKey", "file", NULL});
    status = 0;
done:
    OPENSSL_cleanse(mk, sizeof mk);
    return status;
}

int verb_backup(struct cli *c)
{
    const char *out = cli_get(c, "out");
    struct store_migrate_count counts[STORE_MIGRATE_TABLES];
    if (!out || !*out)
        return cli_error("backup: --out FILE is required") + 1;
    if (cli_load_state(c) != MV_OK)
        return 1;
    if (state_backup(&c->paths, out, counts) != MV_OK)
        return cli_error("backup: %s", cli_detail());
    json_t *rows = json_object();
    for (size_t i = 0; rows && i < STORE_MIGRATE_TABLES; i++)
        if (counts[i].rows)
            json_object_set_new(rows, counts[i].table, json_integer((json_int_t)counts[i].rows));
    cli_print(c, json_pack("{s:s, s:s, s:s, s:o}", "stateDir", c->paths.dir, "from",
                           store_is_url(c->paths.db) ? "postgresql" : "sqlite", "file", out,
                           "rows", rows ? rows : json_object()),
              (const char *const[]){"stateDir", "from", "file", NULL});
    return 0;
}

int verb_restore(struct cli *c)
{
    const char *in = cli_get(c, "in"), *mk = cli_get(c, "master-key"), *to = cli_get(c, "store");
    if (!in || !*in)
        return cli_error("restore: --in FILE is required") + 1;
    if (!c->state_dir || !*c->state_dir)
        return cli_error("restore: --state DIR (a new directory) is required") + 1;
    if (to && (!store_is_url(to) || strlen(to) >= MV_STORE_URL_MAX))
        return cli_error("restore: --store must be a postgresql:// URL (an empty database)") + 1;
    if (state_paths(c->state_dir, &c->paths) != MV_OK)
        return cli_error("restore: %s", cli_detail());
    if (state_restore(&c->paths, in, mk, to) != MV_OK)
        return cli_error("restore: %s", cli_detail());
    struct mv_tenant t;
    struct store *st = NULL;
    char db[PATH_MAX];
    if (state_paths(c->state_dir, &c->paths) != MV_OK || state_config_load(&c->paths, &c->cfg) != MV_OK ||
        state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK || store_open(db, &st) != MV_OK ||
        state_tenant(st, &t) != MV_OK) {
        store_close(st);
        return cli_error("restore: restored, but cannot read it back: %s", cli_detail());
    }
    store_close(st);
    cli_print(c, json_pack("{s:s, s:s, s:s}", "stateDir", c->paths.dir, "tenantId", t.tenant_id,
                           "store", to ? "postgresql" : "sqlite"),
              (const char *const[]){"stateDir", "tenantId", "store", NULL});
    return 0;
}
