/* audit.c: hash-chained, append-only audit log (see audit.h).
 *
 * Each line is a compact JSON object ending in "writer" (the server's id, once set), "seq" (the
 * record's number in this chain, from 1, across rotations), "prev" (the previous line's hash; 64
 * zeros for the first) and "hash" = hex SHA-256 of the line's text up to, not including, the
 * ",\"hash\"" suffix (docs/audit.md). Changing any line, the last one included, breaks its own
 * hash; removing or reordering lines breaks the prev links; cutting the tail is caught only
 * against a checkpoint (checkpoint.c, verify.c). Lines are chained and appended to the file
 * under a mutex, with write(2) on an O_APPEND descriptor, so concurrent loop threads never
 * interleave and the chain order is the file order. Lines reach the kernel before the
 * reply is sent (they survive a crash of the process; not fsync'ed per line, for speed).
 *
 * Batching (audit.h, audit_loop_attach): on a loop thread a record is chained at once and
 * queued; the queue is written by one write(2) from an event the record activates, which runs
 * in the same loop iteration after the callbacks already due, before the loop waits for I/O
 * again. The reply a record describes is written to its socket by a write event, which can
 * only become active in such a wait: evhttp handles a request only once the connection's
 * previous reply is fully written (its write event is then off), and turns the write event on
 * for the new reply, which takes effect at the next wait. So the order "record in the kernel,
 * then reply on the wire" holds as when each record was written by the handler itself, with
 * one write per loop iteration instead of one per request.
 *
 * Cost (docs/benchmarks.md, vault path): a record is formatted by hand, outside the mutex
 * (its fields are short ids, fixed action names and a scope; escaped as jansson did); under
 * the mutex only the prev link, one SHA-256 of the ~300-byte line with a digest fetched once,
 * and the copy into the queue. */
#include "audit/audit.h"
#include "audit/internal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#define AUDIT_MAX_LINE 4096

#define AUDIT_QUEUE_MAX (64 * 1024) /* queued bytes that make a record write at once */
#define SEQ_PREV_MAX 36 /* ,"seq":<up to 20 digits>,"prev":" */
#define HASH_SUFFIX_LEN AUDIT_HASH_SUFFIX_LEN

/* Everything below mu is under it. */
struct audit {
    int fd;
    pthread_mutex_t mu;
    char prev[65];    /* hash of the last record chained (queued or written) */
    char written[65]; /* hash of the last record written: the chain goes on from it if a
                       * queued batch cannot be written */
    int64_t seq;      /* number of the last record chained ("seq"), from 1 at the chain start */
    int64_t written_seq; /* ... and of the last one written */
    char writer[AUDIT_WRITER_LEN]; /* "" = records carry no writer; set before any record */
    EVP_MD *sha256;   /* fetched once (a one-shot SHA256() fetches it on every call) */
    EVP_MD_CTX *ctx;
    char *queue;      /* records chained but not yet written, in chain order */
    size_t queue_len, queue_cap;
    char *path;       /* the live file; rotated files are path.NNNNNN (audit.h) */
    long long size;   /* bytes in the live file */
    long long max_bytes; /* rotate once the live file reaches this; 0 = never */
    int keep;         /* rotated files kept; older ones are removed */
    long next_seq;    /* number of the next rotated file */
};

/* A loop thread's batching (audit_loop_attach): its flush event, active while it has queued
 * records. */
struct audit_loop {
    struct audit *a;
    struct event *flush;
};
static _Thread_local struct audit_loop *this_loop;


/* hash_hex with the log's own digest context (caller holds a->mu). */
static mv_rc digest_hex(struct audit *a, const char *p, size_t n, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    unsigned int dl = 0;
    if (!EVP_DigestInit_ex2(a->ctx, a->sha256, NULL) || !EVP_DigestUpdate(a->ctx, p, n) ||
        !EVP_DigestFinal_ex(a->ctx, d, &dl) || dl != sizeof d)
        return MV_ERR_INTERNAL;
    mv_hex(out, d, sizeof d);
    return MV_OK;
}

/* Where the chain of an existing log goes on: the hash and number of its newest record. Records
 * from before they were numbered are counted (verify.c counts them the same way). */
static mv_rc chain_end(const char *path, char hash[65], int64_t *seq)
{
    mv_rc rc = MV_OK;
    struct audit_last last;
    CHECK(audit_last_record(path, &last));
    memcpy(hash, last.hash, 65);
    *seq = last.seq;
    if (last.found && !last.seq) {
        struct audit_chain c;
        if (audit_scan(path, NULL, NULL, &c) != MV_OK)
            LOG_WARN("audit: %s does not verify (%s); numbering goes on from its line count",
                     path, mv_last_detail());
        *seq = c.last_pos ? c.last_pos : c.lines;
    }
out:
    return rc;
}

mv_rc audit_open(const char *path, struct audit **out)
{
    mv_rc rc = MV_OK;
    struct audit *a = calloc(1, sizeof *a);
    ENSURE(a != NULL, MV_ERR_INTERNAL);
    a->fd = -1;
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    a->ctx = EVP_MD_CTX_new();
    ENSURE_MSG(a->sha256 && a->ctx, MV_ERR_INTERNAL, "audit: no SHA-256");
    CHECK(chain_end(path, a->prev, &a->seq));
    memcpy(a->written, a->prev, sizeof a->written);
    a->written_seq = a->seq;
    a->path = strdup(path);
    ENSURE(a->path != NULL, MV_ERR_INTERNAL);
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    ENSURE_MSG(a->fd >= 0, MV_ERR_INTERNAL, "open %s: %s", path, strerror(errno));
    struct stat sb;
    a->size = fstat(a->fd, &sb) == 0 ? (long long)sb.st_size : 0;
    long seqs[AUDIT_MAX_ROTATED];
    size_t nrot = audit_rotated_files(path, seqs, AUDIT_MAX_ROTATED);
    a->next_seq = nrot ? seqs[nrot - 1] + 1 : 1;
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    a = NULL;
out:
    if (a) {
        EVP_MD_CTX_free(a->ctx);
        EVP_MD_free(a->sha256);
        free(a->path);
    }
    free(a);
    return rc;
}

void audit_set_rotation(struct audit *a, long long max_bytes, int keep)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->max_bytes = max_bytes > 0 ? max_bytes : 0;
    a->keep = keep > 0 ? keep : 1;
    pthread_mutex_unlock(&a->mu);
}

/* Moves the live file aside as PATH.NNNNNN and starts a new one (caller holds a->mu, queue
 * written). The chain goes on: the new file's first record links to the old file's last. Then
 * removes rotated files beyond `keep`. A failure leaves the live file growing (logged). */
static void rotate_locked(struct audit *a)
{
    char rp[PATH_MAX];
    if (audit_rotated_path(a->path, a->next_seq, rp, sizeof rp) != MV_OK)
        return;
    int fd = -1;
    if (rename(a->path, rp) != 0 ||
        (fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        LOG_ERROR("audit: cannot rotate %s: %s", a->path, strerror(errno));
        return;
    }
    /* The old file is on disk before it is let go: audit_head syncs only the live one. */
    if (fdatasync(a->fd) != 0)
        LOG_ERROR("audit: cannot sync %s: %s", rp, strerror(errno));
    close(a->fd);
    a->fd = fd;
    a->size = 0;
    a->next_seq++;
    long seqs[AUDIT_MAX_ROTATED];
    size_t n = audit_rotated_files(a->path, seqs, AUDIT_MAX_ROTATED);
    for (size_t i = 0; i + (size_t)a->keep < n; i++)
        if (audit_rotated_path(a->path, seqs[i], rp, sizeof rp) == MV_OK && unlink(rp) != 0)
            LOG_ERROR("audit: cannot remove %s: %s", rp, strerror(errno));
}

/* Accounts for n bytes written to the live file and rotates it when it is full. */
static void wrote_locked(struct audit *a, size_t n)
{
    a->size += (long long)n;
    if (a->max_bytes && a->size >= a->max_bytes)
        rotate_locked(a);
}

/* Writes the queue with one write(2) (caller holds a->mu). */
static void flush_locked(struct audit *a)
{
    if (a->queue_len == 0)
        return;
    ssize_t n = write(a->fd, a->queue, a->queue_len);
    if (n == (ssize_t)a->queue_len) {
        memcpy(a->written, a->prev, sizeof a->written);
        a->written_seq = a->seq;
        a->queue_len = 0;
        wrote_locked(a, (size_t)n);
        return;
    } else {
        /* The records are lost (logged); the next one chains to the last written one, so the
         * file stays a valid chain (unless the write was cut short, which verify reports). */
        LOG_ERROR("audit: write of %zu records' bytes failed (%zd): %s", a->queue_len, n,
                  n < 0 ? strerror(errno) : "short write");
        mv_metric_add(MV_M_AUDIT_FAILURES, NULL, NULL, (uint64_t)(a->seq - a->written_seq));
        memcpy(a->prev, a->written, sizeof a->prev);
        a->seq = a->written_seq;
    }
    a->queue_len = 0;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct audit *a = arg;
    pthread_mutex_lock(&a->mu);
    flush_locked(a);
    pthread_mutex_unlock(&a->mu);
}

mv_rc audit_loop_attach(struct audit *a, struct event_base *base)
{
    mv_rc rc = MV_OK;
    struct audit_loop *l = NULL;
    if (!a)
        goto out;
    ENSURE(this_loop == NULL && base != NULL, MV_ERR_INTERNAL);
    l = calloc(1, sizeof *l);
    ENSURE(l != NULL, MV_ERR_INTERNAL);
    l->a = a;
    /* Never added, only activated: it runs in the loop iteration that activated it. */
    l->flush = event_new(base, -1, 0, flush_cb, a);
    ENSURE_MSG(l->flush != NULL, MV_ERR_INTERNAL, "audit: event_new failed");
    this_loop = l;
    l = NULL;
out:
    free(l);
    return rc;
}

void audit_loop_detach(struct audit *a)
{
    struct audit_loop *l = this_loop;
    if (!l || l->a != a)
        return;
    this_loop = NULL;
    flush_cb(-1, 0, a);
    event_free(l->flush);
    free(l);
}

void audit_close(struct audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    flush_locked(a);
    pthread_mutex_unlock(&a->mu);
    free(a->queue);
    free(a->path);
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    EVP_MD_CTX_free(a->ctx);
    EVP_MD_free(a->sha256);
    free(a);
}

/* A bounded line being formatted; ok drops to 0 once something does not fit. */
/* A field name and its value (or "-"), escaped as jansson escapes; a byte that is not UTF-8
 * becomes \ufffd so that the record is still written (jansson refused such a record whole). */
static mv_rc put_field(mv_buf *l, const char *name, const char *value)
{
    mv_rc rc = MV_OK;
    if (!value)
        value = "-";
    CHECK(mv_buf_adds(l, name));
    CHECK(jsonw_str(l, value, strlen(value), JSONW_REPLACE));
out:
    return rc;
}

/* Writes ,"seq":N,"prev":"<64 hex>" at dst (at most SEQ_PREV_MAX + 65 bytes); returns its
 * length. By hand: it runs under the lock, once per record. */
static size_t put_seq_prev(char *dst, int64_t seq, const char prev[65])
{
    char digits[20];
    size_t nd = 0, n = 0;
    uint64_t v = seq > 0 ? (uint64_t)seq : 0;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && nd < sizeof digits);
    memcpy(dst, ",\"seq\":", 7);
    n = 7;
    while (nd)
        dst[n++] = digits[--nd];
    memcpy(dst + n, ",\"prev\":\"", 9);
    n += 9;
    memcpy(dst + n, prev, 64);
    n += 64;
    dst[n++] = '"';
    return n;
}

mv_rc audit_set_writer(struct audit *a, const char *writer)
{
    if (!a)
        return MV_OK;
    if (!writer || !mv_is_uuid(writer)) {
        mv_fail(MV_ERR_BAD_REQUEST, "audit: a writer id is a UUID");
        return MV_ERR_BAD_REQUEST;
    }
    pthread_mutex_lock(&a->mu);
    memcpy(a->writer, writer, strlen(writer) + 1);
    pthread_mutex_unlock(&a->mu);
    return MV_OK;
}

mv_rc audit_head(struct audit *a, int64_t *records, char hash[65])
{
    pthread_mutex_lock(&a->mu);
    flush_locked(a);
    *records = a->written_seq;
    memcpy(hash, a->written, 65);
    int fd = dup(a->fd); /* synced outside the lock: rotation may replace a->fd meanwhile */
    pthread_mutex_unlock(&a->mu);
    mv_rc rc = MV_OK;
    if (fd < 0 || fdatasync(fd) != 0) {
        rc = MV_ERR_INTERNAL;
        mv_fail(rc, "audit: cannot sync %s: %s", a->path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

void audit_record(struct audit *a, const char *plane, const char *principal, const char *action,
                  const char *scope, int status, const char *request_id)
{
    if (!a)
        return;
    /* The record up to "seq" is formatted outside the lock; the chain part (seq, prev, hash,
     * the write) under it. Field order and escaping as the jansson-built lines had. */
    char buf[AUDIT_MAX_LINE + HASH_SUFFIX_LEN + 2];
    mv_buf l;
    mv_buf_init(&l, AUDIT_MAX_LINE - SEQ_PREV_MAX - 64 - 2); /* room kept for the chain part */
    mv_rc rc = MV_OK;
    CHECK(mv_buf_add(&l, "{\"time\":", 8));
    CHECK(jsonw_int(&l, (long long)mv_now()));
    CHECK(put_field(&l, ",\"plane\":", plane));
    CHECK(put_field(&l, ",\"principal\":", principal));
    CHECK(put_field(&l, ",\"action\":", action));
    CHECK(put_field(&l, ",\"scope\":", scope));
    CHECK(mv_buf_adds(&l, ",\"status\":"));
    CHECK(jsonw_int(&l, status));
    CHECK(put_field(&l, ",\"requestId\":", request_id));
    if (a->writer[0])
        CHECK(put_field(&l, ",\"writer\":", a->writer));
out:
    if (rc != MV_OK) {
        mv_buf_free(&l);
        LOG_ERROR("audit: cannot format a record");
        mv_metric_inc(MV_M_AUDIT_FAILURES, NULL, NULL);
        return;
    }
    memcpy(buf, l.p, l.len);
    size_t head = l.len;
    mv_buf_free(&l);
    struct audit_loop *loop = this_loop && this_loop->a == a ? this_loop : NULL;
    char h[65];
    pthread_mutex_lock(&a->mu);
    int64_t seq = a->seq + 1;
    size_t n = head + put_seq_prev(buf + head, seq, a->prev); /* what the hash covers */
    size_t total = n + HASH_SUFFIX_LEN + 1;
    if (digest_hex(a, buf, n, h) != MV_OK) {
        LOG_ERROR("audit: cannot hash a record");
        goto unlock;
    }
    memcpy(buf + n, ",\"hash\":\"", 9);
    memcpy(buf + n + 9, h, 64);
    memcpy(buf + n + 73, "\"}\n", 3);
    if (a->queue_cap - a->queue_len < total) {
        size_t cap = a->queue_cap ? a->queue_cap : 8192;
        while (cap - a->queue_len < total)
            cap *= 2;
        char *q = realloc(a->queue, cap);
        if (!q) {
            flush_locked(a); /* keep the order; this one is written alone */
            if (write(a->fd, buf, total) == (ssize_t)total) {
                memcpy(a->prev, h, sizeof h);
                memcpy(a->written, h, sizeof h);
                a->seq = a->written_seq = seq;
                wrote_locked(a, total);
            } else {
                LOG_ERROR("audit: write failed: %s", strerror(errno));
            }
            goto unlock;
        }
        a->queue = q;
        a->queue_cap = cap;
    }
    memcpy(a->queue + a->queue_len, buf, total);
    a->queue_len += total;
    memcpy(a->prev, h, sizeof h);
    a->seq = seq;
    if (!loop || a->queue_len >= AUDIT_QUEUE_MAX)
        flush_locked(a);
unlock:
    pthread_mutex_unlock(&a->mu);
    if (loop)
        event_active(loop->flush, EV_TIMEOUT, 1);
}
