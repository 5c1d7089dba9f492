/* migrate.h: copying an embedded SQLite store into PostgreSQL (`mivault store migrate`). */
#ifndef MV_STORE_MIGRATE_H
#define MV_STORE_MIGRATE_H

#include "store/store.h"

#define STORE_MIGRATE_TABLES 13

struct store_migrate_count {
    const char *table;
    int64_t rows;
};

/* Copies every row of every table of the SQLite store at db_path (meta including the tenant
 * and the wrapped data key, principals, signing keys, VMs and their user-assigned links,
 * identities, nodes, join tokens, vaults, role assignments, every secret version including
 * soft-deleted ones; sealed values as they are) into the PostgreSQL database at url, in one
 * transaction. CONFLICT if the target already holds a tenant. counts[i] gets each table's
 * row count. The source is only read. */
MV_MUST_CHECK mv_rc store_migrate_sqlite_to_pg(const char *db_path, const char *url,
                                               struct store_migrate_count counts[STORE_MIGRATE_TABLES]);

#endif
