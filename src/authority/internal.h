/* internal.h: what the files of src/authority/ share among themselves. Not for other layers:
 * they use authority.h and validate.h.
 *
 * Handlers are reached only through the route table of route.c, which has already matched the
 * method and the path and checked the {tenant} segment against the route's tenant rule. */
#ifndef MV_AUTHORITY_INTERNAL_H
#define MV_AUTHORITY_INTERNAL_H

#include <stdint.h>

#include "authority/authority.h"
#include "crypto/jws.h"
#include "common/limits.h"
#include "http/kv.h"

/* What the router captured from the path. */
struct authority_route_args {
    const char *tenant; /* the {t} segment as sent ("" on routes without one) */
    int v2;             /* the v2.0 spelling of the route */
    struct authority_loop *w; /* the loop the request arrived on */
};

typedef void (*authority_route_fn)(http_req *req, const struct authority_route_args *a);

/* oidc.c: GET discovery documents and the JWKS. */
void authority_discovery(http_req *req, const struct authority_route_args *a);
void authority_jwks(http_req *req, const struct authority_route_args *a);
/* token.c: POST /{tid}/oauth2[/v2.0]/token. */
void authority_token(http_req *req, const struct authority_route_args *a);
/* enroll.c: POST /mivault/enroll. */
void authority_enroll(http_req *req, const struct authority_route_args *a);
/* ca.c: GET /mivault/ca.pem, the CA certificate join tokens pin. */
void authority_ca_pem(http_req *req, const struct authority_route_args *a);

/* An OAuth refusal to send: status + RFC 6749 §5.2 error code + a fixed description; or, when
 * code is set, Entra's shape (AADSTS code, text: the description after "AADSTSnnnn: "). */
#define AUTHORITY_REFUSAL_TEXT 2048
struct authority_refusal {
    int status;
    const char *error;
    const char *description;
    int code;
    char text[AUTHORITY_REFUSAL_TEXT];
};

/* An Entra-shaped refusal (AADSTS code, description from fmt); returns the mv_rc of status. */
MV_MUST_CHECK mv_rc authority_refuse_aad(struct authority_refusal *r, int status, const char *error,
                                         int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Replies Entra's error body: {"error","error_description":"AADSTSnnnn: text\r\nTrace ID: …\r\n
 * Correlation ID: …\r\nTimestamp: …","error_codes":[n],"timestamp","trace_id","correlation_id",
 * "error_uri"}. The correlation id is the client's client-request-id when it sent a GUID. */
void authority_reply_aad(http_req *req, const struct authority_refusal *r);

/* Records the refusal (the log gets `detail`, the client only the fixed description) and
 * returns the mv_rc category matching status (400 → BAD_REQUEST, 401 → UNAUTHENTICATED). */
MV_MUST_CHECK mv_rc authority_refuse(struct authority_refusal *r, int status, const char *error,
                                     const char *description, const char *detail);

/* ENSURE for OAuth refusals: if cond is false, record the reply to send and leave through out. */
#define REFUSE_UNLESS(cond, ref, status, error, description)                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            rc = authority_refuse((ref), (status), (error), (description), #cond);                 \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* assertion.c: RFC 7523 §3 checks of a parsed client assertion t, sent by client_id to the
 * endpoint req was made to (tenant tid), with a verifier of the client's public key (NULL: the
 * client has no usable key, refused). MV_ERR_UNAUTHENTICATED on any failure (detail in mv_last_detail()),
 * MV_ERR_INTERNAL only when something of ours broke. */
MV_MUST_CHECK mv_rc authority_check_assertion(const struct authority_plane *srv, const http_req *req,
                                              const jwt *t, const char *client_id,
                                              jws_verifier *key, int64_t now);

/* The RFC 7523 §3 claim checks of assertion.c alone, for an assertion whose signature the
 * caller verified (a service principal's certificate). */
MV_MUST_CHECK mv_rc authority_check_assertion_claims(const struct authority_plane *srv,
                                                     const http_req *req, const jwt *t,
                                                     const char *client_id, int64_t now);

/* federation.c: external OIDC issuers' keys. Pure parsers (fuzzed): the discovery document
 * (its issuer must equal issuer; jwks_uri https) and a JWKS (the RSA key with kid; without a
 * kid the only RSA key; MV_ERR_NOT_FOUND if none). */
MV_MUST_CHECK mv_rc authority_fed_discovery_parse(const char *body, size_t len, const char *issuer,
                                                  char jwks_uri[MV_MAX_URL]);
MV_MUST_CHECK mv_rc authority_fed_jwks_key(const char *body, size_t len, const char *kid,
                                           EVP_PKEY **out);
/* The key kid of issuer (cached; fetched over HTTPS when needed): MV_ERR_NOT_FOUND if the
 * issuer has no such key, MV_ERR_UNAVAILABLE if it cannot be fetched. */
MV_MUST_CHECK mv_rc authority_federation_key(const char *issuer, const char *kid, int64_t now,
                                             EVP_PKEY **out);

/* clients.c: service principals and federated identities (refusals in Entra's shape, *ref).
 * unknown_client: 700016. sp_secret: client_secret against the app's secrets. sp_assertion: a
 * certificate assertion (signature, time, RFC 7523 claims; the caller records the jti).
 * federated_assertion: an external issuer's token for identity (a user-assigned identity's
 * principal) against its federated credentials. */
MV_MUST_CHECK mv_rc authority_unknown_client(const struct authority_plane *srv, const char *client_id,
                                             struct authority_refusal *ref);
MV_MUST_CHECK mv_rc authority_sp_secret(struct authority_loop *w, const char *client_id,
                                        const char *secret, int64_t now,
                                        struct authority_refusal *ref);
MV_MUST_CHECK mv_rc authority_sp_assertion(struct authority_loop *w, const http_req *req,
                                           const jwt *t, const char *client_id, int64_t now,
                                           struct authority_refusal *ref);
MV_MUST_CHECK mv_rc authority_federated_assertion(struct authority_loop *w, const jwt *t,
                                                  const struct st_principal *identity, int64_t now,
                                                  struct authority_refusal *ref);

/* cache.c: per-worker caches, valid for one store generation (gen: store_generation() read
 * once per request; gen < 0 bypasses them). What is known about a client: */
struct authority_client {
    int is_node;                   /* an enrolled node (host agent) */
    char vm[ST_NAME];              /* node: the VM it acts for */
    struct st_principal principal; /* not a node: the principal (public_key_pem NULL) */
    jws_verifier *key;             /* its public key, parsed once; NULL if none or unusable */
};
/* The client with that id (a node, else a principal of any kind): MV_ERR_NOT_FOUND if none.
 * *out belongs to the cache and stays valid until the next call on this worker. */
MV_MUST_CHECK mv_rc authority_client_get(struct authority_loop *w, int64_t gen, const char *client_id,
                                         const struct authority_client **out);
/* authority_node_principal through the cache (successes only are cached). */
MV_MUST_CHECK mv_rc authority_subject_get(struct authority_loop *w, int64_t gen, const char *vm,
                                          const kv_list *form, struct st_principal *out,
                                          struct authority_refusal *ref);

/* identity.c: which principal the node of VM vm may get a token for, per the mi_client_id /
 * mi_object_id / mi_res_id selectors of form. out is cleared by the caller (st_principal_clear).
 * A refusal (400) is described in *ref. */
MV_MUST_CHECK mv_rc authority_node_principal(struct store *st, const char *vm, const kv_list *form,
                                             struct st_principal *out,
                                             struct authority_refusal *ref);
/* identity.c: per-process bindings (docs/agent.md). If the VM binds subject's identity to
 * local callers, *bound = 1 and the caller the agent observed (form's mi_caller_uid and
 * mi_caller_cgroup) must match one binding (a uid exactly, a cgroup by path prefix), else 400
 * invalid_request AUTHORITY_BOUND_REFUSAL. Unbound identities: *bound = 0, any caller. A VM
 * found without bindings at store generation gen (>= 0) is not read again until it moves. */
#define AUTHORITY_BOUND_REFUSAL "Identity not found: it is bound to other local callers on this VM"
MV_MUST_CHECK mv_rc authority_binding_check(struct store *st, int64_t gen, const char *vm_name,
                                            const struct st_principal *subject,
                                            const kv_list *form, int *bound,
                                            struct authority_refusal *ref);
/* 1 if form carries any identity selector (refused for admin clients). */
int authority_has_selector(const kv_list *form);

/* json_out.c: s as a JSON string (quoted, escaped) appended to b. MV_ERR_INTERNAL if s is not
 * UTF-8. */
MV_MUST_CHECK mv_rc authority_json_str(mv_buf *b, const char *s);

/* issue.c: authority_issue with the worker's signer (NULL: one made for this token). */
MV_MUST_CHECK mv_rc authority_issue_with(const struct authority_plane *srv, jws_signer *signer,
                                         const struct st_principal *p, const char *resource,
                                         mv_buf *out, int64_t *exp_out);
/* cache.c: this worker's signer for the current signing key; NULL if it cannot be made. When
 * the store generation gen (-1: unknown) moved, the store's current key is read again, and a
 * key rotated in by another process or server replaces the loop's own (unsealed once). */
jws_signer *authority_signer(struct authority_loop *w, int64_t gen);
/* keys.c: the store's current signing key (unsealed) and its kid. NOT_FOUND if none signs. */
MV_MUST_CHECK mv_rc authority_current_key(const struct authority_plane *srv, struct store *st,
                                          EVP_PKEY **key, char kid[32]);

/* keys.c: the JWKS document of the signing keys in the store now (caller frees *out). */
MV_MUST_CHECK mv_rc authority_jwks_build(const struct authority_plane *srv, struct store *st, char **out);
/* cache.c: the loop's JWKS document, rebuilt from the store when its change generation moved
 * (a key another server added or retired); the start-up document if the store cannot be read.
 * Never NULL once authority_load_keys ran. */
const char *authority_jwks_current(struct authority_loop *w);

#endif
