/* test_audit.c: the hash-chained audit log (src/audit/audit.c): each record is one line of
 * valid JSON with its fields in order and escaped as jansson would (the line formatted by
 * hand must equal jansson's compact dump of the same object), the chain verifies, continues
 * across a reopen, and breaks on an edit, a removed line or a reordering; a field that is
 * not UTF-8 still gives a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>

#include "audit/audit.h"
#include "common/result.h"
#include "store/store.h"

struct fx {
    char dir[64];
    char path[96];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mv-audit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/audit.log", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    unlink(f->path);
    for (int i = 1; i < 1000; i++) { /* rotated files */
        char p[600];
        snprintf(p, sizeof p, "%s.%06d", f->path, i);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The file's lines (without '\n'), NULL-terminated; free with free_lines. */
static char **read_lines(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char **v = calloc(1024, sizeof *v);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t r;
    *n = 0;
    while ((r = getline(&buf, &cap, fp)) > 0) {
        size_t l = (size_t)r;
        assert_true(buf[l - 1] == '\n');
        buf[l - 1] = '\0';
        assert_true(*n < 1023);
        v[(*n)++] = strdup(buf);
    }
    free(buf);
    fclose(fp);
    return v;
}

static void free_lines(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

static void write_lines(const char *path, char **v, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s\n", v[i]);
    fclose(fp);
}

/* The line as jansson's compact dump of {time..prev} plus the hash suffix. */
static void assert_jansson_shape(const char *line)
{
    json_error_t e;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &e);
    assert_non_null(o);
    json_t *h = json_incref(json_object_get(o, "hash"));
    assert_true(json_is_string(h));
    assert_int_equal(json_object_del(o, "hash"), 0);
    char *dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(dump);
    size_t n = strlen(dump);
    assert_true(strncmp(line, dump, n - 1) == 0); /* same bytes up to the closing brace */
    char suffix[128];
    snprintf(suffix, sizeof suffix, ",\"hash\":\"%s\"}", json_string_value(h));
    assert_string_equal(line + n - 1, suffix);
    const char *keys[] = {"time", "plane", "principal", "action", "scope", "status", "requestId",
                          "writer", "seq", "prev"};
    size_t i = 0, nk = json_object_get(o, "writer") ? 10 : 9;
    const char *k;
    json_t *val;
    json_object_foreach(o, k, val) {
        assert_true(i < 10);
        if (nk == 9 && i == 7)
            i++; /* no writer set: no "writer" field */
        assert_string_equal(k, keys[i++]);
    }
    assert_int_equal(i, 10);
    free(dump);
    json_decref(h);
    json_decref(o);
}

static void records_and_chain(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_record(a, "vault", "aaaaaaaa-0000-4000-8000-000000000001",
                 "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                 "/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/dev/secrets/x",
                 200, "0f0e0d0c-0000-4000-8000-000000000001");
    audit_record(a, "arm", NULL, NULL, NULL, 403, NULL);
    /* everything that must be escaped, and non-ASCII text */
    audit_record(a, "vault", "q\"uote\\back/slash", "tab\tnl\ncr\rbs\bff\f\x01\x1f\x7f",
                 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", -1, "x");
    audit_close(a);

    size_t n = 0;
    char **v = read_lines(f->path, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_jansson_shape(v[i]);
    json_t *o = json_loads(v[0], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "plane")), "vault");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
    assert_true(json_integer_value(json_object_get(o, "time")) > 1700000000);
    assert_string_equal(json_string_value(json_object_get(o, "prev")),
                        "0000000000000000000000000000000000000000000000000000000000000000");
    json_decref(o);
    o = json_loads(v[1], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "principal")), "-");
    assert_string_equal(json_string_value(json_object_get(o, "requestId")), "-");
    json_decref(o);
    o = json_loads(v[2], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "principal")), "q\"uote\\back/slash");
    assert_string_equal(json_string_value(json_object_get(o, "action")),
                        "tab\tnl\ncr\rbs\bff\f\x01\x1f\x7f");
    assert_string_equal(json_string_value(json_object_get(o, "scope")),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), -1);
    json_decref(o);
    assert_non_null(strstr(v[2], "\\u0001\\u001F\x7f")); /* jansson's spelling */

    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 3);

    /* a reopened log continues the chain */
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_record(a, "vault", "p", "a", "s", 201, "r");
    audit_close(a);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 4);
    free_lines(v);
}

#define WRITER "0a1b2c3d-0000-4000-8000-00000000abcd"

/* Records carry the writer id and their number in the chain ("seq", from 1, going on across a
 * reopen); audit_head reports the number and hash of the last record written. */
static void writer_seq_and_head(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    int64_t records = -1;
    char head[65];
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    assert_int_equal(audit_set_writer(a, "nope"), MV_ERR_BAD_REQUEST);
    assert_int_equal(audit_set_writer(a, WRITER), MV_OK);
    assert_int_equal(audit_head(a, &records, head), MV_OK);
    assert_int_equal(records, 0);
    audit_record(a, "arm", "p", "a", "s", 200, "r");
    audit_record(a, "arm", "p", "a", "s", 201, "r");
    assert_int_equal(audit_head(a, &records, head), MV_OK);
    assert_int_equal(records, 2);
    audit_close(a);
    assert_int_equal(audit_open(f->path, &a), MV_OK); /* numbering goes on after a reopen */
    assert_int_equal(audit_set_writer(a, WRITER), MV_OK);
    audit_record(a, "arm", "p", "a", "s", 202, "r");
    assert_int_equal(audit_head(a, &records, head), MV_OK);
    assert_int_equal(records, 3);
    audit_close(a);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_jansson_shape(v[i]);
        json_t *o = json_loads(v[i], 0, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "writer")), WRITER);
        assert_int_equal(json_integer_value(json_object_get(o, "seq")), (json_int_t)i + 1);
        if (i == 2)
            assert_string_equal(json_string_value(json_object_get(o, "hash")), head);
        json_decref(o);
    }
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 3);
    free_lines(v);
}

/* A log written before records carried "seq" and "writer" still verifies, and a reopened one
 * numbers its next record after the old ones. */
static void old_records_without_seq(void **state)
{
    struct fx *f = *state;
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    for (int i = 0; i < 2; i++) { /* the old shape: ... "requestId", "prev", "hash" */
        char body[256], h[65];
        snprintf(body, sizeof body,
                 "{\"time\":1,\"plane\":\"arm\",\"principal\":\"p\",\"action\":\"a\","
                 "\"scope\":\"s\",\"status\":200,\"requestId\":\"r\",\"prev\":\"%s\"",
                 prev);
        unsigned char d[32];
        SHA256((const unsigned char *)body, strlen(body), d);
        for (int j = 0; j < 32; j++)
            snprintf(h + 2 * j, 3, "%02x", d[j]);
        fprintf(fp, "%s,\"hash\":\"%s\"}\n", body, h);
        memcpy(prev, h, sizeof prev);
    }
    fclose(fp);
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 2);
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_record(a, "arm", "p", "a", "s", 200, "r");
    audit_close(a);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    json_t *o = json_loads(v[2], 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 3);
    json_decref(o);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 3);
    free_lines(v);
}

static void not_utf8_still_recorded(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    /* a lone continuation byte, an overlong '/', a surrogate, a cut sequence */
    audit_record(a, "arm", "p", "a", "/x\x80y\xc0\xafz\xed\xa0\x80w\xe2\x82", 400, "r");
    audit_close(a);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    assert_int_equal(n, 1);
    json_t *o = json_loads(v[0], 0, NULL);
    assert_non_null(o);
    const char *scope = json_string_value(json_object_get(o, "scope"));
    assert_non_null(scope);
    assert_non_null(strstr(scope, "/x\xef\xbf\xbdy")); /* U+FFFD */
    assert_null(strchr(scope, '\x80'));
    json_decref(o);
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 1);
    free_lines(v);
}


/* Issue 8 point 13: a field copied from the request (an ARM path of thousands of characters,
 * before any authentication) is bounded: the record is still written, verifies, and says it was
 * cut; a cut never splits a UTF-8 character. */
static void long_fields_bounded(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    size_t big = 3900;
    char *scope = malloc(big + 1), *ctl = malloc(5001), *utf = malloc(3001);
    assert_non_null(scope);
    assert_non_null(ctl);
    assert_non_null(utf);
    memset(scope, 'a', big);
    scope[0] = '/';
    scope[big] = '\0';
    memset(ctl, '\x01', 5000); /* escaped as \u0001: 6 bytes each */
    ctl[5000] = '\0';
    for (size_t i = 0; i < 3000; i += 2) { /* é, two bytes, with the cut inside one */
        utf[i] = '\xc3';
        utf[i + 1] = '\xa9';
    }
    utf[3000] = '\0';
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_record(a, "arm", "-", "read", scope, 401, "r");
    audit_record(a, "arm", ctl, ctl, ctl, 401, ctl);
    assert_int_equal(audit_record_now(a, "vault", "-", "-", utf + 1, 404, "r"), MV_OK);
    audit_close(a);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    assert_int_equal(n, 3);
    json_t *o = json_loads(v[0], 0, NULL);
    assert_non_null(o);
    const char *sc = json_string_value(json_object_get(o, "scope"));
    assert_int_equal(strlen(sc), AUDIT_FIELD_MAX + strlen(AUDIT_TRUNCATED));
    assert_int_equal(strncmp(sc, scope, AUDIT_FIELD_MAX), 0);
    assert_string_equal(sc + AUDIT_FIELD_MAX, AUDIT_TRUNCATED);
    json_decref(o);
    o = json_loads(v[2], 0, NULL);
    assert_non_null(o);
    sc = json_string_value(json_object_get(o, "scope")); /* starts mid-character: one U+FFFD */
    assert_non_null(strstr(sc, AUDIT_TRUNCATED));
    const char *first = strstr(sc, "\xef\xbf\xbd");
    assert_non_null(first);
    assert_null(strstr(first + 3, "\xef\xbf\xbd")); /* the cut at the end split nothing */
    json_decref(o);
    for (size_t i = 0; i < n; i++)
        assert_true(strlen(v[i]) < 4 * AUDIT_FIELD_MAX * 6 + 512);
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 3);
    free_lines(v);
    free(scope);
    free(ctl);
    free(utf);
}

/* audit verify reads lines of any length (not a fixed line buffer): a 100 KB record, hashed
 * by hand, verifies. */
static void verify_reads_any_length(void **state)
{
    struct fx *f = *state;
    size_t big = 100000;
    char *line = malloc(big + 512);
    assert_non_null(line);
    int k = snprintf(line, 512, "{\"time\":1,\"plane\":\"arm\",\"principal\":\"-\",\"action\":\"a\","
                     "\"scope\":\"");
    memset(line + k, 'x', big);
    k += (int)big;
    k += snprintf(line + k, big + 512 - (size_t)k, "\",\"status\":401,\"requestId\":\"r\",\"seq\":1,\"prev\":\"%064d\"",
                  0);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)line, (size_t)k, d);
    k += snprintf(line + k, big + 512 - (size_t)k, ",\"hash\":\"");
    for (size_t i = 0; i < sizeof d; i++)
        k += snprintf(line + k, big + 512 - (size_t)k, "%02x", d[i]);
    k += snprintf(line + k, big + 512 - (size_t)k, "\"}\n");
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(line, 1, (size_t)k, fp), (size_t)k);
    fclose(fp);
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 1);
    free(line);
}

/* Issue 8 point 12: a record that cannot be written whole (here RLIMIT_FSIZE; in production a
 * full disk) is not written at all: audit_record_now says so (the vault then answers 503), the
 * bytes of a short write are truncated back, and once writing works again the chain goes on
 * from the last whole record and verifies. */
static void short_write_truncated_back(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    assert_int_equal(audit_set_writer(a, WRITER), MV_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(audit_record_now(a, "vault", "p", "a", "s", 200, "r"), MV_OK);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size + 100; /* room for part of one record */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_int_equal(audit_record_now(a, "vault", "p", "a", "s", 200, "r"), MV_ERR_UNAVAILABLE);
    audit_record(a, "vault", "p", "a", "s", 200, "r"); /* batched (no loop): lost, logged */
    assert_int_equal(audit_record_now(a, "vault", "p", "a", "s", 200, "r"), MV_ERR_UNAVAILABLE);
    struct stat after;
    assert_int_equal(stat(f->path, &after), 0);
    assert_int_equal(after.st_size, sb.st_size); /* the short write was cut back */
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 3);
    int64_t records = 0;
    char head[65];
    assert_int_equal(audit_head(a, &records, head), MV_OK);
    assert_int_equal(records, 3);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(audit_record_now(a, "vault", "p", "a", "s", 201, "r"), MV_OK);
    audit_close(a);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 4);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    json_t *o = json_loads(v[3], 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 4); /* no gap */
    json_decref(o);
    free_lines(v);
}

/* A log that ends in a partial record (a process killed mid-write) is cut back to its last
 * whole record when it is opened again, so the chain goes on and verifies after a restart. */
static void partial_tail_cut_at_open(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    for (int i = 0; i < 2; i++)
        audit_record(a, "vault", "p", "a", "s", 200, "r");
    audit_close(a);
    FILE *fp = fopen(f->path, "ab");
    assert_non_null(fp);
    fputs("{\"time\":1796526619,\"plane\":\"va", fp);
    fclose(fp);
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_ERR_CONFLICT);
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_record(a, "vault", "p", "a", "s", 200, "r");
    audit_close(a);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 3);

    /* a tail longer than any record is not a partial record: never cut */
    fp = fopen(f->path, "ab");
    assert_non_null(fp);
    for (int i = 0; i < 200000; i++)
        fputc('x', fp);
    fclose(fp);
    struct stat before, after;
    assert_int_equal(stat(f->path, &before), 0);
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_close(a);
    assert_int_equal(stat(f->path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
}

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcde";

/* Issue 8 point 14: the writer's head in the store anchors the chain's tail. A log cut at a
 * line boundary (a shorter chain, intact in itself) FAILS to verify when the store's head is
 * newer than its last record; a head whose mac was not made with the audit key fails; records
 * carry a mac that a chain recomputed without the key cannot reproduce. */
static void truncated_tail_fails_against_the_head(void **state)
{
    struct fx *f = *state;
    char db[128];
    snprintf(db, sizeof db, "%s/mivault.db", f->dir);
    struct store *st = NULL;
    assert_int_equal(store_open(db, &st), MV_OK);
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    assert_int_equal(audit_set_writer(a, WRITER), MV_OK);
    assert_int_equal(audit_set_key(a, KEY), MV_OK);
    for (int i = 0; i < 5; i++)
        audit_record(a, "vault", "p", "a", "s", 200 + i, "r");
    struct st_audit_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.writer, WRITER, sizeof WRITER);
    assert_int_equal(audit_head(a, &h.records, h.head_hash), MV_OK);
    assert_int_equal(h.records, 5);
    assert_int_equal(audit_head_mac(KEY, WRITER, h.records, h.head_hash, h.mac), MV_OK);
    h.at = 1;
    assert_int_equal(store_audit_head_put(st, &h), MV_OK);
    audit_close(a);

    struct audit_log_src src = {.path = f->path, .writer = WRITER};
    json_t *rep = NULL;
    assert_int_equal(audit_verify_all(st, &src, 1, KEY, &rep), MV_OK);
    json_t *w = json_array_get(json_object_get(rep, "writers"), 0);
    assert_true(json_is_true(json_object_get(w, "headChecked")));
    assert_int_equal(json_integer_value(json_object_get(w, "macsChecked")), 5);
    json_decref(rep);
    rep = NULL;
    /* the wrong key: every mac fails */
    static const unsigned char OTHER[32] = "another key, not the audit one";
    assert_int_equal(audit_verify_all(st, &src, 1, OTHER, &rep), MV_ERR_CONFLICT);

    /* the last record cut at its line boundary: its own chain verifies, the anchored one not */
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    assert_int_equal(n, 5);
    write_lines(f->path, v, n - 1);
    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(audit_verify_all(st, &src, 1, KEY, &rep), MV_ERR_CONFLICT);
    assert_null(rep);
    assert_non_null(strstr(mv_last_detail(), "cut at its tail"));

    /* a head never goes back: an older one put over it changes nothing, the cut still shows */
    h.records = 4;
    assert_int_equal(audit_head_mac(KEY, WRITER, 4, h.head_hash, h.mac), MV_OK);
    assert_int_equal(store_audit_head_put(st, &h), MV_OK);
    assert_int_equal(audit_verify_all(st, &src, 1, KEY, &rep), MV_ERR_CONFLICT);
    write_lines(f->path, v, n);
    assert_int_equal(audit_verify_all(st, &src, 1, KEY, &rep), MV_OK);
    json_decref(rep);
    free_lines(v);
    store_close(st);
    char p[160];
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
    unlink(db);
}

/* Cuts the last `cut` bytes off the file at path. */
static void truncate_by(const char *path, off_t cut)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > cut);
    assert_int_equal(truncate(path, sb.st_size - cut), 0);
}

static void chain_breaks(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    for (int i = 0; i < 5; i++)
        audit_record(a, "vault", "p", "a", "s", 200 + i, "r");
    audit_close(a);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    assert_int_equal(n, 5);
    long lines = 0;

    char *saved = strdup(v[2]); /* an edited field */
    char *st = strstr(v[2], "\"status\":202");
    assert_non_null(st);
    st[10] = '3';
    write_lines(f->path, v, n);
    assert_int_equal(audit_verify(f->path, &lines), MV_ERR_CONFLICT);
    free(v[2]);
    v[2] = saved;

    /* A log cut inside its last record (a torn or truncated tail) must not verify. A cut at a
     * line boundary leaves a shorter chain that is intact in itself: only the anchor kept in the
     * store (the writer's head) tells it from a log that simply ended there; see
     * truncated_tail_fails_against_the_head. */
    write_lines(f->path, v, n);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 5);
    truncate_by(f->path, 20);
    assert_int_equal(audit_verify(f->path, &lines), MV_ERR_CONFLICT);

    char *tmp = v[1]; /* a middle line removed */
    v[1] = v[2];
    v[2] = v[3];
    v[3] = v[4];
    write_lines(f->path, v, n - 1);
    assert_int_equal(audit_verify(f->path, &lines), MV_ERR_CONFLICT);
    v[4] = v[3];
    v[3] = v[2];
    v[2] = tmp; /* now 0,2,1,3,4: reordered */
    write_lines(f->path, v, n);
    assert_int_equal(audit_verify(f->path, &lines), MV_ERR_CONFLICT);
    free_lines(v);
}

static size_t count_lines(const char *path)
{
    size_t n = 0;
    char **v = read_lines(path, &n);
    free_lines(v);
    return n;
}

struct other_thread {
    struct audit *a;
    int n;
};

static void *record_from_thread(void *arg)
{
    struct other_thread *t = arg;
    for (int i = 0; i < t->n; i++)
        audit_record(t->a, "arm", "other", "a", "s", 300 + i, "r"); /* no loop here: at once */
    return NULL;
}

/* Records made on a loop thread are written when the loop has run its due callbacks, before
 * it waits again; records of a thread without a loop are written at once, after what was
 * queued (chain order = file order); detach and close write what is left. */
static void batching_on_a_loop(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(audit_loop_attach(NULL, base), MV_OK); /* no log: nothing to do */
    assert_int_equal(audit_loop_attach(a, base), MV_OK);
    assert_int_equal(audit_loop_attach(a, base), MV_ERR_INTERNAL); /* once per thread */

    for (int i = 0; i < 3; i++)
        audit_record(a, "vault", "p", "a", "s", 200 + i, "r");
    assert_int_equal(count_lines(f->path), 0); /* queued */
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0); /* 1: nothing left to run */
    assert_int_equal(count_lines(f->path), 3); /* one loop iteration: written */

    audit_record(a, "vault", "p", "a", "s", 210, "r");
    pthread_t th;
    struct other_thread t = {a, 2};
    assert_int_equal(pthread_create(&th, NULL, record_from_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(count_lines(f->path), 6); /* the queued one first, then the thread's two */

    audit_record(a, "vault", "p", "a", "s", 220, "r");
    audit_loop_detach(a); /* writes the queue */
    assert_int_equal(count_lines(f->path), 7);
    audit_record(a, "vault", "p", "a", "s", 230, "r"); /* detached: at once */
    assert_int_equal(count_lines(f->path), 8);

    assert_int_equal(audit_loop_attach(a, base), MV_OK);
    audit_record(a, "vault", "p", "a", "s", 240, "r");
    audit_loop_detach(NULL); /* not this log's: ignored, still queued */
    assert_int_equal(count_lines(f->path), 8);
    audit_loop_detach(a);
    audit_close(a);
    assert_int_equal(count_lines(f->path), 9);
    event_base_free(base);

    long lines = 0;
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 9);
    size_t n = 0;
    char **v = read_lines(f->path, &n);
    int want[] = {200, 201, 202, 210, 300, 301, 220, 230, 240};
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_loads(v[i], 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(o, "status")), want[i]);
        json_decref(o);
    }
    free_lines(v);
}


static int rotated_count(const char *dir)
{
    int n = 0;
    for (int i = 1; i < 1000; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/audit.log.%06d", dir, i);
        if (access(p, F_OK) == 0)
            n++;
    }
    return n;
}

/* The log rotates by size; the chain runs on across files; verify walks them oldest first. */
static void rotation_keeps_one_chain(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    long lines = 0;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_set_rotation(a, 1000, 100); /* ~3 records a file */
    for (int i = 0; i < 20; i++)
        audit_record(a, "vault", "p", "a", "s", 200 + i, "r");
    audit_close(a);
    int files = rotated_count(f->dir);
    assert_true(files >= 5);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 20);

    /* reopened: the chain continues from the live file (or the newest rotated one) */
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_set_rotation(a, 1000, 100);
    for (int i = 0; i < 4; i++)
        audit_record(a, "arm", "p", "a", "s", 300 + i, "r");
    audit_close(a);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_int_equal(lines, 24);

    /* a rotated file removed from the middle breaks the chain */
    char p[600];
    snprintf(p, sizeof p, "%s/audit.log.%06d", f->dir, 2);
    char saved[700];
    snprintf(saved, sizeof saved, "%s.saved", p);
    assert_int_equal(rename(p, saved), 0);
    assert_int_equal(audit_verify(f->path, &lines), MV_ERR_CONFLICT);
    assert_int_equal(rename(saved, p), 0);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
}

/* Only `keep` rotated files stay; what is left still verifies (its first link is the anchor). */
static void rotation_removes_old_files(void **state)
{
    struct fx *f = *state;
    struct audit *a = NULL;
    long lines = 0;
    assert_int_equal(audit_open(f->path, &a), MV_OK);
    audit_set_rotation(a, 700, 3);
    for (int i = 0; i < 40; i++)
        audit_record(a, "vault", "p", "a", "s", 200 + i, "r");
    audit_close(a);
    assert_int_equal(rotated_count(f->dir), 3);
    char p[600];
    snprintf(p, sizeof p, "%s/audit.log.%06d", f->dir, 1);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(audit_verify(f->path, &lines), MV_OK);
    assert_true(lines > 3 && lines < 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(records_and_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(not_utf8_still_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(long_fields_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_reads_any_length, setup, teardown),
        cmocka_unit_test_setup_teardown(short_write_truncated_back, setup, teardown),
        cmocka_unit_test_setup_teardown(partial_tail_cut_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_seq_and_head, setup, teardown),
        cmocka_unit_test_setup_teardown(old_records_without_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(chain_breaks, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_tail_fails_against_the_head, setup, teardown),
        cmocka_unit_test_setup_teardown(batching_on_a_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_keeps_one_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_removes_old_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
