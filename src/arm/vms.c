/* vms.c: Microsoft.Compute/virtualMachines — the machines identities live on (DESIGN §1 step 1-2).
 *
 *   PUT    …/virtualMachines/{vm}                       create or update (identity.type, UAIs)
 *   GET    …/virtualMachines/{vm}, …/virtualMachines    read, list
 *   DELETE …/virtualMachines/{vm}                       200, or 204 when absent
 *   POST   …/virtualMachines/{vm}/generateJoinToken     one-time enrollment token for its agent
 *
 * Invariants: a VM has a system principal exactly when its identity includes SystemAssigned;
 * the principal is created with the VM's resource id as xms_mirid and is deleted, with all its
 * role assignments, when the system identity is removed or the VM deleted — from then on no
 * token is issued for it (the VM's nodes go with the VM). Each create/update/delete is one store
 * transaction. Attaching a user-assigned identity needs
 * Microsoft.ManagedIdentity/userAssignedIdentities/assign/action on it, as in Azure. A PUT
 * without "identity" keeps the VM's identities (Compute removes them only for type "None"). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"
#include "authority/authority.h"
#include "common/limits.h"
#include "crypto/ca.h"
#include "crypto/join_token.h"

#define VM_TYPE "Microsoft.Compute/virtualMachines"
#define UAI_TYPE "Microsoft.ManagedIdentity/userAssignedIdentities"
#define VM_READ VM_TYPE "/read"
#define VM_WRITE VM_TYPE "/write"
#define VM_DELETE VM_TYPE "/delete"
#define VM_JOIN VM_TYPE "/generateJoinToken/action"
#define UAI_ASSIGN UAI_TYPE "/assign/action"

enum { ID_SYSTEM = 1, ID_USER = 2 };

struct vm_identity_req {
    int given;               /* the body had an "identity" */
    int kinds;               /* ID_SYSTEM | ID_USER */
    size_t n;
    char (*names)[ST_NAME];  /* user-assigned identities, canonical names, no duplicates */
};

/* "SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned" (or without the space),
 * "None"; ARM compares these case-insensitively. */
static int identity_type(const char *s, int *kinds)
{
    char t[48];
    size_t n = 0;
    for (; *s; s++) {
        if (*s == ' ')
            continue;
        if (n + 1 >= sizeof t)
            return 0;
        t[n++] = *s;
    }
    t[n] = '\0';
    if (mv_streq_ci(t, "None"))
        *kinds = 0;
    else if (mv_streq_ci(t, "SystemAssigned"))
        *kinds = ID_SYSTEM;
    else if (mv_streq_ci(t, "UserAssigned"))
        *kinds = ID_USER;
    else if (mv_streq_ci(t, "SystemAssigned,UserAssigned"))
        *kinds = ID_SYSTEM | ID_USER;
    else
        return 0;
    return 1;
}

static int has_name(char (*names)[ST_NAME], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (mv_streq_ci(names[i], name))
            return 1;
    return 0;
}

/* Reads body.identity; resolves each user-assigned identity id against the store. */
static mv_rc parse_identity(struct arm_req *ar, json_t *body, struct vm_identity_req *out)
{
    mv_rc rc = MV_OK;
    json_t *ident = json_object_get(body, "identity");
    if (!ident || json_is_null(ident))
        return MV_OK;
    if (!json_is_object(ident))
        return arm_fail(ar, 400, "InvalidRequestContent", "The property 'identity' must be an object.");
    out->given = 1;
    const char *type = json_string_value(json_object_get(ident, "type"));
    if (!type || !identity_type(type, &out->kinds))
        return arm_fail(ar, 400, "InvalidParameter",
                        "The value of parameter identity.type is invalid: use 'SystemAssigned', "
                        "'UserAssigned', 'SystemAssigned, UserAssigned' or 'None'.");
    json_t *uais = json_object_get(ident, "userAssignedIdentities");
    size_t given = 0;
    if (uais && !json_is_null(uais)) {
        if (!json_is_object(uais))
            return arm_fail(ar, 400, "InvalidRequestContent",
                            "The property 'identity.userAssignedIdentities' must be an object.");
        given = json_object_size(uais);
    }
    if (given > ARM_MAX_VM_UAIS)
        return arm_fail(ar, 400, "InvalidParameter", "A virtual machine can have at most %d user-assigned "
                        "identities.", ARM_MAX_VM_UAIS);
    out->names = calloc(given ? given : 1, sizeof *out->names);
    ENSURE(out->names != NULL, MV_ERR_INTERNAL);
    const char *key;
    json_t *val;
    json_object_foreach(uais, key, val) {
        if (json_is_null(val)) /* {"<id>": null}: not attached */
            continue;
        if (!json_is_object(val))
            return arm_fail(ar, 400, "InvalidRequestContent",
                            "Each value of 'identity.userAssignedIdentities' must be an object.");
        char name[ST_NAME];
        if (!arm_parse_resource_id(ar->srv, key, UAI_TYPE, name))
            return arm_fail(ar, 400, "InvalidUserAssignedIdentity",
                            "The user-assigned identity '%s' is not a valid identity resource id in this "
                            "subscription and resource group.", key);
        struct st_identity id;
        rc = store_identity_get(ar->st, name, &id);
        if (rc == MV_ERR_NOT_FOUND)
            return arm_fail(ar, 400, "InvalidUserAssignedIdentity", "The user-assigned identity '%s' was not found.",
                            key);
        CHECK(rc);
        if (!has_name(out->names, out->n, id.name))
            CHECK(mv_copy(out->names[out->n++], ST_NAME, id.name));
    }
    if ((out->kinds & ID_USER) && out->n == 0)
        return arm_fail(ar, 400, "InvalidParameter", "The identity type includes UserAssigned but "
                        "'identity.userAssignedIdentities' names no identity.");
    if (!(out->kinds & ID_USER) && out->n > 0)
        return arm_fail(ar, 400, "InvalidParameter", "'identity.userAssignedIdentities' is given but the "
                        "identity type does not include UserAssigned.");
out:
    return rc;
}

/* Inside the transaction: reads the VM as it is, applies the request, writes it. */
static mv_rc vm_apply(struct arm_req *ar, const char *name, const char *id, const struct vm_identity_req *idr,
                      struct st_vm *vm, int *created)
{
    mv_rc rc = MV_OK;
    char(*old_names)[ST_NAME] = NULL;
    size_t old_n = 0;
    const char **ptrs = NULL;
    struct st_principal p;
    memset(&p, 0, sizeof p);
    rc = store_vm_get(ar->st, name, vm);
    int found = rc == MV_OK;
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    if (found)
        CHECK(store_vm_uai_list(ar->st, vm->name, &old_names, &old_n));
    if (!found) {
        memset(vm, 0, sizeof *vm);
        CHECK(mv_copy(vm->name, sizeof vm->name, name));
        CHECK(mv_copy(vm->resource_id, sizeof vm->resource_id, id));
        CHECK(mv_uuid(vm->vm_id));
        vm->created = mv_now();
    }
    CHECK(mv_copy(vm->rg, sizeof vm->rg, ar->srv->tenant.resource_group));
    for (size_t i = 0; idr->given && i < idr->n; i++) {
        char uai_id[ST_SCOPE];
        if (has_name(old_names, old_n, idr->names[i]))
            continue;
        CHECK(arm_resource_id(ar->srv, UAI_TYPE, idr->names[i], uai_id));
        ENSURE(arm_authorize_linked(ar, VM_WRITE, id, UAI_ASSIGN, uai_id), MV_ERR_FORBIDDEN);
    }
    int sys = idr->given ? (idr->kinds & ID_SYSTEM) != 0 : vm->system_principal_id[0] != '\0';
    if (sys && !vm->system_principal_id[0]) {
        CHECK(mv_uuid(p.id));
        CHECK(mv_uuid(p.client_id));
        p.kind = ST_PRINCIPAL_SYSTEM;
        CHECK(mv_copy(p.name, sizeof p.name, vm->name));
        CHECK(mv_copy(p.resource_id, sizeof p.resource_id, vm->resource_id));
        CHECK(store_principal_put(ar->st, &p));
        CHECK(mv_copy(vm->system_principal_id, sizeof vm->system_principal_id, p.id));
    } else if (!sys && vm->system_principal_id[0]) {
        CHECK(arm_drop_principal(ar->st, vm->system_principal_id));
        vm->system_principal_id[0] = '\0';
    }
    vm->system_assigned = sys;
    CHECK(store_vm_put(ar->st, vm));
    if (idr->given) {
        ptrs = calloc(idr->n ? idr->n : 1, sizeof *ptrs);
        ENSURE(ptrs != NULL, MV_ERR_INTERNAL);
        for (size_t i = 0; i < idr->n; i++)
            ptrs[i] = idr->names[i];
        CHECK(store_vm_uai_set(ar->st, vm->name, ptrs, idr->n));
    }
    *created = !found;
out:
    free(ptrs);
    free(old_names);
    return rc;
}

void arm_vm_put(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL, *reply = NULL;
    struct vm_identity_req idr = {0};
    struct st_vm vm;
    int in_txn = 0, created = 0;
    const char *name = ar->cap[2];
    char id[ST_SCOPE];
    if (!arm_vm_name_ok(name)) {
        rc = arm_fail(ar, 400, "InvalidResourceName",
                      "Resource name %s is invalid. The name can be up to %d characters long. It can contain "
                      "only letters, numbers, underscores, periods and hyphens and must start with a letter "
                      "or number.", name, MV_MAX_NAME);
        goto out;
    }
    CHECK(arm_resource_id(ar->srv, VM_TYPE, name, id));
    ENSURE(arm_authorize(ar, VM_WRITE, id), MV_ERR_FORBIDDEN);
    CHECK(arm_body(ar, &body));
    CHECK(store_begin(ar->st));
    in_txn = 1;
    CHECK(parse_identity(ar, body, &idr));
    CHECK(vm_apply(ar, name, id, &idr, &vm, &created));
    CHECK(store_commit(ar->st));
    in_txn = 0;
    CHECK(arm_vm_json(ar, &vm, &reply));
    arm_reply(ar, created ? 201 : 200, reply);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    json_decref(body);
    free(idr.names);
}

/* The VM of the path after the read check, or a 404 reply. */
static mv_rc vm_lookup(struct arm_req *ar, const char *action, struct st_vm *vm)
{
    mv_rc rc = MV_OK;
    char id[ST_SCOPE];
    const char *name = ar->cap[2];
    CHECK(arm_resource_id(ar->srv, VM_TYPE, name, id));
    ENSURE(arm_authorize(ar, action, id), MV_ERR_FORBIDDEN);
    rc = store_vm_get(ar->st, name, vm);
    if (rc == MV_ERR_NOT_FOUND)
        rc = arm_not_found(ar, VM_TYPE, name);
out:
    return rc;
}

void arm_vm_get(struct arm_req *ar)
{
    struct st_vm vm;
    json_t *reply = NULL;
    mv_rc rc = vm_lookup(ar, VM_READ, &vm);
    if (rc == MV_OK)
        rc = arm_vm_json(ar, &vm, &reply);
    if (rc == MV_OK)
        arm_reply(ar, 200, reply);
    else
        arm_fail_rc(ar, rc);
}

static mv_rc vm_item_json(struct arm_req *ar, const void *item, json_t **out)
{
    return arm_vm_json(ar, item, out);
}

void arm_vm_list(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vm *vms = NULL;
    size_t n = 0;
    CHECK(arm_list_scope(ar, VM_READ));
    CHECK(store_vm_list(ar->st, &vms, &n));
    arm_reply_list(ar, vms, n, sizeof *vms, vm_item_json);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    free(vms);
}

void arm_vm_delete(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_vm vm;
    char id[ST_SCOPE];
    int in_txn = 0, found = 0;
    CHECK(arm_resource_id(ar->srv, VM_TYPE, ar->cap[2], id));
    ENSURE(arm_authorize(ar, VM_DELETE, id), MV_ERR_FORBIDDEN);
    CHECK(store_begin(ar->st));
    in_txn = 1;
    rc = store_vm_get(ar->st, ar->cap[2], &vm);
    found = rc == MV_OK;
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    if (found) {
        /* The system identity and its grants go with the VM; store_vm_delete drops its nodes and
         * join tokens, so its agent can no longer obtain tokens. */
        CHECK(arm_drop_principal(ar->st, vm.system_principal_id));
        CHECK(store_vm_delete(ar->st, vm.name));
    }
    CHECK(store_commit(ar->st));
    in_txn = 0;
    arm_reply_empty(ar, found ? 200 : 204);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

void arm_vm_join_token(struct arm_req *ar)
{
    struct st_vm vm;
    char token[JOIN_TOKEN_MAX];
    unsigned char pin[32];
    mv_rc rc = vm_lookup(ar, VM_JOIN, &vm);
    /* The token pins the CA that signs this server's certificate (internal-protocol.md). */
    if (rc == MV_OK)
        rc = ca_file_spki_sha256(ar->srv->ca_pem, pin);
    if (rc == MV_OK)
        rc = authority_join_token(ar->st, vm.name, MV_JOIN_TOKEN_TTL_SECS, pin, token);
    if (rc != MV_OK) {
        arm_fail_rc(ar, rc);
        return;
    }
    /* A one-time secret: it goes to the caller and nowhere else (never logged or audited). */
    arm_reply(ar, 200, json_pack("{s:s, s:I}", "joinToken", token, "expiresOn",
                                 (json_int_t)(mv_now() + MV_JOIN_TOKEN_TTL_SECS)));
    OPENSSL_cleanse(token, sizeof token);
}
