/* st_certs.c: Key Vault certificate objects on SQLite (store.h "certificates").
 *
 * Invariants:
 * - One row per (vault, kind, name, version), compared case-insensitively (COLLATE NOCASE);
 *   a put on an existing key keeps the row's created and its name's spelling.
 * - "Latest" = greatest created, ties broken by rowid (insert order), as for secrets.
 * - Private keys arrive sealed; list calls never read the sealed column. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

#define CERT_COLS "vault, kind, name, version, doc, created, deleted, purge_at, sealed"

void st_certobj_clear(struct st_certobj *o)
{
    if (!o)
        return;
    mv_buf_free_secret(&o->sealed);
    free(o->doc);
    o->doc = NULL;
}

void st_certobjs_free(struct st_certobj *o, size_t n)
{
    if (!o)
        return;
    for (size_t i = 0; i < n; i++)
        st_certobj_clear(&o[i]);
    free(o);
}

static mv_rc cert_row(sqlite3_stmt *s, int with_sealed, struct st_certobj *out)
{
    mv_rc rc = MV_OK;
    CHECK(st_col_text(s, 0, out->vault, sizeof out->vault));
    out->kind = (int)sqlite3_column_int64(s, 1);
    CHECK(st_col_text(s, 2, out->name, sizeof out->name));
    CHECK(st_col_text(s, 3, out->version, sizeof out->version));
    CHECK(st_col_dup(s, 4, &out->doc));
    out->created = (int64_t)sqlite3_column_int64(s, 5);
    out->deleted = (int64_t)sqlite3_column_int64(s, 6);
    out->purge_at = (int64_t)sqlite3_column_int64(s, 7);
    if (with_sealed) {
        const void *p = sqlite3_column_blob(s, 8);
        size_t n = (size_t)sqlite3_column_bytes(s, 8);
        mv_buf_init(&out->sealed, n);
        if (n)
            CHECK(mv_buf_add(&out->sealed, p, n));
    }
out:
    return rc;
}

static mv_rc read_listed(sqlite3_stmt *s, void *item) { return cert_row(s, 0, item); }

static void clear_item(void *item) { st_certobj_clear(item); }

mv_rc sq_cert_put(struct store *st, const struct st_certobj *o)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(o->vault[0] && o->doc && o->kind >= ST_CERT_VERSION && o->kind <= ST_CERT_CONTACTS,
           MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_CERT_PUT,
                  "INSERT INTO cert_objects (vault, kind, name, version, doc, sealed, created,"
                  " deleted, purge_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                  " ON CONFLICT (vault, kind, name, version) DO UPDATE SET doc = excluded.doc,"
                  " sealed = excluded.sealed, deleted = excluded.deleted,"
                  " purge_at = excluded.purge_at",
                  &s));
    st_bind_text(st, s, 1, o->vault);
    st_bind_i64(st, s, 2, o->kind);
    st_bind_text(st, s, 3, o->name);
    st_bind_text(st, s, 4, o->version);
    st_bind_text(st, s, 5, o->doc);
    st_bind_blob(st, s, 6, o->sealed.p ? o->sealed.p : "", o->sealed.len);
    st_bind_i64(st, s, 7, o->created);
    st_bind_i64(st, s, 8, o->deleted);
    st_bind_i64(st, s, 9, o->purge_at);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_cert_get(struct store *st, const char *vault, int kind, const char *name,
                  const char *version, int deleted, struct st_certobj *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    if (!version || !version[0])
        CHECK(st_prep(st, ST_Q_CERT_GET_LATEST,
                      "SELECT " CERT_COLS " FROM cert_objects WHERE vault = ?1 AND kind = ?2"
                      " AND name = ?3 AND (deleted <> 0) = ?4"
                      " ORDER BY created DESC, rowid DESC LIMIT 1",
                      &s));
    else
        CHECK(st_prep(st, ST_Q_CERT_GET_VERSION,
                      "SELECT " CERT_COLS " FROM cert_objects WHERE vault = ?1 AND kind = ?2"
                      " AND name = ?3 AND (deleted <> 0) = ?4 AND version = ?5",
                      &s));
    st_bind_text(st, s, 1, vault);
    st_bind_i64(st, s, 2, kind);
    st_bind_text(st, s, 3, name);
    st_bind_i64(st, s, 4, deleted ? 1 : 0);
    if (version && version[0])
        st_bind_text(st, s, 5, version);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    rc = cert_row(s, 1, out);
    if (rc != MV_OK)
        st_certobj_clear(out);
out:
    st_done(s);
    return rc;
}

mv_rc sq_cert_list(struct store *st, const char *vault, int kind, const char *name,
                   const char *after, size_t limit, int deleted, struct st_certobj **out,
                   size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    if (!name)
        CHECK(st_prep(st, ST_Q_CERT_LIST_NAMES,
                      "SELECT " CERT_COLS " FROM cert_objects c WHERE vault = ?1 AND kind = ?2"
                      " AND (deleted <> 0) = ?3 AND name > ?4 AND rowid = (SELECT d.rowid FROM"
                      " cert_objects d WHERE d.vault = c.vault AND d.kind = c.kind"
                      " AND d.name = c.name ORDER BY d.created DESC, d.rowid DESC LIMIT 1)"
                      " ORDER BY name LIMIT ?5",
                      &s));
    else
        CHECK(st_prep(st, ST_Q_CERT_LIST_VERSIONS,
                      "SELECT " CERT_COLS " FROM cert_objects WHERE vault = ?1 AND kind = ?2"
                      " AND (deleted <> 0) = ?3 AND version > ?4 AND name = ?6"
                      " ORDER BY version LIMIT ?5",
                      &s));
    st_bind_text(st, s, 1, vault);
    st_bind_i64(st, s, 2, kind);
    st_bind_i64(st, s, 3, deleted ? 1 : 0);
    st_bind_text(st, s, 4, after ? after : "");
    st_bind_i64(st, s, 5, limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
    if (name)
        st_bind_text(st, s, 6, name);
    CHECK(st_collect(st, s, sizeof **out, read_listed, clear_item, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}

mv_rc sq_cert_mark(struct store *st, const char *vault, const char *name, int64_t deleted,
                   int64_t purge_at)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_CERT_MARK,
                  "UPDATE cert_objects SET deleted = ?3, purge_at = ?4"
                  " WHERE vault = ?1 AND name = ?2 AND kind IN (1, 2)",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    st_bind_i64(st, s, 3, deleted);
    st_bind_i64(st, s, 4, purge_at);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

mv_rc sq_cert_remove(struct store *st, const char *vault, int kind, const char *name,
                     const char *version)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_CERT_REMOVE,
                  "DELETE FROM cert_objects WHERE vault = ?1 AND name = ?2"
                  " AND (kind = ?3 OR (?3 = 0 AND kind IN (1, 2, 3)))"
                  " AND (?4 IS NULL OR version = ?4)",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    st_bind_i64(st, s, 3, kind);
    st_bind_text(st, s, 4, version);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}
