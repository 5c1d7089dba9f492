/* backup.h: `mivault backup` and `mivault restore` (docs/operations.md, "Backup and restore").
 *
 * A backup file holds the installation as it is at rest: the store (as a SQLite file, whatever
 * the backend: secrets, signing keys, CA key and admin key sealed with the data key, the data
 * key wrapped with the master key) and config.json. It never holds the master key: restore
 * needs it (--master-key FILE or MIVAULT_MASTER_KEY), and a backup taken before a master-key
 * rotation opens only with the master key of its day.
 *
 * File format (all integers big-endian):
 *   "MVBACKUP" (8 bytes) || version u32 = 1
 *   entries, each: name_len u8 (1..BACKUP_NAME_MAX) || name ([a-z0-9._-]) || len u64 || bytes
 *   end: name_len 0 || SHA-256 (32 bytes) of every byte before this one
 * and nothing after. Names are unique; at most BACKUP_MAX_ENTRIES. The entries: "manifest.json"
 * (what, when, from which backend), "config.json", "mivault.db". */
#ifndef MV_STATE_BACKUP_H
#define MV_STATE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "state/state.h"
#include "store/migrate.h"

#define BACKUP_MAGIC "MVBACKUP"
#define BACKUP_VERSION 1
#define BACKUP_NAME_MAX 64
#define BACKUP_MAX_ENTRIES 16
#define BACKUP_MAX_BYTES ((size_t)1 << 31) /* 2 GiB: the whole file is read into memory */

struct backup_entry {
    char name[BACKUP_NAME_MAX + 1];
    const unsigned char *data; /* into the parsed buffer */
    size_t len;
};

struct backup_file {
    struct backup_entry e[BACKUP_MAX_ENTRIES];
    size_t n;
};

/* Parses untrusted bytes. MV_ERR_BAD_REQUEST (with the reason) for anything but a whole,
 * well-formed file whose checksum matches; out's entries point into p. */
MV_MUST_CHECK mv_rc backup_parse(const unsigned char *p, size_t n, struct backup_file *out);
/* The entry called name, or NULL. */
const struct backup_entry *backup_find(const struct backup_file *f, const char *name);
/* Appends one entry / the end marker to out (for writers and tests). */
MV_MUST_CHECK mv_rc backup_put_header(mv_buf *out);
MV_MUST_CHECK mv_rc backup_put_entry(mv_buf *out, const char *name, const void *data, size_t len);
MV_MUST_CHECK mv_rc backup_put_end(mv_buf *out);

/* Writes the backup of the state p (config cfg) to out_file (0600, replaced atomically),
 * online: the store is copied as one snapshot (store_backup_to_sqlite) while servers serve.
 * counts: rows per table when the store is PostgreSQL. */
MV_MUST_CHECK mv_rc state_backup(const struct mv_paths *p, const char *out_file,
                                 struct store_migrate_count counts[STORE_MIGRATE_TABLES]);

/* Rebuilds a state dir at p->dir (which must not hold a state yet) from in_file: config.json
 * (its "store" removed) and the store in p->dir/mivault.db, then the rest as a server joining
 * the installation (state_init: master.key from master_key_file, CA and admin files from the
 * store, a new server certificate and server id); with store_url, the store is then copied into
 * that empty PostgreSQL database (store_migrate_sqlite_to_pg) and config.json points at it.
 * MV_ERR_FORBIDDEN if the master key does not open the backup's data key (nothing written to
 * store_url). On failure p->dir holds no config.json: it is not a state. */
MV_MUST_CHECK mv_rc state_restore(const struct mv_paths *p, const char *in_file,
                                  const char *master_key_file, const char *store_url);

#endif
