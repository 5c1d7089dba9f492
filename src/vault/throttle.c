/* throttle.c: the per-vault service limits of Key Vault (reference §4.5): per vault and per
 * 10-second window, at most `ops` transactions and `creates` secret creations; a request over
 * a limit gets 429 with Retry-After and is not counted ("429s don't count toward the limit").
 *
 * Azure's limits are per vault, not per server. Two ways of counting, chosen by the store:
 * - One process (SQLite, store_shared = 0): a counter per window, in memory; no query.
 * - Servers sharing a database (PostgreSQL): a server leases permits in blocks of
 *   vault_throttle_block(limit) from the database (store_quota_lease, which never grants more
 *   than the limit per window across all servers) and spends them here; when its block is
 *   spent it leases the next: one round trip per block, never one per request. When the
 *   database has none left for the window, the window is marked dry here and the rest of it
 *   answers 429 without asking again. Permits leased and not spent when the window ends are
 *   lost: at most one block per server (one per loop if its loops lease at the same instant),
 *   so with N servers a vault may be refused up to N x block permits before its limit is
 *   used up; it is never admitted beyond it.
 * - If a lease fails (the database is unreachable), the request is let through: fail open.
 *   The throttle protects the service from one client's load, not data; the request's own
 *   store call then succeeds or fails on its own, and a lease never makes a loop wait for the
 *   reconnection (docs/ha.md).
 *
 * The counters must be shared by every loop thread of the process, so this file keeps the one
 * mutable static of src/vault/: a fixed table of windows, indexed by a hash of the vault name
 * and guarded by one mutex. That is acceptable here because the critical section is a handful
 * of integer operations on one cache line, with no I/O and no allocation (a lease runs with
 * the mutex released); the table has a fixed size, so a name beyond its capacity shares a
 * slot (in memory that is conservative: it can only throttle earlier; with leases, a shared
 * slot keeps no pool and leases one permit per request, so it never spends another vault's).
 *
 * Refused requests (401, 403) never touch that budget; they are counted per caller instead
 * (vault_refusals_*, at the end): a second table of the same kind, keyed by caller. */
#include <pthread.h>
#include <string.h>

#include "common/log.h"
#include "vault/vault_internal.h"

#define THROTTLE_SLOTS 1024 /* power of two */
#define THROTTLE_PROBE 8
#define THROTTLE_BLOCK_DIV 50 /* a lease is 1/50 of the limit (at least 1): 80 of 4000 */

enum { OPS = 0, CREATES = 1 };

struct counter {
    int used; /* in memory: admitted this window */
    int left; /* leases: permits leased and not yet spent */
    int dry;  /* leases: the database has none left this window */
};

struct window {
    char vault[MV_VAULT_NAME_MAX + 1];
    int64_t start; /* first second of the window; 0 = slot unused */
    struct counter c[2];
    int warned; /* a failed lease was logged this window */
};

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct window throttle_table[THROTTLE_SLOTS];

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/* The slot of vault for the window starting at start: its own, else an unused or stale one
 * within the probe distance, else (table crowded) the home slot, shared: *own = 0. A window
 * older than start is reset; a newer one (a lease that straddled the end of its window, or a
 * thread whose clock read came just before another's) is left alone: callers compare w->start.
 * Called with throttle_lock held. */
static struct window *slot_for(const char *vault, int64_t start, int *own)
{
    uint32_t home = name_hash(vault) & (THROTTLE_SLOTS - 1);
    struct window *w = NULL, *free_slot = NULL;
    *own = 1;
    for (uint32_t i = 0; i < THROTTLE_PROBE && !w; i++) {
        struct window *x = &throttle_table[(home + i) & (THROTTLE_SLOTS - 1)];
        if (x->start != 0 && strcmp(x->vault, vault) == 0)
            w = x;
        else if (!free_slot && (x->start == 0 || x->start < start))
            free_slot = x;
    }
    if (!w && free_slot) {
        w = free_slot;
        size_t n = strlen(vault);
        if (n >= sizeof w->vault)
            n = sizeof w->vault - 1;
        memcpy(w->vault, vault, n);
        w->vault[n] = '\0';
        w->start = 0;
    } else if (!w) {
        w = &throttle_table[home];
        *own = 0;
    }
    if (w->start < start) {
        memset(w->c, 0, sizeof w->c);
        w->warned = 0;
        w->start = start;
    }
    return w;
}

int vault_throttle_block(int limit)
{
    return limit / THROTTLE_BLOCK_DIV > 1 ? limit / THROTTLE_BLOCK_DIV : 1;
}

/* One process: count in memory. 0 = admitted, else retry. */
static int counted(const char *vault, int kind, int limit, int64_t start, int retry)
{
    int own = 0, admit = 0;
    pthread_mutex_lock(&throttle_lock);
    struct counter *k = &slot_for(vault, start, &own)->c[kind];
    if (k->used < limit) {
        k->used++;
        admit = 1;
    }
    pthread_mutex_unlock(&throttle_lock);
    return admit ? 0 : retry;
}

/* Servers sharing the store: spend a leased permit, or lease the next block with the mutex
 * released. 0 = admitted, else retry. */
static int leased(struct store *st, const char *vault, int kind, int limit, int64_t start,
                  int retry)
{
    int own = 0, admit = 0, dry = 0, warn = 0;
    int64_t granted = 0;
    pthread_mutex_lock(&throttle_lock);
    struct window *w = slot_for(vault, start, &own);
    int mine = own && w->start == start;
    if (mine && w->c[kind].left > 0) {
        w->c[kind].left--;
        admit = 1;
    }
    dry = mine && w->c[kind].dry;
    pthread_mutex_unlock(&throttle_lock);
    if (admit)
        return 0;
    if (dry)
        return retry;

    /* A shared slot keeps no pool: it leases exactly the permit this request needs. */
    mv_rc rc = store_quota_lease(st, vault, start, kind == CREATES ? ST_QUOTA_CREATES : ST_QUOTA_OPS,
                                 mine ? vault_throttle_block(limit) : 1, limit, &granted);

    pthread_mutex_lock(&throttle_lock);
    w = slot_for(vault, start, &own);
    mine = own && w->start == start; /* else the window ended during the lease */
    if (rc != MV_OK) {
        warn = !w->warned;
        w->warned = 1;
    } else if (mine && granted == 0) {
        w->c[kind].dry = 1;
    } else if (mine) {
        w->c[kind].left += (int)granted - 1; /* granted <= block: no overflow */
    }
    pthread_mutex_unlock(&throttle_lock);
    if (warn)
        LOG_WARN("vault: throttle of %s: no lease from the store (%s); admitting uncounted",
                 vault, mv_last_detail());
    if (rc != MV_OK)
        return 0; /* fail open: the request's own store call decides */
    return granted > 0 ? 0 : retry;
}

int vault_throttle(struct store *st, const char *vault, int is_create, int ops_limit,
                   int creates_limit, int64_t now)
{
    int kind = is_create ? CREATES : OPS;
    int limit = is_create ? creates_limit : ops_limit;
    if (limit <= 0 || now <= 0)
        return 0;
    int64_t start = now - now % VAULT_THROTTLE_WINDOW_SECS;
    int retry = (int)(start + VAULT_THROTTLE_WINDOW_SECS - now); /* 1..10 */
    if (st && store_shared(st))
        return leased(st, vault, kind, limit, start, retry);
    return counted(vault, kind, limit, start, retry);
}

/* ---- refused requests per caller (hardening issue, point 4) ----
 * Per process, per 10-second window: a caller (the token's oid when it presented a valid one,
 * else the client address) refused more than `limit` times in the window gets 429 for the rest
 * of it, for itself only. Bounded memory: MV_REFUSED_CALLERS slots; a caller that finds its
 * probe range full of live windows shares its home slot (conservative: a caller sharing a
 * slot can only be throttled earlier, never later). */
#define REFUSE_PROBE 8

struct refusals {
    char caller[VAULT_CALLER_MAX];
    int64_t start; /* 0 = unused */
    int count;
};

static pthread_mutex_t refusals_lock = PTHREAD_MUTEX_INITIALIZER;
static struct refusals refusals_table[MV_REFUSED_CALLERS];

/* Called with refusals_lock held. */
static struct refusals *refusals_slot(const char *caller, int64_t start)
{
    uint32_t home = name_hash(caller) & (MV_REFUSED_CALLERS - 1);
    struct refusals *r = NULL, *free_slot = NULL;
    for (uint32_t i = 0; i < REFUSE_PROBE && !r; i++) {
        struct refusals *x = &refusals_table[(home + i) & (MV_REFUSED_CALLERS - 1)];
        if (x->start != 0 && strcmp(x->caller, caller) == 0)
            r = x;
        else if (!free_slot && (x->start == 0 || x->start < start))
            free_slot = x;
    }
    if (!r && free_slot) {
        r = free_slot;
        size_t n = strlen(caller);
        if (n >= sizeof r->caller)
            n = sizeof r->caller - 1;
        memcpy(r->caller, caller, n);
        r->caller[n] = '\0';
        r->start = 0;
    } else if (!r) {
        r = &refusals_table[home];
    }
    if (r->start < start) {
        r->start = start;
        r->count = 0;
    }
    return r;
}

static int refusals_window(int64_t now, int64_t *start)
{
    *start = now - now % VAULT_THROTTLE_WINDOW_SECS;
    return (int)(*start + VAULT_THROTTLE_WINDOW_SECS - now); /* 1..10 */
}

int vault_refusals_over(const char *caller, int limit, int64_t now)
{
    if (limit <= 0 || now <= 0 || !caller || !*caller)
        return 0;
    int64_t start = 0;
    int retry = refusals_window(now, &start);
    pthread_mutex_lock(&refusals_lock);
    int over = refusals_slot(caller, start)->count >= limit;
    pthread_mutex_unlock(&refusals_lock);
    return over ? retry : 0;
}

int vault_refusals_count(const char *caller, int limit, int64_t now)
{
    if (limit <= 0 || now <= 0 || !caller || !*caller)
        return 0;
    int64_t start = 0;
    int retry = refusals_window(now, &start);
    pthread_mutex_lock(&refusals_lock);
    struct refusals *r = refusals_slot(caller, start);
    int over = r->count >= limit;
    if (!over)
        r->count++;
    pthread_mutex_unlock(&refusals_lock);
    return over ? retry : 0;
}
