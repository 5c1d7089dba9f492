/* cache.c: the agent's token cache (DESIGN §7, reference §1.6), pure and unit-tested.
 *
 * Key: (selector kind, selector value lower-cased, resource exact). GUIDs and ARM ids compare
 * case-insensitively, resources do not: "https://vault.azure.net" and "https://vault.azure.net/"
 * are different audiences (reference §9 item 7).
 *
 * Freshness: an entry is FRESH while now < exp - 5 min and before its half-life (fetched +
 * (exp - fetched) / 2), the same points at which SDKs refresh (MSAL refresh_in = expires_in/2,
 * Python's 300 s margin); after that it is STALE (refresh now, but still servable while the
 * authority is down) until exp, then gone.
 *
 * Bounded at c->max entries: a put into a full cache drops expired entries, then the least
 * recently used one. A linear scan is fine at 256 entries. Tokens are wiped when dropped.
 *
 * Each entry carries its IMDS reply body, rendered at put (render.c), so that a cached-token
 * reply is a few copies. Nothing here locks: the agent holds its mutex around every call. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "common/metrics.h"
#include "common/util.h"

void agent_token_free(struct agent_token *t)
{
    if (t->access_token) {
        OPENSSL_cleanse(t->access_token, strlen(t->access_token));
        free(t->access_token);
    }
    *t = (struct agent_token){0};
}

void tcache_init(struct tcache *c, size_t max)
{
    *c = (struct tcache){NULL, 0, max ? max : 1, 0};
}

static void entry_free(struct tcache_entry *e)
{
    free(e->sel_value);
    free(e->resource);
    free(e->owner);
    agent_token_free(&e->tok);
    imds_body_tmpl_free(&e->body);
}

static void drop_at(struct tcache *c, size_t i)
{
    entry_free(&c->e[i]);
    c->e[i] = c->e[c->n - 1];
    c->n--;
}

void tcache_free(struct tcache *c)
{
    for (size_t i = 0; i < c->n; i++)
        entry_free(&c->e[i]);
    free(c->e);
    *c = (struct tcache){0};
}

/* Case-insensitive ASCII equality of the stored (lower-cased) selector and a request's value. */
static int sel_eq(const char *stored, const char *v)
{
    v = v ? v : "";
    return mv_streq_ci(stored, v);
}

static long find(const struct tcache *c, enum agent_sel sel, const char *sel_value,
                 const char *resource, const char *owner)
{
    owner = owner ? owner : "";
    for (size_t i = 0; i < c->n; i++) {
        const struct tcache_entry *e = &c->e[i];
        if (e->sel == sel && strcmp(e->resource, resource) == 0 && sel_eq(e->sel_value, sel_value) &&
            strcmp(e->owner ? e->owner : "", owner) == 0)
            return (long)i;
    }
    return -1;
}

int tcache_entry_fresh(const struct tcache_entry *e, int64_t now)
{
    int64_t half = e->fetched + (e->tok.exp - e->fetched) / 2;
    return now < e->tok.exp - TCACHE_REFRESH_MARGIN_SECS && now < half;
}

enum tcache_state tcache_lookup(struct tcache *c, enum agent_sel sel, const char *sel_value,
                                const char *resource, int64_t now, const struct tcache_entry **out)
{
    return tcache_lookup_o(c, sel, sel_value, resource, NULL, now, out);
}

enum tcache_state tcache_lookup_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                                  const char *resource, const char *owner, int64_t now,
                                  const struct tcache_entry **out)
{
    *out = NULL;
    long i = find(c, sel, sel_value, resource, owner);
    if (i < 0) {
        mv_metric_inc(MV_M_CACHE_MISSES, "imds_token", NULL);
        return TCACHE_MISS;
    }
    struct tcache_entry *e = &c->e[i];
    if (now >= e->tok.exp) {
        drop_at(c, (size_t)i);
        mv_metric_inc(MV_M_CACHE_MISSES, "imds_token", NULL);
        return TCACHE_MISS;
    }
    e->used = ++c->tick;
    *out = e;
    /* a stale entry counts as a hit: it is served unless its refresh succeeds */
    mv_metric_inc(MV_M_CACHE_HITS, "imds_token", NULL);
    return tcache_entry_fresh(e, now) ? TCACHE_FRESH : TCACHE_STALE;
}

void tcache_remove(struct tcache *c, enum agent_sel sel, const char *sel_value,
                   const char *resource)
{
    tcache_remove_o(c, sel, sel_value, resource, NULL);
}

void tcache_remove_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                     const char *resource, const char *owner)
{
    long i = find(c, sel, sel_value, resource, owner);
    if (i >= 0)
        drop_at(c, (size_t)i);
}

void tcache_backoff(struct tcache *c, enum agent_sel sel, const char *sel_value,
                    const char *resource, int64_t now, int64_t max_secs)
{
    tcache_backoff_o(c, sel, sel_value, resource, NULL, now, max_secs);
}

void tcache_backoff_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                      const char *resource, const char *owner, int64_t now, int64_t max_secs)
{
    long i = find(c, sel, sel_value, resource, owner);
    if (i < 0)
        return;
    struct tcache_entry *e = &c->e[i];
    int64_t wait = e->fails < 30 ? (int64_t)1 << e->fails : max_secs;
    e->fails++;
    e->retry_at = now + (wait < max_secs ? wait : max_secs);
}

/* Makes room for one more entry: expired ones first, then the least recently used. */
static void make_room(struct tcache *c, int64_t now)
{
    for (size_t i = c->n; i-- > 0;)
        if (now >= c->e[i].tok.exp)
            drop_at(c, i);
    if (c->n < c->max)
        return;
    size_t lru = 0;
    for (size_t i = 1; i < c->n; i++)
        if (c->e[i].used < c->e[lru].used)
            lru = i;
    drop_at(c, lru);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

mv_rc tcache_put(struct tcache *c, enum agent_sel sel, const char *sel_value, const char *resource,
                 const struct agent_token *t, int64_t now, const struct tcache_entry **out)
{
    return tcache_put_o(c, sel, sel_value, resource, NULL, t, now, out);
}

mv_rc tcache_put_o(struct tcache *c, enum agent_sel sel, const char *sel_value,
                   const char *resource, const char *owner, const struct agent_token *t,
                   int64_t now, const struct tcache_entry **out)
{
    mv_rc rc = MV_OK;
    struct tcache_entry ne = {0};
    if (out)
        *out = NULL;
    ENSURE(t->access_token && resource, MV_ERR_INTERNAL);
    tcache_remove_o(c, sel, sel_value, resource, owner);
    if (!c->e) {
        c->e = calloc(c->max, sizeof *c->e);
        ENSURE(c->e, MV_ERR_INTERNAL);
    }
    if (c->n >= c->max)
        make_room(c, now);
    ne.sel = sel;
    ne.sel_value = dup_str(sel == SEL_NONE || !sel_value ? "" : sel_value);
    ne.resource = dup_str(resource);
    ne.owner = dup_str(owner ? owner : "");
    ne.tok = *t;
    ne.tok.access_token = dup_str(t->access_token);
    ENSURE(ne.sel_value && ne.resource && ne.owner && ne.tok.access_token, MV_ERR_INTERNAL);
    mv_lower(ne.sel_value);
    ne.fetched = now;
    ENSURE_MSG(imds_body_tmpl_make(ne.resource, &ne.tok, now, &ne.body) == MV_OK, MV_ERR_INTERNAL,
               "token reply cannot be rendered as JSON");
    ne.used = ++c->tick;
    c->e[c->n] = ne;
    if (out)
        *out = &c->e[c->n];
    c->n++;
    ne = (struct tcache_entry){0};
out:
    entry_free(&ne);
    return rc;
}
