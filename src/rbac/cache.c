/* cache.c: the per-thread cache of RBAC decisions on data actions (cache.h). */
#include "rbac/cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/metrics.h"
#include "common/util.h"
#include "rbac/rbac.h"

#define PRIN_SETS 32
#define PRIN_WAYS 4

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

struct rbac_cache {
    uint64_t tick;
    struct prin_entry prins[PRIN_SETS][PRIN_WAYS];
};

mv_rc rbac_cache_new(struct rbac_cache **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) {
        mv_fail(MV_ERR_INTERNAL, "rbac cache: out of memory");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

static void prin_clear(struct prin_entry *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->as[i].scope);
    free(e->as);
    memset(e, 0, sizeof *e);
}

void rbac_cache_clear(struct rbac_cache *c)
{
    for (size_t i = 0; i < PRIN_SETS; i++)
        for (size_t j = 0; j < PRIN_WAYS; j++)
            if (c->prins[i][j].born)
                prin_clear(&c->prins[i][j]);
}

void rbac_cache_free(struct rbac_cache *c)
{
    if (!c)
        return;
    rbac_cache_clear(c);
    free(c);
}

static uint32_t fnv(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
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
    ENSURE(n <= RBAC_CACHE_MAX_ASSIGN, MV_ERR_LIMIT);
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

mv_rc rbac_cache_check(struct rbac_cache *c, struct store *st, const char *oid, const char *action,
                       const char *resource, int *allowed)
{
    char key[ST_ID];
    *allowed = 0;
    if (!oid || !*oid) /* no principal, no assignment, no access (as rbac_check) */
        return MV_OK;
    if (!c || mv_copy(key, sizeof key, oid) != MV_OK)
        return rbac_check(st, oid, action, 1, resource, allowed);
    mv_lower(key); /* principal ids compare case-insensitively (the store's COLLATE NOCASE) */
    struct prin_entry *set = c->prins[fnv(key) % PRIN_SETS];
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
    mv_rc rc = prin_load(st, key, victim);
    if (rc != MV_OK) {
        prin_clear(victim);
        if (rc == MV_ERR_LIMIT) /* too many assignments to keep: decide from the store */
            return rbac_check(st, oid, action, 1, resource, allowed);
        return rc;
    }
    victim->born = ++c->tick;
    *allowed = prin_allows(victim, action, resource);
    return MV_OK;
}
