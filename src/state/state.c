/* state.c: the state directory: paths, config.json, the master and data keys, and init.
 *
 * Invariant: the data key exists only wrapped (sealed with the master key) in the store's meta
 * table; the master key exists only in master.key (0600) or MIVAULT_MASTER_KEY. */
#include "state/state.h"

#include <jansson.h>
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

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static mv_rc join(char *out, const char *dir, const char *name)
{
    return mv_fmt(out, PATH_MAX, "%s/%s", dir, name);
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
    CHECK(join(p->master_key, p->dir, "master.key"));
    CHECK(join(p->ca_pem, p->dir, "ca.pem"));
    CHECK(join(p->ca_key, p->dir, "ca.key"));
    CHECK(join(p->server_pem, p->dir, "server.pem"));
    CHECK(join(p->server_key, p->dir, "server.key"));
    CHECK(join(p->admin_key, p->dir, "admin.key"));
    CHECK(join(p->admin_json, p->dir, "admin.json"));
    CHECK(join(p->agents, p->dir, "agents"));
    CHECK(join(p->audit_log, p->dir, "audit.log"));
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
    CHECK(get_str(o, "publicHost", c->public_host, sizeof c->public_host));
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
out:
    json_decref(o);
    return rc;
}

mv_rc state_config_save(const struct mv_paths *p, const struct mv_config *c)
{
    mv_rc rc = MV_OK;
    json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i}", "serverHost",
                          c->server_host, "serverPort", c->server_port, "publicHost", c->public_host,
                          "vaultSuffix", c->vault_suffix, "agentHost", c->agent_host, "agentPort",
                          c->agent_port, "tokenLifetime", c->token_lifetime, "threads", c->threads,
                          "throttleOps", c->throttle_ops, "throttleCreates", c->throttle_creates,
                          "imdsRateLimit", c->imds_rate_limit);
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    ENSURE(s != NULL, MV_ERR_INTERNAL);
    CHECK(mv_write_file(p->config, s, strlen(s), 0644));
out:
    free(s);
    json_decref(o);
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
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
            int hi = hexval(env[2 * i]), lo = hexval(env[2 * i + 1]);
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

mv_rc state_data_key(const struct mv_paths *p, struct store *st, unsigned char key[32])
{
    mv_rc rc = MV_OK;
    unsigned char master[32];
    mv_buf wrapped_b64, wrapped, dk;
    mv_buf_init(&wrapped_b64, 4096);
    mv_buf_init(&wrapped, 4096);
    mv_buf_init(&dk, 64);
    CHECK(state_master_key(p, master));
    CHECK(store_meta_get(st, "data_key", &wrapped_b64));
    CHECK(b64_decode(&wrapped, wrapped_b64.p, wrapped_b64.len));
    rc = aead_open(master, "data-key", wrapped.p, wrapped.len, &dk);
    ENSURE_MSG(rc == MV_OK && dk.len == 32, MV_ERR_INTERNAL,
               "cannot unwrap the data key: wrong master key?");
    memcpy(key, dk.p, 32);
out:
    OPENSSL_cleanse(master, sizeof master);
    mv_buf_free(&wrapped_b64);
    mv_buf_free(&wrapped);
    mv_buf_free_secret(&dk);
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

/* New tenant: ids, the wrapped data key, the admin principal with Owner at "/". */
static mv_rc init_tenant(const struct mv_paths *p, struct store *st)
{
    mv_rc rc = MV_OK;
    unsigned char master[32], dk[32];
    mv_buf sealed, sealed_b64, priv, pub;
    EVP_PKEY *admin = NULL;
    json_t *aj = NULL;
    char *ajs = NULL;
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

    CHECK(state_master_key(p, master));
    CHECK(mv_random(dk, sizeof dk));
    CHECK(aead_seal(master, "data-key", dk, sizeof dk, &sealed));
    CHECK(b64_encode(&sealed_b64, sealed.p, sealed.len));

    CHECK(keys_gen_ec_p256(&admin));
    CHECK(keys_private_pem(admin, &priv));
    CHECK(keys_public_pem(admin, &pub));
    CHECK(mv_write_file(p->admin_key, priv.p, priv.len, 0600));
    aj = json_pack("{s:s, s:s, s:s, s:s, s:s}", "principalId", t.admin_principal_id, "clientId",
                   t.admin_client_id, "tenantId", t.tenant_id, "subscriptionId",
                   t.subscription_id, "resourceGroup", t.resource_group);
    ajs = aj ? json_dumps(aj, JSON_INDENT(2)) : NULL;
    ENSURE(ajs != NULL, MV_ERR_INTERNAL);
    CHECK(mv_write_file(p->admin_json, ajs, strlen(ajs), 0600));

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
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(dk, sizeof dk);
    EVP_PKEY_free(admin);
    mv_buf_free(&sealed);
    mv_buf_free(&sealed_b64);
    mv_buf_free_secret(&priv);
    mv_buf_free(&pub);
    free(ajs);
    json_decref(aj);
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
    CHECK(mv_write_file(p->bundle, b.p, b.len, 0644));
out:
    free(sys);
    free(ca);
    mv_buf_free(&b);
    return rc;
}

mv_rc state_init(const struct mv_paths *p, const struct mv_config *cfg, int *created)
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    mv_buf tid;
    mv_buf_init(&tid, 128);
    *created = 0;
    CHECK(mv_mkdirs(p->dir, 0700));
    CHECK(mv_mkdirs(p->agents, 0700));
    if (!mv_file_exists(p->config))
        CHECK(state_config_save(p, cfg));
    if (!getenv("MIVAULT_MASTER_KEY") && !mv_file_exists(p->master_key)) {
        unsigned char mk[32];
        CHECK(mv_random(mk, sizeof mk));
        rc = mv_write_file(p->master_key, mk, sizeof mk, 0600);
        OPENSSL_cleanse(mk, sizeof mk);
        CHECK(rc);
    }
    CHECK(store_open(p->db, &st));
    rc = store_meta_get(st, "tenant_id", &tid);
    if (rc == MV_ERR_NOT_FOUND) {
        CHECK(init_tenant(p, st));
        *created = 1;
    } else {
        CHECK(rc);
    }
    if (!mv_file_exists(p->ca_pem) || !mv_file_exists(p->server_pem)) {
        struct mv_config c;
        CHECK(state_config_load(p, &c));
        CHECK(ca_init(p->dir, c.vault_suffix));
    }
    if (!mv_file_exists(p->bundle))
        CHECK(write_bundle(p));
out:
    mv_buf_free(&tid);
    store_close(st);
    return rc;
}

mv_rc state_server_url(const struct mv_config *c, char *out, size_t len)
{
    return mv_fmt(out, len, "https://%s:%d", c->public_host, c->server_port);
}

mv_rc state_issuer(const struct mv_config *c, const char *tid, char *out, size_t len)
{
    return mv_fmt(out, len, "https://%s:%d/%s/", c->public_host, c->server_port, tid);
}

mv_rc state_vault_resource(const struct mv_config *c, char *out, size_t len)
{
    if (c->server_port == 443)
        return mv_fmt(out, len, "https://%s", c->vault_suffix);
    return mv_fmt(out, len, "https://%s:%d", c->vault_suffix, c->server_port);
}

mv_rc state_vault_url(const struct mv_config *c, const char *vault, char *out, size_t len)
{
    if (c->server_port == 443)
        return mv_fmt(out, len, "https://%s.%s", vault, c->vault_suffix);
    return mv_fmt(out, len, "https://%s.%s:%d", vault, c->vault_suffix, c->server_port);
}

mv_rc state_rg_scope(const struct mv_tenant *t, char *out, size_t len)
{
    return mv_fmt(out, len, "/subscriptions/%s/resourceGroups/%s", t->subscription_id, t->resource_group);
}
