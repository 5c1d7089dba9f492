/* demo.c: `mivault demo`: the six steps of the managed identity flow, run for real in a
 * temporary state dir (own ports), printed as a process table (step, action, request/response,
 * result) and a status tracker of the VM identity and the token, then the negative case: a VM
 * without identity is refused at step 4. Exits 0 only if every step behaved as expected. */
#include <jansson.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/launch.h"
#include "common/b64.h"
#include "common/util.h"
#include "http/client.h"
#include "http/kv.h"

#define DEMO_VM "demo-vm"
#define DEMO_NOID_VM "noid-vm"
#define DEMO_VAULT "demo"
#define DEMO_SECRET "db-password"
#define DEMO_VALUE "s3cret"
#define ROWS 16
#define CELL 2048

struct row {
    char step[8], action[CELL], wire[CELL], result[CELL];
};

struct demo {
    struct row rows[ROWS];
    int n;
    char track[8][3][256]; /* step, identity, token */
    int ntrack;
    int failed;
};

static void add_row(struct demo *d, const char *step, const char *action, const char *result, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_row(struct demo *d, const char *step, const char *action, const char *result, const char *fmt, ...)
{
    if (d->n >= ROWS)
        return;
    struct row *r = &d->rows[d->n++];
    snprintf(r->step, sizeof r->step, "%s", step);
    snprintf(r->action, sizeof r->action, "%s", action);
    snprintf(r->result, sizeof r->result, "%s", result);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->wire, sizeof r->wire, fmt, ap);
    va_end(ap);
}

static void track(struct demo *d, const char *step, const char *identity, const char *token)
{
    if (d->ntrack >= 8)
        return;
    snprintf(d->track[d->ntrack][0], 256, "%s", step);
    snprintf(d->track[d->ntrack][1], 256, "%s", identity);
    snprintf(d->track[d->ntrack][2], 256, "%s", token);
    d->ntrack++;
}

/* Prints a table whose cells may hold several lines ('\n'). */
static void print_cells(const char *const *hdr, int ncol, const char *(*cell)(void *, int, int), void *arg, int nrows)
{
    int w[4] = {0};
    for (int c = 0; c < ncol; c++)
        w[c] = (int)strlen(hdr[c]);
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < ncol; c++) {
            const char *s = cell(arg, r, c);
            while (*s) {
                int n = (int)strcspn(s, "\n");
                if (n > w[c])
                    w[c] = n;
                s += n + (s[n] == '\n');
            }
        }
    for (int c = 0; c < ncol; c++)
        printf("%-*s%s", w[c], hdr[c], c + 1 < ncol ? " | " : "\n");
    for (int c = 0; c < ncol; c++) {
        for (int k = 0; k < w[c]; k++)
            putchar('-');
        printf("%s", c + 1 < ncol ? "-+-" : "\n");
    }
    for (int r = 0; r < nrows; r++) {
        const char *p[4];
        for (int c = 0; c < ncol; c++)
            p[c] = cell(arg, r, c);
        for (;;) {
            int more = 0;
            for (int c = 0; c < ncol; c++)
                more |= *p[c] != '\0';
            if (!more)
                break;
            for (int c = 0; c < ncol; c++) {
                int n = (int)strcspn(p[c], "\n");
                printf("%-*.*s%s", w[c], n, p[c], c + 1 < ncol ? " | " : "\n");
                p[c] += n + (p[c][n] == '\n');
            }
        }
    }
}

static const char *row_cell(void *arg, int r, int c)
{
    struct row *row = &((struct demo *)arg)->rows[r];
    return c == 0 ? row->step : c == 1 ? row->action : c == 2 ? row->wire : row->result;
}

static const char *track_cell(void *arg, int r, int c) { return ((struct demo *)arg)->track[r][c]; }

/* The decoded JWT payload (no verification: the vault does that). */
static json_t *jwt_claims(const char *token)
{
    const char *a = strchr(token, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (!b)
        return NULL;
    mv_buf raw;
    mv_buf_init(&raw, 16384);
    json_t *j = NULL;
    if (b64url_decode(&raw, a + 1, (size_t)(b - a - 1)) == MV_OK)
        j = json_loadb(raw.p, raw.len, 0, NULL);
    mv_buf_free(&raw);
    return j;
}

static mv_rc imds_get(struct http_client *h, int port, const char *resource, struct http_client_resp *resp)
{
    mv_rc rc = MV_OK;
    char url[1024];
    mv_buf esc;
    mv_buf_init(&esc, 512);
    CHECK(kv_escape(resource, &esc));
    CHECK(mv_fmt(url, sizeof url, "http://127.0.0.1:%d/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%s",
                 port, esc.p));
    const char *hdrs[] = {"Metadata: true", NULL};
    CHECK(http_client_do(h, "GET", url, hdrs, NULL, 0, 65536, resp));
out:
    mv_buf_free(&esc);
    return rc;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static int run(struct cli *c, struct demo *d, pid_t *server, pid_t *agent, pid_t *agent2)
{
    struct mv_config cfg;
    enum state_init_outcome created;
    struct arm_client *a = NULL;
    struct http_client *h = NULL;
    struct http_client_resp r1, r2, r3, r4, r5;
    memset(&r1, 0, sizeof r1), memset(&r2, 0, sizeof r2), memset(&r3, 0, sizeof r3);
    memset(&r4, 0, sizeof r4), memset(&r5, 0, sizeof r5);
    json_t *tok = NULL, *claims = NULL, *body = NULL;
    char principal[64] = "", nprincipal[64] = "", join[128], join2[128], vres[256], vurl[512], url[1024];
    char agent_port[16], agent2_port[16], listen1[64], listen2[64];
    char *nodejs = NULL;
    int ok = 0;

    state_config_defaults(&cfg);
    cfg.server_port = launch_free_port();
    cfg.agent_port = launch_free_port();
    cfg.threads = 1;
    if (state_config_public_url(&cfg, NULL) != MV_OK || launch_init(c, &cfg, &created, NULL) != MV_OK)
        goto done;
    char *server_argv[] = {"mivault", "server", "--state", c->paths.dir, NULL};
    if (launch_child(server_argv, 1, server) != MV_OK ||
        launch_wait_port(c->cfg.server_host, c->cfg.server_port, *server, 20000) != MV_OK) {
        cli_error("demo: the server did not start");
        goto done;
    }
    if (arm_client_new(c, &a) != MV_OK || http_client_new(c->paths.ca_pem, &h) != MV_OK)
        goto done;

    /* Step 1: enable a system-assigned identity on a VM (control plane). */
    if (launch_ensure_vault(a, DEMO_VAULT) != MV_OK || launch_ensure_vm(a, DEMO_VM, 1, principal, sizeof principal) != MV_OK ||
        launch_grant(a, principal, ROLE_SECRETS_OFFICER, DEMO_VAULT) != MV_OK)
        goto done;
    add_row(d, "1", "control plane: enable managed identity\non VM " DEMO_VM "; grant Key Vault\nSecrets Officer on vault " DEMO_VAULT,
            "identity enabled", "PUT .../virtualMachines/" DEMO_VM "\n  identity.type=SystemAssigned\n-> 201 principalId=%s", principal);
    track(d, "1", "enabled (service principal created)", "none");

    /* Step 2: the platform binds the identity to the VM: the agent enrolls its own key. */
    if (launch_join_token(a, DEMO_VM, join, sizeof join) != MV_OK)
        goto done;
    snprintf(agent_port, sizeof agent_port, "%d", c->cfg.agent_port);
    snprintf(listen1, sizeof listen1, "127.0.0.1:%d", c->cfg.agent_port);
    char *agent_argv[] = {"mivault", "agent", "--vm", DEMO_VM, "--join", join, "--listen", listen1, "--state", c->paths.dir, NULL};
    if (launch_child(agent_argv, 1, agent) != MV_OK || launch_wait_port("127.0.0.1", c->cfg.agent_port, *agent, 20000) != MV_OK) {
        cli_error("demo: the agent did not enroll or start");
        goto done;
    }
    char nodefile[PATH_MAX];
    size_t nlen;
    json_t *node = NULL;
    if (mv_fmt(nodefile, sizeof nodefile, "%s/%s/node.json", c->paths.agents, DEMO_VM) == MV_OK &&
        mv_read_file(nodefile, 65536, &nodejs, &nlen) == MV_OK)
        node = json_loadb(nodejs, nlen, 0, NULL);
    add_row(d, "2", "platform binds the identity: the host\nagent makes an EC P-256 key and enrolls\nits public half with a one-time token",
            "node key bound", "POST /mivault/enroll {joinToken, publicKey}\n-> 200 clientId=%s\n(private key stays in agents/" DEMO_VM "/)",
            jstr(node, "clientId"));
    json_decref(node);
    track(d, "2", "bound to VM's node key", "none");

    /* Steps 3+4: the workload asks IMDS; the agent proves the VM and the authority signs. */
    if (state_vault_resource(&c->cfg, vres, sizeof vres) != MV_OK || imds_get(h, c->cfg.agent_port, vres, &r1) != MV_OK)
        goto done;
    tok = json_loadb(r1.body.p ? r1.body.p : "", r1.body.len, 0, NULL);
    const char *access = json_string_value(json_object_get(tok, "access_token"));
    if (r1.status != 200 || !access) {
        cli_error("demo: IMDS answered %ld: %s", r1.status, r1.body.p ? r1.body.p : "");
        goto done;
    }
    add_row(d, "3", "workload asks the local metadata\nendpoint for a token (no credential)", "200 token",
            "GET /metadata/identity/oauth2/token\n  ?api-version=2018-02-01&resource=%s\n  Metadata: true\n-> 200 token_type=%s expires_in=%s",
            vres, jstr(tok, "token_type"), jstr(tok, "expires_in"));
    claims = jwt_claims(access);
    add_row(d, "4", "agent proves the VM (private_key_jwt,\nRFC 7523); authority signs an RS256 JWT", "JWT issued",
            "POST /{tenant}/oauth2/v2.0/token (client_assertion ES256)\nclaims: iss=%s\n  aud=%s\n  oid=%s\n  appid=%s\n  xms_mirid=%s\n  ver=%s idtyp=%s",
            jstr(claims, "iss"), jstr(claims, "aud"), jstr(claims, "oid"), jstr(claims, "appid"), jstr(claims, "xms_mirid"),
            jstr(claims, "ver"), jstr(claims, "idtyp"));
    track(d, "3", "requested by workload", "requested");
    track(d, "4", "proved by node key", "issued (RS256, 24 h)");

    /* Step 5: the workload presents the token to the vault (after the 401 challenge). */
    if (state_vault_url(&c->cfg, DEMO_VAULT, vurl, sizeof vurl) != MV_OK ||
        mv_fmt(url, sizeof url, "%s/secrets/" DEMO_SECRET "?api-version=7.5", vurl) != MV_OK)
        goto done;
    const char *json_hdr[] = {"Content-Type: application/json", NULL};
    if (http_client_do(h, "PUT", url, json_hdr, NULL, 0, 65536, &r2) != MV_OK)
        goto done;
    char bearer[MV_MAX_TOKEN_BYTES + 32];
    if (mv_fmt(bearer, sizeof bearer, "Authorization: Bearer %s", access) != MV_OK)
        goto done;
    const char *auth_hdr[] = {bearer, "Content-Type: application/json", NULL};
    const char *put_body = "{\"value\":\"" DEMO_VALUE "\"}";
    if (http_client_do(h, "PUT", url, auth_hdr, put_body, strlen(put_body), 65536, &r3) != MV_OK)
        goto done;
    body = json_loadb(r3.body.p ? r3.body.p : "", r3.body.len, 0, NULL);
    add_row(d, "5", "workload presents the token to the vault", r3.status == 200 ? "secret stored" : "FAILED",
            "PUT %s/secrets/" DEMO_SECRET " (no token)\n-> %ld WWW-Authenticate: %.90s\nPUT ... Authorization: Bearer <JWT>\n-> %ld id=%s",
            vurl, r2.status, r2.www_authenticate, r3.status, jstr(body, "id"));
    track(d, "5", "acting through its token", "presented to the vault");
    json_decref(body);
    body = NULL;

    /* Step 6: the vault validates and authorizes by role, then answers. */
    if (mv_fmt(url, sizeof url, "%s/secrets/" DEMO_SECRET "/?api-version=7.5", vurl) != MV_OK ||
        http_client_do(h, "GET", url, auth_hdr, NULL, 0, 65536, &r4) != MV_OK)
        goto done;
    body = json_loadb(r4.body.p ? r4.body.p : "", r4.body.len, 0, NULL);
    int got = r4.status == 200 && strcmp(jstr(body, "value"), DEMO_VALUE) == 0;
    add_row(d, "6", "vault checks signature (JWKS), iss, aud,\nexp, tenant; RBAC: oid holds Secrets\nOfficer on the vault", got ? "access granted" : "FAILED",
            "GET %s/secrets/" DEMO_SECRET "/\n-> %ld value=\"%s\"", vurl, r4.status, jstr(body, "value"));
    track(d, "6", "authorized by role", got ? "accepted by the vault" : "REJECTED");
    if (r2.status != 401 || r3.status != 200 || !got)
        goto done;

    /* Negative case: a VM without identity is refused at step 4. */
    if (launch_ensure_vm(a, DEMO_NOID_VM, 0, nprincipal, sizeof nprincipal) != MV_OK ||
        launch_join_token(a, DEMO_NOID_VM, join2, sizeof join2) != MV_OK)
        goto done;
    int port2 = launch_free_port();
    snprintf(agent2_port, sizeof agent2_port, "%d", port2);
    snprintf(listen2, sizeof listen2, "127.0.0.1:%d", port2);
    char *agent2_argv[] = {"mivault", "agent", "--vm", DEMO_NOID_VM, "--join", join2, "--listen", listen2, "--state", c->paths.dir, NULL};
    if (launch_child(agent2_argv, 1, agent2) != MV_OK || launch_wait_port("127.0.0.1", port2, *agent2, 20000) != MV_OK ||
        imds_get(h, port2, vres, &r5) != MV_OK)
        goto done;
    printf("mivault demo: the managed identity flow, for real (state in %s)\n\n", c->paths.dir);
    const char *hdr[] = {"step", "action", "request / response", "result"};
    print_cells(hdr, 4, row_cell, d, d->n);
    printf("\nstatus tracker\n\n");
    const char *thdr[] = {"step", "VM identity", "token"};
    print_cells(thdr, 3, track_cell, d, d->ntrack);
    json_t *neg = json_loadb(r5.body.p ? r5.body.p : "", r5.body.len, 0, NULL);
    int refused = r5.status == 400 && strcmp(jstr(neg, "error_description"), "Identity not found") == 0;
    printf("\nnegative case: VM '%s' has no managed identity\n\n", DEMO_NOID_VM);
    struct demo nd;
    memset(&nd, 0, sizeof nd);
    add_row(&nd, "1", "VM created with identity.type=None", "no identity", "PUT .../virtualMachines/" DEMO_NOID_VM "\n-> 201 (no principalId)");
    add_row(&nd, "3", "workload asks its agent for a token", "asked", "GET /metadata/identity/oauth2/token?resource=%s", vres);
    add_row(&nd, "4", "authority finds no identity for the VM", refused ? "REFUSED (as expected)" : "NOT REFUSED",
            "-> %ld %s", r5.status, r5.body.p ? r5.body.p : "");
    print_cells(hdr, 4, row_cell, &nd, nd.n);
    json_decref(neg);
    ok = refused;
done:
    free(nodejs);
    json_decref(tok);
    json_decref(claims);
    json_decref(body);
    http_client_resp_free(&r1), http_client_resp_free(&r2), http_client_resp_free(&r3);
    http_client_resp_free(&r4), http_client_resp_free(&r5);
    http_client_free(h);
    arm_client_free(a);
    return ok;
}

static int remove_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path) == 0 ? 0 : -1;
}

/* The demo's own temporary state dir, depth first, never following a symlink out of it. */
static void remove_tree(const char *dir)
{
    if (strncmp(dir, "/tmp/mivault-demo.", 18) != 0)
        return;
    if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        cli_error("could not remove %s", dir);
}

int verb_demo(struct cli *c)
{
    char dir[] = "/tmp/mivault-demo.XXXXXX";
    if (!mkdtemp(dir))
        return cli_error("demo: cannot create a temporary directory");
    c->state_dir = dir;
    struct demo *d = calloc(1, sizeof *d);
    pid_t server = -1, agent = -1, agent2 = -1;
    int ok = d && run(c, d, &server, &agent, &agent2);
    launch_stop(agent2);
    launch_stop(agent);
    launch_stop(server);
    free(d);
    if (!getenv("MIVAULT_DEMO_KEEP"))
        remove_tree(dir);
    if (!ok)
        return cli_error("demo: the flow did not behave as expected (run with MIVAULT_VERBOSE=1 for the processes' logs)");
    return 0;
}
