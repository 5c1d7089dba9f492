/* st_keys.c: token signing keys. The private key arrives sealed (crypto/aead.h) and
 * base64-encoded; this file never sees it in clear. put is an upsert on kid (retiring a key
 * rewrites its row). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "store/sqlite_internal.h"

mv_rc sq_signing_key_put(struct store *st, const struct st_signing_key *k)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(k->kid[0] && k->sealed_private_b64 && k->public_pem && k->x5c_b64, MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_KEY_PUT,
                  "INSERT INTO signing_keys (kid, sealed_private_b64, public_pem, x5c_b64,"
                  " created, retired) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                  " ON CONFLICT (kid) DO UPDATE SET"
                  " sealed_private_b64 = excluded.sealed_private_b64,"
                  " public_pem = excluded.public_pem, x5c_b64 = excluded.x5c_b64,"
                  " created = excluded.created, retired = excluded.retired",
                  &s));
    st_bind_text(st, s, 1, k->kid);
    st_bind_text(st, s, 2, k->sealed_private_b64);
    st_bind_text(st, s, 3, k->public_pem);
    st_bind_text(st, s, 4, k->x5c_b64);
    st_bind_i64(st, s, 5, k->created);
    st_bind_i64(st, s, 6, k->retired);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_signing_key_delete(struct store *st, const char *kid)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    CHECK(st_prep(st, ST_Q_KEY_DELETE, "DELETE FROM signing_keys WHERE kid = ?1", &s));
    st_bind_text(st, s, 1, kid);
    CHECK(st_run(st, s, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    st_done(s);
    return rc;
}

static void key_clear(struct st_signing_key *k)
{
    if (k->sealed_private_b64) {
        OPENSSL_cleanse(k->sealed_private_b64, strlen(k->sealed_private_b64));
        free(k->sealed_private_b64);
    }
    free(k->public_pem);
    free(k->x5c_b64);
    memset(k, 0, sizeof *k);
}

void st_signing_keys_free(struct st_signing_key *k, size_t n)
{
    if (!k)
        return;
    for (size_t i = 0; i < n; i++)
        key_clear(&k[i]);
    free(k);
}

static mv_rc read_row(sqlite3_stmt *s, void *item)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *k = item;
    CHECK(st_col_text(s, 0, k->kid, sizeof k->kid));
    CHECK(st_col_dup(s, 1, &k->sealed_private_b64));
    CHECK(st_col_dup(s, 2, &k->public_pem));
    CHECK(st_col_dup(s, 3, &k->x5c_b64));
    ENSURE(k->sealed_private_b64 && k->public_pem && k->x5c_b64, MV_ERR_INTERNAL);
    k->created = (int64_t)sqlite3_column_int64(s, 4);
    k->retired = (int64_t)sqlite3_column_int64(s, 5);
out:
    return rc;
}

static void clear_item(void *item) { key_clear(item); }

mv_rc sq_signing_keys(struct store *st, struct st_signing_key **out, size_t *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    void *arr = NULL;
    *out = NULL;
    *n = 0;
    CHECK(st_prep(st, ST_Q_KEY_LIST,
                  "SELECT kid, sealed_private_b64, public_pem, x5c_b64, created, retired"
                  " FROM signing_keys ORDER BY created DESC, rowid DESC",
                  &s));
    CHECK(st_collect(st, s, sizeof **out, read_row, clear_item, &arr, n));
    *out = arr;
out:
    st_done(s);
    return rc;
}
