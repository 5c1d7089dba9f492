/* offload.c: a small pool of threads for CPU-heavy work (see offload.h). A queue under a
 * mutex, in submission order; each finished job is posted to its loop. */
#include "http/offload.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/log.h"

#define OFFLOAD_MAX_THREADS 8

struct job {
    struct job *next;
    struct event_base *loop;
    http_offload_fn fn, done;
    void *arg;
};

struct http_offload {
    pthread_t threads[OFFLOAD_MAX_THREADS];
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
    j->done(j->arg);
    free(j);
}

static void *worker(void *arg)
{
    struct http_offload *o = arg;
    for (;;) {
        pthread_mutex_lock(&o->mu);
        while (!o->head && !o->stopping)
            pthread_cond_wait(&o->cv, &o->mu);
        struct job *j = o->head;
        if (!j) {
            pthread_mutex_unlock(&o->mu);
            return NULL;
        }
        o->head = j->next;
        if (!o->head)
            o->tail = NULL;
        pthread_mutex_unlock(&o->mu);
        j->fn(j->arg);
        struct timeval now = {0, 0};
        if (event_base_once(j->loop, -1, EV_TIMEOUT, finish, j, &now) != 0) {
            LOG_ERROR("offload: cannot post a completion");
            free(j); /* the loop is gone: nobody is waiting for the reply */
        }
    }
}

mv_rc http_offload_start(int threads, struct http_offload **out)
{
    mv_rc rc = MV_OK;
    struct http_offload *o = NULL;
    *out = NULL;
    ENSURE(threads >= 1 && threads <= OFFLOAD_MAX_THREADS, MV_ERR_INTERNAL);
    o = calloc(1, sizeof *o);
    ENSURE(o != NULL, MV_ERR_INTERNAL);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    for (; o->n < threads; o->n++)
        ENSURE_MSG(pthread_create(&o->threads[o->n], NULL, worker, o) == 0, MV_ERR_INTERNAL,
                   "cannot start an offload thread");
    *out = o;
    o = NULL;
out:
    http_offload_stop(o);
    return rc;
}

void http_offload_stop(struct http_offload *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < o->n; i++)
        pthread_join(o->threads[i], NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o);
}

mv_rc http_offload_submit(struct http_offload *o, struct event_base *loop, http_offload_fn fn,
                          http_offload_fn done, void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        mv_fail(MV_ERR_INTERNAL, "out of memory");
        return MV_ERR_INTERNAL;
    }
    *j = (struct job){.loop = loop, .fn = fn, .done = done, .arg = arg};
    pthread_mutex_lock(&o->mu);
    if (o->stopping) {
        pthread_mutex_unlock(&o->mu);
        free(j);
        mv_fail(MV_ERR_UNAVAILABLE, "the server is stopping");
        return MV_ERR_UNAVAILABLE;
    }
    if (o->tail)
        o->tail->next = j;
    else
        o->head = j;
    o->tail = j;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return MV_OK;
}
