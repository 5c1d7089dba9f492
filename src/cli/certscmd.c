/* certscmd.c: `mivault keyvault certificate ...`, az-like (docs/cli.md): a workload's verbs on the
 * vault's certificates API (docs/certificates.md) through libmivault's request engine, as the
 * key verbs (keyscmd.c). create waits for the pending operation as az's poller does; import
 * takes a PFX or PEM file; download writes the certificate (no key) as PEM or DER. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "client/client_internal.h"
#include "common/b64.h"
#include "common/util.h"
#include "mivault/mivault.h"

#define EXIT_USAGE 2
#define CERT_FILE_MAX (1024 * 1024)
#define POLICY_MAX (64 * 1024)
#define CREATE_WAIT_MS 30000

static const char *const CERT_COLS[] = {"name", "x5t", "attributes.enabled", "attributes.created",
                                        "attributes.updated", "attributes.exp", NULL};
static const char *const DELETED_COLS[] = {"name", "recoveryId", "deletedDate", "scheduledPurgeDate", NULL};
static const char *const PENDING_COLS[] = {"name", "status", "issuer.name", "status_details", NULL};

/* What `az keyvault certificate get-default-policy` gives, in the REST API's field names (which
 * `--policy` passes to the vault as they are). */
static json_t *default_policy(void)
{
    return json_pack("{s:{s:b, s:s, s:i, s:b}, s:{s:s}, s:{s:s, s:[ss], s:[ssssss], s:i},"
                     " s:[{s:{s:i}, s:{s:s}}], s:{s:s}}",
                     "key_props", "exportable", 1, "kty", "RSA", "key_size", 2048, "reuse_key", 1,
                     "secret_props", "contentType", "application/x-pkcs12",
                     "x509_props", "subject", "CN=CLIGetDefaultPolicy", "ekus", "1.3.6.1.5.5.7.3.1",
                     "1.3.6.1.5.5.7.3.2", "key_usage", "cRLSign", "dataEncipherment", "digitalSignature",
                     "keyEncipherment", "keyAgreement", "keyCertSign", "validity_months", 12,
                     "lifetime_actions", "trigger", "days_before_expiry", 90, "action", "action_type", "AutoRenew",
                     "issuer", "name", "Self");
}

int verb_cert_default_policy(struct cli *c)
{
    json_t *p = default_policy();
    if (!p)
        return cli_error("%s: out of memory", c->verb);
    cli_print(c, p, NULL);
    return 0;
}

/* az's own policy form (what `az keyvault certificate get-default-policy` prints: camelCase, the
 * SDK's model names) → the REST API's. Each pair: az name, REST name; nulls are dropped. */
static const char *const AZ_NAMES[][2] = {
    {"issuerParameters", "issuer"}, {"certificateType", "cty"}, {"certificateTransparency", "cert_transparency"},
    {"keyProperties", "key_props"}, {"keyType", "kty"}, {"keySize", "key_size"}, {"curve", "crv"},
    {"reuseKey", "reuse_key"}, {"secretProperties", "secret_props"},
    {"x509CertificateProperties", "x509_props"}, {"keyUsage", "key_usage"},
    {"validityInMonths", "validity_months"}, {"subjectAlternativeNames", "sans"}, {"dnsNames", "dns_names"},
    {"lifetimeActions", "lifetime_actions"}, {"daysBeforeExpiry", "days_before_expiry"},
    {"lifetimePercentage", "lifetime_percentage"}, {"actionType", "action_type"},
};

static json_t *from_az(json_t *v, int depth)
{
    if (depth > 8)
        return json_null();
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it) json_array_append_new(a, from_az(it, depth + 1));
        return a;
    }
    if (!json_is_object(v))
        return json_incref(v);
    json_t *o = json_object();
    const char *k;
    json_t *it;
    json_object_foreach(v, k, it)
    {
        if (json_is_null(it))
            continue;
        const char *name = k;
        for (size_t i = 0; i < sizeof AZ_NAMES / sizeof AZ_NAMES[0]; i++)
            if (strcmp(k, AZ_NAMES[i][0]) == 0)
                name = AZ_NAMES[i][1];
        json_object_set_new(o, name, from_az(it, depth + 1));
    }
    return o;
}

/* --policy @FILE or JSON text (az's forms: its camelCase policy, or the REST API's); NULL and 0
 * when absent. */
static int policy_option(const struct cli *c, json_t **out)
{
    const char *v = cli_get(c, "policy");
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (!v)
        return 0;
    if (v[0] == '@') {
        if (mv_read_file(v + 1, POLICY_MAX, &text, &len) != MV_OK) {
            cli_error("%s: cannot read %s", c->verb, v + 1);
            return EXIT_USAGE;
        }
        v = text;
    }
    json_error_t err;
    *out = json_loads(v, 0, &err);
    free(text);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        cli_error("%s: --policy is a JSON object, or @FILE holding one (see certificate get-default-policy)",
                  c->verb);
        return EXIT_USAGE;
    }
    if (json_object_get(*out, "x509CertificateProperties") || json_object_get(*out, "keyProperties") ||
        json_object_get(*out, "issuerParameters")) {
        json_t *rest = from_az(*out, 0);
        json_decref(*out);
        *out = rest;
    }
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int verb_cert_create(struct cli *c)
{
    const char *name;
    json_t *policy = NULL;
    int status = cli_kv_need_name(c, &name);
    if (status || (status = policy_option(c, &policy)) != 0)
        return status;
    if (!policy && !(policy = default_policy()))
        return cli_error("%s: out of memory", c->verb);
    const char *issuer = json_string_value(json_object_get(json_object_get(policy, "issuer"), "name"));
    int wait = !(issuer && strcmp(issuer, "Unknown") == 0);
    json_t *body = json_pack("{s:o}", "policy", policy);
    if (!body)
        return cli_error("%s: out of memory", c->verb);
    if ((status = cli_attrs_tags(c, body, 1)) != 0) {
        json_decref(body);
        return status;
    }
    struct cli_kv s;
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(body);
        return status;
    }
    char path[MV_SECRET_MAX_NAME + 32], pending[MV_SECRET_MAX_NAME + 32];
    char *text = json_dumps(body, JSON_COMPACT), *out = NULL;
    json_decref(body);
    if (mv_fmt(path, sizeof path, "/certificates/%s/create", name) != MV_OK ||
        mv_fmt(pending, sizeof pending, "/certificates/%s/pending", name) != MV_OK || !text) {
        status = cli_error("%s: name too long", c->verb);
        goto done;
    }
    /* 202 with the pending operation; az's poller then GETs it until it is no longer inProgress
     * (issuer Unknown: it waits for a merge, so az returns the operation at once). */
    if ((status = cli_kv_request(&s, "POST", path, text, 202, &out)) != 0)
        goto done;
    for (long waited = 0; wait; waited += 250) {
        json_t *op = out ? json_loads(out, 0, NULL) : NULL;
        const char *st = json_string_value(json_object_get(op, "status"));
        int busy = st && strcmp(st, "inProgress") == 0;
        json_decref(op);
        if (!busy)
            break;
        if (waited >= CREATE_WAIT_MS) {
            status = cli_error("%s: the operation is still in progress (certificate pending show)", c->verb);
            goto done;
        }
        if (waited)
            sleep_ms(250);
        mv_free(out);
        out = NULL;
        if ((status = cli_kv_request(&s, "GET", pending, NULL, 200, &out)) != 0)
            goto done;
    }
    json_t *op = out ? json_loads(out, 0, NULL) : NULL;
    const char *st = json_string_value(json_object_get(op, "status"));
    int completed = st && strcmp(st, "completed") == 0;
    json_decref(op);
    if (completed) { /* what az prints: the certificate */
        mv_free(out);
        out = NULL;
        char get[MV_SECRET_MAX_NAME + 32];
        if (mv_fmt(get, sizeof get, "/certificates/%s/", name) != MV_OK ||
            (status = cli_kv_request(&s, "GET", get, NULL, 200, &out)) != 0)
            goto done;
        status = cli_kv_print(c, out, CERT_COLS);
    } else {
        status = cli_kv_print(c, out, PENDING_COLS);
        if (status == 0 && wait) /* failed or cancelled */
            status = 1;
    }
    out = NULL;
done:
    mv_free(out);
    free(text);
    cli_kv_close(&s);
    return status;
}

int verb_cert_show(struct cli *c) { return cli_kv_named(c, "GET", "/certificates/%s/%s", 200, CERT_COLS, 1); }
int verb_cert_delete(struct cli *c) { return cli_kv_named(c, "DELETE", "/certificates/%s", 200, DELETED_COLS, 0); }
int verb_cert_recover(struct cli *c)
{
    return cli_kv_named(c, "POST", "/deletedcertificates/%s/recover", 200, CERT_COLS, 0);
}
int verb_cert_purge(struct cli *c) { return cli_kv_named(c, "DELETE", "/deletedcertificates/%s", 204, NULL, 0); }
int verb_cert_show_deleted(struct cli *c)
{
    return cli_kv_named(c, "GET", "/deletedcertificates/%s", 200, DELETED_COLS, 0);
}
int verb_cert_pending_show(struct cli *c)
{
    return cli_kv_named(c, "GET", "/certificates/%s/pending", 200, PENDING_COLS, 0);
}
int verb_cert_pending_delete(struct cli *c)
{
    return cli_kv_named(c, "DELETE", "/certificates/%s/pending", 200, PENDING_COLS, 0);
}
int verb_cert_list(struct cli *c) { return cli_kv_listing(c, "/certificates?maxresults=25%s", CERT_COLS, 0); }
int verb_cert_list_versions(struct cli *c)
{
    return cli_kv_listing(c, "/certificates/%s/versions?maxresults=25", CERT_COLS, 1);
}
int verb_cert_list_deleted(struct cli *c)
{
    return cli_kv_listing(c, "/deletedcertificates?maxresults=25%s", DELETED_COLS, 0);
}

/* 1 if the file is PEM text (a "-----BEGIN" line anywhere near the start). */
static int is_pem(const char *p, size_t n)
{
    return n > 10 && memchr(p, '\0', n) == NULL && strstr(p, "-----BEGIN ") != NULL;
}

int verb_cert_import(struct cli *c)
{
    const char *name, *file, *pwd = cli_get(c, "password");
    json_t *policy = NULL;
    char *data = NULL;
    size_t len = 0;
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    if ((status = policy_option(c, &policy)) != 0)
        return status;
    if (mv_read_file(file, CERT_FILE_MAX, &data, &len) != MV_OK) {
        json_decref(policy);
        return cli_error("%s: cannot read %s (or it is over %d bytes)", c->verb, file, CERT_FILE_MAX);
    }
    /* docs/certificates.md: PEM goes as its text (as az sends it), a PFX as standard base64. */
    int pem = is_pem(data, len);
    mv_buf enc;
    mv_buf_init(&enc, 2 * CERT_FILE_MAX);
    json_t *body = NULL;
    if (pem)
        body = json_pack("{s:s%}", "value", data, len);
    else if (b64_encode(&enc, data, len) == MV_OK)
        body = json_pack("{s:s}", "value", enc.p ? enc.p : "");
    mv_buf_free_secret(&enc);
    OPENSSL_cleanse(data, len);
    free(data);
    if (!body) {
        json_decref(policy);
        return cli_error("%s: %s is neither PEM text nor a PFX", c->verb, file);
    }
    if (pwd)
        json_object_set_new(body, "pwd", json_string(pwd));
    if (!policy)
        policy = json_pack("{s:{s:s}}", "secret_props", "contentType",
                           pem ? "application/x-pem-file" : "application/x-pkcs12");
    json_object_set_new(body, "policy", policy);
    if ((status = cli_attrs_tags(c, body, 1)) != 0) {
        json_decref(body);
        return status;
    }
    char path[MV_SECRET_MAX_NAME + 32];
    struct cli_kv s;
    if (mv_fmt(path, sizeof path, "/certificates/%s/import", name) != MV_OK) {
        json_decref(body);
        return cli_error("%s: name too long", c->verb);
    }
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(body);
        return status;
    }
    status = cli_kv_send(c, &s, "POST", path, body, 200, CERT_COLS);
    cli_kv_close(&s);
    return status;
}

int verb_cert_download(struct cli *c)
{
    const char *name, *file, *enc = cli_get(c, "encoding");
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    if (!enc)
        enc = "PEM";
    if (strcmp(enc, "PEM") != 0 && strcmp(enc, "DER") != 0) {
        cli_error("%s: --encoding takes PEM or DER", c->verb);
        return EXIT_USAGE;
    }
    if (mv_file_exists(file)) /* as az: never overwrite */
        return cli_error("%s: %s exists", c->verb, file);
    const char *ver = cli_get(c, "version");
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 32];
    if (mv_fmt(path, sizeof path, "/certificates/%s/%s", name, ver ? ver : "") != MV_OK)
        return cli_error("%s: name too long", c->verb);
    struct cli_kv s;
    char *out = NULL;
    if ((status = cli_kv_open(c, &s)) != 0)
        return status;
    status = cli_kv_request(&s, "GET", path, NULL, 200, &out);
    cli_kv_close(&s);
    if (status)
        return status;
    json_t *j = out ? json_loads(out, 0, NULL) : NULL;
    mv_free(out);
    json_t *cer = json_object_get(j, "cer");
    mv_buf der, pem;
    mv_buf_init(&der, CERT_FILE_MAX);
    mv_buf_init(&pem, 2 * CERT_FILE_MAX);
    if (!json_is_string(cer) || b64_decode(&der, json_string_value(cer), json_string_length(cer)) != MV_OK) {
        status = cli_error("%s: the vault's reply has no certificate", c->verb);
    } else if (strcmp(enc, "DER") == 0) {
        if (mv_write_file(file, der.p, der.len, 0644) != MV_OK)
            status = cli_error("%s: cannot write %s", c->verb, file);
    } else {
        /* PEM: the base64 in 64-column lines. */
        const char *b = json_string_value(cer);
        size_t n = json_string_length(cer);
        mv_rc rc = mv_buf_adds(&pem, "-----BEGIN CERTIFICATE-----\n");
        for (size_t i = 0; rc == MV_OK && i < n; i += 64) {
            rc = mv_buf_add(&pem, b + i, n - i < 64 ? n - i : 64);
            if (rc == MV_OK)
                rc = mv_buf_adds(&pem, "\n");
        }
        if (rc == MV_OK)
            rc = mv_buf_adds(&pem, "-----END CERTIFICATE-----\n");
        if (rc != MV_OK || mv_write_file(file, pem.p, pem.len, 0644) != MV_OK)
            status = cli_error("%s: cannot write %s", c->verb, file);
    }
    mv_buf_free(&der);
    mv_buf_free(&pem);
    json_decref(j);
    return status;
}

/* The certificates of a PEM file (each block's base64, newlines dropped), or one DER certificate
 * (its standard base64), as the x5c array of a merge. NULL if the file holds neither. */
static json_t *x5c_of(const char *data, size_t len)
{
    static const char BEGIN[] = "-----BEGIN CERTIFICATE-----", END[] = "-----END CERTIFICATE-----";
    json_t *a = json_array();
    mv_buf b;
    mv_buf_init(&b, 2 * CERT_FILE_MAX);
    if (!memchr(data, '\0', len) && strstr(data, BEGIN)) {
        for (const char *p = strstr(data, BEGIN); p; p = strstr(p, BEGIN)) {
            p += sizeof BEGIN - 1;
            const char *e = strstr(p, END);
            if (!e)
                break;
            mv_buf_reset(&b);
            for (; p < e; p++)
                if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t' && mv_buf_add(&b, p, 1) != MV_OK)
                    break;
            json_array_append_new(a, json_string(b.p ? b.p : ""));
            p = e + sizeof END - 1;
        }
    } else if (len > 0 && (unsigned char)data[0] == 0x30 && b64_encode(&b, data, len) == MV_OK) {
        json_array_append_new(a, json_string(b.p));
    }
    mv_buf_free(&b);
    if (json_array_size(a) == 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

int verb_cert_pending_merge(struct cli *c)
{
    const char *name, *file;
    char *data = NULL;
    size_t len = 0;
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    if (mv_read_file(file, CERT_FILE_MAX, &data, &len) != MV_OK)
        return cli_error("%s: cannot read %s (or it is over %d bytes)", c->verb, file, CERT_FILE_MAX);
    json_t *x5c = x5c_of(data, len);
    free(data);
    if (!x5c)
        return cli_error("%s: %s holds no certificate (PEM or DER)", c->verb, file);
    json_t *body = json_pack("{s:o}", "x5c", x5c);
    if (!body || (status = cli_attrs_tags(c, body, 0)) != 0) {
        json_decref(body);
        return status ? status : cli_error("%s: out of memory", c->verb);
    }
    char path[MV_SECRET_MAX_NAME + 48];
    struct cli_kv s;
    if (mv_fmt(path, sizeof path, "/certificates/%s/pending/merge", name) != MV_OK) {
        json_decref(body);
        return cli_error("%s: name too long", c->verb);
    }
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(body);
        return status;
    }
    /* docs/certificates.md: 201 with the certificate. */
    status = cli_kv_send(c, &s, "POST", path, body, 201, CERT_COLS);
    cli_kv_close(&s);
    return status;
}

/* az keyvault certificate set-attributes: PATCH /certificates/{name}/{version} with
 * attributes.enabled, tags and, if given, the policy. */
int verb_cert_set_attributes(struct cli *c)
{
    const char *name, *enabled = cli_get(c, "enabled");
    json_t *policy = NULL;
    int status = cli_kv_need_name(c, &name);
    if (status || (status = policy_option(c, &policy)) != 0)
        return status;
    json_t *body = json_object();
    if (!body) {
        json_decref(policy);
        return cli_error("%s: out of memory", c->verb);
    }
    if (policy)
        json_object_set_new(body, "policy", policy);
    if ((status = cli_attrs_tags(c, body, 0)) != 0) {
        json_decref(body);
        return status;
    }
    if (enabled) {
        if (strcmp(enabled, "true") != 0 && strcmp(enabled, "false") != 0) {
            json_decref(body);
            cli_error("%s: --enabled takes true or false", c->verb);
            return EXIT_USAGE;
        }
        json_t *attrs = json_object_get(body, "attributes");
        if (!attrs) {
            attrs = json_object();
            json_object_set_new(body, "attributes", attrs);
        }
        json_object_set_new(attrs, "enabled", json_boolean(strcmp(enabled, "true") == 0));
    }
    const char *ver = cli_get(c, "version");
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 32];
    struct cli_kv s;
    if (mv_fmt(path, sizeof path, "/certificates/%s/%s", name, ver ? ver : "") != MV_OK) {
        json_decref(body);
        return cli_error("%s: name too long", c->verb);
    }
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(body);
        return status;
    }
    status = cli_kv_send(c, &s, "PATCH", path, body, 200, CERT_COLS);
    cli_kv_close(&s);
    return status;
}

int verb_cert_policy_show(struct cli *c)
{
    return cli_kv_named(c, "GET", "/certificates/%s/policy", 200, NULL, 0);
}

/* az keyvault certificate set-attributes --policy's sibling: PATCH /certificates/{name}/policy. */
int verb_cert_policy_update(struct cli *c)
{
    const char *name;
    json_t *policy = NULL;
    int status = cli_kv_need_name(c, &name);
    if (status || (status = policy_option(c, &policy)) != 0)
        return status;
    if (!policy) {
        cli_error("%s: --policy is required", c->verb);
        return EXIT_USAGE;
    }
    char path[MV_SECRET_MAX_NAME + 32];
    struct cli_kv s;
    if (mv_fmt(path, sizeof path, "/certificates/%s/policy", name) != MV_OK) {
        json_decref(policy);
        return cli_error("%s: name too long", c->verb);
    }
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(policy);
        return status;
    }
    status = cli_kv_send(c, &s, "PATCH", path, policy, 200, NULL);
    cli_kv_close(&s);
    return status;
}
