/* certs.c: the Key Vault certificate operations (docs/certificates.md; reference §1b, §2.5):
 * create (issuer Self or Unknown) through a pending operation, the pending operation itself
 * (get, cancel, delete, merge), import (PFX or PEM), get, update, list, versions, policy,
 * soft delete, recover, purge, issuers and contacts.
 *
 * Invariants:
 * - A certificate version and the secret of the same name and version are written in one
 *   transaction: the secret is a real secret version (value = PFX in base64 without password,
 *   or PEM: private key then chain, per the policy's content type; no private key when the
 *   policy says exportable: false), so SecretClient reads it like any other.
 * - Private keys are sealed under the data key with the AAD
 *   "cert:<vault>/<name>/<version>" (pending keys: version "pending") and wiped after use.
 * - Create answers 202 with status "inProgress" whatever the issuer (the SDK pollers depend on
 *   it, reference pitfalls 10-11); with issuer Self the certificate exists already and the
 *   first GET of the pending operation says "completed". With issuer Unknown the operation
 *   holds the CSR and stays "inProgress" until merge or cancel. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/b64.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/aead.h"
#include "crypto/certs.h"
#include "http/offload.h"
#include "vault/keys.h"
#include "vault/vault_internal.h"

#define CT_PKCS12 "application/x-pkcs12"
#define CT_PEM "application/x-pem-file"
#define DAY_SECS 86400
#define CERT_DOC_MAX (512 * 1024)
#define PENDING_VERSION "pending"

/* ---- errors ---- */

static void cert_not_found(struct vault_ctx *c, const char *version)
{
    char msg[512];
    const char *sep = version && *version ? "/" : "";
    if (mv_fmt(msg, sizeof msg,
               "A certificate with (name/id) %s%s%s was not found in this key vault. If you "
               "recently deleted this certificate you may be able to recover it using the correct "
               "recovery command. For help resolving this issue, please see "
               "https://go.microsoft.com/fwlink/?linkid=2125182",
               c->name, sep, sep[0] ? version : "") != MV_OK)
        msg[0] = '\0';
    vault_error(c, 404, "CertificateNotFound", msg, NULL);
}

static void pending_not_found(struct vault_ctx *c)
{
    char msg[256];
    if (mv_fmt(msg, sizeof msg, "Pending certificate not found: %s", c->name) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 404, "PendingCertificateNotFound", msg, NULL);
}

static void conflict_deleted(struct vault_ctx *c)
{
    char msg[384];
    if (mv_fmt(msg, sizeof msg,
               "Certificate %s is currently in a deleted but recoverable state, and its name "
               "cannot be reused; in this state, the certificate can only be recovered or purged.",
               c->name) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 409, "Conflict", msg, "ObjectIsDeletedButRecoverable");
}

/* ---- small helpers ---- */

static int set(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0;
}

static mv_rc url_of(const struct vault_ctx *c, const char *coll, const char *name,
                    const char *version, const char *tail, json_t **out)
{
    mv_rc rc = MV_OK;
    char u[MV_MAX_URL + 2 * MV_SECRET_MAX_NAME + 64];
    int has_v = version && version[0];
    CHECK(vault_cat(u, sizeof u, c->url, "/", coll, "/", name, has_v ? "/" : "",
                    has_v ? version : "", tail ? tail : "", (char *)NULL));
    *out = json_string(u);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    return rc;
}

static int is_deleted_name(struct vault_ctx *c)
{
    struct st_certobj o;
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 1, &o);
    st_certobj_clear(&o);
    return rc == MV_OK;
}

static mv_rc parse_body(struct vault_ctx *c, json_t **out, const char **why)
{
    mv_rc rc = MV_OK;
    json_error_t e;
    *out = NULL;
    *why = "The request body is not valid JSON.";
    ENSURE(c->req->body.len > 0, MV_ERR_BAD_REQUEST);
    ENSURE(vault_json_depth_ok(c->req->body.p, c->req->body.len, 16), MV_ERR_BAD_REQUEST);
    *out = json_loadb(c->req->body.p, c->req->body.len, JSON_REJECT_DUPLICATES, &e);
    ENSURE(*out != NULL && json_is_object(*out), MV_ERR_BAD_REQUEST);
out:
    if (rc != MV_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static mv_rc key_aad(const struct vault_ctx *c, const char *name, const char *version, char *out,
                     size_t len)
{
    mv_rc rc = MV_OK;
    CHECK(vault_cat(out, len, "cert:", c->vault.name, "/", name, "/", version, (char *)NULL));
    mv_lower(out);
out:
    return rc;
}

static mv_rc seal_key(const struct vault_ctx *c, const char *name, const char *version,
                      EVP_PKEY *key, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char aad[MV_VAULT_NAME_MAX + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    mv_buf der;
    mv_buf_init(&der, 64 * 1024);
    CHECK(key_aad(c, name, version, aad, sizeof aad));
    CHECK(certs_key_der(key, &der));
    mv_buf_init(out, der.len + AEAD_OVERHEAD);
    CHECK(aead_seal(c->w->srv->data_key, aad, der.p, der.len, out));
out:
    mv_buf_free_secret(&der);
    return rc;
}

static mv_rc open_key(const struct vault_ctx *c, const char *name, const char *version,
                      const mv_buf *sealed, EVP_PKEY **key)
{
    mv_rc rc = MV_OK;
    char aad[MV_VAULT_NAME_MAX + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    mv_buf der;
    mv_buf_init(&der, sealed->len);
    CHECK(key_aad(c, name, version, aad, sizeof aad));
    CHECK(aead_open(c->w->srv->data_key, aad, sealed->p, sealed->len, &der));
    CHECK(certs_key_from_der((const unsigned char *)der.p, der.len, key));
out:
    mv_buf_free_secret(&der);
    return rc;
}

/* attributes of a version doc as the bundle shows them */
static json_t *attributes_json(const struct vault_ctx *c, const json_t *doc)
{
    json_t *a = json_object();
    if (!a)
        return NULL;
    set(a, "enabled", json_boolean(json_is_true(json_object_get(doc, "enabled"))));
    static const char *const T[] = {"nbf", "exp", "created", "updated"};
    for (size_t i = 0; i < 4; i++) {
        const json_t *v = json_object_get(doc, T[i]);
        if (json_is_integer(v))
            set(a, T[i], json_integer(json_integer_value(v)));
    }
    if (c->vault.soft_delete_days > 0)
        set(a, "recoverableDays", json_integer(c->vault.soft_delete_days));
    set(a, "recoveryLevel",
        json_string(vault_recovery_level(c->vault.soft_delete_days, c->vault.purge_protection)));
    return a;
}

static mv_rc policy_json(const struct vault_ctx *c, const char *name, const char *doc,
                         json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *id = NULL;
    *out = json_loads(doc, 0, NULL);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
    json_object_del(*out, "renewed_from"); /* the scheduler's claim, not Azure's */
    CHECK(url_of(c, "certificates", name, NULL, "/policy", &id));
    ENSURE(set(*out, "id", id), MV_ERR_INTERNAL);
out:
    return rc;
}

enum { B_POLICY = 1, B_DELETED = 2, B_ITEM = 4, B_ITEM_VERSION = 8 };

/* CertificateBundle (or Item) of a version row. */
static mv_rc bundle_json(const struct vault_ctx *c, const struct st_certobj *o,
                         const struct st_certobj *policy, unsigned flags, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *doc = json_loads(o->doc, 0, NULL);
    json_t *b = json_object(), *v = NULL;
    ENSURE(doc && b, MV_ERR_INTERNAL);
    int item = (flags & (B_ITEM | B_ITEM_VERSION)) != 0;
    const char *ver = (flags & B_ITEM) ? NULL : o->version;
    CHECK(url_of(c, "certificates", o->name, ver, NULL, &v));
    ENSURE(set(b, "id", v), MV_ERR_INTERNAL);
    if (!item) {
        CHECK(url_of(c, "keys", o->name, o->version, NULL, &v));
        ENSURE(set(b, "kid", v), MV_ERR_INTERNAL);
        CHECK(url_of(c, "secrets", o->name, o->version, NULL, &v));
        ENSURE(set(b, "sid", v), MV_ERR_INTERNAL);
    }
    const json_t *x5t = json_object_get(doc, "x5t");
    if (json_is_string(x5t))
        ENSURE(set(b, "x5t", json_string(json_string_value(x5t))), MV_ERR_INTERNAL);
    if (!item) {
        const json_t *cer = json_object_get(doc, "cer");
        if (json_is_string(cer))
            ENSURE(set(b, "cer", json_string(json_string_value(cer))), MV_ERR_INTERNAL);
        const json_t *ct = json_object_get(doc, "contentType");
        if (json_is_string(ct))
            ENSURE(set(b, "contentType", json_string(json_string_value(ct))), MV_ERR_INTERNAL);
    }
    ENSURE(set(b, "attributes", attributes_json(c, doc)), MV_ERR_INTERNAL);
    const json_t *tags = json_object_get(doc, "tags");
    if (json_is_object(tags))
        ENSURE(set(b, "tags", json_deep_copy(tags)), MV_ERR_INTERNAL);
    if ((flags & B_POLICY) && policy) {
        json_t *p = NULL;
        CHECK(policy_json(c, o->name, policy->doc, &p));
        ENSURE(set(b, "policy", p), MV_ERR_INTERNAL);
    }
    if (flags & B_DELETED) {
        CHECK(url_of(c, "deletedcertificates", o->name, NULL, NULL, &v));
        ENSURE(set(b, "recoveryId", v), MV_ERR_INTERNAL);
        ENSURE(set(b, "deletedDate", json_integer(o->deleted)), MV_ERR_INTERNAL);
        ENSURE(set(b, "scheduledPurgeDate", json_integer(o->purge_at)), MV_ERR_INTERNAL);
    }
    *out = b;
    b = NULL;
out:
    json_decref(doc);
    json_decref(b);
    return rc;
}

/* Replies with the bundle of the version (and the policy row, when flags ask for it). */
static void reply_bundle(struct vault_ctx *c, int status, const struct st_certobj *o,
                         unsigned flags)
{
    struct st_certobj pol;
    memset(&pol, 0, sizeof pol);
    json_t *b = NULL;
    mv_rc rc = MV_OK;
    int have_policy = 0;
    if (flags & B_POLICY) {
        rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, o->name, NULL,
                            (flags & B_DELETED) ? 1 : 0, &pol);
        have_policy = rc == MV_OK;
        if (rc == MV_ERR_NOT_FOUND)
            rc = MV_OK;
    }
    if (rc == MV_OK)
        rc = bundle_json(c, o, have_policy ? &pol : NULL, flags, &b);
    st_certobj_clear(&pol);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    vault_reply_json(c, status, b);
}

/* ---- making a version ---- */

/* Everything one new version writes: its row, its secret and its key (managed). */
struct new_version {
    struct st_certobj obj;
    struct st_secret secret;
    struct st_key key;
    json_t *doc;
};

static void new_version_free(struct new_version *nv)
{
    st_certobj_clear(&nv->obj);
    st_secret_clear(&nv->secret);
    st_key_clear(&nv->key);
    json_decref(nv->doc);
    memset(nv, 0, sizeof *nv);
}

/* The key_ops of a certificate's key, from the policy's key usage (reference §2.5: sign/verify
 * for the signing usages, wrap/unwrap for keyEncipherment, encrypt/decrypt for
 * dataEncipherment, encrypt for encipherOnly, decrypt for decipherOnly), in Key Vault's order. */
static void key_ops_of(const json_t *policy, const char *ops[7])
{
    unsigned ku = 0;
    size_t i, n = 0;
    const json_t *v;
    json_array_foreach(json_object_get(json_object_get(policy, "x509_props"), "key_usage"), i, v)
    ku |= certs_ku_bit(json_string_value(v));
    int enc = (ku & (CERTS_KU_DATA_ENCIPHERMENT | CERTS_KU_ENCIPHER_ONLY)) != 0;
    int dec = (ku & (CERTS_KU_DATA_ENCIPHERMENT | CERTS_KU_DECIPHER_ONLY)) != 0;
    int sig = (ku & (CERTS_KU_DIGITAL_SIGNATURE | CERTS_KU_NON_REPUDIATION |
                     CERTS_KU_KEY_CERT_SIGN | CERTS_KU_CRL_SIGN)) != 0;
    if (enc)
        ops[n++] = "encrypt";
    if (dec)
        ops[n++] = "decrypt";
    if (sig) {
        ops[n++] = "sign";
        ops[n++] = "verify";
    }
    if (ku & CERTS_KU_KEY_ENCIPHERMENT) {
        ops[n++] = "wrapKey";
        ops[n++] = "unwrapKey";
    }
    ops[n] = NULL;
}

/* Builds the version row and the managed secret of (key, chain) under policy. attrs/tags are
 * the request's (may be NULL). */
static mv_rc make_version(struct vault_ctx *c, const char *name, const char *version,
                          const json_t *policy, EVP_PKEY *key, STACK_OF(X509) *chain,
                          const json_t *attrs, const json_t *tags, int64_t now,
                          struct new_version *nv)
{
    mv_rc rc = MV_OK;
    mv_buf der, b64, pem, value, p12;
    mv_buf_init(&der, 64 * 1024);
    mv_buf_init(&b64, 128 * 1024);
    mv_buf_init(&pem, 256 * 1024);
    mv_buf_init(&value, MV_SECRET_MAX_VALUE_BYTES);
    mv_buf_init(&p12, MV_SECRET_MAX_VALUE_BYTES);
    memset(nv, 0, sizeof *nv);
    X509 *leaf = sk_X509_value(chain, 0);
    char x5t[32];
    int64_t nbf = 0, exp = 0;
    const json_t *sp = json_object_get(policy, "secret_props");
    const char *ct = json_string_value(json_object_get(sp, "contentType"));
    int exportable =
        !json_is_false(json_object_get(json_object_get(policy, "key_props"), "exportable"));
    if (!ct)
        ct = CT_PKCS12;
    CHECK(certs_der(leaf, &der));
    CHECK(b64_encode(&b64, der.p, der.len));
    CHECK(certs_x5t(leaf, x5t));
    CHECK(certs_validity(leaf, &nbf, &exp));
    CHECK(certs_chain_pem(chain, &pem));
    const json_t *en = attrs ? json_object_get(attrs, "enabled") : NULL;
    nv->doc = json_pack("{s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:I}", "cer", b64.p, "x5t", x5t,
                        "chain", pem.p, "contentType", ct, "enabled",
                        en ? json_is_true(en) : 1, "nbf", (json_int_t)nbf, "exp",
                        (json_int_t)exp, "created", (json_int_t)now, "updated", (json_int_t)now);
    ENSURE(nv->doc != NULL, MV_ERR_INTERNAL);
    if (tags && json_is_object(tags))
        ENSURE(set(nv->doc, "tags", json_deep_copy(tags)), MV_ERR_INTERNAL);
    CHECK(mv_copy(nv->obj.vault, sizeof nv->obj.vault, c->vault.name));
    nv->obj.kind = ST_CERT_VERSION;
    CHECK(mv_copy(nv->obj.name, sizeof nv->obj.name, name));
    CHECK(mv_copy(nv->obj.version, sizeof nv->obj.version, version));
    nv->obj.doc = json_dumps(nv->doc, JSON_COMPACT);
    ENSURE(nv->obj.doc != NULL, MV_ERR_INTERNAL);
    nv->obj.created = now;
    CHECK(seal_key(c, name, version, key, &nv->obj.sealed));

    /* the secret of the same name and version */
    if (strcmp(ct, CT_PEM) == 0) {
        CHECK(certs_pem(exportable ? key : NULL, chain, &value));
    } else {
        CHECK(certs_pkcs12(exportable ? key : NULL, chain, &p12));
        CHECK(b64_encode(&value, p12.p, p12.len));
    }
    struct st_secret *s = &nv->secret;
    CHECK(mv_copy(s->vault, sizeof s->vault, c->vault.name));
    CHECK(mv_copy(s->name, sizeof s->name, name));
    CHECK(mv_copy(s->version, sizeof s->version, version));
    mv_buf_init(&s->sealed, value.len + AEAD_OVERHEAD);
    CHECK(vault_seal_value(c, name, version, value.p, value.len, &s->sealed));
    s->content_type = strdup(ct);
    ENSURE(s->content_type != NULL, MV_ERR_INTERNAL);
    if (tags && json_is_object(tags)) {
        s->tags_json = json_dumps(tags, JSON_COMPACT);
        ENSURE(s->tags_json != NULL, MV_ERR_INTERNAL);
    }
    s->enabled = en ? json_is_true(en) : 1;
    s->nbf = nbf;
    s->exp = exp;
    s->created = s->updated = now;

    /* the key of the same name and version, managed, usable through CryptographyClient */
    const char *ops[7];
    key_ops_of(policy, ops);
    struct vault_key_attrs ka = {.enabled = s->enabled, .nbf = nbf, .exp = exp,
                                 .tags_json = s->tags_json, .managed = 1};
    CHECK(vault_key_row(c->w->srv->data_key, c->vault.name, name, version, key,
                        json_string_value(json_object_get(json_object_get(policy, "key_props"),
                                                          "kty")),
                        ops, &ka, now, &nv->key));
    nv->key.managed = 1;
out:
    mv_buf_free(&der);
    mv_buf_free(&b64);
    mv_buf_free(&pem);
    mv_buf_free_secret(&value);
    mv_buf_free_secret(&p12);
    if (rc != MV_OK)
        new_version_free(nv);
    return rc;
}

static mv_rc put_doc(struct vault_ctx *c, int kind, const char *name, const char *version,
                     const json_t *doc, const mv_buf *sealed, int64_t now)
{
    mv_rc rc = MV_OK;
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    CHECK(mv_copy(o.vault, sizeof o.vault, c->vault.name));
    o.kind = kind;
    CHECK(mv_copy(o.name, sizeof o.name, name));
    CHECK(mv_copy(o.version, sizeof o.version, version));
    o.doc = json_dumps(doc, JSON_COMPACT);
    ENSURE(o.doc != NULL, MV_ERR_INTERNAL);
    if (sealed)
        o.sealed = *sealed; /* borrowed */
    o.created = now;
    rc = store_cert_put(c->w->st, &o);
out:
    free(o.doc);
    return rc;
}

static mv_rc write_version(struct vault_ctx *c, struct new_version *nv)
{
    mv_rc rc = MV_OK;
    CHECK(store_cert_put(c->w->st, &nv->obj));
    CHECK(store_secret_add(c->w->st, &nv->secret));
    CHECK(store_key_add(c->w->st, &nv->key));
out:
    return rc;
}

/* ---- the pending operation ---- */

static mv_rc operation_json(const struct vault_ctx *c, const char *name, const json_t *doc,
                            const char *status_override, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *op = json_object(), *id = NULL;
    ENSURE(op != NULL, MV_ERR_INTERNAL);
    CHECK(url_of(c, "certificates", name, NULL, "/pending", &id));
    ENSURE(set(op, "id", id), MV_ERR_INTERNAL);
    static const char *const KEYS[] = {"issuer", "csr", "cancellation_requested", "status",
                                       "status_details", "error", "target", "request_id"};
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
        const json_t *v = json_object_get(doc, KEYS[i]);
        if (v)
            ENSURE(set(op, KEYS[i], json_deep_copy(v)), MV_ERR_INTERNAL);
    }
    if (status_override) {
        ENSURE(set(op, "status", json_string(status_override)), MV_ERR_INTERNAL);
        ENSURE(set(op, "status_details",
                   json_string("Pending certificate created. Certificate request is in progress. "
                               "This may take some time based on the issuer provider. Please "
                               "check again later.")),
               MV_ERR_INTERNAL);
        json_object_del(op, "target");
    }
    *out = op;
    op = NULL;
out:
    json_decref(op);
    return rc;
}

static const char *issuer_of(const json_t *policy)
{
    const char *n = json_string_value(json_object_get(json_object_get(policy, "issuer"), "name"));
    return n ? n : "Unknown";
}

static int pending_in_progress(struct vault_ctx *c)
{
    struct st_certobj o;
    int busy = 0;
    if (store_cert_get(c->w->st, c->vault.name, ST_CERT_PENDING, c->name, NULL, 0, &o) == MV_OK) {
        json_t *d = json_loads(o.doc, 0, NULL);
        const char *st = json_string_value(json_object_get(d, "status"));
        busy = st && strcmp(st, "inProgress") == 0;
        json_decref(d);
    }
    st_certobj_clear(&o);
    return busy;
}

static void busy_error(struct vault_ctx *c)
{
    vault_error(c, 409, "Forbidden",
                "A new key vault certificate can not be created or imported while a pending key "
                "vault certificate's status is inProgress.",
                NULL);
}

/* The rest of a create once the certificate's key exists (generated off the loop when the
 * server has an offload pool): the CSR, for Self the certificate and its version, the pending
 * operation, the store writes and the 202. body, policy and key stay the caller's. */
static void cert_create_finish(struct vault_ctx *c, const json_t *body, const json_t *policy,
                               EVP_PKEY *key, int64_t now)
{
    mv_rc rc = MV_OK;
    json_t *pdoc = NULL, *op = NULL, *vdoc = NULL;
    X509 *x = NULL;
    STACK_OF(X509) *chain = NULL;
    struct new_version nv;
    mv_buf csr, csr_b64, sealed;
    memset(&nv, 0, sizeof nv);
    mv_buf_init(&csr, 64 * 1024);
    mv_buf_init(&csr_b64, 128 * 1024);
    mv_buf_init(&sealed, 0);
    int began = 0;
    char version[MV_VERSION_LEN + 1], request_id[MV_VERSION_LEN + 1];
    const char *issuer = issuer_of(policy);
    int self = strcasecmp(issuer, "Self") == 0;
    struct certs_spec spec;
    CHECK(vault_cert_policy_spec(policy, &spec));
    CHECK(certs_csr(key, &spec, &csr));
    CHECK(b64_encode(&csr_b64, csr.p, csr.len));
    CHECK(mv_hexid(version));
    CHECK(mv_hexid(request_id));
    const json_t *attrs = json_object_get(body, "attributes");
    const json_t *tags = json_object_get(body, "tags");
    if (tags && !json_is_null(tags) && !vault_tags_ok(tags)) {
        vault_bad_parameter(c, "The tags are invalid.");
        goto out;
    }
    pdoc = json_pack("{s:{s:s},s:s,s:b,s:s,s:s,s:s,s:O*,s:O*}", "issuer", "name", issuer, "csr",
                     csr_b64.p, "cancellation_requested", 0, "status", "inProgress",
                     "status_details",
                     "Pending certificate created. Please Perform Merge to complete the request.",
                     "request_id", request_id, "attributes", json_is_object(attrs) ? attrs : NULL,
                     "tags", json_is_object(tags) ? tags : NULL);
    ENSURE(pdoc != NULL, MV_ERR_INTERNAL);
    ENSURE(set(pdoc, "version", json_string(version)), MV_ERR_INTERNAL);
    if (self) {
        rc = certs_self_signed(key, &spec, now, &x);
        if (rc == MV_ERR_BAD_REQUEST) {
            rc = MV_OK;
            vault_bad_parameter(c, "The x509 properties of the policy do not make a certificate.");
            goto out;
        }
        CHECK(rc);
        chain = sk_X509_new_null();
        ENSURE(chain != NULL && sk_X509_push(chain, x) > 0, MV_ERR_INTERNAL);
        x = NULL;
        CHECK(make_version(c, c->name, version, policy, key, chain, attrs, tags, now, &nv));
        json_t *target = NULL;
        CHECK(url_of(c, "certificates", c->name, NULL, NULL, &target));
        ENSURE(set(pdoc, "target", target), MV_ERR_INTERNAL);
        ENSURE(set(pdoc, "status", json_string("completed")), MV_ERR_INTERNAL);
        ENSURE(set(pdoc, "status_details", json_string("")), MV_ERR_INTERNAL);
    } else {
        CHECK(seal_key(c, c->name, PENDING_VERSION, key, &sealed));
        /* the version exists while pending, without a certificate (JavaScript's operation
         * poller reads GET /certificates/{name}/ first); merge fills it in */
        vdoc = json_pack("{s:b,s:b,s:I,s:I}", "pending", 1, "enabled",
                         json_is_object(attrs) && json_is_false(json_object_get(attrs, "enabled"))
                             ? 0
                             : 1,
                         "created", (json_int_t)now, "updated", (json_int_t)now);
        ENSURE(vdoc != NULL, MV_ERR_INTERNAL);
        if (json_is_object(tags))
            ENSURE(set(vdoc, "tags", json_deep_copy(tags)), MV_ERR_INTERNAL);
    }
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(put_doc(c, ST_CERT_POLICY, c->name, "", policy, NULL, now));
    CHECK(put_doc(c, ST_CERT_PENDING, c->name, "", pdoc, self ? NULL : &sealed, now));
    if (self)
        CHECK(write_version(c, &nv));
    else
        CHECK(put_doc(c, ST_CERT_VERSION, c->name, version, vdoc, NULL, now));
    CHECK(store_commit(c->w->st));
    began = 0;
    CHECK(operation_json(c, c->name, pdoc, "inProgress", &op));
    {
        char loc[MV_MAX_URL + MV_SECRET_MAX_NAME + 128];
        if (vault_cat(loc, sizeof loc, c->url, "/certificates/", c->name,
                      "/pending?api-version=", c->api_version, "&request_id=", request_id,
                      (char *)NULL) == MV_OK)
            http_set_header(c->req, "Location", loc);
    }
    vault_reply_json(c, 202, op);
    op = NULL;
out:
    if (began)
        store_rollback(c->w->st);
    if (rc == MV_ERR_CONFLICT)
        conflict_deleted(c);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    json_decref(pdoc);
    json_decref(op);
    json_decref(vdoc);
    X509_free(x);
    sk_X509_pop_free(chain, X509_free);
    new_version_free(&nv);
    mv_buf_free(&csr);
    mv_buf_free(&csr_b64);
    mv_buf_free(&sealed);
}


/* A certificate create whose key is generated off the loop (http/offload.h): RSA-4096 takes
 * about a second, which would stall every connection of this loop. */
struct certgen_job {
    struct vault_deferred d; /* d.c answers (its api-version: the Location header names it) */
    json_t *body, *policy;
    char kty[16], crv[16];
    int key_size;
    int64_t now;
    EVP_PKEY *key;
    mv_rc rc;
};

static void certgen_free(struct certgen_job *j)
{
    json_decref(j->body);
    json_decref(j->policy);
    EVP_PKEY_free(j->key);
    vault_deferred_free(&j->d);
    free(j);
}

static void certgen_run(void *arg)
{
    struct certgen_job *j = arg;
    j->rc = certs_gen_key(j->kty[0] ? j->kty : NULL, j->key_size, j->crv[0] ? j->crv : NULL,
                          &j->key);
}

static void certgen_done(void *arg)
{
    struct certgen_job *j = arg;
    vault_deferred_resume(&j->d);
    if (j->rc == MV_ERR_BAD_REQUEST)
        vault_bad_parameter(&j->d.c, "The key properties of the policy are invalid.");
    else if (j->rc != MV_OK)
        vault_rc_error(&j->d.c, j->rc);
    else
        cert_create_finish(&j->d.c, j->body, j->policy, j->key, j->now);
    vault_audit(&j->d.c);
    certgen_free(j);
}

/* Defers the request and generates its key off the loop; takes *body and *policy (set to
 * NULL). MV_OK when the job answers; otherwise nothing was deferred and the caller answers. */
static mv_rc cert_create_later(struct vault_ctx *c, json_t **body, json_t **policy, int64_t now)
{
    mv_rc rc = MV_OK;
    struct certgen_job *j = calloc(1, sizeof *j);
    ENSURE(j != NULL, MV_ERR_INTERNAL);
    const json_t *kp = json_object_get(*policy, "key_props");
    const char *kty = json_string_value(json_object_get(kp, "kty"));
    const char *crv = json_string_value(json_object_get(kp, "crv"));
    /* too long for the buffer is no key type or curve: "?" fails like any unknown one */
    if (kty && mv_copy(j->kty, sizeof j->kty, kty) != MV_OK)
        CHECK(mv_copy(j->kty, sizeof j->kty, "?"));
    if (crv && mv_copy(j->crv, sizeof j->crv, crv) != MV_OK)
        CHECK(mv_copy(j->crv, sizeof j->crv, "?"));
    j->key_size = (int)json_integer_value(json_object_get(kp, "key_size"));
    j->now = now;
    CHECK(vault_defer(c, &j->d)); /* certgen_done replies and audits */
    j->body = *body;
    j->policy = *policy;
    *body = *policy = NULL;
    rc = http_offload_submit(c->w->srv->offload, c->w->base, certgen_run, certgen_done, j);
    if (rc != MV_OK) {
        vault_deferred_fail(&j->d, rc);
        certgen_free(j);
    }
    return MV_OK;
out:
    if (j)
        certgen_free(j); /* body and policy are still the caller's */
    return c->deferred ? MV_OK : rc;
}

void vault_op_cert_create(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL, *policy = NULL;
    const char *why = NULL;
    EVP_PKEY *key = NULL;
    struct st_certobj stored;
    memset(&stored, 0, sizeof stored);
    int64_t now = mv_now();

    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    const json_t *given = json_object_get(body, "policy");
    if (!given || json_is_null(given)) {
        /* no policy: the stored one, else 400 */
        if (store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0, &stored) !=
            MV_OK) {
            vault_bad_parameter(c, "The certificate policy is required.");
            goto out;
        }
        json_t *base = json_loads(stored.doc, 0, NULL);
        rc = vault_cert_policy_normalize(NULL, base, now, &policy, &why);
        json_decref(base);
    } else {
        rc = vault_cert_policy_normalize(given, NULL, now, &policy, &why);
    }
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, why);
        goto out;
    }
    CHECK(rc);
    const char *issuer = issuer_of(policy);
    int self = strcasecmp(issuer, "Self") == 0;
    if (!self && strcasecmp(issuer, "Unknown") != 0) {
        vault_bad_parameter(c, "Only the issuers Self and Unknown can issue certificates in this "
                               "vault.");
        goto out;
    }
    if (is_deleted_name(c)) {
        conflict_deleted(c);
        goto out;
    }
    if (pending_in_progress(c)) {
        busy_error(c);
        goto out;
    }
    if (c->w->srv->offload) {
        CHECK(cert_create_later(c, &body, &policy, now));
        goto out;
    }
    const json_t *kp = json_object_get(policy, "key_props");
    rc = certs_gen_key(json_string_value(json_object_get(kp, "kty")),
                       (int)json_integer_value(json_object_get(kp, "key_size")),
                       json_string_value(json_object_get(kp, "crv")), &key);
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, "The key properties of the policy are invalid.");
        goto out;
    }
    CHECK(rc);
    cert_create_finish(c, body, policy, key, now);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    json_decref(body);
    json_decref(policy);
    EVP_PKEY_free(key);
    st_certobj_clear(&stored);
}

static mv_rc load_pending(struct vault_ctx *c, struct st_certobj *o, json_t **doc)
{
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_PENDING, c->name, NULL, 0, o);
    if (rc != MV_OK)
        return rc;
    *doc = json_loads(o->doc, 0, NULL);
    if (!*doc) {
        mv_fail(MV_ERR_INTERNAL, "vault: pending document");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

void vault_op_cert_pending_get(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *doc = NULL, *op = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = load_pending(c, &o, &doc);
    if (rc == MV_ERR_NOT_FOUND) {
        pending_not_found(c);
        goto done;
    }
    if (rc == MV_OK) {
        const char *want = c->req->query_ok ? kv_get_ci(&c->req->query, "request_id") : NULL;
        const char *have = json_string_value(json_object_get(doc, "request_id"));
        if (want && *want && (!have || strcasecmp(want, have) != 0)) {
            pending_not_found(c);
            goto done;
        }
        rc = operation_json(c, o.name, doc, NULL, &op);
    }
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, op);
        op = NULL;
    }
done:
    json_decref(doc);
    json_decref(op);
    st_certobj_clear(&o);
}

void vault_op_cert_pending_cancel(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *doc = NULL, *op = NULL, *body = NULL;
    const char *why = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = MV_OK;
    if (parse_body(c, &body, &why) != MV_OK ||
        !json_is_boolean(json_object_get(body, "cancellation_requested"))) {
        vault_bad_parameter(c, why ? why : "cancellation_requested must be a boolean.");
        goto done;
    }
    rc = load_pending(c, &o, &doc);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        pending_not_found(c);
        goto done;
    }
    CHECK(rc);
    const char *st = json_string_value(json_object_get(doc, "status"));
    if (!st || strcmp(st, "inProgress") != 0) {
        vault_error(c, 403, "Forbidden", "Pending status must be in progress to allow update.",
                    NULL);
        goto done;
    }
    if (json_is_true(json_object_get(body, "cancellation_requested"))) {
        ENSURE(set(doc, "cancellation_requested", json_true()), MV_ERR_INTERNAL);
        ENSURE(set(doc, "status", json_string("cancelled")), MV_ERR_INTERNAL);
        ENSURE(set(doc, "status_details", json_string("Pending certificate request cancelled.")),
               MV_ERR_INTERNAL);
        CHECK(put_doc(c, ST_CERT_PENDING, o.name, "", doc, NULL, o.created));
    }
    CHECK(operation_json(c, o.name, doc, NULL, &op));
    vault_reply_json(c, 200, op);
    op = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    json_decref(body);
    json_decref(doc);
    json_decref(op);
    st_certobj_clear(&o);
}

void vault_op_cert_pending_delete(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *doc = NULL, *op = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = load_pending(c, &o, &doc);
    if (rc == MV_ERR_NOT_FOUND) {
        pending_not_found(c);
        goto done;
    }
    if (rc == MV_OK)
        rc = operation_json(c, o.name, doc, NULL, &op);
    if (rc == MV_OK)
        rc = store_cert_remove(c->w->st, c->vault.name, ST_CERT_PENDING, c->name, NULL);
    if (rc == MV_OK) {
        /* a version still waiting for its certificate goes with its operation */
        const char *pv = json_string_value(json_object_get(doc, "version"));
        struct st_certobj v;
        memset(&v, 0, sizeof v);
        if (pv && store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, pv, 0, &v) ==
                      MV_OK &&
            v.doc && strstr(v.doc, "\"pending\":true"))
            rc = store_cert_remove(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, pv);
        st_certobj_clear(&v);
    }
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, op);
        op = NULL;
    }
done:
    json_decref(doc);
    json_decref(op);
    st_certobj_clear(&o);
}

void vault_op_cert_merge(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o, pol;
    json_t *doc = NULL, *body = NULL, *policy = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    struct new_version nv;
    const char *why = NULL;
    const char *x5c[CERTS_MAX_CHAIN];
    int began = 0;
    int64_t now = mv_now();
    memset(&o, 0, sizeof o);
    memset(&pol, 0, sizeof pol);
    memset(&nv, 0, sizeof nv);
    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto done;
    }
    const json_t *arr = json_object_get(body, "x5c");
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (n < 1 || n > CERTS_MAX_CHAIN) {
        vault_bad_parameter(c, "x5c must hold between 1 and 10 base64 DER certificates.");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        x5c[i] = json_string_value(json_array_get(arr, i));
        if (!x5c[i]) {
            vault_bad_parameter(c, "x5c must hold base64 DER certificates.");
            goto done;
        }
    }
    rc = load_pending(c, &o, &doc);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        pending_not_found(c);
        goto done;
    }
    CHECK(rc);
    const char *issuer = json_string_value(json_object_get(json_object_get(doc, "issuer"), "name"));
    const char *st = json_string_value(json_object_get(doc, "status"));
    if (!st || strcmp(st, "inProgress") != 0 || !issuer || strcasecmp(issuer, "Unknown") != 0 ||
        o.sealed.len == 0) {
        char msg[256];
        if (mv_fmt(msg, sizeof msg,
                   "Merge is forbidden on pending object created with issuer : %s while it is "
                   "in progess.",
                   issuer ? issuer : "Unknown") != MV_OK)
            msg[0] = '\0';
        vault_error(c, 403, "Forbidden", msg, NULL);
        goto done;
    }
    CHECK(open_key(c, o.name, PENDING_VERSION, &o.sealed, &key));
    rc = certs_merge(key, x5c, n, &chain, &why);
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, why);
        goto done;
    }
    CHECK(rc);
    rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0, &pol);
    ENSURE(rc == MV_OK, rc == MV_ERR_NOT_FOUND ? MV_ERR_INTERNAL : rc);
    policy = json_loads(pol.doc, 0, NULL);
    ENSURE(policy != NULL, MV_ERR_INTERNAL);
    const char *version = json_string_value(json_object_get(doc, "version"));
    char vbuf[MV_VERSION_LEN + 1];
    if (!version || strlen(version) != MV_VERSION_LEN) {
        CHECK(mv_hexid(vbuf));
        version = vbuf;
    }
    const json_t *attrs = json_object_get(body, "attributes");
    const json_t *tags = json_object_get(body, "tags");
    if (!json_is_object(attrs))
        attrs = json_object_get(doc, "attributes");
    if (!json_is_object(tags))
        tags = json_object_get(doc, "tags");
    CHECK(make_version(c, o.name, version, policy, key, chain, attrs, tags, now, &nv));
    json_t *target = NULL;
    CHECK(url_of(c, "certificates", o.name, NULL, NULL, &target));
    ENSURE(set(doc, "target", target), MV_ERR_INTERNAL);
    ENSURE(set(doc, "status", json_string("completed")), MV_ERR_INTERNAL);
    ENSURE(set(doc, "status_details", json_string("")), MV_ERR_INTERNAL);
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(write_version(c, &nv));
    CHECK(put_doc(c, ST_CERT_PENDING, o.name, "", doc, NULL, o.created));
    CHECK(store_commit(c->w->st));
    began = 0;
    reply_bundle(c, 201, &nv.obj, B_POLICY);
out:
    if (began)
        store_rollback(c->w->st);
    if (rc == MV_ERR_CONFLICT)
        conflict_deleted(c);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    json_decref(body);
    json_decref(doc);
    json_decref(policy);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    new_version_free(&nv);
    st_certobj_clear(&o);
    st_certobj_clear(&pol);
}

void vault_op_cert_import(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL, *policy = NULL;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    struct new_version nv;
    struct certs_desc d;
    const char *why = NULL;
    enum certs_format fmt = 0;
    int began = 0, described = 0;
    int64_t now = mv_now();
    char version[MV_VERSION_LEN + 1];
    memset(&nv, 0, sizeof nv);
    memset(&d, 0, sizeof d);
    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto done;
    }
    const json_t *value = json_object_get(body, "value");
    const json_t *pwd = json_object_get(body, "pwd");
    if (!json_is_string(value) || (pwd && !json_is_null(pwd) && !json_is_string(pwd))) {
        vault_bad_parameter(c, "The certificate value is required.");
        goto done;
    }
    const json_t *given = json_object_get(body, "policy");
    if (given && !json_is_null(given) && !json_is_object(given)) {
        vault_bad_parameter(c, "The policy must be a JSON object.");
        goto done;
    }
    rc = certs_import(json_string_value(value), json_string_length(value),
                      json_string_value(pwd), &key, &chain, &fmt, &why);
    if (rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT) {
        rc = MV_OK;
        vault_bad_parameter(c, why);
        goto done;
    }
    CHECK(rc);
    CHECK(certs_describe(sk_X509_value(chain, 0), &d));
    described = 1;
    const char *ct = fmt == CERTS_FMT_PEM ? CT_PEM : CT_PKCS12;
    const char *gct = json_string_value(
        json_object_get(json_object_get(given, "secret_props"), "contentType"));
    if (gct)
        ct = gct;
    rc = vault_cert_policy_from_cert(&d, json_is_object(given) ? given : NULL, ct, now, &policy,
                                     &why);
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, why);
        goto done;
    }
    CHECK(rc);
    if (is_deleted_name(c)) {
        conflict_deleted(c);
        goto done;
    }
    if (pending_in_progress(c)) {
        busy_error(c);
        goto done;
    }
    const json_t *tags = json_object_get(body, "tags");
    if (tags && !json_is_null(tags) && !vault_tags_ok(tags)) {
        vault_bad_parameter(c, "The tags are invalid.");
        goto done;
    }
    CHECK(mv_hexid(version));
    CHECK(make_version(c, c->name, version, policy, key, chain, json_object_get(body, "attributes"),
                       tags, now, &nv));
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(put_doc(c, ST_CERT_POLICY, c->name, "", policy, NULL, now));
    CHECK(write_version(c, &nv));
    CHECK(store_commit(c->w->st));
    began = 0;
    reply_bundle(c, 200, &nv.obj, B_POLICY);
out:
    if (began)
        store_rollback(c->w->st);
    if (rc == MV_ERR_CONFLICT)
        conflict_deleted(c);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    if (described)
        certs_desc_free(&d);
    json_decref(body);
    json_decref(policy);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    new_version_free(&nv);
}

/* ---- reads and updates ---- */

void vault_op_cert_get(struct vault_ctx *c)
{
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, c->version, 0,
                              &o);
    if (rc == MV_ERR_NOT_FOUND)
        cert_not_found(c, c->version);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        reply_bundle(c, 200, &o, c->version[0] ? 0 : B_POLICY);
    st_certobj_clear(&o);
}

void vault_op_cert_update(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o, pol;
    json_t *body = NULL, *doc = NULL, *policy = NULL, *base = NULL;
    const char *why = NULL;
    int began = 0;
    int64_t now = mv_now();
    memset(&o, 0, sizeof o);
    memset(&pol, 0, sizeof pol);
    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto done;
    }
    rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, c->version, 0, &o);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        cert_not_found(c, c->version);
        goto done;
    }
    CHECK(rc);
    doc = json_loads(o.doc, 0, NULL);
    ENSURE(doc != NULL, MV_ERR_INTERNAL);
    const json_t *attrs = json_object_get(body, "attributes");
    if (attrs && !json_is_null(attrs)) {
        const json_t *en = json_object_get(attrs, "enabled");
        if (!json_is_object(attrs) || (en && !json_is_boolean(en))) {
            vault_bad_parameter(c, "The attributes are invalid.");
            goto done;
        }
        if (en)
            ENSURE(set(doc, "enabled", json_boolean(json_is_true(en))), MV_ERR_INTERNAL);
    }
    const json_t *tags = json_object_get(body, "tags");
    if (tags && !json_is_null(tags)) {
        if (!vault_tags_ok(tags)) {
            vault_bad_parameter(c, "The tags are invalid.");
            goto done;
        }
        ENSURE(set(doc, "tags", json_deep_copy(tags)), MV_ERR_INTERNAL);
    }
    ENSURE(set(doc, "updated", json_integer(now)), MV_ERR_INTERNAL);
    const json_t *gp = json_object_get(body, "policy");
    if (gp && !json_is_null(gp)) {
        if (store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0, &pol) ==
            MV_OK)
            base = json_loads(pol.doc, 0, NULL);
        rc = vault_cert_policy_normalize(gp, base, now, &policy, &why);
        if (rc == MV_ERR_BAD_REQUEST) {
            rc = MV_OK;
            vault_bad_parameter(c, why);
            goto done;
        }
        CHECK(rc);
    }
    free(o.doc);
    o.doc = json_dumps(doc, JSON_COMPACT);
    ENSURE(o.doc != NULL, MV_ERR_INTERNAL);
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(store_cert_put(c->w->st, &o));
    if (policy)
        CHECK(put_doc(c, ST_CERT_POLICY, o.name, "", policy, NULL, now));
    CHECK(store_commit(c->w->st));
    began = 0;
    reply_bundle(c, 200, &o, B_POLICY);
out:
    if (began)
        store_rollback(c->w->st);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    json_decref(body);
    json_decref(doc);
    json_decref(policy);
    json_decref(base);
    st_certobj_clear(&o);
    st_certobj_clear(&pol);
}

void vault_op_cert_policy_get(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *p = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND)
        cert_not_found(c, NULL);
    else if (rc != MV_OK || (rc = policy_json(c, o.name, o.doc, &p)) != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, p);
        p = NULL;
    }
    json_decref(p);
    st_certobj_clear(&o);
}

void vault_op_cert_policy_update(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o;
    json_t *body = NULL, *base = NULL, *policy = NULL, *p = NULL;
    const char *why = NULL;
    int64_t now = mv_now();
    memset(&o, 0, sizeof o);
    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto done;
    }
    rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        cert_not_found(c, NULL);
        goto done;
    }
    CHECK(rc);
    base = json_loads(o.doc, 0, NULL);
    ENSURE(base != NULL, MV_ERR_INTERNAL);
    rc = vault_cert_policy_normalize(body, base, now, &policy, &why);
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, why);
        goto done;
    }
    CHECK(rc);
    CHECK(put_doc(c, ST_CERT_POLICY, o.name, "", policy, NULL, o.created));
    free(o.doc);
    o.doc = json_dumps(policy, JSON_COMPACT);
    ENSURE(o.doc != NULL, MV_ERR_INTERNAL);
    CHECK(policy_json(c, o.name, o.doc, &p));
    vault_reply_json(c, 200, p);
    p = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    json_decref(body);
    json_decref(base);
    json_decref(policy);
    json_decref(p);
    st_certobj_clear(&o);
}

/* ---- lists ---- */

static void reply_list(struct vault_ctx *c, const char *name, int deleted, const char *link_path)
{
    char after[MV_SECRET_MAX_NAME + 1];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_certobj *rows = NULL;
    json_t *page = NULL, *items = NULL, *link = NULL;
    mv_rc rc = MV_OK;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    CHECK(store_cert_list(c->w->st, c->vault.name, ST_CERT_VERSION, name,
                          has_after ? after : NULL, limit + 1, deleted, &rows, &n));
    items = json_array();
    ENSURE(items != NULL, MV_ERR_INTERNAL);
    size_t shown = n > limit ? limit : n;
    const char *inc = c->req->query_ok ? kv_get_ci(&c->req->query, "includePending") : NULL;
    int with_pending = inc && strcasecmp(inc, "true") == 0;
    for (size_t i = 0; i < shown; i++) {
        json_t *item = NULL;
        if (!with_pending && rows[i].doc && strstr(rows[i].doc, "\"pending\":true"))
            continue;
        CHECK(bundle_json(c, &rows[i], NULL,
                          (name ? B_ITEM_VERSION : B_ITEM) | (deleted ? B_DELETED : 0), &item));
        ENSURE(json_array_append_new(items, item) == 0, MV_ERR_INTERNAL);
    }
    if (n > limit && shown > 0) {
        mv_buf tok, url;
        mv_buf_init(&tok, 4 * MV_SECRET_MAX_NAME);
        mv_buf_init(&url, MV_MAX_URL + 512);
        const struct st_certobj *last = &rows[shown - 1];
        rc = vault_skiptoken_encode(name ? last->version : last->name, &tok);
        if (rc == MV_OK)
            rc = mv_buf_addf(&url, "%s%s?api-version=%s&$skiptoken=%s&maxresults=%zu", c->url,
                             link_path, c->api_version, tok.p, limit);
        if (rc == MV_OK)
            link = json_string(url.p);
        mv_buf_free(&tok);
        mv_buf_free(&url);
        CHECK(rc);
        ENSURE(link != NULL, MV_ERR_INTERNAL);
    } else {
        link = json_null();
    }
    page = json_pack("{s:o,s:o}", "value", items, "nextLink", link);
    items = link = NULL;
    ENSURE(page != NULL, MV_ERR_INTERNAL);
    vault_reply_json(c, 200, page);
    page = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    json_decref(page);
    json_decref(items);
    json_decref(link);
    st_certobjs_free(rows, n);
}

void vault_op_cert_list(struct vault_ctx *c) { reply_list(c, NULL, 0, "/certificates"); }

void vault_op_cert_list_deleted(struct vault_ctx *c)
{
    reply_list(c, NULL, 1, "/deletedcertificates");
}

void vault_op_cert_versions(struct vault_ctx *c)
{
    char path[MV_SECRET_MAX_NAME + 32];
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 0, &o);
    st_certobj_clear(&o);
    if (rc == MV_ERR_NOT_FOUND) {
        cert_not_found(c, NULL);
        return;
    }
    if (rc != MV_OK || vault_cat(path, sizeof path, "/certificates/", c->name, "/versions",
                                 (char *)NULL) != MV_OK) {
        vault_rc_error(c, rc != MV_OK ? rc : MV_ERR_INTERNAL);
        return;
    }
    reply_list(c, c->name, 0, path);
}

/* ---- delete, recover, purge ---- */

void vault_op_cert_delete(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o;
    struct st_secret s;
    int began = 0;
    int64_t now = mv_now();
    int days = c->vault.soft_delete_days;
    memset(&o, 0, sizeof o);
    memset(&s, 0, sizeof s);
    rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        cert_not_found(c, NULL);
        goto done;
    }
    CHECK(rc);
    CHECK(store_begin(c->w->st));
    began = 1;
    if (days > 0) {
        o.deleted = now;
        o.purge_at = now + (int64_t)days * DAY_SECS;
        CHECK(store_cert_mark(c->w->st, c->vault.name, c->name, o.deleted, o.purge_at));
        rc = store_cert_remove(c->w->st, c->vault.name, ST_CERT_PENDING, c->name, NULL);
        if (rc == MV_ERR_NOT_FOUND)
            rc = MV_OK;
        CHECK(rc);
    }
    rc = store_secret_delete(c->w->st, c->vault.name, c->name, now, days, 0, &s);
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    {
        struct st_key k;
        memset(&k, 0, sizeof k);
        rc = store_key_delete(c->w->st, c->vault.name, c->name, now, days, &k);
        st_key_clear(&k);
        if (rc == MV_ERR_NOT_FOUND)
            rc = MV_OK;
        CHECK(rc);
    }
    CHECK(store_commit(c->w->st));
    began = 0;
    if (days > 0) {
        reply_bundle(c, 200, &o, B_POLICY | B_DELETED);
    } else {
        /* no soft delete: the reply is built before the rows go */
        struct st_certobj pol;
        json_t *b = NULL;
        int have = store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0,
                                  &pol) == MV_OK;
        rc = bundle_json(c, &o, have ? &pol : NULL, B_POLICY, &b);
        if (have)
            st_certobj_clear(&pol);
        if (rc == MV_OK)
            rc = store_cert_remove(c->w->st, c->vault.name, 0, c->name, NULL);
        if (rc == MV_OK) {
            vault_reply_json(c, 200, b);
            b = NULL;
        }
        json_decref(b);
        CHECK(rc);
    }
out:
    if (began)
        store_rollback(c->w->st);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    st_certobj_clear(&o);
    st_secret_clear(&s);
}

void vault_op_cert_get_deleted(struct vault_ctx *c)
{
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 1, &o);
    if (rc == MV_ERR_NOT_FOUND)
        cert_not_found(c, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        reply_bundle(c, 200, &o, B_POLICY | B_DELETED);
    st_certobj_clear(&o);
}

void vault_op_cert_recover(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o;
    int began = 0;
    memset(&o, 0, sizeof o);
    CHECK(store_begin(c->w->st));
    began = 1;
    rc = store_cert_mark(c->w->st, c->vault.name, c->name, 0, 0);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        store_rollback(c->w->st);
        began = 0;
        cert_not_found(c, NULL);
        goto done;
    }
    CHECK(rc);
    rc = store_secret_recover(c->w->st, c->vault.name, c->name);
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    rc = store_key_recover(c->w->st, c->vault.name, c->name);
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    CHECK(store_commit(c->w->st));
    began = 0;
    CHECK(store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 0, &o));
    reply_bundle(c, 200, &o, B_POLICY);
out:
    if (began)
        store_rollback(c->w->st);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    st_certobj_clear(&o);
}

void vault_op_cert_purge(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o;
    int began = 0;
    memset(&o, 0, sizeof o);
    if (c->vault.purge_protection) {
        vault_error(c, 403, "Forbidden",
                    "Operation \"purge\" is not allowed because purge protection is enabled for "
                    "this vault. Key Vault service will automatically purge it after the "
                    "retention period has passed.",
                    "PurgeProtected");
        return;
    }
    rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 1, &o);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        cert_not_found(c, NULL);
        goto done;
    }
    CHECK(rc);
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(store_cert_remove(c->w->st, c->vault.name, 0, c->name, NULL));
    rc = store_secret_purge(c->w->st, c->vault.name, c->name);
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    rc = store_key_purge(c->w->st, c->vault.name, c->name);
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    CHECK(store_commit(c->w->st));
    began = 0;
    vault_reply_body(c, 204, NULL, 0);
out:
    if (began)
        store_rollback(c->w->st);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    st_certobj_clear(&o);
}

/* ---- issuers and contacts: stored and returned; only Self and Unknown issue ---- */

static mv_rc issuer_json(const struct vault_ctx *c, const struct st_certobj *o, int item,
                         json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *doc = json_loads(o->doc, 0, NULL), *id = NULL;
    ENSURE(doc != NULL, MV_ERR_INTERNAL);
    CHECK(url_of(c, "certificates/issuers", o->name, NULL, NULL, &id));
    if (item) {
        *out = json_pack("{s:o,s:O}", "id", id, "provider", json_object_get(doc, "provider"));
        id = NULL;
        ENSURE(*out != NULL, MV_ERR_INTERNAL);
    } else {
        ENSURE(set(doc, "id", id), MV_ERR_INTERNAL);
        id = NULL;
        *out = doc;
        doc = NULL;
    }
out:
    json_decref(doc);
    json_decref(id);
    return rc;
}

static void issuer_not_found(struct vault_ctx *c)
{
    char msg[256];
    if (mv_fmt(msg, sizeof msg, "Issuer not found: %s", c->name) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 404, "CertificateIssuerNotFound", msg, NULL);
}

void vault_op_cert_issuer_get(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *j = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_ISSUER, c->name, NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND)
        issuer_not_found(c);
    else if (rc != MV_OK || (rc = issuer_json(c, &o, 0, &j)) != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, j);
        j = NULL;
    }
    json_decref(j);
    st_certobj_clear(&o);
}

/* PUT (replace) and PATCH (merge) of an issuer. */
void vault_op_cert_issuer_put(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct st_certobj o;
    json_t *body = NULL, *doc = NULL, *j = NULL;
    const char *why = NULL;
    int64_t now = mv_now();
    int patch = c->req->method == HTTP_PATCH;
    memset(&o, 0, sizeof o);
    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto done;
    }
    rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_ISSUER, c->name, NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND && patch) {
        rc = MV_OK;
        issuer_not_found(c);
        goto done;
    }
    if (rc != MV_ERR_NOT_FOUND)
        CHECK(rc);
    int64_t created = rc == MV_OK ? o.created : now;
    rc = MV_OK;
    doc = (patch && o.doc) ? json_loads(o.doc, 0, NULL) : json_object();
    ENSURE(doc != NULL, MV_ERR_INTERNAL);
    const json_t *prov = json_object_get(body, "provider");
    if (prov && (!json_is_string(prov) || json_string_length(prov) > 64)) {
        vault_bad_parameter(c, "The issuer provider is invalid.");
        goto done;
    }
    if (prov)
        ENSURE(set(doc, "provider", json_string(json_string_value(prov))), MV_ERR_INTERNAL);
    if (!json_is_string(json_object_get(doc, "provider"))) {
        vault_bad_parameter(c, "The issuer provider is required.");
        goto done;
    }
    const json_t *cred = json_object_get(body, "credentials");
    if (json_is_object(cred) && json_is_string(json_object_get(cred, "account_id")))
        ENSURE(set(doc, "credentials",
                   json_pack("{s:O}", "account_id", json_object_get(cred, "account_id"))),
               MV_ERR_INTERNAL);
    const json_t *org = json_object_get(body, "org_details");
    if (json_is_object(org))
        ENSURE(set(doc, "org_details", json_deep_copy(org)), MV_ERR_INTERNAL);
    const json_t *at = json_object_get(body, "attributes");
    const json_t *en = json_is_object(at) ? json_object_get(at, "enabled") : NULL;
    const json_t *old_at = json_object_get(doc, "attributes");
    int enabled = en ? json_is_true(en)
                     : (old_at ? json_is_true(json_object_get(old_at, "enabled")) : 1);
    ENSURE(set(doc, "attributes", json_pack("{s:b,s:I,s:I}", "enabled", enabled, "created",
                                            (json_int_t)created, "updated", (json_int_t)now)),
           MV_ERR_INTERNAL);
    CHECK(put_doc(c, ST_CERT_ISSUER, c->name, "", doc, NULL, created));
    st_certobj_clear(&o);
    CHECK(store_cert_get(c->w->st, c->vault.name, ST_CERT_ISSUER, c->name, NULL, 0, &o));
    CHECK(issuer_json(c, &o, 0, &j));
    vault_reply_json(c, 200, j);
    j = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    json_decref(body);
    json_decref(doc);
    json_decref(j);
    st_certobj_clear(&o);
}

void vault_op_cert_issuer_delete(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *j = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_ISSUER, c->name, NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND) {
        issuer_not_found(c);
        goto done;
    }
    if (rc == MV_OK)
        rc = issuer_json(c, &o, 0, &j);
    if (rc == MV_OK)
        rc = store_cert_remove(c->w->st, c->vault.name, ST_CERT_ISSUER, c->name, NULL);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, j);
        j = NULL;
    }
done:
    json_decref(j);
    st_certobj_clear(&o);
}

void vault_op_cert_issuer_list(struct vault_ctx *c)
{
    struct st_certobj *rows = NULL;
    size_t n = 0;
    json_t *items = json_array(), *page = NULL;
    mv_rc rc = MV_OK;
    ENSURE(items != NULL, MV_ERR_INTERNAL);
    CHECK(store_cert_list(c->w->st, c->vault.name, ST_CERT_ISSUER, NULL, NULL, 1000, 0, &rows,
                          &n));
    for (size_t i = 0; i < n; i++) {
        json_t *it = NULL;
        CHECK(issuer_json(c, &rows[i], 1, &it));
        ENSURE(json_array_append_new(items, it) == 0, MV_ERR_INTERNAL);
    }
    page = json_pack("{s:o,s:n}", "value", items, "nextLink");
    items = NULL;
    ENSURE(page != NULL, MV_ERR_INTERNAL);
    vault_reply_json(c, 200, page);
    page = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    json_decref(items);
    json_decref(page);
    st_certobjs_free(rows, n);
}

static mv_rc contacts_json(const struct vault_ctx *c, const char *doc, json_t **out)
{
    mv_rc rc = MV_OK;
    char u[MV_MAX_URL + 32];
    json_t *d = json_loads(doc, 0, NULL);
    ENSURE(d != NULL, MV_ERR_INTERNAL);
    CHECK(vault_cat(u, sizeof u, c->url, "/certificates/contacts", (char *)NULL));
    *out = json_pack("{s:s,s:O}", "id", u, "contacts", json_object_get(d, "contacts"));
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    json_decref(d);
    return rc;
}

static void contacts_not_found(struct vault_ctx *c)
{
    vault_error(c, 404, "ContactsNotFound", "Contacts not found", NULL);
}

void vault_op_cert_contacts_get(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *j = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_CONTACTS, "", NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND)
        contacts_not_found(c);
    else if (rc != MV_OK || (rc = contacts_json(c, o.doc, &j)) != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, j);
        j = NULL;
    }
    json_decref(j);
    st_certobj_clear(&o);
}

void vault_op_cert_contacts_put(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL, *list = NULL, *doc = NULL, *j = NULL;
    const char *why = NULL;
    char *text = NULL;
    if (parse_body(c, &body, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto done;
    }
    const json_t *in = json_object_get(body, "contacts");
    if (!json_is_array(in) || json_array_size(in) > 64) {
        vault_bad_parameter(c, "contacts must be an array of at most 64 contacts.");
        goto done;
    }
    list = json_array();
    ENSURE(list != NULL, MV_ERR_INTERNAL);
    size_t i;
    const json_t *ct;
    json_array_foreach(in, i, ct)
    {
        json_t *one = json_object();
        static const char *const F[] = {"email", "name", "phone"};
        ENSURE(one != NULL, MV_ERR_INTERNAL);
        for (size_t k = 0; k < 3; k++) {
            const json_t *v = json_object_get(ct, F[k]);
            if (json_is_string(v) && json_string_length(v) <= 256)
                set(one, F[k], json_string(json_string_value(v)));
        }
        ENSURE(json_array_append_new(list, one) == 0, MV_ERR_INTERNAL);
    }
    doc = json_pack("{s:O}", "contacts", list);
    ENSURE(doc != NULL, MV_ERR_INTERNAL);
    CHECK(put_doc(c, ST_CERT_CONTACTS, "", "", doc, NULL, mv_now()));
    text = json_dumps(doc, JSON_COMPACT);
    ENSURE(text != NULL, MV_ERR_INTERNAL);
    CHECK(contacts_json(c, text, &j));
    vault_reply_json(c, 200, j);
    j = NULL;
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    free(text);
    json_decref(body);
    json_decref(list);
    json_decref(doc);
    json_decref(j);
}

void vault_op_cert_contacts_delete(struct vault_ctx *c)
{
    struct st_certobj o;
    json_t *j = NULL;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_CONTACTS, "", NULL, 0, &o);
    if (rc == MV_ERR_NOT_FOUND) {
        contacts_not_found(c);
        goto done;
    }
    if (rc == MV_OK)
        rc = contacts_json(c, o.doc, &j);
    if (rc == MV_OK)
        rc = store_cert_remove(c->w->st, c->vault.name, ST_CERT_CONTACTS, "", NULL);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    else {
        vault_reply_json(c, 200, j);
        j = NULL;
    }
done:
    json_decref(j);
    st_certobj_clear(&o);
}

/* ---- auto-renewal (lifetime action AutoRenew), run by the key rotation scheduler ---- */

/* Test-only time source (docs/certificates.md "Auto-renewal"): seconds added to the scheduler's
 * clock for certificates, so a test sees a renewal due months ahead without waiting for it. */
#define CERT_CLOCK_OFFSET_ENV "MIVAULT_TEST_CLOCK_OFFSET_SECS"

static int64_t clock_offset(void)
{
    const char *v = getenv(CERT_CLOCK_OFFSET_ENV);
    int64_t off = 0;
    if (v && *v && mv_parse_i64(v, &off) == MV_OK && off > 0 && off < 100LL * 365 * DAY_SECS)
        return off;
    return 0;
}

/* Is an AutoRenew action of policy due for a version valid nbf..exp at now? */
static int renewal_due(const json_t *policy, int64_t nbf, int64_t exp, int64_t now)
{
    size_t i;
    const json_t *a;
    if (exp <= nbf)
        return 0;
    json_array_foreach(json_object_get(policy, "lifetime_actions"), i, a)
    {
        const char *type =
            json_string_value(json_object_get(json_object_get(a, "action"), "action_type"));
        if (!type || strcmp(type, "AutoRenew") != 0)
            continue;
        const json_t *tr = json_object_get(a, "trigger");
        const json_t *pct = json_object_get(tr, "lifetime_percentage");
        const json_t *days = json_object_get(tr, "days_before_expiry");
        if (json_is_integer(pct) && now >= nbf + (exp - nbf) * json_integer_value(pct) / 100)
            return 1;
        if (json_is_integer(days) && now >= exp - (int64_t)json_integer_value(days) * DAY_SECS)
            return 1;
    }
    return 0;
}

/* A new self-signed version of the certificate under its policy (the same key when the policy
 * says reuse_key), its secret and its key, in one transaction. */
static mv_rc renew_one(struct vault_ctx *c, const struct st_certobj *latest, const json_t *policy,
                       int64_t now, char version[MV_VERSION_LEN + 1])
{
    mv_rc rc = MV_OK;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    STACK_OF(X509) *chain = NULL;
    struct new_version nv;
    json_t *doc = NULL, *attrs = NULL;
    struct certs_spec spec;
    int began = 0;
    memset(&nv, 0, sizeof nv);
    const json_t *kp = json_object_get(policy, "key_props");
    if (json_is_true(json_object_get(kp, "reuse_key")))
        CHECK(open_key(c, latest->name, latest->version, &latest->sealed, &key));
    else
        CHECK(certs_gen_key(json_string_value(json_object_get(kp, "kty")),
                            (int)json_integer_value(json_object_get(kp, "key_size")),
                            json_string_value(json_object_get(kp, "crv")), &key));
    CHECK(vault_cert_policy_spec(policy, &spec));
    CHECK(certs_self_signed(key, &spec, now, &x));
    chain = sk_X509_new_null();
    ENSURE(chain != NULL && sk_X509_push(chain, x) > 0, MV_ERR_INTERNAL);
    x = NULL;
    doc = json_loads(latest->doc, 0, NULL);
    ENSURE(doc != NULL, MV_ERR_INTERNAL);
    attrs = json_pack("{s:b}", "enabled", json_is_true(json_object_get(doc, "enabled")));
    ENSURE(attrs != NULL, MV_ERR_INTERNAL);
    CHECK(mv_hexid(version));
    CHECK(make_version(c, latest->name, version, policy, key, chain, attrs,
                       json_object_get(doc, "tags"), now, &nv));
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(write_version(c, &nv));
    CHECK(store_commit(c->w->st));
    began = 0;
out:
    if (began)
        store_rollback(c->w->st);
    EVP_PKEY_free(key);
    X509_free(x);
    sk_X509_pop_free(chain, X509_free);
    new_version_free(&nv);
    json_decref(doc);
    json_decref(attrs);
    return rc;
}

static void renew_vault(const struct vault_plane *srv, struct store *st, const struct st_vault *v,
                        int64_t now)
{
    struct vault_loop w = {.srv = srv, .st = st};
    struct vault_ctx c;
    char lower[ST_NAME];
    memset(&c, 0, sizeof c);
    c.w = &w;
    c.vault = *v;
    if (mv_copy(lower, sizeof lower, v->name) != MV_OK)
        return;
    mv_lower(lower);
    c.vault_name = lower;
    char after[MV_SECRET_MAX_NAME + 1] = "";
    for (;;) {
        struct st_certobj *ps = NULL;
        size_t n = 0;
        if (store_cert_list(st, v->name, ST_CERT_POLICY, NULL, after[0] ? after : NULL, 100, 0,
                            &ps, &n) != MV_OK) {
            LOG_WARN("certificate renewal: listing policies of %s failed: %s", v->name,
                     mv_last_detail());
            return;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *policy = json_loads(ps[i].doc, 0, NULL);
            struct st_certobj latest;
            memset(&latest, 0, sizeof latest);
            if (policy && strcmp(issuer_of(policy), "Self") == 0 &&
                store_cert_get(st, v->name, ST_CERT_VERSION, ps[i].name, NULL, 0, &latest) ==
                    MV_OK) {
                json_t *doc = json_loads(latest.doc, 0, NULL);
                int64_t nbf = (int64_t)json_integer_value(json_object_get(doc, "nbf"));
                int64_t exp = (int64_t)json_integer_value(json_object_get(doc, "exp"));
                char version[MV_VERSION_LEN + 1];
                const char *claimed = json_string_value(json_object_get(policy, "renewed_from"));
                char *claim = NULL;
                /* one server of many renews a version: it claims it in the policy row first */
                if (doc && renewal_due(policy, nbf, exp, now) &&
                    !(claimed && strcmp(claimed, latest.version) == 0) &&
                    json_object_set_new(policy, "renewed_from", json_string(latest.version)) == 0 &&
                    (claim = json_dumps(policy, JSON_COMPACT)) != NULL &&
                    store_cert_claim(st, v->name, ps[i].name, ps[i].doc, claim) == MV_OK) {
                    if (renew_one(&c, &latest, policy, now, version) == MV_OK)
                        LOG_INFO("certificate renewal: %s/%s renewed as version %s", v->name,
                                 ps[i].name, version);
                    else
                        LOG_WARN("certificate renewal: %s/%s failed: %s", v->name, ps[i].name,
                                 mv_last_detail());
                }
                free(claim);
                json_decref(doc);
            }
            st_certobj_clear(&latest);
            json_decref(policy);
        }
        int more = n == 100 && mv_copy(after, sizeof after, ps[n - 1].name) == MV_OK;
        st_certobjs_free(ps, n);
        if (!more)
            return;
    }
}

void vault_cert_renewal_tick(const struct vault_plane *srv, struct store *st, int64_t now)
{
    struct st_vault *vs = NULL;
    size_t n = 0;
    now += clock_offset();
    if (store_vault_list(st, &vs, &n) != MV_OK) {
        LOG_WARN("certificate renewal: listing vaults failed: %s", mv_last_detail());
        return;
    }
    for (size_t i = 0; i < n; i++)
        renew_vault(srv, st, &vs[i], now);
    free(vs);
}

/* ---- backup and restore ----
 * A backup is {"format":"mivault-certificate-backup","v":1,"name","policy":{...},"versions":
 * [{"version","created","doc":{...},"key": base64url PKCS#8 DER}]} sealed with AES-256-GCM under
 * the data key (AAD "certificate-backup:v1") and sent base64url, as key and secret backups are:
 * only this installation opens it. Restore takes a free name and rebuilds every version with its
 * secret and key in one transaction. Versions still pending are not backed up. */

#define CERT_BACKUP_FORMAT "mivault-certificate-backup"
#define CERT_BACKUP_AAD "certificate-backup:v1"
#define CERT_BACKUP_MAX_PLAIN (VAULT_BACKUP_MAX_B64 / 4 * 3 - AEAD_OVERHEAD)
#define CERT_BACKUP_MAX_VERSIONS 100

static const char CERT_BAD_BLOB[] = "Backup blob is invalid or corrupted";

static mv_rc backup_doc(struct vault_ctx *c, json_t **out)
{
    mv_rc rc = MV_OK;
    struct st_certobj pol, *rows = NULL;
    size_t n = 0;
    json_t *doc = NULL, *versions = json_array();
    memset(&pol, 0, sizeof pol);
    ENSURE(versions != NULL, MV_ERR_INTERNAL);
    CHECK(store_cert_get(c->w->st, c->vault.name, ST_CERT_POLICY, c->name, NULL, 0, &pol));
    CHECK(store_cert_list(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL,
                          CERT_BACKUP_MAX_VERSIONS + 1, 0, &rows, &n));
    ENSURE(n >= 1, MV_ERR_NOT_FOUND);
    ENSURE(n <= CERT_BACKUP_MAX_VERSIONS, MV_ERR_LIMIT);
    for (size_t i = 0; i < n; i++) {
        struct st_certobj full;
        EVP_PKEY *key = NULL;
        mv_buf der, b64;
        memset(&full, 0, sizeof full);
        mv_buf_init(&der, 64 * 1024);
        mv_buf_init(&b64, 128 * 1024);
        json_t *vd = NULL;
        rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, rows[i].version, 0,
                            &full);
        if (rc == MV_OK && full.sealed.len > 0 && !strstr(full.doc, "\"pending\":true")) {
            rc = open_key(c, full.name, full.version, &full.sealed, &key);
            if (rc == MV_OK)
                rc = certs_key_der(key, &der);
            if (rc == MV_OK)
                rc = b64url_encode(&b64, der.p, der.len);
            if (rc == MV_OK) {
                vd = json_pack("{s:s,s:I,s:o,s:s}", "version", full.version, "created",
                               (json_int_t)full.created, "doc", json_loads(full.doc, 0, NULL),
                               "key", b64.p);
                if (!vd || json_array_append_new(versions, vd) != 0)
                    rc = MV_ERR_INTERNAL;
            }
        }
        EVP_PKEY_free(key);
        mv_buf_free_secret(&der);
        mv_buf_free_secret(&b64);
        st_certobj_clear(&full);
        CHECK(rc);
    }
    ENSURE(json_array_size(versions) >= 1, MV_ERR_NOT_FOUND);
    {
        /* restore adds versions in this order: by created, the latest one last, so that the
         * restored latest is the same even when versions share a second */
        struct st_certobj latest;
        memset(&latest, 0, sizeof latest);
        CHECK(store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, c->name, NULL, 0,
                             &latest));
        size_t m = json_array_size(versions);
        for (size_t a = 1; a < m; a++) /* insertion sort by created (stable) */
            for (size_t b = a; b > 0; b--) {
                json_t *x = json_array_get(versions, b - 1), *y = json_array_get(versions, b);
                if (json_integer_value(json_object_get(x, "created")) <=
                    json_integer_value(json_object_get(y, "created")))
                    break;
                json_incref(x);
                json_array_remove(versions, b - 1);
                json_array_insert_new(versions, b, x);
            }
        for (size_t a = 0; a < m; a++) {
            json_t *x = json_array_get(versions, a);
            if (strcmp(json_string_value(json_object_get(x, "version")), latest.version) == 0) {
                json_incref(x);
                json_array_remove(versions, a);
                json_array_append_new(versions, x);
                break;
            }
        }
        st_certobj_clear(&latest);
    }
    doc = json_pack("{s:s,s:i,s:s,s:o,s:o}", "format", CERT_BACKUP_FORMAT, "v", 1, "name", pol.name,
                    "policy", json_loads(pol.doc, 0, NULL), "versions", versions);
    versions = NULL; /* the pack took it, or released it on failure */
    ENSURE(doc != NULL, MV_ERR_INTERNAL);
    *out = doc;
    doc = NULL;
out:
    if (versions)
        vault_json_wipe(versions);
    json_decref(versions);
    json_decref(doc);
    st_certobj_clear(&pol);
    st_certobjs_free(rows, n);
    return rc;
}

void vault_op_cert_backup(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    json_t *doc = NULL;
    char *plain = NULL;
    rc = backup_doc(c, &doc);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        cert_not_found(c, NULL);
        goto out;
    }
    if (rc == MV_ERR_LIMIT) {
        rc = MV_OK;
        vault_bad_parameter(c, "The certificate has too many versions to back up.");
        goto out;
    }
    CHECK(rc);
    plain = json_dumps(doc, JSON_COMPACT);
    ENSURE(plain != NULL, MV_ERR_INTERNAL);
    size_t plen = strlen(plain);
    if (plen > CERT_BACKUP_MAX_PLAIN) {
        vault_bad_parameter(c, "The certificate is too large to back up.");
        goto out;
    }
    CHECK(vault_backup_reply(c, CERT_BACKUP_AAD, plain, plen));
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    if (plain) {
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
    }
    if (doc)
        vault_json_wipe(doc);
    json_decref(doc);
}

mv_rc vault_cert_backup_open(const unsigned char *key, const char *body, size_t len, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *req = NULL, *doc = NULL;
    mv_buf raw, plain;
    mv_buf_init(&raw, VAULT_BACKUP_MAX_B64 / 4 * 3 + 3);
    mv_buf_init(&plain, VAULT_BACKUP_MAX_B64);
    *out = NULL;
    ENSURE(body && len > 0 && vault_json_depth_ok(body, len, 16), MV_ERR_BAD_REQUEST);
    req = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *val = json_object_get(req, "value");
    ENSURE(json_is_object(req) && json_is_string(val), MV_ERR_BAD_REQUEST);
    ENSURE(json_string_length(val) <= VAULT_BACKUP_MAX_B64, MV_ERR_BAD_REQUEST);
    CHECK(b64url_decode(&raw, json_string_value(val), json_string_length(val)));
    rc = aead_open(key, CERT_BACKUP_AAD, raw.p, raw.len, &plain);
    ENSURE_MSG(rc == MV_OK, MV_ERR_BAD_REQUEST, "certificate backup blob does not open");
    ENSURE(vault_json_depth_ok(plain.p, plain.len, 16), MV_ERR_BAD_REQUEST);
    doc = json_loadb(plain.p, plain.len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *vs = json_object_get(doc, "versions");
    ENSURE(doc && json_is_object(json_object_get(doc, "policy")) && json_is_array(vs) &&
               json_array_size(vs) >= 1 && json_array_size(vs) <= CERT_BACKUP_MAX_VERSIONS &&
               vault_name_ok(json_string_value(json_object_get(doc, "name"))) &&
               json_is_string(json_object_get(doc, "format")) &&
               strcmp(json_string_value(json_object_get(doc, "format")), CERT_BACKUP_FORMAT) == 0,
           MV_ERR_BAD_REQUEST);
    *out = doc;
    doc = NULL;
out:
    json_decref(req);
    mv_buf_free(&raw);
    mv_buf_free_secret(&plain);
    if (doc)
        vault_json_wipe(doc);
    json_decref(doc);
    return rc;
}

static mv_rc restore_version(struct vault_ctx *c, const char *name, const json_t *policy,
                             const json_t *v)
{
    mv_rc rc = MV_OK;
    EVP_PKEY *key = NULL;
    STACK_OF(X509) *chain = NULL;
    struct new_version nv;
    json_t *attrs = NULL;
    mv_buf der;
    mv_buf_init(&der, 64 * 1024);
    memset(&nv, 0, sizeof nv);
    const char *version = json_string_value(json_object_get(v, "version"));
    const char *k = json_string_value(json_object_get(v, "key"));
    const json_t *doc = json_object_get(v, "doc");
    const char *pem = json_string_value(json_object_get(doc, "chain"));
    const json_t *created = json_object_get(v, "created");
    ENSURE(version && vault_version_ok(version) && version[0] && k && pem &&
               json_is_integer(created),
           MV_ERR_BAD_REQUEST);
    CHECK(b64url_decode(&der, k, strlen(k)));
    CHECK(certs_key_from_der((const unsigned char *)der.p, der.len, &key));
    CHECK(certs_chain_from_pem(pem, strlen(pem), &chain));
    ENSURE(certs_key_matches(sk_X509_value(chain, 0), key), MV_ERR_BAD_REQUEST);
    attrs = json_pack("{s:b}", "enabled", !json_is_false(json_object_get(doc, "enabled")));
    ENSURE(attrs != NULL, MV_ERR_INTERNAL);
    CHECK(make_version(c, name, version, policy, key, chain, attrs, json_object_get(doc, "tags"),
                       (int64_t)json_integer_value(created), &nv));
    CHECK(write_version(c, &nv));
out:
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    new_version_free(&nv);
    json_decref(attrs);
    mv_buf_free_secret(&der);
    return rc;
}

void vault_op_cert_restore(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    json_t *doc = NULL, *policy = NULL;
    struct st_certobj o;
    const char *why = NULL;
    int began = 0;
    memset(&o, 0, sizeof o);
    rc = vault_cert_backup_open(c->w->srv->data_key, c->req->body.p, c->req->body.len, &doc);
    if (rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT) {
        vault_bad_parameter(c, CERT_BAD_BLOB);
        return;
    }
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    const char *name = json_string_value(json_object_get(doc, "name"));
    CHECK(mv_copy(c->name, sizeof c->name, name));
    if (store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, name, NULL, 0, &o) == MV_OK ||
        is_deleted_name(c)) {
        char msg[256];
        if (mv_fmt(msg, sizeof msg, "There is already a certificate named %s in this vault.",
                   name) != MV_OK)
            msg[0] = '\0';
        vault_error(c, 409, "Conflict", msg, NULL);
        goto done;
    }
    rc = vault_cert_policy_normalize(json_object_get(doc, "policy"), NULL, mv_now(), &policy, &why);
    if (rc == MV_ERR_BAD_REQUEST) {
        rc = MV_OK;
        vault_bad_parameter(c, CERT_BAD_BLOB);
        goto done;
    }
    CHECK(rc);
    CHECK(store_begin(c->w->st));
    began = 1;
    CHECK(put_doc(c, ST_CERT_POLICY, name, "", policy, NULL, mv_now()));
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(doc, "versions"), i, v)
    CHECK(restore_version(c, name, policy, v));
    CHECK(store_commit(c->w->st));
    began = 0;
    st_certobj_clear(&o);
    CHECK(store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, name, NULL, 0, &o));
    reply_bundle(c, 200, &o, B_POLICY);
out:
    if (began)
        store_rollback(c->w->st);
    if (rc == MV_ERR_BAD_REQUEST)
        vault_bad_parameter(c, CERT_BAD_BLOB);
    else if (rc == MV_ERR_CONFLICT)
        vault_error(c, 409, "Conflict", "The certificate's secret or key name is taken.", NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
done:
    vault_json_wipe(doc);
    json_decref(doc);
    json_decref(policy);
    st_certobj_clear(&o);
}

/* ---- the managed secret and key (docs/certificates.md, "Managed secret and key") ---- */

mv_rc vault_cert_owns(struct vault_ctx *c, const char *name, int *owned)
{
    return vault_cert_owns_as(c, name, 0, owned);
}

mv_rc vault_cert_owns_as(struct vault_ctx *c, const char *name, int deleted, int *owned)
{
    struct st_certobj o;
    memset(&o, 0, sizeof o);
    mv_rc rc = store_cert_get(c->w->st, c->vault.name, ST_CERT_VERSION, name, NULL, deleted, &o);
    st_certobj_clear(&o);
    *owned = rc == MV_OK;
    return rc == MV_ERR_NOT_FOUND ? MV_OK : rc;
}

int vault_managed_key(struct vault_ctx *c, int managed)
{
    int owned = 1; /* a store error refuses: the safe side */
    if (!managed)
        return 0;
    if (vault_cert_owns(c, c->name, &owned) != MV_OK)
        return 1;
    return owned;
}

int vault_deleted_managed_refused(struct vault_ctx *c, const char *what)
{
    int owned = 0;
    mv_rc rc = vault_cert_owns_as(c, c->name, 1, &owned);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    else if (owned)
        vault_managed_forbidden(c, what, c->name);
    return rc != MV_OK || owned;
}

void vault_managed_forbidden(struct vault_ctx *c, const char *what, const char *name)
{
    char msg[512];
    /* Our wording (the reference has no observed one): Azure refuses these writes with 403. */
    if (mv_fmt(msg, sizeof msg,
               "%s %s is managed by a certificate. It can only be changed or deleted through the "
               "certificate %s.",
               what, name, name) != MV_OK)
        msg[0] = '\0';
    vault_error(c, 403, "Forbidden", msg, NULL);
}
