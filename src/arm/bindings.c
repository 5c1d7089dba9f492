/* bindings.c: per-process identity bindings of a VM (mivault's own, beyond Azure; docs/agent.md
 * "Per-process identities"): a user-assigned identity attached to the VM, issued only to local
 * callers with one of its uids or in one of its cgroups.
 *
 *   GET  …/virtualMachines/{vm}/identityBindings   {"value": [{identity, uid | cgroup}, ...]}
 *   POST …/virtualMachines/{vm}/bindIdentity       {"identity": NAME, "uid": N | "cgroup": PATH}
 *                                                   200 with the binding (idempotent)
 *   POST …/virtualMachines/{vm}/unbindIdentity     the same body; 200, 204 when absent
 *
 * The identity must be attached to the VM (400 otherwise); a uid is 0..4294967294, a cgroup an
 * absolute cgroup v2 path without "." or ".." components. Reading needs the VM's read action,
 * writing its write action. */
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"
#include "common/util.h"

#define VM_TYPE "Microsoft.Compute/virtualMachines"

static mv_rc vm_of(struct arm_req *ar, const char *action, struct st_vm *vm)
{
    mv_rc rc = MV_OK;
    char id[ST_SCOPE];
    CHECK(arm_resource_id(ar->srv, VM_TYPE, ar->cap[2], id));
    ENSURE(arm_authorize(ar, action, id), MV_ERR_FORBIDDEN);
    rc = store_vm_get(ar->st, ar->cap[2], vm);
    if (rc == MV_ERR_NOT_FOUND)
        rc = arm_not_found(ar, VM_TYPE, ar->cap[2]);
out:
    return rc;
}

static int cgroup_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n >= ST_BIND_VALUE || p[0] != '/')
        return 0;
    for (const char *s = p; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
        if (s[0] == '/' && s[1] == '.' && (s[2] == '/' || !s[2] || (s[2] == '.' && (s[3] == '/' || !s[3]))))
            return 0;
    }
    return 1;
}

/* The body's binding for vm; the identity must be one of vm's user-assigned identities. */
static mv_rc parse(struct arm_req *ar, const struct st_vm *vm, struct st_binding *b)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL;
    char(*names)[ST_NAME] = NULL;
    size_t n = 0;
    int found = 0;
    memset(b, 0, sizeof *b);
    CHECK(arm_body(ar, &body));
    const char *ident = json_string_value(json_object_get(body, "identity"));
    json_t *uid = json_object_get(body, "uid");
    json_t *cg = json_object_get(body, "cgroup");
    if (!ident || !*ident || (uid != NULL) == (cg != NULL)) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "A binding names an identity and exactly one of 'uid' and 'cgroup'.");
        goto out;
    }
    if (uid) {
        json_int_t v = json_is_integer(uid) ? json_integer_value(uid) : -1;
        if (v < 0 || v > 4294967294LL) {
            rc = arm_fail(ar, 400, "BadRequest", "'uid' must be an integer from 0 to 4294967294.");
            goto out;
        }
        b->kind = ST_BIND_UID;
        CHECK(mv_fmt(b->value, sizeof b->value, "%lld", (long long)v));
    } else {
        const char *p = json_string_value(cg);
        if (!p || !cgroup_ok(p)) {
            rc = arm_fail(ar, 400, "BadRequest",
                          "'cgroup' must be an absolute cgroup v2 path, such as "
                          "/system.slice/app.service.");
            goto out;
        }
        b->kind = ST_BIND_CGROUP;
        CHECK(mv_copy(b->value, sizeof b->value, p));
    }
    CHECK(store_vm_uai_list(ar->st, vm->name, &names, &n));
    for (size_t i = 0; i < n && !found; i++) {
        if (mv_streq_ci(names[i], ident)) {
            found = 1;
            CHECK(mv_copy(b->identity, sizeof b->identity, names[i]));
        }
    }
    if (!found) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "The identity '%s' is not a user-assigned identity of the virtual machine "
                      "'%s'.", ident, vm->name);
        goto out;
    }
    CHECK(mv_copy(b->vm, sizeof b->vm, vm->name));
    b->created = mv_now();
out:
    free(names);
    json_decref(body);
    return rc;
}

static json_t *binding_json(const struct st_binding *b)
{
    if (b->kind == ST_BIND_UID) {
        int64_t v = 0;
        if (mv_parse_i64(b->value, &v) != MV_OK)
            return NULL;
        return json_pack("{s:s, s:I}", "identity", b->identity, "uid", (json_int_t)v);
    }
    return json_pack("{s:s, s:s}", "identity", b->identity, "cgroup", b->value);
}

void arm_vm_bind(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vm vm;
    struct st_binding b;
    CHECK(vm_of(ar, VM_TYPE "/write", &vm));
    CHECK(parse(ar, &vm, &b));
    CHECK(store_binding_add(ar->st, &b));
    arm_reply(ar, 200, binding_json(&b));
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

void arm_vm_unbind(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vm vm;
    struct st_binding b;
    CHECK(vm_of(ar, VM_TYPE "/write", &vm));
    CHECK(parse(ar, &vm, &b));
    rc = store_binding_remove(ar->st, &b);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        arm_reply_empty(ar, 204);
        goto out;
    }
    CHECK(rc);
    arm_reply_empty(ar, 200);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

static mv_rc item_json(struct arm_req *ar, const void *item, json_t **out)
{
    (void)ar;
    *out = binding_json(item);
    return *out ? MV_OK : MV_ERR_INTERNAL;
}

void arm_vm_bindings(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vm vm;
    struct st_binding *list = NULL;
    size_t n = 0;
    CHECK(vm_of(ar, VM_TYPE "/read", &vm));
    CHECK(store_binding_list(ar->st, vm.name, &list, &n));
    arm_reply_list(ar, list, n, sizeof *list, item_json);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    free(list);
}
