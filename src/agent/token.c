/* token.c: a token for one request: from the cache, else from the authority (DESIGN §7),
 * without ever blocking an event loop on the authority.
 *
 * FRESH cache entries are served as they are (IMDS does the same: "the same cached token with a
 * decreasing expires_in", reference §1.6). A STALE entry (past half-life or within 5 min of exp,
 * still valid) is served too, and its refresh is queued. A MISS defers the IMDS reply
 * (http_defer): the request waits on a flight, the one authority request for its key that any
 * number of concurrent misses share, and is answered on its own loop thread when the flight
 * lands or after AGENT_MISS_WAIT_MS, whichever comes first (then with the still-valid cached
 * token if there is one, else IMDS's transient 500, which SDKs retry).
 *
 * Authority requests run on AGENT_FETCHERS fetcher threads, each with its own HTTP client.
 * They take flights from a queue, and every AGENT_SCAN_MS also look for STALE entries to
 * refresh ahead of expiry; a refresh that fails (authority unreachable, 5xx, 429) is retried
 * with exponential backoff (1 s doubling to AGENT_BACKOFF_MAX_SECS) while the cached token keeps
 * being served until its exp. So a workload keeps working while the server is down, and the
 * agent recovers by itself when it is back. A definite "no" (identity removed, node revoked)
 * drops the cached entry at once.
 *
 * Ownership: flights and waiters live under agent.mu. A waiter is answered exactly once: whoever
 * settles it first under mu (the landing fetcher, or its timer on the loop) owns the answer; the
 * fetcher hands it to the loop with event_base_once (thread-safe: the HTTP server enables
 * libevent's pthread locking), and the loop replies and frees it. */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "http/client.h"

struct agent_wait {
    struct agent_loop *loop;
    http_req *req;            /* the deferred request */
    agent_token_use use;
    agent_token_done done;
    void *ctx;
    struct event *timer;
    struct agent_flight *f;   /* while waiting; NULL once settled */
    int settled, posted;
    mv_rc rc;
    struct agent_wait *next;  /* in f->waiters */
    struct agent_wait *all;   /* in agent.waits (every live waiter, for agent_token_stop) */
};

struct agent_flight {
    struct imds_token_req key; /* sel_value, resource and owner are owned copies */
    struct agent_wait *waiters;
    struct agent_flight *next; /* in agent.flights */
    struct agent_flight *qnext; /* in agent.queue, until a fetcher takes it */
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
static struct agent_flight *flight_find(struct agent *a, enum agent_sel sel, const char *sel_value,
                                        const char *resource, const char *owner)
{
    for (struct agent_flight *f = a->flights; f; f = f->next) {
        if (f->key.sel != sel || strcmp(f->key.resource, resource) != 0 ||
            strcmp(f->key.owner, owner ? owner : "") != 0)
            continue;
        if (mv_streq_ci(f->key.sel_value ? f->key.sel_value : "", sel_value ? sel_value : ""))
            return f;
    }
    return NULL;
}

static void flight_free(struct agent_flight *f)
{
    if (!f)
        return;
    free((char *)f->key.sel_value);
    free((char *)f->key.resource);
    free((char *)f->key.owner);
    free(f);
}

/* A new flight for the key, linked and queued; a fetcher is woken. Under mu. */
static struct agent_flight *flight_start(struct agent *a, enum agent_sel sel,
                                         const char *sel_value, const char *resource,
                                         const char *owner)
{
    struct agent_flight *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->key.sel = sel;
    f->key.resource = strdup(resource);
    f->key.sel_value = sel_value ? strdup(sel_value) : NULL;
    f->key.owner = strdup(owner ? owner : "");
    if (!f->key.resource || !f->key.owner || (sel_value && !f->key.sel_value)) {
        flight_free(f);
        return NULL;
    }
    f->next = a->flights;
    a->flights = f;
    struct agent_flight **pp = &a->queue;
    while (*pp)
        pp = &(*pp)->qnext;
    *pp = f;
    pthread_cond_signal(&a->work);
    return f;
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

/* Under mu: w leaves a->waits, and gives back its concurrency slot. */
static void wait_unlink_all(struct agent *a, struct agent_wait *w)
{
    for (struct agent_wait **pp = &a->waits; *pp; pp = &(*pp)->all) {
        if (*pp == w) {
            *pp = w->all;
            a->nwaits--;
            return;
        }
    }
}

static void slot_release(struct agent *a)
{
    pthread_mutex_lock(&a->mu);
    a->nwaits--;
    pthread_mutex_unlock(&a->mu);
}

/* After the authority answered rc for the key (or did not answer in time): what a request gets.
 * Under mu. */
static mv_rc settle(struct agent *a, const struct imds_token_req *r, mv_rc rc, int64_t now,
                    agent_token_use use, void *ctx)
{
    const struct tcache_entry *e = NULL;
    if (rc == MV_ERR_NOT_FOUND || rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_FORBIDDEN)
        return rc;
    enum tcache_state st =
        tcache_lookup_o(&a->cache, r->sel, r->sel_value, r->resource, r->owner, now, &e);
    if (st == TCACHE_MISS && r->owner && *r->owner) /* unbound: kept for any caller (land) */
        st = tcache_lookup(&a->cache, r->sel, r->sel_value, r->resource, now, &e);
    if (st == TCACHE_MISS)
        return rc == MV_OK ? MV_ERR_UNAVAILABLE : rc; /* OK: evicted meanwhile (256 newer keys) */
    if (rc != MV_OK) {
        /* The authority failed (unreachable, 5xx, 429): the cached token is still valid. */
        LOG_WARN("agent: serving a cached token (expires in %lld s) while the authority fails",
                 (long long)(e->tok.exp - now));
    }
    return use(e, now, ctx);
}

/* ---- the loop side ---- */

/* The answer, on the waiter's loop thread: reply, free. */
static void deliver(struct agent_wait *w)
{
    struct agent *a = w->loop->a;
    if (w->timer)
        event_free(w->timer);
    pthread_mutex_lock(&a->mu);
    wait_unlink_all(a, w);
    pthread_mutex_unlock(&a->mu);
    w->done(w->req, w->rc, w->ctx);
    free(w);
}

static void on_result(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    deliver(arg);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct agent_wait *w = arg;
    struct agent *a = w->loop->a;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&a->mu);
    if (w->settled && w->posted) { /* the result is on its way to this loop: on_result frees */
        pthread_mutex_unlock(&a->mu);
        return;
    }
    if (!w->settled) {
        struct agent_flight *f = w->f;
        for (struct agent_wait **pp = &f->waiters; *pp; pp = &(*pp)->next) {
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        }
        LOG_WARN("agent: no answer from the authority within %d ms", AGENT_MISS_WAIT_MS);
        w->rc = settle(a, &f->key, MV_ERR_UNAVAILABLE, mv_now(), w->use, w->ctx);
        w->settled = 1;
        w->f = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    deliver(w);
}

int agent_token_cached(struct agent_loop *lp, const struct imds_token_req *r, agent_token_use use,
                       void *ctx, mv_rc *rc)
{
    struct agent *a = lp->a;
    const struct tcache_entry *e = NULL;
    int64_t now = mv_now();
    int served = 0;
    pthread_mutex_lock(&a->mu);
    enum tcache_state st =
        tcache_lookup_o(&a->cache, r->sel, r->sel_value, r->resource, r->owner, now, &e);
    if (st == TCACHE_MISS && r->owner && *r->owner) /* landed unbound meanwhile: any caller's */
        st = tcache_lookup(&a->cache, r->sel, r->sel_value, r->resource, now, &e);
    if (st != TCACHE_MISS) {
        *rc = use(e, now, ctx);
        served = 1;
        /* STALE: refresh ahead, in the background (unless already under way or backing off). */
        if (st == TCACHE_STALE && e->retry_at <= now &&
            !flight_find(a, r->sel, r->sel_value, r->resource, e->owner))
            (void)flight_start(a, r->sel, r->sel_value, r->resource, e->owner);
    }
    pthread_mutex_unlock(&a->mu);
    return served;
}

void agent_token_defer(struct agent_loop *lp, http_req *req, const struct imds_token_req *r,
                       agent_token_use use, agent_token_done done, void *ctx)
{
    struct agent *a = lp->a;
    mv_rc rc = MV_OK;
    /* DOC-IMDS: at most AGENT_MAX_CONCURRENT token requests per VM at once, 429 beyond. Only
     * misses are concurrent (a cached token is answered before the handler returns): a slot is
     * taken here and given back when the waiter is unlinked (deliver) or on an early return. */
    pthread_mutex_lock(&a->mu);
    int busy = a->nwaits >= AGENT_MAX_CONCURRENT;
    if (!busy)
        a->nwaits++;
    pthread_mutex_unlock(&a->mu);
    if (busy) {
        struct imds_error err;
        imds_outcome_error(IMDS_ERR_BUSY, &err);
        http_set_header(req, "Retry-After", "1");
        agent_reply_error(req, err.status, err.error, err.description);
        done(NULL, MV_ERR_THROTTLED, ctx);
        return;
    }
    http_req *d = http_defer(req);
    if (!d) {
        slot_release(a);
        agent_reply_token_rc(req, MV_ERR_INTERNAL);
        done(NULL, MV_ERR_INTERNAL, ctx);
        return;
    }
    if (agent_token_cached(lp, r, use, ctx, &rc)) { /* landed since the caller looked */
        slot_release(a);
        done(d, rc, ctx);
        return;
    }
    struct agent_wait *w = calloc(1, sizeof *w);
    struct timeval tv = {AGENT_MISS_WAIT_MS / 1000, (AGENT_MISS_WAIT_MS % 1000) * 1000};
    struct event *timer = w ? evtimer_new(lp->base, on_timeout, w) : NULL;
    if (!timer || evtimer_add(timer, &tv) != 0) {
        if (timer)
            event_free(timer);
        free(w);
        slot_release(a);
        done(d, MV_ERR_INTERNAL, ctx);
        return;
    }
    *w = (struct agent_wait){lp, d, use, done, ctx, timer, NULL, 0, 0, MV_OK, NULL, NULL};
    pthread_mutex_lock(&a->mu);
    struct agent_flight *f = flight_find(a, r->sel, r->sel_value, r->resource, r->owner);
    if (!f)
        f = flight_start(a, r->sel, r->sel_value, r->resource, r->owner);
    if (f) {
        w->f = f;
        w->next = f->waiters;
        f->waiters = w;
    } else {
        w->settled = 1; /* out of memory: the timer answers */
        w->rc = MV_ERR_INTERNAL;
    }
    w->all = a->waits;
    a->waits = w;
    pthread_mutex_unlock(&a->mu);
}

/* ---- the fetcher side ---- */

/* Queues refreshes of STALE entries that are not backing off. Under mu. */
static void scan_stale(struct agent *a, int64_t now)
{
    for (size_t i = 0; i < a->cache.n; i++) {
        const struct tcache_entry *e = &a->cache.e[i];
        if (now >= e->tok.exp || tcache_entry_fresh(e, now) || e->retry_at > now)
            continue;
        const char *sv = e->sel == SEL_NONE ? NULL : e->sel_value;
        if (!flight_find(a, e->sel, sv, e->resource, e->owner))
            (void)flight_start(a, e->sel, sv, e->resource, e->owner);
    }
}

/* The authority answered rc (t on success) for f: cache, backoff, waiters. Under mu. */
static void land(struct agent *a, struct agent_flight *f, mv_rc rc, struct agent_token *t)
{
    const struct imds_token_req *k = &f->key;
    int64_t now = mv_now();
    if (rc == MV_OK) {
        learn_vm_id(a, k, t->mirid);
        /* An unbound identity's token is any local caller's (kept under ""); a bound one's is
         * only for the caller it was asked for. */
        if (!t->bound && k->owner[0])
            tcache_remove_o(&a->cache, k->sel, k->sel_value, k->resource, k->owner);
        rc = tcache_put_o(&a->cache, k->sel, k->sel_value, k->resource, t->bound ? k->owner : "",
                          t, now, NULL);
    } else if (rc == MV_ERR_NOT_FOUND || rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_FORBIDDEN) {
        tcache_remove_o(&a->cache, k->sel, k->sel_value, k->resource, k->owner);
    } else {
        tcache_backoff_o(&a->cache, k->sel, k->sel_value, k->resource, k->owner, now,
                         AGENT_BACKOFF_MAX_SECS);
    }
    flight_unlink(a, f);
    struct timeval zero = {0, 0};
    while (f->waiters) {
        struct agent_wait *w = f->waiters;
        f->waiters = w->next;
        w->rc = settle(a, k, rc, now, w->use, w->ctx);
        w->settled = 1;
        w->f = NULL;
        w->posted = event_base_once(w->loop->base, -1, EV_TIMEOUT, on_result, w, &zero) == 0;
        if (!w->posted)
            LOG_ERROR("agent: cannot hand a token to its loop; its timer will");
    }
    flight_free(f);
}

static void *fetcher_main(void *arg)
{
    struct agent_fetcher *fe = arg;
    struct agent *a = fe->a;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stopping && !a->queue) {
            int64_t now_ms = mv_now_ms();
            if (now_ms >= a->next_scan_ms) {
                a->next_scan_ms = now_ms + AGENT_SCAN_MS;
                scan_stale(a, mv_now());
                continue;
            }
            struct timespec until = {(time_t)(a->next_scan_ms / 1000),
                                     (long)(a->next_scan_ms % 1000) * 1000000L};
            pthread_cond_timedwait(&a->work, &a->mu, &until);
        }
        if (a->stopping)
            break;
        struct agent_flight *f = a->queue;
        a->queue = f->qnext;
        f->qnext = NULL;
        pthread_mutex_unlock(&a->mu);

        struct agent_token t = {0};
        mv_rc rc = agent_authority_token(a, fe->http, f->key.sel, f->key.sel_value,
                                         f->key.resource, f->key.owner, &t);

        pthread_mutex_lock(&a->mu);
        land(a, f, rc, &t);
        agent_token_free(&t);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

mv_rc agent_token_start(struct agent *a)
{
    mv_rc rc = MV_OK;
    pthread_condattr_t ca;
    /* next_scan_ms is mv_now_ms() time (CLOCK_MONOTONIC): the wait must use the same clock. */
    ENSURE(pthread_condattr_init(&ca) == 0, MV_ERR_INTERNAL);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int bad = pthread_cond_init(&a->work, &ca) != 0;
    pthread_condattr_destroy(&ca);
    ENSURE(!bad, MV_ERR_INTERNAL);
    a->work_init = 1;
    for (int i = 0; i < AGENT_FETCHERS; i++) {
        struct agent_fetcher *fe = &a->fetchers[i];
        fe->a = a;
        CHECK(http_client_new(a->ca_file[0] ? a->ca_file : NULL, &fe->http));
        http_client_set_timeouts(fe->http, AGENT_CONNECT_TIMEOUT_MS, AGENT_FETCH_TIMEOUT_MS);
        ENSURE_MSG(pthread_create(&fe->thread, NULL, fetcher_main, fe) == 0, MV_ERR_INTERNAL,
                   "cannot start the agent's fetcher threads");
        fe->running = 1;
    }
out:
    return rc;
}

void agent_token_stop_fetchers(struct agent *a)
{
    if (!a->work_init)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    pthread_cond_broadcast(&a->work);
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < AGENT_FETCHERS; i++) {
        struct agent_fetcher *fe = &a->fetchers[i];
        if (fe->running)
            pthread_join(fe->thread, NULL);
        fe->running = 0;
        http_client_free(fe->http);
        fe->http = NULL;
    }
}

void agent_token_free_all(struct agent *a)
{
    /* Loops and fetchers are gone: nothing else touches these any more. */
    while (a->waits) {
        struct agent_wait *w = a->waits;
        a->waits = w->all;
        if (w->timer)
            event_free(w->timer);
        w->done(NULL, MV_ERR_UNAVAILABLE, w->ctx); /* frees ctx only */
        http_deferred_free(w->req);
        free(w);
    }
    while (a->flights) {
        struct agent_flight *f = a->flights;
        a->flights = f->next;
        flight_free(f);
    }
    a->queue = NULL;
    if (a->work_init)
        pthread_cond_destroy(&a->work);
    a->work_init = 0;
}
