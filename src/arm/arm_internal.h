/* arm_internal.h: what the files of src/arm/ share, and nobody else includes.
 *
 * One control-plane request is one `struct arm_req` on the loop thread's stack: route.c fills it
 * (captured path segments, the role-route scope), auth.c the caller, and a handler replies
 * exactly once through arm_reply / arm_fail so the final status is known for the audit line.
 *
 * Handler convention: inner steps return mv_rc; a step that already replied with a client error
 * (arm_fail) returns that error and leaves ar->status set, so the outer code only replies
 * (500/503) when ar->status is still 0. Successful replies come after store_commit. */
#ifndef MV_ARM_INTERNAL_H
#define MV_ARM_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "arm/arm.h"
#include "http/server.h"
#include "rbac/rbac.h"
#include "token/validate.h"

#define ARM_MAX_SEGS 32     /* path segments; the deepest route (a role assignment on a secret) has 14 */
#define ARM_MAX_CAPS 4      /* {} captures of one route */
#define ARM_MAX_AUDIT 8     /* authorizations of one request recorded with its final status */
#define ARM_MAX_VM_UAIS 100 /* user-assigned identities per VM (Azure's limit) */
#define ARM_LOCATION "local"

struct arm_audit_entry {
    const char *action; /* a string literal */
    char scope[ST_SCOPE];
};

struct arm_req {
    http_req *req;
    struct arm_loop *w;
    const struct arm_plane *srv;
    struct store *st;
    struct token_info tok;    /* the caller, once authenticated */
    const char *cap[ARM_MAX_CAPS];
    size_t ncap;
    char scope[ST_SCOPE];     /* role routes: the scope before /providers/Microsoft.Authorization */
    int status;               /* status of the reply sent, 0 before */
    struct arm_audit_entry audit[ARM_MAX_AUDIT];
    size_t naudit;
};

/* ---- json.c: replies, request bodies, small formats ---- */
void arm_reply(struct arm_req *ar, int status, json_t *body); /* steals body; NULL → 500 */
void arm_reply_empty(struct arm_req *ar, int status);
/* Azure error body {"error":{"code","message"}}; returns the mv_rc of that status. */
mv_rc arm_fail(struct arm_req *ar, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies for an internal/store error (unless a reply was already sent). */
void arm_fail_rc(struct arm_req *ar, mv_rc rc);
/* The request body as a JSON object ({} when empty); 400 InvalidRequestContent otherwise. */
MV_MUST_CHECK mv_rc arm_body(struct arm_req *ar, json_t **out);
/* arm_body's parse, without the reply (pure; tests/fuzz/fuzz_arm.c): MV_ERR_LIMIT when too
 * large, MV_ERR_BAD_REQUEST when not a JSON object within MV_MAX_JSON_DEPTH. */
MV_MUST_CHECK mv_rc arm_parse_body(const char *p, size_t len, json_t **out);
/* "2024-05-01T12:00:00.0000000Z" */
void arm_iso8601(int64_t t, char out[40]);

/* ---- names.c: name rules, resource ids, scopes ---- */
int arm_vm_name_ok(const char *name);
int arm_identity_name_ok(const char *name);
int arm_vault_name_ok(const char *name);
/* /subscriptions/{sub}/resourceGroups/{rg}/providers/{type}/{name} */
MV_MUST_CHECK mv_rc arm_resource_id(const struct arm_plane *srv, const char *type, const char *name,
                                    char out[ST_SCOPE]);
MV_MUST_CHECK mv_rc arm_rg_id(const struct arm_plane *srv, char out[ST_SCOPE]);
MV_MUST_CHECK mv_rc arm_sub_id(const struct arm_plane *srv, char out[ST_SCOPE]);
/* If id is .../providers/{type}/{name} in our subscription and resource group, copies the name
 * into out and returns 1. */
int arm_parse_resource_id(const struct arm_plane *srv, const char *id, const char *type,
                          char out[ST_NAME]);
/* Checks a role-route scope (already in ar->scope, "/" for the root): "/" or within our
 * subscription (and resource group, if it names one). Replies 400/404 otherwise. */
MV_MUST_CHECK mv_rc arm_check_scope(struct arm_req *ar);
MV_MUST_CHECK mv_rc arm_check_sub(struct arm_req *ar, const char *sub);
MV_MUST_CHECK mv_rc arm_check_rg(struct arm_req *ar, const char *rg);
/* 404 ResourceNotFound for "<type>/<name>" in our resource group. */
mv_rc arm_not_found(struct arm_req *ar, const char *type, const char *name);

/* ---- filter.c: the OData $filter subsets ARM clients send ---- */
struct arm_filter {
    char principal_id[ST_ID]; /* principalId eq '…' / assignedTo('…') */
    int at_scope;             /* atScope() */
    char role_name[128];      /* roleName eq '…' */
    char type[32];            /* type eq 'BuiltInRole' */
};
/* Parses clauses joined by " and ". Returns 0 on an unsupported or malformed filter. */
int arm_filter_parse(const char *f, struct arm_filter *out);

/* ---- auth.c ---- */
/* 401 with the WWW-Authenticate challenge on failure. Returns 1 when ar->tok is the caller. */
int arm_authenticate(struct arm_req *ar);
/* RBAC for the caller: 1 if allowed (recorded for the audit line), else replies 403
 * AuthorizationFailed (or 500) and returns 0. target_role: see rbac_check_target. */
int arm_authorize(struct arm_req *ar, const char *action, const char *scope);
int arm_authorize_target(struct arm_req *ar, const char *action, const char *scope,
                         const char *target_role);
/* For a resource linked by a write (a user-assigned identity attached to a VM): 403
 * LinkedAuthorizationFailed. */
int arm_authorize_linked(struct arm_req *ar, const char *write_action, const char *write_scope,
                         const char *action, const char *scope);
/* A grant that needs no role (any principal of the tenant may list role definitions): recorded
 * with the request's final status, like the grants of arm_authorize. */
void arm_audit_grant(struct arm_req *ar, const char *action, const char *scope);
/* A decision that does not refuse the request (listing): recorded as given. */
void arm_audit_now(struct arm_req *ar, const char *action, const char *scope, int status);
void arm_audit_flush(struct arm_req *ar);
/* Deletes a principal and every role assignment of it (its identity is going away). "" is a
 * no-op. Call inside the caller's transaction. */
MV_MUST_CHECK mv_rc arm_drop_principal(struct store *st, const char *principal_id);

/* ---- list.c: the shape every resource listing shares ---- */
/* Renders one stored item (a struct st_vm, st_identity, st_vault...) as its ARM JSON. */
typedef mv_rc (*arm_item_json_fn)(struct arm_req *ar, const void *item, json_t **out);
/* Replies {"value":[...]} with fn applied to each of the n items (elem bytes apart), or the
 * error. */
void arm_reply_list(struct arm_req *ar, const void *items, size_t n, size_t elem, arm_item_json_fn fn);
/* The scope a listing names (…/resourceGroups/{rg}/providers/… or the subscription-wide
 * …/providers/…), authorized for read_action (else the 403 has been sent). */
MV_MUST_CHECK mv_rc arm_list_scope(struct arm_req *ar, const char *read_action);

/* ---- shapes.c: ARM JSON of each resource ---- */
json_t *arm_subscription_json(const struct arm_plane *srv);
json_t *arm_rg_json(const struct arm_plane *srv);
MV_MUST_CHECK mv_rc arm_vm_json(struct arm_req *ar, const struct st_vm *vm, json_t **out);
json_t *arm_identity_json(const struct arm_plane *srv, const struct st_identity *id);
MV_MUST_CHECK mv_rc arm_vault_json(const struct arm_plane *srv, const struct st_vault *v, json_t **out);
json_t *arm_assignment_json(const struct arm_plane *srv, const struct st_role_assignment *a);
/* sub_level: id under /subscriptions/<s> (any scope but the root) or under /providers. */
json_t *arm_roledef_json(const struct arm_plane *srv, const struct role_def *r, int sub_level);

/* ---- handlers (route.c's table) ---- */
typedef void (*arm_fn)(struct arm_req *ar);
void arm_metadata_endpoints(struct arm_req *ar);
void arm_sub_list(struct arm_req *ar);
void arm_sub_get(struct arm_req *ar);
void arm_rg_list(struct arm_req *ar);
void arm_rg_get(struct arm_req *ar);
void arm_vm_put(struct arm_req *ar);
void arm_vm_get(struct arm_req *ar);
void arm_vm_list(struct arm_req *ar);
void arm_vm_delete(struct arm_req *ar);
void arm_vm_join_token(struct arm_req *ar);
/* bindings.c: per-process identity bindings (docs/agent.md). */
void arm_vm_bind(struct arm_req *ar);
void arm_vm_unbind(struct arm_req *ar);
void arm_vm_bindings(struct arm_req *ar);
void arm_uai_put(struct arm_req *ar);
void arm_uai_get(struct arm_req *ar);
void arm_uai_list(struct arm_req *ar);
void arm_uai_delete(struct arm_req *ar);
void arm_vault_put(struct arm_req *ar);
void arm_vault_get(struct arm_req *ar);
void arm_vault_list(struct arm_req *ar);
void arm_vault_delete(struct arm_req *ar);
void arm_ra_put(struct arm_req *ar);
void arm_ra_get(struct arm_req *ar);
void arm_ra_delete(struct arm_req *ar);
void arm_ra_list(struct arm_req *ar);
void arm_rd_list(struct arm_req *ar);
void arm_rd_get(struct arm_req *ar);
void arm_fic_put(struct arm_req *ar);
void arm_fic_get(struct arm_req *ar);
void arm_fic_list(struct arm_req *ar);
void arm_fic_delete(struct arm_req *ar);
/* fic.c: ^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$ (Entra's federated credential names). */
int arm_fic_name_ok(const char *name);
void arm_sp_create(struct arm_req *ar);
void arm_sp_list(struct arm_req *ar);
void arm_sp_get(struct arm_req *ar);
void arm_sp_delete(struct arm_req *ar);
void arm_sp_add_credential(struct arm_req *ar);

#endif
