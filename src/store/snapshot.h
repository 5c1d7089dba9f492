/* snapshot.h: one read transaction shared by the read-only requests that one event-loop
 * iteration handles. A WAL read transaction costs file locks (fcntl) and SQLite's shared-memory
 * mutex; taking it once per loop iteration instead of once per request removes most of that from
 * the vault's GET path (docs/benchmarks.md).
 *
 * Freshness: the snapshot is ended by an event that runs in the same loop iteration, before the
 * loop waits for I/O again, so a request read in a later wait sees everything committed before
 * it arrived (a client that got a write's reply and then reads is always in a later iteration).
 * (BEGIN is deferred: SQLite fixes the snapshot at the first read after it, later still.)
 * Writes through the same connection must first store_snapshot_leave. */
#ifndef MV_STORE_SNAPSHOT_H
#define MV_STORE_SNAPSHOT_H

#include "store/store.h"

struct event_base;
struct store_snapshot;

MV_MUST_CHECK mv_rc store_snapshot_new(struct store *st, struct event_base *base, struct store_snapshot **out);
/* Ends an open snapshot, frees. NULL is fine. */
void store_snapshot_free(struct store_snapshot *s);
/* Opens the iteration's snapshot if none is open. On error, reads simply run without it. */
void store_snapshot_enter(struct store_snapshot *s);
/* Ends the snapshot now (before a write on the same connection). NULL is fine. */
void store_snapshot_leave(struct store_snapshot *s);

#endif
