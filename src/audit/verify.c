/* verify.c: `mivault audit verify` over N writers (audit.h, docs/audit.md).
 *
 * 1. The store's checkpoint chain: seq 1, 2, ... without a gap, each prev_hash the hash of the
 *    one before, each hash recomputed from its fields; per writer, the record count never goes
 *    back. A removed, edited or reordered checkpoint fails here.
 * 2. Each log given: its own chain (audit_scan), and every checkpoint of its writer against it:
 *    the record at the pinned position must have the pinned hash. A checkpoint beyond the log's
 *    last record fails (the log was cut behind a checkpoint, or is not the whole log); one before
 *    the oldest kept record (older files removed by rotation) cannot be checked and is counted
 *    as such.
 * 3. Writers with checkpoints whose log was not given are listed, not failed: the caller may
 *    not have every server's log at hand (the report says it is not complete).
 * 4. With the audit key: every record's "mac" (a chain recomputed without the key fails), and
 *    each writer's head in the store (audit_heads: its mac, then the log against it, as against
 *    a checkpoint): a log that ends before its writer's head was cut at the tail, even after its
 *    last checkpoint. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "audit/internal.h"
#include "store/store.h"

static const char ZEROS[65] = "0000000000000000000000000000000000000000000000000000000000000000";

static mv_rc check_chain(const struct st_checkpoint *cps, size_t n)
{
    mv_rc rc = MV_OK;
    char h[ST_HASH_HEX];
    for (size_t i = 0; i < n; i++) {
        const struct st_checkpoint *c = &cps[i];
        ENSURE_MSG(c->seq == (int64_t)i + 1, MV_ERR_CONFLICT,
                   "checkpoint chain: checkpoint %zu is missing (found %lld there)", i + 1,
                   (long long)c->seq);
        ENSURE_MSG(strcmp(c->prev_hash, i ? cps[i - 1].hash : ZEROS) == 0, MV_ERR_CONFLICT,
                   "checkpoint chain broken at checkpoint %lld: prev_hash does not match",
                   (long long)c->seq);
        CHECK(store_checkpoint_hash(c, h));
        ENSURE_MSG(strcmp(h, c->hash) == 0, MV_ERR_CONFLICT,
                   "checkpoint chain broken at checkpoint %lld: its hash does not match its fields",
                   (long long)c->seq);
    }
out:
    return rc;
}

/* Each head's mac under the key (a head moved by someone without the key fails). */
static mv_rc check_heads(const unsigned char *key, const struct st_audit_head *hs, size_t n)
{
    mv_rc rc = MV_OK;
    char m[65];
    for (size_t i = 0; key && i < n; i++) {
        CHECK(audit_head_mac(key, hs[i].writer, hs[i].records, hs[i].head_hash, m));
        ENSURE_MSG(CRYPTO_memcmp(m, hs[i].mac, 64) == 0, MV_ERR_CONFLICT,
                   "the store's audit head of writer %s has a wrong mac (it was changed)",
                   hs[i].writer);
    }
out:
    return rc;
}

/* One log against its writer's checkpoints (wcp: their indices in cps, by seq) and head. */
struct against {
    const struct st_checkpoint *cps;
    const size_t *wcp;
    size_t m, next; /* wcp[next] is the first checkpoint not yet reached */
    int64_t checked, before;
    const char *path;
    const struct st_audit_head *head; /* NULL: none in the store */
    int head_checked;
};

static mv_rc at_record(void *arg, int64_t pos, const char *hash)
{
    mv_rc rc = MV_OK;
    struct against *g = arg;
    if (g->head && g->head->records == pos) {
        ENSURE_MSG(strcmp(g->head->head_hash, hash) == 0, MV_ERR_CONFLICT,
                   "%s: record %lld is not the one the store's audit head pinned (the log was "
                   "changed)", g->path, (long long)pos);
        g->head_checked = 1;
    }
    for (; g->next < g->m && g->cps[g->wcp[g->next]].records <= pos; g->next++) {
        const struct st_checkpoint *c = &g->cps[g->wcp[g->next]];
        if (c->records < pos) { /* before the first record this log still has */
            g->before++;
            continue;
        }
        ENSURE_MSG(strcmp(c->head_hash, hash) == 0, MV_ERR_CONFLICT,
                   "%s: record %lld is not the one checkpoint %lld pinned (the log was changed)",
                   g->path, (long long)pos, (long long)c->seq);
        g->checked++;
    }
out:
    return rc;
}

static json_t *cp_json(const struct st_checkpoint *c)
{
    if (!c)
        return json_null();
    return json_pack("{s:I, s:I, s:s, s:I}", "seq", (json_int_t)c->seq, "records",
                     (json_int_t)c->records, "headHash", c->head_hash, "at", (json_int_t)c->at);
}

/* Verifies one log; appends its line to writers and marks its writer's checkpoints seen. */
static mv_rc verify_log(const struct audit_log_src *src, const struct st_checkpoint *cps, size_t n,
                        const struct st_audit_head *hs, size_t nh, const unsigned char *key,
                        char *seen, json_t *writers)
{
    mv_rc rc = MV_OK;
    struct audit_last last;
    struct audit_chain chain;
    size_t *wcp = NULL, m = 0;
    const char *writer;
    CHECK(audit_last_record(src->path, &last));
    writer = last.writer[0] ? last.writer : (src->writer ? src->writer : "");
    ENSURE_MSG(!src->writer || !last.writer[0] || strcmp(src->writer, last.writer) == 0,
               MV_ERR_CONFLICT, "%s holds the log of writer %s, its state dir is writer %s",
               src->path, last.writer, src->writer);
    wcp = calloc(n ? n : 1, sizeof *wcp);
    ENSURE(wcp != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; i < n; i++) {
        if (!writer[0] || strcmp(cps[i].writer, writer) != 0)
            continue;
        ENSURE_MSG(m == 0 || cps[i].records >= cps[wcp[m - 1]].records, MV_ERR_CONFLICT,
                   "checkpoint %lld of writer %s pins record %lld, after one that pinned %lld:"
                   " its chain was restarted or rewound",
                   (long long)cps[i].seq, writer, (long long)cps[i].records,
                   (long long)cps[wcp[m - 1]].records);
        wcp[m++] = i;
        seen[i] = 1;
    }
    struct against g = {.cps = cps, .wcp = wcp, .m = m, .path = src->path};
    for (size_t i = 0; writer[0] && i < nh; i++)
        if (strcmp(hs[i].writer, writer) == 0)
            g.head = &hs[i];
    CHECK(audit_scan_keyed(src->path, key, at_record, &g, &chain));
    if (g.head && !g.head_checked) {
        ENSURE_MSG(chain.last_pos == 0 || chain.last_pos >= g.head->records, MV_ERR_CONFLICT,
                   "%s ends at record %lld but the store's audit head of writer %s is at record "
                   "%lld: the log was cut at its tail",
                   src->path, (long long)chain.last_pos, writer, (long long)g.head->records);
    }
    ENSURE_MSG(!chain.writer[0] || strcmp(chain.writer, writer) == 0, MV_ERR_CONFLICT,
               "%s: records of writer %s", src->path, chain.writer);
    if (g.next < m) {
        const struct st_checkpoint *c = &cps[wcp[g.next]];
        ENSURE_MSG(chain.last_pos == 0 && chain.lines > 0, MV_ERR_CONFLICT,
                   "%s ends at record %lld but checkpoint %lld pinned record %lld of writer %s:"
                   " the log was cut or records were removed",
                   src->path, (long long)chain.last_pos, (long long)c->seq, (long long)c->records,
                   writer);
        g.before += (int64_t)(m - g.next); /* legacy records: positions unknown */
    }
    const struct st_checkpoint *lc = m ? &cps[wcp[m - 1]] : NULL;
    json_t *w = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:o, s:b, s:b, s:I}",
                          "writer", writer,
                          "file", src->path, "lines", (json_int_t)chain.lines, "firstRecord",
                          (json_int_t)chain.first_pos, "lastRecord", (json_int_t)chain.last_pos,
                          "checkpoints", (json_int_t)m, "checkedCheckpoints", (json_int_t)g.checked,
                          "checkpointsBeforeLog", (json_int_t)g.before, "lastCheckpoint", cp_json(lc),
                          "recordsAfterLastCheckpoint",
                          (json_int_t)(lc && chain.last_pos ? chain.last_pos - lc->records : chain.last_pos),
                          "head", g.head ? json_pack("{s:I, s:s, s:I}", "records",
                                                     (json_int_t)g.head->records, "headHash",
                                                     g.head->head_hash, "at", (json_int_t)g.head->at)
                                         : json_null(),
                          "headChecked", g.head_checked, "keyed", chain.keyed, "macsChecked",
                          (json_int_t)chain.macs);
    ENSURE(w && json_array_append_new(writers, w) == 0, MV_ERR_INTERNAL);
out:
    free(wcp);
    return rc;
}

mv_rc audit_verify_all(struct store *st, const struct audit_log_src *logs, size_t nlogs,
                       const unsigned char *key, json_t **report)
{
    mv_rc rc = MV_OK;
    struct st_checkpoint *cps = NULL;
    struct st_audit_head *hs = NULL;
    size_t n = 0, nh = 0;
    char *seen = NULL;
    json_t *r = NULL, *writers = json_array(), *missing = json_array();
    *report = NULL;
    ENSURE(writers && missing, MV_ERR_INTERNAL);
    if (st) {
        CHECK(store_checkpoint_list(st, &cps, &n));
        CHECK(check_chain(cps, n));
        CHECK(store_audit_head_list(st, &hs, &nh));
        CHECK(check_heads(key, hs, nh));
    }
    seen = calloc(n ? n : 1, 1);
    ENSURE(seen != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; i < nlogs; i++)
        CHECK(verify_log(&logs[i], cps, n, hs, nh, key, seen, writers));
    /* Writers with checkpoints and no log: newest checkpoint first found from the end. */
    for (size_t i = n; i-- > 0;) {
        if (seen[i])
            continue;
        json_t *mw = json_pack("{s:s, s:o}", "writer", cps[i].writer, "lastCheckpoint", cp_json(&cps[i]));
        ENSURE(mw && json_array_append_new(missing, mw) == 0, MV_ERR_INTERNAL);
        for (size_t j = 0; j <= i; j++)
            if (strcmp(cps[j].writer, cps[i].writer) == 0)
                seen[j] = 1;
    }
    r = json_pack("{s:b, s:b, s:b, s:{s:I, s:o}, s:O, s:O}", "intact", 1, "keyChecked", key != NULL,
                  "complete",
                  json_array_size(missing) == 0, "checkpointChain", "length", (json_int_t)n,
                  "head", n ? json_pack("{s:I, s:s, s:I}", "seq", (json_int_t)cps[n - 1].seq, "hash",
                                        cps[n - 1].hash, "at", (json_int_t)cps[n - 1].at)
                            : json_null(),
                  "writers", writers, "writersWithoutLog", missing);
    ENSURE(r != NULL, MV_ERR_INTERNAL);
    *report = r;
out:
    json_decref(writers);
    json_decref(missing);
    free(cps);
    free(hs);
    free(seen);
    return rc;
}
