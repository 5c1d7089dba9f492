/* node.c: the agent's own credential and enrollment (DESIGN §4, docs/internal-protocol.md
 * "Node enrollment"), all under STATE/agents/VM/ (0700):
 *
 *   node.key         EC P-256 private key, PKCS#8 PEM, 0600; created here if missing, never
 *                    leaves this directory (only its public JWK is sent, once, at enrollment,
 *                    with a proof that we hold it: a JWS over the join token's hash)
 *   node.json        {"clientId","vm","tenantId","server"} written after a successful enroll
 *   identity_header  the App Service X-IDENTITY-HEADER secret: 32 random bytes as hex, 0600
 *
 * Enrollment happens when --join is given, and is required when node.json is missing. A key
 * file readable by group or others is refused, as ssh does. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/digest.h"
#include "crypto/join_token.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/keys.h"
#include "http/client.h"

#define NODE_MAX_FILE (16 * 1024)
#define ENROLL_MAX_RESP (16 * 1024)
#define ENROLL_ATTEMPTS 5 /* the server may still be starting (mivault up) */

int agent_vm_name_ok(const char *vm)
{
    size_t n = vm ? strlen(vm) : 0;
    if (n == 0 || n > MV_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = vm[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_' && c != '.')))
            return 0;
    }
    return 1;
}

static mv_rc node_path(char *out, size_t len, const char *agents_dir, const char *vm,
                       const char *file)
{
    if (file)
        return mv_fmt(out, len, "%s/%s/%s", agents_dir, vm, file);
    return mv_fmt(out, len, "%s/%s", agents_dir, vm);
}

/* Loads node.key, or creates it (0600) when missing. */
static mv_rc load_or_create_key(const char *path, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    char *pem = NULL;
    size_t len = 0;
    mv_buf b;
    mv_buf_init(&b, NODE_MAX_FILE);
    struct stat st;
    *out = NULL;
    if (stat(path, &st) == 0) {
        ENSURE_MSG((st.st_mode & 077) == 0, MV_ERR_FORBIDDEN,
                   "%s is accessible by group or others (chmod 600 it)", path);
        CHECK(mv_read_file(path, NODE_MAX_FILE, &pem, &len));
        CHECK(keys_from_private_pem(pem, len, out));
        ENSURE_MSG(keys_is_ec_p256(*out), MV_ERR_BAD_REQUEST, "%s is not an EC P-256 key", path);
        goto out;
    }
    ENSURE_MSG(errno == ENOENT, MV_ERR_INTERNAL, "stat %s: %s", path, strerror(errno));
    CHECK(keys_gen_ec_p256(out));
    CHECK(keys_private_pem(*out, &b));
    CHECK(mv_write_file(path, b.p, b.len, 0600));
    LOG_INFO("agent: created node key %s", path);
out:
    if (rc != MV_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    if (pem) {
        OPENSSL_cleanse(pem, len);
        free(pem);
    }
    mv_buf_free_secret(&b);
    return rc;
}

static mv_rc copy_member(const json_t *o, const char *name, char *dst, size_t len)
{
    const char *v = json_string_value(json_object_get(o, name));
    if (!v || !*v)
        return MV_ERR_BAD_REQUEST;
    return mv_copy(dst, len, v);
}

/* Reads node.json. MV_ERR_NOT_FOUND if absent. */
static mv_rc load_node_json(const char *path, struct agent_node *n)
{
    mv_rc rc = MV_OK;
    char *txt = NULL;
    size_t len = 0;
    json_t *o = NULL;
    char vm[MV_MAX_NAME + 1];
    rc = mv_read_file(path, NODE_MAX_FILE, &txt, &len);
    if (rc != MV_OK)
        goto out;
    o = json_loadb(txt, len, JSON_REJECT_DUPLICATES, NULL);
    ENSURE_MSG(json_is_object(o), MV_ERR_BAD_REQUEST, "%s: not a JSON object", path);
    ENSURE_MSG(copy_member(o, "clientId", n->client_id, sizeof n->client_id) == MV_OK &&
                   copy_member(o, "tenantId", n->tenant_id, sizeof n->tenant_id) == MV_OK &&
                   copy_member(o, "vm", vm, sizeof vm) == MV_OK,
               MV_ERR_BAD_REQUEST, "%s: clientId, tenantId or vm missing", path);
    ENSURE_MSG(strcmp(vm, n->vm) == 0, MV_ERR_BAD_REQUEST, "%s belongs to vm %s", path, vm);
    if (copy_member(o, "server", n->server, sizeof n->server) != MV_OK)
        n->server[0] = '\0';
out:
    json_decref(o);
    free(txt);
    return rc;
}

static mv_rc save_node_json(const char *path, const struct agent_node *n)
{
    mv_rc rc = MV_OK;
    char *txt = NULL;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "clientId", n->client_id, "vm", n->vm,
                          "tenantId", n->tenant_id, "server", n->server);
    ENSURE(o != NULL, MV_ERR_INTERNAL);
    txt = json_dumps(o, JSON_INDENT(2));
    ENSURE(txt != NULL, MV_ERR_INTERNAL);
    CHECK(mv_write_file(path, txt, strlen(txt), 0600));
out:
    free(txt);
    json_decref(o);
    return rc;
}

/* The proof of possession of node.key the server requires (internal-protocol.md): an ES256
 * JWS over {"purpose":"mivault-enroll","joinTokenSha256":<hex SHA-256 of the token's secret
 * part, what the server stores>}, binding the key to this one enrollment. */
static mv_rc enroll_proof(const struct agent_node *n, const char *join, mv_buf *out)
{
    mv_rc rc = MV_OK;
    struct join_token t;
    char hash[65];
    json_t *claims = NULL;
    memset(&t, 0, sizeof t);
    ENSURE_MSG(join_token_parse(join, strlen(join), 1, &t) == MV_OK, MV_ERR_BAD_REQUEST,
               "the join token is malformed");
    CHECK(digest_sha256_hex(t.secret, strlen(t.secret), hash));
    claims = json_pack("{s:s, s:s}", "purpose", "mivault-enroll", "joinTokenSha256", hash);
    ENSURE(claims != NULL, MV_ERR_INTERNAL);
    CHECK(jws_sign(n->key, JWS_ES256, NULL, claims, out));
out:
    json_decref(claims);
    join_token_wipe(&t);
    return rc;
}

/* POST {server}/mivault/enroll {"joinToken","publicKey","proof"}
 *   -> {"clientId","vm","tenantId"}. */
static mv_rc enroll(struct http_client *http, const char *server, const char *join,
                    struct agent_node *n)
{
    mv_rc rc = MV_OK;
    json_t *req = NULL, *jwk = NULL, *resp = NULL;
    char *body = NULL;
    char url[MV_MAX_URL + 32];
    struct http_client_resp r = {0};
    mv_buf proof;
    mv_buf_init(&proof, MV_MAX_TOKEN_BYTES);
    static const char *const headers[] = {"Content-Type: application/json",
                                          "Accept: application/json", NULL};
    CHECK(mv_fmt(url, sizeof url, "%s/mivault/enroll", server));
    CHECK(jwk_from_public(n->key, NULL, &jwk));
    CHECK(enroll_proof(n, join, &proof));
    req = json_pack("{s:s, s:O, s:s}", "joinToken", join, "publicKey", jwk, "proof", proof.p);
    ENSURE(req != NULL, MV_ERR_INTERNAL);
    body = json_dumps(req, JSON_COMPACT);
    ENSURE(body != NULL, MV_ERR_INTERNAL);
    for (int attempt = 1;; attempt++) {
        rc = http_client_do(http, "POST", url, headers, body, strlen(body), ENROLL_MAX_RESP, &r);
        if (rc != MV_ERR_UNAVAILABLE || attempt >= ENROLL_ATTEMPTS)
            break;
        http_client_resp_free(&r);
        r = (struct http_client_resp){0};
        sleep(1);
    }
    ENSURE_MSG(rc == MV_OK, rc, "cannot reach the server at %s to enroll", server);
    resp = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
    if (r.status == 400 || r.status == 401) {
        const char *err = json_string_value(json_object_get(resp, "error"));
        ENSURE_MSG(!err || strcmp(err, "invalid_grant") != 0, MV_ERR_UNAUTHENTICATED,
                   "join token invalid, used or expired");
    }
    ENSURE_MSG(r.status == 200, r.status >= 500 ? MV_ERR_UNAVAILABLE : MV_ERR_UNAUTHENTICATED,
               "enrollment refused by the server (HTTP %ld)", r.status);
    char vm[MV_MAX_NAME + 1];
    ENSURE_MSG(json_is_object(resp) &&
                   copy_member(resp, "clientId", n->client_id, sizeof n->client_id) == MV_OK &&
                   copy_member(resp, "tenantId", n->tenant_id, sizeof n->tenant_id) == MV_OK,
               MV_ERR_INTERNAL, "enrollment: malformed reply from the server");
    if (copy_member(resp, "vm", vm, sizeof vm) == MV_OK)
        ENSURE_MSG(strcmp(vm, n->vm) == 0, MV_ERR_UNAUTHENTICATED,
                   "the join token is for vm %s, not %s", vm, n->vm);
    CHECK(mv_copy(n->server, sizeof n->server, server));
    LOG_INFO("agent: vm %s enrolled as client %s", n->vm, n->client_id);
out:
    http_client_resp_free(&r);
    if (body) {
        OPENSSL_cleanse(body, strlen(body)); /* holds the join token */
        free(body);
    }
    json_decref(req);
    json_decref(jwk);
    json_decref(resp);
    mv_buf_free(&proof);
    return rc;
}

mv_rc agent_node_setup(const char *agents_dir, const char *vm, const char *join,
                       const char *server, struct http_client *http, struct agent_node *out)
{
    mv_rc rc = MV_OK;
    char dir[PATH_MAX], key_path[PATH_MAX], json_path[PATH_MAX];
    *out = (struct agent_node){0};
    ENSURE_MSG(agent_vm_name_ok(vm), MV_ERR_BAD_REQUEST, "invalid vm name");
    CHECK(mv_copy(out->vm, sizeof out->vm, vm));
    CHECK(node_path(dir, sizeof dir, agents_dir, vm, NULL));
    CHECK(node_path(key_path, sizeof key_path, agents_dir, vm, "node.key"));
    CHECK(node_path(json_path, sizeof json_path, agents_dir, vm, "node.json"));
    CHECK(mv_mkdirs(dir, 0700));
    ENSURE_MSG(chmod(dir, 0700) == 0, MV_ERR_INTERNAL, "chmod %s: %s", dir, strerror(errno));
    CHECK(load_or_create_key(key_path, &out->key));
    CHECK(keys_thumbprint(out->key, out->kid));
    if (join && *join) {
        CHECK(enroll(http, server, join, out));
        CHECK(save_node_json(json_path, out));
        goto out;
    }
    rc = load_node_json(json_path, out);
    ENSURE_MSG(rc != MV_ERR_NOT_FOUND, MV_ERR_UNAUTHENTICATED,
               "vm %s is not enrolled: run once with --join TOKEN (mivault vm join-token --name %s)",
               vm, vm);
    if (rc != MV_OK)
        goto out;
    if (out->server[0] && strcmp(out->server, server) != 0)
        LOG_WARN("agent: node enrolled at %s, now using %s", out->server, server);
out:
    if (rc != MV_OK)
        agent_node_free(out);
    return rc;
}

void agent_node_free(struct agent_node *n)
{
    EVP_PKEY_free(n->key);
    *n = (struct agent_node){0};
}

static int is_hex64(const char *s, size_t n)
{
    if (n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

mv_rc agent_identity_header(const char *agents_dir, const char *vm, char out[65])
{
    mv_rc rc = MV_OK;
    char path[PATH_MAX];
    char *txt = NULL;
    size_t len = 0;
    unsigned char raw[32] = {0};
    CHECK(node_path(path, sizeof path, agents_dir, vm, "identity_header"));
    rc = mv_read_file(path, 256, &txt, &len);
    if (rc == MV_OK) {
        while (len && (txt[len - 1] == '\n' || txt[len - 1] == '\r' || txt[len - 1] == ' '))
            len--;
        ENSURE_MSG(is_hex64(txt, len), MV_ERR_BAD_REQUEST, "%s: expected 64 hex characters",
                   path);
        memcpy(out, txt, 64);
        out[64] = '\0';
        goto out;
    }
    ENSURE(rc == MV_ERR_NOT_FOUND, rc);
    rc = MV_OK;
    CHECK(mv_random(raw, sizeof raw));
    mv_hex(out, raw, sizeof raw);
    CHECK(mv_write_file(path, out, 64, 0600));
out:
    OPENSSL_cleanse(raw, sizeof raw);
    if (txt) {
        OPENSSL_cleanse(txt, len);
        free(txt);
    }
    return rc;
}
