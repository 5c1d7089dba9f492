/* identity.c: which managed identity a node (a VM's host agent) may get a token for.
 *
 * A node holds no identity of its own: it acts for the identities of its VM, which are the
 * system-assigned one (when enabled) and the user-assigned ones attached to it, read from the
 * store on every request so that disabling an identity or deleting the VM takes effect at once
 * (DESIGN §1). The IMDS contract (reference §1.1) picks among them:
 *   - at most one of mi_client_id, mi_object_id, mi_res_id (the agent's renaming of IMDS's
 *     client_id, object_id, msi_res_id); ids compare ASCII case-insensitively, as Azure does;
 *   - none: the system-assigned identity, or if there is none and exactly one user-assigned
 *     identity, that one;
 *   - anything else: 400 invalid_request "Identity not found" (reference §9 item 3). */
#include <stdlib.h>
#include <string.h>

#include "authority/internal.h"
#include "common/util.h"

static const char *const SELECTORS[] = {"mi_client_id", "mi_object_id", "mi_res_id"};
#define N_SELECTORS (sizeof SELECTORS / sizeof SELECTORS[0])

static const char NOT_FOUND[] = "Identity not found";

int authority_has_selector(const kv_list *form)
{
    for (size_t i = 0; i < N_SELECTORS; i++)
        if (kv_get(form, SELECTORS[i]))
            return 1;
    return 0;
}

/* One identity of the VM, as the selectors see it. */
struct candidate {
    const char *principal_id;
    const char *client_id;
    const char *resource_id;
};

/* sel: index into SELECTORS, value: what was asked for. */
static int matches(const struct candidate *c, size_t sel, const char *value)
{
    const char *have = sel == 0 ? c->client_id : sel == 1 ? c->principal_id : c->resource_id;
    return have && *have && mv_streq_ci(have, value);
}

mv_rc authority_node_principal(struct store *st, const char *vm_name, const kv_list *form,
                               struct st_principal *out, struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    struct st_vm vm;
    struct st_principal sys = {0};
    struct st_identity uai;
    char(*names)[ST_NAME] = NULL;
    size_t n_names = 0, n_sel = 0, sel = 0;
    const char *value = NULL;
    const char *chosen = NULL; /* principal id of the identity picked */
    int have_sys = 0, n_uai = 0;
    char uai_principal[ST_ID] = "";

    for (size_t i = 0; i < N_SELECTORS; i++) {
        if (kv_get(form, SELECTORS[i])) {
            n_sel++;
            sel = i;
            value = kv_get(form, SELECTORS[i]);
        }
    }
    REFUSE_UNLESS(n_sel <= 1, ref, 400, "invalid_request",
                  "Only one of mi_client_id, mi_object_id and mi_res_id may be given.");

    rc = store_vm_get(st, vm_name, &vm);
    REFUSE_UNLESS(rc != MV_ERR_NOT_FOUND, ref, 400, "invalid_request", NOT_FOUND);
    CHECK(rc);

    if (vm.system_assigned && vm.system_principal_id[0]) {
        rc = store_principal_get(st, vm.system_principal_id, &sys);
        if (rc != MV_ERR_NOT_FOUND)
            CHECK(rc);
        have_sys = rc == MV_OK;
        rc = MV_OK;
    }
    if (have_sys) {
        /* The system identity's resource id is its VM's (xms_mirid, reference §3.2). */
        struct candidate c = {vm.system_principal_id, sys.client_id, vm.resource_id};
        if (n_sel == 0 || matches(&c, sel, value))
            chosen = vm.system_principal_id;
    }

    if (!chosen) {
        CHECK(store_vm_uai_list(st, vm.name, &names, &n_names));
        for (size_t i = 0; i < n_names; i++) {
            rc = store_identity_get(st, names[i], &uai);
            if (rc == MV_ERR_NOT_FOUND) { /* detached concurrently */
                rc = MV_OK;
                continue;
            }
            CHECK(rc);
            n_uai++;
            struct candidate c = {uai.principal_id, uai.client_id, uai.resource_id};
            if (n_sel == 0 ? n_uai == 1 : matches(&c, sel, value))
                CHECK(mv_copy(uai_principal, sizeof uai_principal, uai.principal_id));
            if (n_sel && uai_principal[0])
                break;
        }
        /* Without a selector a user-assigned identity is implied only if it is the only one. */
        if (uai_principal[0] && (n_sel || (!have_sys && n_uai == 1)))
            chosen = uai_principal;
    }
    REFUSE_UNLESS(chosen != NULL, ref, 400, "invalid_request", NOT_FOUND);

    rc = store_principal_get(st, chosen, out);
    REFUSE_UNLESS(rc != MV_ERR_NOT_FOUND, ref, 400, "invalid_request", NOT_FOUND);
    CHECK(rc);
out:
    st_principal_clear(&sys);
    free(names);
    return rc;
}

/* A cgroup binding covers its path and everything below it. */
static int cgroup_under(const char *path, const char *bound)
{
    size_t n = strlen(bound);
    if (n == 1 && bound[0] == '/')
        return path[0] == '/';
    while (n > 1 && bound[n - 1] == '/')
        n--;
    return strncmp(path, bound, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* VMs seen without bindings, per thread (each loop has its own), valid for one store
 * generation: most VMs have none, and their token requests then cost no extra read. */
#define UNBOUND_MEMO 16
static _Thread_local struct {
    char vm[ST_NAME];
    int64_t gen;
} unbound_memo[UNBOUND_MEMO];
static _Thread_local unsigned unbound_next;

static int memo_unbound(const char *vm, int64_t gen)
{
    for (size_t i = 0; gen >= 0 && i < UNBOUND_MEMO; i++)
        if (unbound_memo[i].gen == gen && mv_streq_ci(unbound_memo[i].vm, vm))
            return 1;
    return 0;
}

static void memo_remember(const char *vm, int64_t gen)
{
    if (gen < 0 || strlen(vm) >= ST_NAME)
        return;
    size_t i = unbound_next++ % UNBOUND_MEMO;
    memcpy(unbound_memo[i].vm, vm, strlen(vm) + 1);
    unbound_memo[i].gen = gen;
}

mv_rc authority_binding_check(struct store *st, int64_t gen, const char *vm_name,
                              const struct st_principal *subject, const kv_list *form, int *bound,
                              struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    struct st_binding *b = NULL;
    size_t n = 0;
    int allowed = 0;
    const char *uid = kv_get(form, "mi_caller_uid");
    const char *cgroup = kv_get(form, "mi_caller_cgroup");
    char last[ST_NAME] = "";
    int last_is_subject = 0;
    *bound = 0;
    if (memo_unbound(vm_name, gen))
        return MV_OK;
    CHECK(store_binding_list(st, vm_name, &b, &n));
    if (n == 0)
        memo_remember(vm_name, gen);
    for (size_t i = 0; i < n && !allowed; i++) {
        if (strcmp(b[i].identity, last) != 0) { /* the list is ordered by identity */
            struct st_identity id;
            CHECK(mv_copy(last, sizeof last, b[i].identity));
            rc = store_identity_get(st, b[i].identity, &id);
            if (rc == MV_ERR_NOT_FOUND) {
                rc = MV_OK;
                last_is_subject = 0;
                continue;
            }
            CHECK(rc);
            last_is_subject = mv_streq_ci(id.principal_id, subject->id);
        }
        if (!last_is_subject)
            continue;
        *bound = 1;
        if (b[i].kind == ST_BIND_UID)
            allowed = uid && strcmp(uid, b[i].value) == 0;
        else if (b[i].kind == ST_BIND_CGROUP)
            allowed = cgroup && cgroup_under(cgroup, b[i].value);
    }
    REFUSE_UNLESS(!*bound || allowed, ref, 400, "invalid_request", AUTHORITY_BOUND_REFUSAL);
out:
    free(b);
    return rc;
}
