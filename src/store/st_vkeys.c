/* st_vkeys.c: Key Vault keys (table vault_keys), one row per version: add, get, update, list,
 * versions. Deletion, recovery and purge are in st_vkeys_deleted.c. The same shapes and rules
 * as st_secrets.c: the sealed column holds the private key (PKCS#8 DER, sealed), jwk_json the
 * public JWK with kty and key_ops, managed marks a certificate's key.
 *
 * Invariants:
 * - All versions of one key (vault, name compared case-insensitively) share the stored
 *   name (the case it was first set with) and the deleted/purge_at state.
 * - "Latest" = greatest created, ties broken by rowid (insert order).
 * - Live calls see only deleted = 0 rows; their queries carry "deleted = 0" literally so the
 *   planner can use the partial index vault_keys_live (vault, name, created[, rowid]).
 * - Values stay sealed here (crypto/aead.h); list calls never read the sealed column. */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

void st_key_clear(struct st_key *s)
{
    if (!s)
        return;
    mv_buf_free_secret(&s->sealed);
    free(s->jwk_json);
    free(s->tags_json);
    s->jwk_json = NULL;
    s->tags_json = NULL;
}

void st_keys_free(struct st_key *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        st_key_clear(&s[i]);
    free(s);
}

mv_rc st_key_row(sqlite3_stmt *s, int with_sealed, struct st_key *out)
{
    mv_rc rc = MV_OK;
    CHECK(st_col_text(s, 0, out->vault, sizeof out->vault));
    CHECK(st_col_text(s, 1, out->name, sizeof out->name));
    CHECK(st_col_text(s, 2, out->version, sizeof out->version));
    CHECK(st_col_dup(s, 3, &out->jwk_json));
    CHECK(st_col_dup(s, 4, &out->tags_json));
    out->enabled = sqlite3_column_int64(s, 5) != 0;
    out->nbf = (int64_t)sqlite3_column_int64(s, 6);
    out->exp = (int64_t)sqlite3_column_int64(s, 7);
    out->created = (int64_t)sqlite3_column_int64(s, 8);
    out->updated = (int64_t)sqlite3_column_int64(s, 9);
    out->deleted = (int64_t)sqlite3_column_int64(s, 10);
    out->purge_at = (int64_t)sqlite3_column_int64(s, 11);
    out->managed = sqlite3_column_int64(s, 12) != 0;
    if (with_sealed) {
        const void *p = sqlite3_column_blob(s, 13);
        size_t n = (size_t)sqlite3_column_bytes(s, 13);
        ENSURE(p || n == 0, MV_ERR_INTERNAL);
        mv_buf_init(&out->sealed, n);
        CHECK(mv_buf_add(&out->sealed, p ? p : "", n));
    }
out:
    return rc;
}

static mv_rc read_listed(sqlite3_stmt *s, void *item) { return st_key_row(s, 0, item); }

static void clear_item(void *item) { st_key_clear(item); }

mv_rc st_key_rows(struct store *st, sqlite3_stmt *s, struct st_key **out, size_t *n)
{
    void *arr = NULL;
    mv_rc rc = st_collect(st, s, sizeof **out, read_listed, clear_item, &arr, n);
    *out = arr;
    return rc;
}

/* The stored name (first case) of an existing key and whether it is soft-deleted;
 * NOT_FOUND if no version exists. Uses the UNIQUE (vault, name, version) index. */
static mv_rc key_state(struct store *st, const char *vault, const char *name,
                          char stored[MV_SECRET_MAX_NAME + 1], int *deleted)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    CHECK(st_prep(st, ST_Q_VKEY_STATE,
                  "SELECT name, deleted FROM vault_keys WHERE vault = ?1 AND name = ?2 LIMIT 1", &s));
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

static mv_rc insert_version(struct store *st, const struct st_key *v, const char *name)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    CHECK(st_prep(st, ST_Q_VKEY_ADD,
                  "INSERT INTO vault_keys (vault, name, version, sealed, jwk_json, tags_json,"
                  " enabled, nbf, exp, created, updated, managed)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                  &s));
    st_bind_text(st, s, 1, v->vault);
    st_bind_text(st, s, 2, name);
    st_bind_text(st, s, 3, v->version);
    st_bind_blob(st, s, 4, v->sealed.p, v->sealed.len);
    st_bind_text(st, s, 5, v->jwk_json);
    st_bind_text(st, s, 6, v->tags_json);
    st_bind_i64(st, s, 7, v->enabled ? 1 : 0);
    st_bind_i64(st, s, 8, v->nbf);
    st_bind_i64(st, s, 9, v->exp);
    st_bind_i64(st, s, 10, v->created);
    st_bind_i64(st, s, 11, v->updated);
    st_bind_i64(st, s, 12, v->managed ? 1 : 0);
    /* An unknown vault fails the foreign key (NOT_FOUND); a reused version is a CONFLICT. */
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_key_add(struct store *st, const struct st_key *v)
{
    mv_rc rc = MV_OK;
    struct st_tx tx = {0};
    char name[MV_SECRET_MAX_NAME + 1];
    int deleted = 0;
    ENSURE(v->vault[0] && v->name[0] && v->version[0], MV_ERR_BAD_REQUEST);
    CHECK(st_tx_begin(st, &tx));
    rc = key_state(st, v->vault, v->name, name, &deleted);
    if (rc == MV_ERR_NOT_FOUND) {
        CHECK(mv_copy(name, sizeof name, v->name));
        rc = MV_OK;
    }
    CHECK(rc);
    /* 409 ObjectIsDeletedButRecoverable when the name is soft-deleted. */
    ENSURE_MSG(!deleted, MV_ERR_CONFLICT, "store: key is soft-deleted");
    CHECK(insert_version(st, v, name));
    CHECK(st_tx_commit(st, &tx));
out:
    st_tx_end(st, &tx);
    return rc;
}

mv_rc sq_key_get(struct store *st, const char *vault, const char *name, const char *version,
                       struct st_key *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    if (version && version[0]) {
        CHECK(st_prep(st, ST_Q_VKEY_GET_VERSION,
                      "SELECT " ST_KEY_COLS ", sealed FROM vault_keys"
                      " WHERE vault = ?1 AND name = ?2 AND version = ?3 AND deleted = 0",
                      &s));
        st_bind_text(st, s, 3, version);
    } else {
        CHECK(st_prep(st, ST_Q_VKEY_GET_LATEST,
                      "SELECT " ST_KEY_COLS ", sealed FROM vault_keys"
                      " WHERE vault = ?1 AND name = ?2 AND deleted = 0"
                      " ORDER BY created DESC, rowid DESC LIMIT 1",
                      &s));
    }
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(st_key_row(s, 1, out));
out:
    st_done(s);
    if (rc != MV_OK)
        st_key_clear(out);
    return rc;
}

mv_rc sq_key_update(struct store *st, const struct st_key *v)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    ENSURE(v->version[0], MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_VKEY_UPDATE,
                  "UPDATE vault_keys SET jwk_json = ?4, tags_json = ?5, enabled = ?6, nbf = ?7,"
                  " exp = ?8, updated = ?9"
                  " WHERE vault = ?1 AND name = ?2 AND version = ?3 AND deleted = 0",
                  &s));
    st_bind_text(st, s, 1, v->vault);
    st_bind_text(st, s, 2, v->name);
    st_bind_text(st, s, 3, v->version);
    st_bind_text(st, s, 4, v->jwk_json);
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

mv_rc sq_key_list(struct store *st, const char *vault, const char *after, size_t limit,
                        struct st_key **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *out = NULL;
    *n = 0;
    /* Keyset paging that walks vault_keys_live from `after`: each index entry is kept only if it
     * is its name's latest version (one index probe), so a page costs O(page), not O(vault). */
    CHECK(st_prep(st, ST_Q_VKEY_LIST,
                  "SELECT " ST_KEY_COLS " FROM vault_keys AS s"
                  " WHERE s.vault = ?1 AND s.deleted = 0 AND s.name > ?2"
                  " AND s.rowid = (SELECT l.rowid FROM vault_keys AS l"
                  "  WHERE l.vault = ?1 AND l.name = s.name AND l.deleted = 0"
                  "  ORDER BY l.created DESC, l.rowid DESC LIMIT 1)"
                  " ORDER BY s.name LIMIT ?3",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, after ? after : ""); /* every name is > "" (names are not empty) */
    st_bind_i64(st, s, 3, st_limit(limit));
    CHECK(st_key_rows(st, s, out, n));
out:
    st_done(s);
    return rc;
}

mv_rc sq_key_versions(struct store *st, const char *vault, const char *name,
                            const char *after_version, size_t limit, struct st_key **out,
                            size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    *out = NULL;
    *n = 0;
    if (after_version && after_version[0]) {
        /* After an unknown version the row-value comparison is NULL: an empty page. */
        CHECK(st_prep(st, ST_Q_VKEY_VERSIONS_AFTER,
                      "SELECT " ST_KEY_COLS " FROM vault_keys"
                      " WHERE vault = ?1 AND name = ?2 AND deleted = 0"
                      " AND (created, version) > (SELECT created, version FROM vault_keys"
                      "  WHERE vault = ?1 AND name = ?2 AND version = ?4 AND deleted = 0)"
                      " ORDER BY created, version LIMIT ?3",
                      &s));
        st_bind_text(st, s, 4, after_version);
    } else {
        CHECK(st_prep(st, ST_Q_VKEY_VERSIONS_FIRST,
                      "SELECT " ST_KEY_COLS " FROM vault_keys"
                      " WHERE vault = ?1 AND name = ?2 AND deleted = 0"
                      " ORDER BY created, version LIMIT ?3",
                      &s));
    }
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    st_bind_i64(st, s, 3, st_limit(limit));
    CHECK(st_key_rows(st, s, out, n));
out:
    st_done(s);
    return rc;
}

/* ---- rotation policies ---- */

void st_key_policies_free(struct st_key_policy *p, size_t n)
{
    if (!p)
        return;
    for (size_t i = 0; i < n; i++)
        free(p[i].policy_json);
    free(p);
}

static mv_rc policy_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_key_policy *out = item;
    CHECK(st_col_text(s, 0, out->vault, sizeof out->vault));
    CHECK(st_col_text(s, 1, out->name, sizeof out->name));
    CHECK(st_col_dup(s, 2, &out->policy_json));
    out->created = (int64_t)sqlite3_column_int64(s, 3);
    out->updated = (int64_t)sqlite3_column_int64(s, 4);
    CHECK(st_col_text(s, 5, out->claimed, sizeof out->claimed));
out:
    return rc;
}

static void policy_clear(void *item)
{
    struct st_key_policy *p = item;
    free(p->policy_json);
    p->policy_json = NULL;
}

mv_rc sq_key_policy_put(struct store *st, const struct st_key_policy *p)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(p->vault[0] && p->name[0] && p->policy_json, MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_VKEY_POLICY_PUT,
                  "INSERT INTO key_policies (vault, name, policy_json, created, updated)"
                  " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (vault, name) DO UPDATE SET"
                  " policy_json = excluded.policy_json, updated = excluded.updated",
                  &s));
    st_bind_text(st, s, 1, p->vault);
    st_bind_text(st, s, 2, p->name);
    st_bind_text(st, s, 3, p->policy_json);
    st_bind_i64(st, s, 4, p->created);
    st_bind_i64(st, s, 5, p->updated);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

#define POLICY_COLS "vault, name, policy_json, created, updated, claimed"

mv_rc sq_key_policy_get(struct store *st, const char *vault, const char *name,
                        struct st_key_policy *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    CHECK(st_prep(st, ST_Q_VKEY_POLICY_GET,
                  "SELECT " POLICY_COLS " FROM key_policies WHERE vault = ?1 AND name = ?2", &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(policy_row(s, out));
out:
    st_done(s);
    if (rc != MV_OK)
        policy_clear(out);
    return rc;
}

mv_rc sq_key_policy_list(struct store *st, struct st_key_policy **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    CHECK(st_prep(st, ST_Q_VKEY_POLICY_LIST,
                  "SELECT " POLICY_COLS " FROM key_policies ORDER BY vault, name", &s));
    CHECK(st_collect(st, s, sizeof **out, policy_row, policy_clear, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}

mv_rc sq_key_policy_claim(struct store *st, const char *vault, const char *name,
                          const char *version)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_VKEY_POLICY_CLAIM,
                  "UPDATE key_policies SET claimed = ?3"
                  " WHERE vault = ?1 AND name = ?2 AND claimed <> ?3",
                  &s));
    st_bind_text(st, s, 1, vault);
    st_bind_text(st, s, 2, name);
    st_bind_text(st, s, 3, version);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_CONFLICT);
out:
    st_done(s);
    return rc;
}
