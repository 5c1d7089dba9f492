/* pg_secrets.c: Key Vault secrets on PostgreSQL, one row per version (same semantics as
 * st_secrets.c and st_secrets_deleted.c).
 *
 * Idempotency (a call re-run after an unknown commit must converge):
 * - add: INSERT ... ON CONFLICT (vault, name, version) DO NOTHING; when nothing was inserted,
 *   the existing row is ours if it holds the same sealed bytes (the seal has a random nonce,
 *   so equal bytes mean the same attempt), else the version id is taken: CONFLICT. The
 *   version id is chosen by the caller before the first attempt, so a retried PUT makes one
 *   version.
 * - update: sets the same fields again. purge_expired: deletes what is due, again.
 * - delete (soft): a re-run that finds the secret already deleted at the same `now` returns
 *   that row. recover / purge: a re-run that finds nothing to do succeeds.
 * - The calls that look at a secret's state first (add, delete) take a transaction-scoped
 *   advisory lock on (vault, lower(name)) so two servers cannot interleave them.
 *
 * The secret cache: a vault GET on PostgreSQL must not cost a round trip each (a loop thread
 * waits for it). Each connection keeps the rows it read recently, outside transactions only,
 * tagged with the secrets generation of pg_feed.c read *before* the query: any secret write of
 * this process moves the generation at its commit, and any other server's within the change
 * feed's poll interval (100 ms; secret writes send no NOTIFY, pg_schema.c v2), so
 * an entry is served only while no secret write anywhere has been seen since it was read. A
 * TTL of SCACHE_TTL_MS bounds what a stalled feed could serve. Misses (NOT_FOUND) are never
 * cached: a secret created through another server is found at once. */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"

#define DAY_SECS 86400
#define SCACHE_SETS 1024 /* per connection; a power of two */
#define SCACHE_WAYS 4     /* set-associative: keys whose hashes collide do not evict each other */
#define SCACHE_TTL_MS 10000
#define SCACHE_KEY (ST_NAME + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 3)

struct scache_entry {
    char key[SCACHE_KEY];  /* lower(vault) '/' lower(name) '/' lower(version or "") */
    int64_t gen;           /* secrets generation read before the row was */
    int64_t at_ms;
    uint64_t used;         /* tick of the last hit: the least recently used way is replaced */
    struct st_secret row;
};

struct pg_secret_cache {
    uint64_t tick;
    struct scache_entry e[SCACHE_SETS][SCACHE_WAYS];
};
/* The same lock as mv_secret_add's (pg_schema.c v6). */
#define NAME_LOCK "SELECT pg_advisory_xact_lock(hashtextextended(lower($1) || '/' || lower($2), 0))"

mv_rc pg_secret_row(const PGresult *r, int row, int with_sealed, struct st_secret *out)
{
    mv_rc rc = MV_OK;
    CHECK(pg_col_text(r, row, 0, out->vault, sizeof out->vault));
    CHECK(pg_col_text(r, row, 1, out->name, sizeof out->name));
    CHECK(pg_col_text(r, row, 2, out->version, sizeof out->version));
    CHECK(pg_col_dup(r, row, 3, &out->content_type));
    CHECK(pg_col_dup(r, row, 4, &out->tags_json));
    out->enabled = pg_col_i64(r, row, 5) != 0;
    out->nbf = pg_col_i64(r, row, 6);
    out->exp = pg_col_i64(r, row, 7);
    out->created = pg_col_i64(r, row, 8);
    out->updated = pg_col_i64(r, row, 9);
    out->deleted = pg_col_i64(r, row, 10);
    out->purge_at = pg_col_i64(r, row, 11);
    if (with_sealed)
        CHECK(pg_col_bytea(r, row, 12, &out->sealed));
out:
    return rc;
}

static mv_rc listed_row(const PGresult *r, int row, void *item)
{
    return pg_secret_row(r, row, 0, item);
}

static void clear_item(void *item) { st_secret_clear(item); }

/* Runs a statement with the given parameters returning one secret row (with sealed). */
static mv_rc one_row(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                     struct st_secret *out)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    memset(out, 0, sizeof *out);
    CHECK(pg_exec(pg, sql, pp, &r, NULL));
    ENSURE(PQntuples(r) > 0, MV_ERR_NOT_FOUND);
    CHECK(pg_secret_row(r, 0, 1, out));
out:
    if (rc != MV_OK)
        st_secret_clear(out);
    PQclear(r);
    return rc;
}

static mv_rc rows(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                  struct st_secret **out, size_t *n)
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

/* One round trip each (pg_schema.c v8, v12): lock, state, insert, ownership of an existing
 * version; _set also refuses a name a certificate owns. An unknown vault still fails the
 * foreign key (NOT_FOUND). */
static const char ADD_SQL[] = "SELECT rc, stored FROM mv_secret_add($1, $2, $3, $4, $5, $6,"
                              " $7::integer, $8::bigint, $9::bigint, $10::bigint, $11::bigint)";
static const char SET_SQL[] = "SELECT rc, stored FROM mv_secret_set($1, $2, $3, $4, $5, $6,"
                              " $7::integer, $8::bigint, $9::bigint, $10::bigint, $11::bigint)";

static void add_params(struct pg_params *pp, const struct st_secret *v)
{
    pp_text(pp, v->vault);
    pp_text(pp, v->name);
    pp_text(pp, v->version);
    pp_bytea(pp, v->sealed.p, v->sealed.len);
    pp_text(pp, v->content_type);
    pp_text(pp, v->tags_json);
    pp_i64(pp, v->enabled ? 1 : 0);
    pp_i64(pp, v->nbf);
    pp_i64(pp, v->exp);
    pp_i64(pp, v->created);
    pp_i64(pp, v->updated);
}

/* The function's answer: rc 0 = written (or ours already: a re-run after an unknown commit),
 * 1 = soft-deleted, 2 = the version id is someone else's, 3 = a certificate owns the name.
 * v->name receives the stored spelling. */
static mv_rc add_outcome(const PGresult *r, struct st_secret *v)
{
    mv_rc rc = MV_OK;
    ENSURE_MSG(PQntuples(r) == 1, MV_ERR_INTERNAL, "store: mv_secret_add returned no row");
    int64_t out = pg_col_i64(r, 0, 0);
    ENSURE_MSG(out != 3, MV_ERR_FORBIDDEN, "store: a certificate owns secret %s", v->name);
    /* Reference §4.2 "Set secret": 409 if the name is soft-deleted. */
    ENSURE_MSG(out != 1, MV_ERR_CONFLICT, "store: secret is soft-deleted");
    ENSURE_MSG(out == 0, MV_ERR_CONFLICT, "store: secret version exists");
    CHECK(pg_col_text(r, 0, 1, v->name, sizeof v->name));
out:
    return rc;
}

struct add_call {
    struct st_secret *v;
    int unmanaged; /* refuse a name a certificate owns (mv_secret_set) */
};

static mv_rc add_fn(struct pg_store *pg, void *arg)
{
    pg->touched_secrets = 1; /* the secrets generation moves at commit (cache above) */
    mv_rc rc = MV_OK;
    const struct add_call *c = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    add_params(&pp, c->v);
    CHECK(pg_exec(pg, c->unmanaged ? SET_SQL : ADD_SQL, &pp, &r, NULL));
    CHECK(add_outcome(r, c->v));
out:
    PQclear(r);
    return rc;
}

static int incomplete(const struct st_secret *s)
{
    if (s->vault[0] && s->name[0] && s->version[0])
        return 0;
    mv_fail(MV_ERR_BAD_REQUEST, "store: incomplete secret");
    return 1;
}

mv_rc pg_secret_add(struct pg_store *pg, struct st_secret *s, int unmanaged)
{
    struct add_call c = {.v = s, .unmanaged = unmanaged};
    if (incomplete(s))
        return MV_ERR_BAD_REQUEST;
    return pg_run(pg, PG_WRITE, add_fn, &c);
}

static void set_answered(struct pg_store *pg, const PGresult *r, mv_rc rc, void *a, void *b)
{
    (void)pg;
    *(mv_rc *)b = rc == MV_OK ? add_outcome(r, a) : rc;
}

mv_rc pg_secret_set_deferred(struct pg_store *pg, struct st_secret *s, mv_rc *out)
{
    if (!pg->in_tx || !pg->lean || pg->tx_broken) /* one at a time: a savepoint each */
        return *out = pg_secret_add(pg, s, 1);
    if (incomplete(s))
        return *out = MV_ERR_BAD_REQUEST;
    struct pg_params pp = {0};
    add_params(&pp, s);
    pg->touched_secrets = 1;
    *out = MV_ERR_UNAVAILABLE; /* until answered */
    mv_rc rc = pg_queue(pg, SET_SQL, &pp, set_answered, s, out);
    if (rc != MV_OK) {
        pg->tx_broken = 1;
        *out = rc;
    }
    return rc;
}

/* ---- get, update, list ---- */

struct sec_call {
    const char *vault, *name, *version, *after;
    size_t limit;
    int64_t now;
    int days;
    int unmanaged; /* delete: a client's, refused on a certificate's name */
    const struct st_secret *in;
    struct st_secret *out;
    struct st_secret **list;
    size_t *n;
};

static mv_rc get_fn(struct pg_store *pg, void *arg)
{
    struct sec_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    if (c->version && c->version[0]) {
        pp_text(&pp, c->version);
        return one_row(pg,
                       "SELECT " PG_SECRET_COLS ", sealed FROM secrets"
                       " WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                       " AND lower(version) = lower($3) AND deleted = 0",
                       &pp, c->out);
    }
    return one_row(pg,
                   "SELECT " PG_SECRET_COLS ", sealed FROM secrets"
                   " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0"
                   " ORDER BY created DESC, seq DESC LIMIT 1",
                   &pp, c->out);
}

static int scache_key(char *key, const char *vault, const char *name, const char *version)
{
    int n = snprintf(key, SCACHE_KEY, "%s/%s/%s", vault, name, version ? version : "");
    if (n <= 0 || n >= SCACHE_KEY)
        return 0;
    for (char *p = key; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 1;
}

/* The way of key's set that holds it (*hit = 1), else the one to replace: empty, or least
 * recently used. */
static struct scache_entry *scache_way(struct pg_secret_cache *c, const char *key, int *hit)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = key; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    struct scache_entry *set = c->e[h & (SCACHE_SETS - 1)], *victim = &set[0];
    *hit = 0;
    for (size_t i = 0; i < SCACHE_WAYS; i++) {
        if (set[i].key[0] && strcmp(set[i].key, key) == 0) {
            *hit = 1;
            return &set[i];
        }
        if (!set[i].key[0] || (victim->key[0] && set[i].used < victim->used))
            victim = &set[i];
    }
    return victim;
}

static mv_rc secret_copy(struct st_secret *dst, const struct st_secret *src)
{
    mv_rc rc = MV_OK;
    *dst = *src;
    dst->content_type = dst->tags_json = NULL;
    mv_buf_init(&dst->sealed, src->sealed.len + 1);
    CHECK(mv_buf_add(&dst->sealed, src->sealed.p, src->sealed.len));
    ENSURE(!src->content_type || (dst->content_type = strdup(src->content_type)), MV_ERR_INTERNAL);
    ENSURE(!src->tags_json || (dst->tags_json = strdup(src->tags_json)), MV_ERR_INTERNAL);
out:
    if (rc != MV_OK)
        st_secret_clear(dst);
    return rc;
}

void pg_secret_cache_free(struct pg_store *pg)
{
    if (!pg->scache)
        return;
    for (size_t i = 0; i < SCACHE_SETS; i++)
        for (size_t j = 0; j < SCACHE_WAYS; j++)
            if (pg->scache->e[i][j].key[0])
                st_secret_clear(&pg->scache->e[i][j].row);
    free(pg->scache);
    pg->scache = NULL;
}

mv_rc pg_secret_get(struct pg_store *pg, const char *vault, const char *name, const char *version,
                    struct st_secret *out)
{
    struct sec_call c = {.vault = vault, .name = name, .version = version, .out = out};
    char key[SCACHE_KEY];
    memset(out, 0, sizeof *out);
    /* Inside a transaction (a write's own reads) the row must come from the database. */
    if (pg->in_tx || !pg->feed || !scache_key(key, vault, name, version))
        return pg_run(pg, PG_READ, get_fn, &c);
    if (!pg->scache && !(pg->scache = calloc(1, sizeof *pg->scache)))
        return pg_run(pg, PG_READ, get_fn, &c);
    int64_t gen = pg_feed_secrets_generation(pg->feed), now = pg_now_ms();
    int hit = 0;
    struct scache_entry *e = scache_way(pg->scache, key, &hit);
    if (hit && e->gen == gen && now - e->at_ms < SCACHE_TTL_MS) {
        e->used = ++pg->scache->tick;
        return secret_copy(out, &e->row);
    }
    mv_rc rc = pg_run(pg, PG_READ, get_fn, &c);
    if (rc != MV_OK)
        return rc;
    if (e->key[0]) {
        st_secret_clear(&e->row);
        e->key[0] = '\0';
    }
    if (secret_copy(&e->row, out) == MV_OK) {
        memcpy(e->key, key, sizeof e->key);
        e->gen = gen;
        e->at_ms = now;
        e->used = ++pg->scache->tick;
    }
    return MV_OK;
}

static mv_rc update_fn(struct pg_store *pg, void *arg)
{
    pg->touched_secrets = 1; /* the secrets generation moves at commit (cache above) */
    mv_rc rc = MV_OK;
    const struct st_secret *v = ((struct sec_call *)arg)->in;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, v->vault);
    pp_text(&pp, v->name);
    pp_text(&pp, v->version);
    pp_text(&pp, v->content_type);
    pp_text(&pp, v->tags_json);
    pp_i64(&pp, v->enabled ? 1 : 0);
    pp_i64(&pp, v->nbf);
    pp_i64(&pp, v->exp);
    pp_i64(&pp, v->updated);
    CHECK(pg_exec(pg,
                  "UPDATE secrets SET content_type = $4, tags_json = $5, enabled = $6, nbf = $7,"
                  " exp = $8, updated = $9"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                  " AND lower(version) = lower($3) AND deleted = 0",
                  &pp, NULL, &changes));
    ENSURE(changes > 0, MV_ERR_NOT_FOUND);
out:
    return rc;
}

mv_rc pg_secret_update(struct pg_store *pg, const struct st_secret *s)
{
    struct sec_call c = {.in = s};
    if (!s->version[0]) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: update without a version");
        return MV_ERR_BAD_REQUEST;
    }
    return pg_run(pg, PG_WRITE1, update_fn, &c);
}

/* Keyset paging over secrets_live / secrets_deleted: DISTINCT ON keeps each name's first row
 * in (lower(name), created DESC, seq DESC) order, its latest version; a page costs O(page). */
static const char LIST_LIVE[] =
    "SELECT DISTINCT ON (lower(name)) " PG_SECRET_COLS " FROM secrets"
    " WHERE vault_key = lower($1) AND deleted = 0 AND lower(name) > lower($2)"
    " ORDER BY lower(name), created DESC, seq DESC LIMIT $3";
static const char LIST_DELETED[] =
    "SELECT DISTINCT ON (lower(name)) " PG_SECRET_COLS " FROM secrets"
    " WHERE vault_key = lower($1) AND deleted <> 0 AND lower(name) > lower($2)"
    " ORDER BY lower(name), created DESC, seq DESC LIMIT $3";

static mv_rc list_fn(struct pg_store *pg, void *arg)
{
    struct sec_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->after ? c->after : ""); /* every name is > "" (names are not empty) */
    pp_i64(&pp, c->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)c->limit);
    return rows(pg, c->days ? LIST_DELETED : LIST_LIVE, &pp, c->list, c->n);
}

mv_rc pg_secret_list(struct pg_store *pg, const char *vault, const char *after, size_t limit,
                     struct st_secret **out, size_t *n)
{
    struct sec_call c = {.vault = vault, .after = after, .limit = limit, .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, list_fn, &c);
}

mv_rc pg_secret_list_deleted(struct pg_store *pg, const char *vault, const char *after,
                             size_t limit, struct st_secret **out, size_t *n)
{
    struct sec_call c = {.vault = vault, .after = after, .limit = limit, .days = 1, .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, list_fn, &c);
}

static mv_rc versions_fn(struct pg_store *pg, void *arg)
{
    struct sec_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    pp_i64(&pp, c->limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)c->limit);
    if (c->after && c->after[0]) {
        pp_text(&pp, c->after);
        /* After an unknown version the row comparison is NULL: an empty page. */
        return rows(pg,
                    "SELECT " PG_SECRET_COLS " FROM secrets"
                    " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0"
                    " AND (created, lower(version)) > (SELECT created, lower(version) FROM secrets"
                    "  WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                    "  AND lower(version) = lower($4) AND deleted = 0)"
                    " ORDER BY created, lower(version) LIMIT $3",
                    &pp, c->list, c->n);
    }
    return rows(pg,
                "SELECT " PG_SECRET_COLS " FROM secrets"
                " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0"
                " ORDER BY created, lower(version) LIMIT $3",
                &pp, c->list, c->n);
}

mv_rc pg_secret_versions(struct pg_store *pg, const char *vault, const char *name,
                         const char *after_version, size_t limit, struct st_secret **out,
                         size_t *n)
{
    struct sec_call c = {.vault = vault, .name = name, .after = after_version, .limit = limit,
                         .list = out, .n = n};
    *out = NULL;
    *n = 0;
    return pg_run(pg, PG_READ, versions_fn, &c);
}

/* ---- delete, deleted view, recover, purge ---- */

static const char GET_DELETED[] =
    "SELECT " PG_SECRET_COLS ", sealed FROM secrets"
    " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted <> 0"
    " ORDER BY created DESC, seq DESC LIMIT 1";

static mv_rc get_deleted_fn(struct pg_store *pg, void *arg)
{
    struct sec_call *c = arg;
    struct pg_params pp = {0};
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    return one_row(pg, GET_DELETED, &pp, c->out);
}

mv_rc pg_secret_get_deleted(struct pg_store *pg, const char *vault, const char *name,
                            struct st_secret *out)
{
    struct sec_call c = {.vault = vault, .name = name, .out = out};
    memset(out, 0, sizeof *out);
    return pg_run(pg, PG_READ, get_deleted_fn, &c);
}

static mv_rc delete_fn(struct pg_store *pg, void *arg)
{
    pg->touched_secrets = 1; /* the secrets generation moves at commit (cache above) */
    mv_rc rc = MV_OK;
    struct sec_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    CHECK(pg_exec(pg, NAME_LOCK, &pp, NULL, NULL));
    if (c->unmanaged) {
        /* under the lock a certificate's write takes too (mv_secret_add): a certificate created
         * concurrently either committed before this read or waits for this delete */
        PGresult *r = NULL;
        CHECK(pg_exec(pg,
                      "SELECT 1 FROM cert_objects WHERE vault_key = lower($1) AND kind = 1"
                      " AND lower(name) = lower($2) AND deleted = 0 LIMIT 1",
                      &pp, &r, NULL));
        int owned = PQntuples(r) > 0;
        PQclear(r);
        ENSURE_MSG(!owned, MV_ERR_FORBIDDEN, "store: a certificate owns secret %s", c->name);
    }
    if (c->days == 0) {
        CHECK(get_fn(pg, c)); /* the row as it was */
        CHECK(pg_exec(pg,
                      "DELETE FROM secrets WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                      " AND deleted = 0",
                      &pp, NULL, NULL));
        goto out;
    }
    pp_i64(&pp, c->now);
    pp_i64(&pp, c->now + (int64_t)c->days * DAY_SECS);
    CHECK(pg_exec(pg,
                  "UPDATE secrets SET deleted = $3, purge_at = $4"
                  " WHERE vault_key = lower($1) AND lower(name) = lower($2) AND deleted = 0",
                  &pp, NULL, &changes));
    pp.n = 2;
    CHECK(one_row(pg, GET_DELETED, &pp, c->out));
    /* Nothing live was deleted: fine only if this is our own re-run (same deletion time). */
    if (changes == 0 && !(pg->replay && c->out->deleted == c->now)) {
        st_secret_clear(c->out);
        memset(c->out, 0, sizeof *c->out);
        ENSURE(0, MV_ERR_NOT_FOUND);
    }
out:
    return rc;
}

mv_rc pg_secret_delete(struct pg_store *pg, const char *vault, const char *name, int64_t now,
                       int days, int unmanaged, struct st_secret *out)
{
    struct sec_call c = {.vault = vault, .name = name, .now = now, .days = days,
                         .unmanaged = unmanaged, .out = out};
    memset(out, 0, sizeof *out);
    /* deleted = now must be non-zero (0 means live); days is 7..90 for Key Vault. */
    if (now <= 0 || days < 0 || days > 3650) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: bad deletion time or retention");
        return MV_ERR_BAD_REQUEST;
    }
    mv_rc rc = pg_run(pg, PG_WRITE, delete_fn, &c);
    if (rc != MV_OK)
        st_secret_clear(out);
    return rc;
}

static mv_rc named_fn(struct pg_store *pg, void *arg)
{
    pg->touched_secrets = 1; /* the secrets generation moves at commit (cache above) */
    mv_rc rc = MV_OK;
    struct sec_call *c = arg;
    struct pg_params pp = {0};
    int64_t changes = 0;
    pp_text(&pp, c->vault);
    pp_text(&pp, c->name);
    CHECK(pg_exec(pg, c->after, &pp, NULL, &changes)); /* after: the statement */
    ENSURE(changes > 0 || pg->replay, MV_ERR_NOT_FOUND);
out:
    return rc;
}

mv_rc pg_secret_recover(struct pg_store *pg, const char *vault, const char *name)
{
    static const char sql[] = "UPDATE secrets SET deleted = 0, purge_at = 0"
                              " WHERE vault_key = lower($1) AND lower(name) = lower($2)"
                              " AND deleted <> 0";
    struct sec_call c = {.vault = vault, .name = name, .after = sql};
    return pg_run(pg, PG_WRITE1, named_fn, &c);
}

mv_rc pg_secret_purge(struct pg_store *pg, const char *vault, const char *name)
{
    static const char sql[] = "DELETE FROM secrets WHERE vault_key = lower($1)"
                              " AND lower(name) = lower($2) AND deleted <> 0";
    struct sec_call c = {.vault = vault, .name = name, .after = sql};
    return pg_run(pg, PG_WRITE1, named_fn, &c);
}

static mv_rc purge_expired_fn(struct pg_store *pg, void *arg)
{
    struct pg_params pp = {0};
    pg->touched_secrets = 1;
    pp_i64(&pp, ((struct sec_call *)arg)->now);
    return pg_exec(pg, "DELETE FROM secrets WHERE deleted <> 0 AND purge_at <= $1", &pp, NULL,
                   NULL);
}

mv_rc pg_secret_purge_expired(struct pg_store *pg, int64_t now)
{
    struct sec_call c = {.now = now};
    return pg_run(pg, PG_WRITE1, purge_expired_fn, &c);
}
