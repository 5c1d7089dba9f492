/* storecmd.c: `mivault store migrate --to URL`: the state dir's SQLite store copied into
 * PostgreSQL (store/migrate.h), then config.json pointed at the URL, so server, up and every
 * verb of that state dir use PostgreSQL from then on. The SQLite file is left in place. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"
#include "store/migrate.h"

int verb_store_migrate(struct cli *c)
{
    const char *to = cli_get(c, "to");
    struct store_migrate_count counts[STORE_MIGRATE_TABLES];
    struct mv_config cfg;
    memset(counts, 0, sizeof counts);
    if (!to || !store_is_url(to))
        return cli_error("store migrate: --to postgresql://... is required") + 1;
    if (strlen(to) >= MV_STORE_URL_MAX)
        return cli_error("store migrate: --to is too long") + 1;
    if (state_paths(c->state_dir, &c->paths) != MV_OK || state_config_load(&c->paths, &cfg) != MV_OK)
        return cli_error("store migrate: no mivault state in %s: %s", c->paths.dir, mv_last_detail());
    if (store_is_url(c->paths.db))
        return cli_error("store migrate: %s already uses PostgreSQL", c->paths.dir);
    if (!mv_file_exists(c->paths.db))
        return cli_error("store migrate: no SQLite store at %s", c->paths.db);
    if (store_migrate_sqlite_to_pg(c->paths.db, to, counts) != MV_OK)
        return cli_error("store migrate: %s", mv_last_detail());
    /* Only once everything is committed in PostgreSQL does the state dir switch over. */
    if (mv_copy(cfg.store, sizeof cfg.store, to) != MV_OK || state_config_save(&c->paths, &cfg) != MV_OK)
        return cli_error("store migrate: copied, but cannot update %s: %s (set \"store\" there)",
                         c->paths.config, mv_last_detail());
    json_t *rows = json_object();
    for (size_t i = 0; rows && i < STORE_MIGRATE_TABLES; i++)
        json_object_set_new(rows, counts[i].table, json_integer((json_int_t)counts[i].rows));
    cli_print(c, json_pack("{s:s, s:s, s:s, s:o}", "stateDir", c->paths.dir, "from", c->paths.db,
                           "to", "postgresql", "rows", rows ? rows : json_object()),
              (const char *const[]){"stateDir", "from", "to", NULL});
    return 0;
}
