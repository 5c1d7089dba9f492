/* pg_conn.c: the PostgreSQL connection: libpq parameters (the URL plus our timeout and
 * keepalive defaults), connecting with an error that names the hosts, the notice receiver,
 * running prepared statements, classifying failures, and reading result columns.
 *
 * Defaults added when the URL does not set them (reference/postgres-ha.md §1.2: without them a
 * dead primary can block recv() for minutes): connect_timeout 5 s per host, TCP keepalives
 * after 10 s idle (every 5 s, 3 probes), tcp_user_timeout 15 s, application_name mivault,
 * target_session_attrs read-write (of several hosts, the primary). */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/pg_internal.h"

static const struct {
    const char *kw, *val;
} DEFAULTS[] = {
    {"connect_timeout", "5"},     {"keepalives", "1"},        {"keepalives_idle", "10"},
    {"keepalives_interval", "5"}, {"keepalives_count", "3"},  {"tcp_user_timeout", "15000"},
    {"application_name", "mivault"},
    /* after a failover, only the new primary takes writes (25006 otherwise, on a standby) */
    {"target_session_attrs", "read-write"},
};
#define NDEFAULTS (sizeof DEFAULTS / sizeof DEFAULTS[0])
#define NHOMEFILES 2 /* sslcert, sslkey: see home_file */

/* libpq looks for a client certificate in $HOME/.postgresql when the URL names none, and a
 * file it may not stat (EACCES) fails the connection. A server started as root switches to its
 * state dir's user once listening (common/privs.c) while $HOME still says /root: every
 * reconnection, e.g. after a failover, would then fail. So the default comes from the home of
 * the user the process runs as *now* (the passwd entry of its euid), as libpq would find it
 * for that user; a URL that names sslcert/sslkey keeps them. */
static int home_file(const char *name, char *out, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) != 0 || !res || !res->pw_dir)
        return 0;
    int n = snprintf(out, len, "%s/.postgresql/%s", res->pw_dir, name);
    return n > 0 && (size_t)n < len;
}

int64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void pg_conn_params_free(const char **kw, const char **val)
{
    if (kw)
        for (size_t i = 0; kw[i]; i++) {
            free((char *)kw[i]);
            free((char *)val[i]);
        }
    free(kw);
    free(val);
}

/* "h1:5501,h2:5502" from the parsed host and port lists (for messages; no password). */
static void host_list(const char *host, const char *port, char *out, size_t len)
{
    size_t o = 0;
    const char *h = host && *host ? host : "localhost", *p = port && *port ? port : "5432";
    out[0] = '\0';
    while (*h && o + 1 < len) {
        size_t hn = strcspn(h, ","), pn = strcspn(p, ",");
        int w = snprintf(out + o, len - o, "%s%.*s:%.*s", o ? "," : "", (int)hn, h, (int)pn, p);
        if (w < 0 || (size_t)w >= len - o)
            break;
        o += (size_t)w;
        h += hn + (h[hn] == ',');
        if (p[pn] == ',')
            p += pn + 1; /* one port for all hosts stays put */
    }
}

mv_rc pg_conn_params(const char *url, const char ***kwp, const char ***valp, char *hosts,
                     size_t hostslen)
{
    mv_rc rc = MV_OK;
    char *err = NULL;
    const char **kw = NULL, **val = NULL;
    size_t n = 0, cap = 0;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    ENSURE_MSG(opts, MV_ERR_BAD_REQUEST, "store: bad PostgreSQL URL: %s", err ? err : "?");
    for (PQconninfoOption *o = opts; o->keyword; o++)
        cap++;
    cap += NDEFAULTS + NHOMEFILES + 1;
    kw = calloc(cap, sizeof *kw);
    val = calloc(cap, sizeof *val);
    ENSURE(kw && val, MV_ERR_INTERNAL);
    const char *host = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        kw[n] = strdup(o->keyword);
        val[n] = strdup(o->val);
        n++;
        ENSURE(kw[n - 1] && val[n - 1], MV_ERR_INTERNAL);
    }
    host_list(host, port, hosts, hostslen);
    for (size_t d = 0; d < NDEFAULTS; d++) {
        int set = 0;
        for (size_t i = 0; i < n; i++)
            set |= strcmp(kw[i], DEFAULTS[d].kw) == 0;
        if (set)
            continue;
        kw[n] = strdup(DEFAULTS[d].kw);
        val[n] = strdup(DEFAULTS[d].val);
        n++;
        ENSURE(kw[n - 1] && val[n - 1], MV_ERR_INTERNAL);
    }
    static const char *const home_kw[NHOMEFILES][2] = {{"sslcert", "postgresql.crt"},
                                                        {"sslkey", "postgresql.key"}};
    for (size_t d = 0; d < NHOMEFILES; d++) {
        char path[PATH_MAX];
        int set = 0;
        for (size_t i = 0; i < n; i++)
            set |= strcmp(kw[i], home_kw[d][0]) == 0;
        if (set || !home_file(home_kw[d][1], path, sizeof path))
            continue;
        kw[n] = strdup(home_kw[d][0]);
        val[n] = strdup(path);
        n++;
        ENSURE(kw[n - 1] && val[n - 1], MV_ERR_INTERNAL);
    }
    *kwp = kw;
    *valp = val;
    kw = val = NULL;
out:
    pg_conn_params_free(kw, val);
    PQfreemem(err);
    PQconninfoFree(opts);
    return rc;
}

/* libpq's message on one line: "connection to server at ... failed: Connection refused". */
static void one_line(const char *msg, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = msg ? msg : ""; *p && o + 1 < len; p++) {
        if (*p == '\n' || *p == '\t') {
            if (o && out[o - 1] != ' ' && p[1])
                out[o++] = ';';
            if (o + 1 < len && o && out[o - 1] != ' ')
                out[o++] = ' ';
            continue;
        }
        out[o++] = *p;
    }
    while (o && (out[o - 1] == ' ' || out[o - 1] == ';'))
        o--;
    out[o] = '\0';
}

/* A sync-rep wait that ends with a WARNING on COMMIT (cancel, reference §1.5) means "committed
 * here, maybe not on the standby": the commit's outcome counts as unknown. The message text may
 * be translated (lc_messages), so any WARNING while a COMMIT is in flight counts too. */
static void on_notice(void *arg, const PGresult *r)
{
    struct pg_store *pg = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!sev || strcmp(sev, "WARNING") != 0)
        return;
    if ((msg && strstr(msg, "canceling wait for synchronous replication")) || pg->in_commit) {
        pg->commit_unknown = 1;
        LOG_WARN("store: COMMIT warning: %s: outcome treated as unknown", msg ? msg : "?");
    }
}

mv_rc pg_connect(struct pg_store *pg)
{
    mv_rc rc = MV_OK;
    const char **kw = NULL, **val = NULL;
    char line[512];
    pg_disconnect(pg);
    CHECK(pg_conn_params(pg->url, &kw, &val, pg->hosts, sizeof pg->hosts));
    pg->conn = PQconnectdbParams(kw, val, 0);
    ENSURE_MSG(pg->conn, MV_ERR_UNAVAILABLE, "store: cannot connect to %s: out of memory", pg->hosts);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        one_line(PQerrorMessage(pg->conn), line, sizeof line);
        pg->retry = PG_RETRY_CONN;
        pg_disconnect(pg);
        ENSURE_MSG(0, MV_ERR_UNAVAILABLE, "store: cannot connect to %s: %s", pg->hosts, line);
    }
    PQsetNoticeReceiver(pg->conn, on_notice, pg);
out:
    pg_conn_params_free(kw, val);
    return rc;
}

/* Queued statements that will never be answered. */
static void drop_queued(struct pg_store *pg, mv_rc rc)
{
    for (int i = 0; i < pg->nqueued; i++)
        if (pg->queued[i].done)
            pg->queued[i].done(pg, NULL, rc, pg->queued[i].a, pg->queued[i].b);
    pg->nqueued = 0;
    pg->pipe_begin = 0;
}

void pg_disconnect(struct pg_store *pg)
{
    if (pg->nqueued || pg->pipe_begin) {
        mv_fail(MV_ERR_UNAVAILABLE, "store: the connection to %s was closed", pg->hosts);
        drop_queued(pg, MV_ERR_UNAVAILABLE);
    }
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
    pg->nstmts = 0; /* prepared statements die with their session */
}

void pg_pipe_free(struct pg_store *pg)
{
    free(pg->queued);
    pg->queued = NULL;
    pg->cap_queued = 0;
}

void pp_text(struct pg_params *pp, const char *v)
{
    if (pp->n >= PG_MAX_PARAMS)
        return; /* caught by pg_exec: n stays at the cap */
    pp->v[pp->n] = v;
    pp->len[pp->n] = 0;
    pp->fmt[pp->n] = 0;
    pp->n++;
}

void pp_i64(struct pg_params *pp, int64_t v)
{
    if (pp->n >= PG_MAX_PARAMS)
        return;
    snprintf(pp->num[pp->n], sizeof pp->num[pp->n], "%lld", (long long)v);
    pp_text(pp, pp->num[pp->n]);
}

void pp_bytea(struct pg_params *pp, const void *p, size_t len)
{
    if (pp->n >= PG_MAX_PARAMS)
        return;
    pp->v[pp->n] = p ? p : "";
    pp->len[pp->n] = (int)len;
    pp->fmt[pp->n] = 1;
    pp->n++;
}

/* Which failures a retry can cure (reference/postgres-ha.md §1.3). */
static enum pg_retry classify(PGconn *c, const char *state)
{
    if (!c || PQstatus(c) == CONNECTION_BAD || !state)
        return PG_RETRY_CONN; /* no SQLSTATE: the client lost the server (treat as 08006) */
    if (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
        strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
        strcmp(state, "25006") == 0 || strcmp(state, "40003") == 0 ||
        strcmp(state, "53300") == 0)
        return PG_RETRY_CONN;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return PG_RETRY_TX;
    return PG_RETRY_NONE;
}

static int stmt_slot(struct pg_store *pg, const char *sql, int *slot)
{
    for (int i = 0; i < pg->nstmts; i++)
        if (pg->stmts[i] == sql) {
            *slot = i;
            return 1;
        }
    *slot = pg->nstmts;
    return 0;
}

static mv_rc fail(struct pg_store *pg, PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char line[512];
    mv_rc rc = MV_ERR_INTERNAL;
    pg->sql_error = 1;
    pg->retry = classify(pg->conn, state);
    if (pg->retry != PG_RETRY_NONE)
        rc = MV_ERR_UNAVAILABLE;
    else if (strcmp(state, "23505") == 0)
        rc = MV_ERR_CONFLICT;
    else if (strcmp(state, "23503") == 0)
        rc = MV_ERR_NOT_FOUND; /* the referenced VM, vault or identity does not exist */
    one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn), line, sizeof line);
    if (!line[0] && pg->conn)
        one_line(PQerrorMessage(pg->conn), line, sizeof line);
    mv_fail(rc, "store: postgresql %s on %s: %s (%s)", what, pg->hosts, line[0] ? line : "connection lost",
            state ? state : "no sqlstate");
    return rc;
}

/* The next statement's result in pipeline mode, after which libpq returns one NULL (not after
 * the sync's result). NULL when nothing more can be read. */
static PGresult *pipe_result(PGconn *c)
{
    PGresult *r = PQgetResult(c);
    if (r && PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        PGresult *end = PQgetResult(c);
        PQclear(end);
    }
    return r;
}

static mv_rc queue(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                   const struct pg_queued *q);

mv_rc pg_exec(struct pg_store *pg, const char *sql, const struct pg_params *pp, PGresult **res,
              int64_t *changes)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    char name[16];
    int slot = 0;
    static const struct pg_params none = {0};
    if (res)
        *res = NULL;
    if (!pp)
        pp = &none;
    ENSURE(pp->n < PG_MAX_PARAMS, MV_ERR_INTERNAL);
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
        pg->retry = PG_RETRY_CONN;
        ENSURE_MSG(0, MV_ERR_UNAVAILABLE, "store: not connected to %s", pg->hosts);
    }
    CHECK(pg_pipe_drain(pg, NULL)); /* a synchronous statement after queued ones */
    int known = stmt_slot(pg, sql, &slot);
    CHECK(mv_fmt(name, sizeof name, "mv%d", slot));
    if (!known) {
        ENSURE(slot < PG_MAX_STMTS, MV_ERR_INTERNAL);
        r = PQprepare(pg->conn, name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = fail(pg, r, "prepare");
            goto out;
        }
        PQclear(r);
        r = NULL;
        pg->stmts[slot] = sql;
        pg->nstmts = slot + 1;
    }
    if (pg->begin_pending) {
        /* the writer's lazily opened transaction: BEGIN and this statement in one round trip */
        CHECK(queue(pg, sql, pp, &(struct pg_queued){.keep = &r}));
        CHECK(pg_pipe_drain(pg, NULL));
    } else {
        r = PQexecPrepared(pg->conn, name, pp->n, pp->v, pp->len, pp->fmt, 0);
    }
    ExecStatusType est = PQresultStatus(r);
    if (est != PGRES_COMMAND_OK && est != PGRES_TUPLES_OK) {
        rc = fail(pg, r, "query");
        goto out;
    }
    if (changes) {
        const char *t = PQcmdTuples(r);
        *changes = 0;
        if (t && *t)
            CHECK(mv_parse_i64(t, changes));
    }
    if (res) {
        *res = r;
        r = NULL;
    }
out:
    PQclear(r);
    return rc;
}

mv_rc pg_simple(struct pg_store *pg, const char *sql)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
        pg->retry = PG_RETRY_CONN;
        ENSURE_MSG(0, MV_ERR_UNAVAILABLE, "store: not connected to %s", pg->hosts);
    }
    if (strcmp(sql, "COMMIT") == 0 && (pg->nqueued || pg->pipe_begin)) {
        rc = pg_pipe_drain(pg, "COMMIT"); /* the batch's one round trip */
        goto out;
    }
    rc = pg_pipe_drain(pg, NULL); /* what was queued is answered first */
    if (rc != MV_OK && (!pg->conn || strncmp(sql, "ROLLBACK", 8) != 0))
        goto out; /* a ROLLBACK still goes out after a failed statement */
    rc = MV_OK;
    if (pg->begin_pending) {
        pg->begin_pending = 0;
        if (strcmp(sql, "COMMIT") == 0 || strcmp(sql, "ROLLBACK") == 0)
            goto out; /* the transaction never started: nothing to end */
        /* one message, one round trip; the result is the last statement's, and an error in
         * BEGIN stops the string there and is returned */
        char both[96];
        CHECK(mv_fmt(both, sizeof both, "BEGIN; %s", sql));
        r = PQexec(pg->conn, both);
    } else {
        r = PQexec(pg->conn, sql); /* a constant: BEGIN, COMMIT, SAVEPOINT ... */
    }
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(pg, r, sql);
        goto out;
    }
    /* COMMIT of a transaction that had failed answers ROLLBACK without an error. */
    if (strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        pg->retry = PG_RETRY_NONE;
        ENSURE_MSG(0, MV_ERR_INTERNAL, "store: postgresql rolled the transaction back");
    }
out:
    PQclear(r);
    return rc;
}

/* ---- pipelined batches (pg_queue, pg_pipe_drain) ---- */

static mv_rc queue(struct pg_store *pg, const char *sql, const struct pg_params *pp,
                   const struct pg_queued *q)
{
    mv_rc rc = MV_OK;
    char name[16];
    int slot = 0;
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
        pg->retry = PG_RETRY_CONN;
        ENSURE_MSG(0, MV_ERR_UNAVAILABLE, "store: not connected to %s", pg->hosts);
    }
    ENSURE(pp->n < PG_MAX_PARAMS, MV_ERR_INTERNAL);
    if (!stmt_slot(pg, sql, &slot)) {
        /* prepared synchronously, once per connection: outside any pipeline */
        PGresult *r = NULL;
        CHECK(pg_pipe_drain(pg, NULL));
        ENSURE(pg->conn && slot < PG_MAX_STMTS, MV_ERR_INTERNAL);
        CHECK(mv_fmt(name, sizeof name, "mv%d", slot));
        r = PQprepare(pg->conn, name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = fail(pg, r, "prepare");
            PQclear(r);
            goto out;
        }
        PQclear(r);
        pg->stmts[slot] = sql;
        pg->nstmts = slot + 1;
    }
    CHECK(mv_fmt(name, sizeof name, "mv%d", slot));
    if (pg->nqueued == pg->cap_queued) {
        int cap = pg->cap_queued ? 2 * pg->cap_queued : 64;
        struct pg_queued *grown = realloc(pg->queued, (size_t)cap * sizeof *grown);
        ENSURE(grown != NULL, MV_ERR_INTERNAL);
        pg->queued = grown;
        pg->cap_queued = cap;
    }
    if (PQpipelineStatus(pg->conn) == PQ_PIPELINE_OFF && !PQenterPipelineMode(pg->conn)) {
        rc = fail(pg, NULL, "pipeline");
        goto out;
    }
    if (pg->begin_pending) {
        pg->begin_pending = 0;
        pg->pipe_begin = 1;
        if (!PQsendQueryParams(pg->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) {
            rc = fail(pg, NULL, "BEGIN");
            pg_disconnect(pg);
            goto out;
        }
    }
    if (!PQsendQueryPrepared(pg->conn, name, pp->n, pp->v, pp->len, pp->fmt, 0)) {
        rc = fail(pg, NULL, "query");
        pg_disconnect(pg);
        goto out;
    }
    pg->queued[pg->nqueued++] = *q;
out:
    return rc;
}

mv_rc pg_queue(struct pg_store *pg, const char *sql, const struct pg_params *pp, pg_queued_fn done,
               void *a, void *b)
{
    return queue(pg, sql, pp, &(struct pg_queued){.done = done, .a = a, .b = b});
}

mv_rc pg_pipe_drain(struct pg_store *pg, const char *final)
{
    mv_rc rc = MV_OK;
    PGresult *r = NULL;
    if (!pg->nqueued && !pg->pipe_begin)
        return MV_OK;
    int ok = (!final || PQsendQueryParams(pg->conn, final, 0, NULL, NULL, NULL, NULL, 0)) &&
             PQpipelineSync(pg->conn);
    if (ok && pg->pipe_begin) {
        r = pipe_result(pg->conn);
        if (!r)
            ok = 0;
        else if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = fail(pg, r, "BEGIN");
        PQclear(r);
    }
    pg->pipe_begin = 0;
    int i = 0;
    for (; ok && i < pg->nqueued; i++) {
        struct pg_queued *q = &pg->queued[i];
        r = pipe_result(pg->conn);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (!r) {
            ok = 0;
            break;
        }
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            if (q->done)
                q->done(pg, r, MV_OK, q->a, q->b);
            if (q->keep) {
                *q->keep = r;
                r = NULL;
            }
        } else {
            /* the first error classifies; the statements after it were not run (aborted) */
            mv_rc e = rc != MV_OK ? rc : fail(pg, r, "query");
            if (q->done)
                q->done(pg, NULL, e, q->a, q->b);
            rc = e;
        }
        PQclear(r);
    }
    if (ok && final) {
        r = pipe_result(pg->conn);
        if (!r) {
            ok = 0;
        } else if (PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
            /* a COMMIT of a transaction that had failed answers ROLLBACK */
            if (rc == MV_OK) {
                pg->retry = PG_RETRY_NONE;
                rc = MV_ERR_INTERNAL;
                mv_fail(rc, "store: postgresql rolled the transaction back");
            }
        } else if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == MV_OK) {
            rc = fail(pg, r, final);
        }
        PQclear(r);
    }
    if (ok) {
        r = PQgetResult(pg->conn);
        ok = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
    }
    if (ok)
        ok = PQexitPipelineMode(pg->conn);
    if (!ok) {
        /* the connection went away mid-pipeline (or answered out of step): what was not read
         * has an unknown outcome, which the writer's batch retry covers */
        mv_rc lost = fail(pg, NULL, "pipeline");
        for (int k = i; k < pg->nqueued; k++)
            if (pg->queued[k].done)
                pg->queued[k].done(pg, NULL, lost, pg->queued[k].a, pg->queued[k].b);
        pg->nqueued = 0;
        pg_disconnect(pg);
        return rc != MV_OK ? rc : lost;
    }
    pg->nqueued = 0;
    if (final && PQtransactionStatus(pg->conn) != PQTRANS_IDLE) {
        /* an error aborted the pipeline before its COMMIT ran: the transaction is still open,
         * in the failed state; end it, or the connection's next BEGIN fails */
        r = PQexec(pg->conn, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

mv_rc pg_col_text(const PGresult *r, int row, int col, char *dst, size_t dstlen)
{
    const char *t = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    size_t n = (size_t)PQgetlength(r, row, col);
    if (n >= dstlen || memchr(t, '\0', n)) {
        mv_fail(MV_ERR_INTERNAL, "store: stored value in column %d does not fit (%zu bytes)", col, n);
        return MV_ERR_INTERNAL;
    }
    memcpy(dst, t, n);
    dst[n] = '\0';
    return MV_OK;
}

mv_rc pg_col_dup(const PGresult *r, int row, int col, char **out)
{
    *out = NULL;
    if (PQgetisnull(r, row, col))
        return MV_OK;
    size_t n = (size_t)PQgetlength(r, row, col);
    char *p = malloc(n + 1);
    if (!p) {
        mv_fail(MV_ERR_INTERNAL, "store: out of memory reading column %d", col);
        return MV_ERR_INTERNAL;
    }
    memcpy(p, PQgetvalue(r, row, col), n);
    p[n] = '\0';
    *out = p;
    return MV_OK;
}

int64_t pg_col_i64(const PGresult *r, int row, int col)
{
    int64_t v = 0;
    if (PQgetisnull(r, row, col) || mv_parse_i64(PQgetvalue(r, row, col), &v) != MV_OK)
        return 0;
    return v;
}

mv_rc pg_col_bytea(const PGresult *r, int row, int col, mv_buf *out)
{
    mv_rc rc = MV_OK;
    const char *t = PQgetvalue(r, row, col);
    size_t n = (size_t)PQgetlength(r, row, col);
    ENSURE_MSG(n >= 2 && t[0] == '\\' && t[1] == 'x' && n % 2 == 0, MV_ERR_INTERNAL,
               "store: bytea column %d is not in hex format", col);
    mv_buf_init(out, (n - 2) / 2);
    unsigned char chunk[256];
    size_t used = 0;
    for (size_t i = 2; i < n; i += 2) {
        int hi = mv_hexval(t[i]), lo = mv_hexval(t[i + 1]);
        ENSURE(hi >= 0 && lo >= 0, MV_ERR_INTERNAL);
        chunk[used++] = (unsigned char)(hi << 4 | lo);
        if (used == sizeof chunk || i + 2 >= n) {
            CHECK(mv_buf_add(out, chunk, used));
            used = 0;
        }
    }
out:
    return rc;
}

mv_rc pg_collect(const PGresult *r, size_t elem, pg_read_fn read, pg_clear_fn clear, void **arr,
                 size_t *n)
{
    mv_rc rc = MV_OK;
    int rows = PQntuples(r);
    char *items = NULL;
    int done = 0;
    *arr = NULL;
    *n = 0;
    if (rows == 0)
        return MV_OK;
    items = calloc((size_t)rows, elem);
    ENSURE(items, MV_ERR_INTERNAL);
    for (; done < rows; done++)
        CHECK(read(r, done, items + (size_t)done * elem));
    *arr = items;
    *n = (size_t)rows;
    items = NULL;
out:
    if (items && clear)
        for (int i = 0; i <= done && i < rows; i++)
            clear(items + (size_t)i * elem);
    free(items);
    return rc;
}
