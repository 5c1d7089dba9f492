/* util.c: see util.h. */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

mv_rc mv_random(void *out, size_t len)
{
    if (len > INT_MAX || RAND_bytes(out, (int)len) != 1) {
        mv_fail(MV_ERR_INTERNAL, "RAND_bytes failed");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

void mv_hex(char *out, const unsigned char *in, size_t len)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * len] = '\0';
}

mv_rc mv_uuid(char out[MV_UUID_LEN + 1])
{
    unsigned char b[16];
    mv_rc rc = mv_random(b, sizeof b);
    if (rc != MV_OK)
        return rc;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char h[33];
    mv_hex(h, b, 16);
    snprintf(out, MV_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
    return MV_OK;
}

mv_rc mv_hexid(char out[MV_VERSION_LEN + 1])
{
    unsigned char b[16];
    mv_rc rc = mv_random(b, sizeof b);
    if (rc == MV_OK)
        mv_hex(out, b, 16);
    return rc;
}

int mv_is_uuid(const char *s)
{
    if (strlen(s) != MV_UUID_LEN)
        return 0;
    for (int i = 0; i < MV_UUID_LEN; i++) {
        char c = s[i];
        int dash = (i == 8 || i == 13 || i == 18 || i == 23);
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

int64_t mv_now(void) { return (int64_t)time(NULL); }

int64_t mv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int mv_ct_eq(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

int mv_streq_ci(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

void mv_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

mv_rc mv_read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mv_fail(errno == ENOENT ? MV_ERR_NOT_FOUND : MV_ERR_INTERNAL, "open %s: %s", path, strerror(errno));
        return errno == ENOENT ? MV_ERR_NOT_FOUND : MV_ERR_INTERNAL;
    }
    char *p = malloc(max + 1);
    if (!p) {
        fclose(f);
        return MV_ERR_INTERNAL;
    }
    size_t n = fread(p, 1, max + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > max) {
        free(p);
        mv_fail(err ? MV_ERR_INTERNAL : MV_ERR_LIMIT, "read %s failed or too large", path);
        return err ? MV_ERR_INTERNAL : MV_ERR_LIMIT;
    }
    p[n] = '\0';
    *out = p;
    if (len)
        *len = n;
    return MV_OK;
}

mv_rc mv_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return MV_ERR_LIMIT;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        mv_fail(MV_ERR_INTERNAL, "create %s: %s", tmp, strerror(errno));
        return MV_ERR_INTERNAL;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            mv_fail(MV_ERR_INTERNAL, "write %s: %s", tmp, strerror(errno));
            return MV_ERR_INTERNAL;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        mv_fail(MV_ERR_INTERNAL, "finish %s: %s", path, strerror(errno));
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

mv_rc mv_mkdirs(const char *path, unsigned mode)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return MV_ERR_LIMIT;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
            goto fail;
        *s = '/';
    }
    if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST)
        goto fail;
    return MV_OK;
fail:
    mv_fail(MV_ERR_INTERNAL, "mkdir %s: %s", p, strerror(errno));
    return MV_ERR_INTERNAL;
}

int mv_file_exists(const char *path) { return access(path, F_OK) == 0; }

mv_rc mv_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return MV_ERR_BAD_REQUEST;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || end == s)
        return MV_ERR_BAD_REQUEST;
    *out = (int64_t)v;
    return MV_OK;
}

int mv_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
