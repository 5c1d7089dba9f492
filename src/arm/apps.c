/* apps.c: service principals (app registrations), mivault's stand-in for the part of Microsoft
 * Graph that `az ad sp` uses. They are tenant-wide, so they live under the root provider path:
 *
 *   POST   /providers/Microsoft.Mivault/servicePrincipals                    create (201): the
 *          body {"displayName": NAME}; the reply carries a client secret, shown this once
 *   GET    /providers/Microsoft.Mivault/servicePrincipals[/{appId}]           list / show
 *   DELETE /providers/Microsoft.Mivault/servicePrincipals/{appId}             200, 204 if absent
 *   POST   /providers/Microsoft.Mivault/servicePrincipals/{appId}/addCredential
 *          {} adds a client secret (shown once); {"certificate": PEM} registers a certificate
 *
 * Invariants: a service principal is a principal of kind APP (no xms_mirid: resource_id "")
 * whose role assignments are made like any principal's; a secret is stored only as its SHA-256
 * (store.h), a certificate as its PEM and thumbprints; deleting the principal deletes its
 * credentials and role assignments in one transaction. RBAC: Microsoft.Mivault/servicePrincipals/
 * {read,write,delete} at "/" (Owner has them). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "arm/arm_internal.h"
#include "common/b64.h"
#include "common/limits.h"
#include "crypto/cert.h"
#include "crypto/digest.h"

#define SP_READ "Microsoft.Mivault/servicePrincipals/read"
#define SP_WRITE "Microsoft.Mivault/servicePrincipals/write"
#define SP_DELETE "Microsoft.Mivault/servicePrincipals/delete"
#define SP_SECRET_BYTES 30               /* 40 base64url characters, like Entra's secrets */
#define SP_SECRET_LIFETIME (365 * 86400) /* az ad sp create-for-rbac's default: one year */
#define SP_MAX_CREDENTIALS 16

static json_t *cred_json(const struct st_app_credential *c)
{
    char start[40], end[40];
    arm_iso8601(c->created, start);
    arm_iso8601(c->expires, end);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "keyId", c->key_id, "type",
                          c->kind == ST_CRED_SECRET ? "Password" : "AsymmetricX509Cert",
                          "startDateTime", start, "endDateTime", end);
    if (o && c->kind == ST_CRED_SECRET)
        json_object_set_new(o, "hint", json_string(c->hint));
    if (o && c->kind == ST_CRED_CERT) {
        char up[41];
        for (size_t i = 0; i < sizeof up; i++)
            up[i] = (char)(c->thumb_sha1[i] >= 'a' && c->thumb_sha1[i] <= 'f'
                               ? c->thumb_sha1[i] - 'a' + 'A'
                               : c->thumb_sha1[i]);
        json_object_set_new(o, "thumbprint", json_string(up)); /* as Entra shows it */
    }
    return o;
}

/* {"appId","id","displayName","appOwnerOrganizationId","servicePrincipalType",
 *  "passwordCredentials":[...],"keyCredentials":[...]} (Graph's names). */
static mv_rc sp_json(struct arm_req *ar, const struct st_principal *p, json_t **out)
{
    mv_rc rc = MV_OK;
    struct st_app_credential *cs = NULL;
    size_t n = 0;
    json_t *pw = json_array(), *keys = json_array();
    *out = NULL;
    ENSURE(pw && keys, MV_ERR_INTERNAL);
    CHECK(store_app_credentials(ar->st, p->client_id, &cs, &n));
    for (size_t i = 0; i < n; i++)
        ENSURE(json_array_append_new(cs[i].kind == ST_CRED_SECRET ? pw : keys, cred_json(&cs[i])) == 0,
               MV_ERR_INTERNAL);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O, s:O}", "appId", p->client_id, "id", p->id,
                     "displayName", p->name, "appOwnerOrganizationId",
                     ar->srv->tenant.tenant_id, "servicePrincipalType", "Application",
                     "passwordCredentials", pw, "keyCredentials", keys);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    json_decref(pw);
    json_decref(keys);
    st_app_credentials_free(cs, n);
    return rc;
}

/* A new client secret for client_id: stored as its hash; *secret gets the text (wiped by the
 * caller). Inside the caller's transaction. */
static mv_rc add_secret(struct arm_req *ar, const char *client_id, mv_buf *secret,
                        struct st_app_credential *c)
{
    mv_rc rc = MV_OK;
    unsigned char raw[SP_SECRET_BYTES];
    memset(c, 0, sizeof *c);
    CHECK(mv_random(raw, sizeof raw));
    CHECK(b64url_encode(secret, raw, sizeof raw));
    CHECK(mv_uuid(c->key_id));
    CHECK(mv_copy(c->client_id, sizeof c->client_id, client_id));
    c->kind = ST_CRED_SECRET;
    memcpy(c->hint, secret->p, 3);
    c->hint[3] = '\0';
    CHECK(digest_sha256_hex(secret->p, secret->len, c->secret_sha256));
    c->created = mv_now();
    c->expires = c->created + SP_SECRET_LIFETIME;
    CHECK(store_app_credential_add(ar->st, c));
out:
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

static mv_rc find_sp(struct arm_req *ar, const char *app_id, struct st_principal *p)
{
    mv_rc rc = mv_is_uuid(app_id) ? store_principal_by_client(ar->st, app_id, p) : MV_ERR_NOT_FOUND;
    if (rc == MV_OK && p->kind != ST_PRINCIPAL_APP) {
        st_principal_clear(p);
        rc = MV_ERR_NOT_FOUND;
    }
    if (rc == MV_ERR_NOT_FOUND)
        rc = arm_fail(ar, 404, "ResourceNotFound",
                      "Service principal '%s' does not exist in the directory.", app_id);
    return rc;
}

/* The reply of create and addCredential: the principal, plus the secret (once) or the
 * certificate's key id. */
static void reply_with(struct arm_req *ar, int status, const struct st_principal *p,
                       const mv_buf *secret, const struct st_app_credential *c)
{
    json_t *o = NULL;
    if (sp_json(ar, p, &o) != MV_OK) {
        arm_fail_rc(ar, MV_ERR_INTERNAL);
        return;
    }
    json_object_set_new(o, "tenant", json_string(ar->srv->tenant.tenant_id));
    json_object_set_new(o, "keyId", json_string(c->key_id));
    if (secret && secret->len)
        json_object_set_new(o, "password", json_stringn(secret->p, secret->len));
    arm_reply(ar, status, o);
}

void arm_sp_create(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL;
    struct st_principal p;
    struct st_app_credential c;
    mv_buf secret;
    int in_txn = 0;
    memset(&p, 0, sizeof p);
    mv_buf_init(&secret, 128);
    ENSURE(arm_authorize(ar, SP_WRITE, "/"), MV_ERR_FORBIDDEN);
    CHECK(arm_body(ar, &body));
    const char *name = json_string_value(json_object_get(body, "displayName"));
    if (!name || !*name || strlen(name) > MV_MAX_NAME) {
        rc = arm_fail(ar, 400, "InvalidRequestContent",
                      "'displayName' must be a string of 1 to %d characters.", MV_MAX_NAME);
        goto out;
    }
    CHECK(mv_uuid(p.id));
    CHECK(mv_uuid(p.client_id));
    p.kind = ST_PRINCIPAL_APP;
    CHECK(mv_copy(p.name, sizeof p.name, name));
    CHECK(store_begin(ar->st));
    in_txn = 1;
    CHECK(store_principal_put(ar->st, &p));
    CHECK(add_secret(ar, p.client_id, &secret, &c));
    CHECK(store_commit(ar->st));
    in_txn = 0;
    reply_with(ar, 201, &p, &secret, &c);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    mv_buf_free_secret(&secret);
    json_decref(body);
}

void arm_sp_add_credential(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL;
    struct st_principal p;
    struct st_app_credential c, *cs = NULL;
    struct cert_info ci;
    size_t n = 0;
    mv_buf secret;
    int in_txn = 0;
    memset(&p, 0, sizeof p);
    memset(&c, 0, sizeof c);
    mv_buf_init(&secret, 128);
    ENSURE(arm_authorize(ar, SP_WRITE, "/"), MV_ERR_FORBIDDEN);
    CHECK(arm_body(ar, &body));
    json_t *certj = json_object_get(body, "certificate");
    if (certj && !json_is_string(certj)) {
        rc = arm_fail(ar, 400, "InvalidRequestContent", "'certificate' must be a PEM string.");
        goto out;
    }
    const char *pem = json_string_value(certj);
    if (pem && cert_parse_pem(pem, strlen(pem), NULL, &ci) != MV_OK) {
        rc = arm_fail(ar, 400, "InvalidCertificate",
                      "The certificate is not valid: it must be one PEM X.509 certificate with an "
                      "RSA key of at least 2048 bits.");
        goto out;
    }
    CHECK(store_begin(ar->st));
    in_txn = 1;
    CHECK(find_sp(ar, ar->cap[0], &p));
    CHECK(store_app_credentials(ar->st, p.client_id, &cs, &n));
    if (n >= SP_MAX_CREDENTIALS) {
        rc = arm_fail(ar, 400, "TooManyCredentials",
                      "A service principal has at most %d credentials.", SP_MAX_CREDENTIALS);
        goto out;
    }
    if (pem) {
        for (size_t i = 0; i < n; i++)
            if (cs[i].kind == ST_CRED_CERT && strcmp(cs[i].thumb_sha256, ci.sha256_hex) == 0) {
                rc = arm_fail(ar, 409, "CredentialExists",
                              "This certificate is already registered.");
                goto out;
            }
        CHECK(mv_uuid(c.key_id));
        CHECK(mv_copy(c.client_id, sizeof c.client_id, p.client_id));
        c.kind = ST_CRED_CERT;
        memcpy(c.thumb_sha1, ci.sha1_hex, sizeof c.thumb_sha1);
        memcpy(c.thumb_sha256, ci.sha256_hex, sizeof c.thumb_sha256);
        c.cert_pem = (char *)pem;
        c.created = mv_now();
        c.expires = ci.not_after;
        CHECK(store_app_credential_add(ar->st, &c));
        c.cert_pem = NULL;
    } else {
        CHECK(add_secret(ar, p.client_id, &secret, &c));
    }
    CHECK(store_commit(ar->st));
    in_txn = 0;
    reply_with(ar, 200, &p, &secret, &c);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    st_app_credentials_free(cs, n);
    st_principal_clear(&p);
    mv_buf_free_secret(&secret);
    json_decref(body);
}

void arm_sp_get(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_principal p;
    json_t *o = NULL;
    memset(&p, 0, sizeof p);
    ENSURE(arm_authorize(ar, SP_READ, "/"), MV_ERR_FORBIDDEN);
    CHECK(find_sp(ar, ar->cap[0], &p));
    CHECK(sp_json(ar, &p, &o));
    arm_reply(ar, 200, o);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    st_principal_clear(&p);
}

void arm_sp_list(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_principal *ps = NULL;
    size_t n = 0;
    json_t *arr = json_array();
    ENSURE(arr != NULL, MV_ERR_INTERNAL);
    ENSURE(arm_authorize(ar, SP_READ, "/"), MV_ERR_FORBIDDEN);
    CHECK(store_principal_list(ar->st, ST_PRINCIPAL_APP, &ps, &n));
    for (size_t i = 0; i < n; i++) {
        json_t *o = NULL;
        CHECK(sp_json(ar, &ps[i], &o));
        ENSURE(json_array_append_new(arr, o) == 0, MV_ERR_INTERNAL);
    }
    arm_reply(ar, 200, json_pack("{s:O}", "value", arr));
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    json_decref(arr);
    st_principals_free(ps, n);
}

void arm_sp_delete(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_principal p;
    int in_txn = 0, found = 0;
    memset(&p, 0, sizeof p);
    ENSURE(arm_authorize(ar, SP_DELETE, "/"), MV_ERR_FORBIDDEN);
    CHECK(store_begin(ar->st));
    in_txn = 1;
    rc = mv_is_uuid(ar->cap[0]) ? store_principal_by_client(ar->st, ar->cap[0], &p)
                                : MV_ERR_NOT_FOUND;
    found = rc == MV_OK && p.kind == ST_PRINCIPAL_APP;
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    if (found) {
        CHECK(store_app_credentials_delete(ar->st, p.client_id));
        CHECK(arm_drop_principal(ar->st, p.id));
    }
    CHECK(store_commit(ar->st));
    in_txn = 0;
    arm_reply_empty(ar, found ? 200 : 204);
out:
    if (in_txn)
        store_rollback(ar->st);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    st_principal_clear(&p);
}
