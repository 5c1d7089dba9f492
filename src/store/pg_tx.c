/* pg_tx.c: the PostgreSQL store connection: open/close, the retry loop every call runs in
 * (pg_run), the caller's transactions and the writer's savepoints, reads, meta settings and
 * the change generation. See pg_internal.h for the invariants.
 *
 * Retry policy (reference/postgres-ha.md §1.3): lost connection, failover (57P01/02/03,
 * 08xxx, 25006 = we reached a standby, 40003, 53300) -> reconnect through the same multi-host
 * URL (target_session_attrs picks the new primary) and re-run; 40001/40P01 -> re-run the
 * transaction. Backoff 50 ms doubling to 2 s, for at most PG_RETRY_SECS; then the call fails
 * with MV_ERR_UNAVAILABLE and the detail names the hosts and the reason. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "store/pg_internal.h"

#define PG_META_MAX (64 * 1024)
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 2000

static int64_t backoff(int attempt)
{
    int64_t d = BACKOFF_FIRST_MS;
    for (int i = 0; i < attempt && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    return d - (pg_now_ms() % (d / 4 + 1)); /* a little jitter: servers do not retry in step */
}

/* After a retryable failure: drop the connection if it is gone or points at a standby, wait,
 * and say whether there is time left. */
static int wait_retry(struct pg_store *pg, int attempt, int64_t deadline)
{
    if (pg->retry == PG_RETRY_CONN)
        pg_disconnect(pg);
    int64_t d = backoff(attempt);
    if (pg_now_ms() + d > deadline)
        return 0;
    LOG_WARN("%s; retrying in %lld ms", mv_last_detail(), (long long)d);
    pg_sleep_ms(d);
    return 1;
}

void pg_feed_committed(struct pg_store *pg)
{
    if (pg->touched && pg->feed)
        pg_feed_bump(pg->feed);
    if (pg->touched_secrets && pg->feed)
        pg_feed_bump_secrets(pg->feed);
    pg->touched = pg->touched_secrets = 0;
}

static mv_rc ensure_conn(struct pg_store *pg)
{
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return MV_OK;
    return pg_connect(pg);
}

/* COMMIT of our own transaction; an unknown outcome is a retryable failure with replay set. */
static mv_rc commit(struct pg_store *pg)
{
    pg->commit_unknown = 0;
    pg->in_commit = 1;
    mv_rc rc = pg_simple(pg, "COMMIT");
    pg->in_commit = 0;
    if (rc == MV_OK && pg->commit_unknown) {
        pg->retry = PG_RETRY_CONN;
        rc = MV_ERR_UNAVAILABLE;
        mv_fail(rc, "store: COMMIT on %s ended with a warning: durability unconfirmed", pg->hosts);
    }
    if (rc != MV_OK && pg->retry != PG_RETRY_NONE)
        pg->replay = 1; /* the commit may have happened: the next run must converge */
    if (rc == MV_OK || pg->replay)
        pg_feed_committed(pg); /* an unknown outcome may be a change: caches start over */
    pg->touched = pg->touched_secrets = 0;
    return rc;
}

static void rollback_quietly(struct pg_store *pg)
{
    if (pg->begin_pending) {
        pg->begin_pending = 0; /* the transaction never started */
        return;
    }
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK)
        return;
    if (pg_pipe_drain(pg, NULL) != MV_OK && !pg->conn)
        return; /* what was queued is answered (or failed with the connection) first */
    PGresult *r = PQexec(pg->conn, "ROLLBACK");
    PQclear(r);
}

/* Inside the caller's transaction: a savepoint per write, so a failed statement (a CONFLICT,
 * say) does not abort the caller's whole transaction, as it would not on SQLite. In a lean
 * batch (pg_batch_lean) no savepoint: the writer rolls the whole batch back if a call fails. */
static mv_rc run_in_tx(struct pg_store *pg, enum pg_mode mode, pg_fn fn, void *arg)
{
    mv_rc rc = MV_OK;
    if (pg->tx_broken) {
        mv_fail(MV_ERR_UNAVAILABLE, "store: the transaction on %s was lost", pg->hosts);
        return MV_ERR_UNAVAILABLE;
    }
    pg->sql_error = 0;
    int savepoint = mode != PG_READ && !pg->lean;
    if (savepoint)
        rc = pg_simple(pg, "SAVEPOINT mv_op");
    if (rc == MV_OK)
        rc = fn(pg, arg);
    if (savepoint && pg->retry == PG_RETRY_NONE && pg->conn) {
        /* undo a failed call's partial writes; the caller's transaction goes on */
        mv_rc r2 = rc == MV_OK ? MV_OK : pg_simple(pg, "ROLLBACK TO mv_op");
        if (r2 == MV_OK)
            r2 = pg_simple(pg, "RELEASE mv_op");
        if (r2 != MV_OK)
            pg->tx_broken = 1;
        if (rc == MV_OK)
            rc = r2;
    } else if (pg->sql_error) {
        pg->tx_broken = 1; /* a failed statement outside a savepoint aborts the transaction */
    }
    if (pg->retry != PG_RETRY_NONE)
        pg->tx_broken = 1;
    return rc;
}

mv_rc pg_run(struct pg_store *pg, enum pg_mode mode, pg_fn fn, void *arg)
{
    if (pg->in_tx)
        return run_in_tx(pg, mode, fn, arg);
    int64_t deadline = pg_now_ms() + PG_RETRY_SECS * 1000;
    mv_rc rc = MV_OK;
    pg->replay = 0;
    for (int attempt = 0;; attempt++) {
        pg->retry = PG_RETRY_NONE;
        pg->touched = pg->touched_secrets = 0;
        rc = ensure_conn(pg);
        if (rc == MV_OK && mode == PG_WRITE)
            rc = pg_simple(pg, "BEGIN");
        if (rc == MV_OK)
            rc = fn(pg, arg);
        if (mode == PG_WRITE) {
            if (rc == MV_OK)
                rc = commit(pg);
            else
                rollback_quietly(pg);
        } else if (mode == PG_WRITE1) {
            if (rc == MV_OK)
                pg_feed_committed(pg);
            if (rc != MV_OK && pg->retry != PG_RETRY_NONE)
                pg->replay = 1; /* the statement may have committed before the loss */
        }
        if (rc == MV_OK || pg->retry == PG_RETRY_NONE)
            break;
        if (!wait_retry(pg, attempt, deadline))
            break;
    }
    pg->replay = 0;
    return rc;
}

/* ---- open, close ---- */

mv_rc pg_open(const char *url, struct pg_store **out)
{
    mv_rc rc = MV_OK;
    struct pg_store *pg = calloc(1, sizeof *pg);
    *out = NULL;
    ENSURE(pg, MV_ERR_INTERNAL);
    pg->url = strdup(url);
    ENSURE(pg->url, MV_ERR_INTERNAL);
    /* One attempt: a wrong URL at init or start-up should fail at once, not after 30 s. */
    CHECK(pg_connect(pg));
    CHECK(pg_migrate(pg));
    CHECK(pg_feed_attach(url, &pg->feed));
    *out = pg;
    pg = NULL;
out:
    pg_close(pg);
    return rc;
}

void pg_close(struct pg_store *pg)
{
    if (!pg)
        return;
    if (pg->in_tx)
        rollback_quietly(pg);
    pg_secret_cache_free(pg);
    pg_feed_detach(pg->feed);
    pg_disconnect(pg);
    pg_pipe_free(pg);
    free(pg->url);
    free(pg);
}

/* ---- the caller's transactions ---- */

mv_rc pg_begin(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    int64_t deadline = pg_now_ms() + PG_RETRY_SECS * 1000;
    if (pg->in_tx) {
        mv_fail(MV_ERR_INTERNAL, "store: transaction already open");
        return MV_ERR_INTERNAL;
    }
    for (int attempt = 0;; attempt++) {
        pg->retry = PG_RETRY_NONE;
        rc = ensure_conn(pg);
        if (rc == MV_OK && pg->lean)
            pg->begin_pending = 1; /* sent with the batch's first statement (pg_conn.c) */
        else if (rc == MV_OK)
            rc = pg_simple(pg, "BEGIN");
        if (rc == MV_OK || pg->retry == PG_RETRY_NONE || !wait_retry(pg, attempt, deadline))
            break;
    }
    if (rc == MV_OK) {
        pg->in_tx = 1;
        pg->tx_broken = 0;
        pg->touched = pg->touched_secrets = 0;
    }
    return rc;
}

mv_rc pg_commit(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    if (!pg->in_tx) {
        mv_fail(MV_ERR_INTERNAL, "store: COMMIT without a transaction");
        return MV_ERR_INTERNAL;
    }
    if (pg->tx_broken) {
        rollback_quietly(pg);
        pg->in_tx = 0;
        pg->touched = pg->touched_secrets = 0;
        if (pg->retry == PG_RETRY_NONE)
            pg->retry = PG_RETRY_CONN;
        mv_fail(MV_ERR_UNAVAILABLE, "store: the transaction on %s was lost; nothing committed",
                pg->hosts);
        return MV_ERR_UNAVAILABLE;
    }
    pg->retry = PG_RETRY_NONE;
    rc = commit(pg);
    pg->in_tx = 0;
    if (rc != MV_OK && pg->retry == PG_RETRY_CONN) {
        pg_disconnect(pg); /* the next call reconnects, to the new primary if there is one */
        LOG_WARN("store: commit outcome unknown: %s", mv_last_detail());
    }
    return rc;
}

void pg_rollback(struct pg_store *pg)
{
    if (!pg->in_tx)
        return;
    rollback_quietly(pg);
    pg->in_tx = 0;
    pg->tx_broken = 0;
    pg->touched = pg->touched_secrets = 0;
}

int pg_tx_alive(const struct pg_store *pg) { return pg->in_tx && !pg->tx_broken; }

mv_rc pg_savepoint(struct pg_store *pg)
{
    if (pg->tx_broken) {
        mv_fail(MV_ERR_UNAVAILABLE, "store: the transaction on %s was lost", pg->hosts);
        return MV_ERR_UNAVAILABLE;
    }
    mv_rc rc = pg_simple(pg, "SAVEPOINT st_job");
    if (rc != MV_OK)
        pg->tx_broken = 1;
    return rc;
}

mv_rc pg_savepoint_release(struct pg_store *pg)
{
    mv_rc rc = pg->tx_broken ? MV_ERR_UNAVAILABLE : pg_simple(pg, "RELEASE st_job");
    if (rc != MV_OK)
        pg->tx_broken = 1;
    return rc;
}

void pg_savepoint_rollback(struct pg_store *pg)
{
    if (pg->tx_broken)
        return;
    if (pg_simple(pg, "ROLLBACK TO st_job") != MV_OK || pg_simple(pg, "RELEASE st_job") != MV_OK)
        pg->tx_broken = 1;
}

/* The writer re-runs a whole batch after a lost connection or an unknown commit: its jobs are
 * idempotent (a secret version is keyed by the id chosen before the first attempt). */
int pg_batch_retry(struct pg_store *pg)
{
    if (pg->retry == PG_RETRY_NONE)
        return 0;
    if (pg->batch_attempt == 0)
        pg->batch_deadline_ms = pg_now_ms() + PG_RETRY_SECS * 1000;
    if (!wait_retry(pg, pg->batch_attempt, pg->batch_deadline_ms))
        return 0;
    pg->batch_attempt++;
    pg->replay = 1;
    pg->retry = PG_RETRY_NONE;
    return 1;
}

void pg_batch_lean(struct pg_store *pg, int on) { pg->lean = on; }

void pg_batch_done(struct pg_store *pg)
{
    pg->batch_attempt = 0;
    pg->replay = 0;
}

/* ---- reads ---- */

/* Reads run in autocommit: one statement, one snapshot, no BEGIN/COMMIT round trips on the
 * GET path. The read snapshot of a loop iteration is therefore a no-op here. */
mv_rc pg_read_begin(struct pg_store *pg)
{
    (void)pg;
    return MV_OK;
}

void pg_read_end(struct pg_store *pg) { (void)pg; }

mv_rc pg_generation(struct pg_store *pg, int64_t *gen)
{
    *gen = pg_feed_generation(pg->feed);
    return MV_OK;
}

/* ---- meta ---- */

struct meta_args {
    const char *key, *value;
    mv_buf *out;
};

static mv_rc meta_get(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    struct meta_args *a = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    pp_text(&pp, a->key);
    CHECK(pg_exec(pg, "SELECT value FROM meta WHERE key = $1", &pp, &r, NULL));
    ENSURE_MSG(PQntuples(r) == 1, MV_ERR_NOT_FOUND, "store: no meta %s", a->key);
    size_t n = (size_t)PQgetlength(r, 0, 0);
    ENSURE_MSG(n <= PG_META_MAX, MV_ERR_INTERNAL, "store: meta %s too long", a->key);
    mv_buf_reset(a->out);
    CHECK(mv_buf_add(a->out, PQgetvalue(r, 0, 0), n));
out:
    PQclear(r);
    return rc;
}

/* No retry loop: a load balancer's probe must answer within its own timeout, and the next
 * probe tries again. Healthy = connected (reconnecting through the multi-host URL if the
 * connection is gone) to a server that accepts writes: not a standby in recovery. A connection
 * opened earlier may have died unseen (the backend terminated, the primary restarted, an idle
 * connection cut): libpq learns that only from the probe's own query, so a probe that fails that
 * way on an old connection opens a fresh one and asks once more; one that fails on a fresh
 * connection is the answer. */
static mv_rc health_probe(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    pg->retry = PG_RETRY_NONE;
    CHECK(ensure_conn(pg));
    CHECK(pg_exec(pg, "SELECT pg_is_in_recovery()", NULL, &r, NULL));
    const char *v = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : NULL;
    ENSURE_MSG(v && strcmp(v, "f") == 0, MV_ERR_UNAVAILABLE, "store: connected to a standby");
out:
    PQclear(r);
    return rc;
}

mv_rc pg_health(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    ENSURE_MSG(!pg->in_tx, MV_ERR_INTERNAL, "store_health inside a transaction");
    int was_open = pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
    rc = health_probe(pg);
    if (rc != MV_OK && pg->retry == PG_RETRY_CONN && was_open) {
        pg_disconnect(pg);
        rc = health_probe(pg);
    }
    if (rc != MV_OK) {
        if (pg->retry == PG_RETRY_CONN)
            pg_disconnect(pg);
        rc = MV_ERR_UNAVAILABLE;
    }
out:
    return rc;
}

mv_rc pg_meta_get(struct pg_store *pg, const char *key, mv_buf *out)
{
    struct meta_args a = {key, NULL, out};
    return pg_run(pg, PG_READ, meta_get, &a);
}

static mv_rc meta_set(struct pg_store *pg, void *arg)
{
    struct meta_args *a = arg;
    struct pg_params pp = {0};
    pp_text(&pp, a->key);
    pp_text(&pp, a->value);
    return pg_exec(pg,
                   "INSERT INTO meta (key, value) VALUES ($1, $2)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   &pp, NULL, NULL);
}

mv_rc pg_meta_set(struct pg_store *pg, const char *key, const char *value)
{
    /* 'schema_version' belongs to pg_schema.c; 'generation' is SQLite's trigger counter. */
    if (!key || !value || strcmp(key, "generation") == 0 || strcmp(key, "schema_version") == 0) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: meta key not settable");
        return MV_ERR_BAD_REQUEST;
    }
    struct meta_args a = {key, value, NULL};
    return pg_run(pg, PG_WRITE1, meta_set, &a); /* an upsert: a re-run converges */
}
