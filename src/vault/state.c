/* state.c: the per-loop-thread caches of the vault (DESIGN §7), reached as w->vault_state and
 * touched only by the thread that owns the worker (no locks).
 *
 * - Verified tokens, kept until the token's exp: a repeat request skips the RSA verification.
 *   256 sets of 4 ways (1024 entries); a full set evicts its oldest entry. Only successful
 *   validations are cached. An entry holds a copy of the token itself and a hit is an exact
 *   match of every byte (compared without an early exit), so a hit means "this very token
 *   was verified"; the set is chosen by a 64-bit hash of the token keyed with a per-worker
 *   random seed, so a client cannot aim its tokens at another client's set. A hit whose
 *   signing key left the loop's key set (retired: token_keyset_knows) is dropped and the token
 *   validated afresh, so a retired key's tokens stop working here too. (This replaced a
 *   SHA-256 of the token per request: the token is ~1.3 kB and a hit needs no digest.)
 * - Vault rows, valid while store_generation() is unchanged (the store bumps it on every change
 *   to vaults, principals and role assignments, from any connection or process), so a revoked
 *   assignment takes effect on the next request.
 * - Role assignments per principal, under the same generation rule: the principal's
 *   assignments are read once (scope, and the role definition resolved once), and a decision
 *   is an in-memory scan of them with rbac_scope_covers / rbac_role_allows, whatever the
 *   secret. This is rbac_check's rule exactly (rbac/rbac.h; data actions, no role-assignment
 *   condition involved), minus the query. 32 sets of 4 principals; a principal with more than
 *   PRIN_MAX_ASSIGN assignments is decided by rbac_check every time. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "rbac/rbac.h"
#include "common/metrics.h"
#include "vault/vault_internal.h"

#define TOK_SETS 256
#define TOK_WAYS 4
#define VAULT_SLOTS 64
#define PRIN_SETS 32
#define PRIN_WAYS 4
#define PRIN_MAX_ASSIGN 64

struct tok_entry {
    uint64_t key;  /* keyed hash of the token */
    uint64_t born; /* insertion tick; 0 = empty */
    char *token;   /* the token (malloc'd, len bytes) */
    size_t len;
    struct token_info info;
};

struct vault_entry {
    int used;
    struct st_vault v;
};

struct prin_assign {
    const struct role_def *role; /* NULL: unknown role id, allows nothing */
    char *scope;                 /* malloc'd */
};

struct prin_entry {
    uint64_t born;   /* 0 = empty */
    char oid[ST_ID]; /* lower-case */
    size_t n;
    struct prin_assign *as;
};

struct vault_state {
    uint64_t seed;
    uint64_t tick;
    struct tok_entry tokens[TOK_SETS][TOK_WAYS];
    int64_t gen;
    int gen_valid;
    struct vault_entry vaults[VAULT_SLOTS];
    struct prin_entry prins[PRIN_SETS][PRIN_WAYS];
};

mv_rc vault_worker_init(struct vault_loop *w)
{
    struct vault_state *s = calloc(1, sizeof *s);
    if (!s) {
        mv_fail(MV_ERR_INTERNAL, "vault state: out of memory");
        return MV_ERR_INTERNAL;
    }
    if (mv_random(&s->seed, sizeof s->seed) != MV_OK) {
        free(s);
        return MV_ERR_INTERNAL;
    }
    w->vault_state = s;
    return MV_OK;
}

static void tok_clear(struct tok_entry *e)
{
    if (e->token) {
        OPENSSL_cleanse(e->token, e->len);
        free(e->token);
    }
    memset(e, 0, sizeof *e);
}

static void prin_clear(struct prin_entry *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->as[i].scope);
    free(e->as);
    memset(e, 0, sizeof *e);
}

static void prins_clear(struct vault_state *s)
{
    for (size_t i = 0; i < PRIN_SETS; i++)
        for (size_t j = 0; j < PRIN_WAYS; j++)
            if (s->prins[i][j].born)
                prin_clear(&s->prins[i][j]);
}

void vault_worker_free(struct vault_loop *w)
{
    if (w)
        vault_keycache_free(w);
    if (!w || !w->vault_state)
        return;
    struct vault_state *s = w->vault_state;
    for (size_t i = 0; i < TOK_SETS; i++)
        for (size_t j = 0; j < TOK_WAYS; j++)
            tok_clear(&s->tokens[i][j]);
    prins_clear(s);
    /* Token infos are not secrets, but the cache is what lets a token in: wipe it anyway. */
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
    w->vault_state = NULL;
}

static uint32_t fnv(const char *s, uint32_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/* ---- verified tokens ---- */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

#define TOK_HASHED_TAIL 64

/* A keyed 64-bit hash for choosing the set: of the length and the last TOK_HASHED_TAIL bytes,
 * which for a JWS are signature bytes, as good as random. Not a MAC: a hit is decided by
 * comparing the whole token, so tokens sharing a tail only share a set. */
static uint64_t tok_hash(uint64_t seed, const char *p, size_t n)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15u);
    if (n > TOK_HASHED_TAIL) {
        p += n - TOK_HASHED_TAIL;
        n = TOK_HASHED_TAIL;
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        h = (h ^ x) * 0x9e3779b97f4a7c15u;
        h ^= h >> 31;
    }
    uint64_t t = 0;
    memcpy(&t, p, n);
    return mix64(h ^ t ^ seed);
}

/* Equality of two n-byte strings without an early exit, 32 bytes a step (OpenSSL's
 * CRYPTO_memcmp compares a byte at a time, and a bearer token is ~1.3 kB). */
static int ct_equal(const char *a, const char *b, size_t n)
{
    uint64_t d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t x[4], y[4];
        memcpy(x, a + i, 32);
        memcpy(y, b + i, 32);
        d0 |= x[0] ^ y[0];
        d1 |= x[1] ^ y[1];
        d2 |= x[2] ^ y[2];
        d3 |= x[3] ^ y[3];
    }
    for (; i < n; i++)
        d0 |= (uint64_t)((unsigned char)a[i] ^ (unsigned char)b[i]);
    return (d0 | d1 | d2 | d3) == 0;
}

int vault_state_token_get(struct vault_loop *w, const char *token, size_t len, int64_t now,
                          struct token_info *out)
{
    struct vault_state *s = w->vault_state;
    if (!s || !token || len == 0)
        return 0;
    uint64_t key = tok_hash(s->seed, token, len);
    struct tok_entry *set = s->tokens[key >> 56];
    for (int i = 0; i < TOK_WAYS; i++) {
        struct tok_entry *e = &set[i];
        if (e->born && e->key == key && e->len == len && ct_equal(e->token, token, len)) {
            if (e->info.exp <= now || (w->tv && !token_keyset_knows(w->tv, e->info.kid))) {
                tok_clear(e); /* expired, or its key retired: forget it, validate afresh */
                mv_metric_inc(MV_M_CACHE_MISSES, "vault_token", NULL);
                return 0;
            }
            *out = e->info;
            mv_metric_inc(MV_M_CACHE_HITS, "vault_token", NULL);
            return 1;
        }
    }
    mv_metric_inc(MV_M_CACHE_MISSES, "vault_token", NULL);
    return 0;
}

void vault_state_token_put(struct vault_loop *w, const char *token, size_t len,
                           const struct token_info *info)
{
    struct vault_state *s = w->vault_state;
    if (!s || !token || len == 0)
        return;
    uint64_t key = tok_hash(s->seed, token, len);
    struct tok_entry *set = s->tokens[key >> 56];
    struct tok_entry *victim = &set[0];
    for (int i = 0; i < TOK_WAYS; i++) {
        struct tok_entry *e = &set[i];
        if (!e->born || (e->key == key && e->len == len && ct_equal(e->token, token, len))) {
            victim = e;
            break;
        }
        if (e->born < victim->born)
            victim = e;
    }
    char *copy = malloc(len);
    if (!copy)
        return; /* not cached: the next request verifies again */
    memcpy(copy, token, len);
    tok_clear(victim);
    victim->key = key;
    victim->token = copy;
    victim->len = len;
    victim->info = *info;
    victim->born = ++s->tick;
}

/* ---- generation-bound caches ---- */

/* Drops the generation-bound caches if the store changed since they were filled. */
static void sync_generation(struct vault_state *s, struct store *st)
{
    int64_t gen = 0;
    if (store_generation(st, &gen) != MV_OK) {
        LOG_WARN("vault: store generation unavailable (%s); caches bypassed", mv_last_detail());
        gen = -1;
    }
    if (!s->gen_valid || gen != s->gen || gen < 0) {
        memset(s->vaults, 0, sizeof s->vaults);
        prins_clear(s);
        s->gen = gen;
        s->gen_valid = gen >= 0;
    }
}

mv_rc vault_state_vault(struct vault_loop *w, const char *name, struct st_vault *out)
{
    struct vault_state *s = w->vault_state;
    if (!s)
        return store_vault_get(w->st, name, out);
    sync_generation(s, w->st);
    struct vault_entry *e = &s->vaults[fnv(name, 2166136261u) % VAULT_SLOTS];
    if (s->gen_valid && e->used && mv_streq_ci(e->v.name, name)) {
        *out = e->v;
        return MV_OK;
    }
    mv_rc rc = store_vault_get(w->st, name, out);
    if (rc == MV_OK && s->gen_valid) {
        e->v = *out;
        e->used = 1;
    }
    return rc;
}

static int prin_allows(const struct prin_entry *e, const char *action, const char *resource)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->as[i].role && rbac_scope_covers(e->as[i].scope, resource) &&
            rbac_role_allows(e->as[i].role, action, 1))
            return 1;
    return 0;
}

/* Fills e with the assignments of oid (lower-case). MV_ERR_LIMIT: too many to cache. */
static mv_rc prin_load(struct store *st, const char *oid, struct prin_entry *e)
{
    mv_rc rc = MV_OK;
    struct st_role_assignment *as = NULL;
    size_t n = 0;
    CHECK(store_role_assignment_list(st, oid, NULL, &as, &n));
    ENSURE(n <= PRIN_MAX_ASSIGN, MV_ERR_LIMIT);
    if (n) {
        e->as = calloc(n, sizeof *e->as);
        ENSURE(e->as != NULL, MV_ERR_INTERNAL);
    }
    for (size_t i = 0; i < n; i++) {
        e->as[i].scope = strdup(as[i].scope);
        ENSURE(e->as[i].scope != NULL, MV_ERR_INTERNAL);
        e->as[i].role = rbac_role_find(as[i].role_id);
        e->n = i + 1;
    }
    memcpy(e->oid, oid, strlen(oid) + 1);
out:
    free(as);
    return rc;
}

mv_rc vault_state_rbac(struct vault_loop *w, const char *oid, const char *action,
                       const char *resource, int *allowed)
{
    struct vault_state *s = w->vault_state;
    char key[ST_ID];
    *allowed = 0;
    if (!oid || !*oid) /* no principal, no assignment, no access (as rbac_check) */
        return MV_OK;
    /* Called after vault_state_vault in the same request: the generation is current. */
    if (!s || !s->gen_valid || mv_copy(key, sizeof key, oid) != MV_OK)
        return rbac_check(w->st, oid, action, 1, resource, allowed);
    mv_lower(key); /* principal ids compare case-insensitively (the store's COLLATE NOCASE) */
    struct prin_entry *set = s->prins[fnv(key, 2166136261u) % PRIN_SETS];
    struct prin_entry *victim = &set[0];
    for (int i = 0; i < PRIN_WAYS; i++) {
        struct prin_entry *e = &set[i];
        if (e->born && strcmp(e->oid, key) == 0) {
            *allowed = prin_allows(e, action, resource);
            mv_metric_inc(MV_M_CACHE_HITS, "vault_rbac", NULL);
            return MV_OK;
        }
        if (!e->born) {
            victim = e;
            break;
        }
        if (e->born < victim->born)
            victim = e;
    }
    mv_metric_inc(MV_M_CACHE_MISSES, "vault_rbac", NULL);
    prin_clear(victim);
    mv_rc rc = prin_load(w->st, key, victim);
    if (rc != MV_OK) {
        prin_clear(victim);
        if (rc == MV_ERR_LIMIT) /* too many assignments to keep: decide from the store */
            return rbac_check(w->st, oid, action, 1, resource, allowed);
        return rc;
    }
    victim->born = ++s->tick;
    *allowed = prin_allows(victim, action, resource);
    return MV_OK;
}
