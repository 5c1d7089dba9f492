/* st_stmt.c: the statement cache, binders, stepping, column readers and error mapping shared
 * by every file of the SQLite backend (see sqlite_internal.h for the invariants). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

mv_rc st_error_at(struct store *st, int src, const char *what, const char *file, int line)
{
    mv_rc rc = MV_ERR_INTERNAL;
    switch (src & 0xff) {
    case SQLITE_CONSTRAINT:
        if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = MV_ERR_CONFLICT;
        else if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = MV_ERR_NOT_FOUND;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        rc = MV_ERR_UNAVAILABLE;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        sq_mark_corrupt(st, what, src);
        break;
    default:
        break;
    }
    /* The detail goes to the log only (result.h); it never reaches a reply. */
    mv_fail_at(file, line, rc, "sqlite %s: %s (%d)", what,
               st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src), src);
    return rc;
}

mv_rc st_prep(struct store *st, enum st_q id, const char *sql, sqlite3_stmt **out)
{
    if (!st->q[id]) {
        int src = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->q[id], NULL);
        if (src != SQLITE_OK) {
            st->q[id] = NULL;
            return st_error(st, src, "prepare");
        }
    }
    /* A corrupt file takes no more writes (sqlite.c): every statement that could change it is
     * refused here, whatever path it came by. */
    if (sq_is_corrupt(st) && !sqlite3_stmt_readonly(st->q[id])) {
        mv_fail(MV_ERR_UNAVAILABLE, "store: the database file is corrupt; writes are refused");
        return MV_ERR_UNAVAILABLE;
    }
    st->bind_err = SQLITE_OK;
    *out = st->q[id];
    return MV_OK;
}

void st_done(sqlite3_stmt *s)
{
    if (!s)
        return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static void bind_result(struct store *st, int src)
{
    if (src != SQLITE_OK && st->bind_err == SQLITE_OK)
        st->bind_err = src;
}

void st_bind_text(struct store *st, sqlite3_stmt *s, int i, const char *v)
{
    bind_result(st, v ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i));
}

void st_bind_i64(struct store *st, sqlite3_stmt *s, int i, int64_t v)
{
    bind_result(st, sqlite3_bind_int64(s, i, (sqlite3_int64)v));
}

void st_bind_blob(struct store *st, sqlite3_stmt *s, int i, const void *p, size_t len)
{
    /* A zero-length blob (p may be NULL) must still be a blob, not NULL. */
    bind_result(st, p ? sqlite3_bind_blob64(s, i, p, (sqlite3_uint64)len, SQLITE_STATIC)
                      : sqlite3_bind_zeroblob(s, i, 0));
}

mv_rc st_step(struct store *st, sqlite3_stmt *s, int *row)
{
    if (st->bind_err != SQLITE_OK) {
        int src = st->bind_err;
        st->bind_err = SQLITE_OK;
        return st_error(st, src, "bind");
    }
    int src = sqlite3_step(s);
    if (src == SQLITE_ROW || src == SQLITE_DONE) {
        *row = src == SQLITE_ROW;
        return MV_OK;
    }
    /* With sqlite3_prepare_v3 the step result already carries the extended code. */
    return st_error(st, src, "step");
}

mv_rc st_run(struct store *st, sqlite3_stmt *s, int64_t *changes)
{
    int row = 0;
    mv_rc rc = st_step(st, s, &row);
    while (rc == MV_OK && row)
        rc = st_step(st, s, &row);
    if (rc == MV_OK && changes)
        *changes = (int64_t)sqlite3_changes64(st->db);
    return rc;
}

mv_rc st_col_text(sqlite3_stmt *s, int col, char *dst, size_t dstlen)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (!t) {
        if (sqlite3_column_type(s, col) != SQLITE_NULL) {
            mv_fail(MV_ERR_INTERNAL, "sqlite: out of memory reading column %d", col);
            return MV_ERR_INTERNAL;
        }
        n = 0;
    }
    if (n >= dstlen || (t && memchr(t, '\0', n))) {
        mv_fail(MV_ERR_INTERNAL, "sqlite: stored value in column %d does not fit (%zu bytes)", col,
                n);
        return MV_ERR_INTERNAL;
    }
    if (n)
        memcpy(dst, t, n);
    dst[n] = '\0';
    return MV_OK;
}

mv_rc st_col_dup(sqlite3_stmt *s, int col, char **out)
{
    *out = NULL;
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return MV_OK;
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    char *p = t ? malloc(n + 1) : NULL;
    if (!p) {
        mv_fail(MV_ERR_INTERNAL, "sqlite: out of memory reading column %d", col);
        return MV_ERR_INTERNAL;
    }
    memcpy(p, t, n);
    p[n] = '\0';
    *out = p;
    return MV_OK;
}

/* arr grown to hold at least n + 1 items (new ones zeroed), or NULL with arr untouched. */
static void *grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap <= n || ncap > SIZE_MAX / elem) {
        mv_fail(MV_ERR_INTERNAL, "store: list too long");
        return NULL;
    }
    char *p = realloc(arr, ncap * elem);
    if (!p) {
        mv_fail(MV_ERR_INTERNAL, "store: out of memory");
        return NULL;
    }
    memset(p + *cap * elem, 0, (ncap - *cap) * elem);
    *cap = ncap;
    return p;
}

mv_rc st_collect(struct store *st, sqlite3_stmt *s, size_t elem, st_read_fn read,
                 st_clear_fn clear, void **arr, size_t *n)
{
    mv_rc rc = MV_OK;
    char *items = NULL;
    size_t cap = 0, cnt = 0;
    int row = 0;
    *arr = NULL;
    *n = 0;
    for (;;) {
        CHECK(st_step(st, s, &row));
        if (!row)
            break;
        void *grown = grow(items, &cap, cnt, elem);
        ENSURE(grown, MV_ERR_INTERNAL);
        items = grown;
        cnt++; /* counted first, so a partly read item is cleared below */
        CHECK(read(s, items + (cnt - 1) * elem));
    }
    *arr = items;
    *n = cnt;
    items = NULL;
out:
    if (items && clear)
        for (size_t i = 0; i < cnt; i++)
            clear(items + i * elem);
    free(items);
    return rc;
}

int64_t st_limit(size_t limit) { return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit; }

mv_rc st_get_by_key(struct store *st, enum st_q id, const char *sql, const char *key, st_read_fn read,
                    void *out, size_t outlen)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, outlen);
    CHECK(st_prep(st, id, sql, &s));
    st_bind_text(st, s, 1, key);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(read(s, out));
out:
    st_done(s);
    return rc;
}

mv_rc st_delete_by_key(struct store *st, enum st_q id, const char *sql, const char *key)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, id, sql, &s));
    st_bind_text(st, s, 1, key);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

mv_rc st_list_all(struct store *st, enum st_q id, const char *sql, size_t elem, st_read_fn read, void **arr,
                  size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *arr = NULL;
    *n = 0;
    CHECK(st_prep(st, id, sql, &s));
    CHECK(st_collect(st, s, elem, read, NULL, arr, n));
out:
    st_done(s);
    return rc;
}
