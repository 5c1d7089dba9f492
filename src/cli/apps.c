/* apps.c: service principals (`mivault sp ...`) and the federated identity credentials of
 * user-assigned identities (`mivault identity federated-credential ...`), as the admin through
 * the control plane (docs/identities.md). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

#define SP_PATH "/providers/Microsoft.Mivault/servicePrincipals"
#define T_UAI "Microsoft.ManagedIdentity/userAssignedIdentities"
#define FIC_API "2023-01-31"
#define FIC_DEFAULT_AUDIENCE "api://AzureADTokenExchange"
#define CERT_FILE_MAX 16384

static const char *const SP_COLS[] = {"displayName", "appId", "id", NULL};
/* create and credential reset: the secret is shown this once, in a table too */
static const char *const SP_NEW_COLS[] = {"displayName", "appId", "id", "tenant", "password", NULL};
static const char *const FIC_COLS[] = {"name", "properties.issuer", "properties.subject", NULL};

/* One call; prints the reply (its "value" array for a listing). */
static int call(struct cli *c, const char *method, const char *path, json_t *body,
                const char *const *cols)
{
    struct arm_client *a = NULL;
    json_t *out = NULL;
    int status = 1;
    if (cli_load_state(c) != MV_OK || arm_client_new(c, &a) != MV_OK)
        goto done;
    if (arm_call(a, method, path, body, &out, NULL) != MV_OK)
        goto done;
    if (out && json_is_array(json_object_get(out, "value")))
        cli_print(c, json_incref(json_object_get(out, "value")), cols);
    else if (out)
        cli_print(c, json_incref(out), cols);
    status = 0;
done:
    json_decref(out);
    json_decref(body);
    arm_client_free(a);
    return status;
}

static int sp_id_path(struct cli *c, const char *suffix, char *path, size_t len)
{
    const char *id;
    if (cli_require(c, "id", &id) != MV_OK)
        return 2;
    if (!mv_is_uuid(id))
        return cli_error("--id must be an application (client) id, a GUID") + 1;
    if (mv_fmt(path, len, SP_PATH "/%s%s", id, suffix) != MV_OK)
        return 2;
    return 0;
}

int verb_sp_create(struct cli *c)
{
    const char *name;
    if (cli_require(c, "name", &name) != MV_OK)
        return 2;
    return call(c, "POST", SP_PATH, json_pack("{s:s}", "displayName", name), SP_NEW_COLS);
}

int verb_sp_list(struct cli *c) { return call(c, "GET", SP_PATH, NULL, SP_COLS); }

int verb_sp_show(struct cli *c)
{
    char path[256];
    int rc = sp_id_path(c, "", path, sizeof path);
    return rc ? rc : call(c, "GET", path, NULL, SP_COLS);
}

int verb_sp_delete(struct cli *c)
{
    char path[256];
    int rc = sp_id_path(c, "", path, sizeof path);
    return rc ? rc : call(c, "DELETE", path, NULL, SP_COLS);
}

int verb_sp_credential_reset(struct cli *c)
{
    char path[256];
    int rc = sp_id_path(c, "/addCredential", path, sizeof path);
    if (rc)
        return rc;
    json_t *body = json_object();
    const char *file = cli_get(c, "cert-file");
    if (file) {
        char *pem = NULL;
        size_t len = 0;
        if (mv_read_file(file, CERT_FILE_MAX, &pem, &len) != MV_OK) {
            json_decref(body);
            return cli_error("cannot read %s: %s", file, cli_detail());
        }
        json_object_set_new(body, "certificate", json_stringn(pem, len));
        free(pem);
    }
    return call(c, "POST", path, body, SP_NEW_COLS);
}

/* …/userAssignedIdentities/{identity}/federatedIdentityCredentials[/{name}]?api-version=… */
static int fic_path(struct cli *c, int with_name, char *path, size_t len)
{
    const char *ident, *name = NULL;
    struct arm_client *a = NULL;
    char base[1024];
    int rc = 0;
    if (cli_require(c, "identity", &ident) != MV_OK)
        return 2;
    if (with_name && cli_require(c, "name", &name) != MV_OK)
        return 2;
    if (cli_load_state(c) != MV_OK || arm_client_new(c, &a) != MV_OK)
        return 1;
    if (arm_provider_path(a, T_UAI, ident, base, sizeof base) != MV_OK ||
        mv_fmt(path, len, "%s/federatedIdentityCredentials%s%s?api-version=" FIC_API, base,
               name ? "/" : "", name ? name : "") != MV_OK)
        rc = cli_error("identity or credential name too long");
    arm_client_free(a);
    return rc;
}

int verb_fic_create(struct cli *c)
{
    char path[2048];
    const char *issuer, *subject;
    if (cli_require(c, "issuer", &issuer) != MV_OK || cli_require(c, "subject", &subject) != MV_OK)
        return 2;
    const char *aud = cli_get(c, "audience");
    int rc = fic_path(c, 1, path, sizeof path);
    if (rc)
        return rc;
    json_t *body = json_pack("{s:{s:s, s:s, s:[s]}}", "properties", "issuer", issuer, "subject",
                             subject, "audiences", aud ? aud : FIC_DEFAULT_AUDIENCE);
    return call(c, "PUT", path, body, FIC_COLS);
}

int verb_fic_show(struct cli *c)
{
    char path[2048];
    int rc = fic_path(c, 1, path, sizeof path);
    return rc ? rc : call(c, "GET", path, NULL, FIC_COLS);
}

int verb_fic_list(struct cli *c)
{
    char path[2048];
    int rc = fic_path(c, 0, path, sizeof path);
    return rc ? rc : call(c, "GET", path, NULL, FIC_COLS);
}

int verb_fic_delete(struct cli *c)
{
    char path[2048];
    int rc = fic_path(c, 1, path, sizeof path);
    return rc ? rc : call(c, "DELETE", path, NULL, FIC_COLS);
}
