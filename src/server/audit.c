/* audit.c: hash-chained, append-only audit log (see audit.h).
 *
 * Each line is a compact JSON object ending in "prev" (the previous line's hash; 64 zeros for
 * the first) and "hash" = hex SHA-256 of the line's text up to, not including, the ",\"hash\""
 * suffix. Changing any line, the last one included, breaks its own hash; removing or reordering
 * lines breaks the prev links. Lines are appended
 * with one write(2) on an O_APPEND descriptor under a mutex, so concurrent loop threads never
 * interleave and the chain order is the file order. Lines reach the kernel before the reply
 * is sent (they survive a crash of the process; not fsync'ed per line, for speed). */
#include "server/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

#define AUDIT_MAX_LINE 4096

struct audit {
    int fd;
    pthread_mutex_t mu;
    char prev[65];
};

#define HASH_SUFFIX_LEN 75 /* ,"hash":"<64 hex>"} */

static void hash_hex(const char *p, size_t n, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p, n, d);
    mv_hex(out, d, sizeof d);
}

/* Finds the hash of the last line of an existing log so the chain continues across restarts. */
static mv_rc last_hash(const char *path, char out[65])
{
    memset(out, '0', 64);
    out[64] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? MV_OK : MV_ERR_INTERNAL;
    char line[AUDIT_MAX_LINE + 2];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            n--;
        if (n > HASH_SUFFIX_LEN) {
            memcpy(out, line + n - 66, 64);
            out[64] = '\0';
        }
    }
    fclose(f);
    return MV_OK;
}

mv_rc audit_open(const char *path, struct audit **out)
{
    mv_rc rc = MV_OK;
    struct audit *a = calloc(1, sizeof *a);
    ENSURE(a != NULL, MV_ERR_INTERNAL);
    a->fd = -1;
    CHECK(last_hash(path, a->prev));
    a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    ENSURE_MSG(a->fd >= 0, MV_ERR_INTERNAL, "open %s: %s", path, strerror(errno));
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    a = NULL;
out:
    free(a);
    return rc;
}

void audit_close(struct audit *a)
{
    if (!a)
        return;
    close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void audit_record(struct audit *a, const char *plane, const char *principal, const char *action,
                  const char *scope, int status, const char *request_id)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "time", (json_int_t)mv_now(),
                          "plane", plane, "principal", principal ? principal : "-", "action",
                          action ? action : "-", "scope", scope ? scope : "-", "status", status,
                          "requestId", request_id ? request_id : "-", "prev", a->prev);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s && strlen(s) <= AUDIT_MAX_LINE) {
        size_t n = strlen(s) - 1; /* without the closing brace */
        char h[65];
        hash_hex(s, n, h);
        char *line = malloc(n + HASH_SUFFIX_LEN + 2);
        if (line) {
            memcpy(line, s, n);
            snprintf(line + n, HASH_SUFFIX_LEN + 2, ",\"hash\":\"%s\"}\n", h);
            if (write(a->fd, line, n + HASH_SUFFIX_LEN + 1) == (ssize_t)(n + HASH_SUFFIX_LEN + 1))
                memcpy(a->prev, h, sizeof h);
            else
                LOG_ERROR("audit: write failed: %s", strerror(errno));
            free(line);
        }
    } else {
        LOG_ERROR("audit: cannot format a record");
    }
    free(s);
    json_decref(o);
    pthread_mutex_unlock(&a->mu);
}

mv_rc audit_verify(const char *path, long *lines)
{
    mv_rc rc = MV_OK;
    char prev[65];
    memset(prev, '0', 64);
    prev[64] = '\0';
    *lines = 0;
    FILE *f = fopen(path, "rb");
    ENSURE_MSG(f != NULL, MV_ERR_NOT_FOUND, "open %s", path);
    char line[AUDIT_MAX_LINE + 2];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        ENSURE_MSG(n && line[n - 1] == '\n', MV_ERR_CONFLICT, "line %ld is cut", *lines + 1);
        line[--n] = '\0';
        json_t *o = json_loadb(line, n, 0, NULL);
        const char *p = json_string_value(json_object_get(o, "prev"));
        const char *hs = json_string_value(json_object_get(o, "hash"));
        char h[65];
        int ok = p && hs && strcmp(p, prev) == 0 && n > HASH_SUFFIX_LEN &&
                 strncmp(line + n - HASH_SUFFIX_LEN, ",\"hash\":\"", 9) == 0;
        if (ok) {
            hash_hex(line, n - HASH_SUFFIX_LEN, h);
            ok = strcmp(h, hs) == 0;
        }
        json_decref(o);
        ENSURE_MSG(ok, MV_ERR_CONFLICT, "chain broken at line %ld", *lines + 1);
        memcpy(prev, h, sizeof h);
        (*lines)++;
    }
out:
    if (f)
        fclose(f);
    return rc;
}
