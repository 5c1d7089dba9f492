/* test_store.c: the store (store/store.h) on both backends: every case runs against SQLite (a
 * real file in a fresh temporary directory per test) and, when MIVAULT_TEST_PG_URL names a
 * PostgreSQL server (scripts/test.sh starts one), against a fresh database per test created
 * through that URL. Every function, the cascades, paging, soft delete, two connections to one
 * store, reopening, several processes opening a new store at once; on PostgreSQL also retried
 * writes converging, a killed backend connection, the change feed across servers and the
 * error that names an unreachable host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "common/metrics.h"
#include "store/sqlite_internal.h"
#include "store/store.h"
#include "common/metrics.h"
#include "store/writer.h"

#include <event2/event.h>
#include <event2/thread.h>

struct fx {
    char dir[64];
    char path[512];   /* SQLite file, or the URL of this test's PostgreSQL database */
    char dbname[64];  /* PostgreSQL: the database made for this test */
    struct store *st;
};

/* The backend of the group being run: NULL = SQLite, else the PostgreSQL server's URL. */
static const char *pg_base;
static int pg_seq;

/* base URL with its database replaced by db (query string kept). */
static void url_with_db(const char *base, const char *db, char *out, size_t len)
{
    const char *hosts = strstr(base, "://");
    const char *slash = strchr(hosts ? hosts + 3 : base, '/');
    const char *query = strchr(base, '?');
    size_t head = slash ? (size_t)(slash - base) : (query ? (size_t)(query - base) : strlen(base));
    snprintf(out, len, "%.*s/%s%s", (int)head, base, db, query ? query : "");
}

/* Runs one admin statement (CREATE/DROP DATABASE, pg_terminate_backend) on url. */
static void pg_admin(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* A new empty database; its URL in out. */
static void pg_new_db(char *name, size_t namelen, char *out, size_t len)
{
    char sql[160];
    snprintf(name, namelen, "mvtest_%d_%d", (int)getpid(), ++pg_seq);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    pg_admin(pg_base, sql);
    url_with_db(pg_base, name, out, len);
}

static void pg_drop_db(const char *name)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_admin(pg_base, sql);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    if (pg_base)
        pg_new_db(f->dbname, sizeof f->dbname, f->path, sizeof f->path);
    else
        snprintf(f->path, sizeof f->path, "%s/mivault.db", f->dir);
    assert_int_equal(store_open(f->path, &f->st), MV_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->st);
    if (f->dbname[0])
        pg_drop_db(f->dbname);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

#define OK(x) assert_int_equal((x), MV_OK)
#define RC(x, want) assert_int_equal((x), (want))

/* PostgreSQL: let the change-feed poller see our own changes too (it bumps once more when it
 * does), so that a later "no change" check is not racing it. */
static void settle(void)
{
    if (pg_base)
        usleep(1300 * 1000);
}

static int64_t gen(struct store *st)
{
    int64_t g = 0;
    OK(store_generation(st, &g));
    return g;
}

static void put_vm(struct store *st, const char *name)
{
    struct st_vm vm = {.system_assigned = 1, .created = 100};
    snprintf(vm.name, sizeof vm.name, "%s", name);
    snprintf(vm.rg, sizeof vm.rg, "rg1");
    snprintf(vm.vm_id, sizeof vm.vm_id, "11111111-1111-4111-8111-111111111111");
    snprintf(vm.system_principal_id, sizeof vm.system_principal_id,
             "22222222-2222-4222-8222-222222222222");
    snprintf(vm.resource_id, sizeof vm.resource_id,
             "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/%s",
             name);
    OK(store_vm_put(st, &vm));
}

static void put_identity(struct store *st, const char *name, const char *principal)
{
    struct st_identity id = {.created = 5};
    snprintf(id.name, sizeof id.name, "%s", name);
    snprintf(id.rg, sizeof id.rg, "rg1");
    snprintf(id.principal_id, sizeof id.principal_id, "%s", principal);
    snprintf(id.client_id, sizeof id.client_id, "%s", principal);
    snprintf(id.resource_id, sizeof id.resource_id, "/uai/%s", name);
    OK(store_identity_put(st, &id));
}

static void put_vault(struct store *st, const char *name)
{
    struct st_vault v = {.soft_delete_days = 90, .purge_protection = 0, .created = 7};
    snprintf(v.name, sizeof v.name, "%s", name);
    snprintf(v.rg, sizeof v.rg, "rg1");
    snprintf(v.vault_id, sizeof v.vault_id, "33333333-3333-4333-8333-333333333333");
    OK(store_vault_put(st, &v));
}

static void add_secret(struct store *st, const char *vault, const char *name, const char *version,
                       const char *value, int64_t created)
{
    struct st_secret s = {.enabled = 1, .created = created, .updated = created};
    snprintf(s.vault, sizeof s.vault, "%s", vault);
    snprintf(s.name, sizeof s.name, "%s", name);
    snprintf(s.version, sizeof s.version, "%s", version);
    mv_buf_init(&s.sealed, 1024);
    OK(mv_buf_adds(&s.sealed, value));
    s.content_type = "text/plain";
    OK(store_secret_add(st, &s));
    mv_buf_free(&s.sealed);
}

static void ra(struct st_role_assignment *a, const char *id, const char *principal,
               const char *role, const char *scope)
{
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", id);
    snprintf(a->principal_id, sizeof a->principal_id, "%s", principal);
    snprintf(a->role_id, sizeof a->role_id, "%s", role);
    snprintf(a->scope, sizeof a->scope, "%s", scope);
    a->created = 1;
}

/* ---- open, meta, generation ---- */

static void check_sqlite_file(struct fx *f)
{
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 10);
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* PostgreSQL: schema_version 13 in meta (v2: the secrets feed trigger; v3: audit checkpoints;
 * v4: quota leases; v5: assertion_jti; v6: vault_keys, key_policies; v7: cert_objects; v8: the
 * function mv_secret_add; v9: audit heads; v10: app credentials, federated credentials; v11: vm_bindings; v12: mv_secret_set; v13: one secrets feed row per transaction),
 * the tables there. */
static void check_pg_schema(struct fx *f)
{
    PGconn *c = PQconnectdb(f->path);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SELECT value FROM meta WHERE key = 'schema_version'");
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "13");
    PQclear(r);
    r = PQexec(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'");
    assert_string_equal(PQgetvalue(r, 0, 0), "22");
    PQclear(r);
    r = PQexec(c, "SELECT count(*) FROM pg_proc WHERE proname = 'mv_secret_add'");
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    r = PQexec(c, "SELECT count(*) FROM pg_proc WHERE proname = 'mv_secret_set'");
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    PQfinish(c);
}

static void test_open_file_mode_schema_and_reopen(void **state)
{
    struct fx *f = *state;
    if (pg_base)
        check_pg_schema(f);
    else
        check_sqlite_file(f);

    OK(store_meta_set(f->st, "tenant_id", "t-1"));
    put_vm(f->st, "keep");
    int64_t g = gen(f->st);
    store_close(f->st);
    f->st = NULL;
    OK(store_open(f->path, &f->st)); /* reopen: no second migration, data kept */
    mv_buf b;
    mv_buf_init(&b, 64);
    OK(store_meta_get(f->st, "tenant_id", &b));
    assert_string_equal(b.p, "t-1");
    mv_buf_free(&b);
    struct st_vm vm;
    OK(store_vm_get(f->st, "keep", &vm));
    if (!pg_base)
        assert_int_equal(gen(f->st), g); /* PostgreSQL: the feed may have moved meanwhile */

    struct store *bad = NULL;
    RC(store_open("/nonexistent-dir/x/y.db", &bad), MV_ERR_INTERNAL);
    assert_null(bad);
    RC(store_open("", &bad), MV_ERR_BAD_REQUEST);

    struct store *mem = NULL; /* in-memory stores work too (tests of other layers) */
    OK(store_open(":memory:", &mem));
    put_vm(mem, "m");
    OK(store_vm_get(mem, "M", &vm));
    store_close(mem);
    store_close(NULL);
}

static void test_meta_get_set(void **state)
{
    struct fx *f = *state;
    mv_buf b;
    mv_buf_init(&b, 16);
    RC(store_meta_get(f->st, "missing", &b), MV_ERR_NOT_FOUND);
    OK(store_meta_set(f->st, "k", "v1"));
    OK(store_meta_get(f->st, "k", &b));
    assert_string_equal(b.p, "v1");
    OK(store_meta_set(f->st, "k", "value-two"));
    OK(store_meta_get(f->st, "k", &b)); /* replaces, does not append */
    assert_string_equal(b.p, "value-two");
    assert_int_equal(b.len, 9);
    OK(store_meta_set(f->st, "big", "0123456789abcdefXYZ"));
    RC(store_meta_get(f->st, "big", &b), MV_ERR_LIMIT); /* caller's cap holds */
    RC(store_meta_set(f->st, "generation", "0"), MV_ERR_BAD_REQUEST);
    OK(store_meta_set(f->st, "empty", ""));
    OK(store_meta_get(f->st, "empty", &b));
    assert_int_equal(b.len, 0);
    mv_buf_free(&b);
}

static void test_generation_changes_with_data(void **state)
{
    struct fx *f = *state;
    int64_t g0 = gen(f->st);
    put_vm(f->st, "vm1");
    int64_t g1 = gen(f->st);
    assert_true(g1 > g0);

    struct st_role_assignment a;
    ra(&a, "aaaaaaaa-0000-4000-8000-000000000001", "p1", "r1", "/");
    OK(store_role_assignment_put(f->st, &a));
    int64_t g2 = gen(f->st);
    assert_true(g2 > g1);
    OK(store_role_assignment_delete(f->st, a.id));
    int64_t g3 = gen(f->st);
    assert_true(g3 > g2);

    /* secrets and meta settings are not RBAC/identity state: no bump */
    put_vault(f->st, "v");
    settle();
    int64_t g4 = gen(f->st);
    add_secret(f->st, "v", "s", "0001", "x", 1);
    OK(store_meta_set(f->st, "k", "v"));
    assert_int_equal(gen(f->st), g4);

    /* a failed write leaves it alone */
    RC(store_role_assignment_delete(f->st, a.id), MV_ERR_NOT_FOUND);
    assert_int_equal(gen(f->st), g4);
}

/* ---- principals and keys ---- */

static void test_principals(void **state)
{
    struct fx *f = *state;
    struct st_principal p = {.kind = ST_PRINCIPAL_ADMIN};
    snprintf(p.id, sizeof p.id, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa");
    snprintf(p.client_id, sizeof p.client_id, "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb");
    snprintf(p.name, sizeof p.name, "admin");
    p.public_key_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    OK(store_principal_put(f->st, &p));

    struct st_principal out;
    OK(store_principal_get(f->st, p.id, &out));
    assert_int_equal(out.kind, ST_PRINCIPAL_ADMIN);
    assert_string_equal(out.name, "admin");
    assert_string_equal(out.resource_id, "");
    assert_string_equal(out.public_key_pem, p.public_key_pem);
    st_principal_clear(&out);
    assert_null(out.public_key_pem);

    /* by client id, GUID compared case-insensitively */
    OK(store_principal_by_client(f->st, "BBBBBBBB-BBBB-4BBB-8BBB-BBBBBBBBBBBB", &out));
    assert_string_equal(out.id, p.id);
    st_principal_clear(&out);
    RC(store_principal_by_client(f->st, "cccccccc-cccc-4ccc-8ccc-cccccccccccc", &out),
       MV_ERR_NOT_FOUND);
    assert_null(out.public_key_pem);

    /* a system-assigned principal without a key; put again updates it */
    struct st_principal sp = {.kind = ST_PRINCIPAL_SYSTEM};
    snprintf(sp.id, sizeof sp.id, "dddddddd-dddd-4ddd-8ddd-dddddddddddd");
    snprintf(sp.client_id, sizeof sp.client_id, "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee");
    snprintf(sp.name, sizeof sp.name, "vm1");
    snprintf(sp.resource_id, sizeof sp.resource_id, "/subscriptions/s/vm1");
    OK(store_principal_put(f->st, &sp));
    snprintf(sp.name, sizeof sp.name, "vm1-renamed");
    OK(store_principal_put(f->st, &sp));
    OK(store_principal_get(f->st, sp.id, &out));
    assert_string_equal(out.name, "vm1-renamed");
    assert_null(out.public_key_pem);
    st_principal_clear(&out);

    /* another principal cannot take an existing client id */
    struct st_principal dup = sp;
    snprintf(dup.id, sizeof dup.id, "ffffffff-ffff-4fff-8fff-ffffffffffff");
    RC(store_principal_put(f->st, &dup), MV_ERR_CONFLICT);
    dup.kind = 9;
    RC(store_principal_put(f->st, &dup), MV_ERR_BAD_REQUEST);

    OK(store_principal_delete(f->st, sp.id));
    RC(store_principal_get(f->st, sp.id, &out), MV_ERR_NOT_FOUND);
    RC(store_principal_delete(f->st, sp.id), MV_ERR_NOT_FOUND);
}

static void test_signing_keys_newest_first(void **state)
{
    struct fx *f = *state;
    struct st_signing_key *keys = NULL;
    size_t n = 99;
    OK(store_signing_keys(f->st, &keys, &n));
    assert_int_equal(n, 0);
    st_signing_keys_free(keys, n);

    struct st_signing_key k1 = {.kid = "kid-old", .sealed_private_b64 = "c2VhbGVkMQ==",
                                .public_pem = "pem1", .x5c_b64 = "x1", .created = 100};
    struct st_signing_key k2 = {.kid = "kid-new", .sealed_private_b64 = "c2VhbGVkMg==",
                                .public_pem = "pem2", .x5c_b64 = "x2", .created = 200};
    OK(store_signing_key_put(f->st, &k1));
    OK(store_signing_key_put(f->st, &k2));
    k1.retired = 200; /* rotation rewrites the old key's row */
    OK(store_signing_key_put(f->st, &k1));
    OK(store_signing_keys(f->st, &keys, &n));
    assert_int_equal(n, 2);
    assert_string_equal(keys[0].kid, "kid-new");
    assert_int_equal(keys[0].retired, 0);
    assert_string_equal(keys[0].sealed_private_b64, "c2VhbGVkMg==");
    assert_string_equal(keys[1].kid, "kid-old");
    assert_int_equal(keys[1].retired, 200);
    assert_string_equal(keys[1].public_pem, "pem1");
    assert_string_equal(keys[1].x5c_b64, "x1");
    st_signing_keys_free(keys, n);

    struct st_signing_key bad = {.kid = "k"};
    RC(store_signing_key_put(f->st, &bad), MV_ERR_BAD_REQUEST);

    /* retire: the row is gone, and the generation moved (validators and signers follow it) */
    int64_t g0 = 0, g1 = 0;
    OK(store_generation(f->st, &g0));
    OK(store_signing_key_delete(f->st, "kid-old"));
    OK(store_generation(f->st, &g1));
    assert_true(g1 != g0);
    RC(store_signing_key_delete(f->st, "kid-old"), MV_ERR_NOT_FOUND);
    OK(store_signing_keys(f->st, &keys, &n));
    assert_int_equal(n, 1);
    assert_string_equal(keys[0].kid, "kid-new");
    st_signing_keys_free(keys, n);
}

/* ---- VMs, identities, nodes, join tokens ---- */

static void test_vms_and_uai(void **state)
{
    struct fx *f = *state;
    put_vm(f->st, "WebVM");
    put_vm(f->st, "apple");
    struct st_vm vm;
    OK(store_vm_get(f->st, "webvm", &vm)); /* case-insensitive name */
    assert_string_equal(vm.name, "WebVM");
    assert_int_equal(vm.system_assigned, 1);
    assert_int_equal(vm.created, 100);
    RC(store_vm_get(f->st, "nope", &vm), MV_ERR_NOT_FOUND);

    /* upsert through another case: first case kept, fields replaced */
    struct st_vm up = vm;
    snprintf(up.name, sizeof up.name, "WEBVM");
    up.system_assigned = 0;
    up.system_principal_id[0] = '\0';
    OK(store_vm_put(f->st, &up));
    OK(store_vm_get(f->st, "webvm", &vm));
    assert_string_equal(vm.name, "WebVM");
    assert_int_equal(vm.system_assigned, 0);
    assert_string_equal(vm.system_principal_id, "");

    struct st_vm *vms = NULL;
    size_t n = 0;
    OK(store_vm_list(f->st, &vms, &n));
    assert_int_equal(n, 2);
    assert_string_equal(vms[0].name, "apple"); /* NOCASE order */
    assert_string_equal(vms[1].name, "WebVM");
    free(vms);

    put_identity(f->st, "IdA", "a0000000-0000-4000-8000-000000000000");
    put_identity(f->st, "idB", "b0000000-0000-4000-8000-000000000000");
    put_identity(f->st, "idC", "c0000000-0000-4000-8000-000000000000");

    char(*names)[ST_NAME] = NULL;
    OK(store_vm_uai_list(f->st, "webvm", &names, &n));
    assert_int_equal(n, 0);
    free(names);

    const char *set1[] = {"idb", "IDA"};
    OK(store_vm_uai_set(f->st, "WebVM", set1, 2));
    OK(store_vm_uai_list(f->st, "WEBVM", &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "idB"); /* order given, identity's own case */
    assert_string_equal(names[1], "IdA");
    free(names);

    /* set replaces the whole list; a duplicate (any case) is one link */
    const char *set2[] = {"idC", "IDC"};
    OK(store_vm_uai_set(f->st, "webvm", set2, 2));
    OK(store_vm_uai_list(f->st, "webvm", &names, &n));
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "idC");
    free(names);

    /* an unknown identity fails the whole set: the old list stays */
    const char *set3[] = {"IdA", "ghost"};
    RC(store_vm_uai_set(f->st, "webvm", set3, 2), MV_ERR_NOT_FOUND);
    OK(store_vm_uai_list(f->st, "webvm", &names, &n));
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "idC");
    free(names);

    RC(store_vm_uai_set(f->st, "ghostvm", set1, 2), MV_ERR_NOT_FOUND);
    names = NULL;
    RC(store_vm_uai_list(f->st, "ghostvm", &names, &n), MV_ERR_NOT_FOUND);
    assert_null(names);

    /* the empty set clears */
    OK(store_vm_uai_set(f->st, "webvm", NULL, 0));
    OK(store_vm_uai_list(f->st, "webvm", &names, &n));
    assert_int_equal(n, 0);
    free(names);

    /* vm put keeps the links (upsert, not delete + insert) */
    OK(store_vm_uai_set(f->st, "webvm", set1, 2));
    OK(store_vm_put(f->st, &up));
    OK(store_vm_uai_list(f->st, "webvm", &names, &n));
    assert_int_equal(n, 2);
    free(names);
}

static void test_vm_delete_cascades(void **state)
{
    struct fx *f = *state;
    put_vm(f->st, "vm1");
    put_vm(f->st, "vm2");
    put_identity(f->st, "id1", "a0000000-0000-4000-8000-000000000000");
    const char *ids[] = {"id1"};
    OK(store_vm_uai_set(f->st, "vm1", ids, 1));
    OK(store_vm_uai_set(f->st, "vm2", ids, 1));
    struct st_node nd = {.client_id = "c1000000-0000-4000-8000-000000000000", .vm = "vm1",
                         .public_key_pem = "pem", .created = 3};
    OK(store_node_put(f->st, &nd));
    OK(store_join_put(f->st, "hash-vm1", "VM1", 1000));
    OK(store_join_put(f->st, "hash-vm2", "vm2", 1000));

    OK(store_vm_delete(f->st, "Vm1"));
    struct st_vm vm;
    RC(store_vm_get(f->st, "vm1", &vm), MV_ERR_NOT_FOUND);
    struct st_node got;
    RC(store_node_get(f->st, nd.client_id, &got), MV_ERR_NOT_FOUND);
    char vmname[ST_NAME];
    RC(store_join_consume(f->st, "hash-vm1", 10, vmname), MV_ERR_NOT_FOUND);
    RC(store_vm_delete(f->st, "vm1"), MV_ERR_NOT_FOUND);

    /* the identity and the other VM are untouched */
    struct st_identity id;
    OK(store_identity_get(f->st, "id1", &id));
    char(*names)[ST_NAME] = NULL;
    size_t n = 0;
    OK(store_vm_uai_list(f->st, "vm2", &names, &n));
    assert_int_equal(n, 1);
    free(names);
    OK(store_join_consume(f->st, "hash-vm2", 10, vmname));
    assert_string_equal(vmname, "vm2");

    /* a VM re-created under the same name starts with nothing */
    put_vm(f->st, "vm1");
    OK(store_vm_uai_list(f->st, "vm1", &names, &n));
    assert_int_equal(n, 0);
    free(names);
}

static void test_identity_delete_removes_links(void **state)
{
    struct fx *f = *state;
    put_vm(f->st, "vm1");
    put_identity(f->st, "id1", "a0000000-0000-4000-8000-000000000000");
    put_identity(f->st, "id2", "b0000000-0000-4000-8000-000000000000");
    const char *ids[] = {"id1", "id2"};
    OK(store_vm_uai_set(f->st, "vm1", ids, 2));

    struct st_identity id;
    OK(store_identity_get(f->st, "ID1", &id));
    assert_string_equal(id.name, "id1");
    assert_string_equal(id.principal_id, "a0000000-0000-4000-8000-000000000000");
    assert_string_equal(id.resource_id, "/uai/id1");
    assert_int_equal(id.created, 5);
    struct st_identity *list = NULL;
    size_t n = 0;
    OK(store_identity_list(f->st, &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[1].name, "id2");
    free(list);

    OK(store_identity_delete(f->st, "Id1"));
    RC(store_identity_get(f->st, "id1", &id), MV_ERR_NOT_FOUND);
    RC(store_identity_delete(f->st, "id1"), MV_ERR_NOT_FOUND);
    char(*names)[ST_NAME] = NULL;
    OK(store_vm_uai_list(f->st, "vm1", &names, &n));
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "id2");
    free(names);
}

/* Per-process identity bindings: idempotent add, listing by identity/kind/value, remove
 * (NOT_FOUND when absent), gone with the identity and with the VM. */
static void test_identity_bindings(void **state)
{
    struct fx *f = *state;
    put_vm(f->st, "BindVM");
    put_identity(f->st, "id-a", "a0000000-0000-4000-8000-00000000000a");
    put_identity(f->st, "id-b", "b0000000-0000-4000-8000-00000000000b");
    struct st_binding b = {.vm = "BindVM", .identity = "id-a", .kind = ST_BIND_UID,
                           .value = "1001", .created = 9};
    OK(store_binding_add(f->st, &b));
    OK(store_binding_add(f->st, &b)); /* idempotent */
    struct st_binding c = {.vm = "bindvm", .identity = "ID-A", .kind = ST_BIND_CGROUP,
                           .value = "/system.slice/app.service", .created = 9};
    OK(store_binding_add(f->st, &c));
    struct st_binding d = {.vm = "bindvm", .identity = "id-b", .kind = ST_BIND_UID,
                           .value = "0", .created = 9};
    OK(store_binding_add(f->st, &d));
    struct st_binding bad = d;
    bad.kind = 3;
    RC(store_binding_add(f->st, &bad), MV_ERR_BAD_REQUEST);

    struct st_binding *l = NULL;
    size_t n = 0;
    OK(store_binding_list(f->st, "BINDVM", &l, &n));
    assert_int_equal(n, 3);
    assert_int_equal(l[0].kind, ST_BIND_UID);
    assert_string_equal(l[0].value, "1001");
    assert_int_equal(l[1].kind, ST_BIND_CGROUP);
    assert_string_equal(l[1].value, "/system.slice/app.service");
    assert_int_equal(l[2].kind, ST_BIND_UID);
    assert_string_equal(l[2].value, "0");
    free(l);

    OK(store_binding_remove(f->st, &b));
    RC(store_binding_remove(f->st, &b), MV_ERR_NOT_FOUND);
    OK(store_identity_delete(f->st, "id-b")); /* its bindings go with it */
    OK(store_binding_list(f->st, "bindvm", &l, &n));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].value, "/system.slice/app.service");
    free(l);
    OK(store_vm_delete(f->st, "bindvm")); /* and with the VM */
    OK(store_binding_list(f->st, "bindvm", &l, &n));
    assert_int_equal(n, 0);
    free(l);
}

/* Service principals (kind 4), their credentials, and federated identity credentials with
 * Entra's uniqueness rules; both go with their owner. */
static void test_apps_and_federated_credentials(void **state)
{
    struct fx *f = *state;
    struct st_principal sp = {.id = "d0000000-0000-4000-8000-000000000000",
                              .client_id = "e0000000-0000-4000-8000-000000000000",
                              .kind = ST_PRINCIPAL_APP, .name = "ci"};
    OK(store_principal_put(f->st, &sp));
    struct st_principal got;
    OK(store_principal_by_client(f->st, "E0000000-0000-4000-8000-000000000000", &got));
    assert_int_equal(got.kind, ST_PRINCIPAL_APP);
    assert_string_equal(got.resource_id, "");
    st_principal_clear(&got);
    struct st_principal *ps = NULL;
    size_t n = 0;
    OK(store_principal_list(f->st, ST_PRINCIPAL_APP, &ps, &n));
    assert_int_equal(n, 1);
    assert_string_equal(ps[0].name, "ci");
    st_principals_free(ps, n);

    struct st_app_credential c1 = {.key_id = "f1000000-0000-4000-8000-000000000000",
                                   .client_id = "e0000000-0000-4000-8000-000000000000",
                                   .kind = ST_CRED_SECRET, .hint = "abc",
                                   .secret_sha256 = "00ff", .created = 1};
    struct st_app_credential c2 = {.key_id = "f2000000-0000-4000-8000-000000000000",
                                   .client_id = "e0000000-0000-4000-8000-000000000000",
                                   .kind = ST_CRED_CERT, .thumb_sha1 = "aa", .thumb_sha256 = "bb",
                                   .cert_pem = "pem", .created = 2};
    OK(store_app_credential_add(f->st, &c1));
    OK(store_app_credential_add(f->st, &c2));
    struct st_app_credential cc = c2;
    cc.cert_pem = NULL;
    RC(store_app_credential_add(f->st, &cc), MV_ERR_BAD_REQUEST);
    struct st_app_credential *cs = NULL;
    OK(store_app_credentials(f->st, "E0000000-0000-4000-8000-000000000000", &cs, &n));
    assert_int_equal(n, 2);
    assert_int_equal(cs[0].kind, ST_CRED_SECRET);
    assert_string_equal(cs[0].secret_sha256, "00ff");
    assert_null(cs[0].cert_pem);
    assert_string_equal(cs[1].cert_pem, "pem");
    assert_string_equal(cs[1].thumb_sha256, "bb");
    st_app_credentials_free(cs, n);
    OK(store_app_credentials_delete(f->st, "e0000000-0000-4000-8000-000000000000"));
    OK(store_app_credentials(f->st, "e0000000-0000-4000-8000-000000000000", &cs, &n));
    assert_int_equal(n, 0);
    st_app_credentials_free(cs, n);

    struct st_fic fic = {.identity = "id1", .name = "k8s", .issuer = "https://issuer.example",
                         .subject = "system:serviceaccount:ns:sa",
                         .audience = "api://AzureADTokenExchange", .created = 7};
    RC(store_fic_put(f->st, &fic), MV_ERR_NOT_FOUND); /* no such identity */
    put_identity(f->st, "id1", "a0000000-0000-4000-8000-000000000000");
    OK(store_fic_put(f->st, &fic));
    struct st_fic other = fic;
    snprintf(other.name, sizeof other.name, "other");
    RC(store_fic_put(f->st, &other), MV_ERR_CONFLICT); /* (issuer, subject) taken */
    snprintf(other.subject, sizeof other.subject, "System:serviceaccount:ns:sa"); /* exact */
    OK(store_fic_put(f->st, &other));
    snprintf(fic.audience, sizeof fic.audience, "aud2");
    OK(store_fic_put(f->st, &fic)); /* update in place */
    struct st_fic g;
    OK(store_fic_get(f->st, "ID1", "K8S", &g));
    assert_string_equal(g.name, "k8s");
    assert_string_equal(g.audience, "aud2");
    assert_int_equal(g.created, 7);
    struct st_fic *fl = NULL;
    OK(store_fic_list(f->st, "id1", &fl, &n));
    assert_int_equal(n, 2);
    assert_string_equal(fl[0].name, "k8s");
    assert_string_equal(fl[1].name, "other");
    free(fl);
    OK(store_fic_delete(f->st, "id1", "other"));
    RC(store_fic_delete(f->st, "id1", "other"), MV_ERR_NOT_FOUND);
    RC(store_fic_get(f->st, "id1", "other", &g), MV_ERR_NOT_FOUND);
    OK(store_identity_delete(f->st, "id1")); /* takes its credentials along */
    OK(store_fic_list(f->st, "id1", &fl, &n));
    assert_int_equal(n, 0);
    free(fl);
}

static void test_nodes(void **state)
{
    struct fx *f = *state;
    struct st_node nd = {.client_id = "c1000000-0000-4000-8000-000000000000", .vm = "vm1",
                         .public_key_pem = "pem-1", .created = 3};
    RC(store_node_put(f->st, &nd), MV_ERR_NOT_FOUND); /* no such VM */
    put_vm(f->st, "vm1");
    OK(store_node_put(f->st, &nd));
    struct st_node got;
    OK(store_node_get(f->st, "C1000000-0000-4000-8000-000000000000", &got));
    assert_string_equal(got.vm, "vm1");
    assert_string_equal(got.public_key_pem, "pem-1");
    assert_int_equal(got.created, 3);
    st_node_clear(&got);
    assert_null(got.public_key_pem);

    nd.public_key_pem = "pem-2"; /* re-enrollment replaces the key */
    OK(store_node_put(f->st, &nd));
    OK(store_node_get(f->st, nd.client_id, &got));
    assert_string_equal(got.public_key_pem, "pem-2");
    st_node_clear(&got);
    RC(store_node_get(f->st, "nobody", &got), MV_ERR_NOT_FOUND);
    assert_null(got.public_key_pem);
}

static void test_join_tokens(void **state)
{
    struct fx *f = *state;
    char vm[ST_NAME];
    RC(store_join_put(f->st, "h0", "ghost", 100), MV_ERR_NOT_FOUND); /* no such VM */
    put_vm(f->st, "Vm1");
    OK(store_join_put(f->st, "h1", "vm1", 100));
    RC(store_join_put(f->st, "h1", "vm1", 100), MV_ERR_CONFLICT);

    OK(store_join_consume(f->st, "h1", 50, vm));
    assert_string_equal(vm, "vm1");
    RC(store_join_consume(f->st, "h1", 50, vm), MV_ERR_NOT_FOUND); /* once only */
    assert_string_equal(vm, "");

    OK(store_join_put(f->st, "h2", "vm1", 100));
    RC(store_join_consume(f->st, "h2", 100, vm), MV_ERR_NOT_FOUND); /* expires == now: expired */
    RC(store_join_consume(f->st, "h2", 200, vm), MV_ERR_NOT_FOUND);
    OK(store_join_consume(f->st, "h2", 99, vm)); /* the refusals did not spend it */
    RC(store_join_consume(f->st, "unknown", 1, vm), MV_ERR_NOT_FOUND);
    RC(store_join_consume(f->st, "H2", 1, vm), MV_ERR_NOT_FOUND); /* hashes are exact */
}

/* ---- vaults, role assignments ---- */

static void test_vaults(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "Dev");
    put_vault(f->st, "alpha");
    struct st_vault v;
    OK(store_vault_get(f->st, "DEV", &v));
    assert_string_equal(v.name, "Dev");
    assert_int_equal(v.soft_delete_days, 90);
    v.purge_protection = 1;
    v.soft_delete_days = 7;
    OK(store_vault_put(f->st, &v));
    OK(store_vault_get(f->st, "dev", &v));
    assert_int_equal(v.purge_protection, 1);
    assert_int_equal(v.soft_delete_days, 7);

    struct st_vault *list = NULL;
    size_t n = 0;
    OK(store_vault_list(f->st, &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alpha");
    free(list);

    add_secret(f->st, "dev", "s1", "0001", "x", 1);
    add_secret(f->st, "dev", "s2", "0001", "y", 1);
    struct st_secret s;
    OK(store_secret_delete(f->st, "dev", "s2", 10, 7, 1, &s));
    st_secret_clear(&s);
    OK(store_vault_delete(f->st, "dEv"));
    RC(store_vault_get(f->st, "dev", &v), MV_ERR_NOT_FOUND);
    RC(store_vault_delete(f->st, "dev"), MV_ERR_NOT_FOUND);
    put_vault(f->st, "dev"); /* secrets went with the vault, deleted ones too */
    RC(store_secret_get(f->st, "dev", "s1", NULL, &s), MV_ERR_NOT_FOUND);
    RC(store_secret_get_deleted(f->st, "dev", "s2", &s), MV_ERR_NOT_FOUND);
    add_secret(f->st, "dev", "s2", "0002", "z", 1); /* name free again */
}

static void test_role_assignments(void **state)
{
    struct fx *f = *state;
    const char *vault_scope = "/subscriptions/S/resourceGroups/RG/providers/"
                              "Microsoft.KeyVault/vaults/Dev";
    struct st_role_assignment a;
    ra(&a, "10000000-0000-4000-8000-000000000001", "p1", "role-officer", vault_scope);
    OK(store_role_assignment_put(f->st, &a));
    ra(&a, "10000000-0000-4000-8000-000000000002", "p1", "role-owner", "/");
    OK(store_role_assignment_put(f->st, &a));
    ra(&a, "10000000-0000-4000-8000-000000000003", "p2", "role-user", vault_scope);
    OK(store_role_assignment_put(f->st, &a));

    /* same principal, role and scope (any case) under another id: Azure's 409 */
    ra(&a, "10000000-0000-4000-8000-000000000004", "P2", "ROLE-USER",
       "/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/dev");
    RC(store_role_assignment_put(f->st, &a), MV_ERR_CONFLICT);
    /* a put of an existing id is an update */
    ra(&a, "10000000-0000-4000-8000-000000000003", "p2", "role-user", vault_scope);
    a.created = 42;
    OK(store_role_assignment_put(f->st, &a));

    struct st_role_assignment got;
    OK(store_role_assignment_get(f->st, "10000000-0000-4000-8000-000000000003", &got));
    assert_int_equal(got.created, 42);
    assert_string_equal(got.scope, vault_scope); /* as given */
    RC(store_role_assignment_get(f->st, "nope", &got), MV_ERR_NOT_FOUND);

    struct st_role_assignment *l = NULL;
    size_t n = 0;
    OK(store_role_assignment_list(f->st, NULL, NULL, &l, &n));
    assert_int_equal(n, 3);
    free(l);
    OK(store_role_assignment_list(f->st, "p1", NULL, &l, &n));
    assert_int_equal(n, 2);
    assert_string_equal(l[0].role_id, "role-officer");
    assert_string_equal(l[1].role_id, "role-owner");
    free(l);
    /* scope filter: equality, case-insensitive; not a prefix match */
    OK(store_role_assignment_list(
        f->st, NULL, "/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/DEV",
        &l, &n));
    assert_int_equal(n, 2);
    free(l);
    OK(store_role_assignment_list(f->st, NULL, "/subscriptions/S", &l, &n));
    assert_int_equal(n, 0);
    assert_null(l);
    OK(store_role_assignment_list(f->st, "p2", vault_scope, &l, &n));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].principal_id, "p2");
    free(l);
    OK(store_role_assignment_list(f->st, "p2", "/", &l, &n));
    assert_int_equal(n, 0);
    free(l);

    OK(store_role_assignment_delete(f->st, "10000000-0000-4000-8000-000000000001"));
    RC(store_role_assignment_delete(f->st, "10000000-0000-4000-8000-000000000001"),
       MV_ERR_NOT_FOUND);
    OK(store_role_assignment_list(f->st, "P1", NULL, &l, &n));
    assert_int_equal(n, 1);
    free(l);
}

/* ---- secrets ---- */

/* ---- certificate objects (st_certs.c / pg_certs.c) ---- */

static void put_cert(struct store *st, const char *vault, int kind, const char *name,
                     const char *version, const char *doc, const char *sealed, int64_t created)
{
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    snprintf(o.vault, sizeof o.vault, "%s", vault);
    o.kind = kind;
    snprintf(o.name, sizeof o.name, "%s", name);
    snprintf(o.version, sizeof o.version, "%s", version);
    o.doc = (char *)doc;
    mv_buf_init(&o.sealed, 64);
    OK(mv_buf_adds(&o.sealed, sealed));
    o.created = created;
    OK(store_cert_put(st, &o));
    mv_buf_free(&o.sealed);
}

static void test_cert_objects(void **state)
{
    struct fx *f = *state;
    struct st_certobj o;
    struct st_certobj *rows = NULL;
    size_t n = 0;
    put_vault(f->st, "dev");
    put_cert(f->st, "dev", ST_CERT_VERSION, "WebCert", "a1", "{\"v\":1}", "key1", 100);
    put_cert(f->st, "dev", ST_CERT_VERSION, "WebCert", "b2", "{\"v\":2}", "key2", 200);
    put_cert(f->st, "dev", ST_CERT_VERSION, "WebCert", "a0", "{\"v\":3}", "key3", 200);
    put_cert(f->st, "dev", ST_CERT_POLICY, "webcert", "", "{\"p\":1}", "", 100);
    put_cert(f->st, "dev", ST_CERT_VERSION, "Api", "c1", "{}", "k", 50);
    put_cert(f->st, "dev", ST_CERT_ISSUER, "MyCA", "", "{\"provider\":\"x\"}", "", 10);

    /* latest = greatest created, then insert order; name as first stored */
    OK(store_cert_get(f->st, "DEV", ST_CERT_VERSION, "webCERT", NULL, 0, &o));
    assert_string_equal(o.version, "a0");
    assert_string_equal(o.name, "WebCert");
    assert_string_equal(o.doc, "{\"v\":3}");
    assert_memory_equal(o.sealed.p, "key3", 4);
    st_certobj_clear(&o);
    OK(store_cert_get(f->st, "dev", ST_CERT_VERSION, "webcert", "A1", 0, &o));
    assert_string_equal(o.doc, "{\"v\":1}");
    st_certobj_clear(&o);
    RC(store_cert_get(f->st, "dev", ST_CERT_VERSION, "webcert", "zz", 0, &o), MV_ERR_NOT_FOUND);
    RC(store_cert_get(f->st, "dev", ST_CERT_PENDING, "webcert", "", 0, &o), MV_ERR_NOT_FOUND);
    OK(store_cert_get(f->st, "dev", ST_CERT_POLICY, "webcert", "", 0, &o));
    assert_int_equal(o.sealed.len, 0);
    st_certobj_clear(&o);

    /* a put on the same key replaces doc and keeps created */
    put_cert(f->st, "dev", ST_CERT_POLICY, "WEBCERT", "", "{\"p\":2}", "", 999);
    OK(store_cert_get(f->st, "dev", ST_CERT_POLICY, "webcert", NULL, 0, &o));
    assert_string_equal(o.doc, "{\"p\":2}");
    assert_int_equal(o.created, 100);
    st_certobj_clear(&o);

    /* names: latest of each, paged; versions of one name, paged */
    OK(store_cert_list(f->st, "dev", ST_CERT_VERSION, NULL, NULL, 1, 0, &rows, &n));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].name, "Api");
    st_certobjs_free(rows, n);
    OK(store_cert_list(f->st, "dev", ST_CERT_VERSION, NULL, "api", 10, 0, &rows, &n));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].version, "a0");
    assert_null(rows[0].sealed.p);
    st_certobjs_free(rows, n);
    OK(store_cert_list(f->st, "dev", ST_CERT_VERSION, "WebCert", NULL, 2, 0, &rows, &n));
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].version, "a0");
    assert_string_equal(rows[1].version, "a1");
    st_certobjs_free(rows, n);
    OK(store_cert_list(f->st, "dev", ST_CERT_VERSION, "WebCert", "a1", 2, 0, &rows, &n));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].version, "b2");
    st_certobjs_free(rows, n);

    /* claim: a compare and swap on the policy's doc; the second of two claims loses */
    OK(store_cert_claim(f->st, "dev", "WEBCERT", "{\"p\":2}", "{\"p\":2,\"c\":1}"));
    RC(store_cert_claim(f->st, "dev", "webcert", "{\"p\":2}", "{\"p\":2,\"c\":2}"), MV_ERR_CONFLICT);
    RC(store_cert_claim(f->st, "dev", "nothing", "{}", "{}"), MV_ERR_CONFLICT);
    OK(store_cert_get(f->st, "dev", ST_CERT_POLICY, "webcert", NULL, 0, &o));
    assert_string_equal(o.doc, "{\"p\":2,\"c\":1}");
    assert_int_equal(o.created, 100);
    st_certobj_clear(&o);

    /* soft delete: versions and policy leave the live views, come back on recover */
    OK(store_cert_mark(f->st, "dev", "webcert", 1000, 2000));
    RC(store_cert_get(f->st, "dev", ST_CERT_VERSION, "webcert", NULL, 0, &o), MV_ERR_NOT_FOUND);
    OK(store_cert_get(f->st, "dev", ST_CERT_VERSION, "webcert", NULL, 1, &o));
    assert_int_equal(o.deleted, 1000);
    assert_int_equal(o.purge_at, 2000);
    st_certobj_clear(&o);
    OK(store_cert_list(f->st, "dev", ST_CERT_VERSION, NULL, NULL, 10, 0, &rows, &n));
    assert_int_equal(n, 1);
    st_certobjs_free(rows, n);
    OK(store_cert_list(f->st, "dev", ST_CERT_VERSION, NULL, NULL, 10, 1, &rows, &n));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].name, "WebCert");
    st_certobjs_free(rows, n);
    OK(store_cert_mark(f->st, "dev", "webcert", 0, 0));
    OK(store_cert_get(f->st, "dev", ST_CERT_POLICY, "webcert", NULL, 0, &o));
    st_certobj_clear(&o);
    RC(store_cert_mark(f->st, "dev", "nothing", 1, 1), MV_ERR_NOT_FOUND);

    /* remove: one version, then everything of the name but issuers */
    OK(store_cert_remove(f->st, "dev", ST_CERT_VERSION, "webcert", "A0"));
    OK(store_cert_get(f->st, "dev", ST_CERT_VERSION, "webcert", NULL, 0, &o));
    assert_string_equal(o.version, "b2");
    st_certobj_clear(&o);
    OK(store_cert_remove(f->st, "dev", 0, "webcert", NULL));
    RC(store_cert_get(f->st, "dev", ST_CERT_POLICY, "webcert", NULL, 0, &o), MV_ERR_NOT_FOUND);
    RC(store_cert_remove(f->st, "dev", 0, "webcert", NULL), MV_ERR_NOT_FOUND);
    OK(store_cert_get(f->st, "dev", ST_CERT_ISSUER, "myca", NULL, 0, &o));
    st_certobj_clear(&o);

    /* an unknown vault is not found; deleting the vault takes its certificates */
    struct st_certobj g;
    memset(&g, 0, sizeof g);
    snprintf(g.vault, sizeof g.vault, "ghost");
    g.kind = ST_CERT_VERSION;
    snprintf(g.name, sizeof g.name, "x");
    snprintf(g.version, sizeof g.version, "v");
    g.doc = (char *)"{}";
    RC(store_cert_put(f->st, &g), MV_ERR_NOT_FOUND);
    OK(store_vault_delete(f->st, "dev"));
    RC(store_cert_get(f->st, "dev", ST_CERT_VERSION, "api", NULL, 0, &o), MV_ERR_NOT_FOUND);
}

/* Vault "dev" with a live certificate "WebCert"; s: a version of secret name in it. */
static void cert_owned_fixture(struct fx *f, struct st_secret *s, const char *name)
{
    memset(s, 0, sizeof *s);
    s->enabled = 1;
    s->created = s->updated = 5;
    put_vault(f->st, "dev");
    put_cert(f->st, "dev", ST_CERT_VERSION, "WebCert", "c1", "{}", "k", 100);
    snprintf(s->vault, sizeof s->vault, "dev");
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->version, sizeof s->version, "0123456789abcdef0123456789abcdef");
    mv_buf_init(&s->sealed, 64);
    OK(mv_buf_adds(&s->sealed, "plain"));
}

/* store_secret_set (a client's PUT) refuses a name a live certificate owns, in the write's own
 * transaction; store_secret_add (the certificate's own write) does not; a soft-deleted
 * certificate does not own the name for a PUT; and a refused set writes nothing. */
static void test_secret_set_refuses_certificate_names(void **state)
{
    struct fx *f = *state;
    struct st_secret s, got;
    memset(&got, 0, sizeof got);
    cert_owned_fixture(f, &s, "webcert");
    RC(store_secret_set(f->st, &s), MV_ERR_FORBIDDEN);
    RC(store_secret_get(f->st, "dev", "webcert", NULL, &got), MV_ERR_NOT_FOUND);
    OK(store_secret_add(f->st, &s)); /* the certificate's managed secret */
    OK(store_secret_get(f->st, "dev", "WEBCERT", NULL, &got));
    st_secret_clear(&got);
    snprintf(s.name, sizeof s.name, "other");
    OK(store_secret_set(f->st, &s)); /* a name no certificate owns */
    assert_string_equal(s.name, "other");
    OK(store_cert_mark(f->st, "dev", "webcert", 1000, 2000));
    snprintf(s.name, sizeof s.name, "WebCert");
    snprintf(s.version, sizeof s.version, "fedcba9876543210fedcba9876543210");
    OK(store_secret_set(f->st, &s));
    assert_string_equal(s.name, "webcert"); /* the stored spelling */
    mv_buf_free(&s.sealed);
}

/* A client's DELETE of a certificate's managed secret is refused in the delete's own
 * transaction (it used to be a separate read on the loop before the delete); the certificate's
 * own delete (unmanaged = 0) goes through. */
static void test_secret_delete_refuses_certificate_names(void **state)
{
    struct fx *f = *state;
    struct st_secret s, got;
    memset(&got, 0, sizeof got);
    cert_owned_fixture(f, &s, "WebCert");
    OK(store_secret_add(f->st, &s)); /* the certificate's managed secret */
    for (int days = 0; days <= 7; days += 7) {
        RC(store_secret_delete(f->st, "dev", "webcert", 1000, days, 1, &got), MV_ERR_FORBIDDEN);
        OK(store_secret_get(f->st, "dev", "WebCert", NULL, &got)); /* untouched */
        st_secret_clear(&got);
    }
    snprintf(s.name, sizeof s.name, "plain");
    OK(store_secret_set(f->st, &s));
    OK(store_secret_delete(f->st, "dev", "plain", 1000, 7, 1, &got)); /* no certificate: deleted */
    st_secret_clear(&got);
    OK(store_secret_delete(f->st, "dev", "webcert", 1000, 7, 0, &got)); /* the certificate's own */
    assert_int_equal(got.deleted, 1000);
    st_secret_clear(&got);
    RC(store_secret_get(f->st, "dev", "WebCert", NULL, &got), MV_ERR_NOT_FOUND);
    mv_buf_free(&s.sealed);
}

/* ---- the group-commit writer ---- */

/* A writer job: a secret add (or, with block set, a job that holds its writer thread until
 * released, so the jobs queued meanwhile make one batch). */
struct wjob {
    struct st_secret s;
    int block;
    mv_rc rc;
    int done;
    int deferred; /* store_secret_set_deferred: pipelined on PostgreSQL */
    mv_rc stored;
};

struct wjobs {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, released, left;
    struct event_base *base;
    struct wjob j[STORE_WRITER_PG_THREADS + 6];
};

static struct wjobs *wj_all;

static mv_rc wjob_run(struct store *st, void *arg)
{
    struct wjob *j = arg;
    if (!j->block && j->deferred)
        return store_secret_set_deferred(st, &j->s, &j->stored);
    if (!j->block)
        return store_secret_add(st, &j->s);
    pthread_mutex_lock(&wj_all->mu);
    wj_all->started++;
    pthread_cond_broadcast(&wj_all->cv);
    while (!wj_all->released)
        pthread_cond_wait(&wj_all->cv, &wj_all->mu);
    pthread_mutex_unlock(&wj_all->mu);
    return MV_OK;
}

static void wjob_done(void *arg, mv_rc rc)
{
    struct wjob *j = arg;
    j->rc = rc == MV_OK && j->deferred ? j->stored : rc;
    j->done = 1;
    if (--wj_all->left == 0)
        event_base_loopbreak(wj_all->base);
}

static void wjob_secret(struct wjob *j, const char *vault, const char *name, const char *version,
                        const char *value)
{
    memset(j, 0, sizeof *j);
    j->s.enabled = 1;
    j->s.created = j->s.updated = 100;
    snprintf(j->s.vault, sizeof j->s.vault, "%s", vault);
    snprintf(j->s.name, sizeof j->s.name, "%s", name);
    snprintf(j->s.version, sizeof j->s.version, "%s", version);
    mv_buf_init(&j->s.sealed, 64);
    OK(mv_buf_adds(&j->s.sealed, value));
}

/* Fresh wjobs in *all (wj_all), with its event base. */
static void wjobs_init(struct wjobs *all)
{
    memset(all, 0, sizeof *all);
    wj_all = all;
    pthread_mutex_init(&all->mu, NULL);
    pthread_cond_init(&all->cv, NULL);
    assert_int_equal(evthread_use_pthreads(), 0);
    all->base = event_base_new();
    assert_non_null(all->base);
}

/* Occupies every writer thread with a job that waits for all->released, so that the jobs
 * submitted next queue up as one batch. Returns how many of all->j it used. */
static int block_writer_threads(struct fx *f, struct store_writer *w, struct wjobs *all)
{
    int threads = store_shared(f->st) ? STORE_WRITER_PG_THREADS : 1, n = 0;
    for (int i = 0; i < threads; i++) {
        memset(&all->j[n], 0, sizeof all->j[n]);
        all->j[n].block = 1;
        OK(store_writer_submit(w, all->base, wjob_run, wjob_done, &all->j[n++]));
        pthread_mutex_lock(&all->mu);
        while (all->started < i + 1)
            pthread_cond_wait(&all->cv, &all->mu);
        pthread_mutex_unlock(&all->mu);
    }
    return n;
}

/* How many batches the writer ran again job by job (mivault_store_errors_total, op
 * "write_batch_isolate"), from the process's metrics. */
static long isolated_batches(void)
{
    mv_buf b;
    mv_buf_init(&b, 1 << 20);
    OK(mv_metrics_render(&b));
    const char *key = "op=\"write_batch_isolate\"} ";
    const char *at = strstr(b.p, key);
    long n = at ? atol(at + strlen(key)) : 0;
    mv_buf_free(&b);
    return n;
}

/* One failing job in a batch fails alone (PostgreSQL runs a batch first without savepoints,
 * then again with one per job when a job failed), and the others commit; a new version of an
 * existing secret reports the name as stored. deferred: the jobs are the vault's PUTs
 * (store_secret_set_deferred), which PostgreSQL pipelines, the whole batch in one round trip,
 * learning of the failed job only at COMMIT. */
static void isolates_a_failing_job(struct fx *f, int deferred)
{
    static struct wjobs all;
    wjobs_init(&all);
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "Taken", "v1", "theirs", 1);
    add_secret(f->st, "dev", "Gone", "v1", "g", 1);
    struct st_secret del;
    OK(store_secret_delete(f->st, "dev", "gone", 50, 90, 1, &del));
    st_secret_clear(&del);

    struct store_writer *w = NULL;
    OK(store_writer_start(f->path, &w));
    /* every writer thread busy, then the jobs queue as one batch */
    int n = block_writer_threads(f, w, &all);
    int first = n;
    wjob_secret(&all.j[n++], "dev", "a", "v1", "A");
    wjob_secret(&all.j[n++], "dev", "taken", "v1", "mine");  /* the version id is someone else's */
    wjob_secret(&all.j[n++], "dev", "TAKEN", "v2", "mine2"); /* a new version: stored spelling */
    wjob_secret(&all.j[n++], "ghost", "b", "v1", "B");      /* no such vault */
    wjob_secret(&all.j[n++], "dev", "gone", "v2", "G");     /* soft-deleted */
    wjob_secret(&all.j[n++], "dev", "c", "v1", "C");
    long isolated0 = isolated_batches();
    for (int i = first; i < n; i++) {
        all.j[i].deferred = deferred;
        OK(store_writer_submit(w, all.base, wjob_run, wjob_done, &all.j[i]));
    }
    all.left = n;
    pthread_mutex_lock(&all.mu);
    all.released = 1;
    pthread_cond_broadcast(&all.cv);
    pthread_mutex_unlock(&all.mu);
    assert_int_equal(event_base_loop(all.base, EVLOOP_NO_EXIT_ON_EMPTY), 0);
    store_writer_stop(w);

    for (int i = 0; i < first; i++)
        OK(all.j[i].rc);
    if (store_shared(f->st))
        assert_true(isolated_batches() > isolated0); /* the lean run failed, then job by job */
    struct wjob *j = &all.j[first];
    OK(j[0].rc);
    RC(j[1].rc, MV_ERR_CONFLICT);
    OK(j[2].rc);
    assert_string_equal(j[2].s.name, "Taken");
    RC(j[3].rc, MV_ERR_NOT_FOUND);
    RC(j[4].rc, MV_ERR_CONFLICT);
    OK(j[5].rc);
    struct st_secret s;
    OK(store_secret_get(f->st, "dev", "a", NULL, &s));
    assert_memory_equal(s.sealed.p, "A", 1);
    st_secret_clear(&s);
    OK(store_secret_get(f->st, "dev", "c", NULL, &s));
    st_secret_clear(&s);
    OK(store_secret_get(f->st, "dev", "taken", "v1", &s));
    assert_memory_equal(s.sealed.p, "theirs", 6);
    st_secret_clear(&s);
    OK(store_secret_get(f->st, "dev", "taken", NULL, &s));
    assert_string_equal(s.version, "v2");
    assert_string_equal(s.name, "Taken");
    st_secret_clear(&s);
    RC(store_secret_get(f->st, "ghost", "b", NULL, &s), MV_ERR_NOT_FOUND);
    for (int i = first; i < n; i++)
        mv_buf_free(&all.j[i].s.sealed);
    event_base_free(all.base);
    pthread_cond_destroy(&all.cv);
    pthread_mutex_destroy(&all.mu);
}

/* A batch mixing pipelined PUTs with jobs that run their statements one at a time: each
 * synchronous statement first reads the answers queued before it, so every job learns its own
 * outcome and the stored spelling, in one transaction. */
static void test_writer_pipelined_batch_mixes_with_synchronous_jobs(void **state)
{
    struct fx *f = *state;
    static struct wjobs all;
    wjobs_init(&all);
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "Taken", "v1", "theirs", 1);
    struct store_writer *w = NULL;
    OK(store_writer_start(f->path, &w));
    int n = block_writer_threads(f, w, &all);
    int first = n;
    long isolated0 = isolated_batches();
    const char *names[] = {"m0", "TAKEN", "m2", "m3", "taken", "m5"};
    const char *versions[] = {"v1", "v2", "v1", "v1", "v3", "v1"};
    for (int i = 0; i < 6; i++) {
        wjob_secret(&all.j[n], "dev", names[i], versions[i], "x");
        all.j[n].deferred = i % 2 == 0 || i == 1; /* 0 1 2 4 pipelined, 3 5 not */
        OK(store_writer_submit(w, all.base, wjob_run, wjob_done, &all.j[n++]));
    }
    all.left = n;
    pthread_mutex_lock(&all.mu);
    all.released = 1;
    pthread_cond_broadcast(&all.cv);
    pthread_mutex_unlock(&all.mu);
    assert_int_equal(event_base_loop(all.base, EVLOOP_NO_EXIT_ON_EMPTY), 0);
    store_writer_stop(w);
    for (int i = first; i < n; i++)
        OK(all.j[i].rc);
    assert_int_equal(isolated_batches(), isolated0); /* all in the first, lean, run */
    assert_string_equal(all.j[first + 1].s.name, "Taken");
    assert_string_equal(all.j[first + 4].s.name, "Taken");
    struct st_secret *rows = NULL;
    size_t k = 0;
    OK(store_secret_versions(f->st, "dev", "taken", NULL, 10, &rows, &k));
    assert_int_equal(k, 3);
    st_secrets_free(rows, k);
    for (int i = 0; i < 6; i += 1) {
        struct st_secret got;
        OK(store_secret_get(f->st, "dev", names[i], versions[i], &got));
        st_secret_clear(&got);
    }
    for (int i = first; i < n; i++)
        mv_buf_free(&all.j[i].s.sealed);
    event_base_free(all.base);
    pthread_cond_destroy(&all.cv);
    pthread_mutex_destroy(&all.mu);
}

static void test_writer_batch_isolates_a_failing_job(void **state) { isolates_a_failing_job(*state, 0); }

static void test_writer_pipelined_batch_isolates_a_failing_job(void **state)
{
    isolates_a_failing_job(*state, 1);
}

static void test_secret_versions_and_get(void **state)
{
    struct fx *f = *state;
    struct st_secret s;
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "DbPassword", "v1", "one", 100);
    add_secret(f->st, "dev", "dbpassword", "v2", "two", 200);
    add_secret(f->st, "dev", "DBPASSWORD", "v0", "three", 200); /* same second: insert order */

    OK(store_secret_get(f->st, "DEV", "dbPASSword", NULL, &s));
    assert_string_equal(s.version, "v0");
    assert_string_equal(s.name, "DbPassword"); /* case as first set */
    assert_int_equal(s.sealed.len, 5);
    assert_memory_equal(s.sealed.p, "three", 5);
    assert_string_equal(s.content_type, "text/plain");
    assert_null(s.tags_json);
    assert_int_equal(s.enabled, 1);
    assert_int_equal(s.deleted, 0);
    st_secret_clear(&s);

    OK(store_secret_get(f->st, "dev", "DbPassword", "V1", &s));
    assert_int_equal(s.sealed.len, 3);
    assert_memory_equal(s.sealed.p, "one", 3);
    assert_string_equal(s.version, "v1");
    st_secret_clear(&s);
    OK(store_secret_get(f->st, "dev", "DbPassword", "", &s)); /* "" = latest */
    assert_string_equal(s.version, "v0");
    st_secret_clear(&s);
    RC(store_secret_get(f->st, "dev", "DbPassword", "v9", &s), MV_ERR_NOT_FOUND);
    RC(store_secret_get(f->st, "dev", "other", NULL, &s), MV_ERR_NOT_FOUND);
    RC(store_secret_get(f->st, "nov", "DbPassword", NULL, &s), MV_ERR_NOT_FOUND);
    assert_null(s.sealed.p);

    /* a reused version is a conflict; a vault that does not exist is not found */
    struct st_secret dup = {.vault = "dev", .name = "dbpassword", .version = "V2", .enabled = 1};
    RC(store_secret_add(f->st, &dup), MV_ERR_CONFLICT);
    snprintf(dup.vault, sizeof dup.vault, "ghost");
    snprintf(dup.version, sizeof dup.version, "v7");
    RC(store_secret_add(f->st, &dup), MV_ERR_NOT_FOUND);
    /* an empty value is still a value */
    snprintf(dup.vault, sizeof dup.vault, "dev");
    snprintf(dup.name, sizeof dup.name, "empty");
    OK(store_secret_add(f->st, &dup));
    OK(store_secret_get(f->st, "dev", "empty", NULL, &s));
    assert_int_equal(s.sealed.len, 0);
    assert_null(s.content_type);
    st_secret_clear(&s);

    /* versions paging, ordered by (created, version) */
    struct st_secret *l = NULL;
    size_t n = 0;
    OK(store_secret_versions(f->st, "dev", "DBPASSWORD", NULL, 2, &l, &n));
    assert_int_equal(n, 2);
    assert_string_equal(l[0].version, "v1");
    assert_string_equal(l[1].version, "v0");
    assert_null(l[0].sealed.p); /* values are not loaded */
    st_secrets_free(l, n);
    OK(store_secret_versions(f->st, "dev", "dbpassword", "v0", 2, &l, &n));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].version, "v2");
    st_secrets_free(l, n);
    OK(store_secret_versions(f->st, "dev", "dbpassword", "v2", 2, &l, &n));
    assert_int_equal(n, 0);
    st_secrets_free(l, n);
    OK(store_secret_versions(f->st, "dev", "dbpassword", "nope", 2, &l, &n));
    assert_int_equal(n, 0);
    st_secrets_free(l, n);
    OK(store_secret_versions(f->st, "dev", "missing", NULL, 25, &l, &n));
    assert_int_equal(n, 0);
    assert_null(l);
}

static void test_secret_update(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "s", "v1", "one", 100);
    add_secret(f->st, "dev", "s", "v2", "two", 200);
    struct st_secret s;
    OK(store_secret_get(f->st, "dev", "s", "v1", &s));
    free(s.content_type);
    s.content_type = NULL;
    s.tags_json = strdup("{\"env\":\"prod\"}");
    s.enabled = 0;
    s.nbf = 10;
    s.exp = 5000;
    s.updated = 300;
    OK(store_secret_update(f->st, &s));
    st_secret_clear(&s);

    OK(store_secret_get(f->st, "dev", "S", "v1", &s));
    assert_null(s.content_type);
    assert_string_equal(s.tags_json, "{\"env\":\"prod\"}");
    assert_int_equal(s.enabled, 0);
    assert_int_equal(s.nbf, 10);
    assert_int_equal(s.exp, 5000);
    assert_int_equal(s.updated, 300);
    assert_int_equal(s.created, 100);
    assert_memory_equal(s.sealed.p, "one", 3); /* value untouched */
    st_secret_clear(&s);
    OK(store_secret_get(f->st, "dev", "s", NULL, &s)); /* other version untouched */
    assert_int_equal(s.enabled, 1);
    assert_string_equal(s.content_type, "text/plain");
    st_secret_clear(&s);

    struct st_secret ghost = {.vault = "dev", .name = "s", .version = "v9"};
    RC(store_secret_update(f->st, &ghost), MV_ERR_NOT_FOUND);
    ghost.version[0] = '\0';
    RC(store_secret_update(f->st, &ghost), MV_ERR_BAD_REQUEST);
}

static void test_secret_list_paging(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    put_vault(f->st, "other");
    char name[32];
    for (int i = 59; i >= 0; i--) { /* inserted out of order, mixed case */
        snprintf(name, sizeof name, "%s%02d", i % 2 ? "Sec" : "sec", i);
        add_secret(f->st, "dev", name, "v1", "a", 10);
        if (i % 3 == 0)
            add_secret(f->st, "dev", name, "v2", "b", 20); /* list shows the latest */
    }
    add_secret(f->st, "other", "sec00", "v1", "x", 1);
    add_secret(f->st, "dev", "gone", "v1", "x", 1);
    struct st_secret del;
    OK(store_secret_delete(f->st, "dev", "gone", 5, 7, 1, &del));
    st_secret_clear(&del);

    int seen[60] = {0};
    char after[MV_SECRET_MAX_NAME + 1] = "";
    size_t pages = 0, total = 0;
    for (;;) {
        struct st_secret *l = NULL;
        size_t n = 0;
        OK(store_secret_list(f->st, "DEV", after[0] ? after : NULL, 25, &l, &n));
        pages++;
        for (size_t i = 0; i < n; i++) {
            assert_null(l[i].sealed.p);
            assert_int_equal(strncasecmp(l[i].name, "sec", 3), 0);
            int idx = (int)strtol(l[i].name + 3, NULL, 10);
            assert_in_range(idx, 0, 59);
            seen[idx]++;
            assert_string_equal(l[i].version, idx % 3 == 0 ? "v2" : "v1");
            if (i > 0)
                assert_true(strcasecmp(l[i - 1].name, l[i].name) < 0);
            if (total + i == 0)
                assert_string_equal(l[i].name, "sec00");
        }
        total += n;
        if (n > 0)
            snprintf(after, sizeof after, "%s", l[n - 1].name);
        st_secrets_free(l, n);
        if (n < 25)
            break;
    }
    assert_int_equal(total, 60);
    assert_int_equal(pages, 3);
    for (int i = 0; i < 60; i++)
        assert_int_equal(seen[i], 1);

    /* after is compared case-insensitively */
    struct st_secret *l = NULL;
    size_t n = 0;
    OK(store_secret_list(f->st, "dev", "SEC57", 25, &l, &n));
    assert_int_equal(n, 2);
    assert_string_equal(l[0].name, "sec58");
    assert_string_equal(l[1].name, "Sec59");
    st_secrets_free(l, n);
    OK(store_secret_list(f->st, "dev", NULL, 0, &l, &n));
    assert_int_equal(n, 0);
    st_secrets_free(l, n);
    OK(store_secret_list(f->st, "none", NULL, 25, &l, &n));
    assert_int_equal(n, 0);
}

static void test_secret_soft_delete_recover_purge(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "Api", "v1", "one", 100);
    add_secret(f->st, "dev", "api", "v2", "two", 200);
    struct st_secret s, d;

    OK(store_secret_delete(f->st, "dev", "API", 1000, 7, 1, &d));
    assert_string_equal(d.version, "v2"); /* latest row, after deletion */
    assert_string_equal(d.name, "Api");
    assert_int_equal(d.deleted, 1000);
    assert_int_equal(d.purge_at, 1000 + 7 * 86400);
    st_secret_clear(&d);
    RC(store_secret_get(f->st, "dev", "api", NULL, &s), MV_ERR_NOT_FOUND);
    RC(store_secret_get(f->st, "dev", "api", "v1", &s), MV_ERR_NOT_FOUND);
    struct st_secret *l = NULL;
    size_t n = 0;
    OK(store_secret_versions(f->st, "dev", "api", NULL, 25, &l, &n));
    assert_int_equal(n, 0);
    OK(store_secret_list(f->st, "dev", NULL, 25, &l, &n));
    assert_int_equal(n, 0);
    RC(store_secret_delete(f->st, "dev", "api", 1001, 7, 1, &d), MV_ERR_NOT_FOUND);

    OK(store_secret_get_deleted(f->st, "dev", "aPi", &s));
    assert_string_equal(s.version, "v2");
    assert_memory_equal(s.sealed.p, "two", 3);
    assert_int_equal(s.purge_at, 1000 + 7 * 86400);
    st_secret_clear(&s);

    /* the name cannot be reused while deleted */
    struct st_secret again = {.vault = "dev", .name = "API", .version = "v3", .enabled = 1};
    RC(store_secret_add(f->st, &again), MV_ERR_CONFLICT);

    add_secret(f->st, "dev", "Other", "v1", "o", 1);
    OK(store_secret_delete(f->st, "dev", "other", 2000, 30, 1, &d));
    st_secret_clear(&d);
    OK(store_secret_list_deleted(f->st, "dev", NULL, 25, &l, &n));
    assert_int_equal(n, 2);
    assert_string_equal(l[0].name, "Api");
    assert_string_equal(l[0].version, "v2");
    assert_string_equal(l[1].name, "Other");
    assert_null(l[0].sealed.p);
    st_secrets_free(l, n);
    OK(store_secret_list_deleted(f->st, "dev", "api", 25, &l, &n));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].name, "Other");
    st_secrets_free(l, n);

    /* recover brings back every version */
    OK(store_secret_recover(f->st, "dev", "API"));
    RC(store_secret_recover(f->st, "dev", "api"), MV_ERR_NOT_FOUND);
    OK(store_secret_get(f->st, "dev", "api", "v1", &s));
    assert_int_equal(s.deleted, 0);
    assert_int_equal(s.purge_at, 0);
    st_secret_clear(&s);
    OK(store_secret_add(f->st, &again));
    RC(store_secret_get_deleted(f->st, "dev", "api", &s), MV_ERR_NOT_FOUND);

    /* purge only works on a deleted secret */
    RC(store_secret_purge(f->st, "dev", "api"), MV_ERR_NOT_FOUND);
    OK(store_secret_purge(f->st, "dev", "OTHER"));
    RC(store_secret_get_deleted(f->st, "dev", "other", &s), MV_ERR_NOT_FOUND);
    RC(store_secret_purge(f->st, "dev", "other"), MV_ERR_NOT_FOUND);
    add_secret(f->st, "dev", "other", "v1", "new", 3000); /* name is free again */
    OK(store_secret_get(f->st, "dev", "OTHER", NULL, &s));
    assert_string_equal(s.name, "other"); /* a new secret: new first case */
    st_secret_clear(&s);

    RC(store_secret_delete(f->st, "dev", "api", 0, 7, 1, &d), MV_ERR_BAD_REQUEST);
    RC(store_secret_delete(f->st, "dev", "api", 5, -1, 1, &d), MV_ERR_BAD_REQUEST);
}

static void test_secret_delete_days_zero_removes(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "tmp", "v1", "one", 100);
    add_secret(f->st, "dev", "tmp", "v2", "two", 200);
    struct st_secret d, s;
    OK(store_secret_delete(f->st, "dev", "TMP", 1000, 0, 1, &d));
    assert_string_equal(d.version, "v2"); /* the row as it was */
    assert_int_equal(d.deleted, 0);
    assert_memory_equal(d.sealed.p, "two", 3);
    st_secret_clear(&d);
    RC(store_secret_get(f->st, "dev", "tmp", "v1", &s), MV_ERR_NOT_FOUND);
    RC(store_secret_get_deleted(f->st, "dev", "tmp", &s), MV_ERR_NOT_FOUND);
    RC(store_secret_delete(f->st, "dev", "tmp", 1000, 0, 1, &d), MV_ERR_NOT_FOUND);
    add_secret(f->st, "dev", "Tmp", "v1", "again", 300); /* v1 is free again */
}

static void test_secret_purge_expired(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    add_secret(f->st, "dev", "a", "v1", "1", 1);
    add_secret(f->st, "dev", "a", "v2", "2", 2);
    add_secret(f->st, "dev", "b", "v1", "1", 1);
    add_secret(f->st, "dev", "live", "v1", "1", 1);
    struct st_secret d;
    OK(store_secret_delete(f->st, "dev", "a", 1000, 7, 1, &d)); /* purge at 1000 + 604800 */
    st_secret_clear(&d);
    OK(store_secret_delete(f->st, "dev", "b", 1000, 90, 1, &d));
    st_secret_clear(&d);

    OK(store_secret_purge_expired(f->st, 1000 + 7 * 86400 - 1));
    OK(store_secret_get_deleted(f->st, "dev", "a", &d));
    st_secret_clear(&d);
    OK(store_secret_purge_expired(f->st, 1000 + 7 * 86400));
    RC(store_secret_get_deleted(f->st, "dev", "a", &d), MV_ERR_NOT_FOUND);
    OK(store_secret_get_deleted(f->st, "dev", "b", &d));
    st_secret_clear(&d);
    OK(store_secret_purge_expired(f->st, INT64_MAX));
    RC(store_secret_get_deleted(f->st, "dev", "b", &d), MV_ERR_NOT_FOUND);
    OK(store_secret_get(f->st, "dev", "live", NULL, &d)); /* live secrets never expire here */
    st_secret_clear(&d);
}

/* ---- connections and transactions ---- */

static void test_two_connections_share_file(void **state)
{
    struct fx *f = *state;
    struct store *b = NULL;
    OK(store_open(f->path, &b));
    int64_t g0 = gen(b);

    put_vm(f->st, "vm1");
    struct st_vm vm;
    OK(store_vm_get(b, "vm1", &vm)); /* committed write is visible to the other */
    assert_true(gen(b) > g0);

    /* an open transaction is invisible until commit; rollback discards */
    OK(store_begin(f->st));
    put_vault(f->st, "txv");
    struct st_vault v;
    RC(store_vault_get(b, "txv", &v), MV_ERR_NOT_FOUND);
    OK(store_commit(f->st));
    OK(store_vault_get(b, "txv", &v));

    OK(store_begin(b));
    OK(store_vault_delete(b, "txv"));
    store_rollback(b);
    OK(store_vault_get(f->st, "txv", &v));

    /* multi-statement calls nest inside a caller's transaction (savepoint) */
    put_identity(f->st, "id1", "a0000000-0000-4000-8000-000000000000");
    const char *ids[] = {"id1"};
    OK(store_begin(f->st));
    OK(store_vm_uai_set(f->st, "vm1", ids, 1));
    const char *bad[] = {"ghost"};
    RC(store_vm_uai_set(f->st, "vm1", bad, 1), MV_ERR_NOT_FOUND); /* undoes only itself */
    OK(store_commit(f->st));
    char(*names)[ST_NAME] = NULL;
    size_t n = 0;
    OK(store_vm_uai_list(b, "vm1", &names, &n));
    assert_int_equal(n, 1);
    free(names);

    OK(store_begin(f->st));
    OK(store_vm_uai_set(f->st, "vm1", NULL, 0));
    store_rollback(f->st);
    OK(store_vm_uai_list(b, "vm1", &names, &n));
    assert_int_equal(n, 1);
    free(names);
    store_rollback(f->st); /* no transaction: harmless */

    store_close(b);
}

/* Several processes opening one new file at once: none fails, the schema is made once. */
static void test_concurrent_first_open(void **state)
{
    struct fx *f = *state;
    char path[512], fresh[64] = "";
    if (pg_base)
        pg_new_db(fresh, sizeof fresh, path, sizeof path);
    else
        snprintf(path, sizeof path, "%s/fresh.db", f->dir);
    enum { KIDS = 12 };
    pid_t pids[KIDS];
    for (int i = 0; i < KIDS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct store *st = NULL;
            int code = store_open(path, &st) == MV_OK ? 0 : 1;
            if (code == 0 && store_meta_set(st, "opened", "yes") != MV_OK)
                code = 2;
            store_close(st);
            _exit(code);
        }
    }
    for (int i = 0; i < KIDS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    struct store *st = NULL;
    OK(store_open(path, &st));
    assert_int_equal(gen(st), 1); /* one migration: the generation row was made once */
    mv_buf b;
    mv_buf_init(&b, 8);
    OK(store_meta_get(st, "opened", &b));
    mv_buf_free(&b);
    store_close(st);
    if (pg_base) {
        pg_drop_db(fresh);
        return;
    }
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* the losers' private init files are gone */
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        assert_null(strstr(e->d_name, ".init-"));
    closedir(d);
}

/* One int PRAGMA read on the store's own connection. */
static int pragma_int(struct store *st, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(st->db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* The kill -9 test below cannot tell synchronous=FULL from OFF: a killed process leaves its
 * writes in the kernel's page cache, which survives it; only a power loss shows the difference,
 * and a test cannot cut the power. So the guarantee is asserted where it is made: every
 * connection store_open hands out (loops and the writer alike) runs WAL with synchronous=FULL
 * (2), i.e. the WAL is fsynced at every commit, and enforces foreign keys. */
static void test_sqlite_durability_pragmas(void **state)
{
    struct fx *f = *state;
    if (pg_base)
        skip();
    struct store *b = NULL;
    OK(store_open(f->path, &b));
    struct store *conns[] = {f->st, b};
    for (size_t i = 0; i < 2; i++) {
        struct store *st = conns[i];
        assert_int_equal(pragma_int(st, "PRAGMA synchronous"), 2);
        assert_int_equal(pragma_int(st, "PRAGMA foreign_keys"), 1);
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(st->db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
        sqlite3_finalize(s);
    }
    store_close(b);
}

/* SQLITE_CORRUPT seen by one connection stops writes and fails the health probe on every
 * connection of the process to that file (the server's loops and its writer each have one),
 * through a link of another name too, and on no other file. */
static void test_sqlite_corrupt_flag_shared_per_file(void **state)
{
    struct fx *f = *state;
    if (pg_base)
        skip();
    char alias[sizeof f->path + 16], other[sizeof f->path + 16];
    snprintf(alias, sizeof alias, "%s/alias.db", f->dir);
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    assert_int_equal(link(f->path, alias), 0);
    struct store *b = NULL, *c = NULL;
    OK(store_open(alias, &b));
    OK(store_open(other, &c));
    OK(store_health(f->st));
    OK(store_health(b));
    sq_mark_corrupt(b, "test", SQLITE_CORRUPT);
    RC(store_health(f->st), MV_ERR_UNAVAILABLE);
    RC(store_health(b), MV_ERR_UNAVAILABLE);
    RC(store_meta_set(f->st, "k", "v"), MV_ERR_UNAVAILABLE);
    RC(store_begin(f->st), MV_ERR_UNAVAILABLE);
    mv_buf v;
    mv_buf_init(&v, 64);
    RC(store_meta_get(f->st, "nope", &v), MV_ERR_NOT_FOUND); /* reads go on */
    mv_buf_free(&v);
    store_close(b); /* the flag stays while a connection to the file is open */
    RC(store_health(f->st), MV_ERR_UNAVAILABLE);
    OK(store_health(c)); /* another file */
    OK(store_meta_set(c, "k", "v"));
    store_close(c);
    unlink(alias);
}

/* An assertion id is accepted once per client while it is kept; an expired one may come back. */
static void test_assertion_jti_used_once(void **state)
{
    struct fx *f = *state;
    const char *c1 = "a0000000-0000-4000-8000-000000000001";
    OK(store_assertion_use(f->st, c1, "j1", 2000, 1000));
    RC(store_assertion_use(f->st, c1, "j1", 2000, 1001), MV_ERR_CONFLICT);
    RC(store_assertion_use(f->st, "A0000000-0000-4000-8000-000000000001", "j1", 2000, 1001),
       MV_ERR_CONFLICT); /* client ids compare case-insensitively */
    OK(store_assertion_use(f->st, c1, "J1", 2000, 1001)); /* jti is case-sensitive */
    OK(store_assertion_use(f->st, "b0000000-0000-4000-8000-000000000002", "j1", 2000, 1001));
    OK(store_assertion_use(f->st, c1, "j1", 4000, 2001)); /* kept until 2000 only */
    RC(store_assertion_use(f->st, c1, "j1", 4000, 2002), MV_ERR_CONFLICT);
    struct store *b = NULL; /* another connection (another server) sees it too */
    OK(store_open(f->path, &b));
    RC(store_assertion_use(b, c1, "j1", 4000, 2003), MV_ERR_CONFLICT);
    store_close(b);
}

/* DESIGN §5: an acknowledged write survives kill -9 (the writer dies holding the connection). */
static void test_write_survives_kill9(void **state)
{
    struct fx *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *st = NULL;
        if (store_open(f->path, &st) != MV_OK)
            _exit(1);
        put_vault(st, "durable");
        if (store_begin(st) != MV_OK)
            _exit(2);
        put_vault(st, "uncommitted");
        raise(SIGKILL);
        _exit(3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    struct st_vault v;
    OK(store_vault_get(f->st, "durable", &v));
    RC(store_vault_get(f->st, "uncommitted", &v), MV_ERR_NOT_FOUND);
    put_vault(f->st, "after"); /* the dead writer's lock is gone */
}

/* ---- PostgreSQL only: failover, idempotent retries, the change feed ---- */

static void secret_with(struct st_secret *s, const char *version, const char *value)
{
    memset(s, 0, sizeof *s);
    snprintf(s->vault, sizeof s->vault, "dev");
    snprintf(s->name, sizeof s->name, "db-pass");
    snprintf(s->version, sizeof s->version, "%s", version);
    s->enabled = 1;
    s->created = s->updated = 10;
    mv_buf_init(&s->sealed, 1024);
    assert_int_equal(mv_buf_adds(&s->sealed, value), MV_OK);
}

static size_t version_count(struct store *st)
{
    struct st_secret *v = NULL;
    size_t n = 0;
    OK(store_secret_versions(st, "dev", "db-pass", NULL, 100, &v, &n));
    st_secrets_free(v, n);
    return n;
}

/* Unknown commit outcome: the first attempt committed (here: through another connection) but
 * its reply was lost; the retry with the same version id must not make a second version. */
static void test_pg_retried_secret_add_makes_one_version(void **state)
{
    struct fx *f = *state;
    struct store *other = NULL;
    struct st_secret s;
    put_vault(f->st, "dev");
    OK(store_open(f->path, &other));
    secret_with(&s, "0123456789abcdef0123456789abcdef", "sealed-bytes-1");
    OK(store_secret_add(other, &s));   /* the attempt whose COMMIT reply was lost */
    OK(store_secret_add(f->st, &s));   /* the retry converges */
    OK(store_secret_add(f->st, &s));
    assert_int_equal(version_count(f->st), 1);
    mv_buf_free(&s.sealed);
    /* the same version id with other bytes is someone else's: CONFLICT */
    secret_with(&s, "0123456789abcdef0123456789abcdef", "sealed-bytes-2");
    RC(store_secret_add(f->st, &s), MV_ERR_CONFLICT);
    assert_int_equal(version_count(f->st), 1);
    mv_buf_free(&s.sealed);
    store_close(other);
}

/* A WARNING while COMMIT runs (what a cancelled synchronous-replication wait looks like,
 * reference/postgres-ha.md §1.5) makes the outcome unknown: the add is re-run and converges
 * on the one version that did commit. The warning comes from a deferred trigger, once. */
static void test_pg_commit_warning_is_unknown_outcome(void **state)
{
    struct fx *f = *state;
    struct st_secret s;
    put_vault(f->st, "dev");
    pg_admin(f->path, "CREATE TABLE warn_once (done boolean NOT NULL)");
    pg_admin(f->path,
             "CREATE FUNCTION warn_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " IF NOT EXISTS (SELECT 1 FROM warn_once) THEN"
             "  INSERT INTO warn_once VALUES (true);"
             "  RAISE WARNING 'canceling wait for synchronous replication due to user request';"
             " END IF; RETURN NULL; END $$");
    pg_admin(f->path, "CREATE CONSTRAINT TRIGGER secrets_warn AFTER INSERT ON secrets"
                      " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION warn_at_commit()");
    secret_with(&s, "fedcba9876543210fedcba9876543210", "sealed-once");
    OK(store_secret_add(f->st, &s));
    mv_buf_free(&s.sealed);
    assert_int_equal(version_count(f->st), 1);
}

/* The first host of a multi-host URL is down: libpq moves on to the next one. */
static void test_pg_multi_host_url_skips_a_dead_host(void **state)
{
    struct fx *f = *state;
    char url[700];
    const char *at = strchr(f->path, '@');
    assert_non_null(at);
    snprintf(url, sizeof url, "postgresql://%.*s127.0.0.1:1,%s", (int)(at + 1 - (f->path + 13)),
             f->path + 13, at + 1);
    struct store *b = NULL;
    OK(store_open(url, &b));
    struct st_vault v;
    put_vault(f->st, "seen");
    OK(store_vault_get(b, "seen", &v));
    store_close(b);
}

static void terminate_backends(struct fx *f)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
             " WHERE datname = '%s' AND pid <> pg_backend_pid()",
             f->dbname);
    pg_admin(pg_base, sql);
}

/* A backend killed under the store (pg_terminate_backend: what a failover does to an open
 * connection, 57P01) is survived by reconnecting; inside a caller's transaction the commit
 * fails with UNAVAILABLE and the next call works again. */
static void test_pg_survives_terminated_backend(void **state)
{
    struct fx *f = *state;
    struct st_vault v;
    put_vault(f->st, "before");
    terminate_backends(f);
    OK(store_vault_get(f->st, "before", &v));     /* a read reconnects */
    terminate_backends(f);
    put_vault(f->st, "after");                     /* so does a write */
    OK(store_vault_get(f->st, "after", &v));
    add_secret(f->st, "after", "s", "00000000000000000000000000000001", "x", 1);
    terminate_backends(f);
    struct st_secret del;
    OK(store_secret_delete(f->st, "after", "s", 100, 7, 1, &del)); /* a multi-statement write */
    assert_int_equal(del.deleted, 100);
    st_secret_clear(&del);

    OK(store_begin(f->st));
    put_vault(f->st, "in-tx");
    terminate_backends(f);
    struct st_vault tv = {.soft_delete_days = 7, .created = 1};
    snprintf(tv.name, sizeof tv.name, "in-tx-2");
    RC(store_vault_put(f->st, &tv), MV_ERR_UNAVAILABLE);
    RC(store_commit(f->st), MV_ERR_UNAVAILABLE);
    assert_non_null(strstr(mv_last_detail(), "lost"));
    RC(store_vault_get(f->st, "in-tx", &v), MV_ERR_NOT_FOUND); /* nothing of it committed */
    put_vault(f->st, "later");
}

/* The writer's lean batch sends BEGIN with its first statement (pg_conn.c begin_and_exec): when
 * its connection was killed between batches, that pipelined exchange fails, the batch runs
 * again on a new connection and the write lands once. Every writer thread's connection is
 * killed, so whichever thread takes the job meets a dead one. */
static void test_pg_writer_lean_batch_survives_terminated_backend(void **state)
{
    struct fx *f = *state;
    static struct wjobs all;
    if (!store_shared(f->st))
        skip();
    memset(&all, 0, sizeof all);
    wj_all = &all;
    assert_int_equal(evthread_use_pthreads(), 0);
    all.base = event_base_new();
    assert_non_null(all.base);
    put_vault(f->st, "dev");
    struct store_writer *w = NULL;
    OK(store_writer_start(f->path, &w));
    for (int round = 0; round < 3; round++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", round);
        wjob_secret(&all.j[round], "dev", name, "v1", "value");
        all.j[round].deferred = round == 2; /* round 1: BEGIN with a synchronous statement
                                                 * (begin_and_exec); round 2: pg_queue */
        all.left = 1;
        OK(store_writer_submit(w, all.base, wjob_run, wjob_done, &all.j[round]));
        assert_int_equal(event_base_loop(all.base, EVLOOP_NO_EXIT_ON_EMPTY), 0);
        OK(all.j[round].rc);
        terminate_backends(f); /* the writer's idle connections die */
    }
    store_writer_stop(w);
    struct st_secret got;
    for (int i = 1; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        OK(store_secret_get(f->st, "dev", name, NULL, &got));
        assert_string_equal(got.version, "v1");
        st_secret_clear(&got);
        struct st_secret *rows = NULL;
        size_t n = 0;
        OK(store_secret_versions(f->st, "dev", name, NULL, 10, &rows, &n));
        assert_int_equal(n, 1);
        st_secrets_free(rows, n);
    }
    for (int i = 0; i < 3; i++)
        mv_buf_free(&all.j[i].s.sealed);
    event_base_free(all.base);
}

static long secrets_feed_rows(struct fx *f)
{
    PGconn *c = PQconnectdb(f->path);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SELECT count(*) FROM change_log WHERE kind = 'secrets'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return n;
}

/* Secret writes log one change-feed row per transaction (PostgreSQL v13), not one per write:
 * three adds in one transaction, one row; a write on its own, one row; a transaction whose
 * only secret write was rolled back to its savepoint, none, and a write after that rollback in
 * the same transaction still logs its row. */
static void test_pg_secrets_feed_one_row_per_transaction(void **state)
{
    struct fx *f = *state;
    if (!store_shared(f->st))
        skip();
    put_vault(f->st, "dev");
    long n0 = secrets_feed_rows(f);
    OK(store_begin(f->st));
    add_secret(f->st, "dev", "a", "v1", "A", 1);
    add_secret(f->st, "dev", "b", "v1", "B", 1);
    add_secret(f->st, "dev", "c", "v1", "C", 1);
    OK(store_commit(f->st));
    assert_int_equal(secrets_feed_rows(f), n0 + 1);
    add_secret(f->st, "dev", "d", "v1", "D", 1);
    assert_int_equal(secrets_feed_rows(f), n0 + 2);
    OK(store_begin(f->st));
    OK(store_savepoint(f->st));
    add_secret(f->st, "dev", "e", "v1", "E", 1);
    store_savepoint_rollback(f->st);
    OK(store_commit(f->st));
    assert_int_equal(secrets_feed_rows(f), n0 + 2);
    OK(store_begin(f->st));
    OK(store_savepoint(f->st));
    add_secret(f->st, "dev", "e", "v1", "E", 1);
    store_savepoint_rollback(f->st);
    add_secret(f->st, "dev", "g", "v1", "G", 1);
    OK(store_commit(f->st));
    assert_int_equal(secrets_feed_rows(f), n0 + 3);
}

/* A change made through another server (another process: here another feed, i.e. another
 * URL string for the same database) shows in store_generation within about a second. */
static void test_pg_change_feed_across_servers(void **state)
{
    struct fx *f = *state;
    char url[600];
    struct store *b = NULL;
    snprintf(url, sizeof url, "%s%sapplication_name=other", f->path, strchr(f->path, '?') ? "&" : "?");
    OK(store_open(url, &b));
    int64_t g0 = gen(b);
    put_vm(f->st, "vm-elsewhere");
    int64_t deadline = 0;
    while (gen(b) == g0 && deadline < 40) {
        usleep(50 * 1000);
        deadline++;
    }
    assert_true(gen(b) > g0); /* within 2 s */
    store_close(b);
}

static void test_pg_unreachable_host_is_named(void **state)
{
    (void)state;
    struct store *st = NULL;
    RC(store_open("postgresql://postgres@127.0.0.1:1/mivault?connect_timeout=2", &st),
       MV_ERR_UNAVAILABLE);
    assert_null(st);
    assert_non_null(strstr(mv_last_detail(), "cannot connect to 127.0.0.1:1"));
    assert_non_null(strstr(mv_last_detail(), "refused"));
    RC(store_open("postgresql://[bad", &st), MV_ERR_BAD_REQUEST);
}


/* ---- Key Vault keys (st_vkeys.c / pg_vkeys.c) ---- */

static void add_key(struct store *st, const char *vault, const char *name, const char *version,
                    const char *sealed, int64_t created, int managed)
{
    struct st_key k = {.enabled = 1, .created = created, .updated = created, .managed = managed};
    snprintf(k.vault, sizeof k.vault, "%s", vault);
    snprintf(k.name, sizeof k.name, "%s", name);
    snprintf(k.version, sizeof k.version, "%s", version);
    mv_buf_init(&k.sealed, 1024);
    OK(mv_buf_adds(&k.sealed, sealed));
    k.jwk_json = "{\"kty\":\"EC\",\"key_ops\":[\"sign\"]}";
    OK(store_key_add(st, &k));
    mv_buf_free(&k.sealed);
}

static void test_key_versions_delete_recover_purge(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    add_key(f->st, "dev", "Cert1", "v1", "sealed-1", 100, 1);
    add_key(f->st, "dev", "cert1", "v2", "sealed-2", 200, 0);
    add_key(f->st, "dev", "other", "w1", "sealed-3", 150, 0);
    struct st_key k, d;
    OK(store_key_get(f->st, "dev", "CERT1", NULL, &k));
    assert_string_equal(k.version, "v2");
    assert_string_equal(k.name, "Cert1"); /* the first spelling */
    assert_memory_equal(k.sealed.p, "sealed-2", 8);
    assert_string_equal(k.jwk_json, "{\"kty\":\"EC\",\"key_ops\":[\"sign\"]}");
    assert_int_equal(k.managed, 0);
    st_key_clear(&k);
    OK(store_key_get(f->st, "dev", "cert1", "V1", &k));
    assert_int_equal(k.managed, 1);
    k.enabled = 0;
    k.exp = 999;
    free(k.jwk_json);
    k.jwk_json = strdup("{\"kty\":\"EC\",\"key_ops\":[]}");
    OK(store_key_update(f->st, &k));
    st_key_clear(&k);
    OK(store_key_get(f->st, "dev", "cert1", "v1", &k));
    assert_int_equal(k.enabled, 0);
    assert_int_equal(k.exp, 999);
    assert_string_equal(k.jwk_json, "{\"kty\":\"EC\",\"key_ops\":[]}");
    st_key_clear(&k);
    struct st_key *l = NULL;
    size_t n = 0;
    OK(store_key_list(f->st, "dev", NULL, 25, &l, &n));
    assert_int_equal(n, 2);
    assert_string_equal(l[0].version, "v2");
    assert_string_equal(l[1].name, "other");
    assert_int_equal(l[0].sealed.len, 0); /* lists never read the private key */
    st_keys_free(l, n);
    OK(store_key_versions(f->st, "dev", "cert1", "v1", 25, &l, &n));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].version, "v2");
    st_keys_free(l, n);
    /* secrets and keys of one name are independent */
    RC(store_secret_get(f->st, "dev", "cert1", NULL, &(struct st_secret){0}), MV_ERR_NOT_FOUND);

    OK(store_key_delete(f->st, "dev", "cert1", 1000, 7, &d));
    assert_string_equal(d.version, "v2");
    assert_int_equal(d.purge_at, 1000 + 7 * 86400);
    st_key_clear(&d);
    RC(store_key_get(f->st, "dev", "cert1", "v1", &k), MV_ERR_NOT_FOUND);
    struct st_key again = {.vault = "dev", .name = "CERT1", .version = "v3", .enabled = 1};
    mv_buf_init(&again.sealed, 16);
    OK(mv_buf_adds(&again.sealed, "x"));
    again.jwk_json = "{}";
    RC(store_key_add(f->st, &again), MV_ERR_CONFLICT);
    OK(store_key_list_deleted(f->st, "dev", NULL, 25, &l, &n));
    assert_int_equal(n, 1);
    st_keys_free(l, n);
    OK(store_key_recover(f->st, "dev", "cert1"));
    OK(store_key_get(f->st, "dev", "cert1", "v1", &k));
    st_key_clear(&k);
    OK(store_key_delete(f->st, "dev", "cert1", 2000, 7, &d));
    st_key_clear(&d);
    OK(store_key_purge_expired(f->st, 2000 + 7 * 86400 - 1));
    OK(store_key_get_deleted(f->st, "dev", "cert1", &k));
    st_key_clear(&k);
    OK(store_key_purge_expired(f->st, 2000 + 7 * 86400));
    RC(store_key_get_deleted(f->st, "dev", "cert1", &k), MV_ERR_NOT_FOUND);
    OK(store_key_add(f->st, &again)); /* the name is free again */
    mv_buf_free(&again.sealed);
    OK(store_key_delete(f->st, "dev", "other", 3000, 7, &d));
    st_key_clear(&d);
    OK(store_key_purge(f->st, "dev", "OTHER"));
    RC(store_key_purge(f->st, "dev", "other"), MV_ERR_NOT_FOUND);
}

static void test_key_policy_put_get_claim(void **state)
{
    struct fx *f = *state;
    put_vault(f->st, "dev");
    struct st_key_policy p = {.vault = "dev", .name = "Rot", .created = 10, .updated = 10};
    p.policy_json = "{\"lifetimeActions\":[]}";
    OK(store_key_policy_put(f->st, &p));
    p.policy_json = "{\"lifetimeActions\":[1]}";
    p.created = p.updated = 20;
    snprintf(p.name, sizeof p.name, "rot");
    OK(store_key_policy_put(f->st, &p));
    struct st_key_policy got;
    OK(store_key_policy_get(f->st, "dev", "ROT", &got));
    assert_string_equal(got.policy_json, "{\"lifetimeActions\":[1]}");
    assert_int_equal(got.created, 10); /* kept on replace */
    assert_int_equal(got.updated, 20);
    assert_string_equal(got.claimed, "");
    free(got.policy_json);
    RC(store_key_policy_get(f->st, "dev", "none", &got), MV_ERR_NOT_FOUND);
    /* one claim per version: the second caller (another server) loses */
    OK(store_key_policy_claim(f->st, "dev", "rot", "v1"));
    RC(store_key_policy_claim(f->st, "dev", "rot", "v1"), MV_ERR_CONFLICT);
    OK(store_key_policy_claim(f->st, "dev", "rot", "v2"));
    struct st_key_policy *l = NULL;
    size_t n = 0;
    OK(store_key_policy_list(f->st, &l, &n));
    assert_int_equal(n, 1);
    assert_string_equal(l[0].claimed, "v2");
    st_key_policies_free(l, n);
}

/* ---- audit checkpoints ---- */

#define W1 "11111111-1111-4111-8111-111111111111"
#define W2 "22222222-2222-4222-8222-222222222222"
#define H4(c) c c c c
#define H(c) H4(H4(H4(c)))

/* Checkpoints of two writers form one chain: seq 1, 2, 3, each linked to the one before and
 * hashed over its fields; the same head pinned again adds nothing; bad fields are refused. */
static void test_checkpoint_chain(void **state)
{
    struct fx *f = *state;
    struct st_checkpoint a, b, c, again;
    OK(store_checkpoint_add(f->st, W1, 5, H("a"), 1000, &a));
    OK(store_checkpoint_add(f->st, W2, 3, H("b"), 1001, &b));
    OK(store_checkpoint_add(f->st, W1, 9, H("c"), 1002, &c));
    assert_int_equal(a.seq, 1);
    assert_int_equal(b.seq, 2);
    assert_int_equal(c.seq, 3);
    assert_string_equal(a.prev_hash, H("0"));
    assert_string_equal(b.prev_hash, a.hash);
    assert_string_equal(c.prev_hash, b.hash);
    char h[ST_HASH_HEX];
    OK(store_checkpoint_hash(&c, h));
    assert_string_equal(h, c.hash);
    OK(store_checkpoint_add(f->st, W1, 9, H("c"), 2000, &again)); /* the same head: no new row */
    assert_int_equal(again.seq, 3);
    assert_int_equal(again.at, 1002);

    struct st_checkpoint *all = NULL;
    size_t n = 0;
    OK(store_checkpoint_list(f->st, &all, &n));
    assert_int_equal(n, 3);
    assert_string_equal(all[0].writer, W1);
    assert_int_equal(all[0].records, 5);
    assert_string_equal(all[0].head_hash, H("a"));
    assert_string_equal(all[1].writer, W2);
    assert_string_equal(all[2].hash, c.hash);
    assert_int_equal(all[2].at, 1002);
    free(all);

    RC(store_checkpoint_add(f->st, "not-a-uuid", 1, H("a"), 1, &a), MV_ERR_BAD_REQUEST);
    RC(store_checkpoint_add(f->st, W1, 0, H("a"), 1, &a), MV_ERR_BAD_REQUEST);
    RC(store_checkpoint_add(f->st, W1, 1, "abc", 1, &a), MV_ERR_BAD_REQUEST);
    RC(store_checkpoint_add(f->st, W1, 1, H("A"), 1, &a), MV_ERR_BAD_REQUEST);
}

/* Each writer's audit head: one row per writer, updated in place, never going back (an older
 * head is ignored), listed by writer; bad fields refused. */
static void test_audit_heads(void **state)
{
    struct fx *f = *state;
    struct st_audit_head h = {.writer = W2, .records = 3, .head_hash = H("b"), .mac = H("1"), .at = 10};
    OK(store_audit_head_put(f->st, &h));
    h = (struct st_audit_head){.writer = W1, .records = 5, .head_hash = H("a"), .mac = H("2"), .at = 11};
    OK(store_audit_head_put(f->st, &h));
    h.records = 9;
    memcpy(h.head_hash, H("c"), sizeof h.head_hash);
    memcpy(h.mac, H("3"), sizeof h.mac);
    h.at = 12;
    OK(store_audit_head_put(f->st, &h));
    h.records = 7; /* older: ignored */
    memcpy(h.head_hash, H("d"), sizeof h.head_hash);
    OK(store_audit_head_put(f->st, &h));
    struct st_audit_head *all = NULL;
    size_t n = 0;
    OK(store_audit_head_list(f->st, &all, &n));
    assert_int_equal(n, 2);
    assert_string_equal(all[0].writer, W1);
    assert_int_equal(all[0].records, 9);
    assert_string_equal(all[0].head_hash, H("c"));
    assert_string_equal(all[0].mac, H("3"));
    assert_int_equal(all[0].at, 12);
    assert_string_equal(all[1].writer, W2);
    assert_int_equal(all[1].records, 3);
    free(all);
    h = (struct st_audit_head){.writer = W1, .records = 10, .head_hash = H("a"), .mac = "abc", .at = 1};
    RC(store_audit_head_put(f->st, &h), MV_ERR_BAD_REQUEST);
    h = (struct st_audit_head){.writer = "nope", .records = 10, .head_hash = H("a"), .mac = H("1"), .at = 1};
    RC(store_audit_head_put(f->st, &h), MV_ERR_BAD_REQUEST);
}

struct cp_thread {
    const char *path;
    const char *writer;
    mv_rc rc;
};

static void *cp_adder(void *arg)
{
    struct cp_thread *t = arg;
    struct store *st = NULL;
    struct st_checkpoint c;
    t->rc = store_open(t->path, &st);
    for (int i = 1; i <= 20 && t->rc == MV_OK; i++)
        t->rc = store_checkpoint_add(st, t->writer, i, H("d"), i, &c);
    store_close(st);
    return NULL;
}

/* Two connections (two servers) appending at once still make one gapless, linked chain. */
static void test_checkpoint_concurrent_writers(void **state)
{
    struct fx *f = *state;
    struct cp_thread t1 = {.path = f->path, .writer = W1}, t2 = {.path = f->path, .writer = W2};
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, cp_adder, &t1), 0);
    assert_int_equal(pthread_create(&b, NULL, cp_adder, &t2), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    OK(t1.rc);
    OK(t2.rc);
    struct st_checkpoint *all = NULL;
    size_t n = 0;
    OK(store_checkpoint_list(f->st, &all, &n));
    assert_int_equal(n, 40);
    char h[ST_HASH_HEX];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(all[i].seq, (int64_t)i + 1);
        assert_string_equal(all[i].prev_hash, i ? all[i - 1].hash : H("0"));
        OK(store_checkpoint_hash(&all[i], h));
        assert_string_equal(h, all[i].hash);
    }
    free(all);
}

/* ---- quota leases (store_quota_lease: the vault throttle across servers) ---- */

static int64_t lease(struct store *st, const char *vault, int64_t window, enum st_quota_kind kind,
                     int64_t want, int64_t limit)
{
    int64_t granted = -1;
    OK(store_quota_lease(st, vault, window, kind, want, limit, &granted));
    return granted;
}

/* Blocks while they last, then the partial final block, then nothing; per vault (any case)
 * and per kind. */
static void test_quota_lease_blocks_and_partial_last(void **state)
{
    struct fx *f = *state;
    const int64_t w = 1700000000;
    assert_int_equal(store_shared(f->st), pg_base != NULL);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 4, 10), 4);
    assert_int_equal(lease(f->st, "DEV", w, ST_QUOTA_OPS, 4, 10), 4);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 4, 10), 2); /* partial */
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 4, 10), 0);
    assert_int_equal(lease(f->st, "Dev", w, ST_QUOTA_OPS, 1, 10), 0);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_CREATES, 4, 5), 4);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_CREATES, 4, 5), 1);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_CREATES, 4, 5), 0);
    assert_int_equal(lease(f->st, "other", w, ST_QUOTA_OPS, 4, 10), 4);
    /* a smaller limit than what is already used grants nothing (a server with another
     * config): never negative */
    assert_int_equal(lease(f->st, "other", w, ST_QUOTA_OPS, 4, 3), 0);
    int64_t g = 7;
    RC(store_quota_lease(f->st, "", w, ST_QUOTA_OPS, 1, 10, &g), MV_ERR_BAD_REQUEST);
    assert_int_equal(g, 0);
    RC(store_quota_lease(f->st, "dev", w, ST_QUOTA_OPS, 0, 10, &g), MV_ERR_BAD_REQUEST);
    RC(store_quota_lease(f->st, "dev", w, ST_QUOTA_OPS, 1, 0, &g), MV_ERR_BAD_REQUEST);
    RC(store_quota_lease(f->st, "dev", w, (enum st_quota_kind)3, 1, 10, &g), MV_ERR_BAD_REQUEST);
}

/* A new window starts from zero; windows older than ST_QUOTA_KEEP_SECS are pruned by the first
 * lease of a newer window (seen here as an exhausted old window granting again). */
static void test_quota_lease_window_rollover_and_prune(void **state)
{
    struct fx *f = *state;
    const int64_t w = 1700000000;
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 5, 5), 5);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 5, 5), 0);
    assert_int_equal(lease(f->st, "dev", w + 10, ST_QUOTA_OPS, 5, 5), 5); /* next window */
    assert_int_equal(lease(f->st, "dev", w + 10, ST_QUOTA_OPS, 5, 5), 0);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 5, 5), 0); /* still kept */
    assert_int_equal(lease(f->st, "dev", w + 20 + ST_QUOTA_KEEP_SECS, ST_QUOTA_OPS, 1, 5), 1);
    assert_int_equal(lease(f->st, "dev", w, ST_QUOTA_OPS, 5, 5), 5);      /* pruned */
    assert_int_equal(lease(f->st, "dev", w + 20, ST_QUOTA_OPS, 5, 5), 5); /* within the horizon */
}

/* Several connections (processes: servers) leasing one row at once are handed exactly the
 * limit between them, never more; one of them gets the partial final block. */
static void test_quota_lease_concurrent_never_exceeds_limit(void **state)
{
    struct fx *f = *state;
    enum { KIDS = 4, LIMIT = 301, WANT = 3 };
    const int64_t w = 1700000000;
    int fds[KIDS][2];
    pid_t pids[KIDS];
    /* No thread may run while we fork: on PostgreSQL the fixture's connection has a change-feed
     * poller thread, and a fork while it is inside libpq (its reconnect holds libgssapi's lock)
     * leaves the child's PQconnectdb waiting on that lock forever. Closed here, reopened below. */
    store_close(f->st);
    f->st = NULL;
    for (int i = 0; i < KIDS; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct store *st = NULL;
            int64_t total = 0, got = 0, partial = 0;
            if (store_open(f->path, &st) != MV_OK)
                _exit(1);
            do {
                if (store_quota_lease(st, "race", w, ST_QUOTA_OPS, WANT, LIMIT, &got) != MV_OK)
                    _exit(2);
                total += got;
                partial += got > 0 && got < WANT;
            } while (got > 0);
            store_close(st);
            int64_t out[2] = {total, partial};
            _exit(write(fds[i][1], out, sizeof out) == (ssize_t)sizeof out ? 0 : 3);
        }
        close(fds[i][1]);
    }
    int64_t total = 0, partial = 0;
    for (int i = 0; i < KIDS; i++) {
        int status = 0;
        int64_t in[2] = {0, 0};
        assert_int_equal(read(fds[i][0], in, sizeof in), (ssize_t)sizeof in);
        close(fds[i][0]);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        total += in[0];
        partial += in[1];
    }
    assert_int_equal(total, LIMIT);
    assert_int_equal(partial, 1); /* 301 = 100 blocks of 3 + one of 1 */
    OK(store_open(f->path, &f->st));
    assert_int_equal(lease(f->st, "race", w, ST_QUOTA_OPS, 1, LIMIT), 0);
}

/* A store made by the schema before quota leases (PostgreSQL 3, SQLite 2) gains the table when
 * opened. */
static void test_quota_lease_after_upgrade_from_v1(void **state)
{
    struct fx *f = *state;
    store_close(f->st);
    f->st = NULL;
    /* The store is turned back into a faithful v3 (PostgreSQL) / v2 (SQLite) database: what
     * quota_leases' migration and every later one (assertion_jti: PostgreSQL v5, SQLite v4;
     * vault_keys and key_policies: PostgreSQL v6, SQLite v5; cert_objects: PostgreSQL v7,
     * SQLite v6; the signing-key triggers: SQLite v7; mv_secret_add: PostgreSQL v8; mv_secret_set: PostgreSQL v12; audit_heads: PostgreSQL v9, SQLite v8; app and federated credentials and the principal kind 4: PostgreSQL v10, SQLite v9; vm_bindings: PostgreSQL v11, SQLite v10) created is dropped, so store_open runs those migrations exactly as on a real
     * upgrade.
     * Migrations stay plain CREATEs (no IF NOT EXISTS): a version number that does not match the
     * objects present is a broken store and must fail loudly, not be papered over. */
    if (pg_base) {
        pg_admin(f->path, "DROP TABLE vm_bindings");
        pg_admin(f->path, "DROP TABLE federated_credentials");
        pg_admin(f->path, "DROP TABLE app_credentials");
        pg_admin(f->path, "ALTER TABLE principals DROP CONSTRAINT principals_kind_check");
        pg_admin(f->path, "ALTER TABLE principals ADD CONSTRAINT principals_kind_check"
                          " CHECK (kind BETWEEN 1 AND 3)");
        pg_admin(f->path, "DROP TABLE quota_leases");
        pg_admin(f->path, "DROP TABLE assertion_jti");
        pg_admin(f->path, "DROP TABLE cert_objects");
        pg_admin(f->path, "DROP INDEX join_tokens_expires");
        pg_admin(f->path, "DROP TABLE vault_keys");
        pg_admin(f->path, "DROP TABLE key_policies");
        pg_admin(f->path, "DROP FUNCTION mv_secret_set");
        pg_admin(f->path, "DROP FUNCTION mv_secret_add");
        pg_admin(f->path, "DROP TABLE audit_heads");
        pg_admin(f->path, "UPDATE meta SET value = '3' WHERE key = 'schema_version'");
    } else {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db,
                                      "DROP TABLE vm_bindings; DROP TABLE federated_credentials;"
                                      " DROP TABLE app_credentials;"
                                      " DROP TABLE quota_leases; DROP TABLE assertion_jti;"
                                      " DROP INDEX join_tokens_expires; DROP TABLE vault_keys;"
                                      " DROP TABLE key_policies; DROP TABLE cert_objects;"
                                      " DROP TRIGGER signing_keys_gen_ins; DROP TRIGGER signing_keys_gen_upd;"
                                      " DROP TRIGGER signing_keys_gen_del;"
                                      " DROP TABLE audit_heads;"
                                      " PRAGMA user_version = 2",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
    }
    OK(store_open(f->path, &f->st));
    assert_int_equal(lease(f->st, "dev", 1700000000, ST_QUOTA_OPS, 2, 3), 2);
    OK(store_assertion_use(f->st, "a0000000-0000-4000-8000-000000000001", "j1", 2000, 1000));
    if (pg_base)
        check_pg_schema(f);
    else
        check_sqlite_file(f);
}

/* A lease makes one attempt: with its connection gone it fails at once (the vault then fails
 * open) instead of retrying for 30 s; the next ordinary call reconnects and leases work again. */
static void test_pg_quota_lease_fails_fast_without_its_database(void **state)
{
    struct fx *f = *state;
    struct st_vault v;
    int64_t g = 9;
    put_vault(f->st, "dev");
    terminate_backends(f);
    int64_t t0 = mv_now_ms();
    RC(store_quota_lease(f->st, "dev", 1700000000, ST_QUOTA_OPS, 2, 10, &g), MV_ERR_UNAVAILABLE);
    assert_int_equal(g, 0);
    RC(store_quota_lease(f->st, "dev", 1700000000, ST_QUOTA_OPS, 2, 10, &g), MV_ERR_UNAVAILABLE);
    assert_true(mv_now_ms() - t0 < 2000);
    OK(store_vault_get(f->st, "dev", &v)); /* reconnects */
    assert_int_equal(lease(f->st, "dev", 1700000000, ST_QUOTA_OPS, 2, 10), 2);
}

int main(void)
{
    mv_log_set_level(getenv("TEST_STORE_DEBUG") ? MV_LOG_DEBUG : MV_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_file_mode_schema_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta_get_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation_changes_with_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_keys_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vms_and_uai, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vm_delete_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_delete_removes_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apps_and_federated_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_join_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_assignments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cert_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_set_refuses_certificate_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_delete_refuses_certificate_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_versions_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_versions_delete_recover_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_policy_put_get_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_batch_isolates_a_failing_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_pipelined_batch_isolates_a_failing_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_pipelined_batch_mixes_with_synchronous_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_soft_delete_recover_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_delete_days_zero_removes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_purge_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_connections_share_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_survives_kill9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_lease_blocks_and_partial_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_lease_window_rollover_and_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_lease_concurrent_never_exceeds_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_lease_after_upgrade_from_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_durability_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assertion_jti_used_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_corrupt_flag_shared_per_file, setup, teardown),
    };
    const struct CMUnitTest pg_only[] = {
        cmocka_unit_test_setup_teardown(test_pg_retried_secret_add_makes_one_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_survives_terminated_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_writer_lean_batch_survives_terminated_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_secrets_feed_one_row_per_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_commit_warning_is_unknown_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_multi_host_url_skips_a_dead_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_change_feed_across_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_quota_lease_fails_fast_without_its_database, setup, teardown),
        cmocka_unit_test(test_pg_unreachable_host_is_named),
    };
    int failed = cmocka_run_group_tests_name("store on sqlite", tests, NULL, NULL);
    pg_base = getenv("MIVAULT_TEST_PG_URL");
    if (!pg_base || !*pg_base) {
        printf("store on postgresql: skipped (MIVAULT_TEST_PG_URL not set)\n");
        return failed;
    }
    failed += cmocka_run_group_tests_name("store on postgresql", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("store on postgresql only", pg_only, NULL, NULL);
    return failed;
}
