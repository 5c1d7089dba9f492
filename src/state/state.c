/* state.c: the state directory: paths, config.json, the master and data keys, and init.
 *
 * Invariant: the data key exists only wrapped (sealed with the master key) in the store's meta
 * table; the master key exists only in master.key (0600) or MIVAULT_MASTER_KEY. */
#include "state/state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/b64.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/aead.h"
#include "crypto/ca.h"
#include "crypto/keys.h"

/* mv_write_file, then an fsync of the directory: the rename that put the file in place is a
 * change of the directory, and without it master.key (or the CA key) could be gone after a power
 * loss while the database that needs it survived. */
static mv_rc write_durable(const char *path, const void *data, size_t len, unsigned mode)
{
    mv_rc rc = MV_OK;
    char dir[PATH_MAX];
    int fd = -1;
    CHECK(mv_write_file(path, data, len, mode));
    CHECK(mv_copy(dir, sizeof dir, path));
    char *slash = strrchr(dir, '/');
    if (!slash)
        CHECK(mv_copy(dir, sizeof dir, "."));
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "open %s: %s", dir, strerror(errno));
    ENSURE_MSG(fsync(fd) == 0, MV_ERR_INTERNAL, "fsync %s: %s", dir, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static mv_rc join(char *out, const char *dir, const char *name)
{
    return mv_fmt(out, PATH_MAX, "%s/%s", dir, name);
}

/* config.json's "store" into db, if the file exists and has one: a PostgreSQL URL, or the
 * absolute path of another state's SQLite file (init --sqlite-file, tests of join). */
static mv_rc store_from_config(const char *config, char *db, size_t len)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    if (!mv_file_exists(config))
        return MV_OK;
    json_t *o = json_load_file(config, JSON_REJECT_DUPLICATES, &jerr);
    ENSURE_MSG(o && json_is_object(o), MV_ERR_BAD_REQUEST, "cannot read %s: %s", config, jerr.text);
    json_t *v = json_object_get(o, "store");
    if (v) {
        ENSURE_MSG(json_is_string(v) && (store_is_url(json_string_value(v)) ||
                                          json_string_value(v)[0] == '/'),
                   MV_ERR_BAD_REQUEST, "config: store must be a postgresql:// URL or an absolute path");
        CHECK(mv_copy(db, len, json_string_value(v)));
    }
out:
    json_decref(o);
    return rc;
}

mv_rc state_paths(const char *flag_dir, struct mv_paths *p)
{
    mv_rc rc = MV_OK;
    memset(p, 0, sizeof *p);
    const char *env = getenv("MIVAULT_HOME");
    const char *home = getenv("HOME");
    if (flag_dir && *flag_dir)
        CHECK(mv_copy(p->dir, sizeof p->dir, flag_dir));
    else if (env && *env)
        CHECK(mv_copy(p->dir, sizeof p->dir, env));
    else
        CHECK(mv_fmt(p->dir, sizeof p->dir, "%s/.mivault", home && *home ? home : "/root"));
    if (p->dir[0] != '/') { /* make it absolute: env.sh and agents outlive the cwd */
        char cwd[PATH_MAX], rel[PATH_MAX];
        ENSURE(getcwd(cwd, sizeof cwd) != NULL, MV_ERR_INTERNAL);
        CHECK(mv_copy(rel, sizeof rel, p->dir));
        CHECK(mv_fmt(p->dir, sizeof p->dir, "%s/%s", cwd, rel));
    }
    CHECK(join(p->config, p->dir, "config.json"));
    CHECK(join(p->db, p->dir, "mivault.db"));
    CHECK(store_from_config(p->config, p->db, sizeof p->db));
    CHECK(join(p->master_key, p->dir, "master.key"));
    CHECK(join(p->ca_pem, p->dir, "ca.pem"));
    CHECK(join(p->ca_key, p->dir, "ca.key"));
    CHECK(join(p->server_pem, p->dir, "server.pem"));
    CHECK(join(p->server_key, p->dir, "server.key"));
    CHECK(join(p->admin_key, p->dir, "admin.key"));
    CHECK(join(p->admin_json, p->dir, "admin.json"));
    CHECK(join(p->agents, p->dir, "agents"));
    CHECK(join(p->audit_log, p->dir, "audit.log"));
    CHECK(join(p->server_id, p->dir, "server.id"));
    CHECK(join(p->env_sh, p->dir, "env.sh"));
    CHECK(join(p->bundle, p->dir, "ca-bundle.pem"));
out:
    return rc;
}

void state_config_defaults(struct mv_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->server_host, sizeof c->server_host, "127.0.0.1");
    c->server_port = 8443;
    snprintf(c->public_host, sizeof c->public_host, "127.0.0.1");
    c->public_port = c->server_port;
    snprintf(c->public_url, sizeof c->public_url, "https://127.0.0.1:8443");
    snprintf(c->vault_suffix, sizeof c->vault_suffix, "vault.localhost");
    snprintf(c->agent_host, sizeof c->agent_host, "127.0.0.1");
    c->agent_port = 50342;
    c->token_lifetime = MV_TOKEN_LIFETIME_SECS;
    c->threads = 0;
    c->throttle_ops = 4000;   /* Azure: per vault per 10 s (reference §4.5) */
    c->throttle_creates = 300;
    c->imds_rate_limit = MV_IMDS_RATE_PER_SEC;
    c->audit_max_bytes = MV_AUDIT_MAX_BYTES;
    c->audit_keep = MV_AUDIT_KEEP;
    c->max_connections = MV_MAX_CONNECTIONS;
    c->header_timeout_secs = MV_HEADER_TIMEOUT_SECS;
    c->body_min_rate = MV_BODY_MIN_RATE;
    c->audit_checkpoint_secs = MV_AUDIT_CHECKPOINT_SECS;
}

mv_rc state_config_public_url(struct mv_config *c, const char *url)
{
    mv_rc rc = MV_OK;
    struct mv_public_url u;
    char derived[MV_ADDR_URL_MAX];
    if (!url) {
        CHECK(mv_https_origin(c->public_host, c->server_port, derived, sizeof derived));
        url = derived;
    }
    CHECK(mv_parse_public_url(url, &u));
    CHECK(mv_copy(c->public_url, sizeof c->public_url, u.url));
    CHECK(mv_copy(c->public_host, sizeof c->public_host, u.host));
    c->public_port = u.port;
out:
    return rc;
}

mv_rc state_store_location(const struct mv_paths *p, const struct mv_config *c, char *out,
                           size_t len)
{
    return mv_copy(out, len, c->store[0] ? c->store : p->db);
}

static mv_rc get_str(json_t *o, const char *k, char *dst, size_t len)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return MV_OK;
    if (!json_is_string(v)) {
        mv_fail(MV_ERR_BAD_REQUEST, "config: %s must be a string", k);
        return MV_ERR_BAD_REQUEST;
    }
    return mv_copy(dst, len, json_string_value(v));
}

static mv_rc get_int(json_t *o, const char *k, int *dst, int lo, int hi)
{
    json_t *v = json_object_get(o, k);
    if (!v)
        return MV_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        mv_fail(MV_ERR_BAD_REQUEST, "config: %s must be an integer in [%d, %d]", k, lo, hi);
        return MV_ERR_BAD_REQUEST;
    }
    *dst = (int)json_integer_value(v);
    return MV_OK;
}

mv_rc state_config_load(const struct mv_paths *p, struct mv_config *c)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    state_config_defaults(c);
    json_t *o = json_load_file(p->config, JSON_REJECT_DUPLICATES, &jerr);
    ENSURE_MSG(o && json_is_object(o), MV_ERR_NOT_FOUND, "cannot read %s: %s", p->config, jerr.text);
    CHECK(get_str(o, "serverHost", c->server_host, sizeof c->server_host));
    CHECK(get_int(o, "serverPort", &c->server_port, 0, 65535));
    CHECK(get_str(o, "publicHost", c->public_host, sizeof c->public_host)); /* before publicUrl */
    char url[MV_ADDR_URL_MAX] = "";
    CHECK(get_str(o, "publicUrl", url, sizeof url));
    CHECK(get_str(o, "store", c->store, sizeof c->store));
    CHECK(get_str(o, "vaultSuffix", c->vault_suffix, sizeof c->vault_suffix));
    CHECK(get_str(o, "agentHost", c->agent_host, sizeof c->agent_host));
    CHECK(get_int(o, "agentPort", &c->agent_port, 0, 65535));
    CHECK(get_int(o, "tokenLifetime", &c->token_lifetime, 300, 7 * 86400));
    CHECK(get_int(o, "threads", &c->threads, 0, 256));
    CHECK(get_int(o, "throttleOps", &c->throttle_ops, 0, 1000000000));
    CHECK(get_int(o, "throttleCreates", &c->throttle_creates, 0, 1000000000));
    CHECK(get_int(o, "imdsRateLimit", &c->imds_rate_limit, 0, 1000000000));
    CHECK(get_int(o, "auditMaxBytes", &c->audit_max_bytes, 0, 2000000000));
    CHECK(get_int(o, "auditKeep", &c->audit_keep, 1, 100000));
    CHECK(get_int(o, "maxConnections", &c->max_connections, 1, 1000000));
    CHECK(get_int(o, "headerTimeoutSecs", &c->header_timeout_secs, 1, 3600));
    CHECK(get_int(o, "bodyMinRate", &c->body_min_rate, 1, 1000000000));
    CHECK(get_int(o, "auditCheckpointSecs", &c->audit_checkpoint_secs, 1, 86400));
    CHECK(get_int(o, "signingKeyRotationDays", &c->signing_key_rotation_days, 0, 3650));
    rc = state_config_public_url(c, url[0] ? url : NULL);
    ENSURE_MSG(rc == MV_OK, rc, "config: publicUrl: %s", mv_last_detail());
out:
    json_decref(o);
    return rc;
}

mv_rc state_config_save(const struct mv_paths *p, const struct mv_config *c)
{
    mv_rc rc = MV_OK;
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i}", "publicUrl",
                          c->public_url, "serverHost", c->server_host, "serverPort", c->server_port,
                          "vaultSuffix", c->vault_suffix, "agentHost", c->agent_host, "agentPort",
                          c->agent_port, "tokenLifetime", c->token_lifetime, "threads", c->threads,
                          "throttleOps", c->throttle_ops, "throttleCreates", c->throttle_creates,
                          "imdsRateLimit", c->imds_rate_limit);
    if (o && c->store[0] && json_object_set_new(o, "store", json_string(c->store)) != 0) {
        json_decref(o);
        o = NULL;
    }
    /* 0600 when it names a database: the URL may carry a password. */
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    ENSURE(s != NULL, MV_ERR_INTERNAL);
    CHECK(write_durable(p->config, s, strlen(s), c->store[0] ? 0600 : 0644));
out:
    free(s);
    json_decref(o);
    return rc;
}

mv_rc state_master_key(const struct mv_paths *p, unsigned char key[32])
{
    mv_rc rc = MV_OK;
    char *file = NULL;
    size_t len = 0;
    const char *env = getenv("MIVAULT_MASTER_KEY");
    if (env && *env) {
        ENSURE_MSG(strlen(env) == 64, MV_ERR_BAD_REQUEST, "MIVAULT_MASTER_KEY must be 64 hex characters");
        for (int i = 0; i < 32; i++) {
            int hi = mv_hexval(env[2 * i]), lo = mv_hexval(env[2 * i + 1]);
            ENSURE_MSG(hi >= 0 && lo >= 0, MV_ERR_BAD_REQUEST, "MIVAULT_MASTER_KEY must be hex");
            key[i] = (unsigned char)(hi << 4 | lo);
        }
        return MV_OK;
    }
    CHECK(mv_read_file(p->master_key, 64, &file, &len));
    ENSURE_MSG(len == 32, MV_ERR_INTERNAL, "%s must hold 32 bytes", p->master_key);
    memcpy(key, file, 32);
out:
    if (file) {
        OPENSSL_cleanse(file, len);
        free(file);
    }
    return rc;
}

/* The data key, unwrapped with master; MV_ERR_FORBIDDEN if master does not open it. */
/* The data key as wrapped in meta `which` ("data_key", or "data_key_next" while a master-key
 * rotation is staged: "" when none is), unwrapped with master. MV_ERR_FORBIDDEN if master does
 * not open it, MV_ERR_NOT_FOUND if that wrapping is absent. */
static mv_rc unwrap_one(struct store *st, const char *which, const unsigned char master[32],
                        unsigned char key[32])
{
    mv_rc rc = MV_OK;
    mv_buf wrapped_b64, wrapped, dk;
    mv_buf_init(&wrapped_b64, 4096);
    mv_buf_init(&wrapped, 4096);
    mv_buf_init(&dk, 64);
    CHECK(store_meta_get(st, which, &wrapped_b64));
    ENSURE(wrapped_b64.len > 0, MV_ERR_NOT_FOUND);
    CHECK(b64_decode(&wrapped, wrapped_b64.p, wrapped_b64.len));
    rc = aead_open(master, "data-key", wrapped.p, wrapped.len, &dk);
    ENSURE_MSG(rc == MV_OK && dk.len == 32, MV_ERR_FORBIDDEN,
               "cannot unwrap the data key: wrong master key?");
    memcpy(key, dk.p, 32);
out:
    mv_buf_free(&wrapped_b64);
    mv_buf_free(&wrapped);
    mv_buf_free_secret(&dk);
    return rc;
}

#define META_DATA_KEY "data_key"
#define META_DATA_KEY_NEXT "data_key_next" /* a staged master-key rotation; "" when none */

/* The data key with master: the current wrapping, else (a rotation staged and this server
 * already given the new master key) the staged one. */
static mv_rc unwrap_data_key(struct store *st, const unsigned char master[32], unsigned char key[32])
{
    mv_rc rc = unwrap_one(st, META_DATA_KEY, master, key);
    if (rc == MV_ERR_FORBIDDEN) {
        mv_rc next = unwrap_one(st, META_DATA_KEY_NEXT, master, key);
        if (next == MV_OK)
            return MV_OK;
        mv_fail(MV_ERR_FORBIDDEN, "cannot unwrap the data key: wrong master key?");
    }
    return rc;
}

/* ---- master-key rotation (docs/operations.md) ----
 *
 * The master key wraps one thing: the data key (meta data_key). Everything sealed at rest
 * (secrets, signing keys, CA key, admin key) is sealed with the data key, so rotating the
 * master key re-wraps the data key and nothing else, and a running server, which holds the
 * data key in memory, never notices. Staged: data_key_next holds the data key wrapped with the
 * new master key, and either key opens the store (a server restarted in between starts with
 * whichever it has); commit makes the new wrapping the only one. */
#define ROTATE_MK_LOCK "mivault:master-key"

mv_rc state_master_key_stage(const struct mv_paths *p, const unsigned char new_mk[32])
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    unsigned char mk[32], dk[32];
    mv_buf sealed, b64;
    int in_tx = 0;
    mv_buf_init(&sealed, 4096);
    mv_buf_init(&b64, 4096);
    CHECK(state_master_key(p, mk));
    CHECK(store_open(p->db, &st));
    CHECK(store_begin(st));
    in_tx = 1;
    CHECK(store_xact_lock(st, ROTATE_MK_LOCK));
    rc = unwrap_one(st, META_DATA_KEY, mk, dk);
    ENSURE_MSG(rc == MV_OK, MV_ERR_FORBIDDEN,
               "%s does not open the store's data key (is a rotation staged already? then "
               "`mivault master-key rotate --commit` with the new key in place)", p->master_key);
    ENSURE_MSG(!mv_ct_eq(mk, 32, new_mk, 32), MV_ERR_BAD_REQUEST,
               "the new master key is the current one");
    CHECK(aead_seal(new_mk, "data-key", dk, sizeof dk, &sealed));
    CHECK(b64_encode(&b64, sealed.p, sealed.len));
    CHECK(store_meta_set(st, META_DATA_KEY_NEXT, b64.p));
    CHECK(store_commit(st));
    in_tx = 0;
    LOG_INFO("master key: rotation staged (both keys open the store)");
out:
    if (in_tx)
        store_rollback(st);
    OPENSSL_cleanse(mk, sizeof mk);
    OPENSSL_cleanse(dk, sizeof dk);
    mv_buf_free(&sealed);
    mv_buf_free(&b64);
    store_close(st);
    return rc;
}

mv_rc state_master_key_commit(const struct mv_paths *p)
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    unsigned char mk[32], dk[32];
    mv_buf next;
    int in_tx = 0;
    mv_buf_init(&next, 4096);
    CHECK(state_master_key(p, mk));
    CHECK(store_open(p->db, &st));
    CHECK(store_begin(st));
    in_tx = 1;
    CHECK(store_xact_lock(st, ROTATE_MK_LOCK));
    rc = unwrap_one(st, META_DATA_KEY_NEXT, mk, dk);
    if (rc == MV_ERR_NOT_FOUND || rc == MV_ERR_FORBIDDEN) {
        /* Nothing staged, or staged for another key: fine only if this key is the current one
         * (a commit that already happened). */
        mv_rc cur = unwrap_one(st, META_DATA_KEY, mk, dk);
        ENSURE_MSG(cur == MV_OK, MV_ERR_CONFLICT,
                   "%s is not the staged new master key: install it first", p->master_key);
        ENSURE_MSG(rc == MV_ERR_NOT_FOUND, MV_ERR_CONFLICT,
                   "a rotation to another master key is staged; this one (%s) is current",
                   p->master_key);
        rc = MV_OK;
        goto commit;
    }
    CHECK(rc);
    CHECK(store_meta_get(st, META_DATA_KEY_NEXT, &next));
    CHECK(store_meta_set(st, META_DATA_KEY, next.p));
    CHECK(store_meta_set(st, META_DATA_KEY_NEXT, ""));
commit:
    CHECK(store_commit(st));
    in_tx = 0;
    LOG_INFO("master key: rotation committed (only the new key opens the store)");
out:
    if (in_tx)
        store_rollback(st);
    OPENSSL_cleanse(mk, sizeof mk);
    OPENSSL_cleanse(dk, sizeof dk);
    mv_buf_free(&next);
    store_close(st);
    return rc;
}

mv_rc state_master_key_install(const struct mv_paths *p, const unsigned char mk[32])
{
    return write_durable(p->master_key, mk, 32, 0600);
}

mv_rc state_data_key(const struct mv_paths *p, struct store *st, unsigned char key[32])
{
    mv_rc rc = MV_OK;
    unsigned char master[32];
    CHECK(state_master_key(p, master));
    rc = unwrap_data_key(st, master, key);
    if (rc == MV_ERR_FORBIDDEN)
        rc = MV_ERR_INTERNAL; /* a server whose own master key fails: not the client's fault */
out:
    OPENSSL_cleanse(master, sizeof master);
    return rc;
}

static mv_rc meta_str(struct store *st, const char *k, char *dst, size_t len)
{
    mv_buf b;
    mv_buf_init(&b, 1024);
    mv_rc rc = store_meta_get(st, k, &b);
    if (rc == MV_OK)
        rc = mv_copy(dst, len, b.p ? b.p : "");
    mv_buf_free(&b);
    return rc;
}

mv_rc state_tenant(struct store *st, struct mv_tenant *t)
{
    mv_rc rc = MV_OK;
    memset(t, 0, sizeof *t);
    CHECK(meta_str(st, "tenant_id", t->tenant_id, sizeof t->tenant_id));
    CHECK(meta_str(st, "subscription_id", t->subscription_id, sizeof t->subscription_id));
    CHECK(meta_str(st, "resource_group", t->resource_group, sizeof t->resource_group));
    CHECK(meta_str(st, "admin_principal_id", t->admin_principal_id, sizeof t->admin_principal_id));
    CHECK(meta_str(st, "admin_client_id", t->admin_client_id, sizeof t->admin_client_id));
out:
    return rc;
}

/* admin.json: the ids the CLI signs its assertions with (admin.key holds the key). */
static mv_rc write_admin_json(const struct mv_paths *p, const struct mv_tenant *t)
{
    mv_rc rc = MV_OK;
    json_t *aj = json_pack("{s:s, s:s, s:s, s:s, s:s}", "principalId", t->admin_principal_id,
                           "clientId", t->admin_client_id, "tenantId", t->tenant_id,
                           "subscriptionId", t->subscription_id, "resourceGroup", t->resource_group);
    char *ajs = aj ? json_dumps(aj, JSON_INDENT(2)) : NULL;
    ENSURE(ajs != NULL, MV_ERR_INTERNAL);
    CHECK(write_durable(p->admin_json, ajs, strlen(ajs), 0600));
out:
    free(ajs);
    json_decref(aj);
    return rc;
}

/* New tenant: ids, the wrapped data key, the admin principal with Owner at "/". */
static mv_rc init_tenant(const struct mv_paths *p, struct store *st, const unsigned char master[32])
{
    mv_rc rc = MV_OK;
    unsigned char dk[32];
    mv_buf sealed, sealed_b64, priv, pub;
    EVP_PKEY *admin = NULL;
    int in_tx = 0;
    mv_buf_init(&sealed, 4096);
    mv_buf_init(&sealed_b64, 4096);
    mv_buf_init(&priv, 16384);
    mv_buf_init(&pub, 16384);
    struct mv_tenant t;
    memset(&t, 0, sizeof t);
    CHECK(mv_uuid(t.tenant_id));
    CHECK(mv_uuid(t.subscription_id));
    CHECK(mv_copy(t.resource_group, sizeof t.resource_group, "mivault"));
    CHECK(mv_uuid(t.admin_principal_id));
    CHECK(mv_uuid(t.admin_client_id));

    CHECK(mv_random(dk, sizeof dk));
    CHECK(aead_seal(master, "data-key", dk, sizeof dk, &sealed));
    CHECK(b64_encode(&sealed_b64, sealed.p, sealed.len));

    CHECK(keys_gen_ec_p256(&admin));
    CHECK(keys_private_pem(admin, &priv));
    CHECK(keys_public_pem(admin, &pub));
    CHECK(write_durable(p->admin_key, priv.p, priv.len, 0600));
    CHECK(write_admin_json(p, &t));

    struct st_principal admin_p;
    memset(&admin_p, 0, sizeof admin_p);
    CHECK(mv_copy(admin_p.id, sizeof admin_p.id, t.admin_principal_id));
    CHECK(mv_copy(admin_p.client_id, sizeof admin_p.client_id, t.admin_client_id));
    admin_p.kind = ST_PRINCIPAL_ADMIN;
    CHECK(mv_copy(admin_p.name, sizeof admin_p.name, "admin"));
    admin_p.public_key_pem = pub.p;

    struct st_role_assignment ra;
    memset(&ra, 0, sizeof ra);
    CHECK(mv_uuid(ra.id));
    CHECK(mv_copy(ra.principal_id, sizeof ra.principal_id, t.admin_principal_id));
    CHECK(mv_copy(ra.role_id, sizeof ra.role_id, "8e3af657-a8ff-443c-a75c-2fe8c4bcb635")); /* Owner */
    CHECK(mv_copy(ra.scope, sizeof ra.scope, "/"));
    ra.created = mv_now();

    CHECK(store_begin(st));
    in_tx = 1;
    CHECK(store_meta_set(st, "data_key", sealed_b64.p));
    CHECK(store_principal_put(st, &admin_p));
    CHECK(store_role_assignment_put(st, &ra));
    CHECK(store_meta_set(st, "subscription_id", t.subscription_id));
    CHECK(store_meta_set(st, "resource_group", t.resource_group));
    CHECK(store_meta_set(st, "admin_principal_id", t.admin_principal_id));
    CHECK(store_meta_set(st, "admin_client_id", t.admin_client_id));
    CHECK(store_meta_set(st, "tenant_id", t.tenant_id)); /* last: its presence means "initialised" */
    CHECK(store_commit(st));
    in_tx = 0;
out:
    if (in_tx)
        store_rollback(st);
    OPENSSL_cleanse(dk, sizeof dk);
    EVP_PKEY_free(admin);
    mv_buf_free(&sealed);
    mv_buf_free(&sealed_b64);
    mv_buf_free_secret(&priv);
    mv_buf_free(&pub);
    return rc;
}

static mv_rc write_bundle(const struct mv_paths *p)
{
    mv_rc rc = MV_OK;
    char *sys = NULL, *ca = NULL;
    size_t syslen = 0, calen = 0;
    mv_buf b;
    mv_buf_init(&b, 4 * 1024 * 1024);
    CHECK(mv_read_file(p->ca_pem, 65536, &ca, &calen));
    if (mv_read_file(SYSTEM_CA_BUNDLE, 4 * 1024 * 1024 - 65536, &sys, &syslen) == MV_OK)
        CHECK(mv_buf_add(&b, sys, syslen));
    CHECK(mv_buf_add(&b, "\n", 1));
    CHECK(mv_buf_add(&b, ca, calen));
    CHECK(write_durable(p->bundle, b.p, b.len, 0644));
out:
    free(sys);
    free(ca);
    mv_buf_free(&b);
    return rc;
}

/* ---- what every server of one installation shares through the store ----
 *
 * The CA (certificate, and its private key sealed with the data key) and the admin key (sealed)
 * live in the meta table, so a server that joins with the master key writes the same ca.pem,
 * ca.key and admin.key as the first one, and issues its own server certificate from that CA:
 * an agent's CA pin then holds for every server behind the balancer. */
#define META_CA_CERT "ca_cert"
#define META_CA_KEY "ca_key"       /* sealed, AAD "ca-key" */
#define META_ADMIN_KEY "admin_key" /* sealed, AAD "admin-key" */
#define STATE_PEM_MAX (64 * 1024)

static mv_rc meta_seal(struct store *st, const unsigned char dk[32], const char *key,
                       const char *aad, const char *pt, size_t len)
{
    mv_rc rc = MV_OK;
    mv_buf sealed, b64;
    mv_buf_init(&sealed, STATE_PEM_MAX + AEAD_OVERHEAD);
    mv_buf_init(&b64, 2 * (STATE_PEM_MAX + AEAD_OVERHEAD));
    CHECK(aead_seal(dk, aad, pt, len, &sealed));
    CHECK(b64_encode(&b64, sealed.p, sealed.len));
    CHECK(store_meta_set(st, key, b64.p));
out:
    mv_buf_free(&sealed);
    mv_buf_free(&b64);
    return rc;
}

/* MV_ERR_NOT_FOUND if absent. out is secret: mv_buf_free_secret. */
static mv_rc meta_unseal(struct store *st, const unsigned char dk[32], const char *key,
                         const char *aad, mv_buf *out)
{
    mv_rc rc = MV_OK;
    mv_buf b64, sealed;
    mv_buf_init(&b64, 2 * (STATE_PEM_MAX + AEAD_OVERHEAD));
    mv_buf_init(&sealed, 2 * (STATE_PEM_MAX + AEAD_OVERHEAD));
    CHECK(store_meta_get(st, key, &b64));
    CHECK(b64_decode(&sealed, b64.p, b64.len));
    ENSURE_MSG(aead_open(dk, aad, sealed.p, sealed.len, out) == MV_OK, MV_ERR_INTERNAL,
               "meta %s does not unseal", key);
out:
    mv_buf_free(&b64);
    mv_buf_free(&sealed);
    return rc;
}

static mv_rc read_into(const char *path, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char *data = NULL;
    size_t len = 0;
    CHECK(mv_read_file(path, STATE_PEM_MAX, &data, &len));
    CHECK(mv_buf_add(out, data, len));
out:
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return rc;
}

/* The installation's CA in this state dir, and this server's certificate. may_create: a first
 * init may make the CA (or adopt the one a state from before this code made); a joining server
 * must find it in the store. */
static mv_rc ensure_ca(const struct mv_paths *p, const struct mv_config *c, struct store *st,
                       const unsigned char dk[32], int may_create)
{
    mv_rc rc = MV_OK;
    mv_buf cert, key, local;
    int in_tx = 0, write_files = 0;
    mv_buf_init(&cert, STATE_PEM_MAX);
    mv_buf_init(&key, STATE_PEM_MAX);
    mv_buf_init(&local, STATE_PEM_MAX);
    rc = store_meta_get(st, META_CA_CERT, &cert);
    if (rc == MV_OK) {
        CHECK(meta_unseal(st, dk, META_CA_KEY, "ca-key", &key));
        if (mv_file_exists(p->ca_pem)) {
            CHECK(read_into(p->ca_pem, &local));
            ENSURE_MSG(local.len == cert.len && memcmp(local.p, cert.p, cert.len) == 0,
                       MV_ERR_CONFLICT, "%s is not the CA the store holds for this installation",
                       p->ca_pem);
        }
        write_files = !mv_file_exists(p->ca_pem) || !mv_file_exists(p->ca_key);
    } else if (rc == MV_ERR_NOT_FOUND) {
        if (mv_file_exists(p->ca_pem) && mv_file_exists(p->ca_key)) {
            /* A state made before the store held its CA: adopt the files. */
            mv_buf_reset(&cert);
            CHECK(read_into(p->ca_pem, &cert));
            CHECK(read_into(p->ca_key, &key));
        } else {
            ENSURE_MSG(may_create, MV_ERR_NOT_FOUND,
                       "the store holds no CA yet: run `mivault init` once more on the first "
                       "server (it stores its CA), then join");
            mv_buf_reset(&cert);
            CHECK(ca_create(&cert, &key));
            write_files = 1;
        }
        CHECK(store_begin(st));
        in_tx = 1;
        CHECK(meta_seal(st, dk, META_CA_KEY, "ca-key", key.p, key.len));
        CHECK(store_meta_set(st, META_CA_CERT, cert.p));
        CHECK(store_commit(st));
        in_tx = 0;
    } else {
        CHECK(rc);
    }
    if (write_files) { /* key first: a certificate on disk always has its key next to it */
        CHECK(write_durable(p->ca_key, key.p, key.len, 0600));
        CHECK(write_durable(p->ca_pem, cert.p, cert.len, 0644));
    }
    if (!mv_file_exists(p->server_pem) || !mv_file_exists(p->server_key))
        CHECK(ca_server_cert(p->dir, c->vault_suffix, c->public_host));
out:
    if (in_tx)
        store_rollback(st);
    mv_buf_free(&cert);
    mv_buf_free_secret(&key);
    mv_buf_free(&local);
    return rc;
}

/* admin.key and admin.json in this state dir, the key shared through the store (sealed). */
static mv_rc ensure_admin(const struct mv_paths *p, struct store *st, const unsigned char dk[32])
{
    mv_rc rc = MV_OK;
    mv_buf key;
    mv_buf_init(&key, STATE_PEM_MAX);
    rc = meta_unseal(st, dk, META_ADMIN_KEY, "admin-key", &key);
    if (rc == MV_OK) {
        if (!mv_file_exists(p->admin_key))
            CHECK(write_durable(p->admin_key, key.p, key.len, 0600));
    } else if (rc == MV_ERR_NOT_FOUND) {
        ENSURE_MSG(mv_file_exists(p->admin_key), MV_ERR_NOT_FOUND,
                   "the store holds no admin credential yet: run `mivault init` once more on "
                   "the first server, then join");
        CHECK(read_into(p->admin_key, &key));
        CHECK(meta_seal(st, dk, META_ADMIN_KEY, "admin-key", key.p, key.len));
    } else {
        CHECK(rc);
    }
    if (!mv_file_exists(p->admin_json)) {
        struct mv_tenant t;
        CHECK(state_tenant(st, &t));
        CHECK(write_admin_json(p, &t));
    }
out:
    mv_buf_free_secret(&key);
    return rc;
}

/* MIVAULT_MASTER_KEY set and not empty (state_master_key ignores it when empty). */
static int env_master_key(void)
{
    const char *env = getenv("MIVAULT_MASTER_KEY");
    return env && *env;
}

/* This init's master key: --master-key FILE, else MIVAULT_MASTER_KEY or STATE/master.key, else
 * none yet (*have = 0). */
static mv_rc init_master_key(const struct mv_paths *p, const char *file, unsigned char mk[32],
                             int *have)
{
    mv_rc rc = MV_OK;
    char *data = NULL;
    size_t len = 0;
    unsigned char mine[32];
    *have = 0;
    if (file) {
        ENSURE_MSG(!env_master_key(), MV_ERR_BAD_REQUEST,
                   "--master-key and MIVAULT_MASTER_KEY both name a master key: use one");
        rc = mv_read_file(file, 64, &data, &len);
        ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST, "cannot read --master-key %s", file);
        ENSURE_MSG(len == 32, MV_ERR_BAD_REQUEST,
                   "--master-key %s is not a master.key (32 bytes)", file);
        memcpy(mk, data, 32);
        if (mv_file_exists(p->master_key)) {
            CHECK(state_master_key(p, mine));
            int same = mv_ct_eq(mine, 32, mk, 32);
            OPENSSL_cleanse(mine, sizeof mine);
            ENSURE_MSG(same, MV_ERR_CONFLICT, "%s holds another master key than --master-key %s",
                       p->master_key, file);
        }
        *have = 1;
    } else if (env_master_key() || mv_file_exists(p->master_key)) {
        CHECK(state_master_key(p, mk));
        *have = 1;
    }
out:
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return rc;
}

mv_rc state_init(const struct mv_paths *p, const struct mv_config *cfg, const char *master_key_file,
                 enum state_init_outcome *outcome)
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    struct mv_config c;
    char db[PATH_MAX];
    unsigned char mk[32], dk[32];
    int have_mk = 0, joining = 0;
    mv_buf tid;
    mv_buf_init(&tid, 128);
    *outcome = STATE_EXISTING;
    CHECK(mv_mkdirs(p->dir, 0700));
    CHECK(mv_mkdirs(p->agents, 0700));
    if (mv_file_exists(p->config)) {
        CHECK(state_config_load(p, &c)); /* init never rewrites an existing config */
        /* nor moves an existing state to another store (`mivault store migrate` does) */
        ENSURE_MSG(!cfg->store[0] || strcmp(cfg->store, c.store) == 0, MV_ERR_CONFLICT,
                   "%s already uses another store; `mivault store migrate` moves it", p->dir);
    } else {
        c = *cfg;
    }
    CHECK(init_master_key(p, master_key_file, mk, &have_mk));
    CHECK(state_store_location(p, &c, db, sizeof db));
    CHECK(store_open(db, &st));
    rc = store_meta_get(st, "tenant_id", &tid);
    if (rc == MV_ERR_NOT_FOUND) {
        if (!have_mk)
            CHECK(mv_random(mk, sizeof mk));
        /* On disk before the data key it wraps is committed: a crash in between loses nothing. */
        if (!env_master_key() && !mv_file_exists(p->master_key))
            CHECK(write_durable(p->master_key, mk, sizeof mk, 0600));
        CHECK(init_tenant(p, st, mk));
        *outcome = STATE_CREATED;
    } else {
        CHECK(rc);
        /* The store belongs to an installation already: join it, or refuse and change nothing. */
        ENSURE_MSG(have_mk, MV_ERR_FORBIDDEN,
                   "the store %s already holds tenant %s: to join this installation, pass "
                   "--master-key FILE (a copy of the first server's master.key)",
                   db, tid.p);
        joining = !mv_file_exists(p->admin_json);
    }
    rc = unwrap_data_key(st, mk, dk);
    ENSURE_MSG(rc == MV_OK, MV_ERR_FORBIDDEN,
               "the master key does not unwrap the data key of the store %s: %s", db,
               master_key_file ? "--master-key must be a copy of the first server's master.key"
                               : "this state's master key belongs to another installation");
    if (master_key_file && !mv_file_exists(p->master_key))
        CHECK(write_durable(p->master_key, mk, sizeof mk, 0600));
    if (!mv_file_exists(p->config))
        CHECK(state_config_save(p, &c));
    CHECK(ensure_ca(p, &c, st, dk, !joining));
    CHECK(ensure_admin(p, st, dk));
    char sid[ST_ID];
    CHECK(state_server_id(p, 1, sid));
    if (!mv_file_exists(p->bundle))
        CHECK(write_bundle(p));
    if (joining)
        *outcome = STATE_JOINED;
out:
    OPENSSL_cleanse(mk, sizeof mk);
    OPENSSL_cleanse(dk, sizeof dk);
    mv_buf_free(&tid);
    store_close(st);
    return rc;
}

/* Every URL a client sees derives from the public URL (the load balancer's address), never from
 * the port this server listens on: behind a balancer the two differ. */
mv_rc state_server_url(const struct mv_config *c, char *out, size_t len)
{
    return mv_copy(out, len, c->public_url);
}

mv_rc state_issuer(const struct mv_config *c, const char *tid, char *out, size_t len)
{
    return mv_fmt(out, len, "%s/%s/", c->public_url, tid);
}

mv_rc state_vault_resource(const struct mv_config *c, char *out, size_t len)
{
    return mv_https_origin(c->vault_suffix, c->public_port, out, len);
}

mv_rc state_vault_url(const struct mv_config *c, const char *vault, char *out, size_t len)
{
    char host[MV_ADDR_HOST_MAX + MV_MAX_NAME + 1];
    mv_rc rc = mv_fmt(host, sizeof host, "%s.%s", vault, c->vault_suffix);
    return rc == MV_OK ? mv_https_origin(host, c->public_port, out, len) : rc;
}

mv_rc state_rg_scope(const struct mv_tenant *t, char *out, size_t len)
{
    return mv_fmt(out, len, "/subscriptions/%s/resourceGroups/%s", t->subscription_id, t->resource_group);
}
