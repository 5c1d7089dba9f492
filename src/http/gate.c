/* gate.c: what stands between a listening socket and evhttp on each loop (DESIGN §8,
 * docs/security.md "Connection limits"): the connection cap, the accept back-off, the deadlines
 * of a request head and body, and the strict parse of every request head before evhttp sees it.
 *
 * libevent 2.1 gives no hook between "a connection arrived" and "a request was parsed", so the
 * gate makes the connection's bufferevent itself (evhttp's bevcb) and watches its input buffer
 * with an evbuffer callback, which runs as bytes are added, before evhttp's read callback
 * parses them. Bytes of a request head are moved out of the input into the connection's stash
 * until the head is complete; it is then parsed by head.c and either put back whole (evhttp
 * parses exactly what was checked) or replaced by a refusal: a short synthetic head carrying
 * HTTP_REFUSED_HEADER, which http_dispatch answers in the plane's error shape and with
 * `Connection: close`, so no body byte of a refused request is ever buffered. Body bytes are
 * counted, not copied, so the next head on a kept-alive connection is checked too.
 *
 * Invariants:
 * - a gate, its connections and their bufferevents are touched only by the gate's loop thread;
 * - until a connection is attached (its evhttp_connection known, through the callback argument
 *   evhttp installs on the bufferevent), the gate holds a reference on the bufferevent, so a
 *   connection that evhttp drops at once is seen as gone, never freed under the gate;
 * - a connection is closed by the gate only from a timer or listener callback, never from
 *   inside evhttp or the input callback, by raising a timeout event on its bufferevent: evhttp
 *   then frees it on its usual path, which detaches a request a handler still holds. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "http/head.h"
#include "http/internal.h"

#define GATE_SWEEP_MS 500

enum phase {
    PH_HEAD, /* receiving a request head (or idle before one) */
    PH_BODY, /* counting the Content-Length body of the head just passed */
    PH_PASS, /* a chunked body: passed unscanned; the connection closes after the reply */
    PH_DEAD, /* refused: a refusal is queued, later bytes are dropped */
};

struct gate_conn {
    struct http_gate *g;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until attached */
    struct gate_conn *prev, *next;   /* in accept order, oldest first */
    struct evbuffer *stash;          /* the head being received, held back from evhttp */
    size_t scan;                     /* http_head_end's resume point in stash */
    enum phase ph;
    int64_t left;       /* body bytes still to come (PH_BODY) */
    int64_t body_got;   /* body bytes received (PH_BODY) */
    int64_t head_start; /* ms when the head's first byte (or the connection) came; 0 = idle */
    int64_t body_start; /* ms when the body phase began */
    int busy;           /* a request is with the handler, or its reply is being sent */
    int close_after;    /* the reply must close the connection */
    int in_cb;          /* the input callback is running: our own buffer edits are not input */
};

struct http_gate {
    struct http_gate_cfg cfg;
    struct event_base *base;
    struct gate_conn *oldest, *newest;
    int n;
    struct evconnlistener *lev;
    int paused_cap, paused_fd;
    struct event *sweep, *resume, *displace;
    struct gate_conn **map; /* bufferevent -> connection, open addressing */
    size_t map_cap;
};

/* The gate of the loop running on this thread, for the listener error callback (whose argument
 * is evhttp's). One loop per thread, so one gate per thread. */
static _Thread_local struct http_gate *t_gate;

/* ---------------------------------------------------------------- bufferevent -> connection */

static size_t slot_of(const struct http_gate *g, const void *key)
{
    uint64_t k = (uint64_t)(uintptr_t)key;
    k ^= k >> 29;
    k *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(k >> 32) & (g->map_cap - 1);
}

static void map_put(struct http_gate *g, struct gate_conn *c)
{
    size_t i = slot_of(g, c->bev);
    while (g->map[i])
        i = (i + 1) & (g->map_cap - 1);
    g->map[i] = c;
}

static size_t map_find(const struct http_gate *g, const void *bev)
{
    size_t i = slot_of(g, bev);
    while (g->map[i] && g->map[i]->bev != bev)
        i = (i + 1) & (g->map_cap - 1);
    return i;
}

static void map_del(struct http_gate *g, const struct gate_conn *c)
{
    size_t mask = g->map_cap - 1, i = map_find(g, c->bev);
    if (!g->map[i])
        return;
    g->map[i] = NULL;
    /* Backward shift: move up every later entry of the run whose home is not in (i, j]. */
    for (size_t j = (i + 1) & mask; g->map[j]; j = (j + 1) & mask) {
        size_t home = slot_of(g, g->map[j]->bev);
        int between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            g->map[i] = g->map[j];
            g->map[j] = NULL;
            i = j;
        }
    }
}

/* ---------------------------------------------------------------- listener */

static void listener_update(struct http_gate *g)
{
    if (!g->lev)
        return;
    if (g->paused_cap || g->paused_fd)
        evconnlistener_disable(g->lev);
    else
        evconnlistener_enable(g->lev);
}

/* ---------------------------------------------------------------- connection life */

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg);

static void conn_gone(struct gate_conn *c)
{
    struct http_gate *g = c->g;
    evbuffer_remove_cb(bufferevent_get_input(c->bev), on_input, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->oldest = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        g->newest = c->prev;
    map_del(g, c);
    g->n--;
    if (!c->evcon)
        bufferevent_decref(c->bev); /* the hold taken in http_gate_bevcb */
    evbuffer_free(c->stash);
    free(c);
    if (g->paused_cap && g->n <= g->cfg.cap) {
        g->paused_cap = 0;
        listener_update(g);
    }
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    conn_gone(arg);
}

/* Learns the connection's evhttp_connection (evhttp passes it as the argument of the callbacks
 * it sets on the bufferevent) and asks to be told when it closes. 0 if evhttp dropped it. */
static int attach(struct gate_conn *c)
{
    if (c->evcon)
        return 1;
    bufferevent_event_cb ecb = NULL;
    void *arg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, &ecb, &arg);
    if (!ecb || !arg) {
        conn_gone(c);
        return 0;
    }
    c->evcon = arg;
    evhttp_connection_set_closecb(c->evcon, on_close, c);
    bufferevent_decref(c->bev);
    return 1;
}

/* Closes c through evhttp's own timeout path (which frees it and calls on_close). */
static void conn_kill(struct gate_conn *c)
{
    if (attach(c))
        bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

/* Idle, or a request not yet complete: nothing a client is waiting for is lost by closing it. */
static int displaceable(const struct gate_conn *c)
{
    return !c->busy && (c->ph == PH_HEAD || c->ph == PH_BODY) &&
           evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
}

static struct gate_conn *oldest_displaceable(const struct http_gate *g)
{
    for (struct gate_conn *c = g->oldest; c; c = c->next)
        if (displaceable(c))
            return c;
    return NULL;
}

/* ---------------------------------------------------------------- the input stream */

/* Moves in[keep..] to the end of dst, keeping in[0..keep). */
static int take_tail(struct evbuffer *in, size_t keep, struct evbuffer *dst)
{
    if (keep == 0)
        return evbuffer_add_buffer(dst, in);
    struct evbuffer *front = evbuffer_new();
    if (!front)
        return -1;
    int rc = evbuffer_remove_buffer(in, front, keep) == (int)keep &&
                     evbuffer_add_buffer(dst, in) == 0 && evbuffer_add_buffer(in, front) == 0
                 ? 0
                 : -1;
    evbuffer_free(front);
    return rc;
}

static void next_head(struct gate_conn *c)
{
    c->ph = PH_HEAD;
    c->head_start = 0;
    c->scan = 0;
}

/* Hands evhttp a refusal instead of the head: a bodiless request that http_dispatch answers
 * with status in the given shape, closing the connection. Later bytes are dropped. */
static void refuse(struct gate_conn *c, struct evbuffer *in, int status, enum http_shape shape)
{
    char head[192];
    int n = snprintf(head, sizeof head,
                     "GET / HTTP/1.1\r\nHost: refused\r\nConnection: close\r\n%s: %d %c\r\n\r\n",
                     HTTP_REFUSED_HEADER, status, shape == HTTP_SHAPE_OAUTH ? 'o' : 'a');
    evbuffer_drain(c->stash, evbuffer_get_length(c->stash));
    if (n > 0 && (size_t)n < sizeof head)
        evbuffer_add(in, head, (size_t)n);
    c->ph = PH_DEAD;
    LOG_DEBUG("http: request refused before routing (%d)", status);
}

static int has_body_method(enum http_method m)
{
    /* evhttp reads a body for these only; any other with a body would have that body parsed as
     * the next request. */
    return m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH;
}

/* Decides on a complete head of `end` bytes at the start of the stash. */
static void head_done(struct gate_conn *c, struct evbuffer *in, const char *p, size_t end)
{
    const struct http_gate *g = c->g;
    struct http_head_info h;
    int st = http_head_parse(p, end, &h);
    if (st) {
        refuse(c, in, st, g->cfg.shape);
        return;
    }
    struct http_limits lim = {.max_body = g->cfg.max_body, .shape = g->cfg.shape};
    if (g->cfg.limits) {
        struct http_head hh = {.method = h.method, .target = h.target, .host = h.host,
                               .authorization = h.authorization};
        g->cfg.limits(g->cfg.ctx->worker, &hh, &lim);
    }
    if (lim.max_body > g->cfg.max_body)
        lim.max_body = g->cfg.max_body;
    /* Redis's lesson (CVE-2021-32675): no big buffers for whoever has not even tried to
     * authenticate. The unauthenticated routes (token, enroll, IMDS) fit under this. */
    if (!h.authorization && lim.max_body > MV_UNAUTH_BODY_BYTES)
        lim.max_body = MV_UNAUTH_BODY_BYTES;
    if (!has_body_method(h.method) && (h.chunked || h.content_length > 0)) {
        refuse(c, in, 400, lim.shape);
        return;
    }
    if (h.chunked && !h.authorization) {
        refuse(c, in, 411, lim.shape); /* RFC 9112 §6.3: a length is required */
        return;
    }
    if (h.content_length > (int64_t)lim.max_body) {
        refuse(c, in, 413, lim.shape);
        return;
    }
    evbuffer_remove_buffer(c->stash, in, end);
    c->scan = 0;
    if (h.chunked) {
        /* evhttp enforces max_body on the chunks; the end of a chunked body is not tracked
         * here, so nothing after it is checked: the connection ends with the reply. */
        c->ph = PH_PASS;
        c->close_after = 1;
    } else if (h.content_length > 0) {
        c->ph = PH_BODY;
        c->left = h.content_length;
        c->body_got = 0;
        c->body_start = mv_now_ms();
    } else {
        next_head(c);
    }
}

/* The stash holds the head received so far. Returns where the bytes after the head start in
 * `in` (they go back there to be scanned as body or next head). */
static size_t head_try(struct gate_conn *c, struct evbuffer *in)
{
    size_t max = c->g->cfg.max_headers;
    size_t n = evbuffer_get_length(c->stash);
    size_t lim = n < max ? n : max;
    const char *p = (const char *)evbuffer_pullup(c->stash, (ev_ssize_t)lim);
    size_t end = p ? http_head_end(p, lim, &c->scan) : 0;
    if (!end) {
        if (n >= max || !p)
            refuse(c, in, 431, c->g->cfg.shape); /* RFC 6585 §5 */
        return evbuffer_get_length(in);
    }
    head_done(c, in, p, end);
    size_t from = evbuffer_get_length(in);
    if (c->ph != PH_DEAD)
        evbuffer_add_buffer(in, c->stash);
    return from;
}

static void scan(struct gate_conn *c, struct evbuffer *in, size_t from)
{
    while (from < evbuffer_get_length(in)) {
        size_t len = evbuffer_get_length(in);
        switch (c->ph) {
        case PH_BODY: {
            size_t n = len - from;
            if ((int64_t)n > c->left)
                n = (size_t)c->left;
            c->left -= (int64_t)n;
            c->body_got += (int64_t)n;
            from += n;
            if (c->left == 0)
                next_head(c);
            break;
        }
        case PH_HEAD:
            if (!c->head_start)
                c->head_start = mv_now_ms();
            if (take_tail(in, from, c->stash) != 0) {
                refuse(c, in, 500, c->g->cfg.shape);
                return;
            }
            from = head_try(c, in);
            break;
        case PH_DEAD:
            if (take_tail(in, from, c->stash) == 0)
                evbuffer_drain(c->stash, evbuffer_get_length(c->stash));
            return;
        case PH_PASS:
            return;
        }
    }
}

static void on_input(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
    struct gate_conn *c = arg;
    if (c->in_cb || info->n_added == 0)
        return;
    if (!attach(c)) /* it is reading, so evhttp has it; never gone here */
        return;
    c->in_cb = 1;
    size_t len = evbuffer_get_length(in);
    scan(c, in, info->n_added <= len ? len - info->n_added : 0);
    c->in_cb = 0;
}

/* ---------------------------------------------------------------- timers */

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_gate *g = arg;
    int64_t now = mv_now_ms();
    int64_t grace = (int64_t)g->cfg.header_timeout_secs * 1000;
    struct gate_conn *next = NULL;
    for (struct gate_conn *c = g->oldest; c; c = next) {
        next = c->next;
        if (!attach(c))
            continue;
        if (c->ph == PH_HEAD && c->head_start && now - c->head_start >= grace) {
            LOG_INFO("http: closing a connection whose request head took over %d s",
                     g->cfg.header_timeout_secs);
            conn_kill(c);
        } else if (c->ph == PH_BODY && !c->busy && now - c->body_start > grace &&
                   c->body_got < (now - c->body_start - grace) * g->cfg.body_min_rate / 1000) {
            LOG_INFO("http: closing a connection whose body came slower than %d bytes/s",
                     g->cfg.body_min_rate);
            conn_kill(c);
        }
    }
}

static void displace_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_gate *g = arg;
    while (g->n > g->cfg.cap) {
        struct gate_conn *c = oldest_displaceable(g);
        if (!c)
            break;
        LOG_INFO("http: %d connections on this loop (the cap): closing the oldest idle one",
                 g->cfg.cap);
        conn_kill(c);
    }
    if (g->n <= g->cfg.cap && g->paused_cap) {
        g->paused_cap = 0;
        listener_update(g);
    }
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct http_gate *g = arg;
    g->paused_fd = 0;
    listener_update(g);
}

/* accept() failed for a reason other than a retry: out of descriptors (EMFILE, ENFILE) or
 * memory. Retrying at once would spin, so the listener pauses (as nginx and h2o do) and the
 * oldest idle connection gives its descriptor back. */
static void accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    int err = errno;
    struct http_gate *g = t_gate;
    if (!g || g->lev != lev) {
        LOG_ERROR("accept: %s", strerror(err));
        return;
    }
    LOG_WARN("accept: %s; pausing this listener for %d ms", strerror(err), MV_ACCEPT_PAUSE_MS);
    g->paused_fd = 1;
    listener_update(g);
    struct timeval tv = {0, MV_ACCEPT_PAUSE_MS * 1000};
    event_add(g->resume, &tv);
    struct gate_conn *c = oldest_displaceable(g);
    if (c)
        conn_kill(c);
}

/* ---------------------------------------------------------------- API */

struct bufferevent *http_gate_bevcb(struct event_base *base, void *arg)
{
    struct http_gate *g = arg;
    struct bufferevent *bev =
        g->cfg.ssl ? http_tls_bevcb(base, g->cfg.ssl) : bufferevent_socket_new(base, -1, 0);
    if (!bev)
        return NULL;
    struct gate_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->stash = evbuffer_new()) ||
        evbuffer_add_cb(bufferevent_get_input(bev), on_input, c) == NULL) {
        /* Out of memory: refuse the connection at its first read rather than serve it ungated. */
        LOG_ERROR("http: out of memory accepting a connection");
        if (c && c->stash)
            evbuffer_free(c->stash);
        free(c);
        bufferevent_free(bev);
        return NULL;
    }
    c->g = g;
    c->bev = bev;
    c->head_start = mv_now_ms();
    c->ph = PH_HEAD;
    bufferevent_incref(bev); /* held until attach() */
    c->prev = g->newest;
    if (g->newest)
        g->newest->next = c;
    else
        g->oldest = c;
    g->newest = c;
    map_put(g, c);
    g->n++;
    if (g->n > g->cfg.cap) {
        g->paused_cap = 1; /* at most one over the cap until displace_cb has run */
        listener_update(g);
        event_active(g->displace, EV_TIMEOUT, 1);
    }
    return bev;
}

void http_gate_dispatched(struct http_gate *g, struct evhttp_request *ev, int *close_after)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    *close_after = 0;
    if (!g || !bev)
        return;
    struct gate_conn *c = g->map[map_find(g, bev)];
    if (!c)
        return;
    c->busy = 1;
    *close_after = c->close_after;
    evhttp_request_set_on_complete_cb(ev, http_gate_reply_done, c);
}

void http_gate_reply_done(struct evhttp_request *ev, void *arg)
{
    (void)ev;
    struct gate_conn *c = arg;
    c->busy = 0;
}

mv_rc http_gate_new(struct event_base *base, const struct http_gate_cfg *cfg, struct http_gate **out)
{
    mv_rc rc = MV_OK;
    struct http_gate *g = calloc(1, sizeof *g);
    *out = NULL;
    ENSURE(g != NULL, MV_ERR_INTERNAL);
    g->cfg = *cfg;
    g->base = base;
    g->map_cap = 16;
    while (g->map_cap < 2 * ((size_t)cfg->cap + 2))
        g->map_cap *= 2;
    g->map = calloc(g->map_cap, sizeof *g->map);
    ENSURE(g->map != NULL, MV_ERR_INTERNAL);
    g->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, g);
    g->resume = evtimer_new(base, resume_cb, g);
    g->displace = event_new(base, -1, 0, displace_cb, g);
    ENSURE_MSG(g->sweep && g->resume && g->displace, MV_ERR_INTERNAL, "event_new failed");
    struct timeval tv = {0, GATE_SWEEP_MS * 1000};
    ENSURE_MSG(event_add(g->sweep, &tv) == 0, MV_ERR_INTERNAL, "event_add failed");
    *out = g;
    g = NULL;
out:
    http_gate_free(g);
    return rc;
}

void http_gate_listen(struct http_gate *g, struct evconnlistener *lev)
{
    g->lev = lev;
    evconnlistener_set_error_cb(lev, accept_error);
}

void http_gate_enter_thread(struct http_gate *g) { t_gate = g; }

void http_gate_free(struct http_gate *g)
{
    if (!g)
        return;
    g->lev = NULL; /* evhttp_free freed it */
    /* evhttp_free has closed the attached connections (on_close freed them); what is left was
     * never attached. */
    while (g->oldest)
        conn_gone(g->oldest);
    if (g->sweep)
        event_free(g->sweep);
    if (g->resume)
        event_free(g->resume);
    if (g->displace)
        event_free(g->displace);
    free(g->map);
    if (t_gate == g)
        t_gate = NULL;
    free(g);
}
