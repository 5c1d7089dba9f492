/* schema.c: the SQLite schema and its migrations.
 *
 * The schema version is PRAGMA user_version. migrations[i] takes the file from version i to
 * i + 1; all pending ones run in one BEGIN IMMEDIATE transaction, after re-reading
 * user_version under the write lock, so several processes opening the same new file at once
 * migrate it exactly once (the others wait on busy_timeout, then find it current).
 *
 * Conventions of the schema:
 * - Names Azure compares case-insensitively (vault, secret, VM, identity, resource group,
 *   role-assignment scope) and GUIDs are COLLATE NOCASE, so =, <, ORDER BY and the indexes all
 *   agree on one order.
 * - Children reference their parent with ON DELETE CASCADE (VM -> links, nodes, join tokens;
 *   identity -> links; vault -> secrets). Writers therefore use UPSERT, never INSERT OR REPLACE,
 *   which would delete (and cascade) the old row.
 * - meta('generation') is bumped by triggers on every table RBAC and identity caches depend
 *   on, in the same transaction as the change.
 * - Secrets: one row per version. A secret's versions share deleted/purge_at. Partial indexes
 *   keep live and soft-deleted rows apart so listing one never walks the other. */
#include <stdio.h>

#include "store/sqlite_internal.h"

#define GEN_TRIGGERS(t)                                                                            \
    "CREATE TRIGGER " t "_gen_ins AFTER INSERT ON " t " BEGIN "                                    \
    "UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"                           \
    "CREATE TRIGGER " t "_gen_upd AFTER UPDATE ON " t " BEGIN "                                    \
    "UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"                           \
    "CREATE TRIGGER " t "_gen_del AFTER DELETE ON " t " BEGIN "                                    \
    "UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"

/* Migration v1: the whole schema. Split into parts: C limits one string literal's length. */
static const char *const v1[] = {
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value);"
    "INSERT INTO meta (key, value) VALUES ('generation', 1);",

    "CREATE TABLE principals ("
    " id TEXT PRIMARY KEY COLLATE NOCASE,"
    " client_id TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    " name TEXT NOT NULL,"
    " resource_id TEXT NOT NULL COLLATE NOCASE,"
    " public_key_pem TEXT);",

    "CREATE TABLE signing_keys ("
    " kid TEXT PRIMARY KEY,"
    " sealed_private_b64 TEXT NOT NULL,"
    " public_pem TEXT NOT NULL,"
    " x5c_b64 TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " retired INTEGER NOT NULL DEFAULT 0);",

    "CREATE TABLE vms ("
    " name TEXT PRIMARY KEY COLLATE NOCASE,"
    " rg TEXT NOT NULL COLLATE NOCASE,"
    " vm_id TEXT NOT NULL COLLATE NOCASE,"
    " system_assigned INTEGER NOT NULL,"
    " system_principal_id TEXT NOT NULL COLLATE NOCASE,"
    " resource_id TEXT NOT NULL COLLATE NOCASE,"
    " created INTEGER NOT NULL);",

    "CREATE TABLE identities ("
    " name TEXT PRIMARY KEY COLLATE NOCASE,"
    " rg TEXT NOT NULL COLLATE NOCASE,"
    " principal_id TEXT NOT NULL COLLATE NOCASE,"
    " client_id TEXT NOT NULL COLLATE NOCASE,"
    " resource_id TEXT NOT NULL COLLATE NOCASE,"
    " created INTEGER NOT NULL);",

    /* rowid keeps the order the list was given in */
    "CREATE TABLE vm_uai ("
    " vm TEXT NOT NULL COLLATE NOCASE REFERENCES vms (name) ON DELETE CASCADE,"
    " identity TEXT NOT NULL COLLATE NOCASE REFERENCES identities (name) ON DELETE CASCADE,"
    " PRIMARY KEY (vm, identity));"
    "CREATE INDEX vm_uai_identity ON vm_uai (identity);",

    "CREATE TABLE nodes ("
    " client_id TEXT PRIMARY KEY COLLATE NOCASE,"
    " vm TEXT NOT NULL COLLATE NOCASE REFERENCES vms (name) ON DELETE CASCADE,"
    " public_key_pem TEXT NOT NULL,"
    " created INTEGER NOT NULL);"
    "CREATE INDEX nodes_vm ON nodes (vm);",

    "CREATE TABLE join_tokens ("
    " token_hash TEXT PRIMARY KEY,"
    " vm TEXT NOT NULL COLLATE NOCASE REFERENCES vms (name) ON DELETE CASCADE,"
    " expires INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX join_tokens_vm ON join_tokens (vm);",

    "CREATE TABLE vaults ("
    " name TEXT PRIMARY KEY COLLATE NOCASE,"
    " rg TEXT NOT NULL COLLATE NOCASE,"
    " vault_id TEXT NOT NULL COLLATE NOCASE,"
    " soft_delete_days INTEGER NOT NULL,"
    " purge_protection INTEGER NOT NULL,"
    " created INTEGER NOT NULL);",

    /* Azure refuses a second assignment of one role to one principal at one scope
     * (RoleAssignmentExists, 409): the UNIQUE makes that a CONFLICT here. Its index also
     * serves lookups by principal_id. */
    "CREATE TABLE role_assignments ("
    " id TEXT PRIMARY KEY COLLATE NOCASE,"
    " principal_id TEXT NOT NULL COLLATE NOCASE,"
    " role_id TEXT NOT NULL COLLATE NOCASE,"
    " scope TEXT NOT NULL COLLATE NOCASE,"
    " created INTEGER NOT NULL,"
    " UNIQUE (principal_id, role_id, scope));"
    "CREATE INDEX role_assignments_scope ON role_assignments (scope);",

    "CREATE TABLE secrets ("
    " vault TEXT NOT NULL COLLATE NOCASE REFERENCES vaults (name) ON DELETE CASCADE,"
    " name TEXT NOT NULL COLLATE NOCASE,"
    " version TEXT NOT NULL COLLATE NOCASE,"
    " sealed BLOB NOT NULL,"
    " content_type TEXT,"
    " tags_json TEXT,"
    " enabled INTEGER NOT NULL,"
    " nbf INTEGER NOT NULL DEFAULT 0,"
    " exp INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " purge_at INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (vault, name, version));"
    /* (vault, name, created, rowid): a secret's latest version ends its run in the index */
    "CREATE INDEX secrets_live ON secrets (vault, name, created) WHERE deleted = 0;"
    "CREATE INDEX secrets_deleted ON secrets (vault, name, created) WHERE deleted <> 0;"
    "CREATE INDEX secrets_purge ON secrets (purge_at) WHERE deleted <> 0;",

    GEN_TRIGGERS("principals"),
    GEN_TRIGGERS("vms"),
    GEN_TRIGGERS("vm_uai"),
    GEN_TRIGGERS("identities"),
    GEN_TRIGGERS("role_assignments"),
    GEN_TRIGGERS("vaults"),
    GEN_TRIGGERS("nodes"),
    NULL,
};

/* Migration v2: audit checkpoints (docs/audit.md). seq is the chain's own gapless order (not a
 * rowid: a removed row must leave a visible gap). */
static const char *const v2[] = {
    "CREATE TABLE audit_checkpoints ("
    " seq INTEGER PRIMARY KEY,"
    " writer TEXT NOT NULL,"
    " records INTEGER NOT NULL,"
    " head_hash TEXT NOT NULL,"
    " at INTEGER NOT NULL,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    "CREATE INDEX audit_checkpoints_writer ON audit_checkpoints (writer, seq);",
    NULL,
};

/* v3: the Key Vault throttle's counters (st_quota.c). The vault keeps its counters in the
 * process on SQLite (store_shared is 0); the table completes store_quota_lease. */
static const char *const v3[] = {
    "CREATE TABLE quota_leases ("
    " vault TEXT NOT NULL COLLATE NOCASE,"
    " window_start INTEGER NOT NULL,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 2),"
    " used INTEGER NOT NULL,"
    " last_grant INTEGER NOT NULL,"
    " PRIMARY KEY (vault, window_start, kind));"
    "CREATE INDEX quota_leases_window ON quota_leases (window_start);",
    NULL,
};

/* v4: client assertion ids accepted by the token endpoint (st_assertions.c), and join tokens by
 * expiry (purged at each enrollment, st_nodes.c). */
static const char *const v4[] = {
    "CREATE TABLE assertion_jti ("
    " client_id TEXT NOT NULL COLLATE NOCASE,"
    " jti TEXT NOT NULL,"
    " keep_until INTEGER NOT NULL,"
    " PRIMARY KEY (client_id, jti)) WITHOUT ROWID;"
    "CREATE INDEX assertion_jti_keep ON assertion_jti (keep_until);"
    "CREATE INDEX join_tokens_expires ON join_tokens (expires);",
    NULL,
};

/* v5: Key Vault keys (st_vkeys.c), one row per version like secrets: sealed holds the private
 * key, jwk_json the public JWK with kty and key_ops; managed marks a certificate's key. And
 * their rotation policies: claimed is the version the last scheduled rotation started from (the
 * conditional update that lets one server of many rotate a key once). */
static const char *const v5[] = {
    "CREATE TABLE vault_keys ("
    " vault TEXT NOT NULL COLLATE NOCASE REFERENCES vaults (name) ON DELETE CASCADE,"
    " name TEXT NOT NULL COLLATE NOCASE,"
    " version TEXT NOT NULL COLLATE NOCASE,"
    " sealed BLOB NOT NULL,"
    " jwk_json TEXT NOT NULL,"
    " tags_json TEXT,"
    " enabled INTEGER NOT NULL,"
    " nbf INTEGER NOT NULL DEFAULT 0,"
    " exp INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " purge_at INTEGER NOT NULL DEFAULT 0,"
    " managed INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (vault, name, version));"
    "CREATE INDEX vault_keys_live ON vault_keys (vault, name, created) WHERE deleted = 0;"
    "CREATE INDEX vault_keys_deleted ON vault_keys (vault, name, created) WHERE deleted <> 0;"
    "CREATE INDEX vault_keys_purge ON vault_keys (purge_at) WHERE deleted <> 0;",
    "CREATE TABLE key_policies ("
    " vault TEXT NOT NULL COLLATE NOCASE REFERENCES vaults (name) ON DELETE CASCADE,"
    " name TEXT NOT NULL COLLATE NOCASE,"
    " policy_json TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " claimed TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY (vault, name));",
    NULL,
};

/* v6: Key Vault certificates (st_certs.c): versions, policies, pending operations, issuers
 * and contacts, one table of objects; see store.h "certificates". */
static const char *const v6[] = {
    "CREATE TABLE cert_objects ("
    " vault TEXT NOT NULL COLLATE NOCASE REFERENCES vaults (name) ON DELETE CASCADE,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 5),"
    " name TEXT NOT NULL COLLATE NOCASE,"
    " version TEXT NOT NULL COLLATE NOCASE,"
    " doc TEXT NOT NULL,"
    " sealed BLOB NOT NULL,"
    " created INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " purge_at INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (vault, kind, name, version));"
    "CREATE INDEX cert_objects_latest ON cert_objects (vault, kind, name, created);",
    NULL,
};

/* v7: signing keys move the generation too, so a key rotated or retired by another process
 * (`mivault authority key`) reaches every loop's signer, JWKS and validators (docs/operations.md). */
static const char *const v7[] = {
    GEN_TRIGGERS("signing_keys"),
    NULL,
};

/* v8: each audit writer's chain head, with its HMAC under the audit key (st_audit.c,
 * docs/audit.md): the anchor that shows a log's tail was cut after its last checkpoint. */
static const char *const v8[] = {
    "CREATE TABLE audit_heads ("
    " writer TEXT PRIMARY KEY,"
    " records INTEGER NOT NULL,"
    " head_hash TEXT NOT NULL,"
    " mac TEXT NOT NULL,"
    " at INTEGER NOT NULL);",
    NULL,
};

/* v9: service principals (principal kind 4: the kind CHECK is widened by rebuilding the table,
 * SQLite cannot alter a CHECK), their credentials (st_apps.c) and the federated identity
 * credentials of user-assigned identities. Self-contained: one step. */
static const char *const v9[] = {
    "CREATE TABLE principals_v8 ("
    " id TEXT PRIMARY KEY COLLATE NOCASE,"
    " client_id TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 4),"
    " name TEXT NOT NULL,"
    " resource_id TEXT NOT NULL COLLATE NOCASE,"
    " public_key_pem TEXT);"
    "INSERT INTO principals_v8 (id, client_id, kind, name, resource_id, public_key_pem)"
    " SELECT id, client_id, kind, name, resource_id, public_key_pem FROM principals;"
    "DROP TABLE principals;"
    "ALTER TABLE principals_v8 RENAME TO principals;",
    GEN_TRIGGERS("principals"),
    "CREATE TABLE app_credentials ("
    " key_id TEXT PRIMARY KEY COLLATE NOCASE,"
    " client_id TEXT NOT NULL COLLATE NOCASE,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 2),"
    " hint TEXT NOT NULL,"
    " secret_sha256 TEXT NOT NULL,"
    " thumb_sha1 TEXT NOT NULL,"
    " thumb_sha256 TEXT NOT NULL,"
    " cert_pem TEXT,"
    " created INTEGER NOT NULL,"
    " expires INTEGER NOT NULL);"
    "CREATE INDEX app_credentials_client ON app_credentials (client_id);",
    GEN_TRIGGERS("app_credentials"),
    "CREATE TABLE federated_credentials ("
    " identity TEXT NOT NULL COLLATE NOCASE REFERENCES identities (name) ON DELETE CASCADE,"
    " name TEXT NOT NULL COLLATE NOCASE,"
    " issuer TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " audience TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " PRIMARY KEY (identity, name),"
    " UNIQUE (identity, issuer, subject));",
    GEN_TRIGGERS("federated_credentials"),
    NULL,
};

/* v10: per-process identity bindings (st_vms.c). Self-contained: one step. */
static const char *const v10[] = {
    "CREATE TABLE vm_bindings ("
    " vm TEXT NOT NULL COLLATE NOCASE REFERENCES vms (name) ON DELETE CASCADE,"
    " identity TEXT NOT NULL COLLATE NOCASE REFERENCES identities (name) ON DELETE CASCADE,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 2),"
    " value TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " PRIMARY KEY (vm, identity, kind, value));"
    "CREATE INDEX vm_bindings_identity ON vm_bindings (identity);",
    GEN_TRIGGERS("vm_bindings"),
    NULL,
};

static const char *const *const migrations[] = {v1, v2, v3, v4, v5, v6, v7, v8, v9, v10};
#define LATEST ((int64_t)(sizeof migrations / sizeof migrations[0]))

static mv_rc user_version(struct store *st, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        *out = sqlite3_column_int64(s, 0);
        src = SQLITE_OK;
    }
    mv_rc rc = src == SQLITE_OK ? MV_OK : st_error(st, src, "read user_version");
    sqlite3_finalize(s);
    return rc;
}

static mv_rc exec(struct store *st, const char *sql, const char *what)
{
    int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? MV_OK : st_error(st, src, what);
}

mv_rc st_migrate(struct store *st)
{
    mv_rc rc = MV_OK;
    int began = 0;
    int64_t ver = 0;
    CHECK(user_version(st, &ver));
    if (ver == LATEST)
        return MV_OK;
    CHECK(exec(st, "BEGIN IMMEDIATE", "begin migration"));
    began = 1;
    CHECK(user_version(st, &ver)); /* another process may have migrated while we waited */
    ENSURE_MSG(ver >= 0 && ver <= LATEST, MV_ERR_INTERNAL,
               "store schema version %lld is newer than this build (%lld)", (long long)ver,
               (long long)LATEST);
    for (int64_t v = ver; v < LATEST; v++)
        for (const char *const *part = migrations[v]; *part; part++)
            CHECK(exec(st, *part, "migration"));
    if (ver < LATEST) {
        /* PRAGMA takes no parameters; LATEST is a compile-time constant, not input. */
        char sql[64];
        CHECK(mv_fmt(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)LATEST));
        CHECK(exec(st, sql, "set user_version"));
    }
    CHECK(exec(st, "COMMIT", "commit migration"));
    began = 0;
out:
    if (began)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
