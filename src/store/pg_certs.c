/* pg_certs.c: Key Vault certificate objects on PostgreSQL (same semantics as st_certs.c).
 *
 * Idempotency (a call re-run after an unknown commit must converge): put is an upsert of the
 * same values; mark sets the same values again; remove finds the rows gone on a re-run, which
 * is then success (pg->replay). Names and versions are compared through lower() and the unique
 * index (vault_key, kind, lower(name), lower(version)); "latest" = greatest created, then seq. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define PG_CERT_COLS "vault, kind, name, version, doc, created, deleted, purge_at, sealed"

static mv_rc cert_row(const PGresult *r, int row, int with_sealed, struct st_certobj *out)
{
    mv_rc rc = MV_OK;
    CHECK(pg_col_text(r, row, 0, out->vault, sizeof out->vault));
    out->kind = (int)pg_col_i64(r, row, 1);
    CHECK(pg_col_text(r, row, 2, out->name, sizeof out->name));
    CHECK(pg_col_text(r, row, 3, out->version, sizeof out->version));
    CHECK(pg_col_dup(r, row, 4, &out->doc));
    out->created = pg_col_i64(r, row, 5);
    out->deleted = pg_col_i64(r, row, 6);
    out->purge_at = pg_col_i64(r, row, 7);
    if (with_sealed)
        CHECK(pg_col_bytea(r, row, 8, &out->sealed));
out:
    return rc;
}

static mv_rc listed_row(const PGresult *r, int row, void *item)
{
    return cert_row(r, row, 0, item);
}

static void clear_item(void *item) { st_certobj_clear(item); }

mv_rc pg_cert_put(struct pg_store *pg, const struct st_certobj *o)
{
    struct pg_params pp = {0};
    if (!o->vault[0] || !o->doc || o->kind < ST_CERT_VERSION || o->kind > ST_CERT_CONTACTS) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: certificate object without a key");
        return MV_ERR_BAD_REQUEST;
    }
    pp_text(&pp, o->vault);
    pp_i64(&pp, o->kind);
    pp_text(&pp, o->name);
    pp_text(&pp, o->version);
    pp_text(&pp, o->doc);
    pp_bytea(&pp, o->sealed.p ? o->sealed.p : "", o->sealed.len);
    pp_i64(&pp, o->created);
    pp_i64(&pp, o->deleted);
    pp_i64(&pp, o->purge_at);
    return pg_write_one(pg,
                        "INSERT INTO cert_objects (vault, vault_key, kind, name, version, doc,"
                        " sealed, created, deleted, purge_at)"
                        " VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9)"
                        " ON CONFLICT (vault_key, kind, lower(name), lower(version)) DO UPDATE"
                        " SET doc = excluded.doc, sealed = excluded.sealed,"
                        " deleted = excluded.deleted, purge_at = excluded.purge_at",
                        &pp, 0);
}

struct cert_call {
    const char *vault, *name, *version, *after;
    int kind, deleted;
    size_t limit;
    int64_t del_at, purge_at;
    struct st_certobj *one;
    struct st_certobj **list;
    size_t *n;
};

static mv_rc get_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct cert_call *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    memset(c->one, 0, sizeof *c->one);
    pp_text(&pp, c->vault);
    pp_i64(&pp, c->kind);
    pp_text(&pp, c->name);
    pp_i64(&pp, c->deleted ? 1 : 0);
    if (c->version && c->version[0]) {
        pp_text(&pp, c->version);
        CHECK(pg_exec(pg,
                      "SELECT " PG_CERT_COLS " FROM cert_objects WHERE vault_key = lower($1)"
                      " AND kind = $2 AND lower(name) = lower($3)"
                      " AND (deleted <> 0) = ($4::bigint <> 0) AND lower(version) = lower($5)",
                      &pp, &r, NULL));
    } else {
        CHECK(pg_exec(pg,
                      "SELECT " PG_CERT_COLS " FROM cert_objects WHERE vault_key = lower($1)"
                      " AND kind = $2 AND lower(name) = lower($3)"
                      " AND (deleted <> 0) = ($4::bigint <> 0)"
                      " ORDER BY created DESC, seq DESC LIMIT 1",
                      &pp, &r, NULL));
    }
    ENSURE(PQntuples(r) > 0, MV_ERR_NOT_FOUND);
    rc = cert_row(r, 0, 1, c->one);
    if (rc != MV_OK)
        st_certobj_clear(c->one);
out:
    PQclear(r);
    return rc;
}

mv_rc pg_cert_get(struct pg_store *pg, const char *vault, int kind, const char *name,
                  const char *version, int deleted, struct st_certobj *out)
{
    struct cert_call c = {.vault = vault, .kind = kind, .name = name, .version = version,
                          .deleted = deleted, .one = out};
    return pg_run(pg, PG_READ, get_fn, &c);
}

static mv_rc list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct cert_call *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    void *arr = NULL;
    pp_text(&pp, c->vault);
    pp_i64(&pp, c->kind);
    pp_i64(&pp, c->deleted ? 1 : 0);
    pp_text(&pp, c->after ? c->after : "");
    pp_i64(&pp, c->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)c->limit);
    if (!c->name) {
        CHECK(pg_exec(pg,
                      "SELECT " PG_CERT_COLS " FROM (SELECT DISTINCT ON (lower(name)) * FROM"
                      " cert_objects WHERE vault_key = lower($1) AND kind = $2"
                      " AND lower(name) > lower($4)"
                      " ORDER BY lower(name), created DESC, seq DESC) t"
                      " WHERE (deleted <> 0) = ($3::bigint <> 0) ORDER BY lower(name) LIMIT $5",
                      &pp, &r, NULL));
    } else {
        pp_text(&pp, c->name);
        CHECK(pg_exec(pg,
                      "SELECT " PG_CERT_COLS " FROM cert_objects WHERE vault_key = lower($1)"
                      " AND kind = $2 AND (deleted <> 0) = ($3::bigint <> 0)"
                      " AND lower(version) > lower($4) AND lower(name) = lower($6)"
                      " ORDER BY lower(version) LIMIT $5",
                      &pp, &r, NULL));
    }
    CHECK(pg_collect(r, sizeof **c->list, listed_row, clear_item, &arr, c->n));
    *c->list = arr;
out:
    PQclear(r);
    return rc;
}

mv_rc pg_cert_list(struct pg_store *pg, const char *vault, int kind, const char *name,
                   const char *after, size_t limit, int deleted, struct st_certobj **out,
                   size_t *n)
{
    struct cert_call c = {.vault = vault, .kind = kind, .name = name, .after = after,
                          .limit = limit, .deleted = deleted, .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, list_fn, &c);
}

static mv_rc mark_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct cert_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    pp_i64(&pp, c->del_at);
    pp_i64(&pp, c->purge_at);
    CHECK(pg_exec(pg,
                  "UPDATE cert_objects SET deleted = $3, purge_at = $4"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND kind IN (1, 2)",
                  &pp, NULL, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    return rc;
}

mv_rc pg_cert_mark(struct pg_store *pg, const char *vault, const char *name, int64_t deleted,
                   int64_t purge_at)
{
    struct cert_call c = {.vault = vault, .name = name, .del_at = deleted, .purge_at = purge_at};
    return pg_run(pg, PG_WRITE1, mark_fn, &c);
}

static mv_rc remove_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct cert_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    pp_i64(&pp, c->kind);
    pp_text(&pp, c->version);
    CHECK(pg_exec(pg,
                  "DELETE FROM cert_objects WHERE vault_key = lower($1)"
                  " AND lower(name) = lower($2)"
                  " AND (kind = $3 OR ($3 = 0 AND kind IN (1, 2, 3)))"
                  " AND ($4::text IS NULL OR lower(version) = lower($4))",
                  &pp, NULL, &changes));
    /* A re-run after an unknown commit finds the rows gone: that is our own delete. */
    ENSURE(changes > 0 || pg->replay, MV_ERR_NOT_FOUND);
out:
    return rc;
}

mv_rc pg_cert_remove(struct pg_store *pg, const char *vault, int kind, const char *name,
                     const char *version)
{
    struct cert_call c = {.vault = vault, .kind = kind, .name = name, .version = version};
    return pg_run(pg, PG_WRITE1, remove_fn, &c);
}
