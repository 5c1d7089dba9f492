/* audit.h: the audit trail (DESIGN §8): one JSON line per control- and data-plane decision
 * (time, plane, principal, action, scope, result, request id), append-only, each line carrying
 * the SHA-256 of the previous line so that an edit or a removed line breaks the chain.
 * Never pass a token or a secret value: callers pass a token's hash if they need one. */
#ifndef MV_AUDIT_AUDIT_H
#define MV_AUDIT_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/result.h"

struct audit;

#define AUDIT_WRITER_LEN 37 /* a writer id: a UUID and its NUL */

MV_MUST_CHECK mv_rc audit_open(const char *path, struct audit **out);
void audit_close(struct audit *a);
/* What a record copies from a request is bounded: a field longer than AUDIT_FIELD_MAX bytes is
 * cut (at a UTF-8 character boundary) and ends in AUDIT_TRUNCATED, so any request gets its
 * record, and a record stays far below any line limit. */
#define AUDIT_FIELD_MAX 1024
#define AUDIT_TRUNCATED "...[truncated]"
/* Thread-safe. Failures to write are logged, never surfaced to the request: for the control
 * plane and the authority. A record is written whole or not at all (a short write is truncated
 * back to the last whole record). */
void audit_record(struct audit *a, const char *plane, const char *principal, const char *action,
                  const char *scope, int status, const char *request_id);
/* The data plane's record (docs/audit.md "Fail closed"): chained and written with what is
 * queued before it, now, before the caller replies. MV_ERR_UNAVAILABLE if it could not be
 * written (disk full, I/O error): the caller must refuse the request (503) rather than serve it
 * unaudited. MV_OK when a is NULL. */
MV_MUST_CHECK mv_rc audit_record_now(struct audit *a, const char *plane, const char *principal,
                                     const char *action, const char *scope, int status,
                                     const char *request_id);
/* Batching on an event loop. After audit_loop_attach(a, base) on a loop's thread, the records
 * made on that thread are chained at once but queued, and the queue (with what other threads
 * queued meanwhile, in chain order) is written with one write(2) when the loop has run the
 * callbacks of its current iteration, before it waits for I/O again. A reply is written to its
 * socket only after such a wait, so a record still reaches the kernel before the reply it
 * describes (DESIGN §8). Without a loop, or past AUDIT_QUEUE_MAX bytes queued, a record is
 * written at once. audit_loop_detach, on the same thread before the loop is freed, writes what
 * is queued and ends the batching there. a may be NULL (no audit log: nothing to do). */
struct event_base;
MV_MUST_CHECK mv_rc audit_loop_attach(struct audit *a, struct event_base *base);
void audit_loop_detach(struct audit *a);
/* Rotation: once the live file reaches max_bytes it is renamed PATH.NNNNNN (numbered from 1)
 * and a new one started; the chain goes on across files (the new file's first record links to
 * the last record of the old one). Only the newest `keep` rotated files are kept. max_bytes 0
 * = never rotate (the default after audit_open). */
void audit_set_rotation(struct audit *a, long long max_bytes, int keep);
/* The writer id (STATE/server.id, a UUID) every later record carries as "writer": the chains
 * of several servers stay apart and checkpoints name whose chain they pin (docs/audit.md).
 * Call before the first record. */
MV_MUST_CHECK mv_rc audit_set_writer(struct audit *a, const char *writer);
/* The audit key (state_audit_key: HKDF of the master key): every later record carries "mac",
 * HMAC-SHA256 under it of the record's text before that field, inside what "hash" covers, so a
 * chain recomputed without the key does not verify (docs/audit.md). */
MV_MUST_CHECK mv_rc audit_set_key(struct audit *a, const unsigned char key[32]);
/* The mac of a writer's chain head as the store keeps it (store_audit_head_put): hex
 * HMAC-SHA256 under key of "mivault-audit-head-1|writer|records|hash". */
MV_MUST_CHECK mv_rc audit_head_mac(const unsigned char key[32], const char *writer,
                                   int64_t records, const char *hash, char out[65]);
/* The chain head as written: the number of records of the chain since its start (across
 * rotations; each record carries its number as "seq") and the last one's hash. Writes what is
 * queued and syncs the file to disk first (outside the lock), so a checkpoint never pins a
 * record a crash could lose. *records = 0 when the chain is empty. */
MV_MUST_CHECK mv_rc audit_head(struct audit *a, int64_t *records, char hash[65]);
/* The checkpointer: a thread with its own connection to the store at store_path that pins this
 * chain's head in the store's checkpoint chain every interval_secs while records were written
 * (store_checkpoint_add; never per request), and once more in audit_checkpointer_stop, which
 * must run after the last record and before audit_close. Failures are logged and retried at
 * the next tick (docs/audit.md). */
struct audit_checkpointer;
MV_MUST_CHECK mv_rc audit_checkpointer_start(struct audit *a, const char *store_path,
                                             const char *writer, const unsigned char key[32],
                                             int interval_secs, struct audit_checkpointer **out);
void audit_checkpointer_stop(struct audit_checkpointer *c);
/* Verifies the chain of the rotated files and the live file at path, oldest first: MV_OK if
 * intact. Lines may be of any length. */
MV_MUST_CHECK mv_rc audit_verify(const char *path, long *lines);

/* `mivault audit verify` (verify.c, docs/audit.md): the store's checkpoint chain (st may be
 * NULL: no store, logs only), then each log: its own chain and every checkpoint of its writer
 * against it; with key (the audit key, 32 bytes; NULL = not checked) also every record's mac
 * and each writer's head in the store (its mac, and the log must reach it). A log's writer is that of its records, else the src's writer (its state dir's
 * server.id), which also must match the records'. MV_OK with a JSON report ("intact", per
 * writer lines and last checkpoint, writers with checkpoints but no log given); CONFLICT with
 * the first failure in mv_last_detail otherwise. */
struct audit_log_src {
    const char *path;   /* the live file; rotated ones beside it */
    const char *writer; /* expected writer id, or NULL */
};
struct store;
MV_MUST_CHECK mv_rc audit_verify_all(struct store *st, const struct audit_log_src *logs,
                                     size_t nlogs, const unsigned char *key, json_t **report);

#endif
