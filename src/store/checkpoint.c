/* checkpoint.c: what both backends share about audit checkpoints (store.h): the text form a
 * checkpoint's hash covers, and the checks on a new checkpoint's fields. The chain itself (the
 * read of the last checkpoint and the append, under one lock) is each backend's: st_audit.c,
 * pg_audit.c. */
#include <stdio.h>
#include <string.h>

#include "crypto/digest.h"
#include "store/checkpoint.h"

static int is_hex64(const char *s)
{
    if (!s || strlen(s) != 64)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

mv_rc store_checkpoint_hash(const struct st_checkpoint *c, char out[ST_HASH_HEX])
{
    mv_rc rc = MV_OK;
    char text[256];
    /* Every field fixed-form or a number: the '|'-joined text is unambiguous. */
    CHECK(mv_fmt(text, sizeof text, "mivault-audit-checkpoint-1|%lld|%s|%lld|%s|%lld|%s",
                 (long long)c->seq, c->writer, (long long)c->records, c->head_hash,
                 (long long)c->at, c->prev_hash));
    CHECK(digest_sha256_hex(text, strlen(text), out));
out:
    return rc;
}

mv_rc st_checkpoint_check(const char *writer, int64_t records, const char *head_hash)
{
    if (!writer || !mv_is_uuid(writer) || records <= 0 || !is_hex64(head_hash)) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: a checkpoint wants a writer UUID, records > 0 and a hash");
        return MV_ERR_BAD_REQUEST;
    }
    return MV_OK;
}

mv_rc st_audit_head_check(const struct st_audit_head *h)
{
    if (st_checkpoint_check(h->writer, h->records, h->head_hash) != MV_OK || !is_hex64(h->mac)) {
        mv_fail(MV_ERR_BAD_REQUEST, "store: an audit head wants a writer UUID, records > 0, a hash and a mac");
        return MV_ERR_BAD_REQUEST;
    }
    return MV_OK;
}

mv_rc st_checkpoint_next(const struct st_checkpoint *last, const char *writer, int64_t records,
                         const char *head_hash, int64_t at, struct st_checkpoint *out)
{
    mv_rc rc = MV_OK;
    memset(out, 0, sizeof *out);
    out->seq = last ? last->seq + 1 : 1;
    CHECK(mv_copy(out->writer, sizeof out->writer, writer));
    out->records = records;
    CHECK(mv_copy(out->head_hash, sizeof out->head_hash, head_hash));
    out->at = at;
    if (last)
        CHECK(mv_copy(out->prev_hash, sizeof out->prev_hash, last->hash));
    else
        memset(out->prev_hash, '0', 64);
    CHECK(store_checkpoint_hash(out, out->hash));
out:
    return rc;
}
