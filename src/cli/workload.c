/* workload.c: the verbs that act as a workload on the VM (DESIGN §3): `token get` and
 * `keyvault secret ...`. They hold no credential: tokens come from the agent's IMDS endpoint
 * through libmivault, exactly as an Azure SDK would get them, and the vault is reached through
 * its 401 challenge.
 *
 * The agent: $AZURE_POD_IDENTITY_AUTHORITY_HOST if set (what env.sh exports), else the agent
 * address in the state's config. Exit status: 0 done, 1 the operation failed, 2 usage. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/b64.h"
#include "common/util.h"
#include "mivault/mivault.h"

#define EXIT_USAGE 2
#define BACKUP_MAX_BYTES (1024 * 1024)

static const char *const TOKEN_COLS[] = {"resource", "tokenType", "expiresOn", "tenant", NULL};
static const char *const SECRET_COLS[] = {"name", "value", "contentType", "attributes.enabled", "attributes.updated", NULL};
static const char *const ITEM_COLS[] = {"name", "contentType", "attributes.enabled", "attributes.updated", NULL};
static const char *const DELETED_COLS[] = {"name", "recoveryId", "deletedDate", "scheduledPurgeDate", NULL};

/* Prints the library's last error the way a person can act on it; returns the exit status 1. */
static int report(int st)
{
    const char *e = mv_last_error();
    if (st == MV_STATUS_IDENTITY_NOT_FOUND)
        return cli_error("this VM has no managed identity that matches (Identity not found)");
    if (st == MV_STATUS_UNAVAILABLE && strncmp(e, "cannot reach the identity endpoint", 34) == 0)
        return cli_error("%s: is `mivault up` (or `mivault agent`) running?", e);
    return cli_error("%s", e[0] ? e : mv_status_name(st));
}

/* The agent's endpoint. Loads the state only when the environment does not name it. */
static int agent_endpoint(struct cli *c, int *state_loaded, char *out, size_t len)
{
    const char *env = getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST");
    if (env && *env)
        return mv_copy(out, len, env) == MV_OK ? 0 : cli_error("AZURE_POD_IDENTITY_AUTHORITY_HOST is too long");
    if (!*state_loaded) {
        if (cli_load_state(c) != MV_OK)
            return 1;
        *state_loaded = 1;
    }
    if (mv_fmt(out, len, "http://%s:%d", c->cfg.agent_host, c->cfg.agent_port) != MV_OK)
        return cli_error("the agent address in the config is too long");
    return 0;
}

/* --client-id | --object-id | --msi-res-id: at most one (reference §1.1). */
static int identity_opts(const struct cli *c, const char **cid, const char **oid, const char **rid)
{
    *cid = cli_get(c, "client-id");
    *oid = cli_get(c, "object-id");
    *rid = cli_get(c, "msi-res-id");
    if ((*cid != NULL) + (*oid != NULL) + (*rid != NULL) > 1) {
        cli_error("%s: give at most one of --client-id, --object-id, --msi-res-id", c->verb);
        return EXIT_USAGE;
    }
    return 0;
}

static int open_credential(struct cli *c, int *state_loaded, struct mv_credential **cred)
{
    char endpoint[MV_MAX_URL];
    const char *cid, *oid, *rid;
    int st = identity_opts(c, &cid, &oid, &rid);
    if (st)
        return st;
    if (agent_endpoint(c, state_loaded, endpoint, sizeof endpoint))
        return 1;
    st = mv_credential_new(endpoint, cid, oid, rid, cred);
    return st == MV_STATUS_OK ? 0 : report(st);
}

/* The tenant id from the token's claims, as az prints it (no signature check: display only). */
static json_t *token_tenant(const char *jwt)
{
    const char *a = strchr(jwt, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    json_t *claims = NULL, *tid = NULL;
    mv_buf payload;
    mv_buf_init(&payload, MV_MAX_TOKEN_BYTES);
    if (b && b64url_decode(&payload, a + 1, (size_t)(b - a - 1)) == MV_OK && payload.p)
        claims = json_loadb(payload.p, payload.len, 0, NULL);
    if (json_is_string(json_object_get(claims, "tid")))
        tid = json_incref(json_object_get(claims, "tid"));
    json_decref(claims);
    mv_buf_free(&payload);
    return tid ? tid : json_null();
}

int verb_token_get(struct cli *c)
{
    const char *resource;
    struct mv_credential *cred = NULL;
    char *token = NULL;
    int64_t exp = 0;
    int state_loaded = 0, status;
    if (cli_require(c, "resource", &resource) != MV_OK)
        return EXIT_USAGE;
    if ((status = open_credential(c, &state_loaded, &cred)) != 0)
        return status;
    int st = mv_credential_get_token(cred, resource, &token, &exp);
    if (st != MV_STATUS_OK) {
        status = report(st);
        goto done;
    }
    /* az account get-access-token: expiresOn is local time "%Y-%m-%d %H:%M:%S.%f", expires_on
     * the Unix time (az 2.54+). */
    char when[64] = "";
    time_t t = (time_t)exp;
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S.000000", &tm);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s}", "accessToken", token, "expiresOn", when,
                          "expires_on", (json_int_t)exp, "resource", resource, "tenant", token_tenant(token),
                          "tokenType", "Bearer");
    if (!o) {
        status = cli_error("token get: out of memory");
        goto done;
    }
    cli_print(c, o, TOKEN_COLS);
    status = 0;
done:
    mv_free(token);
    mv_credential_free(cred);
    return status;
}

/* ---- keyvault secret ---- */

struct secret_session {
    struct mv_credential *cred;
    struct mv_secret_client *sc;
};

static void session_close(struct secret_session *s)
{
    mv_secret_client_free(s->sc);
    mv_credential_free(s->cred);
}

/* State (for the vault URL and the local CA), credential from the agent, vault client. */
static int session_open(struct cli *c, struct secret_session *s)
{
    const char *vault;
    char url[MV_MAX_URL];
    int state_loaded = 0, status;
    memset(s, 0, sizeof *s);
    if (cli_require(c, "vault-name", &vault) != MV_OK)
        return EXIT_USAGE;
    if (cli_load_state(c) != MV_OK)
        return 1;
    state_loaded = 1;
    if (state_vault_url(&c->cfg, vault, url, sizeof url) != MV_OK)
        return cli_error("%s: '%s' is not a vault name", c->verb, vault);
    if ((status = open_credential(c, &state_loaded, &s->cred)) != 0)
        return status;
    /* Trust the bundle (system CAs + local CA) so that a vault elsewhere also verifies. */
    const char *ca = mv_file_exists(c->paths.bundle) ? c->paths.bundle : c->paths.ca_pem;
    int st = mv_secret_client_new(url, s->cred, ca, 0, &s->sc);
    if (st != MV_STATUS_OK) {
        session_close(s);
        return report(st);
    }
    return 0;
}

/* "https://h/secrets/NAME/VER" or ".../deletedsecrets/NAME" → NAME, as az shows it. */
static void add_name(json_t *o)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!id)
        id = json_string_value(json_object_get(o, "recoveryId"));
    const char *p = id ? strstr(id, "://") : NULL;
    p = p ? strchr(p + 3, '/') : NULL;
    if (!p)
        return;
    p = strchr(p + 1, '/');
    if (!p)
        return;
    p++;
    size_t n = strcspn(p, "/?");
    if (n > 0 && n <= MV_SECRET_MAX_NAME)
        json_object_set_new(o, "name", json_stringn(p, n));
}

/* Parses the service's JSON text, adds names, prints it. Takes and frees text. */
static int print_reply(const struct cli *c, char *text, const char *const *cols)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    mv_free(text);
    if (!j)
        return cli_error("%s: the vault's reply is not JSON", c->verb);
    if (json_is_array(j)) {
        size_t i;
        json_t *it;
        json_array_foreach(j, i, it) add_name(it);
    } else {
        add_name(j);
    }
    cli_print(c, j, cols);
    return 0;
}

/* The common shape: --vault-name V --name N, one call, print. */
typedef int (*named_op)(struct mv_secret_client *, const char *, char **);

static int named_call(struct cli *c, named_op op, const char *const *cols)
{
    const char *name;
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = op(s.sc, name, &out);
    status = st == MV_STATUS_OK ? print_reply(c, out, cols) : report(st);
    session_close(&s);
    return status;
}

int verb_secret_set(struct cli *c)
{
    const char *name, *value = cli_get(c, "value"), *file = cli_get(c, "file");
    const char *ctype = cli_get(c, "content-type");
    char *from_file = NULL, *out = NULL;
    size_t flen = 0;
    struct secret_session s;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    if ((value != NULL) == (file != NULL)) {
        cli_error("%s: give the value with --value X or --file F", c->verb);
        return EXIT_USAGE;
    }
    /* --file keeps the value out of the process list and the shell history. */
    if (file && mv_read_file(file, MV_SECRET_MAX_VALUE_BYTES + 1, &from_file, &flen) != MV_OK)
        return cli_error("%s: cannot read %s (or it is over %d bytes)", c->verb, file, MV_SECRET_MAX_VALUE_BYTES);
    int status = session_open(c, &s);
    if (status == 0) {
        int st = mv_secret_set(s.sc, name, file ? from_file : value, ctype, &out);
        status = st == MV_STATUS_OK ? print_reply(c, out, SECRET_COLS) : report(st);
        session_close(&s);
    }
    mv_free(from_file);
    return status;
}

static int op_show_latest(struct mv_secret_client *sc, const char *name, char **out)
{
    return mv_secret_get(sc, name, NULL, out);
}

int verb_secret_show(struct cli *c)
{
    const char *version = cli_get(c, "version");
    if (!version)
        return named_call(c, op_show_latest, SECRET_COLS);
    const char *name;
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_secret_get(s.sc, name, version, &out);
    status = st == MV_STATUS_OK ? print_reply(c, out, SECRET_COLS) : report(st);
    session_close(&s);
    return status;
}

int verb_secret_list(struct cli *c)
{
    struct secret_session s;
    char *out = NULL;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_secret_list(s.sc, &out);
    status = st == MV_STATUS_OK ? print_reply(c, out, ITEM_COLS) : report(st);
    session_close(&s);
    return status;
}

int verb_secret_delete(struct cli *c) { return named_call(c, mv_secret_delete, DELETED_COLS); }

int verb_secret_recover(struct cli *c) { return named_call(c, mv_secret_recover, ITEM_COLS); }

int verb_secret_purge(struct cli *c)
{
    const char *name;
    struct secret_session s;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_secret_purge(s.sc, name);
    status = st == MV_STATUS_OK ? 0 : report(st);
    session_close(&s);
    return status;
}

int verb_secret_backup(struct cli *c)
{
    const char *name, *file = cli_get(c, "file");
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_secret_backup(s.sc, name, &out);
    session_close(&s);
    if (st != MV_STATUS_OK)
        return report(st);
    if (!file)
        return print_reply(c, out, NULL);
    /* The blob is the vault's sealed copy; keep the file private all the same. */
    if (mv_write_file(file, out, strlen(out), 0600) != MV_OK)
        status = cli_error("%s: cannot write %s", c->verb, file);
    mv_free(out);
    return status;
}

int verb_secret_restore(struct cli *c)
{
    const char *file;
    struct secret_session s;
    char *text = NULL, *wrapped = NULL, *out = NULL;
    size_t len = 0;
    if (cli_require(c, "file", &file) != MV_OK)
        return EXIT_USAGE;
    if (mv_read_file(file, BACKUP_MAX_BYTES, &text, &len) != MV_OK)
        return cli_error("%s: cannot read %s", c->verb, file);
    /* The file holds what backup wrote ({"value":"<blob>"}); a bare blob is taken too. */
    const char *in = text;
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    if (!json_is_object(j)) {
        char *blob = text;
        while (*blob == ' ' || *blob == '\n' || *blob == '\r' || *blob == '\t')
            blob++;
        size_t n = strcspn(blob, " \r\n\t\"");
        blob[n] = '\0';
        json_t *o = json_pack("{s:s}", "value", blob);
        wrapped = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        in = wrapped ? wrapped : "";
    }
    json_decref(j);
    int status = session_open(c, &s);
    if (status == 0) {
        int st = mv_secret_restore(s.sc, in, &out);
        status = st == MV_STATUS_OK ? print_reply(c, out, ITEM_COLS) : report(st);
        session_close(&s);
    }
    free(wrapped);
    free(text);
    return status;
}

/* ---- keyvault key (docs/keys.md) ---- */

static const char *const KEY_COLS[] = {"name", "key.kty", "key.crv", "attributes.enabled", "attributes.updated", NULL};
static const char *const KEY_ITEM_COLS[] = {"name", "attributes.enabled", "attributes.updated", NULL};
static const char *const KEY_DELETED_COLS[] = {"name", "recoveryId", "deletedDate", "scheduledPurgeDate", NULL};
static const char *const KEY_OP_COLS[] = {"kid", "value", NULL};

/* "name" from a KeyBundle's key.kid or a KeyItem's kid (https://host/keys/NAME[/VERSION]). */
static void add_key_name(json_t *o)
{
    const char *kid = json_string_value(json_object_get(json_object_get(o, "key"), "kid"));
    if (!kid)
        kid = json_string_value(json_object_get(o, "kid"));
    const char *p = kid ? strstr(kid, "/keys/") : NULL;
    if (!p)
        return;
    p += 6;
    size_t n = strcspn(p, "/?");
    if (n > 0 && n <= MV_SECRET_MAX_NAME)
        json_object_set_new(o, "name", json_stringn(p, n));
}

static int print_key_reply(const struct cli *c, char *text, const char *const *cols)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    mv_free(text);
    if (!j)
        return cli_error("%s: the vault's reply is not JSON", c->verb);
    if (json_is_array(j)) {
        size_t i;
        json_t *it;
        json_array_foreach(j, i, it) add_key_name(it);
    } else {
        add_key_name(j);
    }
    cli_print(c, j, cols);
    return 0;
}

int verb_key_create(struct cli *c)
{
    const char *name, *kty = cli_get(c, "kty"), *size = cli_get(c, "size"), *curve = cli_get(c, "curve");
    int64_t bits = 0;
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    if (size && (mv_parse_i64(size, &bits) != MV_OK || bits <= 0 || bits > 16384)) {
        cli_error("%s: --size is a number of bits (2048, 3072, 4096)", c->verb);
        return EXIT_USAGE;
    }
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_key_create(s.sc, name, kty, (int)bits, curve, &out);
    status = st == MV_STATUS_OK ? print_key_reply(c, out, KEY_COLS) : report(st);
    session_close(&s);
    return status;
}

int verb_key_show(struct cli *c)
{
    const char *name, *version = cli_get(c, "version");
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_key_get(s.sc, name, version, &out);
    status = st == MV_STATUS_OK ? print_key_reply(c, out, KEY_COLS) : report(st);
    session_close(&s);
    return status;
}

int verb_key_list(struct cli *c)
{
    struct secret_session s;
    char *out = NULL;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_key_list(s.sc, &out);
    status = st == MV_STATUS_OK ? print_key_reply(c, out, KEY_ITEM_COLS) : report(st);
    session_close(&s);
    return status;
}

int verb_key_delete(struct cli *c)
{
    const char *name;
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK)
        return EXIT_USAGE;
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_key_delete(s.sc, name, &out);
    status = st == MV_STATUS_OK ? print_key_reply(c, out, KEY_DELETED_COLS) : report(st);
    session_close(&s);
    return status;
}

/* keyvault key sign|verify|encrypt|decrypt: the op is the verb's last word. */
static int key_op_verb(struct cli *c, const char *op)
{
    const char *name, *alg, *value, *digest = cli_get(c, "digest"), *version = cli_get(c, "version");
    struct secret_session s;
    char *out = NULL;
    if (cli_require(c, "name", &name) != MV_OK || cli_require(c, "alg", &alg) != MV_OK ||
        cli_require(c, "value", &value) != MV_OK)
        return EXIT_USAGE;
    if ((strcmp(op, "verify") == 0) != (digest != NULL)) {
        cli_error("%s: --digest goes with verify (and only with verify)", c->verb);
        return EXIT_USAGE;
    }
    int status = session_open(c, &s);
    if (status)
        return status;
    int st = mv_key_op(s.sc, name, version, op, alg, value, digest, &out);
    status = st == MV_STATUS_OK ? print_reply(c, out, KEY_OP_COLS) : report(st);
    session_close(&s);
    return status;
}

int verb_key_sign(struct cli *c) { return key_op_verb(c, "sign"); }
int verb_key_verify(struct cli *c) { return key_op_verb(c, "verify"); }
int verb_key_encrypt(struct cli *c) { return key_op_verb(c, "encrypt"); }
int verb_key_decrypt(struct cli *c) { return key_op_verb(c, "decrypt"); }
