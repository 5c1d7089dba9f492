/* offload.h: CPU-heavy work kept off the event loops.
 *
 * A loop thread serves every connection it holds, so a request that computes for a second (an
 * RSA-4096 key generation) would stall all of them. http_offload_submit runs fn(arg) on one of a
 * few pool threads, then done(arg) back on the loop that submitted it (event_base_once, which the
 * server's pthread-enabled libevent allows from any thread): done may use that loop's state and
 * send the deferred reply. fn must touch nothing of the loop's. */
#ifndef MV_HTTP_OFFLOAD_H
#define MV_HTTP_OFFLOAD_H

#include "common/result.h"

struct event_base;
struct http_offload;

typedef void (*http_offload_fn)(void *arg);

/* threads: 1 or more. */
MV_MUST_CHECK mv_rc http_offload_start(int threads, struct http_offload **out);
/* Runs what is still queued, posts its completions (to loops that may have stopped: their
 * clients are gone with them, as with the store writer), then joins the threads. NULL is a
 * no-op. */
void http_offload_stop(struct http_offload *o);
/* MV_ERR_UNAVAILABLE once stopping; done is not called then. */
MV_MUST_CHECK mv_rc http_offload_submit(struct http_offload *o, struct event_base *loop,
                                        http_offload_fn fn, http_offload_fn done, void *arg);

#endif
