/* pg_audit.c: audit checkpoints and writers' chain heads on PostgreSQL (store.h). Several servers append to one chain:
 * the append runs in one transaction that first takes pg_advisory_xact_lock
 * (PG_ADVISORY_CHECKPOINT), so the read of the last checkpoint and the insert of the next are
 * one step for the whole cluster, and seq stays gapless. A re-run after an unknown COMMIT finds
 * its own checkpoint as the writer's newest and returns it (store.h). */
#include <string.h>

#include "store/checkpoint.h"
#include "store/pg_internal.h"

static mv_rc read_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_checkpoint *c = item;
    c->seq = pg_col_i64(r, row, 0);
    CHECK(pg_col_text(r, row, 1, c->writer, sizeof c->writer));
    c->records = pg_col_i64(r, row, 2);
    CHECK(pg_col_text(r, row, 3, c->head_hash, sizeof c->head_hash));
    c->at = pg_col_i64(r, row, 4);
    CHECK(pg_col_text(r, row, 5, c->prev_hash, sizeof c->prev_hash));
    CHECK(pg_col_text(r, row, 6, c->hash, sizeof c->hash));
out:
    return rc;
}

struct add_call {
    const char *writer;
    int64_t records;
    const char *head_hash;
    int64_t at;
    struct st_checkpoint *out;
};

/* The first row of a query with at most one text parameter: *found = 0 when it has none. */
static mv_rc one_row(struct pg_store *pg, const char *sql, const char *param,
                     struct st_checkpoint *out, int *found)
{
    mv_rc rc = MV_OK;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    memset(out, 0, sizeof *out);
    if (param)
        pp_text(&pp, param);
    CHECK(pg_exec(pg, sql, param ? &pp : NULL, &r, NULL));
    *found = PQntuples(r) > 0;
    if (*found)
        CHECK(read_row(r, 0, out));
out:
    PQclear(r);
    return rc;
}

static mv_rc add_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct add_call *c = arg;
    struct pg_params pp = {0};
    struct st_checkpoint prev;
    int found = 0;
    pp_i64(&pp, PG_ADVISORY_CHECKPOINT);
    CHECK(pg_exec(pg, "SELECT pg_advisory_xact_lock($1::bigint)", &pp, NULL, NULL));
    CHECK(one_row(pg,
                  "SELECT " ST_CHECKPOINT_COLS " FROM audit_checkpoints WHERE writer = $1"
                  " ORDER BY seq DESC LIMIT 1",
                  c->writer, c->out, &found));
    if (found && c->out->records == c->records && strcmp(c->out->head_hash, c->head_hash) == 0)
        goto out; /* already pinned (or our own commit, on a re-run) */
    CHECK(one_row(pg, "SELECT " ST_CHECKPOINT_COLS " FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
                  NULL, &prev, &found));
    CHECK(st_checkpoint_next(found ? &prev : NULL, c->writer, c->records, c->head_hash, c->at,
                             c->out));
    pp.n = 0;
    pp_i64(&pp, c->out->seq);
    pp_text(&pp, c->out->writer);
    pp_i64(&pp, c->out->records);
    pp_text(&pp, c->out->head_hash);
    pp_i64(&pp, c->out->at);
    pp_text(&pp, c->out->prev_hash);
    pp_text(&pp, c->out->hash);
    CHECK(pg_exec(pg,
                  "INSERT INTO audit_checkpoints (" ST_CHECKPOINT_COLS ")"
                  " VALUES ($1::bigint, $2, $3::bigint, $4, $5::bigint, $6, $7)",
                  &pp, NULL, NULL));
out:
    return rc;
}

mv_rc pg_checkpoint_add(struct pg_store *pg, const char *writer, int64_t records,
                        const char *head_hash, int64_t at, struct st_checkpoint *out)
{
    mv_rc rc = st_checkpoint_check(writer, records, head_hash);
    if (rc != MV_OK)
        return rc;
    struct add_call c = {.writer = writer, .records = records, .head_hash = head_hash, .at = at, .out = out};
    return pg_run(pg, PG_WRITE, add_fn, &c);
}

mv_rc pg_checkpoint_list(struct pg_store *pg, struct st_checkpoint **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = pg_list_all(pg, "SELECT " ST_CHECKPOINT_COLS " FROM audit_checkpoints ORDER BY seq",
                           sizeof **out, read_row, NULL, &arr, n);
    *out = arr;
    return rc;
}

static mv_rc read_head(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_audit_head *h = item;
    CHECK(pg_col_text(r, row, 0, h->writer, sizeof h->writer));
    h->records = pg_col_i64(r, row, 1);
    CHECK(pg_col_text(r, row, 2, h->head_hash, sizeof h->head_hash));
    CHECK(pg_col_text(r, row, 3, h->mac, sizeof h->mac));
    h->at = pg_col_i64(r, row, 4);
out:
    return rc;
}

static mv_rc head_put_fn(struct pg_store *pg, void *arg)
{
    const struct st_audit_head *h = arg;
    struct pg_params pp = {0};
    pp_text(&pp, h->writer);
    pp_i64(&pp, h->records);
    pp_text(&pp, h->head_hash);
    pp_text(&pp, h->mac);
    pp_i64(&pp, h->at);
    return pg_exec(pg, ST_AUDIT_HEAD_UPSERT("$1", "$2::bigint", "$3", "$4", "$5::bigint"), &pp,
                   NULL, NULL);
}

mv_rc pg_audit_head_put(struct pg_store *pg, const struct st_audit_head *h)
{
    mv_rc rc = st_audit_head_check(h);
    if (rc != MV_OK)
        return rc;
    /* One statement, idempotent: a re-run after an unknown outcome changes nothing more. */
    return pg_run(pg, PG_WRITE1, head_put_fn, (void *)h);
}

mv_rc pg_audit_head_list(struct pg_store *pg, struct st_audit_head **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = pg_list_all(pg, "SELECT " ST_AUDIT_HEAD_COLS " FROM audit_heads ORDER BY writer",
                           sizeof **out, read_head, NULL, &arr, n);
    *out = arr;
    return rc;
}
