/* backup.c: the installation backup file (format in backup.h), `mivault backup` and
 * `mivault restore`.
 *
 * Invariants: the parser reads only inside [p, p + n), checks every length against what is
 * left before using it, and accepts a file only whole (the end marker, the checksum over every
 * byte before it, nothing after); a backup never holds the master key; restore writes nothing
 * into a dir that already holds a state, and the store is in place before state_init joins it
 * (which checks the master key against the store before writing any key file). */
#include "state/backup.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define HEADER_LEN 12
#define DIGEST_LEN 32

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static int name_ok(const unsigned char *s, size_t n)
{
    if (n == 0 || n > BACKUP_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static mv_rc sha256(const void *p, size_t n, unsigned char out[DIGEST_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != DIGEST_LEN) {
        mv_fail(MV_ERR_INTERNAL, "backup: SHA-256 failed");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

mv_rc backup_parse(const unsigned char *p, size_t n, struct backup_file *out)
{
    mv_rc rc = MV_OK;
    size_t at = HEADER_LEN;
    unsigned char want[DIGEST_LEN];
    memset(out, 0, sizeof *out);
    ENSURE_MSG(p != NULL && n >= HEADER_LEN && memcmp(p, BACKUP_MAGIC, 8) == 0, MV_ERR_BAD_REQUEST,
               "not a mivault backup file");
    ENSURE_MSG(get_be(p + 8, 4) == BACKUP_VERSION, MV_ERR_BAD_REQUEST,
               "backup file version %llu is not supported (this mivault reads %d)",
               (unsigned long long)get_be(p + 8, 4), BACKUP_VERSION);
    for (;;) {
        ENSURE_MSG(at < n, MV_ERR_BAD_REQUEST, "backup file is truncated");
        size_t nl = p[at++];
        if (nl == 0)
            break;
        ENSURE_MSG(out->n < BACKUP_MAX_ENTRIES, MV_ERR_BAD_REQUEST, "backup file has too many entries");
        ENSURE_MSG(nl <= n - at && name_ok(p + at, nl), MV_ERR_BAD_REQUEST,
                   "backup file has a bad entry name");
        struct backup_entry *e = &out->e[out->n];
        memcpy(e->name, p + at, nl);
        e->name[nl] = '\0';
        at += nl;
        ENSURE_MSG(backup_find(out, e->name) == NULL, MV_ERR_BAD_REQUEST,
                   "backup file names %s twice", e->name);
        ENSURE_MSG(n - at >= 8, MV_ERR_BAD_REQUEST, "backup file is truncated");
        uint64_t len = get_be(p + at, 8);
        at += 8;
        ENSURE_MSG(len <= n - at, MV_ERR_BAD_REQUEST, "backup file is truncated (entry %s)", e->name);
        e->data = p + at;
        e->len = (size_t)len;
        at += (size_t)len;
        out->n++;
    }
    ENSURE_MSG(n - at == DIGEST_LEN, MV_ERR_BAD_REQUEST,
               n - at < DIGEST_LEN ? "backup file is truncated" : "backup file has bytes after its end");
    CHECK(sha256(p, at - 1, want));
    ENSURE_MSG(CRYPTO_memcmp(want, p + at, DIGEST_LEN) == 0, MV_ERR_BAD_REQUEST,
               "backup file checksum mismatch (damaged or altered)");
out:
    if (rc != MV_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

const struct backup_entry *backup_find(const struct backup_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, name) == 0)
            return &f->e[i];
    return NULL;
}

mv_rc backup_put_header(mv_buf *out)
{
    unsigned char h[HEADER_LEN];
    memcpy(h, BACKUP_MAGIC, 8);
    put_be(h + 8, BACKUP_VERSION, 4);
    return mv_buf_add(out, h, sizeof h);
}

mv_rc backup_put_entry(mv_buf *out, const char *name, const void *data, size_t len)
{
    mv_rc rc = MV_OK;
    size_t nl = strlen(name);
    unsigned char b[1 + BACKUP_NAME_MAX + 8];
    ENSURE(name_ok((const unsigned char *)name, nl), MV_ERR_INTERNAL);
    b[0] = (unsigned char)nl;
    memcpy(b + 1, name, nl);
    put_be(b + 1 + nl, len, 8);
    CHECK(mv_buf_add(out, b, 1 + nl + 8));
    CHECK(mv_buf_add(out, data, len));
out:
    return rc;
}

mv_rc backup_put_end(mv_buf *out)
{
    mv_rc rc = MV_OK;
    unsigned char zero = 0, d[DIGEST_LEN];
    CHECK(mv_buf_add(out, &zero, 1));
    CHECK(sha256(out->p, out->len - 1, d));
    CHECK(mv_buf_add(out, d, sizeof d));
out:
    return rc;
}

static mv_rc read_all(const char *path, size_t max, char **data, size_t *len)
{
    mv_rc rc = mv_read_file(path, max, data, len);
    if (rc != MV_OK)
        mv_fail(rc, "cannot read %s", path);
    return rc;
}

mv_rc state_backup(const struct mv_paths *p, const char *out_file,
                   struct store_migrate_count counts[STORE_MIGRATE_TABLES])
{
    mv_rc rc = MV_OK;
    char tmp[PATH_MAX];
    char *cfg = NULL, *db = NULL, *manifest = NULL;
    size_t cfglen = 0, dblen = 0;
    json_t *m = NULL;
    mv_buf out;
    mv_buf_init(&out, BACKUP_MAX_BYTES);
    CHECK(mv_fmt(tmp, sizeof tmp, "%s.store-tmp", out_file));
    CHECK(read_all(p->config, 1 << 20, &cfg, &cfglen));
    CHECK(store_backup_to_sqlite(p->db, tmp, counts));
    CHECK(read_all(tmp, BACKUP_MAX_BYTES - (1 << 21), &db, &dblen));
    char when[32];
    CHECK(mv_fmt(when, sizeof when, "%lld", (long long)mv_now()));
    m = json_pack("{s:i, s:s, s:s, s:s}", "version", BACKUP_VERSION, "created", when, "from",
                  store_is_url(p->db) ? "postgresql" : "sqlite", "store", "mivault.db");
    ENSURE(m != NULL, MV_ERR_INTERNAL);
    manifest = json_dumps(m, JSON_COMPACT);
    ENSURE(manifest != NULL, MV_ERR_INTERNAL);
    CHECK(backup_put_header(&out));
    CHECK(backup_put_entry(&out, "manifest.json", manifest, strlen(manifest)));
    CHECK(backup_put_entry(&out, "config.json", cfg, cfglen));
    CHECK(backup_put_entry(&out, "mivault.db", db, dblen));
    CHECK(backup_put_end(&out));
    CHECK(mv_write_file(out_file, out.p, out.len, 0600));
    LOG_INFO("backup: %s (%zu bytes)", out_file, out.len);
out:
    unlink(tmp);
    free(cfg);
    free(db);
    free(manifest);
    json_decref(m);
    mv_buf_free(&out);
    return rc;
}

/* The backup's config.json with "store" set to store_url (NULL: removed, SQLite in the dir). */
static mv_rc restore_config(const struct backup_entry *e, const char *store_url, const char *path)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    char *text = NULL;
    json_t *o = json_loadb((const char *)e->data, e->len, JSON_REJECT_DUPLICATES, &jerr);
    ENSURE_MSG(o && json_is_object(o), MV_ERR_BAD_REQUEST, "backup: config.json: %s", jerr.text);
    if (store_url)
        ENSURE(json_object_set_new(o, "store", json_string(store_url)) == 0, MV_ERR_INTERNAL);
    else
        json_object_del(o, "store");
    text = json_dumps(o, JSON_INDENT(2));
    ENSURE(text != NULL, MV_ERR_INTERNAL);
    CHECK(mv_write_file(path, text, strlen(text), store_url ? 0600 : 0644));
out:
    free(text);
    json_decref(o);
    return rc;
}

mv_rc state_restore(const struct mv_paths *p, const char *in_file, const char *master_key_file,
                    const char *store_url)
{
    mv_rc rc = MV_OK;
    char *data = NULL, db[PATH_MAX], side[PATH_MAX];
    size_t len = 0;
    int wrote_config = 0;
    struct backup_file f;
    struct mv_paths np;
    struct mv_config cfg;
    struct store_migrate_count counts[STORE_MIGRATE_TABLES];
    enum state_init_outcome outcome;
    ENSURE_MSG(!mv_file_exists(p->config), MV_ERR_CONFLICT,
               "%s already holds a mivault state: restore into a new directory", p->dir);
    CHECK(read_all(in_file, BACKUP_MAX_BYTES, &data, &len));
    CHECK(backup_parse((const unsigned char *)data, len, &f));
    const struct backup_entry *cfg_e = backup_find(&f, "config.json");
    const struct backup_entry *db_e = backup_find(&f, "mivault.db");
    ENSURE_MSG(cfg_e && db_e, MV_ERR_BAD_REQUEST, "backup file without config.json or mivault.db");
    CHECK(mv_mkdirs(p->dir, 0700));
    /* A SQLite state first, joined as a server would (state_init checks the master key before
     * it writes any key file); then, for PostgreSQL, the copy `mivault store migrate` makes, so
     * a wrong key never leaves rows in the database. Until the end, a failure removes
     * config.json: the dir is not a state, and the restore can run again. */
    CHECK(mv_fmt(db, sizeof db, "%s/mivault.db", p->dir));
    CHECK(mv_write_file(db, db_e->data, db_e->len, 0600));
    CHECK(restore_config(cfg_e, NULL, p->config));
    wrote_config = 1;
    CHECK(state_paths(p->dir, &np));
    CHECK(state_config_load(&np, &cfg));
    CHECK(state_init(&np, &cfg, master_key_file, &outcome));
    if (store_url) {
        CHECK(store_migrate_sqlite_to_pg(db, store_url, counts));
        CHECK(restore_config(cfg_e, store_url, p->config));
        unlink(db);
        CHECK(mv_fmt(side, sizeof side, "%s-wal", db));
        unlink(side);
        CHECK(mv_fmt(side, sizeof side, "%s-shm", db));
        unlink(side);
    }
    wrote_config = 0;
    LOG_INFO("restore: %s rebuilt from %s", p->dir, in_file);
out:
    if (wrote_config)
        unlink(p->config); /* not a state: the restore can be run again */
    if (data) {
        OPENSSL_cleanse(data, len);
        free(data);
    }
    return rc;
}
