/* backup.c: backup and restore of a secret with all its versions (reference §4.2).
 *
 * A backup is a JSON document {"format":"mivault-secret-backup","v":1,"name",...,"versions":
 * [{"version","value","contentType"?,"tags"?,"enabled","nbf","exp","created","updated"}]}
 * (values in clear), sealed with AES-256-GCM under the data key with the AAD "secret-backup:v1"
 * and sent as base64url without padding (reference §4.1 "Binary fields"). Only this
 * installation's data key opens it; any change to the blob fails the tag.
 *
 * Restore accepts the blob into any vault of the installation whose name is free (neither
 * live nor soft-deleted), re-seals every version under its new AAD and adds them all in one
 * store transaction: all versions or none. The plaintext document is wiped in both
 * directions. */
#include <openssl/crypto.h>
#include <string.h>

#include "common/b64.h"
#include "crypto/aead.h"
#include "vault/vault_internal.h"

#define BACKUP_FORMAT "mivault-secret-backup"
#define BACKUP_PAGE 100
/* Largest plaintext whose sealed base64url form still fits VAULT_BACKUP_MAX_B64. */
#define BACKUP_MAX_PLAIN (VAULT_BACKUP_MAX_B64 / 4 * 3 - AEAD_OVERHEAD)

static const char BAD_BLOB[] = "Backup blob is invalid or corrupted";

static mv_rc write_version(const struct vault_ctx *c, mv_buf *out, const struct st_secret *s)
{
    mv_rc rc = MV_OK;
    mv_buf pt;
    mv_buf_init(&pt, 0);
    CHECK(vault_open_value(c, s, &pt));
    CHECK(mv_buf_addf(out, "{\"version\":\"%s\",\"value\":", s->version));
    CHECK(vault_json_escape(out, pt.p ? pt.p : "", pt.len));
    if (s->content_type) {
        CHECK(mv_buf_adds(out, ",\"contentType\":"));
        CHECK(vault_json_escape(out, s->content_type, strlen(s->content_type)));
    }
    if (s->tags_json) /* JSON object text written by body.c */
        CHECK(mv_buf_addf(out, ",\"tags\":%s", s->tags_json));
    CHECK(mv_buf_addf(out,
                      ",\"enabled\":%s,\"nbf\":%lld,\"exp\":%lld,\"created\":%lld,\"updated\":%lld}",
                      s->enabled ? "true" : "false", (long long)s->nbf, (long long)s->exp,
                      (long long)s->created, (long long)s->updated));
out:
    mv_buf_free_secret(&pt);
    return rc;
}

/* Appends every version of c->name to out; NOT_FOUND if the secret has none. The versions go
 * in listing order except that the latest one goes last: a secret's latest version is its
 * newest row (created, then insertion order, st_secrets.c), restore adds the rows in array
 * order, and versions set within the same second list by version id, not by age. */
static mv_rc write_versions(const struct vault_ctx *c, mv_buf *out)
{
    mv_rc rc = MV_OK;
    struct st_secret *rows = NULL, full, latest;
    size_t n = 0, total = 1;
    char after[MV_VERSION_LEN + 1] = "";
    memset(&full, 0, sizeof full);
    memset(&latest, 0, sizeof latest);
    CHECK(store_secret_get(c->w->st, c->vault.name, c->name, NULL, &latest));
    CHECK(mv_buf_addf(out, "{\"format\":\"" BACKUP_FORMAT "\",\"v\":1,\"name\":\"%s\",\"versions\":[",
                      latest.name));
    do {
        if (rows)
            st_secrets_free(rows, n);
        rows = NULL;
        n = 0;
        CHECK(store_secret_versions(c->w->st, c->vault.name, c->name, after[0] ? after : NULL,
                                    BACKUP_PAGE, &rows, &n));
        for (size_t i = 0; i < n; i++) {
            if (strcmp(rows[i].version, latest.version) == 0)
                continue;
            ENSURE_MSG(total < VAULT_BACKUP_MAX_VERSIONS, MV_ERR_LIMIT, "too many versions");
            total++;
            const struct st_secret *s = &rows[i];
            if (s->sealed.len == 0) { /* the store may list versions without their values */
                st_secret_clear(&full);
                CHECK(store_secret_get(c->w->st, c->vault.name, c->name, rows[i].version, &full));
                s = &full;
            }
            CHECK(write_version(c, out, s));
            CHECK(mv_buf_add(out, ",", 1));
        }
        if (n > 0)
            CHECK(mv_copy(after, sizeof after, rows[n - 1].version));
    } while (n == BACKUP_PAGE);
    CHECK(write_version(c, out, &latest));
    CHECK(mv_buf_adds(out, "]}"));
out:
    if (rows)
        st_secrets_free(rows, n);
    st_secret_clear(&full);
    st_secret_clear(&latest);
    return rc;
}

mv_rc vault_backup_reply(struct vault_ctx *c, const char *aad, const void *plain, size_t len)
{
    mv_rc rc = MV_OK;
    mv_buf sealed, b64;
    mv_buf_init(&sealed, len + AEAD_OVERHEAD);
    mv_buf_init(&b64, VAULT_BACKUP_MAX_B64);
    CHECK(aead_seal(c->w->srv->data_key, aad, plain, len, &sealed));
    CHECK(b64url_encode(&b64, sealed.p, sealed.len));
    json_t *j = json_pack("{s:s}", "value", b64.p);
    ENSURE(j != NULL, MV_ERR_INTERNAL);
    vault_reply_json(c, 200, j);
out:
    mv_buf_free(&sealed);
    mv_buf_free(&b64);
    return rc;
}

void vault_op_backup(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    mv_buf plain;
    mv_buf_init(&plain, BACKUP_MAX_PLAIN);
    rc = write_versions(c, &plain);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_secret_not_found(c, c->name, NULL);
        goto out;
    }
    if (rc == MV_ERR_LIMIT) {
        rc = MV_OK;
        vault_bad_parameter(c, "The secret has too many or too large versions to back up.");
        goto out;
    }
    CHECK(rc);
    CHECK(vault_backup_reply(c, VAULT_BACKUP_AAD, plain.p, plain.len));
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    mv_buf_free_secret(&plain);
}

/* ---- restore ---- */

static int int_ok(const json_t *j) { return json_is_integer(j) && json_integer_value(j) >= 0; }

/* Checks one version object of an opened backup. */
static int version_ok(const json_t *v)
{
    const json_t *ver = json_object_get(v, "version");
    const json_t *val = json_object_get(v, "value");
    const json_t *ct = json_object_get(v, "contentType");
    const json_t *tags = json_object_get(v, "tags");
    return json_is_object(v) && json_is_string(ver) && json_string_length(ver) > 0 &&
           vault_version_ok(json_string_value(ver)) && json_is_string(val) &&
           json_string_length(val) <= MV_SECRET_MAX_VALUE_BYTES &&
           (!ct || (json_is_string(ct) && strlen(json_string_value(ct)) == json_string_length(ct))) &&
           (!tags || vault_tags_ok(tags)) && json_is_boolean(json_object_get(v, "enabled")) &&
           int_ok(json_object_get(v, "nbf")) && int_ok(json_object_get(v, "exp")) &&
           int_ok(json_object_get(v, "created")) && int_ok(json_object_get(v, "updated"));
}

static int backup_ok(const json_t *doc)
{
    const json_t *fmt = json_object_get(doc, "format");
    const json_t *name = json_object_get(doc, "name");
    const json_t *vers = json_object_get(doc, "versions");
    if (!json_is_object(doc) || !json_is_string(fmt) ||
        strcmp(json_string_value(fmt), BACKUP_FORMAT) != 0 ||
        json_integer_value(json_object_get(doc, "v")) != 1 || !json_is_string(name) ||
        !vault_name_ok(json_string_value(name)) || !json_is_array(vers) ||
        json_array_size(vers) == 0 || json_array_size(vers) > VAULT_BACKUP_MAX_VERSIONS)
        return 0;
    size_t i;
    const json_t *v;
    json_array_foreach(vers, i, v) if (!version_ok(v)) return 0;
    return 1;
}

mv_rc vault_backup_open(const unsigned char *key, const char *body, size_t len, json_t **out)
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
    rc = aead_open(key, VAULT_BACKUP_AAD, raw.p, raw.len, &plain);
    ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST, "backup blob does not open");
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

/* The opened backup document, or NULL after replying 400. */
static json_t *open_blob(struct vault_ctx *c)
{
    json_t *doc = NULL;
    mv_rc rc = vault_backup_open(c->w->srv->data_key, c->req->body.p, c->req->body.len, &doc);
    if (rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT)
        vault_bad_parameter(c, BAD_BLOB);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    return doc;
}

static char *dup_or_null(const json_t *j)
{
    return json_is_string(j) ? strdup(json_string_value(j)) : NULL;
}

/* Adds one version of the backup as a row of (vault, name). */
static mv_rc add_version(struct vault_ctx *c, const char *name, const json_t *v)
{
    mv_rc rc = MV_OK;
    const json_t *val = json_object_get(v, "value");
    const json_t *ct = json_object_get(v, "contentType");
    const json_t *tags = json_object_get(v, "tags");
    struct st_secret s;
    memset(&s, 0, sizeof s);
    mv_buf_init(&s.sealed, MV_SECRET_MAX_VALUE_BYTES + AEAD_OVERHEAD);
    CHECK(mv_copy(s.vault, sizeof s.vault, c->vault.name));
    CHECK(mv_copy(s.name, sizeof s.name, name));
    CHECK(mv_copy(s.version, sizeof s.version, json_string_value(json_object_get(v, "version"))));
    mv_lower(s.version);
    CHECK(vault_seal_value(c, s.name, s.version, json_string_value(val), json_string_length(val),
                           &s.sealed));
    s.content_type = dup_or_null(ct);
    s.tags_json = tags ? json_dumps(tags, JSON_COMPACT) : NULL;
    ENSURE((!ct || s.content_type) && (!tags || s.tags_json), MV_ERR_INTERNAL);
    s.enabled = json_is_true(json_object_get(v, "enabled"));
    s.nbf = (int64_t)json_integer_value(json_object_get(v, "nbf"));
    s.exp = (int64_t)json_integer_value(json_object_get(v, "exp"));
    s.created = (int64_t)json_integer_value(json_object_get(v, "created"));
    s.updated = (int64_t)json_integer_value(json_object_get(v, "updated"));
    CHECK(store_secret_add(c->w->st, &s));
out:
    st_secret_clear(&s);
    return rc;
}

/* Inside the transaction: refuses a name in use, then adds every version. */
static mv_rc restore_rows(struct vault_ctx *c, const json_t *doc, const char *name)
{
    mv_rc rc = MV_OK;
    struct st_secret s;
    char msg[384];
    memset(&s, 0, sizeof s);
    rc = store_secret_get(c->w->st, c->vault.name, name, NULL, &s);
    if (rc == MV_OK) {
        if (mv_fmt(msg, sizeof msg, "Secret %s already exists in this vault.", name) != MV_OK)
            msg[0] = '\0';
        vault_error(c, 409, "Conflict", msg, NULL);
        rc = MV_ERR_CONFLICT;
        goto out;
    }
    ENSURE_MSG(rc == MV_ERR_NOT_FOUND, rc, "restore: lookup failed");
    st_secret_clear(&s);
    rc = store_secret_get_deleted(c->w->st, c->vault.name, name, &s);
    if (rc == MV_OK) {
        if (mv_fmt(msg, sizeof msg,
                   "Secret %s is currently in a deleted but recoverable state, and its name "
                   "cannot be reused; in this state, the secret can only be recovered or purged.",
                   name) != MV_OK)
            msg[0] = '\0';
        vault_error(c, 409, "Conflict", msg, "ObjectIsDeletedButRecoverable");
        rc = MV_ERR_CONFLICT;
        goto out;
    }
    ENSURE_MSG(rc == MV_ERR_NOT_FOUND, rc, "restore: deleted lookup failed");
    rc = MV_OK;
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(doc, "versions"), i, v) CHECK(add_version(c, name, v));
out:
    st_secret_clear(&s);
    return rc;
}

void vault_op_restore(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_secret latest;
    int in_tx = 0;
    char name[MV_SECRET_MAX_NAME + 1];
    memset(&latest, 0, sizeof latest);
    json_t *doc = open_blob(c);
    if (!doc)
        return;
    CHECK(mv_copy(name, sizeof name, json_string_value(json_object_get(doc, "name"))));
    CHECK(store_begin(c->w->st));
    in_tx = 1;
    CHECK(restore_rows(c, doc, name));
    CHECK(store_commit(c->w->st));
    in_tx = 0;
    CHECK(store_secret_get(c->w->st, c->vault.name, name, NULL, &latest));
    vault_reply_secret(c, &latest, VJ_ID_VERSION);
out:
    if (in_tx)
        store_rollback(c->w->st);
    if (rc != MV_OK && !c->status)
        vault_rc_error(c, rc);
    vault_json_wipe(doc);
    json_decref(doc);
    st_secret_clear(&latest);
}
