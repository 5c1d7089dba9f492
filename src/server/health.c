/* health.c: GET /healthz (see health.h). */
#include "server/health.h"

#include <string.h>

#include "common/log.h"
#include "common/util.h"

static const char HEALTH_OK[] = "{\"status\":\"ok\"}";
static const char HEALTH_DOWN[] = "{\"status\":\"unavailable\"}";
static const char HEALTH_METHOD[] = "{\"status\":\"method not allowed\"}";
#define HEALTH_TYPE "application/json; charset=utf-8"

void health_handle(http_req *req, struct store *st, struct health_cache *cache)
{
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        http_set_header(req, "Allow", "GET, HEAD");
        http_reply(req, 405, HEALTH_TYPE, HEALTH_METHOD, sizeof HEALTH_METHOD - 1);
        return;
    }
    int64_t now = mv_now_ms();
    if (cache->checked_ms == 0 || now - cache->checked_ms >= HEALTH_CACHE_MS) {
        int ok = store_health(st) == MV_OK;
        if (ok != cache->ok || cache->checked_ms == 0) {
            if (ok)
                LOG_INFO("health: the store serves reads and writes");
            else
                LOG_WARN("health: the store cannot serve writes: %s", mv_last_detail());
        }
        cache->ok = ok;
        cache->checked_ms = now;
    }
    http_set_header(req, "Cache-Control", "no-store");
    if (cache->ok)
        http_reply(req, 200, HEALTH_TYPE, HEALTH_OK, sizeof HEALTH_OK - 1);
    else
        http_reply(req, 503, HEALTH_TYPE, HEALTH_DOWN, sizeof HEALTH_DOWN - 1);
}
