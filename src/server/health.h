/* health.h: GET /healthz, what a load balancer polls on every server of an installation.
 *
 * 200 {"status":"ok"} when this server can serve reads and writes, 503 {"status":"unavailable"}
 * otherwise. The answer comes from store_health on the loop's own connection and is kept for at
 * most HEALTH_CACHE_MS, so a balancer polling hard costs one probe a second per loop. Any Host;
 * no authentication, no audit record, no throttling; the body says nothing but the status. */
#ifndef MV_SERVER_HEALTH_H
#define MV_SERVER_HEALTH_H

#include <stdint.h>

#include "http/server.h"
#include "store/store.h"

#define HEALTH_PATH "/healthz"
#define HEALTH_CACHE_MS 1000

/* Per loop thread: the last probe's outcome. Zeroed = never probed. */
struct health_cache {
    int64_t checked_ms;
    int ok;
};

/* Replies to req (GET or HEAD; other methods get 405). st must be outside any transaction. */
void health_handle(http_req *req, struct store *st, struct health_cache *cache);

#endif
