/* snapshot.c: a read transaction per loop iteration (see snapshot.h). */
#include "store/snapshot.h"

#include <event2/event.h>
#include <stdlib.h>

struct store_snapshot {
    struct store *st;
    struct event *end; /* activated when the snapshot opens: runs later in this iteration */
    int open;
};

static void end_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    store_snapshot_leave(arg);
}

mv_rc store_snapshot_new(struct store *st, struct event_base *base, struct store_snapshot **out)
{
    struct store_snapshot *s = calloc(1, sizeof *s);
    if (!s) {
        mv_fail(MV_ERR_INTERNAL, "out of memory");
        return MV_ERR_INTERNAL;
    }
    s->st = st;
    s->end = event_new(base, -1, 0, end_cb, s);
    if (!s->end) {
        free(s);
        mv_fail(MV_ERR_INTERNAL, "event_new failed");
        return MV_ERR_INTERNAL;
    }
    *out = s;
    return MV_OK;
}

void store_snapshot_free(struct store_snapshot *s)
{
    if (!s)
        return;
    store_snapshot_leave(s);
    event_free(s->end);
    free(s);
}

void store_snapshot_enter(struct store_snapshot *s)
{
    if (!s || s->open)
        return;
    if (store_read_begin(s->st) != MV_OK)
        return;
    s->open = 1;
    event_active(s->end, EV_TIMEOUT, 0);
}

void store_snapshot_leave(struct store_snapshot *s)
{
    if (!s || !s->open)
        return;
    s->open = 0;
    store_read_end(s->st);
}
