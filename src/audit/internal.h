/* internal.h: what the files of the audit sink share (not part of audit.h): the names of the
 * rotated files and the one reader of a log's chain (scan.c), used by audit_open to find where
 * the chain goes on and by every verification. */
#ifndef MV_AUDIT_INTERNAL_H
#define MV_AUDIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"

#define AUDIT_MAX_ROTATED 4096 /* rotated files looked at (far above any sane keep) */
#define AUDIT_HASH_SUFFIX_LEN 75 /* ,"hash":"<64 hex>"} */
#define AUDIT_MAC_LEN 73         /* ,"mac":"<64 hex>" just before it (keyed records) */

/* Rotated files: PATH.NNNNNN, numbered from 1 in the order they were rotated. Fills seqs
 * (sorted ascending, at most cap) and returns how many there are. */
size_t audit_rotated_files(const char *path, long *seqs, size_t cap);
MV_MUST_CHECK mv_rc audit_rotated_path(const char *path, long seq, char *out, size_t len);

/* The newest record of a log (the live file, else the newest rotated one): its hash, its "seq"
 * (0 if it has none: written before records carried one) and its "writer" ("" if none).
 * *found = 0 when the log has no record. */
struct audit_last {
    int found;
    char hash[65];
    int64_t seq;
    char writer[AUDIT_WRITER_LEN];
};
MV_MUST_CHECK mv_rc audit_last_record(const char *path, struct audit_last *out);

/* What audit_scan found. A record's position is its number in its writer's chain, from 1
 * (its "seq"; for records written before there was one, counted from the chain's start when
 * that is in the kept files); 0 = unknown. */
struct audit_chain {
    long lines;                     /* records read */
    int64_t first_pos, last_pos;    /* of the first and the last record read; 0 = unknown */
    char last_hash[65];
    char writer[AUDIT_WRITER_LEN];  /* the records' "writer"; "" if none carries one */
    int keyed;                      /* some record carries a "mac" (then all later ones must) */
    long macs;                      /* macs checked against the key */
};
/* Called for each record whose position is known, in order; also once, first, for the record
 * just before the oldest kept one (pos = its position, hash = the kept record's "prev") when
 * older files were removed. A non-OK result stops the scan and is returned. */
typedef mv_rc (*audit_scan_fn)(void *arg, int64_t pos, const char *hash);
/* Verifies the chain of the rotated files and the live file at path, oldest first: every hash,
 * every prev link, consecutive "seq"s, one writer. CONFLICT (detail: file and line) if not. */
MV_MUST_CHECK mv_rc audit_scan(const char *path, audit_scan_fn fn, void *arg, struct audit_chain *out);
/* audit_scan that also checks every record's "mac" under key (32 bytes; NULL = not checked):
 * a wrong mac, or a record without one after records that had one, is CONFLICT. */
MV_MUST_CHECK mv_rc audit_scan_keyed(const char *path, const unsigned char *key, audit_scan_fn fn,
                                     void *arg, struct audit_chain *out);

#endif
