/* migrate.h: copying an embedded SQLite store into PostgreSQL (`mivault store migrate`). */
#ifndef MV_STORE_MIGRATE_H
#define MV_STORE_MIGRATE_H

#include "store/store.h"

#define STORE_MIGRATE_TABLES 20

struct store_migrate_count {
    const char *table;
    int64_t rows;
};

/* Copies every row of every table of the SQLite store at db_path (meta including the tenant
 * and the wrapped data key, principals, signing keys, VMs and their user-assigned links,
 * identities, nodes, join tokens, vaults, role assignments, every secret, key and certificate
 * object version including soft-deleted ones, key rotation policies, sealed values as they are;
 * the audit checkpoint chain and heads; the client assertion ids still remembered; service
 * principals' credentials and federated identity credentials) into the PostgreSQL database at
 * url, in one
 * transaction. CONFLICT if the target already holds a tenant. counts[i] gets each table's
 * row count. The source is only read. */
MV_MUST_CHECK mv_rc store_migrate_sqlite_to_pg(const char *db_path, const char *url,
                                               struct store_migrate_count counts[STORE_MIGRATE_TABLES]);

/* Copies the whole store at `from` (a SQLite file, or a PostgreSQL URL) into a new SQLite file
 * at dst (removed first if it exists), as one consistent snapshot while servers keep writing:
 * SQLite through its online backup API (every table, one read transaction); PostgreSQL by the
 * tables store_migrate_sqlite_to_pg copies, read in one REPEATABLE READ READ ONLY transaction
 * into a freshly migrated SQLite store (audit checkpoints, quota leases and assertion ids,
 * which only matter to the servers that wrote them, are left out). Sealed values are copied as
 * they are. counts: rows per table (PostgreSQL; zero for SQLite, which copies pages). */
MV_MUST_CHECK mv_rc store_backup_to_sqlite(const char *from, const char *dst,
                                           struct store_migrate_count counts[STORE_MIGRATE_TABLES]);

#endif
