/* pg_rows.c: the call shapes most PostgreSQL store functions share (get one row by key,
 * delete by key, list a table, write one upsert), each run through pg_run. */
#include <string.h>

#include "store/pg_internal.h"

struct key_call {
    const char *sql;
    const char *key;
    const struct pg_params *pp;
    pg_read_fn read;
    pg_clear_fn clear;
    void *out;
    size_t outlen;
    int touches;
    void **arr;
    size_t *n;
};

static mv_rc get_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct key_call *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    memset(c->out, 0, c->outlen);
    pp_text(&pp, c->key);
    CHECK(pg_exec(pg, c->sql, &pp, &r, NULL));
    ENSURE(PQntuples(r) > 0, MV_ERR_NOT_FOUND);
    rc = c->read(r, 0, c->out);
    if (rc != MV_OK && c->clear)
        c->clear(c->out);
out:
    PQclear(r);
    return rc;
}

mv_rc pg_get_by_key(struct pg_store *pg, const char *sql, const char *key, pg_read_fn read,
                    pg_clear_fn clear, void *out, size_t outlen)
{
    struct key_call c = {.sql = sql, .key = key, .read = read, .clear = clear, .out = out, .outlen = outlen};
    return pg_run(pg, PG_READ, get_fn, &c);
}

static mv_rc delete_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct key_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->key);
    CHECK(pg_exec(pg, c->sql, &pp, NULL, &changes));
    /* A re-run after an unknown commit finds the row gone: that is our own delete. */
    ENSURE(changes > 0 || pg->replay, MV_ERR_NOT_FOUND);
    if (c->touches)
        pg->touched = 1;
out:
    return rc;
}

mv_rc pg_delete_by_key(struct pg_store *pg, const char *sql, const char *key, int touches)
{
    struct key_call c = {.sql = sql, .key = key, .touches = touches};
    return pg_run(pg, PG_WRITE1, delete_fn, &c);
}

static mv_rc list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct key_call *c = arg;
    PGresult *r = NULL;
    CHECK(pg_exec(pg, c->sql, NULL, &r, NULL));
    CHECK(pg_collect(r, c->outlen, c->read, c->clear, c->arr, c->n));
out:
    PQclear(r);
    return rc;
}

mv_rc pg_list_all(struct pg_store *pg, const char *sql, size_t elem, pg_read_fn read,
                  pg_clear_fn clear, void **arr, size_t *n)
{
    struct key_call c = {.sql = sql, .read = read, .clear = clear, .outlen = elem, .arr = arr, .n = n};
    *arr = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, list_fn, &c);
}

static mv_rc write_fn(struct pg_store *pg, void *arg)
{
    struct key_call *c = arg;
    mv_rc rc = pg_exec(pg, c->sql, c->pp, NULL, NULL);
    if (rc == MV_OK && c->touches)
        pg->touched = 1;
    return rc;
}

mv_rc pg_write_one(struct pg_store *pg, const char *sql, const struct pg_params *pp, int touches)
{
    struct key_call c = {.sql = sql, .pp = pp, .touches = touches};
    return pg_run(pg, PG_WRITE1, write_fn, &c);
}
