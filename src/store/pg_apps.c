/* pg_apps.c: service principals' credentials and federated identity credentials on
 * PostgreSQL (store.h has the rules; st_apps.c the same on SQLite), and the list of principals
 * of one kind. Writes are single statements keyed by values chosen before the first attempt,
 * so a re-run after an unknown commit converges. */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define PRINCIPAL_COLS "id, client_id, kind, name, resource_id, public_key_pem"
#define CRED_COLS                                                                                  \
    "key_id, client_id, kind, hint, secret_sha256, thumb_sha1, thumb_sha256, cert_pem, created,"  \
    " expires"
#define FIC_COLS "identity, name, issuer, subject, audience, created"

/* A SELECT with parameters, collected into an array. */
struct list_call {
    const char *sql;
    struct pg_params pp;
    size_t elem;
    pg_read_fn read;
    pg_clear_fn clear;
    void **arr;
    size_t *n;
};

static mv_rc list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct list_call *c = arg;
    PGresult *r = NULL;
    CHECK(pg_exec(pg, c->sql, &c->pp, &r, NULL));
    CHECK(pg_collect(r, c->elem, c->read, c->clear, c->arr, c->n));
out:
    PQclear(r);
    return rc;
}

static mv_rc list(struct pg_store *pg, struct list_call *c)
{
    *c->arr = NULL;
    *c->n = 0;
    return pg_run(pg, PG_READ, list_fn, c);
}

static mv_rc principal_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_principal *p = item;
    CHECK(pg_col_text(r, row, 0, p->id, sizeof p->id));
    CHECK(pg_col_text(r, row, 1, p->client_id, sizeof p->client_id));
    int64_t kind = pg_col_i64(r, row, 2);
    ENSURE(kind >= ST_PRINCIPAL_ADMIN && kind <= ST_PRINCIPAL_APP, MV_ERR_INTERNAL);
    p->kind = (enum st_principal_kind)kind;
    CHECK(pg_col_text(r, row, 3, p->name, sizeof p->name));
    CHECK(pg_col_text(r, row, 4, p->resource_id, sizeof p->resource_id));
    CHECK(pg_col_dup(r, row, 5, &p->public_key_pem));
out:
    return rc;
}

static void principal_clear(void *item) { st_principal_clear(item); }

mv_rc pg_principal_list(struct pg_store *pg, enum st_principal_kind kind, struct st_principal **out,
                        size_t *n)
{
    void *arr = NULL;
    struct list_call c = {.sql = "SELECT " PRINCIPAL_COLS " FROM principals WHERE kind = $1"
                                 " ORDER BY name, lower(id)",
                          .elem = sizeof **out,
                          .read = principal_row,
                          .clear = principal_clear,
                          .arr = &arr,
                          .n = n};
    pp_i64(&c.pp, (int64_t)kind);
    mv_rc rc = list(pg, &c);
    *out = arr;
    return rc;
}

mv_rc pg_app_credential_add(struct pg_store *pg, const struct st_app_credential *c)
{
    struct pg_params pp = {0};
    if (!c->key_id[0] || !c->client_id[0] ||
        !(c->kind == ST_CRED_SECRET || (c->kind == ST_CRED_CERT && c->cert_pem))) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete credential");
        return MV_ERR_BAD_REQUEST;
    }
    pp_text(&pp, c->key_id);
    pp_text(&pp, c->client_id);
    pp_i64(&pp, (int64_t)c->kind);
    pp_text(&pp, c->hint);
    pp_text(&pp, c->secret_sha256);
    pp_text(&pp, c->thumb_sha1);
    pp_text(&pp, c->thumb_sha256);
    pp_text(&pp, c->cert_pem);
    pp_i64(&pp, c->created);
    pp_i64(&pp, c->expires);
    /* key_id is chosen before the first attempt: a re-run finds its own row */
    return pg_write_one(pg,
                        "INSERT INTO app_credentials (" CRED_COLS ")"
                        " VALUES (lower($1), lower($2), $3, $4, $5, $6, $7, $8, $9, $10)"
                        " ON CONFLICT (key_id) DO NOTHING",
                        &pp, 1);
}

static mv_rc cred_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_app_credential *c = item;
    CHECK(pg_col_text(r, row, 0, c->key_id, sizeof c->key_id));
    CHECK(pg_col_text(r, row, 1, c->client_id, sizeof c->client_id));
    int64_t kind = pg_col_i64(r, row, 2);
    ENSURE(kind == ST_CRED_SECRET || kind == ST_CRED_CERT, MV_ERR_INTERNAL);
    c->kind = (enum st_cred_kind)kind;
    CHECK(pg_col_text(r, row, 3, c->hint, sizeof c->hint));
    CHECK(pg_col_text(r, row, 4, c->secret_sha256, sizeof c->secret_sha256));
    CHECK(pg_col_text(r, row, 5, c->thumb_sha1, sizeof c->thumb_sha1));
    CHECK(pg_col_text(r, row, 6, c->thumb_sha256, sizeof c->thumb_sha256));
    CHECK(pg_col_dup(r, row, 7, &c->cert_pem));
    c->created = pg_col_i64(r, row, 8);
    c->expires = pg_col_i64(r, row, 9);
out:
    return rc;
}

static void cred_clear(void *item)
{
    struct st_app_credential *c = item;
    free(c->cert_pem);
    c->cert_pem = NULL;
}

mv_rc pg_app_credentials(struct pg_store *pg, const char *client_id, struct st_app_credential **out,
                         size_t *n)
{
    void *arr = NULL;
    struct list_call c = {.sql = "SELECT " CRED_COLS " FROM app_credentials"
                                 " WHERE client_id = lower($1) ORDER BY created, seq",
                          .elem = sizeof **out,
                          .read = cred_row,
                          .clear = cred_clear,
                          .arr = &arr,
                          .n = n};
    pp_text(&c.pp, client_id);
    mv_rc rc = list(pg, &c);
    *out = arr;
    return rc;
}

mv_rc pg_app_credentials_delete(struct pg_store *pg, const char *client_id)
{
    struct pg_params pp = {0};
    pp_text(&pp, client_id);
    return pg_write_one(pg, "DELETE FROM app_credentials WHERE client_id = lower($1)", &pp, 1);
}

mv_rc pg_fic_put(struct pg_store *pg, const struct st_fic *f)
{
    struct pg_params pp = {0};
    if (!f->identity[0] || !f->name[0] || !f->issuer[0] || !f->subject[0] || !f->audience[0]) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete federated credential");
        return MV_ERR_BAD_REQUEST;
    }
    pp_text(&pp, f->identity);
    pp_text(&pp, f->name);
    pp_text(&pp, f->issuer);
    pp_text(&pp, f->subject);
    pp_text(&pp, f->audience);
    pp_i64(&pp, f->created);
    return pg_write_one(pg,
                        "INSERT INTO federated_credentials (identity_key, name_key, " FIC_COLS ")"
                        " VALUES (lower($1), lower($2), $1, $2, $3, $4, $5, $6)"
                        " ON CONFLICT (identity_key, name_key) DO UPDATE SET"
                        " issuer = excluded.issuer, subject = excluded.subject,"
                        " audience = excluded.audience",
                        &pp, 1);
}

static mv_rc fic_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_fic *f = item;
    CHECK(pg_col_text(r, row, 0, f->identity, sizeof f->identity));
    CHECK(pg_col_text(r, row, 1, f->name, sizeof f->name));
    CHECK(pg_col_text(r, row, 2, f->issuer, sizeof f->issuer));
    CHECK(pg_col_text(r, row, 3, f->subject, sizeof f->subject));
    CHECK(pg_col_text(r, row, 4, f->audience, sizeof f->audience));
    f->created = pg_col_i64(r, row, 5);
out:
    return rc;
}

mv_rc pg_fic_get(struct pg_store *pg, const char *identity, const char *name, struct st_fic *out)
{
    mv_rc rc = MV_OK;
    struct st_fic *arr = NULL;
    size_t n = 0;
    void *v = NULL;
    struct list_call c = {.sql = "SELECT " FIC_COLS " FROM federated_credentials"
                                 " WHERE identity_key = lower($1) AND name_key = lower($2)",
                          .elem = sizeof *out,
                          .read = fic_row,
                          .arr = &v,
                          .n = &n};
    memset(out, 0, sizeof *out);
    pp_text(&c.pp, identity);
    pp_text(&c.pp, name);
    CHECK(list(pg, &c));
    arr = v;
    ENSURE(n > 0, MV_ERR_NOT_FOUND);
    *out = arr[0];
out:
    free(arr);
    return rc;
}

mv_rc pg_fic_list(struct pg_store *pg, const char *identity, struct st_fic **out, size_t *n)
{
    void *arr = NULL;
    struct list_call c = {.sql = "SELECT " FIC_COLS " FROM federated_credentials"
                                 " WHERE identity_key = lower($1) ORDER BY name_key",
                          .elem = sizeof **out,
                          .read = fic_row,
                          .arr = &arr,
                          .n = n};
    pp_text(&c.pp, identity);
    mv_rc rc = list(pg, &c);
    *out = arr;
    return rc;
}

struct fic_del {
    const char *identity, *name;
};

static mv_rc fic_delete_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    const struct fic_del *d = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, d->identity);
    pp_text(&pp, d->name);
    CHECK(pg_exec(pg,
                  "DELETE FROM federated_credentials"
                  " WHERE identity_key = lower($1) AND name_key = lower($2)",
                  &pp, NULL, &changes));
    ENSURE(changes > 0 || pg->replay, MV_ERR_NOT_FOUND);
    pg->touched = 1;
out:
    return rc;
}

mv_rc pg_fic_delete(struct pg_store *pg, const char *identity, const char *name)
{
    struct fic_del d = {identity, name};
    return pg_run(pg, PG_WRITE1, fic_delete_fn, &d);
}
