/* server.c: lifecycle of the HTTP(S) server: sockets, loop threads and shutdown (see server.h).
 *
 * Invariants:
 * - every listening socket is bound (and listening) before any loop thread exists, so bind
 *   errors come back from http_server_start and no thread serves a half-built server;
 * - a loop serves only after every loop's worker_init has succeeded (a startup barrier under
 *   `mu`); if one fails, all loops quit without serving and start returns the error;
 * - while a loop runs, its event_base, evhttp and worker are touched only by its own thread. The
 *   one cross-thread call is event_base_loopexit, safe because evthread_use_pthreads() is in
 *   force before any base exists. loopexit (not loopbreak) is used because a loopbreak issued
 *   before event_base_loop() starts is forgotten, while a loopexit is a queued event;
 * - SIGINT/SIGTERM/SIGPIPE are blocked in the starting thread before the loops are created, so
 *   the loops inherit the mask and the signals reach http_server_wait through a signalfd. */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/limits.h"
#include "common/log.h"
#include "http/internal.h"

#define HTTP_MAX_LOOPS 256
#define HTTP_LISTEN_BACKLOG 1024

struct http_loop {
    struct http_server *srv;
    int idx;
    int fd; /* listening socket until evhttp owns it (then -1) */
    struct event_base *base;
    struct evhttp *http;
    struct http_gate *gate;
    struct http_dispatch_ctx ctx;
    pthread_t thread;
    int running; /* thread created and not yet joined */
};

struct http_server {
    struct http_server_cfg cfg;
    int port;
    int n;
    int cap; /* connections per loop */
    struct http_loop *loops;
    int stop_fd; /* eventfd: http_server_stop writes, http_server_wait polls */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_ready, n_failed; /* worker_init outcomes, under mu */
    int go;                /* 0 = hold, 1 = serve, -1 = quit without serving; under mu */
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static int evthread_rc = -1; /* written once under evthread_once */

/* libevent's own warnings go through our (rate-limited) log instead of straight to stderr. */
static void event_log(int severity, const char *msg)
{
    mv_log(severity >= EVENT_LOG_ERR ? MV_LOG_ERROR : severity == EVENT_LOG_WARN ? MV_LOG_WARN
                                                                                : MV_LOG_DEBUG,
           "libevent: %s", msg);
}

static void evthread_setup(void)
{
    evthread_rc = evthread_use_pthreads();
    event_set_log_callback(event_log);
}

/* Connections per listener: the configured cap, within what the descriptor limit allows once a
 * headroom is kept for the store, the audit log and outbound calls (a quarter, at least
 * MV_FD_HEADROOM_MIN), shared by the listeners of one process. The soft limit is first raised
 * to the hard one, as nginx's worker_rlimit_nofile does. */
static int connection_cap(const struct http_server_cfg *cfg)
{
    long want = cfg->max_connections > 0 ? cfg->max_connections : MV_MAX_CONNECTIONS;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return (int)want;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl = up;
    }
    long nofile = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)(1L << 24)
                      ? 1L << 24
                      : (long)rl.rlim_cur;
    long headroom = nofile / 4 > MV_FD_HEADROOM_MIN ? nofile / 4 : MV_FD_HEADROOM_MIN;
    long budget = (nofile - headroom) / MV_LISTENERS_PER_PROCESS;
    if (budget < 1)
        budget = 1;
    if (want > budget) {
        LOG_WARN("connection cap lowered from %ld to %ld: %ld descriptors (RLIMIT_NOFILE)", want,
                 budget, nofile);
        want = budget;
    }
    return (int)want;
}

static mv_rc block_signals(void)
{
    mv_rc rc = MV_OK;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    ENSURE_MSG(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0, MV_ERR_INTERNAL, "pthread_sigmask");
    /* A peer that resets mid-write must be an EPIPE for that connection, never the process's end,
     * whatever thread (ours or a library's) does the write. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    ENSURE_MSG(sigaction(SIGPIPE, &sa, NULL) == 0, MV_ERR_INTERNAL, "sigaction(SIGPIPE)");
out:
    return rc;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static mv_rc parse_addr(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    mv_rc rc = MV_OK;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    struct addrinfo *ai = NULL;
    ENSURE_MSG(port >= 0 && port <= 65535, MV_ERR_BAD_REQUEST, "bad port %d", port);
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        /* A name ("localhost"): its first address, numeric lookups only for the port. */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
        int err = getaddrinfo(addr, NULL, &hints, &ai);
        ENSURE_MSG(err == 0 && ai && ai->ai_addrlen <= sizeof *ss, MV_ERR_BAD_REQUEST,
                   "listen address %s: %s", addr, err ? gai_strerror(err) : "no address");
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *len = (socklen_t)ai->ai_addrlen;
        set_port(ss, port);
    }
out:
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

static mv_rc listen_socket(const struct sockaddr_storage *ss, socklen_t len, int *out)
{
    mv_rc rc = MV_OK;
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "socket: %s", strerror(errno));
    ENSURE_MSG(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                   setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0,
               MV_ERR_INTERNAL, "setsockopt(SO_REUSE*): %s", strerror(errno));
    /* DESIGN §6: without TCP_NODELAY small TLS replies stall ~40 ms on delayed ACKs. On Linux an
     * accepted socket inherits it from the listener, so setting it here covers every connection. */
    ENSURE_MSG(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, MV_ERR_INTERNAL,
               "setsockopt(TCP_NODELAY): %s", strerror(errno));
    if (ss->ss_family == AF_INET6)
        ENSURE_MSG(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0,
                   MV_ERR_INTERNAL, "setsockopt(IPV6_V6ONLY): %s", strerror(errno));
    ENSURE_MSG(bind(fd, (const struct sockaddr *)ss, len) == 0, MV_ERR_UNAVAILABLE, "bind: %s",
               strerror(errno));
    ENSURE_MSG(listen(fd, HTTP_LISTEN_BACKLOG) == 0, MV_ERR_UNAVAILABLE, "listen: %s",
               strerror(errno));
    *out = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* SO_REUSEPORT would let this server silently share a port with another process of the same
 * user that listens there already; a plain bind first makes that an error. */
static mv_rc probe_port_free(const struct sockaddr_storage *ss, socklen_t len)
{
    mv_rc rc = MV_OK;
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "socket: %s", strerror(errno));
    /* SO_REUSEADDR: our own TIME_WAIT leftovers are no conflict; a listener still is. */
    ENSURE_MSG(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0, MV_ERR_INTERNAL,
               "setsockopt(SO_REUSEADDR): %s", strerror(errno));
    if (ss->ss_family == AF_INET6)
        ENSURE_MSG(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0,
                   MV_ERR_INTERNAL, "setsockopt(IPV6_V6ONLY): %s", strerror(errno));
    ENSURE_MSG(bind(fd, (const struct sockaddr *)ss, len) == 0, MV_ERR_UNAVAILABLE, "bind: %s",
               strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static mv_rc loop_setup(struct http_server *s, struct http_loop *l)
{
    mv_rc rc = MV_OK;
    const struct http_server_cfg *cfg = &s->cfg;
    struct event_config *ec = event_config_new();
    ENSURE_MSG(ec != NULL, MV_ERR_INTERNAL, "event_config_new failed");
    if (cfg->epoll_changelist)
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    l->base = event_base_new_with_config(ec);
    event_config_free(ec);
    ENSURE_MSG(l->base != NULL, MV_ERR_INTERNAL, "event_base_new failed");
    l->http = evhttp_new(l->base);
    ENSURE_MSG(l->http != NULL, MV_ERR_INTERNAL, "evhttp_new failed");
    evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
    /* evhttp checks Content-Length (and each chunk size) against max_body before reading the
     * body, and answers 413 itself (tests/unit/test_http_server.c pins this down). */
    evhttp_set_max_headers_size(l->http, (ev_ssize_t)(cfg->max_headers ? cfg->max_headers
                                                                        : MV_MAX_HEADER_BYTES));
    evhttp_set_max_body_size(l->http,
                             (ev_ssize_t)(cfg->max_body ? cfg->max_body : MV_MAX_BODY_BYTES));
    evhttp_set_timeout(l->http, cfg->timeout_secs > 0 ? cfg->timeout_secs : MV_HTTP_TIMEOUT_SECS);
    /* No invented "text/html" on replies that set no Content-Type (204, HEAD). */
    evhttp_set_default_content_type(l->http, NULL);
    l->ctx.handler = cfg->handler;
    l->ctx.tls = cfg->ssl != NULL;
    struct http_gate_cfg gc = {
        .ssl = cfg->ssl,
        .cap = s->cap,
        .max_headers = cfg->max_headers ? cfg->max_headers : MV_MAX_HEADER_BYTES,
        .max_body = cfg->max_body ? cfg->max_body : MV_MAX_BODY_BYTES,
        .header_timeout_secs =
            cfg->header_timeout_secs > 0 ? cfg->header_timeout_secs : MV_HEADER_TIMEOUT_SECS,
        .body_min_rate = cfg->body_min_rate > 0 ? cfg->body_min_rate : MV_BODY_MIN_RATE,
        .limits = cfg->limits,
        .shape = cfg->shape,
        .ctx = &l->ctx,
    };
    CHECK(http_gate_new(l->base, &gc, &l->gate));
    l->ctx.gate = l->gate;
    evhttp_set_gencb(l->http, http_dispatch, &l->ctx);
    evhttp_set_bevcb(l->http, http_gate_bevcb, l->gate);
    /* From here evhttp owns the socket (its listener closes it on evhttp_free). */
    struct evhttp_bound_socket *bound = evhttp_accept_socket_with_handle(l->http, l->fd);
    ENSURE_MSG(bound != NULL, MV_ERR_INTERNAL, "evhttp_accept_socket_with_handle failed");
    l->fd = -1;
    http_gate_listen(l->gate, evhttp_bound_socket_get_listener(bound));
out:
    return rc;
}

static void *loop_main(void *arg)
{
    struct http_loop *l = arg;
    struct http_server *s = l->srv;
    void *w = NULL;
    int ok = 1;
    if (s->cfg.worker_init) {
        w = s->cfg.worker_init(l->idx, l->base, s->cfg.arg);
        ok = w != NULL;
    }
    pthread_mutex_lock(&s->mu);
    l->ctx.worker = w;
    if (ok)
        s->n_ready++;
    else
        s->n_failed++;
    pthread_cond_broadcast(&s->cv);
    while (s->go == 0)
        pthread_cond_wait(&s->cv, &s->mu);
    int go = s->go;
    pthread_mutex_unlock(&s->mu);
    http_gate_enter_thread(l->gate);

    if (ok && go > 0 && event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
        LOG_ERROR("http loop %d ended with an error", l->idx);
    if (w && s->cfg.worker_free)
        s->cfg.worker_free(w);
    return NULL;
}

static void set_go(struct http_server *s, int go)
{
    pthread_mutex_lock(&s->mu);
    s->go = go;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Ends every running loop and joins it (each loop calls worker_free on its way out). */
static void stop_loops(struct http_server *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->go == 0) {
        s->go = -1;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n; i++)
        if (s->loops[i].running && event_base_loopexit(s->loops[i].base, NULL) != 0)
            LOG_ERROR("event_base_loopexit failed on loop %d", i);
    for (int i = 0; i < s->n; i++) {
        if (!s->loops[i].running)
            continue;
        pthread_join(s->loops[i].thread, NULL);
        s->loops[i].running = 0;
    }
}

mv_rc http_server_start(const struct http_server_cfg *cfg, struct http_server **out)
{
    mv_rc rc = MV_OK;
    struct http_server *s = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    *out = NULL;
    ENSURE_MSG(cfg->handler != NULL && cfg->addr != NULL, MV_ERR_INTERNAL, "incomplete config");
    CHECK(parse_addr(cfg->addr, cfg->port, &ss, &sslen));
    CHECK(block_signals());
    pthread_once(&evthread_once, evthread_setup);
    ENSURE_MSG(evthread_rc == 0, MV_ERR_INTERNAL, "evthread_use_pthreads failed");

    s = calloc(1, sizeof *s);
    ENSURE(s != NULL, MV_ERR_INTERNAL);
    s->cfg = *cfg;
    s->stop_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    long n = cfg->threads > 0 ? cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    s->n = (int)(n < 1 ? 1 : n > HTTP_MAX_LOOPS ? HTTP_MAX_LOOPS : n);
    int total = connection_cap(cfg);
    s->cap = (total + s->n - 1) / s->n;
    s->loops = calloc((size_t)s->n, sizeof *s->loops);
    ENSURE(s->loops != NULL, MV_ERR_INTERNAL);
    for (int i = 0; i < s->n; i++) {
        s->loops[i].srv = s;
        s->loops[i].idx = i;
        s->loops[i].fd = -1;
    }

    if (cfg->port != 0)
        CHECK(probe_port_free(&ss, sslen));
    /* All sockets first: the first bind picks the port when 0 was asked, the others share it
     * through SO_REUSEPORT and the kernel spreads connections among them. */
    for (int i = 0; i < s->n; i++) {
        CHECK(listen_socket(&ss, sslen, &s->loops[i].fd));
        if (i == 0) {
            s->port = bound_port(s->loops[0].fd);
            ENSURE_MSG(s->port > 0, MV_ERR_INTERNAL, "getsockname: %s", strerror(errno));
            set_port(&ss, s->port);
        }
    }
    for (int i = 0; i < s->n; i++)
        CHECK(loop_setup(s, &s->loops[i]));
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ENSURE_MSG(s->stop_fd >= 0, MV_ERR_INTERNAL, "eventfd: %s", strerror(errno));

    for (int i = 0; i < s->n; i++) {
        int err = pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]);
        ENSURE_MSG(err == 0, MV_ERR_INTERNAL, "pthread_create: %s", strerror(err));
        s->loops[i].running = 1;
    }
    pthread_mutex_lock(&s->mu);
    while (s->n_ready + s->n_failed < s->n)
        pthread_cond_wait(&s->cv, &s->mu);
    int failed = s->n_failed;
    pthread_mutex_unlock(&s->mu);
    ENSURE_MSG(failed == 0, MV_ERR_INTERNAL, "worker_init failed on %d loop(s)", failed);
    set_go(s, 1);
    LOG_INFO("listening on %s port %d (%s, %d loops, %d connections)", cfg->addr, s->port,
             cfg->ssl ? "https" : "http", s->n, total);
    *out = s;
    s = NULL;
out:
    http_server_free(s);
    return rc;
}

int http_server_port(const struct http_server *s) { return s->port; }

void http_server_stop(struct http_server *s)
{
    uint64_t one = 1;
    /* Async-signal-safe and thread-safe; a stop before wait is remembered by the counter. */
    if (write(s->stop_fd, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN)
        LOG_ERROR("http_server_stop: %s", strerror(errno));
}

void http_server_wait(struct http_server *s)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* The signals are blocked (http_server_start), so they queue for this signalfd. */
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        LOG_WARN("signalfd: %s; only http_server_stop will end the wait", strerror(errno));
    struct pollfd p[2] = {{.fd = s->stop_fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    for (;;) {
        int r = poll(p, sfd >= 0 ? 2 : 1, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            LOG_ERROR("poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents) {
            uint64_t v;
            if (read(s->stop_fd, &v, sizeof v) < 0)
                LOG_DEBUG("stop eventfd read: %s", strerror(errno));
            LOG_INFO("stop requested");
            break;
        }
        if (sfd >= 0 && p[1].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                LOG_INFO("signal %u received, stopping", si.ssi_signo);
                break;
            }
        }
    }
    if (sfd >= 0)
        close(sfd);
    stop_loops(s);
}

void http_server_halt(struct http_server *s)
{
    if (s && s->loops)
        stop_loops(s);
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    if (s->loops) {
        stop_loops(s);
        for (int i = 0; i < s->n; i++) {
            struct http_loop *l = &s->loops[i];
            if (l->http)
                evhttp_free(l->http); /* closes its listener and open connections */
            http_gate_free(l->gate);
            if (l->base)
                event_base_free(l->base);
            if (l->fd >= 0)
                close(l->fd);
        }
        free(s->loops);
    }
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
