/* pg_feed.c: the change feed of the PostgreSQL backend: what store_generation returns.
 *
 * SQLite bumps a counter in the same transaction as a change; here the changes of every server
 * land in change_log (triggers, pg_schema.c), and store_generation must not cost a query per
 * request. So one poller thread per database URL per process reads max(seq) every
 * FEED_POLL_MS (100 ms: an index lookup, 10 a second per server) on a connection of its own
 * and, when it moved, bumps a shared atomic
 * generation that every connection of the process returns. A commit of this process that
 * touched a feed table bumps it at once (pg_feed_bump), so a server sees its own changes
 * immediately and other servers' within about FEED_POLL_MS plus a round trip. After the
 * poller loses its connection it bumps once more on reconnecting (anything may have changed
 * meanwhile). It also prunes change_log rows older than FEED_KEEP_SECS, keeping the newest.
 *
 * LISTEN/NOTIFY is only an accelerator (reference §1.9 b: notifications reach only sessions on
 * the primary and are lost while a listener reconnects): the poller LISTENs on mivault_change
 * and, when a notification arrives, polls at once instead of at the end of its nap. The poll
 * of max(seq) stays the source of truth.
 *
 * Secrets have a generation of their own (sgen): secret writes add change_log rows of kind
 * 'secrets' (pg_schema.c v2, without a NOTIFY: see there), which move sgen and not gen, so the per-connection secret cache
 * (pg_secrets.c) follows every server's writes while RBAC and identity caches are not flushed
 * by them. When max(seq) moved, the poller reads only the new rows' kinds to tell which.
 *
 * The registry of pollers is the one piece of process-wide mutable state of the store: it is
 * what makes the generation shared by all loops; it is guarded by a mutex. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/pg_internal.h"

#define FEED_POLL_MS 100
#define FEED_PRUNE_EVERY_MS 60000
#define FEED_KEEP_SECS 600

struct pg_feed {
    struct pg_feed *next;
    char *url;
    int refs;
    _Atomic int64_t gen;
    _Atomic int64_t sgen; /* moved by secret changes only */
    pthread_t thread;
    int wake[2];        /* a pipe: detach writes a byte to stop the poller */
    _Atomic int stop;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pg_feed *registry;

static mv_rc poll_once(struct pg_store *pg, int64_t *seq)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    CHECK(pg_exec(pg, "SELECT coalesce(max(seq), 0) FROM change_log", NULL, &r, NULL));
    *seq = pg_col_i64(r, 0, 0);
out:
    PQclear(r);
    return rc;
}

/* Which kinds of change the rows after seq `after` hold: other (gen) and secrets (sgen). */
static mv_rc kinds_since(struct pg_store *pg, int64_t after, int *other, int *secrets)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    struct pg_params pp = {0};
    pp_i64(&pp, after);
    CHECK(pg_exec(pg,
                  "SELECT coalesce(bool_or(kind <> 'secrets'), false), coalesce(bool_or(kind = 'secrets'), false)"
                  " FROM change_log WHERE seq > $1",
                  &pp, &r, NULL));
    *other = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    *secrets = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
out:
    PQclear(r);
    return rc;
}

static void prune(struct pg_store *pg)
{
    struct pg_params pp = {0};
    pp_i64(&pp, FEED_KEEP_SECS);
    mv_rc rc = pg_exec(pg,
                       "DELETE FROM change_log WHERE at < now() - make_interval(secs => $1::bigint)"
                       " AND seq < (SELECT max(seq) FROM change_log)",
                       &pp, NULL, NULL);
    if (rc != MV_OK)
        LOG_WARN("store: change_log prune: %s", mv_last_detail());
}

/* Waits up to ms for a notification on the listening connection (fd, -1 if none) or a stop;
 * returns 1 when stopping. Notifications are drained: any of them means "poll now". */
static int nap(struct pg_feed *f, PGconn *conn, int64_t ms)
{
    struct pollfd fds[2] = {{f->wake[0], POLLIN, 0}, {conn ? PQsocket(conn) : -1, POLLIN, 0}};
    int n = poll(fds, fds[1].fd >= 0 ? 2 : 1, (int)ms);
    if (n < 0 && errno != EINTR)
        return atomic_load(&f->stop);
    if (n > 0 && (fds[1].revents & POLLIN) && PQconsumeInput(conn)) {
        PGnotify *note;
        while ((note = PQnotifies(conn)) != NULL)
            PQfreemem(note);
    }
    return atomic_load(&f->stop);
}

static void listen_changes(struct pg_store *pg)
{
    if (pg_simple(pg, "LISTEN mivault_change") != MV_OK)
        LOG_WARN("store: change feed: LISTEN: %s (polling only)", mv_last_detail());
}

static void *poller(void *arg)
{
    struct pg_feed *f = arg;
    struct pg_store pg;
    int64_t last = -1, last_prune = 0;
    memset(&pg, 0, sizeof pg);
    pg.url = f->url;
    do {
        int64_t seq = 0;
        if (!pg.conn) {
            if (pg_connect(&pg) != MV_OK) {
                LOG_WARN("store: change feed: %s", mv_last_detail());
                continue;
            }
            last = -1; /* reconnected: changes may have been missed, resync */
            listen_changes(&pg);
        }
        if (poll_once(&pg, &seq) != MV_OK) {
            LOG_WARN("store: change feed: %s", mv_last_detail());
            pg_disconnect(&pg);
            continue;
        }
        if (seq != last) {
            int other = 1, secrets = 1; /* after a (re)connect: anything may have changed */
            if (last != -1 && kinds_since(&pg, last, &other, &secrets) != MV_OK) {
                LOG_WARN("store: change feed: %s", mv_last_detail());
                pg_disconnect(&pg);
                continue;
            }
            if (other && (last != -1 || seq != 0))
                atomic_fetch_add(&f->gen, 1);
            if (secrets && (last != -1 || seq != 0))
                atomic_fetch_add(&f->sgen, 1);
            last = seq;
        }
        if (pg_now_ms() - last_prune >= FEED_PRUNE_EVERY_MS) {
            prune(&pg);
            last_prune = pg_now_ms();
        }
    } while (!nap(f, pg.conn, FEED_POLL_MS));
    pg_disconnect(&pg);
    return NULL;
}

mv_rc pg_feed_attach(const char *url, struct pg_feed **out)
{
    mv_rc rc = MV_OK;
    struct pg_feed *f = NULL;
    *out = NULL;
    pthread_mutex_lock(&registry_mu);
    for (f = registry; f; f = f->next)
        if (strcmp(f->url, url) == 0)
            break;
    if (f) {
        f->refs++;
        *out = f;
        goto out;
    }
    f = calloc(1, sizeof *f);
    ENSURE(f, MV_ERR_INTERNAL);
    f->url = strdup(url);
    if (!f->url) {
        free(f);
        ENSURE(0, MV_ERR_INTERNAL);
    }
    f->refs = 1;
    atomic_init(&f->gen, 1);
    atomic_init(&f->sgen, 1);
    atomic_init(&f->stop, 0);
    if (pipe2(f->wake, O_CLOEXEC) != 0) {
        free(f->url);
        free(f);
        ENSURE_MSG(0, MV_ERR_INTERNAL, "store: pipe: %s", strerror(errno));
    }
    if (pthread_create(&f->thread, NULL, poller, f) != 0) {
        close(f->wake[0]);
        close(f->wake[1]);
        free(f->url);
        free(f);
        ENSURE_MSG(0, MV_ERR_INTERNAL, "store: cannot start the change-feed thread");
    }
    f->next = registry;
    registry = f;
    *out = f;
out:
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

void pg_feed_detach(struct pg_feed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&registry_mu);
    int last = --f->refs == 0;
    if (last)
        for (struct pg_feed **p = &registry; *p; p = &(*p)->next)
            if (*p == f) {
                *p = f->next;
                break;
            }
    pthread_mutex_unlock(&registry_mu);
    if (!last)
        return;
    atomic_store(&f->stop, 1);
    ssize_t w = write(f->wake[1], "x", 1);
    (void)w; /* the poller also sees stop at its next wake-up, at most FEED_POLL_MS later */
    pthread_join(f->thread, NULL);
    close(f->wake[0]);
    close(f->wake[1]);
    free(f->url);
    free(f);
}

int64_t pg_feed_generation(struct pg_feed *f) { return atomic_load(&f->gen); }

void pg_feed_bump_secrets(struct pg_feed *f) { atomic_fetch_add(&f->sgen, 1); }

int64_t pg_feed_secrets_generation(struct pg_feed *f) { return atomic_load(&f->sgen); }

void pg_feed_bump(struct pg_feed *f) { atomic_fetch_add(&f->gen, 1); }
