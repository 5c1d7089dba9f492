/* test_authority.c: the authority's routes end to end below HTTP (src/authority/): a real SQLite
 * store in a temporary directory, the signing keys made and loaded by keys.c, and a fake
 * request layer (this file defines http_header / http_set_header / http_reply /
 * http_reply_json, so the handlers' replies are captured instead of sent).
 *
 * Covers: the route table (404, 405, tenant rules), discovery v1/v2, the JWKS, join tokens and
 * enrollment (one-time, key checked before the token is spent), the token endpoint for a node
 * (system and user-assigned identities, the selectors, scope → resource) and for the admin, and
 * every refusal of the token endpoint with its status and error code, and key rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "authority/authority.h"
#include "authority/internal.h"
#include "common/limits.h"
#include "common/util.h"
#include "crypto/digest.h"
#include "crypto/join_token.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "http/kv.h"
#include "http/server.h"
#include "token/validate.h"

#define TID "6f1c2a43-4a5b-4c1d-9e2f-0123456789ab"
#define BASE "https://127.0.0.1:8443"
/* a CA pin for join tokens (the authority carries it, it does not check it) */
static const unsigned char PIN[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                      17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
#define TOKEN_V2 BASE "/" TID "/oauth2/v2.0/token"
#define VM_RID "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/"
#define UAI_RID "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/"

/* ---- the fake request layer ---- */

static struct {
    int status;
    char *body;
    json_t *json;
    char content_type[128];
    char allow[32];
    char cache_control[32];
    char pragma[32];
} cap;

static const char *req_content_type;

const char *http_header(const http_req *req, const char *name)
{
    (void)req;
    return strcasecmp(name, "Content-Type") == 0 ? req_content_type : NULL;
}

void http_set_header(http_req *req, const char *name, const char *value)
{
    (void)req;
    char *dst = strcasecmp(name, "Allow") == 0           ? cap.allow
                : strcasecmp(name, "Cache-Control") == 0 ? cap.cache_control
                : strcasecmp(name, "Pragma") == 0        ? cap.pragma
                                                         : NULL;
    if (dst)
        snprintf(dst, 32, "%s", value);
}

void http_reply(http_req *req, int status, const char *content_type, const char *body, size_t len)
{
    assert_int_equal(req->replied, 0); /* exactly one reply */
    req->replied = 1;
    cap.status = status;
    cap.body = strndup(body ? body : "", len);
    snprintf(cap.content_type, sizeof cap.content_type, "%s", content_type ? content_type : "");
    cap.json = json_loads(cap.body, 0, NULL);
}

void http_reply_json(http_req *req, int status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    assert_non_null(s);
    http_reply(req, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
}

/* Deferred replies belong to the server's writer path (srv.writer), which this fixture has
 * not: the token endpoint records jti on the loop's connection and replies inline. */
http_req *http_defer(http_req *req)
{
    (void)req;
    fail_msg("http_defer without a writer");
    return NULL;
}

void http_deferred_free(http_req *d) { (void)d; }

static void cap_reset(void)
{
    free(cap.body);
    json_decref(cap.json);
    memset(&cap, 0, sizeof cap);
}

/* ---- fixture ---- */

struct node {
    char client_id[ST_ID];
    EVP_PKEY *key;
};

struct fixture {
    char dir[64];
    char db[128];
    struct authority_plane srv;
    struct authority_loop w;
    struct token_keyset keys;  /* the resource side, checking what the authority issued */
    unsigned char data_key[32];
    struct st_principal sys1;   /* vm1's system identity */
    struct st_identity uai_a, uai_b;
    struct st_principal admin;
    EVP_PKEY *admin_key;
    struct node n1, n2, n3;     /* nodes of vm1 (system + uai_a), vm2 (uai_a only), vm3 (a+b) */
};

static struct fixture *F;

static const char *str(const char *name) { return json_string_value(json_object_get(cap.json, name)); }

static int do_request(enum http_method m, const char *path, const char *body)
{
    http_req req;
    memset(&req, 0, sizeof req);
    req.method = m;
    req.path = strdup(path);
    req.body = (mv_slice){body, body ? strlen(body) : 0};
    snprintf(req.request_id, sizeof req.request_id, "00000000-0000-4000-8000-000000000000");
    cap_reset();
    authority_handle(&F->w, &req);
    assert_int_equal(req.replied, 1);
    free(req.path);
    return cap.status;
}

static void put_principal(struct st_principal *p, enum st_principal_kind kind, const char *name,
                          const char *rid)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(mv_uuid(p->id), MV_OK);
    assert_int_equal(mv_uuid(p->client_id), MV_OK);
    p->kind = kind;
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->resource_id, sizeof p->resource_id, "%s", rid);
    assert_int_equal(store_principal_put(F->w.st, p), MV_OK);
}

static void put_uai(struct st_identity *id, const char *name)
{
    struct st_principal p;
    char rid[ST_SCOPE];
    snprintf(rid, sizeof rid, "%s%s", UAI_RID, name);
    put_principal(&p, ST_PRINCIPAL_USER, name, rid);
    memset(id, 0, sizeof *id);
    snprintf(id->name, sizeof id->name, "%s", name);
    snprintf(id->rg, sizeof id->rg, "rg");
    memcpy(id->principal_id, p.id, sizeof p.id);
    memcpy(id->client_id, p.client_id, sizeof p.client_id);
    memcpy(id->resource_id, p.resource_id, sizeof id->resource_id);
    id->created = mv_now();
    assert_int_equal(store_identity_put(F->w.st, id), MV_OK);
}

static void put_vm(const char *name, const struct st_principal *sys, const char *const *uais, size_t n)
{
    struct st_vm vm;
    memset(&vm, 0, sizeof vm);
    snprintf(vm.name, sizeof vm.name, "%s", name);
    snprintf(vm.rg, sizeof vm.rg, "rg");
    assert_int_equal(mv_uuid(vm.vm_id), MV_OK);
    snprintf(vm.resource_id, sizeof vm.resource_id, "%s%s", VM_RID, name);
    if (sys) {
        vm.system_assigned = 1;
        memcpy(vm.system_principal_id, sys->id, sizeof vm.system_principal_id);
    }
    vm.created = mv_now();
    assert_int_equal(store_vm_put(F->w.st, &vm), MV_OK);
    assert_int_equal(store_vm_uai_set(F->w.st, name, uais, n), MV_OK);
}

/* The proof of possession enrollment needs: key's JWS over the token's secret-part hash. */
static void enroll_proof(EVP_PKEY *key, const char *join, mv_buf *proof)
{
    struct join_token jt;
    char hash[65];
    mv_buf_init(proof, 4096);
    assert_int_equal(join_token_parse(join, strlen(join), 1, &jt), MV_OK);
    assert_int_equal(digest_sha256_hex(jt.secret, strlen(jt.secret), hash), MV_OK);
    json_t *pc = json_pack("{s:s, s:s}", "purpose", "mivault-enroll", "joinTokenSha256", hash);
    assert_int_equal(jws_sign(key, JWS_ES256, NULL, pc, proof), MV_OK);
    json_decref(pc);
}

/* An enrollment body for join with the public jwk and a proof made with key. */
static json_t *enroll_body(const char *join, json_t *jwk, EVP_PKEY *key)
{
    mv_buf proof;
    enroll_proof(key, join, &proof);
    json_t *b = json_pack("{s:s, s:O, s:s}", "joinToken", join, "publicKey", jwk, "proof", proof.p);
    mv_buf_free(&proof);
    assert_non_null(b);
    return b;
}

/* Enrolls a fresh P-256 key for vm through POST /mivault/enroll. */
static void enroll(const char *vm, struct node *n)
{
    char join[JOIN_TOKEN_MAX];
    json_t *jwk = NULL;
    assert_int_equal(authority_join_token(F->w.st, vm, 60, PIN, join), MV_OK);
    assert_int_equal(keys_gen_ec_p256(&n->key), MV_OK);
    assert_int_equal(jwk_from_public(n->key, NULL, &jwk), MV_OK);
    mv_buf proof;
    enroll_proof(n->key, join, &proof);
    json_t *body = json_pack("{s:s, s:o, s:s}", "joinToken", join, "publicKey", jwk, "proof", proof.p);
    mv_buf_free(&proof);
    char *s = json_dumps(body, JSON_COMPACT);
    assert_int_equal(do_request(HTTP_POST, "/mivault/enroll", s), 200);
    assert_string_equal(str("vm"), vm);
    assert_string_equal(str("tenantId"), TID);
    assert_true(mv_is_uuid(str("clientId")));
    snprintf(n->client_id, sizeof n->client_id, "%s", str("clientId"));
    free(s);
    json_decref(body);
}

static int setup(void **state)
{
    F = calloc(1, sizeof *F);
    snprintf(F->dir, sizeof F->dir, "/tmp/mv_test_authority_XXXXXX");
    assert_non_null(mkdtemp(F->dir));
    snprintf(F->db, sizeof F->db, "%s/mivault.db", F->dir);
    assert_int_equal(store_open(F->db, &F->w.st), MV_OK);
    F->w.srv = &F->srv;
    snprintf(F->srv.tenant.tenant_id, sizeof F->srv.tenant.tenant_id, TID);
    F->srv.server_url = BASE;
    F->srv.issuer = BASE "/" TID "/";
    F->srv.token_lifetime = 3600;
    assert_int_equal(mv_random(F->data_key, sizeof F->data_key), MV_OK);
    F->srv.data_key = F->data_key;
    assert_int_equal(authority_load_keys(&F->srv, F->w.st), MV_OK);

    char rid[ST_SCOPE];
    snprintf(rid, sizeof rid, "%svm1", VM_RID);
    put_principal(&F->sys1, ST_PRINCIPAL_SYSTEM, "vm1", rid);
    put_uai(&F->uai_a, "ida");
    put_uai(&F->uai_b, "idb");
    const char *a[] = {"ida"}, *ab[] = {"ida", "idb"};
    put_vm("vm1", &F->sys1, a, 1);
    put_vm("vm2", NULL, a, 1);
    put_vm("vm3", NULL, ab, 2);

    /* the admin principal and its key */
    mv_buf pem;
    mv_buf_init(&pem, 4096);
    assert_int_equal(keys_gen_ec_p256(&F->admin_key), MV_OK);
    assert_int_equal(keys_public_pem(F->admin_key, &pem), MV_OK);
    put_principal(&F->admin, ST_PRINCIPAL_ADMIN, "admin", "");
    F->admin.public_key_pem = pem.p;
    assert_int_equal(store_principal_put(F->w.st, &F->admin), MV_OK);
    F->admin.public_key_pem = NULL;
    mv_buf_free(&pem);

    enroll("vm1", &F->n1);
    enroll("vm2", &F->n2);
    enroll("vm3", &F->n3);
    *state = F;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cap_reset();
    token_keyset_free(&F->keys);
    authority_worker_free(&F->w);
    authority_free_keys(&F->srv);
    store_close(F->w.st);
    EVP_PKEY_free(F->n1.key);
    EVP_PKEY_free(F->n2.key);
    EVP_PKEY_free(F->n3.key);
    EVP_PKEY_free(F->admin_key);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F->dir);
    assert_int_equal(system(cmd), 0);
    free(F);
    return 0;
}

/* ---- helpers for the token endpoint ---- */

/* An assertion with the good claims; then each "name", json pair replaces (NULL value deletes). */
static char *assertion(EVP_PKEY *key, enum jws_alg alg, const char *client_id, const char *aud,
                       const char *name, json_t *value)
{
    int64_t now = mv_now();
    char jti[MV_UUID_LEN + 1];
    assert_int_equal(mv_uuid(jti), MV_OK);
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", client_id, "sub",
                          client_id, "aud", aud, "iat", (json_int_t)now, "nbf", (json_int_t)now,
                          "exp", (json_int_t)(now + 300), "jti", jti);
    if (name && value)
        json_object_set_new(c, name, value);
    else if (name)
        json_object_del(c, name);
    mv_buf b;
    mv_buf_init(&b, MV_MAX_TOKEN_BYTES);
    assert_int_equal(jws_sign(key, alg, NULL, c, &b), MV_OK);
    json_decref(c);
    return mv_buf_take(&b);
}

/* The form of a token request: "k=v&..." with each value escaped. */
static char *form(const char *const *kv)
{
    mv_buf b;
    mv_buf_init(&b, 64 * 1024);
    for (size_t i = 0; kv[i]; i += 2) {
        if (i)
            assert_int_equal(mv_buf_adds(&b, "&"), MV_OK);
        assert_int_equal(mv_buf_addf(&b, "%s=", kv[i]), MV_OK);
        assert_int_equal(kv_escape(kv[i + 1], &b), MV_OK);
    }
    return mv_buf_take(&b);
}

/* POST a token request for client with assertion a and extra form pairs (NULL-terminated). */
static int token_req(const char *path, const char *client_id, const char *a, const char *const *extra)
{
    const char *kv[40] = {"grant_type", "client_credentials", "client_id", client_id,
                          "client_assertion_type",
                          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                          "client_assertion", a};
    size_t n = 8;
    for (size_t i = 0; extra && extra[i]; i++)
        kv[n++] = extra[i];
    kv[n] = NULL;
    char *body = form(kv);
    int st = do_request(HTTP_POST, path, body);
    free(body);
    return st;
}

static int node_token(const struct node *n, const char *const *extra)
{
    char *a = assertion(n->key, JWS_ES256, n->client_id, TOKEN_V2, NULL, NULL);
    int st = token_req("/" TID "/oauth2/v2.0/token", n->client_id, a, extra);
    free(a);
    return st;
}

/* Validates the access token of the last reply for aud and returns its claims (caller frees). */
static json_t *issued_claims(const char *aud)
{
    const char *tok = str("access_token");
    assert_non_null(tok);
    const char *const auds[] = {aud, NULL};
    struct token_info info;
    enum token_failure why;
    struct token_verifier tv = {.issuer = F->srv.issuer, .tenant_id = F->srv.tenant.tenant_id,
                                .audiences = auds, .token_lifetime = F->srv.token_lifetime,
                                .keys = &F->keys, .st = F->w.st};
    assert_int_equal(token_validate(&tv, tok, strlen(tok), &info, &why), MV_OK);
    jwt t;
    assert_int_equal(jwt_parse(tok, strlen(tok), JWS_ALLOW(JWS_RS256), &t), MV_OK);
    json_t *c = json_incref(t.claims);
    jwt_free(&t);
    return c;
}

static const char *claim(json_t *c, const char *name)
{
    return json_string_value(json_object_get(c, name));
}

static void expect_error(int status, int want_status, const char *want_error)
{
    assert_int_equal(status, want_status);
    assert_string_equal(str("error"), want_error);
    assert_non_null(str("error_description"));
}

/* ---- routes, discovery, JWKS ---- */

static void test_routes(void **state)
{
    (void)state;
    expect_error(do_request(HTTP_GET, "/nope", NULL), 404, "not_found");
    expect_error(do_request(HTTP_GET, "/", NULL), 404, "not_found");
    expect_error(do_request(HTTP_GET, "/" TID "/.well-known/openid-configuration/", NULL), 404,
                 "not_found");
    expect_error(do_request(HTTP_GET, "//.well-known/openid-configuration", NULL), 404, "not_found");
    expect_error(do_request(HTTP_GET, "/" TID "/oauth2/v2.0/token", NULL), 405, "invalid_request");
    assert_string_equal(cap.allow, "POST");
    expect_error(do_request(HTTP_POST, "/" TID "/.well-known/openid-configuration", ""), 405,
                 "invalid_request");
    assert_string_equal(cap.allow, "GET");
    expect_error(do_request(HTTP_GET, "/mivault/enroll", NULL), 405, "invalid_request");
    /* tenant rules */
    expect_error(do_request(HTTP_GET, "/someone-else/.well-known/openid-configuration", NULL), 400,
                 "invalid_request");
    assert_string_equal(str("error_description"), "Tenant not found");
    expect_error(do_request(HTTP_POST, "/common/oauth2/v2.0/token", "grant_type=x"), 400,
                 "invalid_request");
    assert_string_equal(str("error_description"), "Tenant not found");
    expect_error(do_request(HTTP_POST, "/00000000-0000-4000-8000-000000000000/oauth2/token", ""),
                 400, "invalid_request");
}

static void test_discovery(void **state)
{
    (void)state;
    const char *v1[] = {"/" TID "/.well-known/openid-configuration",
                        "/common/.well-known/openid-configuration",
                        "/organizations/.well-known/openid-configuration",
                        "/6F1C2A43-4A5B-4C1D-9E2F-0123456789AB/.well-known/openid-configuration"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(do_request(HTTP_GET, v1[i], NULL), 200);
        assert_string_equal(str("issuer"), BASE "/" TID "/");
        assert_string_equal(str("token_endpoint"), BASE "/" TID "/oauth2/token");
        assert_string_equal(str("jwks_uri"), BASE "/" TID "/discovery/v2.0/keys");
        assert_non_null(str("authorization_endpoint"));
        assert_string_equal(str("cloud_instance_name"), "mivault.local");
    }
    json_t *algs = json_object_get(cap.json, "id_token_signing_alg_values_supported");
    assert_int_equal(json_array_size(algs), 1);
    assert_string_equal(json_string_value(json_array_get(algs, 0)), "RS256");
    json_t *am = json_object_get(cap.json, "token_endpoint_auth_methods_supported");
    assert_string_equal(json_string_value(json_array_get(am, 0)), "private_key_jwt");
    json_t *aa = json_object_get(cap.json, "token_endpoint_auth_signing_alg_values_supported");
    assert_int_equal(json_array_size(aa), 3); /* ES256, RS256, PS256 (Node's MSAL) */
    json_t *gt = json_object_get(cap.json, "grant_types_supported");
    assert_string_equal(json_string_value(json_array_get(gt, 0)), "client_credentials");
    json_t *st = json_object_get(cap.json, "subject_types_supported");
    assert_string_equal(json_string_value(json_array_get(st, 0)), "pairwise");
    json_t *rt = json_object_get(cap.json, "response_types_supported");
    assert_string_equal(json_string_value(json_array_get(rt, 0)), "token");

    assert_int_equal(do_request(HTTP_GET, "/common/v2.0/.well-known/openid-configuration", NULL), 200);
    assert_string_equal(str("issuer"), BASE "/" TID "/v2.0");
    assert_string_equal(str("token_endpoint"), BASE "/" TID "/oauth2/v2.0/token");
    assert_string_equal(str("jwks_uri"), BASE "/" TID "/discovery/v2.0/keys");
}

static void test_jwks(void **state)
{
    (void)state;
    const char *paths[] = {"/" TID "/discovery/v2.0/keys", "/" TID "/discovery/keys",
                           "/common/discovery/keys", "/common/discovery/v2.0/keys"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(do_request(HTTP_GET, paths[i], NULL), 200);
        assert_string_equal(cap.body, F->srv.jwks_json);
        assert_string_equal(cap.content_type, "application/json");
    }
    json_t *keys = json_object_get(cap.json, "keys");
    assert_int_equal(json_array_size(keys), 1);
    json_t *k = json_array_get(keys, 0);
    assert_string_equal(claim(k, "kty"), "RSA");
    assert_string_equal(claim(k, "use"), "sig");
    assert_string_equal(claim(k, "kid"), F->srv.sign_kid);
    assert_string_equal(claim(k, "x5t"), F->srv.sign_kid);
    assert_string_equal(claim(k, "e"), "AQAB");
    assert_true(strlen(claim(k, "n")) == 342); /* 2048-bit modulus, base64url, no padding */
    assert_string_equal(claim(k, "issuer"), F->srv.issuer);
    json_t *x5c = json_object_get(k, "x5c");
    assert_int_equal(json_array_size(x5c), 1);
    assert_true(strlen(json_string_value(json_array_get(x5c, 0))) > 100);
    /* no private member ever */
    assert_null(json_object_get(k, "d"));
    assert_null(json_object_get(k, "p"));
}

/* ---- enrollment ---- */

static void test_enroll(void **state)
{
    (void)state;
    char join[JOIN_TOKEN_MAX];
    struct join_token jt;
    /* A VM of its own: enrolling a VM again revokes its earlier node, and the fixture's nodes
     * (vm1..vm3) must keep working for the token tests that follow. */
    put_vm("vm4", NULL, NULL, 0);
    assert_int_equal(authority_join_token(F->w.st, "vm4", 60, PIN, join), MV_OK);
    assert_int_equal(strlen(join), 99);
    assert_memory_equal(join, "mvj1.", 5);
    /* the pin it carries is the one it was made with */
    assert_int_equal(join_token_parse(join, strlen(join), 0, &jt), MV_OK);
    assert_true(jt.has_pin);
    assert_memory_equal(jt.pin, PIN, 32);
    assert_memory_equal(join + 48, ".sha256:", 8);

    EVP_PKEY *ec = NULL, *rsa = NULL;
    json_t *ecj = NULL, *rsaj = NULL;
    assert_int_equal(keys_gen_ec_p256(&ec), MV_OK);
    assert_int_equal(keys_gen_rsa(2048, &rsa), MV_OK);
    assert_int_equal(jwk_from_public(ec, NULL, &ecj), MV_OK);
    assert_int_equal(jwk_from_public(rsa, NULL, &rsaj), MV_OK);

    /* an RSA key is refused, and does not spend the token */
    json_t *b = json_pack("{s:s, s:O}", "joinToken", join, "publicKey", rsaj);
    char *s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_request");
    free(s), json_decref(b);
    /* garbage bodies */
    expect_error(do_request(HTTP_POST, "/mivault/enroll", ""), 400, "invalid_request");
    expect_error(do_request(HTTP_POST, "/mivault/enroll", "[1]"), 400, "invalid_request");
    expect_error(do_request(HTTP_POST, "/mivault/enroll", "{\"joinToken\":1}"), 400, "invalid_grant");
    char big[MV_ENROLL_BODY_BYTES + 2];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    expect_error(do_request(HTTP_POST, "/mivault/enroll", big), 400, "invalid_request");
    /* a private key member is refused */
    json_t *priv = json_deep_copy(ecj);
    json_object_set_new(priv, "d", json_string("AAAA"));
    b = json_pack("{s:s, s:o}", "joinToken", join, "publicKey", priv);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_request");
    free(s), json_decref(b);

    /* without a proof of possession it does not */
    b = json_pack("{s:s, s:O}", "joinToken", join, "publicKey", ecj);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_request");
    free(s), json_decref(b);
    /* the EC key with its proof works, once */
    mv_buf ecproof;
    enroll_proof(ec, join, &ecproof);
    b = json_pack("{s:s, s:O, s:s}", "joinToken", join, "publicKey", ecj, "proof", ecproof.p);
    mv_buf_free(&ecproof);
    s = json_dumps(b, JSON_COMPACT);
    assert_int_equal(do_request(HTTP_POST, "/mivault/enroll", s), 200);
    struct st_node node;
    memset(&node, 0, sizeof node);
    char first[MV_UUID_LEN + 1];
    snprintf(first, sizeof first, "%s", str("clientId"));
    assert_int_equal(store_node_get(F->w.st, first, &node), MV_OK);
    assert_string_equal(node.vm, "vm4");
    assert_non_null(strstr(node.public_key_pem, "BEGIN PUBLIC KEY"));
    st_node_clear(&node);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_grant");
    assert_string_equal(str("error_description"), "The join token is invalid, used or expired.");
    free(s), json_decref(b);

    /* a proof made for another join token does not do for this one */
    char join2[JOIN_TOKEN_MAX];
    assert_int_equal(authority_join_token(F->w.st, "vm4", 60, PIN, join2), MV_OK);
    mv_buf other;
    enroll_proof(ec, join, &other);
    b = json_pack("{s:s, s:O, s:s}", "joinToken", join2, "publicKey", ecj, "proof", other.p);
    mv_buf_free(&other);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_request");
    free(s), json_decref(b);
    /* enrolling the VM again (the token was not spent above) revokes its earlier node */
    b = enroll_body(join2, ecj, ec);
    s = json_dumps(b, JSON_COMPACT);
    assert_int_equal(do_request(HTTP_POST, "/mivault/enroll", s), 200);
    free(s), json_decref(b);
    assert_string_not_equal(str("clientId"), first);
    assert_int_equal(store_node_get(F->w.st, str("clientId"), &node), MV_OK);
    st_node_clear(&node);
    assert_int_equal(store_node_get(F->w.st, first, &node), MV_ERR_NOT_FOUND);

    /* unknown and expired tokens. The proof is checked before the token is looked up: a
     * request without a valid proof gets invalid_request whatever its token, so it cannot learn
     * whether a token is valid (nor spend one); with a proof, a bad token is invalid_grant. */
    const char *unknown = "mvj1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    b = json_pack("{s:s, s:O}", "joinToken", unknown, "publicKey", ecj);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_request");
    free(s), json_decref(b);
    b = enroll_body(unknown, ecj, ec);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_grant");
    free(s), json_decref(b);
    /* the old format (before CA pins) is not a join token any more */
    b = json_pack("{s:s, s:O}", "joinToken", "mvj_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                  "publicKey", ecj);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_grant");
    free(s), json_decref(b);
    const char *stale = "mvj1.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hash[65];
    assert_int_equal(EVP_Digest(stale, strlen(stale), md, &mdlen, EVP_sha256(), NULL), 1);
    mv_hex(hash, md, 32);
    assert_int_equal(store_join_put(F->w.st, hash, "vm4", mv_now() - 1), MV_OK);
    b = json_pack("{s:s, s:O}", "joinToken", stale, "publicKey", ecj);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_request");
    free(s), json_decref(b);
    b = enroll_body(stale, ecj, ec);
    s = json_dumps(b, JSON_COMPACT);
    expect_error(do_request(HTTP_POST, "/mivault/enroll", s), 400, "invalid_grant");
    free(s), json_decref(b);

    json_decref(ecj), json_decref(rsaj);
    EVP_PKEY_free(ec), EVP_PKEY_free(rsa);
}

/* ---- the token endpoint ---- */

static void test_token_system_identity(void **state)
{
    (void)state;
    const char *const res[] = {"resource", "https://vault.azure.net", NULL};
    assert_int_equal(node_token(&F->n1, res), 200);
    assert_string_equal(str("token_type"), "Bearer");
    assert_string_equal(str("resource"), "https://vault.azure.net");
    assert_string_equal(str("client_id"), F->sys1.client_id);
    assert_true(json_is_integer(json_object_get(cap.json, "expires_in")));
    assert_true(json_is_integer(json_object_get(cap.json, "ext_expires_in")));
    assert_true(json_is_integer(json_object_get(cap.json, "expires_on")));
    json_int_t in = json_integer_value(json_object_get(cap.json, "expires_in"));
    assert_true(in >= 3598 && in <= 3600);
    assert_string_equal(cap.cache_control, "no-store");
    assert_string_equal(cap.pragma, "no-cache");
    json_t *c = issued_claims("https://vault.azure.net");
    assert_string_equal(claim(c, "oid"), F->sys1.id);
    assert_string_equal(claim(c, "appid"), F->sys1.client_id);
    assert_string_equal(claim(c, "xms_mirid"), VM_RID "vm1");
    assert_int_equal(json_integer_value(json_object_get(c, "exp")),
                     json_integer_value(json_object_get(cap.json, "expires_on")));
    json_decref(c);

    /* v1 path, assertion aud = the v1 URL called, or the v2 URL */
    char *a = assertion(F->n1.key, JWS_ES256, F->n1.client_id, BASE "/" TID "/oauth2/token", NULL,
                        NULL);
    assert_int_equal(token_req("/" TID "/oauth2/token", F->n1.client_id, a, res), 200);
    free(a);
    a = assertion(F->n1.key, JWS_ES256, F->n1.client_id, TOKEN_V2, NULL, NULL);
    assert_int_equal(token_req("/" TID "/oauth2/token", F->n1.client_id, a, res), 200);
    free(a);
    /* client_id may be omitted: the assertion's sub names the client (RFC 7521 §4.2) */
    a = assertion(F->n1.key, JWS_ES256, F->n1.client_id, TOKEN_V2, NULL, NULL);
    const char *kv[] = {"grant_type", "client_credentials", "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion", a, "resource", "https://vault.azure.net", NULL};
    char *body = form(kv);
    assert_int_equal(do_request(HTTP_POST, "/" TID "/oauth2/v2.0/token", body), 200);
    free(body), free(a);
}

static void test_token_scope(void **state)
{
    (void)state;
    const char *const mgmt[] = {"scope", "https://management.core.windows.net//.default", NULL};
    assert_int_equal(node_token(&F->n1, mgmt), 200);
    assert_string_equal(str("resource"), "https://management.core.windows.net/");
    json_t *c = issued_claims("https://management.core.windows.net/");
    json_decref(c);
    const char *const vault[] = {"scope", "https://vault.azure.net/.default", NULL};
    assert_int_equal(node_token(&F->n1, vault), 200);
    assert_string_equal(str("resource"), "https://vault.azure.net");

    const char *const two[] = {"scope", "https://vault.azure.net/.default openid", NULL};
    expect_error(node_token(&F->n1, two), 400, "invalid_scope");
    const char *const nodefault[] = {"scope", "https://vault.azure.net/secrets.read", NULL};
    expect_error(node_token(&F->n1, nodefault), 400, "invalid_scope");
    const char *const bare[] = {"scope", "/.default", NULL};
    expect_error(node_token(&F->n1, bare), 400, "invalid_scope");
    const char *const both[] = {"scope", "https://vault.azure.net/.default", "resource",
                                "https://vault.azure.net", NULL};
    expect_error(node_token(&F->n1, both), 400, "invalid_request");
    expect_error(node_token(&F->n1, NULL), 400, "invalid_request");
    const char *const empty[] = {"resource", "", NULL};
    expect_error(node_token(&F->n1, empty), 400, "invalid_resource");
    const char *const ctl[] = {"resource", "https://vault.azure.net\n", NULL};
    expect_error(node_token(&F->n1, ctl), 400, "invalid_resource");
    char longres[300];
    memset(longres, 'a', 256);
    longres[256] = '\0';
    const char *const toolong[] = {"resource", longres, NULL};
    expect_error(node_token(&F->n1, toolong), 400, "invalid_resource");
    longres[255] = '\0';
    const char *const maxlen[] = {"resource", longres, NULL};
    assert_int_equal(node_token(&F->n1, maxlen), 200);
}

static void test_token_selectors(void **state)
{
    (void)state;
    char upper_rid[ST_SCOPE];
    snprintf(upper_rid, sizeof upper_rid, "%s", F->uai_a.resource_id);
    for (char *p = upper_rid; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    const char *const by_client[] = {"resource", "https://vault.azure.net", "mi_client_id",
                                     F->uai_a.client_id, NULL};
    const char *const by_object[] = {"resource", "https://vault.azure.net", "mi_object_id",
                                     F->uai_a.principal_id, NULL};
    const char *const by_res[] = {"resource", "https://vault.azure.net", "mi_res_id", upper_rid,
                                  NULL};
    const char *const *sel[] = {by_client, by_object, by_res};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(node_token(&F->n1, sel[i]), 200);
        assert_string_equal(str("client_id"), F->uai_a.client_id);
        json_t *c = issued_claims("https://vault.azure.net");
        assert_string_equal(claim(c, "oid"), F->uai_a.principal_id);
        assert_string_equal(claim(c, "xms_mirid"), F->uai_a.resource_id);
        json_decref(c);
    }
    /* the system identity by selector */
    const char *const sys[] = {"resource", "https://vault.azure.net", "mi_object_id", F->sys1.id,
                               NULL};
    assert_int_equal(node_token(&F->n1, sys), 200);
    assert_string_equal(str("client_id"), F->sys1.client_id);
    /* an identity of another VM */
    const char *const other[] = {"resource", "https://vault.azure.net", "mi_client_id",
                                 F->uai_b.client_id, NULL};
    expect_error(node_token(&F->n1, other), 400, "invalid_request");
    assert_string_equal(str("error_description"), "Identity not found");
    /* two selectors */
    const char *const twosel[] = {"resource", "https://vault.azure.net", "mi_client_id",
                                  F->uai_a.client_id, "mi_object_id", F->uai_a.principal_id, NULL};
    expect_error(node_token(&F->n1, twosel), 400, "invalid_request");
    /* no system identity, one user-assigned: that one by default */
    const char *const res[] = {"resource", "https://vault.azure.net", NULL};
    assert_int_equal(node_token(&F->n2, res), 200);
    assert_string_equal(str("client_id"), F->uai_a.client_id);
    /* two user-assigned, none chosen: not found; chosen: found */
    expect_error(node_token(&F->n3, res), 400, "invalid_request");
    assert_string_equal(str("error_description"), "Identity not found");
    const char *const b[] = {"resource", "https://vault.azure.net", "mi_client_id",
                             F->uai_b.client_id, NULL};
    assert_int_equal(node_token(&F->n3, b), 200);
    assert_string_equal(str("client_id"), F->uai_b.client_id);
}

static void test_token_admin(void **state)
{
    (void)state;
    const char *const res[] = {"resource", "https://management.core.windows.net/", NULL};
    char *a = assertion(F->admin_key, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    assert_int_equal(token_req("/" TID "/oauth2/v2.0/token", F->admin.client_id, a, res), 200);
    json_t *c = issued_claims("https://management.core.windows.net/");
    assert_string_equal(claim(c, "oid"), F->admin.id);
    assert_string_equal(claim(c, "appid"), F->admin.client_id);
    assert_null(json_object_get(c, "xms_mirid"));
    json_decref(c);
    free(a);
    /* selectors are not for the admin */
    const char *const sel[] = {"resource", "https://vault.azure.net", "mi_object_id", F->sys1.id,
                               NULL};
    a = assertion(F->admin_key, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    expect_error(token_req("/" TID "/oauth2/v2.0/token", F->admin.client_id, a, sel), 400,
                 "invalid_request");
    free(a);
    /* a managed identity's client id is not a client that can authenticate */
    a = assertion(F->admin_key, JWS_ES256, F->sys1.client_id, TOKEN_V2, NULL, NULL);
    expect_error(token_req("/" TID "/oauth2/v2.0/token", F->sys1.client_id, a, res), 401,
                 "invalid_client");
    free(a);
}

static void test_token_refusals(void **state)
{
    (void)state;
    const char *cid = F->n1.client_id;
    const char *path = "/" TID "/oauth2/v2.0/token";
    const char *const res[] = {"resource", "https://vault.azure.net", NULL};
    int64_t now = mv_now();
    char *a;

    /* request shape: 400 */
    expect_error(do_request(HTTP_POST, path, "grant_type=password&resource=x"), 400,
                 "unsupported_grant_type");
    expect_error(do_request(HTTP_POST, path, "resource=x"), 400, "invalid_request");
    expect_error(do_request(HTTP_POST, path, "grant_type=client_credentials&grant_type=client_credentials"),
                 400, "invalid_request");
    expect_error(do_request(HTTP_POST, path, "grant_type=client_credentials&resource=%zz"), 400,
                 "invalid_request");
    expect_error(do_request(HTTP_POST, path, "grant_type=client_credentials&client_id=x&resource=r"),
                 400, "invalid_request");
    req_content_type = "application/json";
    a = assertion(F->n1.key, JWS_ES256, cid, TOKEN_V2, NULL, NULL);
    expect_error(token_req(path, cid, a, res), 400, "invalid_request");
    req_content_type = "application/x-www-form-urlencoded; charset=utf-8";
    assert_int_equal(token_req(path, cid, a, res), 200);
    req_content_type = NULL;
    /* an assertion is good for one token (RFC 7523 §3 item 7): its jti was used just now */
    expect_error(token_req(path, cid, a, res), 401, "invalid_client");
    assert_string_equal(str("error_description"), "The client could not be authenticated.");
    /* the same parameter twice */
    const char *const dup[] = {"resource", "https://vault.azure.net", "resource", "https://x", NULL};
    expect_error(token_req(path, cid, a, dup), 400, "invalid_request");
    /* a client secret besides the assertion */
    const char *const secret[] = {"resource", "https://vault.azure.net", "client_secret", "s", NULL};
    expect_error(token_req(path, cid, a, secret), 400, "invalid_request");
    free(a);

    /* a wrong assertion type is a client authentication failure */
    a = assertion(F->n1.key, JWS_ES256, cid, TOKEN_V2, NULL, NULL);
    const char *kv[] = {"grant_type", "client_credentials", "client_id", cid,
                        "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                        "client_assertion", a, "resource", "https://vault.azure.net", NULL};
    char *body = form(kv);
    expect_error(do_request(HTTP_POST, path, body), 401, "invalid_client");
    free(body), free(a);

    /* client authentication: 401 invalid_client, one fixed description */
    struct {
        EVP_PKEY *key;
        const char *client;    /* form client_id */
        const char *aud;
        const char *name;
        json_t *value;
    } bad[] = {
        {F->n2.key, cid, TOKEN_V2, NULL, NULL},                       /* another node's key */
        {F->admin_key, cid, TOKEN_V2, NULL, NULL},                    /* another key */
        {F->n1.key, cid, BASE "/" TID "/oauth2/v2.0/authorize", NULL, NULL}, /* aud */
        {F->n1.key, cid, "https://login.microsoftonline.com/" TID "/oauth2/v2.0/token", NULL, NULL},
        {F->n1.key, cid, TOKEN_V2, "aud", json_pack("[s]", "https://elsewhere")},
        {F->n1.key, cid, TOKEN_V2, "exp", NULL},                      /* no exp */
        {F->n1.key, cid, TOKEN_V2, "exp", json_integer(now - MV_CLOCK_SKEW_SECS - 1)},
        {F->n1.key, cid, TOKEN_V2, "exp",
         json_integer(now + MV_ASSERTION_MAX_LIFETIME_SECS + MV_CLOCK_SKEW_SECS + 60)},
        {F->n1.key, cid, TOKEN_V2, "exp", json_string("9999999999")},
        {F->n1.key, cid, TOKEN_V2, "nbf", json_integer(now + MV_CLOCK_SKEW_SECS + 60)},
        {F->n1.key, cid, TOKEN_V2, "iat", json_integer(now + MV_CLOCK_SKEW_SECS + 60)},
        {F->n1.key, cid, TOKEN_V2, "jti", NULL},
        {F->n1.key, cid, TOKEN_V2, "jti", json_string("")},
        {F->n1.key, cid, TOKEN_V2, "iss", json_string(F->n2.client_id)},
        {F->n1.key, cid, TOKEN_V2, "sub", json_string(F->n2.client_id)},
        {F->n1.key, cid, TOKEN_V2, "sub", NULL},
        {F->n1.key, F->n2.client_id, TOKEN_V2, NULL, NULL},           /* client_id ≠ iss/sub */
        {F->n1.key, "not-a-uuid", TOKEN_V2, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = assertion(bad[i].key, JWS_ES256, cid, bad[i].aud, bad[i].name, bad[i].value);
        expect_error(token_req(path, bad[i].client, a, res), 401, "invalid_client");
        assert_string_equal(str("error_description"), "The client could not be authenticated.");
        free(a);
    }
    /* an unknown client named by client_id: Entra's AADSTS700016 */
    a = assertion(F->n1.key, JWS_ES256, cid, TOKEN_V2, NULL, NULL);
    expect_error(token_req(path, "00000000-0000-4000-8000-000000000000", a, res), 400,
                 "unauthorized_client");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(cap.json, "error_codes"), 0)),
                     700016);
    assert_non_null(strstr(str("error_description"), "AADSTS700016: Application with identifier "
                                                     "'00000000-0000-4000-8000-000000000000' was "
                                                     "not found in the directory"));
    assert_non_null(str("trace_id"));
    assert_non_null(str("correlation_id"));
    assert_non_null(str("timestamp"));
    free(a);
    /* alg none, and garbage assertions */
    const char *junk[] = {"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJ4In0.", "x.y.z", "abc"};
    for (size_t i = 0; i < 3; i++)
        expect_error(token_req(path, cid, junk[i], res), 401, "invalid_client");
    /* the node of a deleted VM */
    char *ok = assertion(F->n3.key, JWS_ES256, F->n3.client_id, TOKEN_V2, NULL, NULL);
    assert_int_equal(store_vm_delete(F->w.st, "vm3"), MV_OK);
    const char *const b[] = {"resource", "https://vault.azure.net", NULL};
    expect_error(token_req(path, F->n3.client_id, ok, b), 401, "invalid_client");
    free(ok);
}

/* Rotation: a new key becomes current, the old one stays published until its tokens expire. */
static void test_key_rotation(void **state)
{
    (void)state;
    char old_kid[32];
    snprintf(old_kid, sizeof old_kid, "%s", F->srv.sign_kid);
    /* loading again does not make a new key */
    assert_int_equal(authority_load_keys(&F->srv, F->w.st), MV_OK);
    assert_string_equal(F->srv.sign_kid, old_kid);

    assert_int_equal(authority_new_signing_key(F->w.st, F->data_key), MV_OK);
    assert_int_equal(authority_load_keys(&F->srv, F->w.st), MV_OK);
    assert_string_not_equal(F->srv.sign_kid, old_kid);
    assert_non_null(strstr(F->srv.jwks_json, old_kid));
    assert_non_null(strstr(F->srv.jwks_json, F->srv.sign_kid));

    /* once the old key's tokens have all expired, it leaves the JWKS */
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    assert_int_equal(store_signing_keys(F->w.st, &keys, &n), MV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0].kid, F->srv.sign_kid); /* newest first */
    assert_int_equal(keys[0].retired, 0);
    assert_true(keys[1].retired > 0);
    keys[1].retired = mv_now() - F->srv.token_lifetime - MV_CLOCK_SKEW_SECS - 1;
    assert_int_equal(store_signing_key_put(F->w.st, &keys[1]), MV_OK);
    st_signing_keys_free(keys, n);
    assert_int_equal(authority_load_keys(&F->srv, F->w.st), MV_OK);
    assert_null(strstr(F->srv.jwks_json, old_kid));

    /* a wrong data key cannot unseal the signing key: the load fails, srv keeps its keys */
    unsigned char saved[32];
    memcpy(saved, F->data_key, 32);
    F->data_key[0] ^= 1;
    assert_int_not_equal(authority_load_keys(&F->srv, F->w.st), MV_OK);
    assert_non_null(F->srv.sign_key);
    memcpy(F->data_key, saved, 32);

    /* tokens signed with the new key validate after the worker's reload */
    token_keyset_free(&F->keys);
    const char *const res[] = {"resource", "https://vault.azure.net", NULL};
    assert_int_equal(node_token(&F->n1, res), 200);
    json_decref(issued_claims("https://vault.azure.net"));
}

/* The schedule (signingKeyRotationDays): a key younger than the period stays; an older one is
 * replaced once. Retire: never the current key; a rotated-out one only after its tokens expired
 * unless forced; then it is gone from the store. */
static void test_rotation_schedule_and_retire(void **state)
{
    (void)state;
    int rotated = -1;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    assert_int_equal(authority_rotate(F->w.st, F->data_key, 30, &rotated), MV_OK);
    assert_int_equal(rotated, 0);
    assert_int_equal(store_signing_keys(F->w.st, &keys, &n), MV_OK);
    char cur[32];
    snprintf(cur, sizeof cur, "%s", keys[0].kid);
    keys[0].created = mv_now() - 31 * 86400;
    assert_int_equal(store_signing_key_put(F->w.st, &keys[0]), MV_OK);
    st_signing_keys_free(keys, n);
    assert_int_equal(authority_rotate(F->w.st, F->data_key, 30, &rotated), MV_OK);
    assert_int_equal(rotated, 1);
    assert_int_equal(authority_rotate(F->w.st, F->data_key, 30, &rotated), MV_OK);
    assert_int_equal(rotated, 0); /* another server's check right after: not due */
    assert_int_equal(store_signing_keys(F->w.st, &keys, &n), MV_OK);
    assert_string_not_equal(keys[0].kid, cur);
    assert_int_equal(keys[0].retired, 0);
    char now_kid[32];
    snprintf(now_kid, sizeof now_kid, "%s", keys[0].kid);
    st_signing_keys_free(keys, n);

    assert_int_equal(authority_retire_key(F->w.st, now_kid, F->srv.token_lifetime, 1), MV_ERR_CONFLICT);
    assert_int_equal(authority_retire_key(F->w.st, cur, F->srv.token_lifetime, 0), MV_ERR_CONFLICT);
    assert_int_equal(authority_retire_key(F->w.st, cur, F->srv.token_lifetime, 1), MV_OK);
    assert_int_equal(authority_retire_key(F->w.st, cur, F->srv.token_lifetime, 1), MV_ERR_NOT_FOUND);
    assert_int_equal(authority_load_keys(&F->srv, F->w.st), MV_OK);
    assert_string_equal(F->srv.sign_kid, now_kid);
    assert_null(strstr(F->srv.jwks_json, cur));
    token_keyset_free(&F->keys);
}

/* The claims and the reply are written without a JSON tree (issue.c, token.c, json_out.c):
 * every member, in order, with its type, and strings that need escaping. */
static void test_token_documents(void **state)
{
    (void)state;
    static const char *const claim_names[] = {"aud", "iss", "iat", "nbf", "exp", "aio", "appid",
                                              "appidacr", "idp", "idtyp", "oid", "rh", "sub",
                                              "tid", "uti", "ver", "xms_mirid"};
    static const char *const reply_names[] = {"token_type", "access_token", "expires_in",
                                              "ext_expires_in", "expires_on", "resource",
                                              "client_id"};
    const char *weird = "https://x.example/\"q\"\\p";
    const char *const res[] = {"resource", weird, NULL};
    char aio[2][64];
    for (int round = 0; round < 2; round++) {
        assert_int_equal(node_token(&F->n1, res), 200);
        assert_string_equal(str("resource"), weird);
        size_t i = 0;
        const char *k;
        json_t *v;
        json_object_foreach(cap.json, k, v) {
            assert_true(i < 7);
            assert_string_equal(k, reply_names[i++]);
        }
        assert_int_equal(i, 7);
        json_t *c = issued_claims(weird);
        i = 0;
        json_object_foreach(c, k, v) {
            assert_true(i < 17);
            assert_string_equal(k, claim_names[i]);
            if (i >= 2 && i <= 4)
                assert_true(json_is_integer(v));
            else
                assert_true(json_is_string(v));
            i++;
        }
        assert_int_equal(i, 17);
        assert_string_equal(claim(c, "aud"), weird);
        assert_string_equal(claim(c, "iss"), BASE "/" TID "/");
        assert_string_equal(claim(c, "idp"), BASE "/" TID "/");
        assert_string_equal(claim(c, "tid"), TID);
        assert_string_equal(claim(c, "sub"), F->sys1.id);
        assert_string_equal(claim(c, "appidacr"), "2");
        assert_string_equal(claim(c, "idtyp"), "app");
        assert_string_equal(claim(c, "ver"), "1.0");
        assert_int_equal(strlen(claim(c, "aio")), 32);
        assert_int_equal(strlen(claim(c, "rh")), 32);
        assert_int_equal(strlen(claim(c, "uti")), 22);
        assert_string_not_equal(claim(c, "aio"), claim(c, "rh"));
        snprintf(aio[round], sizeof aio[round], "%s", claim(c, "aio"));
        assert_int_equal(json_integer_value(json_object_get(c, "iat")),
                         json_integer_value(json_object_get(c, "nbf")));
        json_decref(c);
    }
    assert_string_not_equal(aio[0], aio[1]);

    /* the writer itself: escapes, non-ASCII through jansson, invalid UTF-8 refused */
    mv_buf b;
    mv_buf_init(&b, 256);
    assert_int_equal(authority_json_str(&b, "a\"b\\c/d"), MV_OK);
    assert_string_equal(b.p, "\"a\\\"b\\\\c/d\"");
    mv_buf_reset(&b);
    assert_int_equal(authority_json_str(&b, ""), MV_OK);
    assert_string_equal(b.p, "\"\"");
    mv_buf_reset(&b);
    assert_int_equal(authority_json_str(&b, "tab\there \xc3\xa9"), MV_OK);
    json_t *j = json_loads(b.p, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(j), "tab\there \xc3\xa9");
    json_decref(j);
    mv_buf_reset(&b);
    assert_int_equal(authority_json_str(&b, "bad \xc3("), MV_ERR_INTERNAL);
    mv_buf_free(&b);
}

/* The worker caches clients, their parsed keys and the identities a node may use (cache.c);
 * every change to the store must still take effect on the next request, also when another
 * connection (another loop, the CLI) makes it. */
static void test_token_cache_follows_store(void **state)
{
    (void)state;
    const char *path = "/" TID "/oauth2/v2.0/token";
    const char *const mgmt[] = {"resource", "https://management.core.windows.net/", NULL};
    const char *const res[] = {"resource", "https://vault.azure.net", NULL};
    struct store *other = NULL;
    assert_int_equal(store_open(F->db, &other), MV_OK);

    /* the admin's key replaced: the cached key goes, the new one is used */
    char *a = assertion(F->admin_key, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    assert_int_equal(token_req(path, F->admin.client_id, a, mgmt), 200);
    free(a);
    EVP_PKEY *k2 = NULL;
    mv_buf pem;
    mv_buf_init(&pem, 4096);
    assert_int_equal(keys_gen_ec_p256(&k2), MV_OK);
    assert_int_equal(keys_public_pem(k2, &pem), MV_OK);
    struct st_principal admin = F->admin;
    admin.public_key_pem = pem.p;
    assert_int_equal(store_principal_put(other, &admin), MV_OK);
    a = assertion(F->admin_key, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    expect_error(token_req(path, F->admin.client_id, a, mgmt), 401, "invalid_client");
    free(a);
    a = assertion(k2, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    assert_int_equal(token_req(path, F->admin.client_id, a, mgmt), 200);
    free(a);
    /* a key that does not parse: refused, not a crash, and the next good key works again */
    admin.public_key_pem = (char *)"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert_int_equal(store_principal_put(other, &admin), MV_OK);
    a = assertion(k2, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    expect_error(token_req(path, F->admin.client_id, a, mgmt), 401, "invalid_client");
    admin.public_key_pem = pem.p;
    assert_int_equal(store_principal_put(other, &admin), MV_OK);
    assert_int_equal(token_req(path, F->admin.client_id, a, mgmt), 200);
    free(a);
    /* the principal demoted to a managed identity: no longer a client */
    admin.kind = ST_PRINCIPAL_USER;
    assert_int_equal(store_principal_put(other, &admin), MV_OK);
    a = assertion(k2, JWS_ES256, F->admin.client_id, TOKEN_V2, NULL, NULL);
    expect_error(token_req(path, F->admin.client_id, a, mgmt), 401, "invalid_client");
    admin.kind = ST_PRINCIPAL_ADMIN;
    admin.public_key_pem = NULL;
    mv_buf_free(&pem);
    EVP_PKEY_free(k2);
    free(a);

    /* a user-assigned identity detached from vm2: its node can no longer get it */
    assert_int_equal(node_token(&F->n2, res), 200);
    assert_string_equal(str("client_id"), F->uai_a.client_id);
    assert_int_equal(node_token(&F->n2, res), 200); /* served from the cache */
    assert_int_equal(store_vm_uai_set(other, "vm2", NULL, 0), MV_OK);
    expect_error(node_token(&F->n2, res), 400, "invalid_request");
    assert_string_equal(str("error_description"), "Identity not found");
    const char *const ida[] = {"ida"};
    assert_int_equal(store_vm_uai_set(other, "vm2", ida, 1), MV_OK);
    assert_int_equal(node_token(&F->n2, res), 200);

    /* the VM deleted (and its nodes with it): its node is an unknown client at once */
    assert_int_equal(store_vm_delete(other, "vm2"), MV_OK);
    expect_error(node_token(&F->n2, res), 401, "invalid_client");
    store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test(test_enroll),
        cmocka_unit_test(test_token_system_identity),
        cmocka_unit_test(test_token_scope),
        cmocka_unit_test(test_token_selectors),
        cmocka_unit_test(test_token_admin),
        cmocka_unit_test(test_token_refusals),
        cmocka_unit_test(test_key_rotation),
        cmocka_unit_test(test_rotation_schedule_and_retire),
        cmocka_unit_test(test_token_documents),
        cmocka_unit_test(test_token_cache_follows_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
