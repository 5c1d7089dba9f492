/* keys.c: the Key Vault keys API (docs/keys.md): create, import, get, update, list, versions,
 * delete and the deleted-keys view, recover, purge; and the rows other parts of the vault add
 * (keys.h: a certificate's managed key).
 *
 * Invariants: a key's private half exists in clear only in an EVP_PKEY of one request or in a
 * DER buffer wiped after sealing; replies carry the public JWK only (kty, key_ops, n/e or
 * crv/x/y: reference pitfall 4); stored key_ops are the returned key_ops (pitfall 3); names
 * are looked up case-insensitively and replies use the stored spelling. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "common/util.h"
#include "crypto/aead.h"
#include "http/offload.h"
#include "vault/keys.h"
#include "vault/vault_internal.h"

const char *const VAULT_KEY_OPS_RSA[] = {"encrypt", "decrypt", "sign", "verify", "wrapKey",
                                         "unwrapKey", NULL};
const char *const VAULT_KEY_OPS_EC[] = {"sign", "verify", NULL};
static const char *const ALL_OPS[] = {"encrypt", "decrypt", "sign",   "verify",
                                      "wrapKey", "unwrapKey", "import", "export", NULL};

static int in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return 1;
    return 0;
}

/* ---- rows ---- */

static mv_rc key_aad(const char *vault, const char *name, const char *version, char *out,
                     size_t len)
{
    mv_rc rc = vault_cat(out, len, "key:", vault, "/", name, "/", version, (char *)NULL);
    if (rc == MV_OK)
        mv_lower(out);
    return rc;
}

mv_rc vault_key_open(const unsigned char *data_key, const struct st_key *k, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    char aad[MV_VAULT_NAME_MAX + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    mv_buf der;
    mv_buf_init(&der, k->sealed.len);
    *out = NULL;
    CHECK(key_aad(k->vault, k->name, k->version, aad, sizeof aad));
    CHECK(aead_open(data_key, aad, k->sealed.p, k->sealed.len, &der));
    CHECK(vkey_from_der(der.p, der.len, out));
out:
    mv_buf_free_secret(&der);
    return rc;
}

static mv_rc ops_array(EVP_PKEY *pkey, const char *const *key_ops, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *a = json_array();
    ENSURE(a != NULL, MV_ERR_INTERNAL);
    if (!key_ops)
        key_ops = vkey_is_rsa(pkey) ? VAULT_KEY_OPS_RSA : VAULT_KEY_OPS_EC;
    for (; *key_ops; key_ops++) {
        ENSURE(in_list(ALL_OPS, *key_ops), MV_ERR_BAD_REQUEST);
        ENSURE(json_array_append_new(a, json_string(*key_ops)) == 0, MV_ERR_INTERNAL);
    }
    *out = a;
    a = NULL;
out:
    json_decref(a);
    return rc;
}

static mv_rc row_with_ops(const unsigned char *data_key, const char *vault, const char *name,
                          const char *version, EVP_PKEY *pkey, const char *kty,
                          const json_t *ops, const struct vault_key_attrs *a, int64_t now,
                          struct st_key *out)
{
    mv_rc rc = MV_OK;
    char aad[MV_VAULT_NAME_MAX + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    json_t *jwk = NULL;
    mv_buf der;
    mv_buf_init(&der, 0);
    memset(out, 0, sizeof *out);
    CHECK(mv_copy(out->vault, sizeof out->vault, vault));
    CHECK(mv_copy(out->name, sizeof out->name, name));
    CHECK(mv_copy(out->version, sizeof out->version, version));
    if (!kty)
        kty = vkey_is_rsa(pkey) ? "RSA" : "EC";
    CHECK(vkey_public_jwk(pkey, kty, ops, &jwk));
    out->jwk_json = json_dumps(jwk, JSON_COMPACT);
    ENSURE(out->jwk_json != NULL, MV_ERR_INTERNAL);
    CHECK(vkey_to_der(pkey, &der));
    CHECK(key_aad(vault, name, version, aad, sizeof aad));
    mv_buf_init(&out->sealed, der.len + AEAD_OVERHEAD);
    CHECK(aead_seal(data_key, aad, der.p, der.len, &out->sealed));
    if (a && a->tags_json)
        ENSURE((out->tags_json = strdup(a->tags_json)) != NULL, MV_ERR_INTERNAL);
    out->enabled = a ? a->enabled : 1;
    out->nbf = a ? a->nbf : 0;
    out->exp = a ? a->exp : 0;
    out->managed = a ? a->managed : 0;
    out->created = out->updated = now;
out:
    json_decref(jwk);
    mv_buf_free_secret(&der);
    if (rc != MV_OK)
        st_key_clear(out);
    return rc;
}

mv_rc vault_key_row_ops(const unsigned char *data_key, const char *vault, const char *name,
                        const char *version, EVP_PKEY *pkey, const char *kty, const json_t *ops,
                        const struct vault_key_attrs *a, int64_t now, struct st_key *out)
{
    return row_with_ops(data_key, vault, name, version, pkey, kty, ops, a, now, out);
}

mv_rc vault_key_row(const unsigned char *data_key, const char *vault, const char *name,
                    const char *version, EVP_PKEY *pkey, const char *kty,
                    const char *const *key_ops, const struct vault_key_attrs *a, int64_t now,
                    struct st_key *out)
{
    mv_rc rc = MV_OK;
    json_t *ops = NULL;
    memset(out, 0, sizeof *out);
    CHECK(ops_array(pkey, key_ops, &ops));
    CHECK(row_with_ops(data_key, vault, name, version, pkey, kty, ops, a, now, out));
out:
    json_decref(ops);
    return rc;
}

mv_rc vault_key_put_managed(struct store *st, const unsigned char *data_key, const char *vault,
                            const char *name, const char *version, EVP_PKEY *pkey,
                            const char *const *key_ops, const struct vault_key_attrs *a,
                            int64_t now)
{
    mv_rc rc = MV_OK;
    struct st_key k;
    struct vault_key_attrs m = a ? *a : (struct vault_key_attrs){.enabled = 1};
    m.managed = 1;
    CHECK(vault_key_row(data_key, vault, name, version, pkey, NULL, key_ops, &m, now, &k));
    CHECK(store_key_add(st, &k));
out:
    st_key_clear(&k);
    return rc;
}

/* ---- JSON shapes ---- */

static mv_rc set_new(json_t *obj, const char *key, json_t *val)
{
    if (!val || json_object_set_new(obj, key, val) != 0) {
        mv_fail(MV_ERR_INTERNAL, "json: out of memory");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

mv_rc vault_key_json(const struct st_key *k, const struct vault_view *v, unsigned flags,
                     json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *o = json_object(), *a = json_object(), *jwk = NULL;
    json_error_t jerr;
    mv_buf id;
    mv_buf_init(&id, MV_MAX_URL);
    ENSURE(o && a, MV_ERR_INTERNAL);
    if ((flags & VJ_DELETED) && v->days > 0) {
        CHECK(mv_buf_addf(&id, "%s/deletedkeys/%s", v->url, k->name));
        CHECK(set_new(o, "recoveryId", json_string(id.p)));
        CHECK(set_new(o, "deletedDate", json_integer(k->deleted)));
        CHECK(set_new(o, "scheduledPurgeDate", json_integer(k->purge_at)));
        mv_buf_reset(&id);
    }
    CHECK(mv_buf_addf(&id, "%s/keys/%s", v->url, k->name));
    if (flags & VJ_ID_VERSION)
        CHECK(mv_buf_addf(&id, "/%s", k->version));
    if (flags & VJ_ITEM) {
        CHECK(set_new(o, "kid", json_string(id.p)));
    } else {
        jwk = json_loads(k->jwk_json ? k->jwk_json : "", 0, &jerr);
        ENSURE_MSG(json_is_object(jwk), MV_ERR_INTERNAL, "vault: stored JWK of key %s unreadable",
                   k->name);
        CHECK(set_new(jwk, "kid", json_string(id.p)));
        rc = set_new(o, "key", jwk);
        jwk = NULL;
        CHECK(rc);
    }
    CHECK(set_new(a, "enabled", json_boolean(k->enabled)));
    if (k->nbf)
        CHECK(set_new(a, "nbf", json_integer(k->nbf)));
    if (k->exp)
        CHECK(set_new(a, "exp", json_integer(k->exp)));
    CHECK(set_new(a, "created", json_integer(k->created)));
    CHECK(set_new(a, "updated", json_integer(k->updated)));
    CHECK(set_new(a, "recoveryLevel",
                  json_string(vault_recovery_level(v->days, v->purge_protection))));
    if (v->days > 0)
        CHECK(set_new(a, "recoverableDays", json_integer(v->days)));
    CHECK(set_new(a, "exportable", json_false()));
    rc = set_new(o, "attributes", a);
    a = NULL;
    CHECK(rc);
    if (k->tags_json) {
        json_t *tags = json_loads(k->tags_json, 0, &jerr);
        if (json_is_object(tags))
            CHECK(set_new(o, "tags", tags));
        else
            json_decref(tags);
    }
    if (k->managed)
        CHECK(set_new(o, "managed", json_true()));
    *out = o;
    o = NULL;
out:
    json_decref(o);
    json_decref(a);
    json_decref(jwk);
    mv_buf_free(&id);
    return rc;
}

void vault_key_not_found(struct vault_ctx *c, const char *name, const char *version)
{
    char msg[512];
    const char *sep = version && *version ? "/" : "";
    /* Wording as observed (reference §3, "Key / version not found"). */
    if (mv_fmt(msg, sizeof msg,
               "A key with (name/id) %s%s%s was not found in this key vault. If you recently "
               "deleted this key you may be able to recover it using the correct recovery "
               "command. For help resolving this issue, please see "
               "https://go.microsoft.com/fwlink/?linkid=2125182",
               name, sep, sep[0] ? version : "") != MV_OK)
        msg[0] = '\0';
    vault_error(c, 404, "KeyNotFound", msg, NULL);
}

void vault_reply_key(struct vault_ctx *c, const struct st_key *k, unsigned flags)
{
    struct vault_view v = vault_view_of(c);
    json_t *j = NULL;
    mv_rc rc = vault_key_json(k, &v, flags, &j);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_json(c, 200, j);
}

void vault_key_conflict_deleted(struct vault_ctx *c, const char *name)
{
    char msg[384];
    if (mv_fmt(msg, sizeof msg,
               "Key %s is currently in a deleted but recoverable state, and its name cannot be "
               "reused; in this state, the key can only be recovered or purged.",
               name) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 409, "Conflict", msg, "ObjectIsDeletedButRecoverable");
}

/* ---- request bodies ---- */

void vault_key_input_free(struct vault_key_input *in)
{
    if (in->root) {
        vault_json_wipe(in->root);
        json_decref(in->root);
    }
    free(in->tags_json);
    memset(in, 0, sizeof *in);
}

static int time_ok(const json_t *t, int64_t *out)
{
    if (json_is_null(t))
        return *out = 0, 1;
    if (!json_is_integer(t) || json_integer_value(t) < 0)
        return 0;
    *out = (int64_t)json_integer_value(t);
    return 1;
}

mv_rc vault_parse_key_body(const char *body, size_t len, struct vault_key_input *in,
                           const char **why)
{
    json_error_t jerr;
    memset(in, 0, sizeof *in);
    *why = "The request body is not a valid JSON object.";
    if (!body || len == 0 || !vault_json_depth_ok(body, len, MV_MAX_JSON_DEPTH))
        return MV_ERR_BAD_REQUEST;
    in->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(in->root))
        return MV_ERR_BAD_REQUEST;
    json_t *v = json_object_get(in->root, "kty");
    if (v && !json_is_null(v)) {
        *why = "The value of 'kty' is invalid.";
        if (!(in->kty = json_string_value(v)))
            return MV_ERR_BAD_REQUEST;
    }
    v = json_object_get(in->root, "crv");
    if (v && !json_is_null(v)) {
        *why = "The value of 'crv' is invalid.";
        if (!(in->crv = json_string_value(v)))
            return MV_ERR_BAD_REQUEST;
    }
    v = json_object_get(in->root, "key_size");
    if (v && !json_is_null(v)) {
        *why = "The value of 'key_size' is invalid.";
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 65536)
            return MV_ERR_BAD_REQUEST;
        in->key_size = (int)json_integer_value(v);
    }
    v = json_object_get(in->root, "key_ops");
    if (v && !json_is_null(v)) {
        size_t i;
        json_t *op;
        *why = "The value of 'key_ops' is invalid: supported values are encrypt, decrypt, sign, "
               "verify, wrapKey, unwrapKey, import, export.";
        if (!json_is_array(v) || json_array_size(v) > 8)
            return MV_ERR_BAD_REQUEST;
        json_array_foreach(v, i, op) {
            if (!json_is_string(op) || !in_list(ALL_OPS, json_string_value(op)))
                return MV_ERR_BAD_REQUEST;
        }
        in->key_ops = v;
    }
    v = json_object_get(in->root, "key");
    if (v && !json_is_null(v)) {
        *why = "The value of 'key' must be a JSON web key.";
        if (!json_is_object(v))
            return MV_ERR_BAD_REQUEST;
        in->key = v;
    }
    v = json_object_get(in->root, "tags");
    if (v && !json_is_null(v)) {
        *why = "Tags must be an object of at most 15 string values of at most 256 characters.";
        if (!json_is_object(v) || !vault_tags_ok(v))
            return MV_ERR_BAD_REQUEST;
        in->tags_json = json_dumps(v, JSON_COMPACT);
        if (!in->tags_json)
            return MV_ERR_INTERNAL;
        in->has_tags = 1;
    }
    v = json_object_get(in->root, "attributes");
    if (v && !json_is_null(v)) {
        *why = "The value of 'attributes' is invalid.";
        if (!json_is_object(v))
            return MV_ERR_BAD_REQUEST;
        json_t *e = json_object_get(v, "enabled");
        if (e && !json_is_null(e)) {
            if (!json_is_boolean(e))
                return MV_ERR_BAD_REQUEST;
            in->has_enabled = 1;
            in->enabled = json_is_true(e);
        }
        json_t *t = json_object_get(v, "nbf");
        if (t) {
            if (!time_ok(t, &in->nbf))
                return MV_ERR_BAD_REQUEST;
            in->has_nbf = 1;
        }
        t = json_object_get(v, "exp");
        if (t) {
            if (!time_ok(t, &in->exp))
                return MV_ERR_BAD_REQUEST;
            in->has_exp = 1;
        }
        json_t *x = json_object_get(v, "exportable");
        if (json_is_true(x)) {
            *why = "Exportable keys require a release policy, which this vault does not support.";
            return MV_ERR_BAD_REQUEST;
        }
    }
    return MV_OK;
}

/* ---- create, import ---- */

/* Adds the row; replies with its bundle, or the error. */
static void add_and_reply(struct vault_ctx *c, struct st_key *k)
{
    struct st_key prev;
    mv_rc rc = store_key_get(c->w->st, k->vault, k->name, NULL, &prev);
    if (rc == MV_OK && vault_managed_key(c, prev.managed)) { /* a certificate's key takes versions from it only */
        vault_managed_forbidden(c, "Key", prev.name);
        st_key_clear(&prev);
        return;
    }
    if (rc == MV_OK) /* a new version keeps the first spelling of the name */
        rc = mv_copy(k->name, sizeof k->name, prev.name);
    else if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    st_key_clear(&prev);
    if (rc == MV_OK)
        rc = store_key_add(c->w->st, k);
    if (rc == MV_ERR_CONFLICT)
        vault_key_conflict_deleted(c, c->name);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_key(c, k, VJ_ID_VERSION);
}

/* After the key material exists (imported or generated): its operations, the row, the write
 * and the reply (errors as replies too). */
static void create_finish(struct vault_ctx *c, const struct vault_key_input *in, int rsa,
                          EVP_PKEY *pkey, const char *kty)
{
    mv_rc rc = MV_OK;
    struct st_key k;
    char version[MV_VERSION_LEN + 1];
    json_t *ops = NULL;
    memset(&k, 0, sizeof k);
    if (in->key_ops) {
        ops = json_deep_copy(in->key_ops);
    } else {
        CHECK(ops_array(pkey, NULL, &ops));
    }
    ENSURE(ops != NULL, MV_ERR_INTERNAL);
    if (!rsa) {
        size_t i;
        json_t *op;
        json_array_foreach(ops, i, op) {
            const char *s = json_string_value(op);
            if (strcmp(s, "sign") != 0 && strcmp(s, "verify") != 0) {
                char msg[160];
                if (mv_fmt(msg, sizeof msg,
                           "Unsupported key operation(s): \"%s\". Supported values are \"sign\", "
                           "\"verify\".",
                           s) != MV_OK)
                    msg[0] = '\0';
                vault_bad_parameter(c, msg);
                goto out;
            }
        }
    }
    struct vault_key_attrs a = {.enabled = in->has_enabled ? in->enabled : 1,
                                .nbf = in->nbf,
                                .exp = in->exp,
                                .tags_json = in->tags_json};
    CHECK(mv_hexid(version));
    CHECK(row_with_ops(c->w->srv->data_key, c->vault.name, c->name, version, pkey, kty, ops, &a,
                       mv_now(), &k));
    add_and_reply(c, &k);
out:
    json_decref(ops);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    st_key_clear(&k);
}

/* A key generated off the loop (http/offload.h): an RSA-4096 key takes about a second, which
 * would stall every connection of this loop. The request is deferred; keygen_run runs on a pool
 * thread with copies of what it needs, keygen_done back on this loop finishes the create. */
struct keygen_job {
    struct vault_deferred d; /* d.c answers */
    struct vault_key_input in;
    int rsa, size;
    char crv[16];
    char kty[16];
    EVP_PKEY *pkey;
    const char *why;
    mv_rc rc;
};

static void keygen_free(struct keygen_job *j)
{
    EVP_PKEY_free(j->pkey);
    vault_key_input_free(&j->in);
    vault_deferred_free(&j->d);
    free(j);
}

static void keygen_run(void *arg)
{
    struct keygen_job *j = arg;
    j->rc = vkey_generate(j->rsa, j->size, j->crv[0] ? j->crv : NULL, &j->pkey, &j->why);
}

static void keygen_done(void *arg)
{
    struct keygen_job *j = arg;
    vault_deferred_resume(&j->d);
    if (j->rc == MV_OK)
        create_finish(&j->d.c, &j->in, j->rsa, j->pkey, j->kty);
    else if (!j->pkey && j->why)
        vault_bad_parameter(&j->d.c, j->why);
    else
        vault_rc_error(&j->d.c, MV_ERR_INTERNAL);
    vault_audit(&j->d.c);
    keygen_free(j);
}

/* Takes over *in (zeroed here) and answers the request later, or now on failure. */
static void generate_later(struct vault_ctx *c, struct vault_key_input *in, int rsa,
                           const char *kty)
{
    mv_rc rc = MV_OK;
    struct keygen_job *j = calloc(1, sizeof *j);
    ENSURE(j != NULL, MV_ERR_INTERNAL);
    j->in = *in;
    memset(in, 0, sizeof *in);
    j->rsa = rsa;
    j->size = rsa ? j->in.key_size : 0;
    /* a curve name too long for crv is no curve: "?" fails the lookup like any unknown one */
    if (j->in.crv && mv_copy(j->crv, sizeof j->crv, j->in.crv) != MV_OK)
        CHECK(mv_copy(j->crv, sizeof j->crv, "?"));
    CHECK(mv_copy(j->kty, sizeof j->kty, kty));
    CHECK(vault_defer(c, &j->d)); /* keygen_done replies and audits */
    rc = http_offload_submit(c->w->srv->offload, c->w->base, keygen_run, keygen_done, j);
    if (rc != MV_OK) {
        vault_deferred_fail(&j->d, rc);
        keygen_free(j);
    }
    return;
out:
    if (j)
        keygen_free(j);
    if (!c->deferred)
        vault_rc_error(c, rc);
}

static void create_or_import(struct vault_ctx *c, int import)
{
    mv_rc rc = MV_OK;
    struct vault_key_input in;
    const char *why = NULL;
    EVP_PKEY *pkey = NULL;
    char kty[16];
    memset(&in, 0, sizeof in);
    if (vault_parse_key_body(c->req->body.p, c->req->body.len, &in, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    int rsa = 0;
    if (import) {
        if (!in.key) {
            vault_bad_parameter(c, "The request body must contain 'key', a JSON web key.");
            goto out;
        }
        if (vkey_import_jwk(in.key, &rsa, &pkey, &why) != MV_OK) {
            vault_bad_parameter(c, why);
            goto out;
        }
        const char *t = json_string_value(json_object_get(in.key, "kty"));
        int hsm = json_is_true(json_object_get(in.root, "Hsm")) || strcasestr(t, "-HSM") != NULL;
        CHECK(mv_copy(kty, sizeof kty, rsa ? (hsm ? "RSA-HSM" : "RSA") : (hsm ? "EC-HSM" : "EC")));
        if (!in.key_ops) {
            /* the JWK's own key_ops, held to the rules of the body's (vault_parse_key_body) */
            const json_t *jops = json_object_get(in.key, "key_ops");
            size_t i;
            json_t *op;
            int ok = !jops || json_is_null(jops) || (json_is_array(jops) && json_array_size(jops) <= 8);
            json_array_foreach(jops, i, op) {
                if (!json_is_string(op) || !in_list(ALL_OPS, json_string_value(op)))
                    ok = 0;
            }
            if (!ok) {
                vault_bad_parameter(c, "The value of 'key_ops' is invalid: supported values are "
                                       "encrypt, decrypt, sign, verify, wrapKey, unwrapKey, import, "
                                       "export.");
                goto out;
            }
            in.key_ops = json_is_array(jops) ? jops : NULL;
        }
    } else {
        if (!in.kty) {
            vault_bad_parameter(c, "The value of 'kty' is required: RSA, RSA-HSM, EC or EC-HSM.");
            goto out;
        }
        if (strcmp(in.kty, "RSA") == 0 || strcmp(in.kty, "RSA-HSM") == 0)
            rsa = 1;
        else if (strcmp(in.kty, "EC") == 0 || strcmp(in.kty, "EC-HSM") == 0)
            rsa = 0;
        else {
            vault_bad_parameter(c, "The key type is not supported by this vault: create RSA, "
                                   "RSA-HSM, EC or EC-HSM keys.");
            goto out;
        }
        if (rsa && in.key_size && in.key_size < 2048) {
            vault_bad_parameter(c, "The key size is not supported: RSA keys must be at least "
                                   "2048 bits.");
            goto out;
        }
        CHECK(mv_copy(kty, sizeof kty, in.kty));
        if (c->w->srv->offload) {
            generate_later(c, &in, rsa, kty); /* owns in from here, replies and audits */
            goto out;
        }
        if (vkey_generate(rsa, rsa ? in.key_size : 0, in.crv, &pkey, &why) != MV_OK) {
            if (!pkey && why) {
                vault_bad_parameter(c, why);
                goto out;
            }
            CHECK(MV_ERR_INTERNAL);
        }
    }
    create_finish(c, &in, rsa, pkey, kty);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    EVP_PKEY_free(pkey);
    vault_key_input_free(&in);
}

void vault_op_key_create(struct vault_ctx *c) { create_or_import(c, 0); }

void vault_op_key_import(struct vault_ctx *c) { create_or_import(c, 1); }

/* ---- get, update, list ---- */

void vault_op_key_get(struct vault_ctx *c)
{
    struct st_key k;
    mv_rc rc = store_key_get(c->w->st, c->vault.name, c->name, c->version[0] ? c->version : NULL,
                             &k);
    if (rc == MV_ERR_NOT_FOUND)
        vault_key_not_found(c, c->name, c->version);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_key(c, &k, VJ_ID_VERSION);
    st_key_clear(&k);
}

void vault_op_key_update(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct vault_key_input in;
    struct st_key k;
    const char *why = NULL;
    json_t *jwk = NULL;
    json_error_t jerr;
    memset(&k, 0, sizeof k);
    if (vault_parse_key_body(c->req->body.p, c->req->body.len, &in, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    rc = store_key_get(c->w->st, c->vault.name, c->name, c->version[0] ? c->version : NULL, &k);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_key_not_found(c, c->name, c->version);
        goto out;
    }
    CHECK(rc);
    if (vault_managed_key(c, k.managed)) {
        vault_managed_forbidden(c, "Key", k.name);
        goto out;
    }
    if (in.key_ops) {
        jwk = json_loads(k.jwk_json, 0, &jerr);
        ENSURE(json_is_object(jwk), MV_ERR_INTERNAL);
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        if (kty && strncmp(kty, "EC", 2) == 0) {
            size_t i;
            json_t *op;
            json_array_foreach(in.key_ops, i, op) {
                const char *s = json_string_value(op);
                if (strcmp(s, "sign") != 0 && strcmp(s, "verify") != 0) {
                    vault_bad_parameter(c, "Unsupported key operation(s) for an EC key. Supported "
                                           "values are \"sign\", \"verify\".");
                    goto out;
                }
            }
        }
        ENSURE(json_object_set(jwk, "key_ops", (json_t *)in.key_ops) == 0, MV_ERR_INTERNAL);
        char *t = json_dumps(jwk, JSON_COMPACT);
        ENSURE(t != NULL, MV_ERR_INTERNAL);
        free(k.jwk_json);
        k.jwk_json = t;
    }
    if (in.has_tags) {
        free(k.tags_json);
        k.tags_json = in.tags_json;
        in.tags_json = NULL;
    }
    if (in.has_enabled)
        k.enabled = in.enabled;
    if (in.has_nbf)
        k.nbf = in.nbf;
    if (in.has_exp)
        k.exp = in.exp;
    k.updated = mv_now();
    rc = store_key_update(c->w->st, &k);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_key_not_found(c, c->name, c->version);
        goto out;
    }
    CHECK(rc);
    vault_reply_key(c, &k, VJ_ID_VERSION);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    json_decref(jwk);
    st_key_clear(&k);
    vault_key_input_free(&in);
}

static void reply_key_page(struct vault_ctx *c, struct st_key *rows, size_t n, size_t limit,
                           unsigned flags, const char *link_path, int key_is_version)
{
    mv_rc rc = MV_OK;
    struct vault_view v = vault_view_of(c);
    json_t *items = json_array();
    size_t shown = n > limit ? limit : n;
    ENSURE(items != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; i < shown; i++) {
        json_t *item = NULL;
        CHECK(vault_key_json(&rows[i], &v, flags | VJ_ITEM, &item));
        ENSURE(json_array_append_new(items, item) == 0, MV_ERR_INTERNAL);
    }
    const char *last = NULL;
    if (n > limit && shown > 0)
        last = key_is_version ? rows[shown - 1].version : rows[shown - 1].name;
    vault_reply_items(c, items, last, limit, link_path);
    items = NULL;
out:
    json_decref(items);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
}

void vault_op_key_list(struct vault_ctx *c)
{
    char after[MV_SECRET_MAX_NAME + 1];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_key *rows = NULL;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    mv_rc rc = store_key_list(c->w->st, c->vault.name, has_after ? after : NULL, limit + 1, &rows,
                              &n);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    reply_key_page(c, rows, n, limit, 0, "/keys", 0);
    st_keys_free(rows, n);
}

void vault_op_key_versions(struct vault_ctx *c)
{
    char after[MV_SECRET_MAX_NAME + 1];
    char path[MV_SECRET_MAX_NAME + 32];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_key *rows = NULL;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    mv_rc rc = mv_fmt(path, sizeof path, "/keys/%s/versions", c->name);
    if (rc == MV_OK)
        rc = store_key_versions(c->w->st, c->vault.name, c->name, has_after ? after : NULL,
                                limit + 1, &rows, &n);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    reply_key_page(c, rows, n, limit, VJ_ID_VERSION, path, 1);
    st_keys_free(rows, n);
}

/* ---- delete, deleted view, recover, purge (the rules of deleted.c) ---- */

void vault_op_key_delete(struct vault_ctx *c)
{
    struct st_key k;
    memset(&k, 0, sizeof k);
    mv_rc rc = store_key_get(c->w->st, c->vault.name, c->name, NULL, &k);
    if (rc == MV_OK && vault_managed_key(c, k.managed)) {
        vault_managed_forbidden(c, "Key", k.name);
        st_key_clear(&k);
        return;
    }
    st_key_clear(&k);
    memset(&k, 0, sizeof k);
    rc = store_key_delete(c->w->st, c->vault.name, c->name, mv_now(), c->vault.soft_delete_days,
                          &k);
    if (rc == MV_ERR_NOT_FOUND)
        vault_key_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_key(c, &k, VJ_DELETED | VJ_ID_VERSION);
    st_key_clear(&k);
}

static void deleted_not_found(struct vault_ctx *c) { vault_key_not_found(c, c->name, NULL); }

void vault_op_key_get_deleted(struct vault_ctx *c)
{
    struct st_key k;
    mv_rc rc = store_key_get_deleted(c->w->st, c->vault.name, c->name, &k);
    if (rc == MV_ERR_NOT_FOUND)
        deleted_not_found(c);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_key(c, &k, VJ_DELETED | VJ_ID_VERSION);
    st_key_clear(&k);
}

void vault_op_key_list_deleted(struct vault_ctx *c)
{
    char after[MV_SECRET_MAX_NAME + 1];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_key *rows = NULL;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    mv_rc rc = store_key_list_deleted(c->w->st, c->vault.name, has_after ? after : NULL,
                                      limit + 1, &rows, &n);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    reply_key_page(c, rows, n, limit, VJ_DELETED, "/deletedkeys", 0);
    st_keys_free(rows, n);
}

void vault_op_key_recover(struct vault_ctx *c)
{
    struct st_key k;
    memset(&k, 0, sizeof k);
    if (vault_deleted_managed_refused(c, "Key"))
        return; /* recover the certificate instead */
    mv_rc rc = store_key_recover(c->w->st, c->vault.name, c->name);
    if (rc == MV_OK)
        rc = store_key_get(c->w->st, c->vault.name, c->name, NULL, &k);
    if (rc == MV_ERR_NOT_FOUND)
        deleted_not_found(c);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_key(c, &k, VJ_ID_VERSION);
    st_key_clear(&k);
}

void vault_op_key_purge(struct vault_ctx *c)
{
    if (c->vault.purge_protection) {
        vault_error(c, 403, "Forbidden",
                    "Operation \"purge\" is not allowed because purge protection is enabled for "
                    "this vault. Key Vault service will automatically purge it after the "
                    "retention period has passed.",
                    "PurgeProtected");
        return;
    }
    if (vault_deleted_managed_refused(c, "Key"))
        return; /* purge the certificate instead */
    mv_rc rc = store_key_purge(c->w->st, c->vault.name, c->name);
    if (rc == MV_ERR_NOT_FOUND)
        deleted_not_found(c);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_body(c, 204, NULL, 0);
}
