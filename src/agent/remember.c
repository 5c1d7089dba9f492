/* remember.c: what an agent keeps between starts, and what it tells its workloads.
 *
 *   STATE/agents/VM/agent.json  {"vm","server","caFile","listen","imdsAddress"}: the settings
 *                               given on the command line, so that a later start needs only
 *                               `mivault agent --vm VM --state DIR`. Flags given again win and
 *                               are remembered in their place.
 *   STATE/agents/VM/env.sh      the environment of this VM's workloads (below)
 *   STATE/env.sh, ca-bundle.pem the same env.sh, and the system CAs + the pinned CA, but only in
 *                               an agent's own state dir: in a server's state dir those files
 *                               belong to `mivault up` (its env.sh also names the vault).
 *
 * env.sh keeps the variables `up` writes (DESIGN §3), so unchanged SDKs work the same on another
 * machine: AZURE_POD_IDENTITY_AUTHORITY_HOST and MSAL_MANAGED_IDENTITY_ENDPOINT (left out when
 * IMDS is at 169.254.169.254, where every SDK looks anyway), REQUESTS_CA_BUNDLE and SSL_CERT_FILE
 * (a bundle with the system CAs and the pinned CA), NODE_EXTRA_CA_CERTS (the pinned CA alone: Node
 * adds it to its own store), MIVAULT_HOME. MSI_ENDPOINT is left out as `up` leaves it out. */
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/util.h"

#define SAVED_MAX_FILE (16 * 1024)
#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define BUNDLE_MAX (4 * 1024 * 1024)
#define WELL_KNOWN_IMDS "169.254.169.254"

static mv_rc saved_path(const char *agents_dir, const char *vm, const char *file, char *out,
                        size_t len)
{
    return mv_fmt(out, len, "%s/%s/%s", agents_dir, vm, file);
}

static void take(const json_t *o, const char *name, char *dst, size_t len)
{
    const char *v = json_string_value(json_object_get(o, name));
    if (!v || mv_copy(dst, len, v) != MV_OK)
        dst[0] = '\0';
}

mv_rc agent_saved_load(const char *agents_dir, const char *vm, struct agent_saved *out)
{
    mv_rc rc = MV_OK;
    char path[PATH_MAX];
    char *txt = NULL;
    size_t len = 0;
    json_t *o = NULL;
    memset(out, 0, sizeof *out);
    CHECK(saved_path(agents_dir, vm, "agent.json", path, sizeof path));
    rc = mv_read_file(path, SAVED_MAX_FILE, &txt, &len);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        goto out;
    }
    CHECK(rc);
    o = json_loadb(txt, len, JSON_REJECT_DUPLICATES, NULL);
    ENSURE_MSG(json_is_object(o), MV_ERR_BAD_REQUEST, "%s: not a JSON object", path);
    take(o, "server", out->server, sizeof out->server);
    take(o, "listen", out->listen, sizeof out->listen);
    take(o, "imdsAddress", out->imds_address, sizeof out->imds_address);
out:
    json_decref(o);
    free(txt);
    return rc;
}

mv_rc agent_saved_store(const char *agents_dir, const char *vm, const struct agent_saved *s,
                        const char *ca_file)
{
    mv_rc rc = MV_OK;
    char path[PATH_MAX];
    char *txt = NULL;
    json_t *o = json_pack("{s:s, s:s}", "vm", vm, "caFile", ca_file);
    ENSURE(o != NULL, MV_ERR_INTERNAL);
    if (s->server[0])
        ENSURE(json_object_set_new(o, "server", json_string(s->server)) == 0, MV_ERR_INTERNAL);
    if (s->listen[0])
        ENSURE(json_object_set_new(o, "listen", json_string(s->listen)) == 0, MV_ERR_INTERNAL);
    if (s->imds_address[0])
        ENSURE(json_object_set_new(o, "imdsAddress", json_string(s->imds_address)) == 0,
               MV_ERR_INTERNAL);
    txt = json_dumps(o, JSON_INDENT(2));
    ENSURE(txt != NULL, MV_ERR_INTERNAL);
    CHECK(saved_path(agents_dir, vm, "agent.json", path, sizeof path));
    CHECK(mv_write_file(path, txt, strlen(txt), 0600));
out:
    free(txt);
    json_decref(o);
    return rc;
}

/* STATE/ca-bundle.pem: the system CAs, then the pinned CA. */
static mv_rc write_bundle(const char *ca_file, const char *bundle)
{
    mv_rc rc = MV_OK;
    char *sys = NULL, *ca = NULL;
    size_t syslen = 0, calen = 0;
    mv_buf b;
    mv_buf_init(&b, BUNDLE_MAX);
    CHECK(mv_read_file(ca_file, 65536, &ca, &calen));
    if (mv_read_file(SYSTEM_CA_BUNDLE, BUNDLE_MAX - 65536 - 1, &sys, &syslen) == MV_OK)
        CHECK(mv_buf_add(&b, sys, syslen));
    CHECK(mv_buf_add(&b, "\n", 1));
    CHECK(mv_buf_add(&b, ca, calen));
    CHECK(mv_write_file(bundle, b.p, b.len, 0644));
out:
    free(sys);
    free(ca);
    mv_buf_free(&b);
    return rc;
}

/* Single quotes in a path would end the shell string: such a state dir gets no env.sh. */
static int shell_safe(const char *s) { return strchr(s, '\'') == NULL; }

mv_rc agent_env_write(const struct agent_env *e)
{
    mv_rc rc = MV_OK;
    char url[128], path[PATH_MAX];
    mv_buf b;
    mv_buf_init(&b, 8192);
    int v6 = strchr(e->host, ':') != NULL;
    ENSURE_MSG(shell_safe(e->state_dir), MV_ERR_BAD_REQUEST,
               "no env.sh: the state dir's path has a single quote");
    if (e->port == 80)
        CHECK(mv_fmt(url, sizeof url, "http://%s%s%s", v6 ? "[" : "", e->host, v6 ? "]" : ""));
    else
        CHECK(mv_fmt(url, sizeof url, "http://%s%s%s:%d", v6 ? "[" : "", e->host, v6 ? "]" : "",
                     e->port));
    if (!e->server_state && e->ca_file[0])
        CHECK(write_bundle(e->ca_file, e->bundle));
    CHECK(mv_buf_addf(&b,
                      "# written by `mivault agent --vm %s`: source it in a workload's shell\n"
                      "export MIVAULT_HOME='%s'\n",
                      e->vm, e->state_dir));
    if (e->port == 80 && strcmp(e->host, WELL_KNOWN_IMDS) == 0)
        CHECK(mv_buf_addf(&b, "# IMDS is at %s, where every SDK and az look by default: no identity "
                              "endpoint variable\n",
                          url));
    else
        CHECK(mv_buf_addf(&b,
                          "export AZURE_POD_IDENTITY_AUTHORITY_HOST='%s'\n"
                          "export MSAL_MANAGED_IDENTITY_ENDPOINT='%s/metadata/identity/oauth2/token'\n",
                          url, url));
    if (e->ca_file[0])
        CHECK(mv_buf_addf(&b,
                          "export REQUESTS_CA_BUNDLE='%s'\n"
                          "export SSL_CERT_FILE='%s'\n"
                          "export NODE_EXTRA_CA_CERTS='%s'\n",
                          e->bundle, e->bundle, e->ca_file));
    CHECK(saved_path(e->agents_dir, e->vm, "env.sh", path, sizeof path));
    CHECK(mv_write_file(path, b.p, b.len, 0644));
    if (!e->server_state)
        CHECK(mv_write_file(e->env_sh, b.p, b.len, 0644));
out:
    mv_buf_free(&b);
    return rc;
}
