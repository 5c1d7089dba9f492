/* checkpoint.h: audit checkpoint helpers both backends share (checkpoint.c); not store.h. */
#ifndef MV_STORE_CHECKPOINT_H
#define MV_STORE_CHECKPOINT_H

#include "store/store.h"

/* Columns of audit_checkpoints in the order the row readers expect. */
#define ST_CHECKPOINT_COLS "seq, writer, records, head_hash, at, prev_hash, hash"

/* Columns of audit_heads in the order the row readers expect. */
#define ST_AUDIT_HEAD_COLS "writer, records, head_hash, mac, at"
/* The upsert both backends run (placeholders $1..$5 / ?1..?5 in that column order): a head never
 * goes back. */
#define ST_AUDIT_HEAD_UPSERT(p1, p2, p3, p4, p5)                                                    \
    "INSERT INTO audit_heads (" ST_AUDIT_HEAD_COLS ") VALUES (" p1 ", " p2 ", " p3 ", " p4 ", " p5 \
    ") ON CONFLICT (writer) DO UPDATE SET records = excluded.records, head_hash ="                \
    " excluded.head_hash, mac = excluded.mac, at = excluded.at"                                    \
    " WHERE excluded.records >= audit_heads.records"
/* BAD_REQUEST unless a head's fields are well-formed. */
MV_MUST_CHECK mv_rc st_audit_head_check(const struct st_audit_head *h);
/* BAD_REQUEST unless the fields of a new checkpoint are well-formed (store.h). */
MV_MUST_CHECK mv_rc st_checkpoint_check(const char *writer, int64_t records, const char *head_hash);
/* The checkpoint that follows last (NULL: the first), hash computed. */
MV_MUST_CHECK mv_rc st_checkpoint_next(const struct st_checkpoint *last, const char *writer,
                                       int64_t records, const char *head_hash, int64_t at,
                                       struct st_checkpoint *out);

#endif
