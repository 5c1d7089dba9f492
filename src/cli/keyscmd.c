/* keyscmd.c: `mivault keyvault key ...`, az-like (docs/cli.md). A workload's verbs: the token comes
 * from the agent (IMDS) and the vault is reached through its challenge, with libmivault; the
 * vault checks everything. The cryptographic operations go through the library's byte API
 * (mv_key_sign, ...); the others are one request (or a paged list) on the same vault client.
 *
 * Bytes on the command line are base64 (standard or base64url); -o table shows times in ISO 8601. */
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
#define KEY_MAX_BYTES (64 * 1024)
#define BACKUP_MAX_BYTES (4 * 1024 * 1024)

static const char *const KEY_COLS[] = {"name", "key.kty", "key.crv", "attributes.enabled", "attributes.created",
                                       "attributes.updated", "attributes.exp", NULL};
static const char *const ITEM_COLS[] = {"name", "attributes.enabled", "attributes.created", "attributes.updated",
                                        "attributes.exp", "managed", NULL};
static const char *const DELETED_COLS[] = {"name", "recoveryId", "deletedDate", "scheduledPurgeDate", NULL};
static const char *const OP_COLS[] = {"algorithm", "kid", "result", NULL};

/* One request on the session's engine; *json gets the reply text (NULL for an empty one). */
int cli_kv_request(struct cli_kv *s, const char *method, const char *path, const char *body, long expect,
                      char **json)
{
    mv_buf b;
    mv_buf_init(&b, 0);
    client_begin();
    mv_rc rc = client_kv_call(s->sc, method, path, body, expect, &b);
    if (rc != MV_OK) {
        mv_buf_free_secret(&b);
        return cli_kv_report(client_end(rc));
    }
    *json = b.len ? mv_buf_take(&b) : NULL;
    mv_buf_free(&b);
    return 0;
}

int cli_kv_list(struct cli_kv *s, const char *path, const char *const *cols, const struct cli *c)
{
    char *out = NULL;
    client_begin();
    mv_rc rc = client_list(s->sc, path, &out);
    if (rc != MV_OK)
        return cli_kv_report(client_end(rc));
    return cli_kv_print(c, out, cols);
}

/* --name checked as Key Vault names are (so it needs no escaping in a path). */
int cli_kv_need_name(const struct cli *c, const char **name)
{
    if (cli_require(c, "name", name) != MV_OK)
        return EXIT_USAGE;
    if (!client_valid_name(*name, MV_SECRET_MAX_NAME, 1)) {
        cli_error("%s: --name is 1-127 characters of 0-9, a-z, A-Z and '-'", c->verb);
        return EXIT_USAGE;
    }
    const char *v = cli_get(c, "version");
    if (v && !client_valid_name(v, CLIENT_MAX_VERSION, 0)) {
        cli_error("%s: --version is letters and digits", c->verb);
        return EXIT_USAGE;
    }
    return 0;
}

/* A time option: Unix seconds, or ISO 8601 "YYYY-MM-DD[THH:MM[:SS]][Z]" (UTC). */
int cli_parse_time(const char *s, long long *out)
{
    if (*s && strspn(s, "0123456789") == strlen(s) && strlen(s) <= 12) {
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    static const char *const FMTS[] = {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%MZ",
                                       "%Y-%m-%dT%H:%M", "%Y-%m-%d", NULL};
    for (int i = 0; FMTS[i]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, FMTS[i], &tm);
        if (end && !*end) {
            *out = (long long)timegm(&tm);
            return 0;
        }
    }
    return -1;
}

/* --disabled, --expires, --not-before → attributes; --tags k=v ... → tags. 0 or EXIT_USAGE. */
int cli_attrs_tags(const struct cli *c, json_t *body, int with_enabled)
{
    json_t *attrs = json_object();
    const char *exp = cli_get(c, "expires"), *nbf = cli_get(c, "not-before");
    long long t;
    if (with_enabled)
        json_object_set_new(attrs, "enabled", json_boolean(!cli_flag(c, "disabled")));
    if (exp) {
        if (cli_parse_time(exp, &t)) {
            json_decref(attrs);
            cli_error("%s: --expires takes ISO 8601 (2027-01-31T00:00:00Z) or Unix seconds", c->verb);
            return EXIT_USAGE;
        }
        json_object_set_new(attrs, "exp", json_integer(t));
    }
    if (nbf) {
        if (cli_parse_time(nbf, &t)) {
            json_decref(attrs);
            cli_error("%s: --not-before takes ISO 8601 (2027-01-31T00:00:00Z) or Unix seconds", c->verb);
            return EXIT_USAGE;
        }
        json_object_set_new(attrs, "nbf", json_integer(t));
    }
    if (json_object_size(attrs))
        json_object_set(body, "attributes", attrs);
    json_decref(attrs);
    const char *tags[CLI_MAX_OPTS];
    int n = cli_get_all(c, "tags", tags, CLI_MAX_OPTS);
    if (n > 0) {
        json_t *t_o = json_object();
        for (int i = 0; i < n; i++) {
            const char *eq = strchr(tags[i], '=');
            char key[256];
            size_t kl = eq ? (size_t)(eq - tags[i]) : strlen(tags[i]);
            if (kl == 0 || kl >= sizeof key) {
                json_decref(t_o);
                cli_error("%s: --tags takes KEY=VALUE ...", c->verb);
                return EXIT_USAGE;
            }
            memcpy(key, tags[i], kl);
            key[kl] = '\0';
            json_object_set_new(t_o, key, json_string(eq ? eq + 1 : ""));
        }
        json_object_set_new(body, "tags", t_o);
    }
    return 0;
}

/* Sends body (stolen) and prints the reply. */
int cli_kv_send(struct cli *c, struct cli_kv *s, const char *method, const char *path, json_t *body,
                     long expect, const char *const *cols)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *out = NULL;
    json_decref(body);
    int status = cli_kv_request(s, method, path, text, expect, &out);
    free(text);
    if (status)
        return status;
    if (!out)
        return 0;
    return cli_kv_print(c, out, cols);
}

int verb_key_create(struct cli *c)
{
    const char *name, *kty = cli_get(c, "kty"), *size = cli_get(c, "size"), *curve = cli_get(c, "curve");
    const char *prot = cli_get(c, "protection");
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (!kty)
        kty = curve ? "EC" : "RSA";
    if (prot && strcmp(prot, "software") != 0 && strcmp(prot, "hsm") != 0) {
        cli_error("%s: --protection takes software or hsm", c->verb);
        return EXIT_USAGE;
    }
    char ktybuf[16];
    if (mv_fmt(ktybuf, sizeof ktybuf, "%s%s", kty, prot && strcmp(prot, "hsm") == 0 && !strstr(kty, "-HSM")
                                                      ? "-HSM" : "") != MV_OK) {
        cli_error("%s: --kty takes RSA, RSA-HSM, EC or EC-HSM", c->verb);
        return EXIT_USAGE;
    }
    json_t *body = json_pack("{s:s}", "kty", ktybuf);
    if (size) {
        char *end = NULL;
        long n = strtol(size, &end, 10);
        if (!*size || *end || n <= 0 || n > 16384) {
            json_decref(body);
            cli_error("%s: --size takes a number of bits (2048, 3072, 4096)", c->verb);
            return EXIT_USAGE;
        }
        json_object_set_new(body, "key_size", json_integer(n));
    }
    if (curve)
        json_object_set_new(body, "crv", json_string(curve));
    const char *ops[CLI_MAX_OPTS];
    int nops = cli_get_all(c, "ops", ops, CLI_MAX_OPTS);
    if (nops > 0) {
        json_t *a = json_array();
        for (int i = 0; i < nops; i++)
            json_array_append_new(a, json_string(ops[i]));
        json_object_set_new(body, "key_ops", a);
    }
    if ((status = cli_attrs_tags(c, body, 1)) != 0) {
        json_decref(body);
        return status;
    }
    struct cli_kv s;
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(body);
        return status;
    }
    char path[MV_SECRET_MAX_NAME + 32];
    status = mv_fmt(path, sizeof path, "/keys/%s/create", name) == MV_OK
                 ? cli_kv_send(c, &s, "POST", path, body, 200, KEY_COLS)
                 : (json_decref(body), cli_error("%s: name too long", c->verb));
    cli_kv_close(&s);
    return status;
}

int verb_key_set_attributes(struct cli *c)
{
    const char *name, *enabled = cli_get(c, "enabled");
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    json_t *body = json_object();
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
    const char *ops[CLI_MAX_OPTS];
    int nops = cli_get_all(c, "ops", ops, CLI_MAX_OPTS);
    if (nops > 0) {
        json_t *a = json_array();
        for (int i = 0; i < nops; i++)
            json_array_append_new(a, json_string(ops[i]));
        json_object_set_new(body, "key_ops", a);
    }
    const char *ver = cli_get(c, "version");
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 16];
    struct cli_kv s;
    if (mv_fmt(path, sizeof path, "/keys/%s/%s", name, ver ? ver : "") != MV_OK) {
        json_decref(body);
        return cli_error("%s: name too long", c->verb);
    }
    if ((status = cli_kv_open(c, &s)) != 0) {
        json_decref(body);
        return status;
    }
    status = cli_kv_send(c, &s, "PATCH", path, body, 200, KEY_COLS);
    cli_kv_close(&s);
    return status;
}

/* Zeroes every string value of a JWK document before it is freed (its private members). */
static void wipe_json(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_string(j)) {
        /* jansson owns this buffer; zeroing it before json_decref is the only way to wipe it. */
        OPENSSL_cleanse((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v) wipe_json(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) wipe_json(v);
    }
}

/* az keyvault key import, JWK form: --file holds the JWK (a JSON object with kty and the private
 * members, or {"key": JWK}); PUT /keys/{name} with it. Every copy of the file's bytes and of
 * the request text is wiped. */
int verb_key_import(struct cli *c)
{
    const char *name, *file, *prot = cli_get(c, "protection");
    char *data = NULL, *text = NULL, *out = NULL;
    size_t len = 0;
    json_t *jwk = NULL, *body = NULL;
    struct cli_kv s;
    int opened = 0;
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    if (prot && strcmp(prot, "software") != 0 && strcmp(prot, "hsm") != 0) {
        cli_error("%s: --protection takes software or hsm", c->verb);
        return EXIT_USAGE;
    }
    if (mv_read_file(file, KEY_MAX_BYTES, &data, &len) != MV_OK)
        return cli_error("%s: cannot read %s (or it is over %d bytes)", c->verb, file, KEY_MAX_BYTES);
    json_error_t err;
    jwk = json_loadb(data, len, 0, &err);
    OPENSSL_cleanse(data, len);
    free(data);
    if (json_is_object(jwk) && json_is_object(json_object_get(jwk, "key"))) {
        json_t *inner = json_incref(json_object_get(jwk, "key"));
        json_object_del(jwk, "key");
        wipe_json(jwk);
        json_decref(jwk);
        jwk = inner;
    }
    if (!json_is_object(jwk) || !json_is_string(json_object_get(jwk, "kty"))) {
        status = EXIT_USAGE;
        cli_error("%s: --file holds a JWK: a JSON object with \"kty\" and the key's members", c->verb);
        goto done;
    }
    const char *ops[CLI_MAX_OPTS];
    int nops = cli_get_all(c, "ops", ops, CLI_MAX_OPTS);
    if (nops > 0) {
        json_t *a = json_array();
        for (int i = 0; i < nops; i++)
            json_array_append_new(a, json_string(ops[i]));
        json_object_set_new(jwk, "key_ops", a);
    }
    body = json_pack("{s:O}", "key", jwk);
    if (!body) {
        status = cli_error("%s: out of memory", c->verb);
        goto done;
    }
    if (prot)
        json_object_set_new(body, "hsm", json_boolean(strcmp(prot, "hsm") == 0));
    if ((status = cli_attrs_tags(c, body, 1)) != 0)
        goto done;
    char path[MV_SECRET_MAX_NAME + 32];
    if (mv_fmt(path, sizeof path, "/keys/%s", name) != MV_OK) {
        status = cli_error("%s: name too long", c->verb);
        goto done;
    }
    if (!(text = json_dumps(body, JSON_COMPACT))) {
        status = cli_error("%s: out of memory", c->verb);
        goto done;
    }
    if ((status = cli_kv_open(c, &s)) != 0)
        goto done;
    opened = 1;
    if ((status = cli_kv_request(&s, "PUT", path, text, 200, &out)) == 0 && out)
        status = cli_kv_print(c, out, KEY_COLS);
done:
    if (opened)
        cli_kv_close(&s);
    if (text) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    wipe_json(jwk);
    json_decref(jwk);
    json_decref(body);
    return status;
}

/* The common shape: --vault-name V --name N [--version VER], one request with no body. */
int cli_kv_named(struct cli *c, const char *method, const char *fmt, long expect, const char *const *cols,
                 int with_version)
{
    const char *name;
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    const char *ver = with_version ? cli_get(c, "version") : NULL;
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 64];
    if (mv_fmt(path, sizeof path, fmt, name, ver ? ver : "") != MV_OK)
        return cli_error("%s: name too long", c->verb);
    struct cli_kv s;
    if ((status = cli_kv_open(c, &s)) != 0)
        return status;
    char *out = NULL;
    status = cli_kv_request(&s, method, path, NULL, expect, &out);
    if (status == 0 && out)
        status = cli_kv_print(c, out, cols);
    cli_kv_close(&s);
    return status;
}

int verb_key_show(struct cli *c) { return cli_kv_named(c, "GET", "/keys/%s/%s", 200, KEY_COLS, 1); }
int verb_key_delete(struct cli *c) { return cli_kv_named(c, "DELETE", "/keys/%s", 200, DELETED_COLS, 0); }
int verb_key_recover(struct cli *c) { return cli_kv_named(c, "POST", "/deletedkeys/%s/recover", 200, KEY_COLS, 0); }
int verb_key_purge(struct cli *c) { return cli_kv_named(c, "DELETE", "/deletedkeys/%s", 204, NULL, 0); }
int verb_key_rotate(struct cli *c) { return cli_kv_named(c, "POST", "/keys/%s/rotate", 200, KEY_COLS, 0); }
int verb_key_show_deleted(struct cli *c) { return cli_kv_named(c, "GET", "/deletedkeys/%s", 200, DELETED_COLS, 0); }
int verb_key_rotation_policy_show(struct cli *c)
{
    return cli_kv_named(c, "GET", "/keys/%s/rotationpolicy", 200, NULL, 0);
}

int cli_kv_listing(struct cli *c, const char *fmt, const char *const *cols, int with_name)
{
    const char *name = "";
    int status = with_name ? cli_kv_need_name(c, &name) : 0;
    if (status)
        return status;
    char path[MV_SECRET_MAX_NAME + 64];
    if (mv_fmt(path, sizeof path, fmt, name) != MV_OK)
        return cli_error("%s: name too long", c->verb);
    struct cli_kv s;
    if ((status = cli_kv_open(c, &s)) != 0)
        return status;
    status = cli_kv_list(&s, path, cols, c);
    cli_kv_close(&s);
    return status;
}

int verb_key_list(struct cli *c) { return cli_kv_listing(c, "/keys?maxresults=25%s", ITEM_COLS, 0); }
int verb_key_list_versions(struct cli *c) { return cli_kv_listing(c, "/keys/%s/versions?maxresults=25", ITEM_COLS, 1); }
int verb_key_list_deleted(struct cli *c) { return cli_kv_listing(c, "/deletedkeys?maxresults=25%s", DELETED_COLS, 0); }

int verb_key_backup(struct cli *c)
{
    const char *name, *file;
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    char path[MV_SECRET_MAX_NAME + 32];
    if (mv_fmt(path, sizeof path, "/keys/%s/backup", name) != MV_OK)
        return cli_error("%s: name too long", c->verb);
    struct cli_kv s;
    if ((status = cli_kv_open(c, &s)) != 0)
        return status;
    char *out = NULL;
    status = cli_kv_request(&s, "POST", path, NULL, 200, &out);
    cli_kv_close(&s);
    if (status)
        return status;
    if (!out || mv_write_file(file, out, strlen(out), 0600) != MV_OK)
        status = cli_error("%s: cannot write %s", c->verb, file);
    mv_free(out);
    return status;
}

int verb_key_restore(struct cli *c)
{
    const char *file;
    char *text = NULL;
    size_t len = 0;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    if (mv_read_file(file, BACKUP_MAX_BYTES, &text, &len) != MV_OK)
        return cli_error("%s: cannot read %s", c->verb, file);
    json_t *in = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_string(json_object_get(in, "value"))) {
        json_decref(in);
        return cli_error("%s: %s is not what `key backup` wrote", c->verb, file);
    }
    json_t *body = json_pack("{s:O}", "value", json_object_get(in, "value"));
    json_decref(in);
    struct cli_kv s;
    int status = cli_kv_open(c, &s);
    if (status) {
        json_decref(body);
        return status;
    }
    status = cli_kv_send(c, &s, "POST", "/keys/restore", body, 200, KEY_COLS);
    cli_kv_close(&s);
    return status;
}

/* ---- cryptographic operations, through libmivault's byte API (mv_key_sign, ...) ---- */

/* Decodes a base64 (or base64url) option into out; 0 or EXIT_USAGE. */
static int b64_option(const struct cli *c, const char *opt, mv_buf *out)
{
    const char *v;
    if (cli_require(c, opt, &v) != MV_OK)
        return EXIT_USAGE;
    size_t n = strlen(v);
    if (b64_decode(out, v, n) != MV_OK) {
        mv_buf_reset(out);
        if (b64url_decode(out, v, n) != MV_OK || out->len == 0) {
            cli_error("%s: --%s takes base64", c->verb, opt);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* {"algorithm", "kid", "result": base64 or text} as az prints the results of key operations. */
static int print_result(const struct cli *c, const char *alg, const char *kid, const unsigned char *p, size_t n,
                        int as_text)
{
    mv_buf enc;
    mv_buf_init(&enc, 4 * KEY_MAX_BYTES + 8);
    json_t *res = NULL;
    if (as_text)
        res = json_stringn((const char *)p, n);
    else if (b64_encode(&enc, p, n) == MV_OK)
        res = json_string(enc.p ? enc.p : "");
    mv_buf_free_secret(&enc);
    if (!res)
        return cli_error("%s: the result is not text (use --data-type base64)", c->verb);
    json_t *o = json_pack("{s:s, s:s, s:o}", "algorithm", alg, "kid", kid, "result", res);
    if (!o)
        return cli_error("%s: out of memory", c->verb);
    cli_print(c, o, OP_COLS);
    return 0;
}

typedef int (*bytes_op)(struct mv_secret_client *, const char *, const char *, const char *, const unsigned char *,
                        size_t, unsigned char **, size_t *);

/* sign/encrypt/decrypt/wrap/unwrap: --algorithm A, the input in --in_opt, the result printed.
 * text_in: --data-type plaintext takes the value as text; text_out: prints the result as text. */
static int crypto_verb(struct cli *c, bytes_op op, const char *in_opt, int text_io_in, int text_io_out)
{
    const char *name, *alg, *dtype = cli_get(c, "data-type");
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "algorithm", &alg) != MV_OK)
        return EXIT_USAGE;
    if (dtype && strcmp(dtype, "base64") != 0 && strcmp(dtype, "plaintext") != 0) {
        cli_error("%s: --data-type takes base64 or plaintext", c->verb);
        return EXIT_USAGE;
    }
    int plain = dtype && strcmp(dtype, "plaintext") == 0;
    mv_buf in;
    mv_buf_init(&in, KEY_MAX_BYTES);
    if (plain && text_io_in) {
        const char *v;
        if (cli_require(c, in_opt, &v) != MV_OK)
            return EXIT_USAGE;
        if (mv_buf_adds(&in, v) != MV_OK)
            return cli_error("%s: --%s is too long", c->verb, in_opt);
    } else if ((status = b64_option(c, in_opt, &in)) != 0) {
        mv_buf_free_secret(&in);
        return status;
    }
    const char *ver = cli_get(c, "version");
    struct cli_kv s;
    unsigned char *out = NULL;
    size_t out_len = 0;
    if ((status = cli_kv_open(c, &s)) == 0) {
        int st = op(s.sc, name, ver, alg, (const unsigned char *)in.p, in.len, &out, &out_len);
        if (st != MV_STATUS_OK) {
            status = cli_kv_report(st);
        } else {
            char kid[MV_MAX_URL + MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 16];
            if (mv_fmt(kid, sizeof kid, "%s/keys/%s%s%s", s.url, name, ver ? "/" : "", ver ? ver : "") != MV_OK)
                kid[0] = '\0';
            status = print_result(c, alg, kid, out, out_len, plain && text_io_out);
        }
    }
    mv_bytes_free(out, out_len);
    mv_buf_free_secret(&in);
    cli_kv_close(&s);
    return status;
}

int verb_key_sign(struct cli *c) { return crypto_verb(c, mv_key_sign, "digest", 0, 0); }
int verb_key_encrypt(struct cli *c) { return crypto_verb(c, mv_key_encrypt, "value", 1, 0); }
int verb_key_decrypt(struct cli *c) { return crypto_verb(c, mv_key_decrypt, "value", 0, 1); }
int verb_key_wrap(struct cli *c) { return crypto_verb(c, mv_key_wrap, "value", 0, 0); }
int verb_key_unwrap(struct cli *c) { return crypto_verb(c, mv_key_unwrap, "value", 0, 0); }

int verb_key_verify(struct cli *c)
{
    const char *name, *alg;
    int status = cli_kv_need_name(c, &name);
    if (status)
        return status;
    if (cli_require(c, "algorithm", &alg) != MV_OK)
        return EXIT_USAGE;
    mv_buf digest, sig;
    mv_buf_init(&digest, KEY_MAX_BYTES);
    mv_buf_init(&sig, KEY_MAX_BYTES);
    struct cli_kv s;
    memset(&s, 0, sizeof s);
    if ((status = b64_option(c, "digest", &digest)) == 0 && (status = b64_option(c, "signature", &sig)) == 0 &&
        (status = cli_kv_open(c, &s)) == 0) {
        int valid = 0;
        int st = mv_key_verify(s.sc, name, cli_get(c, "version"), alg, (const unsigned char *)digest.p, digest.len,
                               (const unsigned char *)sig.p, sig.len, &valid);
        if (st != MV_STATUS_OK) {
            status = cli_kv_report(st);
        } else {
            static const char *const COLS[] = {"algorithm", "isValid", NULL};
            cli_print(c, json_pack("{s:s, s:b}", "algorithm", alg, "isValid", valid), COLS);
        }
    }
    mv_buf_free(&digest);
    mv_buf_free(&sig);
    cli_kv_close(&s);
    return status;
}
