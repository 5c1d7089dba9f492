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
#include "store/writer.h"
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

/* Whether s is the secret of a certificate version (docs/certificates.md): only secrets with a
 * certificate's content type cost the lookup, so the GET of any other secret is unchanged. A
 * soft-deleted secret is looked up among the soft-deleted certificates. */
int vault_secret_is_managed(struct vault_ctx *c, const struct st_secret *s)
{
    if (!s->content_type || (strcmp(s->content_type, "application/x-pkcs12") != 0 &&
                             strcmp(s->content_type, "application/x-pem-file") != 0))
        return 0;
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, s->name, s->version,
                              s->deleted != 0, &o);
    st_certobj_clear(&o);
    return rc == MV_OK;
}

/* Replies 200 with the bundle of s and its value pt. */
static void reply_with_value(struct vault_ctx *c, const struct st_secret *s, const char *pt,
                             size_t len)
{
    mv_rc rc = MV_OK;
    struct vault_view v = vault_view_of(c);
    mv_buf body;
    mv_buf_init(&body, BUNDLE_MAX);
    CHECK(vault_bundle_json(s, &v, VJ_ID_VERSION | (vault_secret_is_managed(c, s) ? VJ_MANAGED : 0), pt, len,
                            &body));
    vault_reply_body(c, 200, body.p, body.len);
out:
    mv_buf_free_secret(&body);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
}

/* A set is durable before it is acknowledged: the new version goes to the group-committing
 * writer (store/writer.h) and the reply is sent from set_done, on this loop, once the batch that
 * holds it is on disk. Everything the reply needs is copied into the job first. */
struct set_job {
    struct vault_deferred d;   /* d.c answers */
    struct st_secret s;        /* owns sealed, content_type, tags_json */
    mv_rc stored;              /* the write's outcome (store_secret_set_deferred) */
    mv_buf value;              /* plaintext for the reply: wiped */
};

static void set_job_free(struct set_job *j)
{
    mv_buf_free(&j->s.sealed);
    free(j->s.content_type);
    free(j->s.tags_json);
    mv_buf_free_secret(&j->value);
    vault_deferred_free(&j->d);
    free(j);
}

/* Writer thread. store_secret_set(_deferred) leaves the stored spelling of the name in j->s.name, which
 * the reply shows (an existing secret keeps its first spelling), and refuses (FORBIDDEN) a name
 * a certificate owns: checked in the write's transaction, not by a read on the loop first. */
static mv_rc set_job_run(struct store *st, void *arg)
{
    struct set_job *j = arg;
    return store_secret_set_deferred(st, &j->s, &j->stored);
}

/* Loop thread, after the batch committed or failed. */
static void set_done(void *arg, mv_rc rc)
{
    struct set_job *j = arg;
    vault_deferred_resume(&j->d);
    if (rc == MV_OK)
        rc = j->stored; /* the batch committed; this job's own outcome */
    if (rc == MV_ERR_CONFLICT)
        conflict_deleted(&j->d.c, j->d.c.name);
    else if (rc == MV_ERR_FORBIDDEN)
        vault_managed_forbidden(&j->d.c, "Secret", j->d.c.name);
    else if (rc != MV_OK)
        vault_rc_error(&j->d.c, rc);
    else
        reply_with_value(&j->d.c, &j->s, j->value.p ? j->value.p : "", j->value.len);
    vault_audit(&j->d.c);
    set_job_free(j);
}

static mv_rc dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s && !(*out = strdup(s))) {
        mv_fail(MV_ERR_INTERNAL, "out of memory");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

void vault_op_set(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct vault_secret_input in;
    const char *why = NULL;
    struct set_job *j = NULL;
    memset(&in, 0, sizeof in);

    if (vault_parse_secret_body(c->req->body.p, c->req->body.len, 1, &in, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    j = calloc(1, sizeof *j);
    ENSURE(j != NULL, MV_ERR_INTERNAL);
    mv_buf_init(&j->s.sealed, MV_SECRET_MAX_VALUE_BYTES + AEAD_OVERHEAD);
    mv_buf_init(&j->value, MV_SECRET_MAX_VALUE_BYTES);
    CHECK(mv_copy(j->s.name, sizeof j->s.name, c->name));
    CHECK(mv_copy(j->s.vault, sizeof j->s.vault, c->vault.name));
    CHECK(mv_hexid(j->s.version));
    CHECK(vault_seal_value(c, j->s.name, j->s.version, in.value, in.value_len, &j->s.sealed));
    CHECK(mv_buf_add(&j->value, in.value, in.value_len));
    CHECK(dup_opt(in.content_type, &j->s.content_type));
    CHECK(dup_opt(in.tags_json, &j->s.tags_json));
    j->s.enabled = in.has_enabled ? in.enabled : 1;
    j->s.nbf = in.has_nbf ? in.nbf : 0;
    j->s.exp = in.has_exp ? in.exp : 0;
    j->s.created = j->s.updated = mv_now();
    CHECK(vault_defer(c, &j->d)); /* set_done replies and audits */
    rc = store_writer_submit(c->w->srv->writer, c->w->base, set_job_run, set_done, j);
    if (rc != MV_OK) {
        vault_deferred_fail(&j->d, rc);
        set_job_free(j);
    }
    j = NULL;
out:
    if (rc != MV_OK && !c->deferred)
        vault_rc_error(c, rc);
    if (j)
        set_job_free(j);
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
    if (vault_secret_is_managed(c, &s)) {
        vault_managed_forbidden(c, "Secret", s.name);
        goto out;
    }
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
     * (days == 0: soft delete off, deleted at once and the reply has no recoveryId). A
     * certificate's managed secret is refused (FORBIDDEN) in the delete's own transaction. */
    mv_rc rc = store_secret_delete(c->w->st, c->vault.name, c->name, mv_now(),
                                   c->vault.soft_delete_days, 1, &s);
    if (rc == MV_ERR_NOT_FOUND)
        vault_secret_not_found(c, c->name, NULL);
    else if (rc == MV_ERR_FORBIDDEN)
        vault_managed_forbidden(c, "Secret", c->name);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_secret(c, &s, VJ_DELETED | VJ_ID_VERSION);
    st_secret_clear(&s);
}
