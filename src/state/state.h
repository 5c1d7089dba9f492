/* state.h: the state directory (DESIGN §3) and what `mivault init` puts in it.
 *
 *   STATE/config.json    public URL, listen addresses, vault suffix, lifetimes, store (written by
 *                        init; every key in docs/config.md)
 *   STATE/mivault.db     the SQLite store, unless config.json's "store" names a PostgreSQL URL
 *   STATE/master.key     32 random bytes (0600) wrapping the data key; MIVAULT_MASTER_KEY
 *                        (64 hex chars) overrides it
 *   STATE/ca.pem ca.key  the installation's CA (also in the store, its key sealed with the data
 *                        key, so every server of one installation has the same CA);
 *                        server.pem server.key: this server's certificate (SANs in ca.h)
 *   STATE/admin.key      admin principal's EC P-256 private key (0600); admin.json its ids
 *   STATE/agents/VM/     a host agent's node key (0600) and enrollment
 *   STATE/audit.log      hash-chained audit trail (docs/audit.md)
 *   STATE/server.id      this server's id (a UUID): the writer of its audit chain
 *   STATE/env.sh         the environment a workload needs (written by `up`)
 */
#ifndef MV_STATE_STATE_H
#define MV_STATE_STATE_H

#include <limits.h>

#include "common/addr.h"
#include "common/result.h"
#include "store/store.h"

#define MV_STORE_URL_MAX 1024

struct mv_paths {
    char dir[PATH_MAX];
    char config[PATH_MAX];
    char db[PATH_MAX];            /* what store_open takes: STATE/mivault.db or config's "store" */
    char master_key[PATH_MAX];
    char ca_pem[PATH_MAX];
    char ca_key[PATH_MAX];
    char server_pem[PATH_MAX];
    char server_key[PATH_MAX];
    char admin_key[PATH_MAX];
    char admin_json[PATH_MAX];
    char agents[PATH_MAX];
    char audit_log[PATH_MAX];
    char server_id[PATH_MAX];     /* STATE/server.id */
    char env_sh[PATH_MAX];
    char bundle[PATH_MAX];        /* CA bundle for clients: system CAs + local CA */
};

struct mv_config {
    char server_host[64];         /* listen address of the server, "127.0.0.1" */
    int server_port;              /* 8443 */
    /* What agents, the CLI and workloads dial (a load balancer's address when several servers
     * share one installation): base of the issuer and of every derived URL. Derived from
     * public_host and server_port when config.json has no publicUrl (older states). */
    char public_url[MV_ADDR_URL_MAX]; /* "https://127.0.0.1:8443" (normalised, addr.h) */
    char public_host[MV_ADDR_HOST_MAX]; /* its host: "127.0.0.1" */
    int public_port;              /* its port: 8443 */
    char store[MV_STORE_URL_MAX]; /* "" = SQLite STATE/mivault.db; a postgresql:// URL or a file */
    char vault_suffix[128];       /* "vault.localhost" */
    char agent_host[64];          /* "127.0.0.1" */
    int agent_port;               /* 50342 */
    int token_lifetime;           /* seconds, default MV_TOKEN_LIFETIME_SECS */
    int threads;                  /* server event loops, 0 = CPUs */
    int throttle_ops;             /* per vault per 10 s; 0 = off */
    int throttle_creates;         /* per vault per 10 s; 0 = off */
    int imds_rate_limit;          /* agent token requests per second before 429; 0 = off */
    int audit_max_bytes;          /* rotate audit.log at this size; 0 = never (auditMaxBytes) */
    int audit_keep;               /* rotated audit files kept (auditKeep) */
    int max_connections;          /* per listener (maxConnections), docs/security.md */
    int header_timeout_secs;      /* a request head complete within (headerTimeoutSecs) */
    int body_min_rate;            /* body bytes/s after that (bodyMinRate) */
    int audit_checkpoint_secs;    /* audit checkpoint interval (auditCheckpointSecs) */
    int signing_key_rotation_days; /* rotate the token-signing key this often; 0 = never
                                    * (signingKeyRotationDays, docs/operations.md) */
};

/* Tenant-level facts created at init, stored in the store's meta table. */
struct mv_tenant {
    char tenant_id[ST_ID];
    char subscription_id[ST_ID];
    char resource_group[ST_NAME];
    char admin_principal_id[ST_ID];
    char admin_client_id[ST_ID];
};

/* --state DIR, else $MIVAULT_HOME, else ~/.mivault. Fills every path; creates nothing. db is
 * the store URL when config.json has one ("store"), so every verb uses the same store. */
MV_MUST_CHECK mv_rc state_paths(const char *flag_dir, struct mv_paths *out);
void state_config_defaults(struct mv_config *cfg);
/* Sets the public URL (validated, normalised; public_host and public_port follow). NULL:
 * https://{public_host}:{server_port}, the single-server default. */
MV_MUST_CHECK mv_rc state_config_public_url(struct mv_config *cfg, const char *url);
/* Where the store is: cfg->store, else STATE/mivault.db. The one place that decides it. */
MV_MUST_CHECK mv_rc state_store_location(const struct mv_paths *p, const struct mv_config *cfg,
                                         char *out, size_t len);
MV_MUST_CHECK mv_rc state_config_load(const struct mv_paths *p, struct mv_config *cfg);
MV_MUST_CHECK mv_rc state_config_save(const struct mv_paths *p, const struct mv_config *cfg);
enum state_init_outcome {
    STATE_EXISTING, /* this state dir was initialised already: only missing files were made */
    STATE_CREATED,  /* a new installation (tenant, data key, CA, admin) */
    STATE_JOINED,   /* this state dir joined the installation its store already holds */
};
/* Creates everything missing (idempotent): dir, config (cfg, unless config.json exists), master
 * key, store + data key, tenant, subscription, resource group, CA + this server's certificate,
 * admin principal + key + Owner at "/".
 *
 * A store that already holds a tenant is joined (docs/config.md, "Many servers"): it needs the
 * installation's master key (master_key_file, or this dir's master.key / MIVAULT_MASTER_KEY),
 * and is refused with MV_ERR_FORBIDDEN, with nothing in the store changed, when that is absent
 * or does not unwrap the store's data key. A joining dir gets the shared CA and admin key from
 * the store and issues its own server certificate. master_key_file may be NULL. */
MV_MUST_CHECK mv_rc state_init(const struct mv_paths *p, const struct mv_config *cfg,
                               const char *master_key_file, enum state_init_outcome *outcome);
/* This server's id from STATE/server.id (server_id.c); made there first when create is set and
 * it is missing. */
MV_MUST_CHECK mv_rc state_server_id(const struct mv_paths *p, int create, char out[ST_ID]);
MV_MUST_CHECK mv_rc state_master_key(const struct mv_paths *p, unsigned char key[32]);
/* Master-key rotation (docs/operations.md, "Rotating the master key"). stage: the store's
 * data key is wrapped with new_mk too (meta data_key_next), under p's current master key, so
 * either key opens the store. install: new_mk becomes p's master.key (durably). commit: p's
 * master key must be the staged one; its wrapping becomes the only one, and the old master key
 * opens nothing in the store any more (idempotent once done). Running servers are not touched:
 * they hold the data key, which does not change. */
MV_MUST_CHECK mv_rc state_master_key_stage(const struct mv_paths *p, const unsigned char new_mk[32]);
MV_MUST_CHECK mv_rc state_master_key_install(const struct mv_paths *p, const unsigned char mk[32]);
MV_MUST_CHECK mv_rc state_master_key_commit(const struct mv_paths *p);
/* Unwraps the data key that seals secrets and private keys. */
MV_MUST_CHECK mv_rc state_data_key(const struct mv_paths *p, struct store *st, unsigned char key[32]);
MV_MUST_CHECK mv_rc state_tenant(struct store *st, struct mv_tenant *out);

/* Derived URLs. */
/* The public URL: "https://127.0.0.1:8443" */
MV_MUST_CHECK mv_rc state_server_url(const struct mv_config *cfg, char *out, size_t len);
/* issuer "https://127.0.0.1:8443/{tid}/" (trailing slash, reference §3.2) */
MV_MUST_CHECK mv_rc state_issuer(const struct mv_config *cfg, const char *tid, char *out, size_t len);
/* vault challenge resource "https://vault.localhost:8443": the public URL's port (reference
 * §4.4: Python compares host and port), whatever port this server listens on */
MV_MUST_CHECK mv_rc state_vault_resource(const struct mv_config *cfg, char *out, size_t len);
/* "https://NAME.vault.localhost:8443" */
MV_MUST_CHECK mv_rc state_vault_url(const struct mv_config *cfg, const char *vault, char *out, size_t len);
/* ARM resource ids */
MV_MUST_CHECK mv_rc state_rg_scope(const struct mv_tenant *t, char *out, size_t len);

#endif
