/* writer.c: the group-commit writer (see writer.h).
 *
 * Jobs queue under a mutex; the writer takes everything queued (up to WRITER_MAX_BATCH), runs it
 * in one BEGIN IMMEDIATE ... COMMIT, then posts each completion to its loop with
 * event_base_once (thread-safe: the server enables libevent's pthread locking). While a batch
 * syncs, the next one accumulates, so the batch size follows the load by itself. The same code
 * runs on both backends; on PostgreSQL one transaction per batch, whose COMMIT the server's
 * own group commit makes durable.
 *
 * On PostgreSQL a batch is first run lean: no savepoint per job (two to four round trips each),
 * and a job that fails sends the batch round again with savepoints (run_batch), so per-job
 * failure isolation costs round trips only when a job fails. In a lean batch the vault's PUTs
 * are pipelined (store_secret_set_deferred): BEGIN, every PUT and the COMMIT go out together,
 * so a job's own outcome is known only after store_commit, and a failed one shows as a failed
 * COMMIT, which also sends the batch round again, a job at a time.
 *
 * SQLite has one writer at a time, so there is one writer thread. On PostgreSQL a job costs a
 * few network round trips and a COMMIT waits for the synchronous standby, so one thread would
 * leave the database idle most of the time: STORE_WRITER_PG_THREADS threads, each with its own
 * connection, take batches from the same queue. Jobs of concurrent requests have no order to
 * keep; two batches that lock the same secret names in opposite orders deadlock, PostgreSQL
 * aborts one (40P01) and that batch runs again (its jobs are idempotent). */
#include "common/metrics.h"
#include "store/writer.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/log.h"

#define WRITER_MAX_BATCH 512

struct job {
    struct job *next;
    struct event_base *loop;
    store_job_fn fn;
    store_done_fn done;
    void *arg;
    mv_rc rc;
};

struct writer_thread {
    struct store_writer *w;
    struct store *st;
    pthread_t thread;
    int started;
};

struct store_writer {
    struct writer_thread t[STORE_WRITER_PG_THREADS];
    int n;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    int stopping;
};

static void finish(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct job *j = arg;
    j->done(j->arg, j->rc);
    free(j);
}

/* One attempt at the batch: MV_OK when it committed. Lean (no savepoints): the first job that
 * fails voids the attempt, *failed = its result. */
static mv_rc run_once(struct writer_thread *w, struct job *batch, int lean, mv_rc *failed)
{
    mv_rc rc = store_begin(w->st);
    *failed = MV_OK;
    for (struct job *j = batch; j; j = j->next) {
        if (rc != MV_OK) {
            j->rc = rc;
            continue;
        }
        if (lean) {
            j->rc = j->fn(w->st, j->arg);
            if (j->rc != MV_OK)
                rc = *failed = j->rc;
            continue;
        }
        j->rc = store_savepoint(w->st);
        if (j->rc == MV_OK)
            j->rc = j->fn(w->st, j->arg);
        if (j->rc == MV_OK)
            j->rc = store_savepoint_release(w->st);
        else
            store_savepoint_rollback(w->st);
        if (!store_tx_alive(w->st)) /* the batch's transaction itself is gone */
            rc = j->rc != MV_OK ? j->rc : MV_ERR_INTERNAL;
    }
    if (rc == MV_OK) {
        rc = store_commit(w->st);
        /* a pipelined lean batch learns of a failed job only here (store_secret_set_deferred):
         * unless the database is gone, the batch runs again a job at a time */
        if (rc != MV_OK && lean)
            *failed = rc;
    }
    if (rc != MV_OK) {
        store_rollback(w->st);
        for (struct job *j = batch; j; j = j->next)
            if (j->rc == MV_OK)
                j->rc = rc; /* nothing of this batch is durable */
    }
    return rc;
}

static void run_batch(struct writer_thread *w, struct job *batch)
{
    /* PostgreSQL: after a lost connection or an unknown commit outcome the whole batch runs
     * again; its jobs are idempotent (secret versions are keyed by ids chosen up front). The
     * first attempt is lean; if a job fails in it (a conflict, an unknown vault), everything
     * was rolled back and the batch runs again with a savepoint per job, so only that job
     * fails. A job that failed because the database is unreachable fails the batch as is. */
    int64_t t0 = mv_metrics_now_ns();
    int lean = store_batch_lean(w->st, 1);
    mv_rc rc;
    for (;;) {
        mv_rc failed = MV_OK;
        if ((rc = run_once(w, batch, lean, &failed)) == MV_OK)
            break;
        if (store_batch_retry(w->st)) {
            mv_metric_inc(MV_M_STORE_ERRORS, "write_batch_retry", NULL); /* the same mode again */
        } else if (lean && failed != MV_OK && failed != MV_ERR_UNAVAILABLE) {
            mv_metric_inc(MV_M_STORE_ERRORS, "write_batch_isolate", NULL); /* job by job now */
            store_batch_lean(w->st, 0);
            lean = 0;
        } else {
            break;
        }
        for (struct job *j = batch; j; j = j->next)
            j->rc = MV_OK;
    }
    store_batch_lean(w->st, 0);
    mv_metric_observe(MV_M_STORE_SECONDS, "write_batch", mv_metrics_now_ns() - t0);
    if (rc != MV_OK)
        mv_metric_inc(MV_M_STORE_ERRORS, "write_batch", NULL);
    store_batch_done(w->st);
    struct timeval now = {0, 0};
    for (struct job *j = batch, *next; j; j = next) {
        next = j->next;
        if (event_base_once(j->loop, -1, EV_TIMEOUT, finish, j, &now) != 0) {
            LOG_ERROR("store writer: cannot post a completion");
            free(j); /* the loop is gone: nobody is waiting for the reply */
        }
    }
}

static void *writer_main(void *arg)
{
    struct writer_thread *t = arg;
    struct store_writer *w = t->w;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->head) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        struct job *batch = w->head, *last = batch;
        int n = 1;
        while (last->next && n < WRITER_MAX_BATCH) {
            last = last->next;
            n++;
        }
        w->head = last->next;
        if (!w->head)
            w->tail = NULL;
        last->next = NULL;
        pthread_mutex_unlock(&w->mu);
        run_batch(t, batch);
    }
    return NULL;
}

static void stop_threads(struct store_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n; i++) {
        if (w->t[i].started)
            pthread_join(w->t[i].thread, NULL);
        store_close(w->t[i].st);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

mv_rc store_writer_start(const char *db_path, struct store_writer **out)
{
    mv_rc rc = MV_OK;
    struct store_writer *w = calloc(1, sizeof *w);
    ENSURE(w != NULL, MV_ERR_INTERNAL);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->n = store_is_url(db_path) ? STORE_WRITER_PG_THREADS : 1;
    for (int i = 0; i < w->n; i++) {
        w->t[i].w = w;
        CHECK(store_open(db_path, &w->t[i].st));
        ENSURE_MSG(pthread_create(&w->t[i].thread, NULL, writer_main, &w->t[i]) == 0, MV_ERR_INTERNAL,
                   "cannot start the store writer thread");
        w->t[i].started = 1;
    }
    *out = w;
    w = NULL;
out:
    if (w) {
        stop_threads(w);
        free(w);
    }
    return rc;
}

void store_writer_stop(struct store_writer *w)
{
    if (!w)
        return;
    stop_threads(w);
    free(w);
}

mv_rc store_writer_submit(struct store_writer *w, struct event_base *loop, store_job_fn fn, store_done_fn done,
                          void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        mv_fail(MV_ERR_INTERNAL, "out of memory");
        return MV_ERR_INTERNAL;
    }
    *j = (struct job){NULL, loop, fn, done, arg, MV_OK};
    pthread_mutex_lock(&w->mu);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return MV_OK;
}
