/* enroll.c: node enrollment (DESIGN §4, internal-protocol.md "Node enrollment").
 *
 * A join token is "mvj1.<secret>.sha256:<CA pin>" (crypto/join_token.h): 32 random bytes as
 * base64url, then the SHA-256 of the CA's SubjectPublicKeyInfo, which the agent checks the CA
 * it fetches from GET /mivault/ca.pem against. Only the SHA-256 of the secret part
 * "mvj1.<secret>" is stored, with the VM it admits and an expiry; store_join_consume spends it atomically, so a token
 * enrolls at most one node. POST /mivault/enroll trades it, with the agent's EC P-256 public
 * key, for a new client id bound to that VM; from then on the agent authenticates with
 * assertions signed by the matching private key, which never leaves the agent.
 *
 * Proof of possession: the request carries "proof", a compact JWS (ES256) made with the new
 * private key over {"purpose":"mivault-enroll","joinTokenSha256":<hex SHA-256 of the secret
 * part>}. Without it anyone holding a join token could enroll a public key whose private half
 * they do not have (someone else's), and the token ties the proof to this one enrollment.
 *
 * One node per VM: enrolling again (a new join token for the same VM) revokes the VM's earlier
 * node keys in the same transaction, and spent or expired join tokens are purged there too.
 *
 * The request is unauthenticated: the body is capped at MV_ENROLL_BODY_BYTES and the key and
 * its proof are checked before the token is spent, so a malformed request never burns a valid
 * token. Every outcome is audited; the token itself never reaches a log. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <string.h>

#include "audit/audit.h"
#include "authority/internal.h"
#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/digest.h"
#include "crypto/join_token.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "http/reply.h"

#define NODE_PEM_MAX 4096
#define PROOF_PURPOSE "mivault-enroll"

mv_rc authority_join_token(struct store *st, const char *vm, int ttl,
                           const unsigned char ca_pin[32], char *out)
{
    mv_rc rc = MV_OK;
    unsigned char r[JOIN_TOKEN_SECRET_BYTES];
    struct join_token t;
    char hash[65];
    memset(&t, 0, sizeof t);
    out[0] = '\0';
    ENSURE(ttl > 0, MV_ERR_INTERNAL);
    CHECK(mv_random(r, sizeof r));
    CHECK(join_token_format(r, ca_pin, out));
    CHECK(join_token_parse(out, strlen(out), 0, &t));
    CHECK(digest_sha256_hex(t.secret, strlen(t.secret), hash));
    CHECK(store_join_put(st, hash, vm, mv_now() + ttl));
out:
    if (rc != MV_OK)
        OPENSSL_cleanse(out, JOIN_TOKEN_MAX);
    OPENSSL_cleanse(r, sizeof r);
    join_token_wipe(&t);
    return rc;
}

struct enroll_ctx {
    json_t *body;
    EVP_PKEY *key;
    mv_buf pem;
    struct st_node node;
    struct authority_refusal ref;
};

/* Body checks: {"joinToken":"mvj1.…","publicKey":<EC P-256 public JWK>}. The token may be the
 * whole token or its secret part; the pin is the agent's business, not ours. */
static mv_rc parse(const http_req *req, struct enroll_ctx *c, struct join_token *token)
{
    mv_rc rc = MV_OK;
    struct authority_refusal *ref = &c->ref;
    json_error_t jerr;
    REFUSE_UNLESS(req->body.len > 0 && req->body.len <= MV_ENROLL_BODY_BYTES, ref, 400,
                  "invalid_request", "The request body is missing or too large.");
    c->body = json_loadb(req->body.p, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    REFUSE_UNLESS(json_is_object(c->body), ref, 400, "invalid_request",
                  "The request body is not a JSON object.");
    const char *s = json_string_value(json_object_get(c->body, "joinToken"));
    REFUSE_UNLESS(s && join_token_parse(s, strlen(s), 1, token) == MV_OK, ref, 400,
                  "invalid_grant", "The join token is invalid, used or expired.");
    const json_t *jwk = json_object_get(c->body, "publicKey");
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    REFUSE_UNLESS(json_is_object(jwk) && kty && strcmp(kty, "EC") == 0, ref, 400,
                  "invalid_request", "publicKey must be an EC P-256 public JWK.");
    /* jwk_to_public refuses private members ("d") and points off the curve. */
    rc = jwk_to_public(jwk, &c->key);
    REFUSE_UNLESS(rc == MV_OK && keys_is_ec_p256(c->key), ref, 400, "invalid_request",
                  "publicKey must be an EC P-256 public JWK.");
out:
    return rc;
}

/* The proof: signed by the private half of publicKey, over this join token's hash. */
static mv_rc check_proof(struct enroll_ctx *c, const char token_hash[65])
{
    mv_rc rc = MV_OK;
    struct authority_refusal *ref = &c->ref;
    jwt t;
    memset(&t, 0, sizeof t);
    const char *proof = json_string_value(json_object_get(c->body, "proof"));
    REFUSE_UNLESS(proof && jwt_parse(proof, strlen(proof), JWS_ALLOW(JWS_ES256), &t) == MV_OK,
                  ref, 400, "invalid_request", "A proof of possession of the key is required.");
    REFUSE_UNLESS(jwt_verify(&t, c->key) == MV_OK, ref, 400, "invalid_request",
                  "The proof of possession does not verify with publicKey.");
    const char *purpose = jwt_claim_str(&t, "purpose");
    const char *bound = jwt_claim_str(&t, "joinTokenSha256");
    REFUSE_UNLESS(purpose && strcmp(purpose, PROOF_PURPOSE) == 0 && bound && strlen(bound) == 64 &&
                      CRYPTO_memcmp(bound, token_hash, 64) == 0,
                  ref, 400, "invalid_request",
                  "The proof of possession is not for this join token.");
out:
    jwt_free(&t);
    return rc;
}

static mv_rc handle(http_req *req, struct enroll_ctx *c, const struct authority_loop *w)
{
    mv_rc rc = MV_OK;
    struct join_token token;
    char hash[65];
    int in_tx = 0;
    memset(&token, 0, sizeof token);
    CHECK(parse(req, c, &token));
    CHECK(keys_public_pem(c->key, &c->pem));
    CHECK(digest_sha256_hex(token.secret, strlen(token.secret), hash));
    CHECK(check_proof(c, hash));
    CHECK(mv_uuid(c->node.client_id));
    c->node.public_key_pem = c->pem.p;
    c->node.created = mv_now();
    /* Spending the token and storing the node commit together: a failed write does not burn
     * the token. */
    CHECK(store_begin(w->st));
    in_tx = 1;
    rc = store_join_consume(w->st, hash, mv_now(), c->node.vm);
    REFUSE_UNLESS(rc != MV_ERR_NOT_FOUND, &c->ref, 400, "invalid_grant",
                  "The join token is invalid, used or expired.");
    CHECK(rc);
    CHECK(store_node_revoke_vm(w->st, c->node.vm, mv_now()));
    CHECK(store_node_put(w->st, &c->node));
    CHECK(store_commit(w->st));
    in_tx = 0;
    json_t *reply = json_pack("{s:s, s:s, s:s}", "clientId", c->node.client_id, "vm", c->node.vm,
                              "tenantId", w->srv->tenant.tenant_id);
    ENSURE(reply != NULL, MV_ERR_INTERNAL);
    http_reply_json(req, 200, reply);
    LOG_INFO("authority: enrolled node %s for vm %s", c->node.client_id, c->node.vm);
out:
    join_token_wipe(&token);
    if (in_tx)
        store_rollback(w->st);
    if (rc != MV_OK)
        c->node.client_id[0] = '\0'; /* no node was made */
    c->node.public_key_pem = NULL; /* owned by c->pem */
    return rc;
}

void authority_enroll(http_req *req, const struct authority_route_args *a)
{
    const struct authority_loop *w = a->w;
    struct enroll_ctx c;
    int status = 200;
    memset(&c, 0, sizeof c);
    mv_buf_init(&c.pem, NODE_PEM_MAX);

    mv_rc rc = handle(req, &c, w);
    if (rc != MV_OK && c.ref.status) {
        status = c.ref.status;
        reply_oauth_error(req, status, c.ref.error, c.ref.description);
    } else if (rc != MV_OK) {
        status = rc_http_status(rc);
        LOG_WARN("enroll: request %s failed: %s", req->request_id, mv_last_detail());
        reply_rc_oauth(req, rc);
    }
    if (w->srv->audit)
        audit_record(w->srv->audit, "authority", c.node.client_id[0] ? c.node.client_id : "-",
                     "enroll", c.node.vm, status, req->request_id);

    json_decref(c.body); /* holds the join token: short-lived, never logged */
    EVP_PKEY_free(c.key);
    mv_buf_free(&c.pem);
}
