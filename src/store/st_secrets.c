/* st_secrets.c: Key Vault secrets, one row per version: add, get, update, list, versions.
 * Deletion, recovery and purge are in st_secrets_deleted.c.
 *
 * Invariants:
 * - All versions of one secret (vault, name compared case-insensitively) share the stored
 *   name (the case it was first set with) and the deleted/purge_at state.
 * - "Latest" = greatest created, ties broken by rowid (insert order).
 * - Live calls see only deleted = 0 rows; their queries carry "deleted = 0" literally so the
 *   planner can use the partial index secrets_live (vault, name, created[, rowid]).
 * - Values stay sealed here (crypto/aead.h); list calls never read the sealed column. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

void st_secret_clear(struct st_secret *s)
{
    if (!s)
        return;
    mv_buf_free_secret(&s->sealed);
    free(s->content_type);
    free(s->tags_json);
    s->content_type = NULL;
    s->tags_json = NULL;
}

void st_secrets_free(struct st_secret *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        st_secret_clear(&s[i]);
    free(s);
}

mv_rc st_secret_row(sqlite3_stmt *s, int with_sealed, struct st_secret *out)
{
    mv_rc rc = MV_OK;
    CHECK(st_col_text(s, 0, out->vault, sizeof out->vault));
    CHECK(st_col_text(s, 1, out->name, sizeof out->name));
    CHECK(st_col_text(s, 2, out->version, sizeof out->version));
    CHECK(st_col_dup(s, 3, &out->content_type));
    CHECK(st_col_dup(s, 4, &out->tags_json));
    out->enabled = sqlite3_column_int64(s, 5) != 0;
    out->nbf = (int64_t)sqlite3_column_int64(s, 6);
    out->exp = (int64_t)sqlite3_column_int64(s, 7);
    out->created = (int64_t)sqlite3_column_int64(s, 8);
    out->updated = (int64_t)sqlite3_column_int64(s, 9);
    out->deleted = (int64_t)sqlite3_column_int64(s, 10);
    out->purge_at = (int64_t)sqlite3_column_int64(s, 11);
    if (with_sealed) {
        const void *p = sqlite3_column_blob(s, 12);
        size_t n = (size_t)sqlite3_column_bytes(s, 12);
        ENSURE(p || n == 0, MV_ERR_INTERNAL);
        mv_buf_init(&out->sealed, n);
        CHECK(mv_buf_add(&out->sealed, p ? p : "", n));
    }
out:
    return rc;
}

static mv_rc read_listed(sqlite3_stmt *s, void *item) { return st_secret_row(s, 0, item); }

static void clear_item(void *item) { st_secret_clear(item); }

mv_rc st_secret_rows(struct store *st, sqlite3_stmt *s, struct st_secret **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_collect(st, s, sizeof **out, read_listed, clear_item, &arr, n);
    *out = arr;
    return rc;
}

/* The stored name (first case) of an existing secret and whether it is soft-deleted;
 * NOT_FOUND if no version exists. Uses the UNIQUE (vault, name, version) index. */
static mv_rc secret_state(struct store *st, const char *vault, const char *name,
                          char stored[MV_SECRET_MAX_NAME + 1], int *deleted)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    CHECK(st_prep(st, ST_Q_SECRET_STATE,
                  "SELECT name, deleted FROM secrets WHERE vault = ?1 AND name = ?2 LIMIT 1", &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, &row));
    if (!row) {
        rc = MV_ERR_NOT_FOUND;
        goto out;
    }
    CHECK(st_col_text(s, 0, stored, MV_SECRET_MAX_NAME + 1));
    *deleted = sqlite3_column_int64(s, 1) != 0;
out:
    st_done(s);
    return rc;
}

static mv_rc insert_version(struct store *st, const struct st_secret *v, const char *name)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_prep(st, ST_Q_SECRET_ADD,
                  "INSERT INTO secrets (vault, name, version, sealed, content_type, tags_json,"
                  " enabled, nbf, exp, created, updated)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                  &s));
    st_bind_text(st, s, 1, v->vault);
    st_bind_text(st, s, 2, name);
    st_bind_text(st, s, 3, v->version);
    st_bind_blob(st, s, 4, v->sealed.p, v->sealed.len);
    st_bind_text(st, s, 5, v->content_type);
    st_bind_text(st, s, 6, v->tags_json);
    st_bind_i64(st, s, 7, v->enabled ? 1 : 0);
    st_bind_i64(st, s, 8, v->nbf);
    st_bind_i64(st, s, 9, v->exp);
    st_bind_i64(st, s, 10, v->created);
    st_bind_i64(st, s, 11, v->updated);
    /* An unknown vault fails the foreign key (NOT_FOUND); a reused version is a CONFLICT. */
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

/* ST_CERT_VERSION objects: a certificate's versions. */
mv_rc sq_cert_owns(struct store *st, const char *vault, const char *name, int *owned)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_prep(st, ST_Q_SECRET_CERT_OWNS,
                  "SELECT 1 FROM cert_objects WHERE vault = ?1 AND kind = 1 AND name = ?2"
                  " AND deleted = 0 LIMIT 1",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, owned));
out:
    st_done(s);
    return rc;
}

mv_rc sq_secret_add(struct store *st, struct st_secret *v, int unmanaged)
{
    mv_rc rc = MV_OK;
    struct st_tx tx = {0};
    char name[MV_SECRET_MAX_NAME + 1];
    int deleted = 0;
    ENSURE(v->vault[0] && v->name[0] && v->version[0], MV_ERR_BAD_REQUEST);
    CHECK(st_tx_begin(st, &tx));
    if (unmanaged) {
        int owned = 0;
        CHECK(sq_cert_owns(st, v->vault, v->name, &owned));
        ENSURE_MSG(!owned, MV_ERR_FORBIDDEN, "store: a certificate owns secret %s", v->name);
    }
    rc = secret_state(st, v->vault, v->name, name, &deleted);
    if (rc == MV_ERR_NOT_FOUND) {
        CHECK(mv_copy(name, sizeof name, v->name));
        rc = MV_OK;
    }
    CHECK(rc);
    /* Reference §4.2 "Set secret": "409 if name is soft-deleted" (ObjectIsDeletedButRecoverable:
     * "in this state, the secret can only be recovered or purged"). */
    ENSURE_MSG(!deleted, MV_ERR_CONFLICT, "store: secret is soft-deleted");
    CHECK(insert_version(st, v, name));
    CHECK(st_tx_commit(st, &tx));
    CHECK(mv_copy(v->name, sizeof v->name, name));
out:
    st_tx_end(st, &tx);
    return rc;
}

mv_rc sq_secret_get(struct store *st, const char *vault, const char *name, const char *version,
                       struct st_secret *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    if (version && version[0]) {
        CHECK(st_prep(st, ST_Q_SECRET_GET_VERSION,
                      "SELECT " ST_SECRET_COLS ", sealed FROM secrets"
                      " WHERE vault = ?1 AND name = ?2 AND version = ?3 AND deleted = 0",
                      &s));
        st_bind_text(st, s, 3, version);
    } else {
        CHECK(st_prep(st, ST_Q_SECRET_GET_LATEST,
                      "SELECT " ST_SECRET_COLS ", sealed FROM secrets"
                      " WHERE vault = ?1 AND name = ?2 AND deleted = 0"
                      " ORDER BY created DESC, rowid DESC LIMIT 1",
                      &s));
    }
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(st_secret_row(s, 1, out));
out:
    st_done(s);
    if (rc != MV_OK)
        st_secret_clear(out);
    return rc;
}

mv_rc sq_secret_update(struct store *st, const struct st_secret *v)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    ENSURE(v->version[0], MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_SECRET_UPDATE,
                  "UPDATE secrets SET content_type = ?4, tags_json = ?5, enabled = ?6, nbf = ?7,"
                  " exp = ?8, updated = ?9"
                  " WHERE vault = ?1 AND name = ?2 AND version = ?3 AND deleted = 0",
                  &s));
    st_bind_text(st, s, 1, v->vault);
    st_bind_text(st, s, 2, v->name);
    st_bind_text(st, s, 3, v->version);
    st_bind_text(st, s, 4, v->content_type);
    st_bind_text(st, s, 5, v->tags_json);
    st_bind_i64(st, s, 6, v->enabled ? 1 : 0);
    st_bind_i64(st, s, 7, v->nbf);
    st_bind_i64(st, s, 8, v->exp);
    st_bind_i64(st, s, 9, v->updated);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

mv_rc sq_secret_list(struct store *st, const char *vault, const char *after, size_t limit,
                        struct st_secret **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *out = NULL;
    *n = 0;
    /* Keyset paging that walks secrets_live from `after`: each index entry is kept only if it
     * is its name's latest version (one index probe), so a page costs O(page), not O(vault). */
    CHECK(st_prep(st, ST_Q_SECRET_LIST,
                  "SELECT " ST_SECRET_COLS " FROM secrets AS s"
                  " WHERE s.vault = ?1 AND s.deleted = 0 AND s.name > ?2"
                  " AND s.rowid = (SELECT l.rowid FROM secrets AS l"
                  "  WHERE l.vault = ?1 AND l.name = s.name AND l.deleted = 0"
                  "  ORDER BY l.created DESC, l.rowid DESC LIMIT 1)"
                  " ORDER BY s.name LIMIT ?3",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, after ? after : ""); /* every name is > "" (names are not empty) */
    st_bind_i64(st, s, 3, st_limit(limit));
    CHECK(st_secret_rows(st, s, out, n));
out:
    st_done(s);
    return rc;
}

mv_rc sq_secret_versions(struct store *st, const char *vault, const char *name,
                            const char *after_version, size_t limit, struct st_secret **out,
                            size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *out = NULL;
    *n = 0;
    if (after_version && after_version[0]) {
        /* After an unknown version the row-value comparison is NULL: an empty page. */
        CHECK(st_prep(st, ST_Q_SECRET_VERSIONS_AFTER,
                      "SELECT " ST_SECRET_COLS " FROM secrets"
                      " WHERE vault = ?1 AND name = ?2 AND deleted = 0"
                      " AND (created, version) > (SELECT created, version FROM secrets"
                      "  WHERE vault = ?1 AND name = ?2 AND version = ?4 AND deleted = 0)"
                      " ORDER BY created, version LIMIT ?3",
                      &s));
        st_bind_text(st, s, 4, after_version);
    } else {
        CHECK(st_prep(st, ST_Q_SECRET_VERSIONS_FIRST,
                      "SELECT " ST_SECRET_COLS " FROM secrets"
                      " WHERE vault = ?1 AND name = ?2 AND deleted = 0"
                      " ORDER BY created, version LIMIT ?3",
                      &s));
    }
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    st_bind_i64(st, s, 3, st_limit(limit));
    CHECK(st_secret_rows(st, s, out, n));
out:
    st_done(s);
    return rc;
}
