/* pg_vkeys.c: Key Vault keys and their rotation policies on PostgreSQL (same semantics as
 * st_vkeys.c and st_vkeys_deleted.c), with the idempotency rules of pg_secrets.c: add is
 * INSERT ... ON CONFLICT DO NOTHING and a re-run finds its own sealed bytes; delete re-run at
 * the same `now` returns the row; recover and purge re-runs succeed. Calls that look at a key's
 * state first take the advisory lock on (vault, lower(name)) (a different hash seed from the
 * secrets' lock). No read cache: a key GET is one round trip. */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define DAY_SECS 86400
#define NAME_LOCK "SELECT pg_advisory_xact_lock(hashtextextended(lower($1) || '/' || lower($2), 7))"

mv_rc pg_key_row(const PGresult *r, int row, int with_sealed, struct st_key *out)
{
    mv_rc rc = MV_OK;
    CHECK(pg_col_text(r, row, 0, out->vault, sizeof out->vault));
    CHECK(pg_col_text(r, row, 1, out->name, sizeof out->name));
    CHECK(pg_col_text(r, row, 2, out->version, sizeof out->version));
    CHECK(pg_col_dup(r, row, 3, &out->jwk_json));
    CHECK(pg_col_dup(r, row, 4, &out->tags_json));
    out->enabled = pg_col_i64(r, row, 5) != 0;
    out->nbf = pg_col_i64(r, row, 6);
    out->exp = pg_col_i64(r, row, 7);
    out->created = pg_col_i64(r, row, 8);
    out->updated = pg_col_i64(r, row, 9);
    out->deleted = pg_col_i64(r, row, 10);
    out->purge_at = pg_col_i64(r, row, 11);
    out->managed = pg_col_i64(r, row, 12) != 0;
    if (with_sealed)
        CHECK(pg_col_bytea(r, row, 13, &out->sealed));
out:
    return rc;
}

static mv_rc listed_row(const PGresult *r, int row, void *item)
{
    return pg_key_row(r, row, 0, item);
}

static void clear_item(void *item) { st_key_clear(item); }

/* Runs a statement with the given parameters returning one key row (with sealed). */
static mv_rc one_row(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                     struct st_key *out)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    memset(out, 0, sizeof *out);
    CHECK(pg_exec(pg, sql, pp, &r, NULL));
    ENSURE(PQntuples(r) > 0, MV_ERR_NOT_FOUND);
    CHECK(pg_key_row(r, 0, 1, out));
out:
    if (rc != MV_OK)
        st_key_clear(out);
    PQclear(r);
    return rc;
}

static mv_rc rows(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                  struct st_key **out, size_t *n)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    void *arr = NULL;
    CHECK(pg_exec(pg, sql, pp, &r, NULL));
    CHECK(pg_collect(r, sizeof **out, listed_row, clear_item, &arr, n));
    *out = arr;
out:
    PQclear(r);
    return rc;
}

/* ---- add ---- */

static mv_rc add_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    const struct st_key *v = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    int64_t changes = 0;
    pp_text(&pp, v->vault);
    pp_text(&pp, v->name);
    CHECK(pg_exec(pg, NAME_LOCK, &pp, NULL, NULL));
    /* The stored spelling of the name, and whether the key is soft-deleted. */
    CHECK(pg_exec(pg,
                  "SELECT name, deleted FROM vault_keys"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2) LIMIT 1",
                  &pp, &r, NULL));
    const char *name = v->name;
    if (PQntuples(r) == 1) {
        name = PQgetvalue(r, 0, 0);
        /* 409 if the name is soft-deleted. */
        ENSURE_MSG(pg_col_i64(r, 0, 1) == 0, MV_ERR_CONFLICT, "store: key is soft-deleted");
    }
    pp.n = 0;
    pp_text(&pp, v->vault);
    pp_text(&pp, name);
    pp_text(&pp, v->version);
    pp_bytea(&pp, v->sealed.p, v->sealed.len);
    pp_text(&pp, v->jwk_json);
    pp_text(&pp, v->tags_json);
    pp_i64(&pp, v->enabled ? 1 : 0);
    pp_i64(&pp, v->nbf);
    pp_i64(&pp, v->exp);
    pp_i64(&pp, v->created);
    pp_i64(&pp, v->updated);
    pp_i64(&pp, v->managed ? 1 : 0);
    /* An unknown vault fails the foreign key (NOT_FOUND). */
    CHECK(pg_exec(pg,
                  "INSERT INTO vault_keys (vault, vault_key, name, version, sealed, jwk_json,"
                  " tags_json, enabled, nbf, exp, created, updated, managed)"
                  " VALUES ($1, lower($1), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                  " ON CONFLICT (vault_key, lower(name), lower(version)) DO NOTHING",
                  &pp, NULL, &changes));
    if (changes == 0) {
        /* The version id exists: ours from an attempt whose commit we did not see, or taken. */
        PQclear(r);
        r = NULL;
        pp.n = 0;
        pp_text(&pp, v->vault);
        pp_text(&pp, v->name);
        pp_text(&pp, v->version);
        pp_bytea(&pp, v->sealed.p, v->sealed.len);
        CHECK(pg_exec(pg,
                      "SELECT 1 FROM vault_keys WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                      " AND lower(version) = lower($3) AND sealed = $4",
                      &pp, &r, NULL));
        ENSURE_MSG(PQntuples(r) == 1, MV_ERR_CONFLICT, "store: key version exists");
    }
out:
    PQclear(r);
    return rc;
}

mv_rc pg_key_add(struct pg_store *pg, const struct st_key *s)
{
    if (!s->vault[0] || !s->name[0] || !s->version[0]) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete key");
        return MV_ERR_BAD_REQUEST;
    }
    return pg_run(pg, PG_WRITE, add_fn, (void *)s);
}

/* ---- get, update, list ---- */

struct key_call {
    const char *vault, *name, *version, *after;
    size_t limit;
    int64_t now;
    int days;
    const struct st_key *in;
    struct st_key *out;
    struct st_key **list;
    size_t *n;
};

static mv_rc get_fn(struct pg_store *pg, void *arg)
{
    struct key_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    if (c->version && c->version[0]) {
        pp_text(&pp, c->version);
        return one_row(pg,
                       "SELECT " PG_KEY_COLS ", sealed FROM vault_keys"
                       " WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                       " AND lower(version) = lower($3) AND deleted = 0",
                       &pp, c->out);
    }
    return one_row(pg,
                   "SELECT " PG_KEY_COLS ", sealed FROM vault_keys"
                   " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0"
                   " ORDER BY created DESC, seq DESC LIMIT 1",
                   &pp, c->out);
}

mv_rc pg_key_get(struct pg_store *pg, const char *vault, const char *name, const char *version,
                 struct st_key *out)
{
    struct key_call c = {.vault = vault, .name = name, .version = version, .out = out};
    memset(out, 0, sizeof *out);
    return pg_run(pg, PG_READ, get_fn, &c);
}

static mv_rc update_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    const struct st_key *v = ((struct key_call *)arg)->in;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, v->vault);
    pp_text(&pp, v->name);
    pp_text(&pp, v->version);
    pp_text(&pp, v->jwk_json);
    pp_text(&pp, v->tags_json);
    pp_i64(&pp, v->enabled ? 1 : 0);
    pp_i64(&pp, v->nbf);
    pp_i64(&pp, v->exp);
    pp_i64(&pp, v->updated);
    CHECK(pg_exec(pg,
                  "UPDATE vault_keys SET jwk_json = $4, tags_json = $5, enabled = $6, nbf = $7,"
                  " exp = $8, updated = $9"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                  " AND lower(version) = lower($3) AND deleted = 0",
                  &pp, NULL, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    return rc;
}

mv_rc pg_key_update(struct pg_store *pg, const struct st_key *s)
{
    struct key_call c = {.in = s};
    if (!s->version[0]) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: update without a version");
        return MV_ERR_BAD_REQUEST;
    }
    return pg_run(pg, PG_WRITE1, update_fn, &c);
}

/* Keyset paging over vault_keys_live / vault_keys_deleted: DISTINCT ON keeps each name's first row
 * in (lower(name), created DESC, seq DESC) order, its latest version; a page costs O(page). */
static const char LIST_LIVE[] =
    "SELECT DISTINCT ON (lower(name)) " PG_KEY_COLS " FROM vault_keys"
    " WHERE vault_key = lower($1) AND deleted = 0 AND lower(name) > lower($2)"
    " ORDER BY lower(name), created DESC, seq DESC LIMIT $3";
static const char LIST_DELETED[] =
    "SELECT DISTINCT ON (lower(name)) " PG_KEY_COLS " FROM vault_keys"
    " WHERE vault_key = lower($1) AND deleted <> 0 AND lower(name) > lower($2)"
    " ORDER BY lower(name), created DESC, seq DESC LIMIT $3";

static mv_rc list_fn(struct pg_store *pg, void *arg)
{
    struct key_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->after ? c->after : ""); /* every name is > "" (names are not empty) */
    pp_i64(&pp, c->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)c->limit);
    return rows(pg, c->days ? LIST_DELETED : LIST_LIVE, &pp, c->list, c->n);
}

mv_rc pg_key_list(struct pg_store *pg, const char *vault, const char *after, size_t limit,
                     struct st_key **out, size_t *n)
{
    struct key_call c = {.vault = vault, .after = after, .limit = limit, .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, list_fn, &c);
}

mv_rc pg_key_list_deleted(struct pg_store *pg, const char *vault, const char *after,
                             size_t limit, struct st_key **out, size_t *n)
{
    struct key_call c = {.vault = vault, .after = after, .limit = limit, .days = 1, .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, list_fn, &c);
}

static mv_rc versions_fn(struct pg_store *pg, void *arg)
{
    struct key_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    pp_i64(&pp, c->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)c->limit);
    if (c->after && c->after[0]) {
        pp_text(&pp, c->after);
        /* After an unknown version the row comparison is NULL: an empty page. */
        return rows(pg,
                    "SELECT " PG_KEY_COLS " FROM vault_keys"
                    " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0"
                    " AND (created, lower(version)) > (SELECT created, lower(version) FROM vault_keys"
                    "  WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                    "  AND lower(version) = lower($4) AND deleted = 0)"
                    " ORDER BY created, lower(version) LIMIT $3",
                    &pp, c->list, c->n);
    }
    return rows(pg,
                "SELECT " PG_KEY_COLS " FROM vault_keys"
                " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0"
                " ORDER BY created, lower(version) LIMIT $3",
                &pp, c->list, c->n);
}

mv_rc pg_key_versions(struct pg_store *pg, const char *vault, const char *name,
                         const char *after_version, size_t limit, struct st_key **out,
                         size_t *n)
{
    struct key_call c = {.vault = vault, .name = name, .after = after_version, .limit = limit,
                         .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, versions_fn, &c);
}

/* ---- delete, deleted view, recover, purge ---- */

static const char GET_DELETED[] =
    "SELECT " PG_KEY_COLS ", sealed FROM vault_keys"
    " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted <> 0"
    " ORDER BY created DESC, seq DESC LIMIT 1";

static mv_rc get_deleted_fn(struct pg_store *pg, void *arg)
{
    struct key_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    return one_row(pg, GET_DELETED, &pp, c->out);
}

mv_rc pg_key_get_deleted(struct pg_store *pg, const char *vault, const char *name,
                            struct st_key *out)
{
    struct key_call c = {.vault = vault, .name = name, .out = out};
    memset(out, 0, sizeof *out);
    return pg_run(pg, PG_READ, get_deleted_fn, &c);
}

static mv_rc delete_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct key_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    CHECK(pg_exec(pg, NAME_LOCK, &pp, NULL, NULL));
    if (c->days == 0) {
        CHECK(get_fn(pg, c)); /* the row as it was */
        CHECK(pg_exec(pg,
                      "DELETE FROM vault_keys WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                      " AND deleted = 0",
                      &pp, NULL, NULL));
        goto out;
    }
    pp_i64(&pp, c->now);
    pp_i64(&pp, c->now + (int64_t)c->days * DAY_SECS);
    CHECK(pg_exec(pg,
                  "UPDATE vault_keys SET deleted = $3, purge_at = $4"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0",
                  &pp, NULL, &changes));
    pp.n = 2;
    CHECK(one_row(pg, GET_DELETED, &pp, c->out));
    /* Nothing live was deleted: fine only if this is our own re-run (same deletion time). */
    if (changes == 0 && !(pg->replay && c->out->deleted == c->now)) {
        st_key_clear(c->out);
        memset(c->out, 0, sizeof *c->out);
        ENSURE(0, MV_ERR_NOT_FOUND);
    }
out:
    return rc;
}

mv_rc pg_key_delete(struct pg_store *pg, const char *vault, const char *name, int64_t now,
                       int days, struct st_key *out)
{
    struct key_call c = {.vault = vault, .name = name, .now = now, .days = days, .out = out};
    memset(out, 0, sizeof *out);
    /* deleted = now must be non-zero (0 means live); days is 7..90 for Key Vault. */
    if (now <= 0 || days < 0 || days > 3650) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: bad deletion time or retention");
        return MV_ERR_BAD_REQUEST;
    }
    mv_rc rc = pg_run(pg, PG_WRITE, delete_fn, &c);
    if (rc != MV_OK)
        st_key_clear(out);
    return rc;
}

static mv_rc named_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct key_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    CHECK(pg_exec(pg, c->after, &pp, NULL, &changes)); /* after: the statement */
    ENSURE(changes > 0 || pg->replay, MV_ERR_NOT_FOUND);
out:
    return rc;
}

mv_rc pg_key_recover(struct pg_store *pg, const char *vault, const char *name)
{
    static const char sql[] = "UPDATE vault_keys SET deleted = 0, purge_at = 0"
                              " WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                              " AND deleted <> 0";
    struct key_call c = {.vault = vault, .name = name, .after = sql};
    return pg_run(pg, PG_WRITE1, named_fn, &c);
}

mv_rc pg_key_purge(struct pg_store *pg, const char *vault, const char *name)
{
    static const char sql[] = "DELETE FROM vault_keys WHERE vault_key = lower($1)"
                              " AND lower(name) = lower($2) AND deleted <> 0";
    struct key_call c = {.vault = vault, .name = name, .after = sql};
    return pg_run(pg, PG_WRITE1, named_fn, &c);
}

static mv_rc purge_expired_fn(struct pg_store *pg, void *arg)
{
    struct pg_params pp = {0};
    pp_i64(&pp, ((struct key_call *)arg)->now);
    return pg_exec(pg, "DELETE FROM vault_keys WHERE deleted <> 0 AND purge_at <= $1", &pp, NULL,
                   NULL);
}

mv_rc pg_key_purge_expired(struct pg_store *pg, int64_t now)
{
    struct key_call c = {.now = now};
    return pg_run(pg, PG_WRITE1, purge_expired_fn, &c);
}

/* ---- rotation policies ---- */

#define POLICY_COLS "vault, name, policy_json, created, updated, claimed"

struct policy_call {
    const struct st_key_policy *in;
    struct st_key_policy *out;
    struct st_key_policy **list;
    size_t *n;
    const char *vault, *name, *version;
};

static mv_rc policy_row(const PGresult *r, int row, void *item)
{
    mv_rc rc = MV_OK;
    struct st_key_policy *out = item;
    CHECK(pg_col_text(r, row, 0, out->vault, sizeof out->vault));
    CHECK(pg_col_text(r, row, 1, out->name, sizeof out->name));
    CHECK(pg_col_dup(r, row, 2, &out->policy_json));
    out->created = pg_col_i64(r, row, 3);
    out->updated = pg_col_i64(r, row, 4);
    CHECK(pg_col_text(r, row, 5, out->claimed, sizeof out->claimed));
out:
    return rc;
}

static void policy_clear(void *item)
{
    struct st_key_policy *p = item;
    free(p->policy_json);
    p->policy_json = NULL;
}

static mv_rc policy_put_fn(struct pg_store *pg, void *arg)
{
    const struct st_key_policy *p = ((struct policy_call *)arg)->in;
    struct pg_params pp = {0};
    pp_text(&pp, p->vault);
    pp_text(&pp, p->name);
    pp_text(&pp, p->policy_json);
    pp_i64(&pp, p->created);
    pp_i64(&pp, p->updated);
    return pg_exec(pg,
                   "INSERT INTO key_policies (vault, vault_key, name, policy_json, created, updated)"
                   " VALUES ($1, lower($1), $2, $3, $4, $5)"
                   " ON CONFLICT (vault_key, lower(name)) DO UPDATE SET"
                   " policy_json = excluded.policy_json, updated = excluded.updated",
                   &pp, NULL, NULL);
}

mv_rc pg_key_policy_put(struct pg_store *pg, const struct st_key_policy *p)
{
    struct policy_call c = {.in = p};
    if (!p->vault[0] || !p->name[0] || !p->policy_json) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete key policy");
        return MV_ERR_BAD_REQUEST;
    }
    return pg_run(pg, PG_WRITE1, policy_put_fn, &c);
}

static mv_rc policy_get_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct policy_call *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    CHECK(pg_exec(pg,
                  "SELECT " POLICY_COLS " FROM key_policies"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2)",
                  &pp, &r, NULL));
    ENSURE(PQntuples(r) > 0, MV_ERR_NOT_FOUND);
    policy_clear(c->out);
    CHECK(policy_row(r, 0, c->out));
out:
    PQclear(r);
    return rc;
}

mv_rc pg_key_policy_get(struct pg_store *pg, const char *vault, const char *name,
                        struct st_key_policy *out)
{
    struct policy_call c = {.vault = vault, .name = name, .out = out};
    memset(out, 0, sizeof *out);
    mv_rc rc = pg_run(pg, PG_READ, policy_get_fn, &c);
    if (rc != MV_OK)
        policy_clear(out);
    return rc;
}

static mv_rc policy_list_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct policy_call *c = arg;
    PGresult *r = NULL;
    void *arr = NULL;
    CHECK(pg_exec(pg, "SELECT " POLICY_COLS " FROM key_policies ORDER BY vault_key, lower(name)",
                  NULL, &r, NULL));
    CHECK(pg_collect(r, sizeof **c->list, policy_row, policy_clear, &arr, c->n));
    *c->list = arr;
out:
    PQclear(r);
    return rc;
}

mv_rc pg_key_policy_list(struct pg_store *pg, struct st_key_policy **out, size_t *n)
{
    struct policy_call c = {.list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, policy_list_fn, &c);
}

static mv_rc policy_claim_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct policy_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    pp_text(&pp, c->version);
    CHECK(pg_exec(pg,
                  "UPDATE key_policies SET claimed = $3"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND claimed <> $3",
                  &pp, NULL, &changes));
    /* A re-run of our own committed claim finds it done: ours (replay). */
    ENSURE(changes > 0 || pg->replay, MV_ERR_CONFLICT);
out:
    return rc;
}

mv_rc pg_key_policy_claim(struct pg_store *pg, const char *vault, const char *name,
                          const char *version)
{
    struct policy_call c = {.vault = vault, .name = name, .version = version};
    return pg_run(pg, PG_WRITE1, policy_claim_fn, &c);
}
