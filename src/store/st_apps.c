/* st_apps.c: service principals' credentials and federated identity credentials on SQLite
 * (store.h has the rules), and the list of principals of one kind. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

#define PRINCIPAL_COLS "id, client_id, kind, name, resource_id, public_key_pem"
#define CRED_COLS                                                                                  \
    "key_id, client_id, kind, hint, secret_sha256, thumb_sha1, thumb_sha256, cert_pem, created,"  \
    " expires"
#define FIC_COLS "identity, name, issuer, subject, audience, created"

static mv_rc principal_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_principal *p = item;
    CHECK(st_col_text(s, 0, p->id, sizeof p->id));
    CHECK(st_col_text(s, 1, p->client_id, sizeof p->client_id));
    int64_t kind = (int64_t)sqlite3_column_int64(s, 2);
    ENSURE(kind >= ST_PRINCIPAL_ADMIN && kind <= ST_PRINCIPAL_APP, MV_ERR_INTERNAL);
    p->kind = (enum st_principal_kind)kind;
    CHECK(st_col_text(s, 3, p->name, sizeof p->name));
    CHECK(st_col_text(s, 4, p->resource_id, sizeof p->resource_id));
    CHECK(st_col_dup(s, 5, &p->public_key_pem));
out:
    return rc;
}

static void principal_clear(void *item) { st_principal_clear(item); }

mv_rc sq_principal_list(struct store *st, enum st_principal_kind kind, struct st_principal **out,
                        size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    CHECK(st_prep(st, ST_Q_PRINCIPAL_LIST,
                  "SELECT " PRINCIPAL_COLS " FROM principals WHERE kind = ?1 ORDER BY name, id", &s));
    st_bind_i64(st, s, 1, (int64_t)kind);
    CHECK(st_collect(st, s, sizeof **out, principal_row, principal_clear, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}

mv_rc sq_app_credential_add(struct store *st, const struct st_app_credential *c)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(c->key_id[0] && c->client_id[0], MV_ERR_BAD_REQUEST);
    ENSURE(c->kind == ST_CRED_SECRET || (c->kind == ST_CRED_CERT && c->cert_pem), MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_CRED_ADD,
                  "INSERT INTO app_credentials (" CRED_COLS ")"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                  &s));
    st_bind_text(st, s, 1, c->key_id);
    st_bind_text(st, s, 2, c->client_id);
    st_bind_i64(st, s, 3, (int64_t)c->kind);
    st_bind_text(st, s, 4, c->hint);
    st_bind_text(st, s, 5, c->secret_sha256);
    st_bind_text(st, s, 6, c->thumb_sha1);
    st_bind_text(st, s, 7, c->thumb_sha256);
    st_bind_text(st, s, 8, c->cert_pem);
    st_bind_i64(st, s, 9, c->created);
    st_bind_i64(st, s, 10, c->expires);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc cred_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_app_credential *c = item;
    CHECK(st_col_text(s, 0, c->key_id, sizeof c->key_id));
    CHECK(st_col_text(s, 1, c->client_id, sizeof c->client_id));
    int64_t kind = (int64_t)sqlite3_column_int64(s, 2);
    ENSURE(kind == ST_CRED_SECRET || kind == ST_CRED_CERT, MV_ERR_INTERNAL);
    c->kind = (enum st_cred_kind)kind;
    CHECK(st_col_text(s, 3, c->hint, sizeof c->hint));
    CHECK(st_col_text(s, 4, c->secret_sha256, sizeof c->secret_sha256));
    CHECK(st_col_text(s, 5, c->thumb_sha1, sizeof c->thumb_sha1));
    CHECK(st_col_text(s, 6, c->thumb_sha256, sizeof c->thumb_sha256));
    CHECK(st_col_dup(s, 7, &c->cert_pem));
    c->created = (int64_t)sqlite3_column_int64(s, 8);
    c->expires = (int64_t)sqlite3_column_int64(s, 9);
out:
    return rc;
}

static void cred_clear(void *item)
{
    struct st_app_credential *c = item;
    free(c->cert_pem);
    c->cert_pem = NULL;
}

mv_rc sq_app_credentials(struct store *st, const char *client_id, struct st_app_credential **out,
                         size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    CHECK(st_prep(st, ST_Q_CRED_LIST,
                  "SELECT " CRED_COLS " FROM app_credentials WHERE client_id = ?1"
                  " ORDER BY created, rowid",
                  &s));
    st_bind_text(st, s, 1, client_id);
    CHECK(st_collect(st, s, sizeof **out, cred_row, cred_clear, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}

mv_rc sq_app_credentials_delete(struct store *st, const char *client_id)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_prep(st, ST_Q_CRED_DELETE, "DELETE FROM app_credentials WHERE client_id = ?1", &s));
    st_bind_text(st, s, 1, client_id);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_fic_put(struct store *st, const struct st_fic *f)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(f->identity[0] && f->name[0] && f->issuer[0] && f->subject[0] && f->audience[0],
           MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_FIC_PUT,
                  "INSERT INTO federated_credentials (" FIC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                  " ON CONFLICT (identity, name) DO UPDATE SET issuer = excluded.issuer,"
                  " subject = excluded.subject, audience = excluded.audience",
                  &s));
    st_bind_text(st, s, 1, f->identity);
    st_bind_text(st, s, 2, f->name);
    st_bind_text(st, s, 3, f->issuer);
    st_bind_text(st, s, 4, f->subject);
    st_bind_text(st, s, 5, f->audience);
    st_bind_i64(st, s, 6, f->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

static mv_rc fic_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_fic *f = item;
    CHECK(st_col_text(s, 0, f->identity, sizeof f->identity));
    CHECK(st_col_text(s, 1, f->name, sizeof f->name));
    CHECK(st_col_text(s, 2, f->issuer, sizeof f->issuer));
    CHECK(st_col_text(s, 3, f->subject, sizeof f->subject));
    CHECK(st_col_text(s, 4, f->audience, sizeof f->audience));
    f->created = (int64_t)sqlite3_column_int64(s, 5);
out:
    return rc;
}

mv_rc sq_fic_get(struct store *st, const char *identity, const char *name, struct st_fic *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    CHECK(st_prep(st, ST_Q_FIC_GET,
                  "SELECT " FIC_COLS " FROM federated_credentials WHERE identity = ?1 AND name = ?2",
                  &s));
    st_bind_text(st, s, 1, identity);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(fic_row(s, out));
out:
    st_done(s);
    return rc;
}

mv_rc sq_fic_list(struct store *st, const char *identity, struct st_fic **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    CHECK(st_prep(st, ST_Q_FIC_LIST,
                  "SELECT " FIC_COLS " FROM federated_credentials WHERE identity = ?1 ORDER BY name",
                  &s));
    st_bind_text(st, s, 1, identity);
    CHECK(st_collect(st, s, sizeof **out, fic_row, NULL, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}

mv_rc sq_fic_delete(struct store *st, const char *identity, const char *name)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_FIC_DELETE,
                  "DELETE FROM federated_credentials WHERE identity = ?1 AND name = ?2", &s));
    st_bind_text(st, s, 1, identity);
    st_bind_text(st, s, 2, name);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}
