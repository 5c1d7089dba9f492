/* pg_principals.c: service principals, signing keys, enrolled nodes and join tokens on
 * PostgreSQL. Writes are upserts keyed by ids chosen before the first attempt, so a re-run
 * after an unknown commit converges; join_consume is the exception (see docs/store.md). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define PRINCIPAL_COLS "id, client_id, kind, name, resource_id, public_key_pem"

mv_rc pg_principal_put(struct pg_store *pg, const struct st_principal *p)
{
    struct pg_params pp = {0};
    if (p->kind < ST_PRINCIPAL_ADMIN || p->kind > ST_PRINCIPAL_APP) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: principal kind");
        return MV_ERR_BAD_REQUEST;
    }
    pp_text(&pp, p->id);
    pp_text(&pp, p->client_id);
    pp_i64(&pp, (int64_t)p->kind);
    pp_text(&pp, p->name);
    pp_text(&pp, p->resource_id);
    pp_text(&pp, p->public_key_pem);
    return pg_write_one(pg,
                        "INSERT INTO principals (" PRINCIPAL_COLS ") VALUES ($1, $2, $3, $4, $5, $6)"
                        " ON CONFLICT ((lower(id))) DO UPDATE SET client_id = excluded.client_id,"
                        " kind = excluded.kind, name = excluded.name,"
                        " resource_id = excluded.resource_id, public_key_pem = excluded.public_key_pem",
                        &pp, 1);
}

static mv_rc principal_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_principal *out = item;
    CHECK(pg_col_text(r, row, 0, out->id, sizeof out->id));
    CHECK(pg_col_text(r, row, 1, out->client_id, sizeof out->client_id));
    int64_t kind = pg_col_i64(r, row, 2);
    ENSURE_MSG(kind >= ST_PRINCIPAL_ADMIN && kind <= ST_PRINCIPAL_APP, MV_ERR_INTERNAL,
               "store: principal kind %lld", (long long)kind);
    out->kind = (enum st_principal_kind)kind;
    CHECK(pg_col_text(r, row, 3, out->name, sizeof out->name));
    CHECK(pg_col_text(r, row, 4, out->resource_id, sizeof out->resource_id));
    CHECK(pg_col_dup(r, row, 5, &out->public_key_pem));
out:
    return rc;
}

static void principal_clear(void *item) { st_principal_clear(item); }

mv_rc pg_principal_get(struct pg_store *pg, const char *id, struct st_principal *out)
{
    return pg_get_by_key(pg, "SELECT " PRINCIPAL_COLS " FROM principals WHERE lower(id) = lower($1)",
                         id, principal_row, principal_clear, out, sizeof *out);
}

mv_rc pg_principal_by_client(struct pg_store *pg, const char *client_id, struct st_principal *out)
{
    return pg_get_by_key(pg,
                         "SELECT " PRINCIPAL_COLS " FROM principals"
                         " WHERE lower(client_id) = lower($1)",
                         client_id, principal_row, principal_clear, out, sizeof *out);
}

mv_rc pg_principal_delete(struct pg_store *pg, const char *id)
{
    return pg_delete_by_key(pg, "DELETE FROM principals WHERE lower(id) = lower($1)", id, 1);
}

/* ---- signing keys ---- */

mv_rc pg_signing_key_put(struct pg_store *pg, const struct st_signing_key *k)
{
    struct pg_params pp = {0};
    if (!k->kid[0] || !k->sealed_private_b64 || !k->public_pem || !k->x5c_b64) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete signing key");
        return MV_ERR_BAD_REQUEST;
    }
    pp_text(&pp, k->kid);
    pp_text(&pp, k->sealed_private_b64);
    pp_text(&pp, k->public_pem);
    pp_text(&pp, k->x5c_b64);
    pp_i64(&pp, k->created);
    pp_i64(&pp, k->retired);
    return pg_write_one(pg,
                        "INSERT INTO signing_keys (kid, sealed_private_b64, public_pem, x5c_b64,"
                        " created, retired) VALUES ($1, $2, $3, $4, $5, $6)"
                        " ON CONFLICT (kid) DO UPDATE SET"
                        " sealed_private_b64 = excluded.sealed_private_b64,"
                        " public_pem = excluded.public_pem, x5c_b64 = excluded.x5c_b64,"
                        " created = excluded.created, retired = excluded.retired",
                        &pp, 1);
}

mv_rc pg_signing_key_delete(struct pg_store *pg, const char *kid)
{
    return pg_delete_by_key(pg, "DELETE FROM signing_keys WHERE kid = $1", kid, 1);
}

static mv_rc key_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *k = item;
    CHECK(pg_col_text(r, row, 0, k->kid, sizeof k->kid));
    CHECK(pg_col_dup(r, row, 1, &k->sealed_private_b64));
    CHECK(pg_col_dup(r, row, 2, &k->public_pem));
    CHECK(pg_col_dup(r, row, 3, &k->x5c_b64));
    ENSURE(k->sealed_private_b64 && k->public_pem && k->x5c_b64, MV_ERR_INTERNAL);
    k->created = pg_col_i64(r, row, 4);
    k->retired = pg_col_i64(r, row, 5);
out:
    return rc;
}

static void key_clear(void *item)
{
    struct st_signing_key *k = item;
    if (k->sealed_private_b64)
        OPENSSL_cleanse(k->sealed_private_b64, strlen(k->sealed_private_b64));
    free(k->sealed_private_b64);
    free(k->public_pem);
    free(k->x5c_b64);
    memset(k, 0, sizeof *k);
}

mv_rc pg_signing_keys(struct pg_store *pg, struct st_signing_key **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = pg_list_all(pg,
                           "SELECT kid, sealed_private_b64, public_pem, x5c_b64, created, retired"
                           " FROM signing_keys ORDER BY created DESC, seq DESC",
                           sizeof **out, key_row, key_clear, &arr, n);
    *out = arr;
    return rc;
}

/* ---- nodes and join tokens ---- */

mv_rc pg_node_put(struct pg_store *pg, const struct st_node *n)
{
    struct pg_params pp = {0};
    if (!n->client_id[0] || !n->public_key_pem) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete node");
        return MV_ERR_BAD_REQUEST;
    }
    pp_text(&pp, n->client_id);
    pp_text(&pp, n->vm);
    pp_text(&pp, n->public_key_pem);
    pp_i64(&pp, n->created);
    /* An unknown VM fails the foreign key: NOT_FOUND. */
    return pg_write_one(pg,
                        "INSERT INTO nodes (client_id, vm, vm_key, public_key_pem, created)"
                        " VALUES ($1, $2, lower($2), $3, $4)"
                        " ON CONFLICT ((lower(client_id))) DO UPDATE SET vm = excluded.vm,"
                        " vm_key = excluded.vm_key, public_key_pem = excluded.public_key_pem,"
                        " created = excluded.created",
                        &pp, 1);
}

static mv_rc node_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_node *out = item;
    CHECK(pg_col_text(r, row, 0, out->client_id, sizeof out->client_id));
    CHECK(pg_col_text(r, row, 1, out->vm, sizeof out->vm));
    CHECK(pg_col_dup(r, row, 2, &out->public_key_pem));
    ENSURE(out->public_key_pem, MV_ERR_INTERNAL);
    out->created = pg_col_i64(r, row, 3);
out:
    return rc;
}

static void node_clear(void *item) { st_node_clear(item); }

mv_rc pg_node_get(struct pg_store *pg, const char *client_id, struct st_node *out)
{
    return pg_get_by_key(pg,
                         "SELECT client_id, vm, public_key_pem, created FROM nodes"
                         " WHERE lower(client_id) = lower($1)",
                         client_id, node_row, node_clear, out, sizeof *out);
}

struct join_put {
    const char *hash, *vm;
    int64_t expires;
};

static mv_rc join_put_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct join_put *j = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, j->hash);
    pp_text(&pp, j->vm);
    pp_i64(&pp, j->expires);
    CHECK(pg_exec(pg,
                  "INSERT INTO join_tokens (token_hash, vm, vm_key, expires)"
                  " VALUES ($1, $2, lower($2), $3) ON CONFLICT (token_hash) DO NOTHING",
                  &pp, NULL, &changes));
    /* The hash of a fresh random token: an existing row is our own earlier attempt when this
     * is a re-run after an unknown commit, else a reuse (CONFLICT, as on SQLite). */
    ENSURE_MSG(changes > 0 || pg->replay, MV_ERR_CONFLICT, "store: join token exists");
out:
    return rc;
}

mv_rc pg_join_put(struct pg_store *pg, const char *token_hash, const char *vm, int64_t expires)
{
    struct join_put j = {token_hash, vm, expires};
    if (!token_hash || !token_hash[0] || !vm) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete join token");
        return MV_ERR_BAD_REQUEST;
    }
    return pg_run(pg, PG_WRITE1, join_put_fn, &j);
}

struct consume {
    const char *hash;
    int64_t now;
    char *vm;
};

static mv_rc consume_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct consume *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    pp_text(&pp, c->hash);
    pp_i64(&pp, c->now > 0 ? c->now : 1); /* used != 0 marks it spent */
    /* One statement: the check (unused, unexpired) and the mark are one atomic write. */
    CHECK(pg_exec(pg,
                  "UPDATE join_tokens SET used = $2"
                  " WHERE token_hash = $1 AND used = 0 AND expires > $2 RETURNING vm",
                  &pp, &r, NULL));
    ENSURE_MSG(PQntuples(r) == 1, MV_ERR_NOT_FOUND, "store: join token unknown, used or expired");
    CHECK(pg_col_text(r, 0, 0, c->vm, ST_NAME));
out:
    PQclear(r);
    return rc;
}

mv_rc pg_join_consume(struct pg_store *pg, const char *token_hash, int64_t now, char vm_out[ST_NAME])
{
    struct consume c = {token_hash, now, vm_out};
    vm_out[0] = '\0';
    mv_rc rc = pg_run(pg, PG_WRITE1, consume_fn, &c);
    if (rc != MV_OK)
        vm_out[0] = '\0';
    return rc;
}

struct revoke {
    const char *vm;
    int64_t now;
};

/* Both deletes converge when re-run after an unknown commit. */
static mv_rc revoke_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    const struct revoke *v = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, v->vm);
    CHECK(pg_exec(pg, "DELETE FROM nodes WHERE vm_key = lower($1)", &pp, NULL, &changes));
    if (changes > 0)
        pg->touched = 1;
    pp.n = 0;
    pp_i64(&pp, v->now);
    CHECK(pg_exec(pg, "DELETE FROM join_tokens WHERE expires <= $1 OR used <> 0", &pp, NULL,
                  NULL));
out:
    return rc;
}

mv_rc pg_node_revoke_vm(struct pg_store *pg, const char *vm, int64_t now)
{
    struct revoke v = {vm, now};
    if (!vm || !vm[0]) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: no vm");
        return MV_ERR_BAD_REQUEST;
    }
    return pg_run(pg, PG_WRITE, revoke_fn, &v);
}
