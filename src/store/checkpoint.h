/* checkpoint.h: audit checkpoint helpers both backends share (checkpoint.c); not store.h. */
#ifndef MV_STORE_CHECKPOINT_H
#define MV_STORE_CHECKPOINT_H

#include "store/store.h"

/* Columns of audit_checkpoints in the order the row readers expect. */
#define ST_CHECKPOINT_COLS "seq, writer, records, head_hash, at, prev_hash, hash"

/* BAD_REQUEST unless the fields of a new checkpoint are well-formed (store.h). */
MV_MUST_CHECK mv_rc st_checkpoint_check(const char *writer, int64_t records, const char *head_hash);
/* The checkpoint that follows last (NULL: the first), hash computed. */
MV_MUST_CHECK mv_rc st_checkpoint_next(const struct st_checkpoint *last, const char *writer,
                                       int64_t records, const char *head_hash, int64_t at,
                                       struct st_checkpoint *out);

#endif
