/* token.c: a token for one request: from the cache, else from the authority (DESIGN §7).
 *
 * FRESH cache entries are served as they are (IMDS does the same: "the same cached token with a
 * decreasing expires_in", reference §1.6). A MISS or a STALE entry (past half-life or within
 * 5 min of exp) asks the authority; if the authority cannot be reached (or is throttling or
 * failing) a STALE entry is still served until its exp, so a workload keeps working while the
 * authority is down. A definite "no" from the authority (identity removed, node revoked) drops
 * the cached entry at once, so disabling an identity takes effect at the next refresh.
 *
 * The agent has one event loop, so a miss blocks it for one authority round trip. Concurrent
 * misses for the same key should share one request made on a worker thread (DESIGN §7); that
 * is left for when the agent needs more than one loop. */
#include <string.h>
#include <strings.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

/* A system-assigned token's xms_mirid is the VM's ARM id: remember it for /metadata/instance. */
static void learn_vm_id(struct agent *a, const struct imds_token_req *r, const char *mirid)
{
    static const char marker[] = "/providers/Microsoft.Compute/virtualMachines/";
    if (r->sel != SEL_NONE || !mirid[0] || a->vm_resource_id[0])
        return;
    size_t n = strlen(mirid), m = sizeof marker - 1;
    for (size_t i = 0; i + m <= n; i++) {
        if (strncasecmp(mirid + i, marker, m) == 0) {
            if (mv_copy(a->vm_resource_id, sizeof a->vm_resource_id, mirid) != MV_OK)
                a->vm_resource_id[0] = '\0';
            return;
        }
    }
}

mv_rc agent_get_token(struct agent *a, const struct imds_token_req *r,
                      const struct tcache_entry **out)
{
    mv_rc rc = MV_OK;
    struct agent_token t = {0};
    const struct tcache_entry *e = NULL;
    int64_t now = mv_now();
    *out = NULL;
    enum tcache_state st = tcache_lookup(&a->cache, r->sel, r->sel_value, r->resource, now, &e);
    if (st == TCACHE_FRESH) {
        *out = e;
        goto out;
    }
    rc = agent_authority_token(a, r->sel, r->sel_value, r->resource, &t);
    if (rc == MV_OK) {
        learn_vm_id(a, r, t.mirid);
        CHECK(tcache_put(&a->cache, r->sel, r->sel_value, r->resource, &t, now, out));
        goto out;
    }
    if (rc == MV_ERR_NOT_FOUND || rc == MV_ERR_BAD_REQUEST) {
        /* e is not used past this point: removing may move entries. */
        tcache_remove(&a->cache, r->sel, r->sel_value, r->resource);
        goto out;
    }
    if (st == TCACHE_STALE) {
        /* The authority failed (unreachable, 5xx, 429): the cached token is still valid. The
         * cache was not modified since the lookup, so e still points at the entry. */
        LOG_WARN("agent: serving a cached token (expires in %lld s) while the authority fails",
                 (long long)(e->tok.exp - now));
        *out = e;
        rc = MV_OK;
    }
out:
    agent_token_free(&t);
    return rc;
}
