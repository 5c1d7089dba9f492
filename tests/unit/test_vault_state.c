/* test_vault_state.c: the vault's per-worker caches (src/vault/state.c) against a real SQLite
 * store in a temporary directory: verified tokens (a hit only for the very same bytes, never
 * after exp, eviction under pressure) and RBAC decisions from each principal's cached role
 * assignments (the same answers as rbac_check, whatever the secret; a revoked or added
 * assignment is seen on the next decision; principals with more assignments than the cache
 * keeps are still decided right). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rbac/rbac.h"
#include "vault/vault_internal.h"

#define SUB "/subscriptions/11111111-2222-4333-8444-555555555555"
#define RG SUB "/resourceGroups/mivault"
#define VAULT RG "/providers/Microsoft.KeyVault/vaults/dev"
#define VAULT2 RG "/providers/Microsoft.KeyVault/vaults/dev2"
#define GET_SECRET "Microsoft.KeyVault/vaults/secrets/getSecret/action"
#define SET_SECRET "Microsoft.KeyVault/vaults/secrets/setSecret/action"
#define OFFICER "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
#define USER "4633458b-17de-408a-b874-0445c86b69e6"
#define READER "21090545-7ca7-4776-b22c-e363652d74d2"
#define ALICE "aaaaaaaa-0000-4000-8000-000000000001"
#define BOB "bbbbbbbb-0000-4000-8000-000000000002"

struct fx {
    char dir[64];
    char path[96];
    struct vault_loop w;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mv-vstate-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    assert_int_equal(store_open(f->path, &f->w.st), MV_OK);
    assert_int_equal(vault_worker_init(&f->w), MV_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vault_worker_free(&f->w);
    assert_null(f->w.vault_state);
    store_close(f->w.st);
    char p[128];
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- verified tokens ---- */

static void make_token(char *t, size_t len, unsigned seed)
{
    static const char CH[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        t[i] = CH[(seed >> 16) % (sizeof CH - 1)];
    }
    t[len] = '\0';
}

static struct token_info info_for(const char *oid, int64_t exp)
{
    struct token_info i;
    memset(&i, 0, sizeof i);
    snprintf(i.oid, sizeof i.oid, "%s", oid);
    i.exp = exp;
    return i;
}

static void token_hit_only_for_same_bytes(void **state)
{
    struct fx *f = *state;
    char t[1301], u[1301];
    struct token_info out;
    make_token(t, 1300, 7);
    memcpy(u, t, sizeof t);
    assert_false(vault_state_token_get(&f->w, t, 1300, 1000, &out)); /* empty cache */
    struct token_info in = info_for(ALICE, 2000);
    vault_state_token_put(&f->w, t, 1300, &in);
    memset(&out, 0, sizeof out);
    assert_true(vault_state_token_get(&f->w, u, 1300, 1000, &out)); /* another copy, same bytes */
    assert_string_equal(out.oid, ALICE);
    assert_int_equal(out.exp, 2000);
    /* one byte different, anywhere: first, middle, last */
    size_t pos[] = {0, 650, 1299, 1296};
    for (size_t k = 0; k < sizeof pos / sizeof pos[0]; k++) {
        u[pos[k]] = u[pos[k]] == 'A' ? 'B' : 'A';
        assert_false(vault_state_token_get(&f->w, u, 1300, 1000, &out));
        u[pos[k]] = t[pos[k]];
    }
    /* a prefix or an extension of the token */
    assert_false(vault_state_token_get(&f->w, t, 1299, 1000, &out));
    char longer[1302];
    memcpy(longer, t, 1300);
    longer[1300] = 'x';
    longer[1301] = '\0';
    assert_false(vault_state_token_get(&f->w, longer, 1301, 1000, &out));
    assert_false(vault_state_token_get(&f->w, t, 0, 1000, &out));
    assert_true(vault_state_token_get(&f->w, t, 1300, 1000, &out));
}

/* Tokens that differ only before their last 64 bytes share a set: each still hits as itself. */
static void token_same_tail(void **state)
{
    struct fx *f = *state;
    char t[6][401];
    struct token_info out;
    for (int i = 0; i < 6; i++) {
        make_token(t[i], 400, 11);
        t[i][i * 50] = (char)('a' + i); /* a difference far from the tail */
        struct token_info in = info_for(i % 2 ? ALICE : BOB, 1000 + i);
        vault_state_token_put(&f->w, t[i], 400, &in);
    }
    int hits = 0;
    for (int i = 0; i < 6; i++) {
        if (vault_state_token_get(&f->w, t[i], 400, 1, &out)) {
            hits++;
            assert_int_equal(out.exp, 1000 + i); /* its own entry, never a neighbour's */
        }
    }
    assert_true(hits >= 4); /* 4 ways: the two oldest may have been evicted */
    assert_true(vault_state_token_get(&f->w, t[5], 400, 1, &out));
    assert_int_equal(out.exp, 1005);
}

static void token_expires(void **state)
{
    struct fx *f = *state;
    char t[101];
    struct token_info out;
    make_token(t, 100, 9);
    struct token_info in = info_for(BOB, 5000);
    vault_state_token_put(&f->w, t, 100, &in);
    assert_true(vault_state_token_get(&f->w, t, 100, 4999, &out));
    assert_false(vault_state_token_get(&f->w, t, 100, 5000, &out)); /* exp reached */
    assert_false(vault_state_token_get(&f->w, t, 100, 10, &out));   /* and forgotten */
    /* put again replaces, with the new info */
    in = info_for(ALICE, 9000);
    vault_state_token_put(&f->w, t, 100, &in);
    vault_state_token_put(&f->w, t, 100, &in);
    assert_true(vault_state_token_get(&f->w, t, 100, 10, &out));
    assert_string_equal(out.oid, ALICE);
}

static void token_many(void **state)
{
    struct fx *f = *state;
    enum { N = 3000, LEN = 64 };
    char t[LEN + 1];
    struct token_info out;
    for (unsigned i = 0; i < N; i++) {
        make_token(t, LEN, i + 1);
        struct token_info in = info_for(ALICE, 100000 + i);
        vault_state_token_put(&f->w, t, LEN, &in);
        assert_true(vault_state_token_get(&f->w, t, LEN, 1, &out)); /* just put: present */
        assert_int_equal(out.exp, 100000 + i);
    }
    /* the cache holds at most 1024: some of the 3000 were evicted, the hits are right */
    unsigned hits = 0;
    for (unsigned i = 0; i < N; i++) {
        make_token(t, LEN, i + 1);
        if (vault_state_token_get(&f->w, t, LEN, 1, &out)) {
            hits++;
            assert_int_equal(out.exp, 100000 + i);
        }
    }
    assert_true(hits > 0 && hits <= 1024);
}

/* ---- RBAC ---- */

static void assign(struct fx *f, const char *id, const char *principal, const char *role,
                   const char *scope)
{
    struct st_role_assignment a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.principal_id, sizeof a.principal_id, "%s", principal);
    snprintf(a.role_id, sizeof a.role_id, "%s", role);
    snprintf(a.scope, sizeof a.scope, "%s", scope);
    a.created = 1;
    assert_int_equal(store_role_assignment_put(f->w.st, &a), MV_OK);
}

/* The cached decision, after the generation check that precedes it in a request, and the
 * store's decision agree; returns the decision. */
static int decide(struct fx *f, const char *oid, const char *action, const char *resource)
{
    struct st_vault v;
    mv_rc rc = vault_state_vault(&f->w, "dev", &v); /* syncs the generation, as route.c does */
    assert_int_equal(rc, MV_ERR_NOT_FOUND);          /* (no vault in this store) */
    int cached = -1, direct = -1;
    assert_int_equal(vault_state_rbac(&f->w, oid, action, resource, &cached), MV_OK);
    assert_int_equal(rbac_check(f->w.st, oid, action, 1, resource, &direct), MV_OK);
    assert_int_equal(cached, direct);
    return cached;
}

static void rbac_matches_store(void **state)
{
    struct fx *f = *state;
    assign(f, "11111111-0000-4000-8000-000000000001", ALICE, OFFICER, VAULT);
    assign(f, "11111111-0000-4000-8000-000000000002", BOB, USER, VAULT "/secrets/db");
    assign(f, "11111111-0000-4000-8000-000000000003", BOB, READER, SUB);
    for (int round = 0; round < 2; round++) { /* second round: from the cache */
        assert_true(decide(f, ALICE, GET_SECRET, VAULT "/secrets/db"));
        assert_true(decide(f, ALICE, GET_SECRET, VAULT "/secrets/other"));
        assert_true(decide(f, ALICE, SET_SECRET, VAULT "/secrets/x"));
        assert_true(decide(f, ALICE, GET_SECRET, VAULT));
        assert_false(decide(f, ALICE, GET_SECRET, VAULT2 "/secrets/db")); /* dev != dev2 */
        assert_false(decide(f, ALICE, "Microsoft.KeyVault/vaults/keys/sign/action", VAULT));
        /* principal ids compare case-insensitively, as in the store */
        assert_true(decide(f, "AAAAAAAA-0000-4000-8000-000000000001", GET_SECRET, VAULT "/secrets/a"));
        /* scopes too */
        assert_true(decide(f, ALICE, GET_SECRET,
                           RG "/providers/microsoft.keyvault/VAULTS/DEV/secrets/a"));
        assert_true(decide(f, BOB, GET_SECRET, VAULT "/secrets/db"));
        assert_false(decide(f, BOB, GET_SECRET, VAULT "/secrets/db2"));
        assert_false(decide(f, BOB, SET_SECRET, VAULT "/secrets/db"));
        assert_false(decide(f, "cccccccc-0000-4000-8000-000000000003", GET_SECRET, VAULT));
    }
    int allowed = 1;
    assert_int_equal(vault_state_rbac(&f->w, "", GET_SECRET, VAULT, &allowed), MV_OK);
    assert_false(allowed);
}

static void rbac_sees_changes(void **state)
{
    struct fx *f = *state;
    assert_false(decide(f, ALICE, GET_SECRET, VAULT "/secrets/db"));
    assign(f, "22222222-0000-4000-8000-000000000001", ALICE, USER, VAULT);
    assert_true(decide(f, ALICE, GET_SECRET, VAULT "/secrets/db")); /* granted: seen at once */
    assert_true(decide(f, ALICE, GET_SECRET, VAULT "/secrets/db"));
    assert_int_equal(store_role_assignment_delete(f->w.st, "22222222-0000-4000-8000-000000000001"),
                     MV_OK);
    assert_false(decide(f, ALICE, GET_SECRET, VAULT "/secrets/db")); /* revoked: seen at once */
    /* a change made through another connection (another loop or process) is seen as well */
    struct store *other = NULL;
    assert_int_equal(store_open(f->path, &other), MV_OK);
    struct st_role_assignment a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "22222222-0000-4000-8000-000000000002");
    snprintf(a.principal_id, sizeof a.principal_id, ALICE);
    snprintf(a.role_id, sizeof a.role_id, OFFICER);
    snprintf(a.scope, sizeof a.scope, "/");
    a.created = 2;
    assert_int_equal(store_role_assignment_put(other, &a), MV_OK);
    store_close(other);
    assert_true(decide(f, ALICE, SET_SECRET, VAULT2 "/secrets/any"));
}

static void rbac_many_principals_and_assignments(void **state)
{
    struct fx *f = *state;
    char id[64], oid[64], scope[256];
    /* 300 principals (more than the cache keeps), each allowed on its own secret only */
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "33333333-0000-4000-8000-%012d", i);
        snprintf(oid, sizeof oid, "dddddddd-0000-4000-8000-%012d", i);
        snprintf(scope, sizeof scope, VAULT "/secrets/s%d", i);
        assign(f, id, oid, USER, scope);
    }
    /* one principal with 100 assignments (more than one cache entry holds), the last one the
     * grant that matters */
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "44444444-0000-4000-8000-%012d", i);
        snprintf(scope, sizeof scope, VAULT2 "/secrets/t%d", i);
        assign(f, id, BOB, i == 99 ? OFFICER : READER, scope);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 300; i += 7) {
            snprintf(oid, sizeof oid, "dddddddd-0000-4000-8000-%012d", i);
            snprintf(scope, sizeof scope, VAULT "/secrets/s%d", i);
            assert_true(decide(f, oid, GET_SECRET, scope));
            snprintf(scope, sizeof scope, VAULT "/secrets/s%d", i + 1);
            assert_false(decide(f, oid, GET_SECRET, scope));
        }
        assert_true(decide(f, BOB, SET_SECRET, VAULT2 "/secrets/t99"));
        assert_false(decide(f, BOB, GET_SECRET, VAULT2 "/secrets/t98")); /* Reader: no data */
    }
}

/* The read transaction route.c opens around a GET: one snapshot for all its reads, and the
 * generation check at its start covers them. */
static void read_transaction_snapshot(void **state)
{
    struct fx *f = *state;
    store_read_end(f->w.st); /* none open: a no-op */
    int64_t g0 = 0, g1 = 0;
    assert_int_equal(store_read_begin(f->w.st), MV_OK);
    assert_int_equal(store_generation(f->w.st, &g0), MV_OK);
    struct store *other = NULL; /* a change committed meanwhile by another connection */
    assert_int_equal(store_open(f->path, &other), MV_OK);
    struct st_role_assignment a;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "55555555-0000-4000-8000-000000000001");
    snprintf(a.principal_id, sizeof a.principal_id, ALICE);
    snprintf(a.role_id, sizeof a.role_id, OFFICER);
    snprintf(a.scope, sizeof a.scope, VAULT);
    a.created = 3;
    assert_int_equal(store_role_assignment_put(other, &a), MV_OK);
    store_close(other);
    int allowed = -1; /* same snapshot: neither the assignment nor a new generation yet */
    assert_int_equal(store_generation(f->w.st, &g1), MV_OK);
    assert_int_equal(g1, g0);
    assert_int_equal(rbac_check(f->w.st, ALICE, GET_SECRET, 1, VAULT, &allowed), MV_OK);
    assert_false(allowed);
    store_read_end(f->w.st);
    assert_int_equal(store_generation(f->w.st, &g1), MV_OK); /* next request: it shows */
    assert_true(g1 > g0);
    assert_true(decide(f, ALICE, GET_SECRET, VAULT "/secrets/x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(token_hit_only_for_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(token_same_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(token_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(token_many, setup, teardown),
        cmocka_unit_test_setup_teardown(rbac_matches_store, setup, teardown),
        cmocka_unit_test_setup_teardown(rbac_sees_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(rbac_many_principals_and_assignments, setup, teardown),
        cmocka_unit_test_setup_teardown(read_transaction_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
