/* store.c: the backend dispatch of store.h. A struct store is either a PostgreSQL connection
 * (st->pg set: every call goes to the pg_* function of the same name) or a SQLite one (the
 * sq_* functions). store_open picks the backend from its argument: a postgresql:// or
 * postgres:// URL, else a file path. */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/sqlite_internal.h"
#include "store/writer.h"

#include "common/metrics.h"

/* The store reads of the request paths, timed and counted (metrics.h): op is the label.
 * "Not found" is an answer, not an error. */
#define TIMED(op, call)                                                                          \
    do {                                                                                         \
        int64_t t0_ = mv_metrics_now_ns();                                                       \
        mv_rc rc_ = (call);                                                                      \
        mv_metric_observe(MV_M_STORE_SECONDS, op, mv_metrics_now_ns() - t0_);                    \
        if (rc_ != MV_OK && rc_ != MV_ERR_NOT_FOUND)                                             \
            mv_metric_inc(MV_M_STORE_ERRORS, op, NULL);                                          \
        return rc_;                                                                              \
    } while (0)

int store_is_url(const char *s)
{
    return s && (strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0);
}

mv_rc store_open(const char *path, struct store **out)
{
    mv_rc rc = MV_OK;
    struct store *st = NULL;
    *out = NULL;
    if (!store_is_url(path))
        return sq_open(path, out);
    st = calloc(1, sizeof *st);
    ENSURE(st, MV_ERR_INTERNAL);
    CHECK(pg_open(path, &st->pg));
    *out = st;
    st = NULL;
out:
    free(st);
    return rc;
}

int store_shared(const struct store *st) { return st && st->pg; }

mv_rc store_xact_lock(struct store *st, const char *name)
{
    if (!st->pg)
        return MV_OK;
    struct pg_params pp = {0};
    pp_text(&pp, name);
    return pg_exec(st->pg, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", &pp, NULL, NULL);
}

void store_close(struct store *st)
{
    if (!st)
        return;
    if (!st->pg) {
        sq_close(st);
        return;
    }
    pg_close(st->pg);
    free(st);
}

/* writer.h */
mv_rc store_savepoint(struct store *st)
{
    return st->pg ? pg_savepoint(st->pg) : sq_savepoint(st);
}

mv_rc store_savepoint_release(struct store *st)
{
    return st->pg ? pg_savepoint_release(st->pg) : sq_savepoint_release(st);
}

void store_savepoint_rollback(struct store *st)
{
    if (st->pg)
        pg_savepoint_rollback(st->pg);
    else
        sq_savepoint_rollback(st);
}

int store_tx_alive(struct store *st)
{
    return st->pg ? pg_tx_alive(st->pg) : !sqlite3_get_autocommit(st->db);
}

int store_batch_retry(struct store *st) { return st->pg ? pg_batch_retry(st->pg) : 0; }

int store_batch_lean(struct store *st, int on)
{
    if (!st->pg)
        return 0;
    pg_batch_lean(st->pg, on);
    return 1;
}

void store_batch_done(struct store *st)
{
    if (st->pg)
        pg_batch_done(st->pg);
}

/* ---- everything else: one line each ---- */


mv_rc store_begin(struct store *st)
{
    return st->pg ? pg_begin(st->pg) : sq_begin(st);
}

mv_rc store_commit(struct store *st)
{
    return st->pg ? pg_commit(st->pg) : sq_commit(st);
}

void store_rollback(struct store *st)
{
    if (st->pg)
        pg_rollback(st->pg);
    else
        sq_rollback(st);
}

mv_rc store_health(struct store *st)
{
    return st->pg ? pg_health(st->pg) : sq_health(st);
}

mv_rc store_read_begin(struct store *st)
{
    return st->pg ? pg_read_begin(st->pg) : sq_read_begin(st);
}

void store_read_end(struct store *st)
{
    if (st->pg)
        pg_read_end(st->pg);
    else
        sq_read_end(st);
}

mv_rc store_generation(struct store *st, int64_t *gen)
{
    return st->pg ? pg_generation(st->pg, gen) : sq_generation(st, gen);
}

mv_rc store_meta_get(struct store *st, const char *key, mv_buf *out)
{
    return st->pg ? pg_meta_get(st->pg, key, out) : sq_meta_get(st, key, out);
}

mv_rc store_meta_set(struct store *st, const char *key, const char *value)
{
    return st->pg ? pg_meta_set(st->pg, key, value) : sq_meta_set(st, key, value);
}

mv_rc store_principal_put(struct store *st, const struct st_principal *p)
{
    return st->pg ? pg_principal_put(st->pg, p) : sq_principal_put(st, p);
}

mv_rc store_principal_get(struct store *st, const char *id, struct st_principal *out)
{
    TIMED("principal_get", st->pg ? pg_principal_get(st->pg, id, out) : sq_principal_get(st, id, out));
}

mv_rc store_principal_by_client(struct store *st, const char *client_id, struct st_principal *out)
{
    TIMED("principal_by_client", st->pg ? pg_principal_by_client(st->pg, client_id, out) : sq_principal_by_client(st, client_id, out));
}

mv_rc store_principal_delete(struct store *st, const char *id)
{
    return st->pg ? pg_principal_delete(st->pg, id) : sq_principal_delete(st, id);
}

mv_rc store_principal_list(struct store *st, enum st_principal_kind kind, struct st_principal **out, size_t *n)
{
    return st->pg ? pg_principal_list(st->pg, kind, out, n) : sq_principal_list(st, kind, out, n);
}

void st_principals_free(struct st_principal *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        st_principal_clear(&p[i]);
    free(p);
}

mv_rc store_app_credential_add(struct store *st, const struct st_app_credential *c)
{
    return st->pg ? pg_app_credential_add(st->pg, c) : sq_app_credential_add(st, c);
}

mv_rc store_app_credentials(struct store *st, const char *client_id, struct st_app_credential **out, size_t *n)
{
    return st->pg ? pg_app_credentials(st->pg, client_id, out, n) : sq_app_credentials(st, client_id, out, n);
}

mv_rc store_app_credentials_delete(struct store *st, const char *client_id)
{
    return st->pg ? pg_app_credentials_delete(st->pg, client_id) : sq_app_credentials_delete(st, client_id);
}

void st_app_credentials_free(struct st_app_credential *c, size_t n)
{
    for (size_t i = 0; c && i < n; i++)
        free(c[i].cert_pem);
    free(c);
}

mv_rc store_binding_add(struct store *st, const struct st_binding *b)
{
    return st->pg ? pg_binding_add(st->pg, b) : sq_binding_add(st, b);
}

mv_rc store_binding_remove(struct store *st, const struct st_binding *b)
{
    return st->pg ? pg_binding_remove(st->pg, b) : sq_binding_remove(st, b);
}

mv_rc store_binding_list(struct store *st, const char *vm, struct st_binding **out, size_t *n)
{
    return st->pg ? pg_binding_list(st->pg, vm, out, n) : sq_binding_list(st, vm, out, n);
}

mv_rc store_fic_put(struct store *st, const struct st_fic *f)
{
    return st->pg ? pg_fic_put(st->pg, f) : sq_fic_put(st, f);
}

mv_rc store_fic_get(struct store *st, const char *identity, const char *name, struct st_fic *out)
{
    return st->pg ? pg_fic_get(st->pg, identity, name, out) : sq_fic_get(st, identity, name, out);
}

mv_rc store_fic_list(struct store *st, const char *identity, struct st_fic **out, size_t *n)
{
    return st->pg ? pg_fic_list(st->pg, identity, out, n) : sq_fic_list(st, identity, out, n);
}

mv_rc store_fic_delete(struct store *st, const char *identity, const char *name)
{
    return st->pg ? pg_fic_delete(st->pg, identity, name) : sq_fic_delete(st, identity, name);
}

mv_rc store_signing_key_put(struct store *st, const struct st_signing_key *k)
{
    return st->pg ? pg_signing_key_put(st->pg, k) : sq_signing_key_put(st, k);
}

mv_rc store_signing_key_delete(struct store *st, const char *kid)
{
    return st->pg ? pg_signing_key_delete(st->pg, kid) : sq_signing_key_delete(st, kid);
}

mv_rc store_signing_keys(struct store *st, struct st_signing_key **out, size_t *n)
{
    return st->pg ? pg_signing_keys(st->pg, out, n) : sq_signing_keys(st, out, n);
}

mv_rc store_vm_put(struct store *st, const struct st_vm *vm)
{
    return st->pg ? pg_vm_put(st->pg, vm) : sq_vm_put(st, vm);
}

mv_rc store_vm_get(struct store *st, const char *name, struct st_vm *out)
{
    return st->pg ? pg_vm_get(st->pg, name, out) : sq_vm_get(st, name, out);
}

mv_rc store_vm_list(struct store *st, struct st_vm **out, size_t *n)
{
    return st->pg ? pg_vm_list(st->pg, out, n) : sq_vm_list(st, out, n);
}

mv_rc store_vm_delete(struct store *st, const char *name)
{
    return st->pg ? pg_vm_delete(st->pg, name) : sq_vm_delete(st, name);
}

mv_rc store_vm_uai_set(struct store *st, const char *vm, const char *const *names, size_t n)
{
    return st->pg ? pg_vm_uai_set(st->pg, vm, names, n) : sq_vm_uai_set(st, vm, names, n);
}

mv_rc store_vm_uai_list(struct store *st, const char *vm, char (**names)[ST_NAME], size_t *n)
{
    return st->pg ? pg_vm_uai_list(st->pg, vm, names, n) : sq_vm_uai_list(st, vm, names, n);
}

mv_rc store_identity_put(struct store *st, const struct st_identity *id)
{
    return st->pg ? pg_identity_put(st->pg, id) : sq_identity_put(st, id);
}

mv_rc store_identity_get(struct store *st, const char *name, struct st_identity *out)
{
    return st->pg ? pg_identity_get(st->pg, name, out) : sq_identity_get(st, name, out);
}

mv_rc store_identity_list(struct store *st, struct st_identity **out, size_t *n)
{
    return st->pg ? pg_identity_list(st->pg, out, n) : sq_identity_list(st, out, n);
}

mv_rc store_identity_delete(struct store *st, const char *name)
{
    return st->pg ? pg_identity_delete(st->pg, name) : sq_identity_delete(st, name);
}

mv_rc store_node_put(struct store *st, const struct st_node *n)
{
    return st->pg ? pg_node_put(st->pg, n) : sq_node_put(st, n);
}

mv_rc store_node_get(struct store *st, const char *client_id, struct st_node *out)
{
    TIMED("node_get", st->pg ? pg_node_get(st->pg, client_id, out) : sq_node_get(st, client_id, out));
}

mv_rc store_join_put(struct store *st, const char *token_hash, const char *vm, int64_t expires)
{
    return st->pg ? pg_join_put(st->pg, token_hash, vm, expires) : sq_join_put(st, token_hash, vm, expires);
}

mv_rc store_join_consume(struct store *st, const char *token_hash, int64_t now, char vm_out[ST_NAME])
{
    return st->pg ? pg_join_consume(st->pg, token_hash, now, vm_out) : sq_join_consume(st, token_hash, now, vm_out);
}

mv_rc store_node_revoke_vm(struct store *st, const char *vm, int64_t now)
{
    return st->pg ? pg_node_revoke_vm(st->pg, vm, now) : sq_node_revoke_vm(st, vm, now);
}

mv_rc store_assertion_use(struct store *st, const char *client_id, const char *jti,
                          int64_t keep_until, int64_t now)
{
    TIMED("assertion_use", st->pg ? pg_assertion_use(st->pg, client_id, jti, keep_until, now)
                  : sq_assertion_use(st, client_id, jti, keep_until, now));
}

mv_rc store_vault_put(struct store *st, const struct st_vault *v)
{
    return st->pg ? pg_vault_put(st->pg, v) : sq_vault_put(st, v);
}

mv_rc store_vault_get(struct store *st, const char *name, struct st_vault *out)
{
    TIMED("vault_get", st->pg ? pg_vault_get(st->pg, name, out) : sq_vault_get(st, name, out));
}

mv_rc store_vault_list(struct store *st, struct st_vault **out, size_t *n)
{
    return st->pg ? pg_vault_list(st->pg, out, n) : sq_vault_list(st, out, n);
}

mv_rc store_vault_delete(struct store *st, const char *name)
{
    return st->pg ? pg_vault_delete(st->pg, name) : sq_vault_delete(st, name);
}

mv_rc store_role_assignment_put(struct store *st, const struct st_role_assignment *a)
{
    return st->pg ? pg_role_assignment_put(st->pg, a) : sq_role_assignment_put(st, a);
}

mv_rc store_role_assignment_get(struct store *st, const char *id, struct st_role_assignment *out)
{
    return st->pg ? pg_role_assignment_get(st->pg, id, out) : sq_role_assignment_get(st, id, out);
}

mv_rc store_role_assignment_list(struct store *st, const char *principal_id, const char *scope, struct st_role_assignment **out, size_t *n)
{
    TIMED("role_assignment_list", st->pg ? pg_role_assignment_list(st->pg, principal_id, scope, out, n) : sq_role_assignment_list(st, principal_id, scope, out, n));
}

mv_rc store_role_assignment_delete(struct store *st, const char *id)
{
    return st->pg ? pg_role_assignment_delete(st->pg, id) : sq_role_assignment_delete(st, id);
}

mv_rc store_secret_add(struct store *st, struct st_secret *s)
{
    return st->pg ? pg_secret_add(st->pg, s, 0) : sq_secret_add(st, s, 0);
}

mv_rc store_secret_set(struct store *st, struct st_secret *s)
{
    return st->pg ? pg_secret_add(st->pg, s, 1) : sq_secret_add(st, s, 1);
}

mv_rc store_secret_set_deferred(struct store *st, struct st_secret *s, mv_rc *out)
{
    if (st->pg)
        return pg_secret_set_deferred(st->pg, s, out);
    return *out = sq_secret_add(st, s, 1);
}

mv_rc store_secret_get(struct store *st, const char *vault, const char *name, const char *version, struct st_secret *out)
{
    TIMED("secret_get", st->pg ? pg_secret_get(st->pg, vault, name, version, out) : sq_secret_get(st, vault, name, version, out));
}

mv_rc store_secret_update(struct store *st, const struct st_secret *s)
{
    return st->pg ? pg_secret_update(st->pg, s) : sq_secret_update(st, s);
}

mv_rc store_secret_list(struct store *st, const char *vault, const char *after, size_t limit, struct st_secret **out, size_t *n)
{
    TIMED("secret_list", st->pg ? pg_secret_list(st->pg, vault, after, limit, out, n) : sq_secret_list(st, vault, after, limit, out, n));
}

mv_rc store_secret_versions(struct store *st, const char *vault, const char *name, const char *after_version, size_t limit, struct st_secret **out, size_t *n)
{
    return st->pg ? pg_secret_versions(st->pg, vault, name, after_version, limit, out, n) : sq_secret_versions(st, vault, name, after_version, limit, out, n);
}

mv_rc store_secret_delete(struct store *st, const char *vault, const char *name, int64_t now, int days, int unmanaged, struct st_secret *out)
{
    return st->pg ? pg_secret_delete(st->pg, vault, name, now, days, unmanaged, out) : sq_secret_delete(st, vault, name, now, days, unmanaged, out);
}

mv_rc store_secret_get_deleted(struct store *st, const char *vault, const char *name, struct st_secret *out)
{
    return st->pg ? pg_secret_get_deleted(st->pg, vault, name, out) : sq_secret_get_deleted(st, vault, name, out);
}

mv_rc store_secret_list_deleted(struct store *st, const char *vault, const char *after, size_t limit, struct st_secret **out, size_t *n)
{
    return st->pg ? pg_secret_list_deleted(st->pg, vault, after, limit, out, n) : sq_secret_list_deleted(st, vault, after, limit, out, n);
}

mv_rc store_secret_recover(struct store *st, const char *vault, const char *name)
{
    return st->pg ? pg_secret_recover(st->pg, vault, name) : sq_secret_recover(st, vault, name);
}

mv_rc store_secret_purge(struct store *st, const char *vault, const char *name)
{
    return st->pg ? pg_secret_purge(st->pg, vault, name) : sq_secret_purge(st, vault, name);
}

mv_rc store_secret_purge_expired(struct store *st, int64_t now)
{
    return st->pg ? pg_secret_purge_expired(st->pg, now) : sq_secret_purge_expired(st, now);
}

mv_rc store_key_add(struct store *st, const struct st_key *k)
{
    return st->pg ? pg_key_add(st->pg, k) : sq_key_add(st, k);
}

mv_rc store_key_get(struct store *st, const char *vault, const char *name, const char *version, struct st_key *out)
{
    return st->pg ? pg_key_get(st->pg, vault, name, version, out) : sq_key_get(st, vault, name, version, out);
}

mv_rc store_key_update(struct store *st, const struct st_key *k)
{
    return st->pg ? pg_key_update(st->pg, k) : sq_key_update(st, k);
}

mv_rc store_key_list(struct store *st, const char *vault, const char *after, size_t limit, struct st_key **out, size_t *n)
{
    return st->pg ? pg_key_list(st->pg, vault, after, limit, out, n) : sq_key_list(st, vault, after, limit, out, n);
}

mv_rc store_key_versions(struct store *st, const char *vault, const char *name, const char *after_version, size_t limit, struct st_key **out, size_t *n)
{
    return st->pg ? pg_key_versions(st->pg, vault, name, after_version, limit, out, n) : sq_key_versions(st, vault, name, after_version, limit, out, n);
}

mv_rc store_key_delete(struct store *st, const char *vault, const char *name, int64_t now, int days, struct st_key *out)
{
    return st->pg ? pg_key_delete(st->pg, vault, name, now, days, out) : sq_key_delete(st, vault, name, now, days, out);
}

mv_rc store_key_get_deleted(struct store *st, const char *vault, const char *name, struct st_key *out)
{
    return st->pg ? pg_key_get_deleted(st->pg, vault, name, out) : sq_key_get_deleted(st, vault, name, out);
}

mv_rc store_key_list_deleted(struct store *st, const char *vault, const char *after, size_t limit, struct st_key **out, size_t *n)
{
    return st->pg ? pg_key_list_deleted(st->pg, vault, after, limit, out, n) : sq_key_list_deleted(st, vault, after, limit, out, n);
}

mv_rc store_key_recover(struct store *st, const char *vault, const char *name)
{
    return st->pg ? pg_key_recover(st->pg, vault, name) : sq_key_recover(st, vault, name);
}

mv_rc store_key_purge(struct store *st, const char *vault, const char *name)
{
    return st->pg ? pg_key_purge(st->pg, vault, name) : sq_key_purge(st, vault, name);
}

mv_rc store_key_purge_expired(struct store *st, int64_t now)
{
    return st->pg ? pg_key_purge_expired(st->pg, now) : sq_key_purge_expired(st, now);
}

mv_rc store_key_policy_put(struct store *st, const struct st_key_policy *p)
{
    return st->pg ? pg_key_policy_put(st->pg, p) : sq_key_policy_put(st, p);
}

mv_rc store_key_policy_get(struct store *st, const char *vault, const char *name, struct st_key_policy *out)
{
    return st->pg ? pg_key_policy_get(st->pg, vault, name, out) : sq_key_policy_get(st, vault, name, out);
}

mv_rc store_key_policy_list(struct store *st, struct st_key_policy **out, size_t *n)
{
    return st->pg ? pg_key_policy_list(st->pg, out, n) : sq_key_policy_list(st, out, n);
}

mv_rc store_key_policy_claim(struct store *st, const char *vault, const char *name, const char *version)
{
    return st->pg ? pg_key_policy_claim(st->pg, vault, name, version) : sq_key_policy_claim(st, vault, name, version);
}

mv_rc store_checkpoint_add(struct store *st, const char *writer, int64_t records, const char *head_hash, int64_t at, struct st_checkpoint *out)
{
    return st->pg ? pg_checkpoint_add(st->pg, writer, records, head_hash, at, out) : sq_checkpoint_add(st, writer, records, head_hash, at, out);
}

mv_rc store_audit_head_put(struct store *st, const struct st_audit_head *h)
{
    return st->pg ? pg_audit_head_put(st->pg, h) : sq_audit_head_put(st, h);
}

mv_rc store_audit_head_list(struct store *st, struct st_audit_head **out, size_t *n)
{
    return st->pg ? pg_audit_head_list(st->pg, out, n) : sq_audit_head_list(st, out, n);
}

mv_rc store_checkpoint_list(struct store *st, struct st_checkpoint **out, size_t *n)
{
    return st->pg ? pg_checkpoint_list(st->pg, out, n) : sq_checkpoint_list(st, out, n);
}

mv_rc store_quota_lease(struct store *st, const char *vault, int64_t window_start, enum st_quota_kind kind, int64_t want, int64_t limit, int64_t *granted)
{
    TIMED("quota_lease", st->pg ? pg_quota_lease(st->pg, vault, window_start, kind, want, limit, granted) : sq_quota_lease(st, vault, window_start, kind, want, limit, granted));
}

mv_rc store_cert_put(struct store *st, const struct st_certobj *o)
{
    return st->pg ? pg_cert_put(st->pg, o) : sq_cert_put(st, o);
}

mv_rc store_cert_get(struct store *st, const char *vault, int kind, const char *name, const char *version, int deleted, struct st_certobj *out)
{
    return st->pg ? pg_cert_get(st->pg, vault, kind, name, version, deleted, out) : sq_cert_get(st, vault, kind, name, version, deleted, out);
}

mv_rc store_cert_list(struct store *st, const char *vault, int kind, const char *name, const char *after, size_t limit, int deleted, struct st_certobj **out, size_t *n)
{
    return st->pg ? pg_cert_list(st->pg, vault, kind, name, after, limit, deleted, out, n) : sq_cert_list(st, vault, kind, name, after, limit, deleted, out, n);
}

mv_rc store_cert_mark(struct store *st, const char *vault, const char *name, int64_t deleted, int64_t purge_at)
{
    return st->pg ? pg_cert_mark(st->pg, vault, name, deleted, purge_at) : sq_cert_mark(st, vault, name, deleted, purge_at);
}

mv_rc store_cert_remove(struct store *st, const char *vault, int kind, const char *name, const char *version)
{
    return st->pg ? pg_cert_remove(st->pg, vault, kind, name, version) : sq_cert_remove(st, vault, kind, name, version);
}

mv_rc store_cert_claim(struct store *st, const char *vault, const char *name, const char *old_doc, const char *new_doc)
{
    return st->pg ? pg_cert_claim(st->pg, vault, name, old_doc, new_doc) : sq_cert_claim(st, vault, name, old_doc, new_doc);
}
