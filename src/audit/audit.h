/* audit.h: the audit trail (DESIGN §8): one JSON line per control- and data-plane decision
 * (time, plane, principal, action, scope, result, request id), append-only, each line carrying
 * the SHA-256 of the previous line so that an edit or a removed line breaks the chain.
 * Never pass a token or a secret value: callers pass a token's hash if they need one. */
#ifndef MV_AUDIT_AUDIT_H
#define MV_AUDIT_AUDIT_H

#include "common/result.h"

struct audit;

MV_MUST_CHECK mv_rc audit_open(const char *path, struct audit **out);
void audit_close(struct audit *a);
/* Thread-safe. Failures to write are logged, never surfaced to the request. */
void audit_record(struct audit *a, const char *plane, const char *principal, const char *action,
                  const char *scope, int status, const char *request_id);
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
/* Verifies the chain of the rotated files and the live file at path, oldest first: MV_OK if
 * intact (used by `mivault audit verify`). Lines may be of any length. */
MV_MUST_CHECK mv_rc audit_verify(const char *path, long *lines);

#endif
