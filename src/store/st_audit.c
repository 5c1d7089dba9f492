/* st_audit.c: audit checkpoints and writers' chain heads on SQLite (store.h). The append reads the chain's last
 * checkpoint and inserts the next one inside one write transaction (BEGIN IMMEDIATE), which is
 * the lock that keeps the chain linear when several processes share the file. */
#include <string.h>

#include "store/checkpoint.h"
#include "store/sqlite_internal.h"

static mv_rc read_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_checkpoint *c = item;
    c->seq = (int64_t)sqlite3_column_int64(s, 0);
    CHECK(st_col_text(s, 1, c->writer, sizeof c->writer));
    c->records = (int64_t)sqlite3_column_int64(s, 2);
    CHECK(st_col_text(s, 3, c->head_hash, sizeof c->head_hash));
    c->at = (int64_t)sqlite3_column_int64(s, 4);
    CHECK(st_col_text(s, 5, c->prev_hash, sizeof c->prev_hash));
    CHECK(st_col_text(s, 6, c->hash, sizeof c->hash));
out:
    return rc;
}

/* The newest checkpoint (of writer, unless NULL): *found = 0 when there is none. */
static mv_rc last(struct store *st, const char *writer, struct st_checkpoint *out, int *found)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    memset(out, 0, sizeof *out);
    if (writer) {
        CHECK(st_prep(st, ST_Q_CHECKPOINT_LAST_OF,
                      "SELECT " ST_CHECKPOINT_COLS " FROM audit_checkpoints WHERE writer = ?1"
                      " ORDER BY seq DESC LIMIT 1",
                      &s));
        st_bind_text(st, s, 1, writer);
    } else {
        CHECK(st_prep(st, ST_Q_CHECKPOINT_LAST,
                      "SELECT " ST_CHECKPOINT_COLS " FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
                      &s));
    }
    CHECK(st_step(st, s, found));
    if (*found)
        CHECK(read_row(s, out));
out:
    st_done(s);
    return rc;
}

mv_rc sq_checkpoint_add(struct store *st, const char *writer, int64_t records,
                        const char *head_hash, int64_t at, struct st_checkpoint *out)
{
    mv_rc rc = MV_OK;
    struct st_tx tx = {0};
    struct st_checkpoint prev;
    sqlite3_stmt *s = NULL;
    int found = 0;
    CHECK(st_checkpoint_check(writer, records, head_hash));
    CHECK(st_tx_begin(st, &tx));
    CHECK(last(st, writer, out, &found));
    if (found && out->records == records && strcmp(out->head_hash, head_hash) == 0)
        goto commit; /* already pinned */
    CHECK(last(st, NULL, &prev, &found));
    CHECK(st_checkpoint_next(found ? &prev : NULL, writer, records, head_hash, at, out));
    CHECK(st_prep(st, ST_Q_CHECKPOINT_ADD,
                  "INSERT INTO audit_checkpoints (" ST_CHECKPOINT_COLS ")"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                  &s));
    st_bind_i64(st, s, 1, out->seq);
    st_bind_text(st, s, 2, out->writer);
    st_bind_i64(st, s, 3, out->records);
    st_bind_text(st, s, 4, out->head_hash);
    st_bind_i64(st, s, 5, out->at);
    st_bind_text(st, s, 6, out->prev_hash);
    st_bind_text(st, s, 7, out->hash);
    CHECK(st_run(st, s, NULL));
commit:
    CHECK(st_tx_commit(st, &tx));
out:
    st_done(s);
    st_tx_end(st, &tx);
    return rc;
}

mv_rc sq_checkpoint_list(struct store *st, struct st_checkpoint **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_list_all(st, ST_Q_CHECKPOINT_LIST,
                           "SELECT " ST_CHECKPOINT_COLS " FROM audit_checkpoints ORDER BY seq",
                           sizeof **out, read_row, &arr, n);
    *out = arr;
    return rc;
}

static mv_rc read_head(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_audit_head *h = item;
    CHECK(st_col_text(s, 0, h->writer, sizeof h->writer));
    h->records = (int64_t)sqlite3_column_int64(s, 1);
    CHECK(st_col_text(s, 2, h->head_hash, sizeof h->head_hash));
    CHECK(st_col_text(s, 3, h->mac, sizeof h->mac));
    h->at = (int64_t)sqlite3_column_int64(s, 4);
out:
    return rc;
}

mv_rc sq_audit_head_put(struct store *st, const struct st_audit_head *h)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_audit_head_check(h));
    CHECK(st_prep(st, ST_Q_AUDIT_HEAD_PUT, ST_AUDIT_HEAD_UPSERT("?1", "?2", "?3", "?4", "?5"), &s));
    st_bind_text(st, s, 1, h->writer);
    st_bind_i64(st, s, 2, h->records);
    st_bind_text(st, s, 3, h->head_hash);
    st_bind_text(st, s, 4, h->mac);
    st_bind_i64(st, s, 5, h->at);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_audit_head_list(struct store *st, struct st_audit_head **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_list_all(st, ST_Q_AUDIT_HEAD_LIST,
                           "SELECT " ST_AUDIT_HEAD_COLS " FROM audit_heads ORDER BY writer",
                           sizeof **out, read_head, &arr, n);
    *out = arr;
    return rc;
}
