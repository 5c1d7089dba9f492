/* ratelimit.c: one token bucket per agent for token requests (DESIGN §8; DOC-IMDS "Rate
 * limiting": IMDS throttles per VM with 429). Capacity and refill are both per_sec, in integer
 * milli-tokens so no floating point is involved. The clock is monotonic milliseconds. per_sec 0
 * (config imdsRateLimit 0) turns the limit off: every request may go ahead. */
#include "agent/agent_internal.h"

void ratelimit_init(struct ratelimit *r, int per_sec, int64_t now_ms)
{
    int64_t rate = per_sec > 0 ? per_sec : 0;
    *r = (struct ratelimit){rate * 1000, rate * 1000, rate, now_ms};
}

int ratelimit_take(struct ratelimit *r, int64_t now_ms)
{
    if (r->per_sec == 0)
        return 1; /* off */
    int64_t dt = now_ms - r->last_ms;
    if (dt > 0) {
        /* per_sec tokens per 1000 ms = per_sec milli-tokens per ms. Clamp dt so the product
         * cannot overflow after a long idle period. */
        if (dt > 3600 * 1000)
            dt = 3600 * 1000;
        r->milli += dt * r->per_sec;
        if (r->milli > r->cap)
            r->milli = r->cap;
        r->last_ms = now_ms;
    }
    if (r->milli < 1000)
        return 0;
    r->milli -= 1000;
    return 1;
}
