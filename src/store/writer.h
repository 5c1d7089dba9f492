/* writer.h: group commit. One writer thread with its own store connection runs the write jobs
 * that loop threads submit, many per transaction: one fsync acknowledges a whole batch, which
 * is how durable writes go past the disk's sync rate (DESIGN §5: acknowledged means on disk).
 *
 * A job's fn runs on the writer thread inside the batch's transaction, so that one failing job
 * does not undo the others: in its own savepoint, or (PostgreSQL, where a savepoint costs round
 * trips) first without one, and if a job fails the batch is rolled back and run again with a
 * savepoint per job. A job must therefore be safe to run again after a rollback. After the batch commits (or fails), each job's done
 * callback runs on the event loop that submitted it, with the job's final result: MV_OK only if
 * its changes are durable. */
#ifndef MV_STORE_WRITER_H
#define MV_STORE_WRITER_H

#include "store/store.h"

struct event_base;
struct store_writer;

/* Writer threads (each with its own connection) on PostgreSQL; SQLite has one. Two: a batch's
 * COMMIT waits for the synchronous standby while the next batch fills; with a PUT at one round
 * trip, more threads only split the queue into smaller batches, i.e. more round trips and
 * COMMITs per write (1, 2, 3, 4, 8 measured in docs/benchmarks.md, "PUT"). */
#define STORE_WRITER_PG_THREADS 2

typedef mv_rc (*store_job_fn)(struct store *st, void *arg);
typedef void (*store_done_fn)(void *arg, mv_rc rc);

MV_MUST_CHECK mv_rc store_writer_start(const char *db_path, struct store_writer **out);
/* Runs what is queued, then stops the thread and frees the writer. */
void store_writer_stop(struct store_writer *w);
/* Queues a job; done runs later on loop (never inline). On error nothing is queued. */
MV_MUST_CHECK mv_rc store_writer_submit(struct store_writer *w, struct event_base *loop, store_job_fn fn,
                                        store_done_fn done, void *arg);

/* Savepoints, for callers that batch several operations in one transaction. */
MV_MUST_CHECK mv_rc store_savepoint(struct store *st);
MV_MUST_CHECK mv_rc store_savepoint_release(struct store *st);
void store_savepoint_rollback(struct store *st);

/* For the writer: whether the batch's transaction is still open (not rolled back under it). */
int store_tx_alive(struct store *st);
/* After a failed batch: 1 if it should be run again (PostgreSQL, after a lost connection or an
 * unknown commit outcome; the backoff has been slept), else 0. store_batch_done resets. */
int store_batch_retry(struct store *st);
/* Lean batches: with on = 1, write calls inside the transaction take no savepoint of their own
 * (on PostgreSQL each costs round trips), so a failing call may leave the transaction aborted
 * or partly written and the caller must roll all of it back. Returns whether the backend has
 * the mode: 1 on PostgreSQL, 0 on SQLite (its savepoints cost no round trip). */
int store_batch_lean(struct store *st, int on);
void store_batch_done(struct store *st);

#endif
