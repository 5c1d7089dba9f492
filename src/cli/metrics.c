/* metrics.c: --metrics-listen ADDR:PORT of `server`, `agent` and `up`: a plain-HTTP listener of
 * its own (one loop) with GET /metrics (Prometheus text format, common/metrics.h) and GET
 * /healthz (the server's: the store probe of server/health.h on this loop's own store
 * connection; the agent's: 200 while it runs). Kept off the service ports so that it can be
 * bound to an address only the monitoring reaches (docs/operations.md, "Metrics"). */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/addr.h"
#include "common/metrics.h"
#include "http/server.h"
#include "server/health.h"
#include "store/store.h"

#define METRICS_MAX_BYTES (4 * 1024 * 1024)

struct metrics_worker {
    struct store *st;
    struct health_cache health;
};

static const char AGENT_OK[] = "{\"status\":\"ok\"}";

static void *worker_init(int idx, struct event_base *base, void *arg)
{
    (void)idx, (void)base;
    const struct metrics_arg *a = arg;
    struct metrics_worker *w = calloc(1, sizeof *w);
    if (w && a->db[0] && store_open(a->db, &w->st) != MV_OK) {
        free(w);
        return NULL;
    }
    return w;
}

static void worker_free(void *p)
{
    struct metrics_worker *w = p;
    if (w)
        store_close(w->st);
    free(w);
}

static void handle(http_req *req)
{
    struct metrics_worker *w = req->worker;
    req->m_plane = "metrics";
    req->m_route = req->path && strcmp(req->path, "/metrics") == 0 ? "/metrics" : "unmatched";
    if (req->path && strcmp(req->path, HEALTH_PATH) == 0) {
        req->m_route = HEALTH_PATH;
        if (w->st) {
            health_handle(req, w->st, &w->health);
            return;
        }
        http_set_header(req, "Cache-Control", "no-store");
        http_reply(req, 200, "application/json; charset=utf-8", AGENT_OK, sizeof AGENT_OK - 1);
        return;
    }
    if (!req->path || strcmp(req->path, "/metrics") != 0) {
        http_reply(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
        return;
    }
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        http_set_header(req, "Allow", "GET, HEAD");
        http_reply(req, 405, "text/plain; charset=utf-8", "method not allowed\n", 19);
        return;
    }
    mv_buf b;
    mv_buf_init(&b, METRICS_MAX_BYTES);
    if (mv_metrics_render(&b) != MV_OK)
        http_reply(req, 500, "text/plain; charset=utf-8", "metrics unavailable\n", 20);
    else
        http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    mv_buf_free(&b);
}

int cli_metrics_flag(const struct cli *c, const char **listen)
{
    struct mv_listen l;
    *listen = cli_get(c, "metrics-listen");
    if (*listen && mv_parse_listen(*listen, &l) != MV_OK)
        return cli_error("--metrics-listen: %s", cli_detail());
    return 0;
}

mv_rc cli_metrics_start(const char *listen, const char *db, struct cli_metrics **out)
{
    mv_rc rc = MV_OK;
    struct mv_listen l;
    *out = NULL;
    struct cli_metrics *m = calloc(1, sizeof *m);
    ENSURE(m != NULL, MV_ERR_INTERNAL);
    CHECK(mv_parse_listen(listen, &l));
    if (db)
        CHECK(mv_copy(m->arg.db, sizeof m->arg.db, db));
    struct http_server_cfg cfg = {
        .addr = l.host,
        .port = l.port,
        .threads = 1,
        .max_body = 1024,
        .max_headers = 8192,
        .timeout_secs = 30,
        .max_connections = 64,
        .handler = handle,
        .worker_init = worker_init,
        .worker_free = worker_free,
        .arg = &m->arg,
    };
    /* http_server_start blocks SIGINT/SIGTERM in this thread for its loop to inherit; the
     * caller's mask comes back after, so a server still loading its state (server_run blocks
     * them only once it listens) stops on SIGTERM as it did without this listener. */
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    rc = http_server_start(&cfg, &m->srv);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
    if (rc != MV_OK) {
        cli_error("--metrics-listen %s: cannot listen there (%s)", listen, cli_detail());
        goto out;
    }
    *out = m;
    m = NULL;
out:
    if (m)
        free(m);
    return rc;
}

void cli_metrics_stop(struct cli_metrics *m)
{
    if (!m)
        return;
    http_server_halt(m->srv);
    http_server_free(m->srv);
    free(m);
}
