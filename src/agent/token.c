/* token.c: a token for one request: from the cache, else from the authority (DESIGN §7).
 *
 * FRESH cache entries are served as they are (IMDS does the same: "the same cached token with a
 * decreasing expires_in", reference §1.6). A MISS or a STALE entry (past half-life or within
 * 5 min of exp) asks the authority; if the authority cannot be reached (or is throttling or
 * failing) a STALE entry is still served until its exp, so a workload keeps working while the
 * authority is down. A definite "no" from the authority (identity removed, node revoked) drops
 * the cached entry at once, so disabling an identity takes effect at the next refresh.
 *
 * Loops: the cache is shared by every loop under agent.mu, held only for lookups, puts and the
 * caller's copy of the reply (never across the authority request). A miss blocks its own loop
 * for one authority round trip, on that loop's HTTP client. While a key is being fetched it has
 * a flight (struct agent_flight); a loop that misses the same key meanwhile waits for the
 * flight to land (agent.flight_done) and takes its outcome instead of asking again, so
 * concurrent misses share one authority request. The flight is unlinked when it lands and freed
 * by whoever looks at it last (the fetcher, or the last waiter). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

struct agent_flight {
    enum agent_sel sel;
    const char *sel_value; /* the fetcher's request (valid while the flight is linked) */
    const char *resource;
    int done;
    mv_rc rc;
    int waiters;
    struct agent_flight *next;
};

int agent_rate_ok(struct agent *a)
{
    if (ratelimit_off(&a->rl))
        return 1;
    pthread_mutex_lock(&a->mu);
    int ok = ratelimit_take(&a->rl, mv_now_ms());
    pthread_mutex_unlock(&a->mu);
    return ok;
}

void agent_vm_resource_id(struct agent *a, char *out, size_t len)
{
    pthread_mutex_lock(&a->mu);
    if (mv_copy(out, len, a->vm_resource_id) != MV_OK)
        out[0] = '\0';
    pthread_mutex_unlock(&a->mu);
}

/* A system-assigned token's xms_mirid is the VM's ARM id: remember it for /metadata/instance.
 * Under mu. */
static void learn_vm_id(struct agent *a, const struct imds_token_req *r, const char *mirid)
{
    static const char marker[] = "/providers/Microsoft.Compute/virtualMachines/";
    if (r->sel != SEL_NONE || !mirid[0] || a->vm_resource_id[0])
        return;
    size_t n = strlen(mirid), m = sizeof marker - 1;
    for (size_t i = 0; i + m <= n; i++) {
        if (strncasecmp(mirid + i, marker, m) == 0) {
            if (mv_copy(a->vm_resource_id, sizeof a->vm_resource_id, mirid) != MV_OK)
                a->vm_resource_id[0] = '\0';
            return;
        }
    }
}

/* The cache's key equality: kind, selector case-insensitively, resource exactly. Under mu. */
static struct agent_flight *flight_find(struct agent *a, const struct imds_token_req *r)
{
    for (struct agent_flight *f = a->flights; f; f = f->next) {
        if (f->sel != r->sel || strcmp(f->resource, r->resource) != 0)
            continue;
        if (mv_streq_ci(f->sel_value ? f->sel_value : "", r->sel_value ? r->sel_value : ""))
            return f;
    }
    return NULL;
}

static void flight_unlink(struct agent *a, struct agent_flight *f)
{
    for (struct agent_flight **pp = &a->flights; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            return;
        }
    }
}

/* After the authority answered rc for r's key (this loop's request or another's): what the
 * request gets. Under mu. */
static mv_rc settle(struct agent *a, const struct imds_token_req *r, mv_rc rc, int64_t now,
                    agent_token_use use, void *ctx)
{
    const struct tcache_entry *e = NULL;
    if (rc == MV_ERR_NOT_FOUND || rc == MV_ERR_BAD_REQUEST)
        return rc;
    enum tcache_state st = tcache_lookup(&a->cache, r->sel, r->sel_value, r->resource, now, &e);
    if (st == TCACHE_MISS)
        return rc == MV_OK ? MV_ERR_UNAVAILABLE : rc; /* OK: evicted meanwhile (256 newer keys) */
    if (rc != MV_OK) {
        /* The authority failed (unreachable, 5xx, 429): the cached token is still valid. */
        LOG_WARN("agent: serving a cached token (expires in %lld s) while the authority fails",
                 (long long)(e->tok.exp - now));
    }
    return use(e, now, ctx);
}

mv_rc agent_get_token(struct agent_loop *w, const struct imds_token_req *r, agent_token_use use,
                      void *ctx)
{
    struct agent *a = w->a;
    mv_rc rc = MV_OK;
    struct agent_token t = {0};
    const struct tcache_entry *e = NULL;
    int64_t now = mv_now();
    pthread_mutex_lock(&a->mu);
    if (tcache_lookup(&a->cache, r->sel, r->sel_value, r->resource, now, &e) == TCACHE_FRESH) {
        rc = use(e, now, ctx);
        goto out;
    }
    struct agent_flight *f = flight_find(a, r);
    if (f) {
        /* Another loop is asking the authority for this key: its answer is ours. */
        f->waiters++;
        while (!f->done)
            pthread_cond_wait(&a->flight_done, &a->mu);
        rc = f->rc;
        if (--f->waiters == 0)
            free(f);
        rc = settle(a, r, rc, mv_now(), use, ctx);
        goto out;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    *f = (struct agent_flight){r->sel, r->sel_value, r->resource, 0, MV_OK, 0, a->flights};
    a->flights = f;
    pthread_mutex_unlock(&a->mu);

    rc = agent_authority_token(a, w->http, r->sel, r->sel_value, r->resource, &t);

    pthread_mutex_lock(&a->mu);
    if (rc == MV_OK) {
        learn_vm_id(a, r, t.mirid);
        rc = tcache_put(&a->cache, r->sel, r->sel_value, r->resource, &t, now, NULL);
    } else if (rc == MV_ERR_NOT_FOUND || rc == MV_ERR_BAD_REQUEST) {
        tcache_remove(&a->cache, r->sel, r->sel_value, r->resource);
    }
    flight_unlink(a, f);
    f->done = 1;
    f->rc = rc;
    if (f->waiters)
        pthread_cond_broadcast(&a->flight_done);
    else
        free(f);
    rc = settle(a, r, rc, now, use, ctx);
out:
    pthread_mutex_unlock(&a->mu);
    agent_token_free(&t);
    return rc;
}
