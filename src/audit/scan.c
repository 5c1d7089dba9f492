/* scan.c: reading a log's chain back (internal.h): audit_scan verifies every record of the
 * rotated files and the live one, oldest first, and tells a caller each record's position in
 * its writer's chain (what checkpoints pin, verify.c); audit_last_record finds where the chain
 * goes on when a log is reopened (audit.c).
 *
 * A record is one line: a JSON object whose text ends in ,"hash":"<hex>"}, the hash being the
 * SHA-256 of the text before that suffix (audit.c); a keyed record has ,"mac":"<hex>" just
 * before it, the HMAC-SHA256 under the audit key of the text before that. Lines may be of any
 * length here. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/internal.h"
#include "common/util.h"

static const char ZEROS[65] = "0000000000000000000000000000000000000000000000000000000000000000";

size_t audit_rotated_files(const char *path, long *seqs, size_t cap)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dl = slash ? (size_t)(slash - path) : 1;
    if (dl >= sizeof dir)
        return 0;
    memcpy(dir, slash ? path : ".", dl);
    dir[dl] = '\0';
    if (dl == 0) {
        dir[0] = '/';
        dir[1] = '\0';
    }
    size_t bl = strlen(base), n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, bl) != 0 || e->d_name[bl] != '.')
            continue;
        const char *num = e->d_name + bl + 1;
        int64_t v;
        if (strlen(num) != 6 || mv_parse_i64(num, &v) != MV_OK || v < 1)
            continue;
        if (n < cap)
            seqs[n] = (long)v;
        n++;
    }
    closedir(d);
    size_t m = n < cap ? n : cap;
    for (size_t i = 1; i < m; i++) /* few files: insertion sort */
        for (size_t j = i; j > 0 && seqs[j - 1] > seqs[j]; j--) {
            long t = seqs[j];
            seqs[j] = seqs[j - 1];
            seqs[j - 1] = t;
        }
    return m;
}

mv_rc audit_rotated_path(const char *path, long seq, char *out, size_t len)
{
    int n = snprintf(out, len, "%s.%06ld", path, seq);
    return n > 0 && (size_t)n < len ? MV_OK : MV_ERR_INTERNAL;
}

/* The fields of a record audit_last_record reports, from its line (n bytes, no '\n'). */
static void last_fields(const char *line, size_t n, struct audit_last *out)
{
    memcpy(out->hash, line + n - 66, 64);
    out->hash[64] = '\0';
    out->seq = 0;
    out->writer[0] = '\0';
    json_t *o = json_loadb(line, n, 0, NULL);
    json_t *s = json_object_get(o, "seq");
    const char *w = json_string_value(json_object_get(o, "writer"));
    if (json_is_integer(s) && json_integer_value(s) > 0)
        out->seq = (int64_t)json_integer_value(s);
    if (w && strlen(w) < sizeof out->writer)
        memcpy(out->writer, w, strlen(w) + 1);
    json_decref(o);
    out->found = 1;
}

static mv_rc file_last_record(const char *path, struct audit_last *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? MV_OK : MV_ERR_INTERNAL;
    char *line = NULL, *keep = NULL;
    size_t cap = 0, keep_n = 0;
    ssize_t r;
    while ((r = getline(&line, &cap, f)) > 0) {
        size_t n = (size_t)r;
        if (line[n - 1] == '\n')
            n--;
        if (n > AUDIT_HASH_SUFFIX_LEN) { /* keep the last full line; getline allocates anew */
            free(keep);
            keep = line;
            keep_n = n;
            line = NULL;
            cap = 0;
        }
    }
    if (keep)
        last_fields(keep, keep_n, out);
    free(keep);
    free(line);
    fclose(f);
    return MV_OK;
}

mv_rc audit_last_record(const char *path, struct audit_last *out)
{
    mv_rc rc = MV_OK;
    memset(out, 0, sizeof *out);
    memcpy(out->hash, ZEROS, sizeof out->hash);
    CHECK(file_last_record(path, out));
    if (!out->found) {
        long seqs[AUDIT_MAX_ROTATED];
        size_t n = audit_rotated_files(path, seqs, AUDIT_MAX_ROTATED);
        char rp[PATH_MAX];
        if (n) {
            CHECK(audit_rotated_path(path, seqs[n - 1], rp, sizeof rp));
            CHECK(file_last_record(rp, out));
        }
    }
out:
    return rc;
}

struct scan {
    const unsigned char *key; /* the audit key: check every "mac"; NULL = macs not checked */
    audit_scan_fn fn;
    void *arg;
    struct audit_chain *out;
    char prev[65];
    int known;   /* pos is the position of the last record read (0: before the first) */
    int64_t pos;
};

/* One record (line of n bytes, '\n' removed). first: the oldest kept record; anchored: its
 * prev is taken as given (older files were removed). */
static mv_rc scan_line(struct scan *s, char *line, size_t n, int first, int anchored,
                       const char *path, long here)
{
    mv_rc rc = MV_OK;
    json_t *o = json_loadb(line, n, 0, NULL);
    const char *p = json_string_value(json_object_get(o, "prev"));
    const char *hs = json_string_value(json_object_get(o, "hash"));
    json_t *seq = json_object_get(o, "seq");
    json_t *writer = json_object_get(o, "writer");
    char h[65];
    int ok = p && hs && strlen(p) == 64 && (strcmp(p, s->prev) == 0 || (first && anchored)) &&
             n > AUDIT_HASH_SUFFIX_LEN &&
             strncmp(line + n - AUDIT_HASH_SUFFIX_LEN, ",\"hash\":\"", 9) == 0;
    if (ok) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)line, n - AUDIT_HASH_SUFFIX_LEN, d);
        mv_hex(h, d, sizeof d);
        ok = strcmp(h, hs) == 0;
    }
    ENSURE_MSG(ok, MV_ERR_CONFLICT, "chain broken at line %ld of %s", here, path);
    json_t *mac = json_object_get(o, "mac");
    if (mac) {
        s->out->keyed = 1;
        if (s->key) {
            const char *m = json_string_value(mac);
            size_t body = n - AUDIT_HASH_SUFFIX_LEN; /* what the hash covers */
            unsigned char d[SHA256_DIGEST_LENGTH];
            unsigned int dl = 0;
            char want[65];
            ok = m && strlen(m) == 64 && body > AUDIT_MAC_LEN &&
                 strncmp(line + body - AUDIT_MAC_LEN, ",\"mac\":\"", 8) == 0 &&
                 HMAC(EVP_sha256(), s->key, 32, (const unsigned char *)line, body - AUDIT_MAC_LEN,
                      d, &dl) != NULL &&
                 dl == sizeof d;
            if (ok) {
                mv_hex(want, d, sizeof d);
                ok = CRYPTO_memcmp(want, m, 64) == 0;
            }
            ENSURE_MSG(ok, MV_ERR_CONFLICT,
                       "record at line %ld of %s has a wrong mac (changed, or its chain was "
                       "recomputed without the audit key)", here, path);
            s->out->macs++;
        }
    } else {
        ENSURE_MSG(!s->out->keyed, MV_ERR_CONFLICT,
                   "record at line %ld of %s has no mac, after records that had one", here, path);
    }
    if (first && !anchored)
        s->known = 1; /* the chain starts here: position 0 before it */
    if (seq) {
        ENSURE_MSG(json_is_integer(seq) && json_integer_value(seq) > 0 &&
                       (!s->known || json_integer_value(seq) == s->pos + 1),
                   MV_ERR_CONFLICT, "record number out of order at line %ld of %s", here, path);
        if (first && anchored && s->fn && json_integer_value(seq) > 1)
            CHECK(s->fn(s->arg, (int64_t)json_integer_value(seq) - 1, p));
        s->pos = (int64_t)json_integer_value(seq);
        s->known = 1;
    } else if (s->known) {
        s->pos++;
    }
    if (writer) {
        const char *w = json_string_value(writer);
        ENSURE_MSG(w && strlen(w) < sizeof s->out->writer, MV_ERR_CONFLICT,
                   "bad writer at line %ld of %s", here, path);
        if (!s->out->writer[0])
            memcpy(s->out->writer, w, strlen(w) + 1);
        ENSURE_MSG(strcmp(w, s->out->writer) == 0, MV_ERR_CONFLICT,
                   "line %ld of %s is from writer %s, the log's earlier records from %s", here, path,
                   w, s->out->writer);
    }
    if (s->known) {
        if (!s->out->first_pos)
            s->out->first_pos = s->pos;
        s->out->last_pos = s->pos;
        if (s->fn)
            CHECK(s->fn(s->arg, s->pos, h));
    } else {
        s->out->last_pos = 0;
    }
    memcpy(s->prev, h, sizeof h);
    memcpy(s->out->last_hash, h, sizeof h);
    s->out->lines++;
out:
    json_decref(o);
    return rc;
}

static mv_rc scan_file(struct scan *s, const char *path, int anchored)
{
    mv_rc rc = MV_OK;
    char *line = NULL;
    size_t cap = 0;
    ssize_t r;
    long here = 0;
    FILE *f = fopen(path, "rb");
    ENSURE_MSG(f != NULL, MV_ERR_NOT_FOUND, "open %s: %s", path, strerror(errno));
    while ((r = getline(&line, &cap, f)) > 0) {
        size_t n = (size_t)r;
        here++;
        ENSURE_MSG(line[n - 1] == '\n', MV_ERR_CONFLICT, "%s: line %ld is cut", path, here);
        line[--n] = '\0';
        CHECK(scan_line(s, line, n, s->out->lines == 0, anchored, path, here));
    }
out:
    free(line);
    if (f)
        fclose(f);
    return rc;
}

mv_rc audit_scan(const char *path, audit_scan_fn fn, void *arg, struct audit_chain *out)
{
    return audit_scan_keyed(path, NULL, fn, arg, out);
}

mv_rc audit_scan_keyed(const char *path, const unsigned char *key, audit_scan_fn fn, void *arg,
                       struct audit_chain *out)
{
    mv_rc rc = MV_OK;
    struct scan s = {.key = key, .fn = fn, .arg = arg, .out = out};
    char rp[PATH_MAX];
    memset(out, 0, sizeof *out);
    memcpy(s.prev, ZEROS, sizeof s.prev);
    memcpy(out->last_hash, ZEROS, sizeof out->last_hash);
    long seqs[AUDIT_MAX_ROTATED];
    size_t n = audit_rotated_files(path, seqs, AUDIT_MAX_ROTATED);
    /* Oldest first; rotated files are numbered without gaps, so a missing middle file is a
     * broken chain. Only when file 1 is gone (removed by rotation) is the oldest kept record's
     * prev an anchor rather than the all-zero start. */
    for (size_t i = 0; i < n; i++) {
        ENSURE_MSG(i == 0 || seqs[i] == seqs[i - 1] + 1, MV_ERR_CONFLICT,
                   "rotated file %s.%06ld is missing", path, seqs[i - 1] + 1);
        CHECK(audit_rotated_path(path, seqs[i], rp, sizeof rp));
        CHECK(scan_file(&s, rp, seqs[0] > 1));
    }
    struct stat sb;
    if (n == 0 || stat(path, &sb) == 0)
        CHECK(scan_file(&s, path, n > 0 && seqs[0] > 1));
out:
    return rc;
}

mv_rc audit_verify(const char *path, long *lines)
{
    struct audit_chain c;
    mv_rc rc = audit_scan(path, NULL, NULL, &c);
    *lines = c.lines;
    return rc;
}
