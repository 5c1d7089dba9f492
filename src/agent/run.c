/* run.c: agent_start/agent_stop (the agent inside another process: `mivault up`) and
 * agent_run, the `mivault agent` process (DESIGN §2).
 *
 * Start-up, in order: state dir, and config.json if it is a server's; the settings (flags, else
 * agents/VM/agent.json, else the server's config: remember.c); with a join token, the CA checked
 * against its pin (join.c); an HTTP client trusting STATE/ca.pem for node key + enrollment
 * (node.c); agent.json written back; the App Service
 * identity-header secret; the fetcher threads, each with its own client to the authority
 * (token.c); the plain-HTTP IMDS server (one loop per core, up to AGENT_MAX_DEFAULT_LOOPS);
 * env.sh. agent_run then, when running as root, switches to the state dir's user (run_as; with
 * --imds-address to nobody), and serves until SIGINT/SIGTERM.
 * agent_start never drops privileges: it would drop them for the whole process.
 *
 * Privileges: --imds-address A serves A:80, which needs root (or CAP_NET_BIND_SERVICE). Root is
 * used only to read/create the node files and bind the socket; after binding, the process drops
 * to user `nobody` (setgroups(0), setgid, setuid, in that order: once the uid is gone the group
 * list could no longer be changed) and checks that root cannot be regained. Everything later
 * (token requests, cache) needs no file access, as the node key is already loaded. A request that
 * arrives between bind and drop is served as root; nothing in the request path touches files.
 *
 * The listen address must be loopback or link-local (DESIGN §8): IMDS has no authentication
 * beyond the Metadata header, so it must never be reachable from another machine. */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/agent_internal.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/util.h"
#include "crypto/join_token.h"
#include "http/client.h"
#include "state/state.h"

#define IMDS_PORT 80
/* Loops when agent_opts.threads is 0: one per core, at most this many (docs/benchmarks.md,
 * "What changed: agent"). */
#define AGENT_MAX_DEFAULT_LOOPS 2

struct listen_addr {
    char host[64];
    int port;
};

/* "ADDR:PORT" or "[V6]:PORT". */
static mv_rc parse_listen(const char *s, struct listen_addr *out)
{
    mv_rc rc = MV_OK;
    const char *colon = strrchr(s, ':');
    int64_t port = 0;
    char portstr[8];
    ENSURE_MSG(colon && colon != s, MV_ERR_BAD_REQUEST, "--listen wants ADDR:PORT, got %.64s", s);
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[') {
        ENSURE_MSG(hlen >= 2 && h[hlen - 1] == ']', MV_ERR_BAD_REQUEST, "--listen: bad [address]");
        h++;
        hlen -= 2;
    }
    ENSURE_MSG(hlen > 0 && hlen < sizeof out->host, MV_ERR_BAD_REQUEST, "--listen: bad address");
    memcpy(out->host, h, hlen);
    out->host[hlen] = '\0';
    CHECK(mv_copy(portstr, sizeof portstr, colon + 1));
    ENSURE_MSG(mv_parse_i64(portstr, &port) == MV_OK && port >= 0 && port <= 65535,
               MV_ERR_BAD_REQUEST, "--listen: bad port");
    out->port = (int)port;
out:
    return rc;
}

/* Loopback (127/8, ::1) or link-local (169.254/16, fe80::/10) literals only. */
static int local_only(const char *host)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127 || (a[0] == 169 && a[1] == 254);
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char loop6[16] = {[15] = 1};
        return memcmp(a, loop6, 16) == 0 || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
    }
    return 0;
}

static mv_rc drop_privileges(void)
{
    mv_rc rc = MV_OK;
    const struct passwd *pw = getpwnam("nobody");
    ENSURE_MSG(pw != NULL, MV_ERR_INTERNAL, "no user 'nobody' to drop privileges to");
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    ENSURE_MSG(setgroups(0, NULL) == 0 && setgid(gid) == 0 && setuid(uid) == 0, MV_ERR_INTERNAL,
               "dropping privileges to nobody failed");
    ENSURE_MSG(setuid(0) != 0 && geteuid() == uid, MV_ERR_INTERNAL,
               "privileges could not be dropped for good");
    LOG_INFO("agent: dropped privileges to nobody");
out:
    return rc;
}

/* The loop's worker: the agent and the loop's base, where deferred token replies complete.
 * Authority requests are made by the fetcher threads (token.c), never by a loop. */
static void *worker_init(int idx, struct event_base *base, void *arg)
{
    (void)idx;
    struct agent_loop *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->a = arg;
    w->base = base;
    return w;
}

static void worker_free(void *p) { free(p); }

/* Server URL without trailing slashes. */
static mv_rc server_url(const struct agent_opts *o, const struct mv_config *cfg, char *out,
                        size_t len)
{
    mv_rc rc = MV_OK;
    if (o->server_url)
        CHECK(mv_copy(out, len, o->server_url));
    else
        CHECK(state_server_url(cfg, out, len));
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    ENSURE_MSG(strncmp(out, "https://", 8) == 0 || strncmp(out, "http://", 7) == 0,
               MV_ERR_BAD_REQUEST, "--server must be an http(s) URL");
out:
    return rc;
}

static mv_rc listen_addr(const struct agent_opts *o, const struct mv_config *cfg,
                         struct listen_addr *l)
{
    mv_rc rc = MV_OK;
    if (o->imds_address) {
        CHECK(mv_copy(l->host, sizeof l->host, o->imds_address));
        l->port = IMDS_PORT;
    } else if (o->listen) {
        CHECK(parse_listen(o->listen, l));
    } else {
        CHECK(mv_copy(l->host, sizeof l->host, cfg->agent_host));
        l->port = cfg->agent_port;
    }
    ENSURE_MSG(local_only(l->host), MV_ERR_BAD_REQUEST,
               "the agent listens on loopback or link-local addresses only, not %.64s", l->host);
out:
    return rc;
}

/* The settings of this start: flags given now win over agent.json, and are remembered in its
 * place (a new --listen forgets a remembered --imds-address, and the other way round). */
static mv_rc remembered(const struct agent_opts *o, const char *agents_dir,
                        struct agent_saved *saved, struct agent_opts *eff)
{
    mv_rc rc = MV_OK;
    *eff = *o;
    CHECK(agent_saved_load(agents_dir, o->vm, saved));
    if (o->server_url)
        CHECK(mv_copy(saved->server, sizeof saved->server, o->server_url));
    if (o->listen) {
        CHECK(mv_copy(saved->listen, sizeof saved->listen, o->listen));
        saved->imds_address[0] = '\0';
    }
    if (o->imds_address) {
        CHECK(mv_copy(saved->imds_address, sizeof saved->imds_address, o->imds_address));
        saved->listen[0] = '\0';
    }
    eff->server_url = saved->server[0] ? saved->server : NULL;
    eff->listen = saved->listen[0] ? saved->listen : NULL;
    eff->imds_address = saved->imds_address[0] ? saved->imds_address : NULL;
out:
    return rc;
}

struct agent_handle {
    struct agent *a;
    char dir[PATH_MAX]; /* the state dir */
    struct http_server *srv;
    struct listen_addr l;
    int mu_init;
};

static int default_loops(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return (int)(n < 1 ? 1 : n > AGENT_MAX_DEFAULT_LOOPS ? AGENT_MAX_DEFAULT_LOOPS : n);
}

void agent_stop(struct agent_handle *h)
{
    if (!h)
        return;
    struct agent *a = h->a;
    if (a)
        agent_token_stop_fetchers(a); /* nothing is handed to a loop after this */
    if (h->srv)
        http_server_halt(h->srv); /* every loop gone before the state */
    if (a && h->mu_init)
        agent_token_free_all(a);
    if (h->srv)
        http_server_free(h->srv);
    if (a) {
        tcache_free(&a->cache);
        agent_node_free(&a->node);
        if (h->mu_init)
            pthread_mutex_destroy(&a->mu);
        mv_secmem_free(a, sizeof *a); /* wipes the App Service secret */
    }
    free(h);
}

int agent_port(const struct agent_handle *h) { return http_server_port(h->srv); }

mv_rc agent_start(const struct agent_opts *o, struct agent_handle **out)
{
    mv_rc rc = MV_OK;
    struct mv_paths paths;
    struct mv_config cfg;
    struct agent_handle *h = NULL;
    struct http_client *setup_http = NULL;
    struct agent *a = NULL;
    struct agent_saved saved;
    struct agent_opts eff;
    struct join_token jt;

    memset(&jt, 0, sizeof jt);
    *out = NULL;
    ENSURE_MSG(o->vm && agent_vm_name_ok(o->vm), MV_ERR_BAD_REQUEST,
               "--vm NAME is required (letters, digits, '-', '_', '.')");
    h = calloc(1, sizeof *h);
    ENSURE(h != NULL, MV_ERR_INTERNAL);
    a = h->a = mv_secmem_alloc(sizeof *a); /* holds a secret: left out of core dumps */
    ENSURE(a != NULL, MV_ERR_INTERNAL);
    ENSURE(pthread_mutex_init(&a->mu, NULL) == 0, MV_ERR_INTERNAL);
    h->mu_init = 1;
    tcache_init(&a->cache, TCACHE_MAX);

    CHECK(state_paths(o->state_dir, &paths));
    CHECK(mv_copy(h->dir, sizeof h->dir, paths.dir));
    /* A server's state dir (config.json) or the agent's own on another machine. */
    int server_state = mv_file_exists(paths.config);
    state_config_defaults(&cfg);
    if (server_state)
        CHECK(state_config_load(&paths, &cfg));
    ratelimit_init(&a->rl, cfg.imds_rate_limit, mv_now_ms());
    CHECK(mv_mkdirs(paths.agents, 0700));
    CHECK(remembered(o, paths.agents, &saved, &eff));
    ENSURE_MSG(eff.server_url || server_state, MV_ERR_BAD_REQUEST,
               "no server known for vm %s in %s: join once with --join TOKEN --server URL", o->vm,
               paths.dir);
    CHECK(server_url(&eff, &cfg, a->server, sizeof a->server));
    CHECK(listen_addr(&eff, &cfg, &h->l));
    const struct listen_addr *l = &h->l;

    if (o->join_token) {
        rc = join_token_parse(o->join_token, strlen(o->join_token), 0, &jt);
        ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST,
                   "--join: not a join token (mvj1.<secret>.sha256:<pin>); get one with "
                   "`mivault vm join-token --name %s`",
                   o->vm);
        CHECK(agent_ca_pinned(paths.ca_pem, server_state, a->server, jt.pin));
    }
    if (mv_file_exists(paths.ca_pem))
        CHECK(mv_copy(a->ca_file, sizeof a->ca_file, paths.ca_pem));
    CHECK(http_client_new(a->ca_file[0] ? a->ca_file : NULL, &setup_http));
    CHECK(agent_node_setup(paths.agents, o->vm, o->join_token ? jt.secret : NULL, a->server,
                           setup_http, &a->node));
    CHECK(mv_fmt(a->token_url, sizeof a->token_url, "%s/%s/oauth2/v2.0/token", a->server,
                 a->node.tenant_id));
    CHECK(agent_identity_header(paths.agents, o->vm, a->identity_header));
    if (!server_state || saved.server[0] || saved.listen[0] || saved.imds_address[0])
        CHECK(agent_saved_store(paths.agents, o->vm, &saved, a->ca_file));
    CHECK(agent_token_start(a)); /* before the privilege drop: each client reads the CA */

    struct http_server_cfg scfg = {
        .addr = l->host,
        .port = l->port,
        .ssl = NULL,
        .threads = o->threads > 0 ? o->threads : default_loops(),
        .max_body = MV_IMDS_MAX_BODY_BYTES,
        .max_headers = MV_MAX_HEADER_BYTES,
        .timeout_secs = MV_HTTP_TIMEOUT_SECS,
        .max_connections = cfg.max_connections,
        .header_timeout_secs = cfg.header_timeout_secs,
        .body_min_rate = cfg.body_min_rate,
        .shape = HTTP_SHAPE_OAUTH,
        .handler = agent_route,
        .worker_init = worker_init,
        .worker_free = worker_free,
        .arg = a,
        .epoll_changelist = 1, /* plain HTTP, no dup()ed fds: 2 epoll_ctl per request, not 4 */
    };
    CHECK(mv_copy(a->listen_host, sizeof a->listen_host, l->host));
    __atomic_store_n(&a->port, l->port, __ATOMIC_RELEASE);
    rc = http_server_start(&scfg, &h->srv);
    if (rc == MV_OK) /* port 0: the one bound */
        __atomic_store_n(&a->port, http_server_port(h->srv), __ATOMIC_RELEASE);
    if (rc != MV_OK)
        LOG_ERROR("agent: %s", mv_last_detail());
    ENSURE_MSG(rc == MV_OK, MV_ERR_UNAVAILABLE, "cannot listen on %s:%d%s", l->host, l->port,
               o->imds_address ? " (port 80 needs root or CAP_NET_BIND_SERVICE, and the address "
                                 "must be configured, e.g. ip addr add A/32 dev lo)"
                               : "");
    LOG_INFO("agent: vm %s serving IMDS on port %d (%d loops)", o->vm, http_server_port(h->srv),
             scfg.threads);
    struct agent_env env = {o->vm,     paths.dir, paths.agents, paths.env_sh, paths.bundle,
                            a->ca_file, l->host,  http_server_port(h->srv), server_state};
    if (agent_env_write(&env) != MV_OK)
        LOG_WARN("agent: no env.sh: %s", mv_last_detail());
    *out = h;
    h = NULL;
out:
    join_token_wipe(&jt);
    if (setup_http)
        http_client_free(setup_http);
    agent_stop(h);
    return rc;
}

mv_rc agent_run(const struct agent_opts *o)
{
    mv_rc rc = MV_OK;
    struct agent_handle *h = NULL;
    rc = agent_start(o, &h);
    if (rc != MV_OK)
        goto out;
    /* The node key and the CA bundle are in memory by now (each loop's client read the CA
     * once), so nothing after this point needs the 0700 state dir. */
    if (o->imds_address && geteuid() == 0) {
        CHECK(drop_privileges());
    } else if (o->run_as && o->run_as->set) {
        CHECK(mv_state_handover(h->dir, o->run_as)); /* node.key, agent.json, env.sh */
        CHECK(mv_drop_to(o->run_as));
    }
    int v6 = strchr(h->l.host, ':') != NULL;
    printf("mivault agent: vm %s serving IMDS on http://%s%s%s:%d\n", o->vm, v6 ? "[" : "",
           h->l.host, v6 ? "]" : "", agent_port(h));
    fflush(stdout);
    http_server_wait(h->srv);
out:
    if (rc != MV_OK)
        LOG_ERROR("agent: %s", mv_last_detail());
    agent_stop(h);
    return rc;
}
