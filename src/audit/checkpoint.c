/* checkpoint.c: the checkpointer (audit.h): a thread of its own, with a store connection of its
 * own, that every interval pins this server's chain head in the store's checkpoint chain
 * (store_checkpoint_add) when records were written since the last checkpoint, and once more
 * when it stops (clean shutdown, after the loops wrote their last records).
 *
 * Why a thread and not a loop timer: the store write (a PostgreSQL round trip, or a retry loop
 * of up to 30 s while the database fails over) and the fsync of the log must never hold up a
 * request; the loops only ever touch the log's mutex, for as long as audit_head copies the
 * head. A failed checkpoint is logged and tried again at the next tick.
 *
 * Every HEAD_SECS (1 s) while records are written, the same thread also sets this writer's
 * head in the store (audit_heads: records, hash, and its mac under the audit key), so a log cut
 * at its tail is caught even when no checkpoint was made after the cut records. */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "common/log.h"
#include "store/store.h"

#define HEAD_SECS 1 /* how often the head in the store follows the log (while it moves) */

struct audit_checkpointer {
    struct audit *a;
    struct store *st;
    char writer[AUDIT_WRITER_LEN];
    unsigned char key[32]; /* the audit key: the head's mac */
    int interval_secs;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled by audit_checkpointer_stop */
    int stop;          /* under mu */
    int64_t pinned;    /* records of the last checkpoint written by us (this thread only) */
    int64_t headed;    /* records of the last head written by us */
};

/* The head in the store (audit_heads) if it moved: every HEAD_SECS. */
static void head_once(struct audit_checkpointer *c, int64_t records, const char *hash)
{
    struct st_audit_head h;
    memset(&h, 0, sizeof h);
    if (records == 0 || records == c->headed)
        return;
    memcpy(h.writer, c->writer, sizeof h.writer < sizeof c->writer ? sizeof h.writer : sizeof c->writer);
    h.records = records;
    memcpy(h.head_hash, hash, 65);
    h.at = mv_now();
    if (audit_head_mac(c->key, h.writer, records, hash, h.mac) != MV_OK ||
        store_audit_head_put(c->st, &h) != MV_OK) {
        LOG_WARN("audit head of %lld records not saved: %s", (long long)records, mv_last_detail());
        return;
    }
    c->headed = records;
}

/* One checkpoint if the head moved. */
static void checkpoint_once(struct audit_checkpointer *c, int64_t records, const char *hash)
{
    struct st_checkpoint cp;
    if (records == 0 || records == c->pinned)
        return;
    if (store_checkpoint_add(c->st, c->writer, records, hash, mv_now(), &cp) != MV_OK) {
        LOG_WARN("audit checkpoint of %lld records failed: %s", (long long)records, mv_last_detail());
        return;
    }
    c->pinned = records;
    LOG_DEBUG("audit checkpoint %lld: %lld records, head %.12s", (long long)cp.seq,
              (long long)records, hash);
}

static void *run(void *arg)
{
    struct audit_checkpointer *c = arg;
    int ticks = 0, every = c->interval_secs > HEAD_SECS ? c->interval_secs / HEAD_SECS : 1;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += c->interval_secs < HEAD_SECS ? c->interval_secs : HEAD_SECS;
        int e = 0;
        while (!c->stop && e != ETIMEDOUT)
            e = pthread_cond_timedwait(&c->cv, &c->mu, &until);
        int last = c->stop;
        pthread_mutex_unlock(&c->mu);
        int64_t records = 0;
        char hash[65];
        if (audit_head(c->a, &records, hash) != MV_OK) { /* written and synced first */
            LOG_WARN("audit checkpoint: %s", mv_last_detail());
        } else {
            head_once(c, records, hash);
            if (++ticks >= every || last) { /* on stop too: the final checkpoint */
                ticks = 0;
                checkpoint_once(c, records, hash);
            }
        }
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

mv_rc audit_checkpointer_start(struct audit *a, const char *store_path, const char *writer,
                               const unsigned char key[32], int interval_secs,
                               struct audit_checkpointer **out)
{
    mv_rc rc = MV_OK;
    pthread_condattr_t ca;
    int cond_ok = 0, mu_ok = 0;
    struct audit_checkpointer *c = calloc(1, sizeof *c);
    *out = NULL;
    ENSURE(c != NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(writer && strlen(writer) < sizeof c->writer && interval_secs > 0, MV_ERR_BAD_REQUEST,
               "audit checkpoint: bad writer or interval");
    memcpy(c->writer, writer, strlen(writer) + 1);
    memcpy(c->key, key, sizeof c->key);
    c->a = a;
    c->interval_secs = interval_secs;
    CHECK(store_open(store_path, &c->st));
    ENSURE(pthread_mutex_init(&c->mu, NULL) == 0, MV_ERR_INTERNAL);
    mu_ok = 1;
    ENSURE(pthread_condattr_init(&ca) == 0, MV_ERR_INTERNAL);
    cond_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&c->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    ENSURE(cond_ok, MV_ERR_INTERNAL);
    ENSURE_MSG(pthread_create(&c->thread, NULL, run, c) == 0, MV_ERR_INTERNAL,
               "audit checkpoint: cannot start its thread");
    *out = c;
    c = NULL;
out:
    if (c) {
        if (cond_ok)
            pthread_cond_destroy(&c->cv);
        if (mu_ok)
            pthread_mutex_destroy(&c->mu);
        store_close(c->st);
        OPENSSL_cleanse(c->key, sizeof c->key);
        free(c);
    }
    return rc;
}

void audit_checkpointer_stop(struct audit_checkpointer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    store_close(c->st);
    OPENSSL_cleanse(c->key, sizeof c->key);
    free(c);
}
