/* secrets.c: the live-secret operations (reference §4.2): set, get, update, list, versions,
 * delete.
 *
 * Invariants: a set either stores a new version whole or stores nothing (the body is validated
 * before anything is written); names are looked up case-insensitively and replies use the
 * stored spelling; plaintext exists only in the parsed request (wiped) or in the decrypted
 * buffer and the reply text (both wiped); a disabled secret's value is never returned. */
#include <stdlib.h>
#include <string.h>

#include "crypto/aead.h"
#include "vault/vault_internal.h"

#define BUNDLE_MAX (6 * MV_SECRET_MAX_VALUE_BYTES + 65536) /* worst-case escaping + tags, fields */

static void conflict_deleted(struct vault_ctx *c, const char *name)
{
    char msg[384];
    /* Wording as observed (reference §4.3, "name soft-deleted"). */
    if (mv_fmt(msg, sizeof msg,
               "Secret %s is currently in a deleted but recoverable state, and its name cannot "
               "be reused; in this state, the secret can only be recovered or purged.",
               name) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 409, "Conflict", msg, "ObjectIsDeletedButRecoverable");
}

/* Replies 200 with the bundle of s and its value pt. */
static void reply_with_value(struct vault_ctx *c, const struct st_secret *s, const char *pt,
                             size_t len)
{
    mv_rc rc = MV_OK;
    struct vault_view v = vault_view_of(c);
    json_t *j = NULL;
    mv_buf body;
    mv_buf_init(&body, BUNDLE_MAX);
    CHECK(vault_secret_json(s, &v, VJ_ID_VERSION, &j));
    CHECK(vault_json_with_value(j, pt, len, &body));
    vault_reply_body(c, 200, body.p, body.len);
out:
    json_decref(j);
    mv_buf_free_secret(&body);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
}

void vault_op_set(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct vault_secret_input in;
    struct st_secret prev, s;
    const char *why = NULL;
    memset(&prev, 0, sizeof prev);
    memset(&s, 0, sizeof s);
    mv_buf_init(&s.sealed, MV_SECRET_MAX_VALUE_BYTES + AEAD_OVERHEAD);

    if (vault_parse_secret_body(c->req->body.p, c->req->body.len, 1, &in, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    /* A new version of an existing secret keeps the name's first spelling. */
    rc = store_secret_get(c->w->st, c->vault.name, c->name, NULL, &prev);
    if (rc != MV_OK && rc != MV_ERR_NOT_FOUND)
        goto out;
    const char *name = rc == MV_OK ? prev.name : c->name;
    CHECK(mv_copy(s.name, sizeof s.name, name));
    CHECK(mv_copy(s.vault, sizeof s.vault, c->vault.name));
    CHECK(mv_hexid(s.version));
    CHECK(vault_seal_value(c, s.name, s.version, in.value, in.value_len, &s.sealed));
    s.content_type = (char *)in.content_type; /* borrowed: s is not st_secret_clear'ed */
    s.tags_json = in.tags_json;
    s.enabled = in.has_enabled ? in.enabled : 1;
    s.nbf = in.has_nbf ? in.nbf : 0;
    s.exp = in.has_exp ? in.exp : 0;
    s.created = s.updated = mv_now();
    rc = store_secret_add(c->w->st, &s);
    if (rc == MV_ERR_CONFLICT) {
        rc = MV_OK;
        conflict_deleted(c, c->name);
        goto out;
    }
    CHECK(rc);
    reply_with_value(c, &s, in.value, in.value_len);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    mv_buf_free(&s.sealed);
    st_secret_clear(&prev);
    vault_secret_input_free(&in);
}

void vault_op_get(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_secret s;
    mv_buf pt;
    memset(&s, 0, sizeof s);
    mv_buf_init(&pt, 0);
    rc = store_secret_get(c->w->st, c->vault.name, c->name, c->version[0] ? c->version : NULL, &s);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_secret_not_found(c, c->name, c->version);
        goto out;
    }
    CHECK(rc);
    if (!s.enabled) {
        vault_error(c, 403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                    "SecretDisabled");
        goto out;
    }
    CHECK(vault_open_value(c, &s, &pt));
    reply_with_value(c, &s, pt.p ? pt.p : "", pt.len);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    mv_buf_free_secret(&pt);
    st_secret_clear(&s);
}

void vault_op_update(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct vault_secret_input in;
    struct st_secret s;
    const char *why = NULL;
    memset(&s, 0, sizeof s);
    if (vault_parse_secret_body(c->req->body.p, c->req->body.len, 0, &in, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    rc = store_secret_get(c->w->st, c->vault.name, c->name, c->version[0] ? c->version : NULL, &s);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_secret_not_found(c, c->name, c->version);
        goto out;
    }
    CHECK(rc);
    /* Merge: given fields replace, absent ones stay (tags replace as a whole). */
    if (in.content_type) {
        char *ct = strdup(in.content_type);
        ENSURE(ct != NULL, MV_ERR_INTERNAL);
        free(s.content_type);
        s.content_type = ct;
    }
    if (in.has_tags) {
        free(s.tags_json);
        s.tags_json = in.tags_json;
        in.tags_json = NULL;
    }
    if (in.has_enabled)
        s.enabled = in.enabled;
    if (in.has_nbf)
        s.nbf = in.nbf;
    if (in.has_exp)
        s.exp = in.exp;
    s.updated = mv_now();
    rc = store_secret_update(c->w->st, &s);
    if (rc == MV_ERR_NOT_FOUND) { /* deleted meanwhile */
        rc = MV_OK;
        vault_secret_not_found(c, c->name, c->version);
        goto out;
    }
    CHECK(rc);
    vault_reply_secret(c, &s, VJ_ID_VERSION);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    st_secret_clear(&s);
    vault_secret_input_free(&in);
}

void vault_op_list(struct vault_ctx *c)
{
    char after[MV_SECRET_MAX_NAME + 1];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_secret *rows = NULL;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    mv_rc rc = store_secret_list(c->w->st, c->vault.name, has_after ? after : NULL, limit + 1,
                                 &rows, &n);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    vault_reply_page(c, rows, n, limit, 0, "/secrets", 0);
    st_secrets_free(rows, n);
}

void vault_op_versions(struct vault_ctx *c)
{
    char after[MV_SECRET_MAX_NAME + 1];
    char path[MV_SECRET_MAX_NAME + 32];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_secret *rows = NULL;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    mv_rc rc = mv_fmt(path, sizeof path, "/secrets/%s/versions", c->name);
    if (rc == MV_OK)
        rc = store_secret_versions(c->w->st, c->vault.name, c->name, has_after ? after : NULL,
                                   limit + 1, &rows, &n);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    vault_reply_page(c, rows, n, limit, VJ_ID_VERSION, path, 1);
    st_secrets_free(rows, n);
}

void vault_op_delete(struct vault_ctx *c)
{
    struct st_secret s;
    memset(&s, 0, sizeof s);
    /* Reference §4.2: the secret is at once gone from /secrets and visible at /deletedsecrets
     * (days == 0: soft delete off, deleted at once and the reply has no recoveryId). */
    mv_rc rc = store_secret_delete(c->w->st, c->vault.name, c->name, mv_now(),
                                   c->vault.soft_delete_days, &s);
    if (rc == MV_ERR_NOT_FOUND)
        vault_secret_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_secret(c, &s, VJ_DELETED | VJ_ID_VERSION);
    st_secret_clear(&s);
}
