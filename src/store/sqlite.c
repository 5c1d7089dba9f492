/* sqlite.c: the SQLite store connection: open (file mode, pragmas, schema), close,
 * transactions, meta settings and the change generation.
 *
 * Durability (DESIGN §5, "an acknowledged write survives kill -9"): WAL with synchronous=FULL
 * fsyncs the WAL at every commit, so a call that returned MV_OK is on disk. Several processes
 * may share the file: busy_timeout makes writers queue for up to 10 s before a call fails with
 * MV_ERR_UNAVAILABLE. A new file is created 0600 and appears only once initialized
 * (create_db).
 *
 * Corruption: every open runs PRAGMA quick_check and refuses a damaged file; SQLITE_CORRUPT at
 * run time stops all writes of the process to that file (sq_mark_corrupt) and fails the health
 * probe on every connection to it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "store/sqlite_internal.h"
#include "store/writer.h"

#define ST_BUSY_TIMEOUT_MS 10000
#define ST_CHECK_MSG_MAX 200 /* of quick_check's first complaint, for the log */

/* Corruption flags, one per database file the process has open, shared by every connection of
 * the process to that file (the loops', the writer's, the CLI's): once any of them saw the file
 * corrupt, none writes to it again and every health probe on it fails (a restart runs
 * quick_check and refuses). A file is known by device and inode, not by the path it was opened
 * by; an entry lives while a connection to its file is open. An in-memory database has a flag
 * of its own. */
struct sq_file {
    struct sq_file *next;
    dev_t dev;
    ino_t ino;
    int refs;   /* connections attached; under files_mu */
    int linked; /* in files (0: an in-memory database's own) */
    atomic_int corrupt;
};

static pthread_mutex_t files_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sq_file *files;

/* Attaches st to its file's flag (creating it for the first connection). */
static mv_rc file_attach(struct store *st)
{
    mv_rc rc = MV_OK;
    struct stat sb;
    const char *name = sqlite3_db_filename(st->db, "main");
    int on_disk = name && name[0] && stat(name, &sb) == 0;
    pthread_mutex_lock(&files_mu);
    struct sq_file *f = NULL;
    for (f = on_disk ? files : NULL; f; f = f->next)
        if (f->dev == sb.st_dev && f->ino == sb.st_ino)
            break;
    if (!f) {
        f = calloc(1, sizeof *f);
        if (f && on_disk) {
            f->dev = sb.st_dev;
            f->ino = sb.st_ino;
            f->linked = 1;
            f->next = files;
            files = f;
        }
    }
    if (f)
        f->refs++;
    pthread_mutex_unlock(&files_mu);
    ENSURE_MSG(f != NULL, MV_ERR_INTERNAL, "store: out of memory");
    st->file = f;
out:
    return rc;
}

static void file_detach(struct store *st)
{
    struct sq_file *f = st->file;
    if (!f)
        return;
    st->file = NULL;
    pthread_mutex_lock(&files_mu);
    int last = --f->refs == 0;
    if (last && f->linked) {
        struct sq_file **pp = &files;
        while (*pp && *pp != f)
            pp = &(*pp)->next;
        if (*pp)
            *pp = f->next;
    }
    pthread_mutex_unlock(&files_mu);
    if (last)
        free(f);
}

void sq_mark_corrupt(struct store *st, const char *what, int src)
{
    if (!st || !st->file)
        return; /* not attached yet: the open that failed refuses the connection anyway */
    if (atomic_exchange(&st->file->corrupt, 1) == 0)
        LOG_ERROR("store: THE DATABASE FILE IS CORRUPT (sqlite %s: %s, %d): refusing every write "
                  "from now on and failing /healthz; stop the server, restore the store from a "
                  "backup, and restart",
                  what, sqlite3_errstr(src), src);
}

int sq_is_corrupt(const struct store *st) { return st->file && atomic_load(&st->file->corrupt); }

#define ST_META_MAX (64 * 1024) /* largest meta value handed back */

static mv_rc exec(struct store *st, const char *sql)
{
    int src = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? MV_OK : st_error(st, src, sql);
}

/* journal_mode=WAL answers with the mode in effect; anything else means no WAL. */
static mv_rc set_wal(struct store *st, int in_memory)
{
    sqlite3_stmt *s = NULL;
    mv_rc rc = MV_OK;
    int src = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(s);
    if (src != SQLITE_ROW) {
        rc = st_error(st, src, "journal_mode=WAL");
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    ENSURE_MSG(mode && (strcmp(mode, "wal") == 0 || (in_memory && strcmp(mode, "memory") == 0)),
               MV_ERR_INTERNAL, "sqlite: journal_mode is %s, not wal", mode ? mode : "?");
out:
    sqlite3_finalize(s);
    return rc;
}

/* The cascades of schema.c depend on foreign keys: refuse a build that ignores the pragma. */
static mv_rc check_foreign_keys(struct store *st)
{
    sqlite3_stmt *s = NULL;
    mv_rc rc = MV_OK;
    int src = sqlite3_prepare_v2(st->db, "PRAGMA foreign_keys", -1, &s, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(s);
    ENSURE_MSG(src == SQLITE_ROW && sqlite3_column_int(s, 0) == 1, MV_ERR_INTERNAL,
               "sqlite: foreign keys are not enforced");
out:
    sqlite3_finalize(s);
    return rc;
}

static mv_rc configure(struct store *st, int in_memory)
{
    mv_rc rc = MV_OK;
    int on = 0;
    sqlite3_extended_result_codes(st->db, 1);
    CHECK(sqlite3_busy_timeout(st->db, ST_BUSY_TIMEOUT_MS) == SQLITE_OK
              ? MV_OK
              : st_error(st, SQLITE_ERROR, "busy_timeout"));
    /* Refuse writes that could corrupt the file even if SQL were ever injected. */
    CHECK(sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) == SQLITE_OK
              ? MV_OK
              : st_error(st, SQLITE_ERROR, "defensive"));
    CHECK(exec(st, "PRAGMA trusted_schema=OFF"));
    CHECK(set_wal(st, in_memory));
    CHECK(exec(st, "PRAGMA synchronous=FULL"));
    CHECK(exec(st, "PRAGMA foreign_keys=ON"));
    CHECK(check_foreign_keys(st));
    CHECK(exec(st, "PRAGMA temp_store=MEMORY"));
out:
    return rc;
}

/* PRAGMA quick_check (O(N), no index-content cross-checks): a file damaged in the middle is
 * refused at open instead of answering some reads with "malformed" and taking writes. */
static mv_rc quick_check(struct store *st, const char *path)
{
    sqlite3_stmt *s = NULL;
    mv_rc rc = MV_OK;
    char first[ST_CHECK_MSG_MAX + 1] = "";
    int src = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(s);
    if (src == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        if (v && strcmp(v, "ok") == 0)
            goto out;
        if (v && mv_copy(first, sizeof first, v) != MV_OK)
            memcpy(first + ST_CHECK_MSG_MAX - 3, "...", 4);
    } else {
        CHECK(mv_copy(first, sizeof first, sqlite3_errstr(src)));
    }
    LOG_ERROR("store: %s is CORRUPT (PRAGMA quick_check: %s); refusing to start on it: restore "
              "it from a backup", path, first[0] ? first : "?");
    /* A connection opened while others of this process run (the writer's, a loop's): they
     * stop writing too. */
    sq_mark_corrupt(st, "quick_check", SQLITE_CORRUPT);
    ENSURE_MSG(0, MV_ERR_INTERNAL, "store: %s is corrupt (PRAGMA quick_check: %s)", path,
               first[0] ? first : "?");
out:
    sqlite3_finalize(s);
    return rc;
}

/* Opens a connection on an existing (or in-memory) database and brings it up to date. */
static mv_rc open_conn(const char *path, struct store **out)
{
    mv_rc rc = MV_OK;
    struct store *st = calloc(1, sizeof *st);
    *out = NULL;
    ENSURE(st, MV_ERR_INTERNAL);
    int src = sqlite3_open_v2(path, &st->db,
                              SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                  SQLITE_OPEN_URI,
                              NULL);
    if (src != SQLITE_OK) {
        rc = st_error(st, src, "open");
        goto out;
    }
    CHECK(file_attach(st));
    CHECK(configure(st, path[0] == ':'));
    if (path[0] != ':')
        CHECK(quick_check(st, path));
    CHECK(st_migrate(st));
    *out = st;
    st = NULL;
out:
    store_close(st);
    return rc;
}

static void unlink_db(const char *db)
{
    char p[PATH_MAX];
    unlink(db);
    if (mv_fmt(p, sizeof p, "%s-wal", db) == MV_OK)
        unlink(p);
    if (mv_fmt(p, sizeof p, "%s-shm", db) == MV_OK)
        unlink(p);
}

/* Makes the database file exist, fully initialized, without a window in which another
 * process could see it half made. Several processes switching one new, empty file to WAL at
 * the same moment make SQLite fail (disk I/O error) and the WAL of one can be deleted under
 * another; so the schema is built in a private file (0600 from its first byte: it will hold
 * sealed values and the wrapped data key) and published with link(2), which fails with
 * EEXIST for everyone but the first. The journal mode WAL is persistent in the file header. */
static mv_rc create_db(const char *path)
{
    mv_rc rc = MV_OK;
    char tmp[PATH_MAX], rnd[MV_VERSION_LEN + 1], dir[PATH_MAX];
    struct store *st = NULL;
    int made = 0;
    if (path[0] == ':' || strncmp(path, "file:", 5) == 0 || access(path, F_OK) == 0)
        return MV_OK;
    CHECK(mv_hexid(rnd));
    CHECK(mv_fmt(tmp, sizeof tmp, "%s.init-%s", path, rnd));
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "store: create %s: %s", tmp, strerror(errno));
    close(fd);
    made = 1;
    CHECK(open_conn(tmp, &st));
    store_close(st); /* last connection: checkpoints and removes the -wal */
    st = NULL;
    ENSURE_MSG(link(tmp, path) == 0 || errno == EEXIST, MV_ERR_INTERNAL,
               "store: link %s: %s", path, strerror(errno));
    /* The new directory entry must survive a power loss like the data written into it. */
    CHECK(mv_copy(dir, sizeof dir, path));
    char *slash = strrchr(dir, '/');
    if (!slash)
        CHECK(mv_copy(dir, sizeof dir, "."));
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ENSURE_MSG(dfd >= 0, MV_ERR_INTERNAL, "store: open %s: %s", dir, strerror(errno));
    int synced = fsync(dfd);
    close(dfd);
    ENSURE_MSG(synced == 0, MV_ERR_INTERNAL, "store: fsync %s: %s", dir, strerror(errno));
out:
    store_close(st);
    if (made)
        unlink_db(tmp);
    return rc;
}

mv_rc sq_open(const char *path, struct store **out)
{
    mv_rc rc = MV_OK;
    *out = NULL;
    ENSURE(path && path[0], MV_ERR_BAD_REQUEST);
    CHECK(create_db(path));
    CHECK(open_conn(path, out));
out:
    return rc;
}

void sq_close(struct store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < ST_Q_COUNT; i++)
        sqlite3_finalize(st->q[i]);
    sqlite3_close(st->db); /* every statement is finalized: this cannot be refused */
    file_detach(st);
    free(st);
}

static mv_rc run_cached(struct store *st, enum st_q id, const char *sql)
{
    sqlite3_stmt *s = NULL;
    mv_rc rc = st_prep(st, id, sql, &s);
    if (rc == MV_OK)
        rc = st_run(st, s, NULL);
    st_done(s);
    return rc;
}

mv_rc sq_begin(struct store *st)
{
    if (sq_is_corrupt(st)) {
        mv_fail(MV_ERR_UNAVAILABLE, "store: the database file is corrupt; writes are refused");
        return MV_ERR_UNAVAILABLE;
    }
    return run_cached(st, ST_Q_BEGIN, "BEGIN IMMEDIATE");
}

mv_rc sq_commit(struct store *st) { return run_cached(st, ST_Q_COMMIT, "COMMIT"); }

/* A deferred BEGIN takes no lock: the first read starts the snapshot and the WAL read lock. */
mv_rc sq_read_begin(struct store *st) { return run_cached(st, ST_Q_READ_BEGIN, "BEGIN"); }

void sq_read_end(struct store *st)
{
    if (sqlite3_get_autocommit(st->db))
        return;
    mv_rc rc = store_commit(st);
    (void)rc; /* a read-only transaction: nothing to lose; st_error has logged it */
}

void sq_rollback(struct store *st)
{
    /* After some errors SQLite has already rolled back; nothing is left to undo then. */
    if (sqlite3_get_autocommit(st->db))
        return;
    mv_rc rc = run_cached(st, ST_Q_ROLLBACK, "ROLLBACK");
    (void)rc; /* a failure is logged by st_error; nothing more can be done here */
}

/* writer.h: one savepoint per job of a group-committed batch. */
mv_rc sq_savepoint(struct store *st) { return run_cached(st, ST_Q_JOB_SAVEPOINT, "SAVEPOINT st_job"); }
mv_rc sq_savepoint_release(struct store *st) { return run_cached(st, ST_Q_JOB_RELEASE, "RELEASE st_job"); }

void sq_savepoint_rollback(struct store *st)
{
    if (sqlite3_get_autocommit(st->db))
        return; /* SQLite already rolled the whole transaction back */
    if (run_cached(st, ST_Q_JOB_ROLLBACK_TO, "ROLLBACK TO st_job") != MV_OK ||
        run_cached(st, ST_Q_JOB_RELEASE, "RELEASE st_job") != MV_OK)
        LOG_ERROR("store: cannot roll back a job's savepoint");
}

mv_rc st_tx_begin(struct store *st, struct st_tx *tx)
{
    mv_rc rc = MV_OK;
    tx->owned = sqlite3_get_autocommit(st->db) != 0;
    CHECK(tx->owned ? store_begin(st) : run_cached(st, ST_Q_SAVEPOINT, "SAVEPOINT st_inner"));
    tx->active = 1;
out:
    return rc;
}

mv_rc st_tx_commit(struct store *st, struct st_tx *tx)
{
    mv_rc rc = MV_OK;
    CHECK(tx->owned ? store_commit(st) : run_cached(st, ST_Q_RELEASE, "RELEASE st_inner"));
    tx->active = 0;
out:
    return rc;
}

void st_tx_end(struct store *st, struct st_tx *tx)
{
    if (!tx->active)
        return;
    tx->active = 0;
    if (tx->owned) {
        store_rollback(st);
        return;
    }
    if (sqlite3_get_autocommit(st->db))
        return; /* SQLite already rolled back the caller's whole transaction */
    /* ROLLBACK TO keeps the savepoint open; RELEASE then removes it. */
    mv_rc rc = run_cached(st, ST_Q_ROLLBACK_TO, "ROLLBACK TO st_inner");
    if (rc == MV_OK)
        rc = run_cached(st, ST_Q_RELEASE, "RELEASE st_inner");
    (void)rc; /* logged by st_error */
}

mv_rc sq_health(struct store *st)
{
    mv_rc rc = MV_OK;
    int64_t gen = 0;
    ENSURE_MSG(sqlite3_get_autocommit(st->db), MV_ERR_INTERNAL, "store_health inside a transaction");
    ENSURE_MSG(!sq_is_corrupt(st), MV_ERR_UNAVAILABLE, "store: the database file is corrupt");
    /* A writer of another process may hold the lock for a moment; a health check must not wait
     * the 10 s a request would. */
    sqlite3_busy_timeout(st->db, ST_HEALTH_WAIT_MS);
    rc = sq_generation(st, &gen);
    if (rc == MV_OK)
        rc = sq_begin(st);
    if (rc == MV_OK)
        sq_rollback(st);
    sqlite3_busy_timeout(st->db, ST_BUSY_TIMEOUT_MS);
    if (rc != MV_OK)
        rc = MV_ERR_UNAVAILABLE; /* st_error recorded the cause */
out:
    return rc;
}

mv_rc sq_generation(struct store *st, int64_t *gen)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    CHECK(st_prep(st, ST_Q_GENERATION, "SELECT value FROM meta WHERE key = 'generation'", &s));
    CHECK(st_step(st, s, &row));
    ENSURE_MSG(row, MV_ERR_INTERNAL, "store: meta generation missing");
    *gen = (int64_t)sqlite3_column_int64(s, 0);
out:
    st_done(s);
    return rc;
}

mv_rc sq_meta_get(struct store *st, const char *key, mv_buf *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    CHECK(st_prep(st, ST_Q_META_GET, "SELECT value FROM meta WHERE key = ?1", &s));
    st_bind_text(st, s, 1, key);
    CHECK(st_step(st, s, &row));
    ENSURE_MSG(row, MV_ERR_NOT_FOUND, "store: no meta %s", key);
    const unsigned char *v = sqlite3_column_text(s, 0);
    size_t n = (size_t)sqlite3_column_bytes(s, 0);
    ENSURE(v || sqlite3_column_type(s, 0) == SQLITE_NULL, MV_ERR_INTERNAL);
    ENSURE_MSG(n <= ST_META_MAX, MV_ERR_INTERNAL, "store: meta %s too long", key);
    mv_buf_reset(out);
    CHECK(mv_buf_add(out, v ? (const char *)v : "", n));
out:
    st_done(s);
    return rc;
}

mv_rc sq_meta_set(struct store *st, const char *key, const char *value)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    /* 'generation' belongs to the triggers (schema.c). */
    ENSURE(key && value && strcmp(key, "generation") != 0, MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_META_SET,
                  "INSERT INTO meta (key, value) VALUES (?1, ?2)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                  &s));
    st_bind_text(st, s, 1, key);
    st_bind_text(st, s, 2, value);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}
