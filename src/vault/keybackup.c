/* keybackup.c: backup and restore of a key with all its versions (POST /keys/{n}/backup,
 * POST /keys/restore), the design of backup.c for secrets.
 *
 * A backup is {"format":"mivault-key-backup","v":1,"name","versions":[{"version","key"
 * (base64url PKCS#8 DER),"jwk" (the stored public JWK text: kty, key_ops),"tags"?,"enabled",
 * "nbf","exp","created","updated","managed"}]} sealed with AES-256-GCM under the data key with
 * the AAD "key-backup:v1" and sent base64url: only this installation opens it, any change fails
 * the tag. The private key is in clear only inside the sealed document and in wiped buffers.
 * Restore takes a free name (neither live nor soft-deleted) in any vault of the installation and
 * adds every version, re-sealed under its new AAD, in one transaction. */
#include <openssl/crypto.h>
#include <string.h>

#include "common/b64.h"
#include "crypto/aead.h"
#include "vault/vault_internal.h"

#define KEY_BACKUP_FORMAT "mivault-key-backup"
#define KEY_BACKUP_AAD "key-backup:v1"
#define BACKUP_PAGE 100
#define BACKUP_MAX_PLAIN (VAULT_BACKUP_MAX_B64 / 4 * 3 - AEAD_OVERHEAD)

static const char BAD_BLOB[] = "Backup blob is invalid or corrupted";

static mv_rc write_version(const struct vault_ctx *c, mv_buf *out, const struct st_key *k)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *pkey = NULL;
    mv_buf der, b64;
    mv_buf_init(&der, 0);
    mv_buf_init(&b64, 16384);
    CHECK(vault_key_open(c->w->srv->data_key, k, &pkey));
    CHECK(vkey_to_der(pkey, &der));
    CHECK(b64url_encode(&b64, der.p, der.len));
    CHECK(mv_buf_addf(out, "{\"version\":\"%s\",\"key\":\"%s\",\"jwk\":", k->version, b64.p));
    CHECK(vault_json_escape(out, k->jwk_json, strlen(k->jwk_json)));
    if (k->tags_json)
        CHECK(mv_buf_addf(out, ",\"tags\":%s", k->tags_json));
    CHECK(mv_buf_addf(out,
                      ",\"enabled\":%s,\"nbf\":%lld,\"exp\":%lld,\"created\":%lld,\"updated\":%lld,"
                      "\"managed\":%s}",
                      k->enabled ? "true" : "false", (long long)k->nbf, (long long)k->exp,
                      (long long)k->created, (long long)k->updated, k->managed ? "true" : "false"));
out:
    EVP_PKEY_free(pkey);
    mv_buf_free_secret(&der);
    mv_buf_free_secret(&b64);
    return rc;
}

/* Every version of c->name into out, the latest last (restore adds them in array order). */
static mv_rc write_versions(const struct vault_ctx *c, mv_buf *out)
{
    mv_rc rc = MV_OK;
    struct st_key *rows = NULL, full, latest;
    size_t n = 0, total = 1;
    char after[MV_VERSION_LEN + 1] = "";
    memset(&full, 0, sizeof full);
    memset(&latest, 0, sizeof latest);
    CHECK(store_key_get(c->w->st, c->vault.name, c->name, NULL, &latest));
    CHECK(mv_buf_addf(out,
                      "{\"format\":\"" KEY_BACKUP_FORMAT "\",\"v\":1,\"name\":\"%s\",\"versions\":[",
                      latest.name));
    do {
        if (rows)
            st_keys_free(rows, n);
        rows = NULL;
        n = 0;
        CHECK(store_key_versions(c->w->st, c->vault.name, c->name, after[0] ? after : NULL,
                                 BACKUP_PAGE, &rows, &n));
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rows[i].version, latest.version) == 0)
                continue;
            ENSURE_MSG(total < VAULT_BACKUP_MAX_VERSIONS, MV_ERR_LIMIT, "too many versions");
            total++;
            st_key_clear(&full);
            CHECK(store_key_get(c->w->st, c->vault.name, c->name, rows[i].version, &full));
            CHECK(write_version(c, out, &full));
            CHECK(mv_buf_add(out, ",", 1));
        }
        if (n > 0)
            CHECK(mv_copy(after, sizeof after, rows[n - 1].version));
    } while (n == BACKUP_PAGE);
    CHECK(write_version(c, out, &latest));
    CHECK(mv_buf_adds(out, "]}"));
out:
    if (rows)
        st_keys_free(rows, n);
    st_key_clear(&full);
    st_key_clear(&latest);
    return rc;
}

void vault_op_key_backup(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    mv_buf plain;
    mv_buf_init(&plain, BACKUP_MAX_PLAIN);
    rc = write_versions(c, &plain);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_key_not_found(c, c->name, NULL);
        goto out;
    }
    if (rc == MV_ERR_LIMIT) {
        rc = MV_OK;
        vault_bad_parameter(c, "The key has too many versions to back up.");
        goto out;
    }
    CHECK(rc);
    CHECK(vault_backup_reply(c, KEY_BACKUP_AAD, plain.p, plain.len));
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    mv_buf_free_secret(&plain);
}

/* ---- restore ---- */

static int int_ok(const json_t *j) { return json_is_integer(j) && json_integer_value(j) >= 0; }

static int version_ok(const json_t *v)
{
    const json_t *ver = json_object_get(v, "version");
    const json_t *tags = json_object_get(v, "tags");
    return json_is_object(v) && json_is_string(ver) && json_string_length(ver) > 0 &&
           vault_version_ok(json_string_value(ver)) &&
           json_is_string(json_object_get(v, "key")) &&
           json_is_string(json_object_get(v, "jwk")) && (!tags || vault_tags_ok(tags)) &&
           json_is_boolean(json_object_get(v, "enabled")) &&
           json_is_boolean(json_object_get(v, "managed")) && int_ok(json_object_get(v, "nbf")) &&
           int_ok(json_object_get(v, "exp")) && int_ok(json_object_get(v, "created")) &&
           int_ok(json_object_get(v, "updated"));
}

static int backup_ok(const json_t *doc)
{
    const json_t *fmt = json_object_get(doc, "format");
    const json_t *name = json_object_get(doc, "name");
    const json_t *vers = json_object_get(doc, "versions");
    if (!json_is_object(doc) || !json_is_string(fmt) ||
        strcmp(json_string_value(fmt), KEY_BACKUP_FORMAT) != 0 ||
        json_integer_value(json_object_get(doc, "v")) != 1 || !json_is_string(name) ||
        !vault_name_ok(json_string_value(name)) || !json_is_array(vers) ||
        json_array_size(vers) == 0 || json_array_size(vers) > VAULT_BACKUP_MAX_VERSIONS)
        return 0;
    size_t i;
    const json_t *v;
    json_array_foreach(vers, i, v) if (!version_ok(v)) return 0;
    return 1;
}

mv_rc vault_key_backup_open(const unsigned char *key, const char *body, size_t len, json_t **out)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    json_t *req = NULL, *doc = NULL;
    mv_buf raw, plain;
    mv_buf_init(&raw, VAULT_BACKUP_MAX_B64 / 4 * 3 + 3);
    mv_buf_init(&plain, VAULT_BACKUP_MAX_B64);
    *out = NULL;
    ENSURE(body && len > 0 && vault_json_depth_ok(body, len, MV_MAX_JSON_DEPTH),
           MV_ERR_BAD_REQUEST);
    req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *val = json_object_get(req, "value");
    ENSURE(json_is_object(req) && json_is_string(val), MV_ERR_BAD_REQUEST);
    ENSURE(json_string_length(val) <= VAULT_BACKUP_MAX_B64, MV_ERR_BAD_REQUEST);
    CHECK(b64url_decode(&raw, json_string_value(val), json_string_length(val)));
    rc = aead_open(key, KEY_BACKUP_AAD, raw.p, raw.len, &plain);
    ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST, "key backup blob does not open");
    ENSURE(vault_json_depth_ok(plain.p, plain.len, MV_MAX_JSON_DEPTH), MV_ERR_BAD_REQUEST);
    doc = json_loadb(plain.p, plain.len, JSON_REJECT_DUPLICATES, &jerr);
    ENSURE(doc && backup_ok(doc), MV_ERR_BAD_REQUEST);
    *out = doc;
    doc = NULL;
out:
    json_decref(req);
    mv_buf_free(&raw);
    mv_buf_free_secret(&plain);
    if (doc)
        vault_json_wipe(doc);
    json_decref(doc);
    return rc;
}

/* One version of the backup as a row of (vault, name). */
static mv_rc add_version(struct vault_ctx *c, const char *name, const json_t *v)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    EVP_PKEY *pkey = NULL;
    json_t *jwk = NULL;
    struct st_key k;
    char version[MV_VERSION_LEN + 1];
    mv_buf der;
    memset(&k, 0, sizeof k);
    mv_buf_init(&der, 16384);
    const json_t *tags = json_object_get(v, "tags");
    char *tags_json = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
    ENSURE(!tags || tags_json, MV_ERR_INTERNAL);
    const char *key = json_string_value(json_object_get(v, "key"));
    ENSURE(b64url_decode(&der, key, strlen(key)) == MV_OK, MV_ERR_BAD_REQUEST);
    ENSURE(vkey_from_der(der.p, der.len, &pkey) == MV_OK, MV_ERR_BAD_REQUEST);
    jwk = json_loads(json_string_value(json_object_get(v, "jwk")), 0, &jerr);
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const json_t *ops = json_object_get(jwk, "key_ops");
    ENSURE(kty && json_is_array(ops), MV_ERR_BAD_REQUEST);
    CHECK(mv_copy(version, sizeof version, json_string_value(json_object_get(v, "version"))));
    mv_lower(version);
    struct vault_key_attrs a = {
        .enabled = json_is_true(json_object_get(v, "enabled")),
        .nbf = (int64_t)json_integer_value(json_object_get(v, "nbf")),
        .exp = (int64_t)json_integer_value(json_object_get(v, "exp")),
        .tags_json = tags_json,
        .managed = json_is_true(json_object_get(v, "managed")),
    };
    CHECK(vault_key_row_ops(c->w->srv->data_key, c->vault.name, name, version, pkey, kty, ops, &a,
                            0, &k));
    k.created = (int64_t)json_integer_value(json_object_get(v, "created"));
    k.updated = (int64_t)json_integer_value(json_object_get(v, "updated"));
    CHECK(store_key_add(c->w->st, &k));
out:
    free(tags_json);
    json_decref(jwk);
    EVP_PKEY_free(pkey);
    mv_buf_free_secret(&der);
    st_key_clear(&k);
    return rc;
}

static mv_rc restore_rows(struct vault_ctx *c, const json_t *doc, const char *name)
{
    mv_rc rc = MV_OK;
    struct st_key k;
    char msg[384];
    memset(&k, 0, sizeof k);
    rc = store_key_get(c->w->st, c->vault.name, name, NULL, &k);
    if (rc == MV_OK) {
        if (mv_fmt(msg, sizeof msg, "Key %s already exists in this vault.", name) != MV_OK)
            msg[0] = '\0';
        vault_error(c, 409, "Conflict", msg, NULL);
        rc = MV_ERR_CONFLICT;
        goto out;
    }
    ENSURE_MSG(rc == MV_ERR_NOT_FOUND, rc, "restore: lookup failed");
    st_key_clear(&k);
    rc = store_key_get_deleted(c->w->st, c->vault.name, name, &k);
    if (rc == MV_OK) {
        vault_key_conflict_deleted(c, name);
        rc = MV_ERR_CONFLICT;
        goto out;
    }
    ENSURE_MSG(rc == MV_ERR_NOT_FOUND, rc, "restore: deleted lookup failed");
    rc = MV_OK;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(doc, "versions"), i, v) CHECK(add_version(c, name, v));
out:
    st_key_clear(&k);
    return rc;
}

void vault_op_key_restore(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_key latest;
    int in_tx = 0;
    char name[MV_SECRET_MAX_NAME + 1];
    json_t *doc = NULL;
    memset(&latest, 0, sizeof latest);
    rc = vault_key_backup_open(c->w->srv->data_key, c->req->body.p, c->req->body.len, &doc);
    if (rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT) {
        vault_bad_parameter(c, BAD_BLOB);
        return;
    }
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    CHECK(mv_copy(name, sizeof name, json_string_value(json_object_get(doc, "name"))));
    CHECK(store_begin(c->w->st));
    in_tx = 1;
    rc = restore_rows(c, doc, name);
    if (rc == MV_ERR_BAD_REQUEST && !c->status) {
        vault_bad_parameter(c, BAD_BLOB);
        goto out;
    }
    CHECK(rc);
    CHECK(store_commit(c->w->st));
    in_tx = 0;
    CHECK(store_key_get(c->w->st, c->vault.name, name, NULL, &latest));
    vault_reply_key(c, &latest, VJ_ID_VERSION);
out:
    if (in_tx)
        store_rollback(c->w->st);
    if (rc != MV_OK && !c->status)
        vault_rc_error(c, rc);
    vault_json_wipe(doc);
    json_decref(doc);
    st_key_clear(&latest);
}
