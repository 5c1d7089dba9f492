/* pg_schema.c: the PostgreSQL schema and its migrations.
 *
 * The version is meta('schema_version'). All pending migrations run in one transaction that
 * first takes pg_advisory_xact_lock(PG_ADVISORY_MIGRATE): several servers opening one new
 * database at once serialise there, and the later ones find the schema current.
 *
 * Conventions (the same semantics as schema.c, in PostgreSQL terms):
 * - Every text column is COLLATE "C": comparisons and ORDER BY are bytewise, and lower() folds
 *   ASCII only, exactly like SQLite's NOCASE, whatever the database's default collation is.
 * - Names Azure compares case-insensitively are keyed by a lowered copy: vms, identities and
 *   vaults have k = lower(name) as primary key (children reference it, ON DELETE CASCADE);
 *   GUID-keyed tables (principals, nodes, role assignments) have unique indexes on lower().
 * - seq (bigserial) stands in for SQLite's rowid where insertion order breaks ties.
 * - change_log receives one row per changed row of every table the caches depend on
 *   (trigger mv_changed), which also NOTIFYs mivault_change; pg_feed.c polls the log and
 *   LISTENs as an accelerator. */
#include <string.h>

#include "common/log.h"
#include "store/pg_internal.h"

#define FEED_TRIGGER(t, keycol)                                                                    \
    "CREATE TRIGGER " t "_changed AFTER INSERT OR UPDATE OR DELETE ON " t                          \
    " FOR EACH ROW EXECUTE FUNCTION mv_changed('" keycol "')"

static const char *const v1[] = {
    "CREATE TABLE change_log ("
    " seq bigserial PRIMARY KEY,"
    " kind text COLLATE \"C\" NOT NULL,"
    " key text COLLATE \"C\","
    " at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX change_log_at ON change_log (at)",

    "CREATE FUNCTION mv_changed() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " INSERT INTO change_log (kind, key) VALUES (TG_TABLE_NAME,"
    "  (CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END) ->> TG_ARGV[0]);"
    /* the accelerator of pg_feed.c; one notification per transaction and table (deduplicated) */
    " PERFORM pg_notify('mivault_change', TG_TABLE_NAME);"
    " RETURN NULL; END $f$",

    "CREATE TABLE principals ("
    " id text COLLATE \"C\" NOT NULL,"
    " client_id text COLLATE \"C\" NOT NULL,"
    " kind integer NOT NULL CHECK (kind BETWEEN 1 AND 3),"
    " name text COLLATE \"C\" NOT NULL,"
    " resource_id text COLLATE \"C\" NOT NULL,"
    " public_key_pem text COLLATE \"C\")",
    "CREATE UNIQUE INDEX principals_id ON principals (lower(id))",
    "CREATE UNIQUE INDEX principals_client ON principals (lower(client_id))",

    "CREATE TABLE signing_keys ("
    " kid text COLLATE \"C\" PRIMARY KEY,"
    " sealed_private_b64 text COLLATE \"C\" NOT NULL,"
    " public_pem text COLLATE \"C\" NOT NULL,"
    " x5c_b64 text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL,"
    " retired bigint NOT NULL DEFAULT 0,"
    " seq bigserial)",

    "CREATE TABLE vms ("
    " k text COLLATE \"C\" PRIMARY KEY,"
    " name text COLLATE \"C\" NOT NULL,"
    " rg text COLLATE \"C\" NOT NULL,"
    " vm_id text COLLATE \"C\" NOT NULL,"
    " system_assigned integer NOT NULL,"
    " system_principal_id text COLLATE \"C\" NOT NULL,"
    " resource_id text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL)",

    "CREATE TABLE identities ("
    " k text COLLATE \"C\" PRIMARY KEY,"
    " name text COLLATE \"C\" NOT NULL,"
    " rg text COLLATE \"C\" NOT NULL,"
    " principal_id text COLLATE \"C\" NOT NULL,"
    " client_id text COLLATE \"C\" NOT NULL,"
    " resource_id text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL)",

    /* vm and identity hold the lowered keys; seq keeps the order the list was given in */
    "CREATE TABLE vm_uai ("
    " vm text COLLATE \"C\" NOT NULL REFERENCES vms (k) ON DELETE CASCADE,"
    " identity text COLLATE \"C\" NOT NULL REFERENCES identities (k) ON DELETE CASCADE,"
    " seq bigserial,"
    " PRIMARY KEY (vm, identity))",
    "CREATE INDEX vm_uai_identity ON vm_uai (identity)",

    "CREATE TABLE nodes ("
    " client_id text COLLATE \"C\" NOT NULL,"
    " vm text COLLATE \"C\" NOT NULL,"
    " vm_key text COLLATE \"C\" NOT NULL REFERENCES vms (k) ON DELETE CASCADE,"
    " public_key_pem text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL)",
    "CREATE UNIQUE INDEX nodes_client ON nodes (lower(client_id))",
    "CREATE INDEX nodes_vm ON nodes (vm_key)",

    "CREATE TABLE join_tokens ("
    " token_hash text COLLATE \"C\" PRIMARY KEY,"
    " vm text COLLATE \"C\" NOT NULL,"
    " vm_key text COLLATE \"C\" NOT NULL REFERENCES vms (k) ON DELETE CASCADE,"
    " expires bigint NOT NULL,"
    " used bigint NOT NULL DEFAULT 0)",
    "CREATE INDEX join_tokens_vm ON join_tokens (vm_key)",

    "CREATE TABLE vaults ("
    " k text COLLATE \"C\" PRIMARY KEY,"
    " name text COLLATE \"C\" NOT NULL,"
    " rg text COLLATE \"C\" NOT NULL,"
    " vault_id text COLLATE \"C\" NOT NULL,"
    " soft_delete_days integer NOT NULL,"
    " purge_protection integer NOT NULL,"
    " created bigint NOT NULL)",

    "CREATE TABLE role_assignments ("
    " id text COLLATE \"C\" NOT NULL,"
    " principal_id text COLLATE \"C\" NOT NULL,"
    " role_id text COLLATE \"C\" NOT NULL,"
    " scope text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL,"
    " seq bigserial)",
    "CREATE UNIQUE INDEX role_assignments_id ON role_assignments (lower(id))",
    /* Azure's RoleAssignmentExists (409); also serves lookups by principal */
    "CREATE UNIQUE INDEX role_assignments_triple ON role_assignments"
    " (lower(principal_id), lower(role_id), lower(scope))",
    "CREATE INDEX role_assignments_scope ON role_assignments (lower(scope))",

    "CREATE TABLE secrets ("
    " seq bigserial,"
    " vault text COLLATE \"C\" NOT NULL,"
    " vault_key text COLLATE \"C\" NOT NULL REFERENCES vaults (k) ON DELETE CASCADE,"
    " name text COLLATE \"C\" NOT NULL,"
    " version text COLLATE \"C\" NOT NULL,"
    " sealed bytea NOT NULL,"
    " content_type text COLLATE \"C\","
    " tags_json text COLLATE \"C\","
    " enabled integer NOT NULL,"
    " nbf bigint NOT NULL DEFAULT 0,"
    " exp bigint NOT NULL DEFAULT 0,"
    " created bigint NOT NULL,"
    " updated bigint NOT NULL,"
    " deleted bigint NOT NULL DEFAULT 0,"
    " purge_at bigint NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX secrets_version ON secrets (vault_key, lower(name), lower(version))",
    /* a secret's latest version comes first in its run of the index */
    "CREATE INDEX secrets_live ON secrets (vault_key, lower(name), created DESC, seq DESC)"
    " WHERE deleted = 0",
    "CREATE INDEX secrets_deleted ON secrets (vault_key, lower(name), created DESC, seq DESC)"
    " WHERE deleted <> 0",
    "CREATE INDEX secrets_purge ON secrets (purge_at) WHERE deleted <> 0",

    FEED_TRIGGER("principals", "id"),
    FEED_TRIGGER("signing_keys", "kid"),
    FEED_TRIGGER("vms", "k"),
    FEED_TRIGGER("vm_uai", "vm"),
    FEED_TRIGGER("identities", "k"),
    FEED_TRIGGER("nodes", "client_id"),
    FEED_TRIGGER("role_assignments", "id"),
    FEED_TRIGGER("vaults", "k"),
    NULL,
};

/* v2: secret writes feed the change log too, as kind 'secrets' (one row per statement, not per
 * row: a secret's versions change together), so every server's secret cache (pg_secrets.c)
 * learns of another server's writes. pg_feed.c keeps them apart from the other kinds: they move
 * the secrets generation, not the one RBAC and identity caches follow. No NOTIFY here: a
 * notifying transaction holds a cluster-wide lock from its COMMIT until the synchronous
 * standby answered, which serialises every secret write (measured: 35% fewer PUTs/s); secret
 * changes are found by the feed's poll (FEED_POLL_MS). */
static const char *const v2[] = {
    "CREATE FUNCTION mv_secrets_changed() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
    " INSERT INTO change_log (kind, key) VALUES ('secrets', NULL);"
    " RETURN NULL; END $f$",
    "CREATE TRIGGER secrets_changed AFTER INSERT OR UPDATE OR DELETE ON secrets"
    " FOR EACH STATEMENT EXECUTE FUNCTION mv_secrets_changed()",
    NULL,
};

/* v3: audit checkpoints (docs/audit.md); seq is assigned by pg_audit.c under an advisory lock,
 * gapless, so it is no bigserial. */
static const char *const v3[] = {
    "CREATE TABLE audit_checkpoints ("
    " seq bigint PRIMARY KEY,"
    " writer text COLLATE \"C\" NOT NULL,"
    " records bigint NOT NULL,"
    " head_hash text COLLATE \"C\" NOT NULL,"
    " at bigint NOT NULL,"
    " prev_hash text COLLATE \"C\" NOT NULL,"
    " hash text COLLATE \"C\" NOT NULL)",
    "CREATE INDEX audit_checkpoints_writer ON audit_checkpoints (writer, seq)",
    NULL,
};

/* v4: the Key Vault throttle's counters, shared by the servers (pg_quota.c). UNLOGGED: a
 * count lives for one 10-second window, so it is not worth a WAL write and a synchronous
 * standby's acknowledgement per lease; a crash or a failover empties the table, which lets
 * at most one window admit up to twice its limit. */
static const char *const v4[] = {
    "CREATE UNLOGGED TABLE quota_leases ("
    " vault text COLLATE \"C\" NOT NULL,"
    " window_start bigint NOT NULL,"
    " kind integer NOT NULL CHECK (kind BETWEEN 1 AND 2),"
    " used bigint NOT NULL,"
    " last_grant bigint NOT NULL,"
    " PRIMARY KEY (vault, window_start, kind))",
    "CREATE INDEX quota_leases_window ON quota_leases (window_start)",
    NULL,
};

/* v5: client assertion ids accepted by the token endpoint, shared by every server
 * (pg_assertions.c); client_id is stored lowered. nonce tells a re-run of our own write from a
 * replay. */
static const char *const v5[] = {
    "CREATE TABLE assertion_jti ("
    " client_id text COLLATE \"C\" NOT NULL,"
    " jti text COLLATE \"C\" NOT NULL,"
    " keep_until bigint NOT NULL,"
    " nonce text COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY (client_id, jti))",
    "CREATE INDEX assertion_jti_keep ON assertion_jti (keep_until)",
    "CREATE INDEX join_tokens_expires ON join_tokens (expires)",
    NULL,
};

/* v6: Key Vault keys (pg_vkeys.c), one row per version like secrets: sealed holds the private
 * key, jwk_json the public JWK with kty and key_ops; managed marks a certificate's key. And
 * their rotation policies: claimed is the version the last scheduled rotation started from (the
 * conditional update that lets one server of many rotate a key once). No cache reads keys, so
 * they feed no change log. */
static const char *const v6[] = {
    "CREATE TABLE vault_keys ("
    " seq bigserial,"
    " vault text COLLATE \"C\" NOT NULL,"
    " vault_key text COLLATE \"C\" NOT NULL REFERENCES vaults (k) ON DELETE CASCADE,"
    " name text COLLATE \"C\" NOT NULL,"
    " version text COLLATE \"C\" NOT NULL,"
    " sealed bytea NOT NULL,"
    " jwk_json text COLLATE \"C\" NOT NULL,"
    " tags_json text COLLATE \"C\","
    " enabled integer NOT NULL,"
    " nbf bigint NOT NULL DEFAULT 0,"
    " exp bigint NOT NULL DEFAULT 0,"
    " created bigint NOT NULL,"
    " updated bigint NOT NULL,"
    " deleted bigint NOT NULL DEFAULT 0,"
    " purge_at bigint NOT NULL DEFAULT 0,"
    " managed integer NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX vault_keys_version ON vault_keys (vault_key, lower(name), lower(version))",
    "CREATE INDEX vault_keys_live ON vault_keys (vault_key, lower(name), created DESC, seq DESC)"
    " WHERE deleted = 0",
    "CREATE INDEX vault_keys_deleted ON vault_keys (vault_key, lower(name), created DESC, seq DESC)"
    " WHERE deleted <> 0",
    "CREATE INDEX vault_keys_purge ON vault_keys (purge_at) WHERE deleted <> 0",
    "CREATE TABLE key_policies ("
    " vault text COLLATE \"C\" NOT NULL,"
    " vault_key text COLLATE \"C\" NOT NULL REFERENCES vaults (k) ON DELETE CASCADE,"
    " name text COLLATE \"C\" NOT NULL,"
    " policy_json text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL,"
    " updated bigint NOT NULL,"
    " claimed text COLLATE \"C\" NOT NULL DEFAULT '')",
    "CREATE UNIQUE INDEX key_policies_name ON key_policies (vault_key, lower(name))",
    NULL,
};

/* v7: Key Vault certificates (pg_certs.c): versions, policies, pending operations, issuers and
 * contacts, one table of objects; see store.h "certificates". */
static const char *const v7[] = {
    "CREATE TABLE cert_objects ("
    " seq bigserial,"
    " vault text COLLATE \"C\" NOT NULL,"
    " vault_key text COLLATE \"C\" NOT NULL REFERENCES vaults (k) ON DELETE CASCADE,"
    " kind integer NOT NULL CHECK (kind BETWEEN 1 AND 5),"
    " name text COLLATE \"C\" NOT NULL,"
    " version text COLLATE \"C\" NOT NULL,"
    " doc text COLLATE \"C\" NOT NULL,"
    " sealed bytea NOT NULL,"
    " created bigint NOT NULL,"
    " deleted bigint NOT NULL DEFAULT 0,"
    " purge_at bigint NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX cert_objects_key ON cert_objects"
    " (vault_key, kind, lower(name), lower(version))",
    "CREATE INDEX cert_objects_latest ON cert_objects"
    " (vault_key, kind, lower(name), created DESC, seq DESC)",
    NULL,
};

/* v8: a secret version's whole write in one round trip (pg_secrets.c add_fn): the per-name
 * advisory lock, the stored spelling and soft-delete state, the insert and, when the version id
 * exists, whether it holds our sealed bytes. Expected outcomes are returned, never raised, so a
 * conflict does not abort the writer's batch: rc 0 = written (or already ours: a re-run after
 * an unknown commit), 1 = the name is soft-deleted, 2 = the version id is taken; stored = the
 * name as stored. An unknown vault still raises 23503 from the foreign key. */
static const char *const v8[] = {
    "CREATE FUNCTION mv_secret_add(p_vault text, p_name text, p_version text, p_sealed bytea,"
    " p_content_type text, p_tags_json text, p_enabled integer, p_nbf bigint, p_exp bigint,"
    " p_created bigint, p_updated bigint, OUT rc integer, OUT stored text)"
    " LANGUAGE plpgsql AS $f$ DECLARE del bigint; n bigint; BEGIN"
    " PERFORM pg_advisory_xact_lock(hashtextextended(lower(p_vault) || '/' || lower(p_name), 0));"
    " SELECT s.name, s.deleted INTO stored, del FROM secrets s"
    "  WHERE s.vault_key = lower(p_vault) AND lower(s.name) = lower(p_name) LIMIT 1;"
    " IF NOT FOUND THEN stored := p_name;"
    " ELSIF del <> 0 THEN rc := 1; RETURN; END IF;"
    " INSERT INTO secrets (vault, vault_key, name, version, sealed, content_type, tags_json,"
    "  enabled, nbf, exp, created, updated) VALUES (p_vault, lower(p_vault), stored, p_version,"
    "  p_sealed, p_content_type, p_tags_json, p_enabled, p_nbf, p_exp, p_created, p_updated)"
    "  ON CONFLICT (vault_key, lower(name), lower(version)) DO NOTHING;"
    " GET DIAGNOSTICS n = ROW_COUNT;"
    " rc := 0;"
    " IF n = 0 AND NOT EXISTS (SELECT 1 FROM secrets s WHERE s.vault_key = lower(p_vault)"
    "  AND lower(s.name) = lower(p_name) AND lower(s.version) = lower(p_version)"
    "  AND s.sealed = p_sealed) THEN rc := 2; END IF;"
    " END $f$",
    NULL,
};

/* v9: each audit writer's chain head, with its HMAC under the audit key (pg_audit.c,
 * docs/audit.md). */
static const char *const v9[] = {
    "CREATE TABLE audit_heads ("
    " writer text COLLATE \"C\" PRIMARY KEY,"
    " records bigint NOT NULL,"
    " head_hash text COLLATE \"C\" NOT NULL,"
    " mac text COLLATE \"C\" NOT NULL,"
    " at bigint NOT NULL)",
    NULL,
};

/* v10: service principals (principal kind 4), their credentials (pg_apps.c; client_id stored
 * lowered) and the federated identity credentials of user-assigned identities (identity_key
 * references identities.k; name_key is the lowered name). Self-contained: one step. */
static const char *const v10[] = {
    "ALTER TABLE principals DROP CONSTRAINT principals_kind_check",
    "ALTER TABLE principals ADD CONSTRAINT principals_kind_check CHECK (kind BETWEEN 1 AND 4)",
    "CREATE TABLE app_credentials ("
    " key_id text COLLATE \"C\" PRIMARY KEY,"
    " client_id text COLLATE \"C\" NOT NULL,"
    " kind integer NOT NULL CHECK (kind BETWEEN 1 AND 2),"
    " hint text COLLATE \"C\" NOT NULL,"
    " secret_sha256 text COLLATE \"C\" NOT NULL,"
    " thumb_sha1 text COLLATE \"C\" NOT NULL,"
    " thumb_sha256 text COLLATE \"C\" NOT NULL,"
    " cert_pem text COLLATE \"C\","
    " created bigint NOT NULL,"
    " expires bigint NOT NULL,"
    " seq bigserial)",
    "CREATE INDEX app_credentials_client ON app_credentials (client_id)",
    FEED_TRIGGER("app_credentials", "client_id"),
    "CREATE TABLE federated_credentials ("
    " identity_key text COLLATE \"C\" NOT NULL REFERENCES identities (k) ON DELETE CASCADE,"
    " name_key text COLLATE \"C\" NOT NULL,"
    " identity text COLLATE \"C\" NOT NULL,"
    " name text COLLATE \"C\" NOT NULL,"
    " issuer text COLLATE \"C\" NOT NULL,"
    " subject text COLLATE \"C\" NOT NULL,"
    " audience text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL,"
    " PRIMARY KEY (identity_key, name_key),"
    " UNIQUE (identity_key, issuer, subject))",
    FEED_TRIGGER("federated_credentials", "identity_key"),
    NULL,
};

/* v11: per-process identity bindings (pg_resources.c; vm and identity hold the lowered keys).
 * Self-contained: one step. */
static const char *const v11[] = {
    "CREATE TABLE vm_bindings ("
    " vm text COLLATE \"C\" NOT NULL REFERENCES vms (k) ON DELETE CASCADE,"
    " identity text COLLATE \"C\" NOT NULL REFERENCES identities (k) ON DELETE CASCADE,"
    " kind integer NOT NULL CHECK (kind BETWEEN 1 AND 2),"
    " value text COLLATE \"C\" NOT NULL,"
    " created bigint NOT NULL,"
    " seq bigserial,"
    " PRIMARY KEY (vm, identity, kind, value))",
    "CREATE INDEX vm_bindings_identity ON vm_bindings (identity)",
    FEED_TRIGGER("vm_bindings", "vm"),
    NULL,
};

/* v12: a secret PUT's write with the certificate check in the same round trip and under the
 * same per-name lock (pg_secrets.c set_fn): rc 3 = a live certificate owns the name (its
 * managed secret, docs/certificates.md), nothing written; otherwise mv_secret_add's outcome.
 * A certificate's own write takes that lock too (its secret goes through mv_secret_add), so a
 * PUT racing a certificate create either lands first or sees the certificate. */
static const char *const v12[] = {
    "CREATE FUNCTION mv_secret_set(p_vault text, p_name text, p_version text, p_sealed bytea,"
    " p_content_type text, p_tags_json text, p_enabled integer, p_nbf bigint, p_exp bigint,"
    " p_created bigint, p_updated bigint, OUT rc integer, OUT stored text)"
    " LANGUAGE plpgsql AS $f$ BEGIN"
    " PERFORM pg_advisory_xact_lock(hashtextextended(lower(p_vault) || '/' || lower(p_name), 0));"
    " IF EXISTS (SELECT 1 FROM cert_objects c WHERE c.vault_key = lower(p_vault) AND c.kind = 1"
    "  AND lower(c.name) = lower(p_name) AND c.deleted = 0) THEN"
    "  rc := 3; stored := p_name; RETURN; END IF;"
    " SELECT a.rc, a.stored INTO rc, stored FROM mv_secret_add(p_vault, p_name, p_version,"
    "  p_sealed, p_content_type, p_tags_json, p_enabled, p_nbf, p_exp, p_created, p_updated) a;"
    " END $f$",
    NULL,
};

/* v13: the secrets feed row once per transaction, not once per statement. The feed only needs
 * to learn that some secret changed (pg_feed.c moves the secrets generation, every server's
 * secret cache starts over), and a writer batch of n PUTs ran n statements, so n rows with
 * their index entries and WAL. A transaction-local setting remembers that this transaction
 * wrote its row; a rolled-back savepoint takes back both the row and the setting. */
static const char *const v13[] = {
    "CREATE OR REPLACE FUNCTION mv_secrets_changed() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN"
    " IF coalesce(current_setting('mivault.secrets_fed', true), '') <> '1' THEN"
    "  INSERT INTO change_log (kind, key) VALUES ('secrets', NULL);"
    "  PERFORM set_config('mivault.secrets_fed', '1', true);"
    " END IF;"
    " RETURN NULL; END $f$",
    NULL,
};

static const char *const *const migrations[] = {v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13};
#define LATEST ((int64_t)(sizeof migrations / sizeof migrations[0]))

/* meta itself is the one table every version has: created first, outside the list. */
static const char CREATE_META[] =
    "CREATE TABLE IF NOT EXISTS meta (key text COLLATE \"C\" PRIMARY KEY, value text)";

static mv_rc read_version(struct pg_store *pg, int64_t *ver)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    *ver = 0;
    CHECK(pg_exec(pg, "SELECT value FROM meta WHERE key = 'schema_version'", NULL, &r, NULL));
    if (PQntuples(r) == 1)
        CHECK(mv_parse_i64(PQgetvalue(r, 0, 0), ver));
out:
    PQclear(r);
    return rc;
}

static mv_rc migrate(struct pg_store *pg, void *arg)
{
    (void)arg;
    mv_rc rc = MV_OK;
    int64_t ver = 0;
    struct pg_params pp = {0};
    pp_i64(&pp, PG_ADVISORY_MIGRATE);
    CHECK(pg_exec(pg, "SELECT pg_advisory_xact_lock($1::bigint)", &pp, NULL, NULL));
    CHECK(pg_simple(pg, CREATE_META));
    CHECK(read_version(pg, &ver)); /* under the lock: another server may have migrated */
    ENSURE_MSG(ver >= 0 && ver <= LATEST, MV_ERR_INTERNAL,
               "store schema version %lld is newer than this build (%lld)", (long long)ver,
               (long long)LATEST);
    if (ver == LATEST)
        goto out;
    for (int64_t v = ver; v < LATEST; v++)
        for (const char *const *part = migrations[v]; *part; part++)
            CHECK(pg_simple(pg, *part)); /* constants of this file, no input */
    pp.n = 0;
    pp_i64(&pp, LATEST);
    CHECK(pg_exec(pg,
                  "INSERT INTO meta (key, value) VALUES ('schema_version', $1::bigint::text)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                  &pp, NULL, NULL));
    LOG_INFO("store: postgresql schema on %s migrated from version %lld to %lld", pg->hosts,
             (long long)ver, (long long)LATEST);
out:
    return rc;
}

mv_rc pg_migrate(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    int64_t ver = 0;
    /* Fast path: one query when the schema is current (every loop thread opens a connection). */
    PGresult *r = NULL;
    CHECK(pg_exec(pg, "SELECT to_regclass('meta') IS NOT NULL", NULL, &r, NULL));
    if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
        CHECK(read_version(pg, &ver));
        if (ver == LATEST)
            goto out;
    }
    CHECK(pg_run(pg, PG_WRITE, migrate, NULL));
out:
    PQclear(r);
    return rc;
}
