/* fic.c: Microsoft.ManagedIdentity/userAssignedIdentities/{name}/federatedIdentityCredentials —
 * the external OIDC tokens (issuer, subject, audience) a user-assigned identity accepts in
 * exchange for a token (workload identity federation, docs/identities.md).
 *
 *   PUT    …/federatedIdentityCredentials/{fic}   201 created, 200 updated
 *   GET    …/federatedIdentityCredentials[/{fic}]
 *   DELETE …/federatedIdentityCredentials/{fic}   200, 204 when absent
 *
 * Entra's rules: api-version 2022-01-31-preview or later; the name matches
 * ^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$; issuer (https), subject and exactly one audience, each at
 * most 600 characters, without leading or trailing whitespace; no issuer of Entra itself
 * (AADSTS700222); at most 20 per identity; (issuer, subject) unique per identity (400); writes to
 * one identity are sequential: a write while another to the same identity is under way is 409.
 * A missing parent identity is 404. Matching at the token endpoint is byte-exact (clients.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arm/arm_internal.h"
#include "common/limits.h"

#define UAI_TYPE "Microsoft.ManagedIdentity/userAssignedIdentities"
#define FIC_TYPE UAI_TYPE "/federatedIdentityCredentials"
#define FIC_READ FIC_TYPE "/read"
#define FIC_WRITE FIC_TYPE "/write"
#define FIC_DELETE FIC_TYPE "/delete"
#define FIC_TEXT_MAX 600
#define FIC_WRITERS 64

static const char *const API_VERSIONS[] = {"2022-01-31-preview", "2023-01-31", "2023-07-31-preview",
                                           "2024-11-30", "2025-01-31-preview", NULL};

/* Identities with a write under way (sequential writes per identity, as Entra). */
static pthread_mutex_t writers_lock = PTHREAD_MUTEX_INITIALIZER;
static char writers[FIC_WRITERS][ST_NAME];

static int writer_enter(const char *identity)
{
    int ok = 0, free_slot = -1;
    pthread_mutex_lock(&writers_lock);
    for (int i = 0; i < FIC_WRITERS; i++) {
        if (writers[i][0] && strcasecmp(writers[i], identity) == 0)
            goto out;
        if (!writers[i][0] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0 && strlen(identity) < ST_NAME) {
        memcpy(writers[free_slot], identity, strlen(identity) + 1);
        ok = 1;
    }
out:
    pthread_mutex_unlock(&writers_lock);
    return ok;
}

static void writer_leave(const char *identity)
{
    pthread_mutex_lock(&writers_lock);
    for (int i = 0; i < FIC_WRITERS; i++)
        if (writers[i][0] && strcasecmp(writers[i], identity) == 0)
            writers[i][0] = '\0';
    pthread_mutex_unlock(&writers_lock);
}

int arm_fic_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 120)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return 0;
    }
    return 1;
}

static int api_ok(struct arm_req *ar)
{
    const char *v = kv_get_ci(&ar->req->query, "api-version");
    for (size_t i = 0; v && API_VERSIONS[i]; i++)
        if (strcmp(v, API_VERSIONS[i]) == 0)
            return 1;
    (void)arm_fail(ar, 400, "InvalidApiVersionParameter",
                   "The api-version '%s' is invalid. The supported versions are "
                   "'2022-01-31-preview,2023-01-31,2023-07-31-preview,2024-11-30,2025-01-31-preview'.",
                   v ? v : "");
    return 0;
}

static int ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A text property: present, 1..600 characters, no surrounding whitespace. */
static const char *text_prop(json_t *props, const char *name)
{
    const char *s = json_string_value(json_object_get(props, name));
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > FIC_TEXT_MAX || ws(s[0]) || ws(s[n - 1]))
        return NULL;
    return s;
}

static int entra_issuer(const char *iss)
{
    static const char *const HOSTS[] = {"login.microsoftonline.com", "login.windows.net",
                                        "login.microsoft.com", "sts.windows.net", NULL};
    const char *h = iss + strlen("https://");
    size_t hl = strcspn(h, "/:?#");
    for (size_t i = 0; HOSTS[i]; i++)
        if (hl == strlen(HOSTS[i]) && strncasecmp(h, HOSTS[i], hl) == 0)
            return 1;
    return 0;
}

static mv_rc fic_id(struct arm_req *ar, const char *name, char out[ST_SCOPE + 200])
{
    mv_rc rc = MV_OK;
    char uai[ST_SCOPE];
    CHECK(arm_resource_id(ar->srv, UAI_TYPE, ar->cap[2], uai));
    CHECK(mv_fmt(out, ST_SCOPE + 200, "%s/federatedIdentityCredentials/%s", uai, name));
out:
    return rc;
}

static json_t *fic_json(struct arm_req *ar, const struct st_fic *f)
{
    char id[ST_SCOPE + 200];
    if (fic_id(ar, f->name, id) != MV_OK)
        return NULL;
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:[s]}}", "id", id, "name", f->name, "type",
                     FIC_TYPE, "properties", "issuer", f->issuer, "subject", f->subject,
                     "audiences", f->audience);
}

/* The parent identity: its scope authorized for action, and present (404 otherwise). */
static mv_rc parent(struct arm_req *ar, const char *action, struct st_identity *ident)
{
    mv_rc rc = MV_OK;
    char uai[ST_SCOPE];
    ENSURE(api_ok(ar), MV_ERR_BAD_REQUEST);
    CHECK(arm_resource_id(ar->srv, UAI_TYPE, ar->cap[2], uai));
    ENSURE(arm_authorize(ar, action, uai), MV_ERR_FORBIDDEN);
    rc = store_identity_get(ar->st, ar->cap[2], ident);
    if (rc == MV_ERR_NOT_FOUND)
        rc = arm_not_found(ar, UAI_TYPE, ar->cap[2]);
out:
    return rc;
}

static mv_rc validate(struct arm_req *ar, json_t *body, struct st_fic *f)
{
    mv_rc rc = MV_OK;
    json_t *props = json_object_get(body, "properties");
    if (!json_is_object(props) || json_object_size(props) == 0) {
        rc = arm_fail(ar, 400, "BadRequest", "The request properties are empty or missing.");
        goto out;
    }
    if (json_object_get(props, "claimsMatchingExpression")) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "claimsMatchingExpression is not supported with api-version 2023-01-31.");
        goto out;
    }
    const char *iss = text_prop(props, "issuer");
    const char *sub = text_prop(props, "subject");
    json_t *auds = json_object_get(props, "audiences");
    if (!iss || strncmp(iss, "https://", 8) != 0 || !iss[8]) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "The issuer must be an https URL of at most %d characters without "
                      "surrounding whitespace.", FIC_TEXT_MAX);
        goto out;
    }
    if (entra_issuer(iss)) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "AADSTS700222: Federated identity credentials cannot use an Entra ID issuer "
                      "('%s').", iss);
        goto out;
    }
    if (!sub) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "The subject must be 1 to %d characters without surrounding whitespace.",
                      FIC_TEXT_MAX);
        goto out;
    }
    if (!json_is_array(auds) || json_array_size(auds) != 1) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "Federated identity credential must have exactly 1 audience.");
        goto out;
    }
    json_t *a0 = json_array_get(auds, 0);
    const char *aud = json_string_value(a0);
    size_t an = aud ? strlen(aud) : 0;
    if (an == 0 || an > FIC_TEXT_MAX || ws(aud[0]) || ws(aud[an - 1])) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "The audience must be 1 to %d characters without surrounding whitespace.",
                      FIC_TEXT_MAX);
        goto out;
    }
    CHECK(mv_copy(f->issuer, sizeof f->issuer, iss));
    CHECK(mv_copy(f->subject, sizeof f->subject, sub));
    CHECK(mv_copy(f->audience, sizeof f->audience, aud));
out:
    return rc;
}

void arm_fic_put(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    json_t *body = NULL;
    struct st_identity ident;
    struct st_fic f, old, *list = NULL;
    size_t n = 0;
    int in_txn = 0, writing = 0, exists = 0;
    memset(&f, 0, sizeof f);
    CHECK(parent(ar, FIC_WRITE, &ident));
    if (!arm_fic_name_ok(ar->cap[3])) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "The federated identity credential name '%s' is invalid: 3 to 120 letters, "
                      "digits, '-' and '_', starting with a letter or digit.", ar->cap[3]);
        goto out;
    }
    CHECK(arm_body(ar, &body));
    CHECK(validate(ar, body, &f));
    if (!writer_enter(ident.name)) {
        rc = arm_fail(ar, 409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                      "Too many Federated Identity Credentials are written concurrently for the "
                      "managed identity '%s'. Write them one after another.", ident.name);
        goto out;
    }
    writing = 1;
    CHECK(mv_copy(f.identity, sizeof f.identity, ident.name));
    CHECK(mv_copy(f.name, sizeof f.name, ar->cap[3]));
    f.created = mv_now();
    CHECK(store_begin(ar->st));
    in_txn = 1;
    /* One writer per identity across servers too (the count and the (issuer, subject) check
     * below read then write): a transaction lock on the identity's lowered name. */
    char lock[ST_NAME + 8];
    CHECK(mv_fmt(lock, sizeof lock, "fic:%s", ident.name));
    mv_lower(lock);
    CHECK(store_xact_lock(ar->st, lock));
    rc = store_fic_get(ar->st, ident.name, ar->cap[3], &old);
    exists = rc == MV_OK;
    if (rc == MV_ERR_NOT_FOUND)
        rc = MV_OK;
    CHECK(rc);
    if (exists) {
        CHECK(mv_copy(f.name, sizeof f.name, old.name)); /* the name keeps its first spelling */
        f.created = old.created;
    } else {
        CHECK(store_fic_list(ar->st, ident.name, &list, &n));
        if (n >= ST_FIC_MAX) {
            rc = arm_fail(ar, 400, "BadRequest",
                          "The managed identity '%s' already has the maximum of %d federated "
                          "identity credentials.", ident.name, ST_FIC_MAX);
            goto out;
        }
    }
    rc = store_fic_put(ar->st, &f);
    if (rc == MV_ERR_CONFLICT) {
        rc = arm_fail(ar, 400, "BadRequest",
                      "Issuer and subject combination already exists for this Managed Identity.");
        goto out;
    }
    CHECK(rc);
    CHECK(store_commit(ar->st));
    in_txn = 0;
    arm_reply(ar, exists ? 200 : 201, fic_json(ar, &f));
out:
    if (in_txn)
        store_rollback(ar->st);
    if (writing)
        writer_leave(ident.name);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    free(list);
    json_decref(body);
}

void arm_fic_get(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_identity ident;
    struct st_fic f;
    CHECK(parent(ar, FIC_READ, &ident));
    rc = store_fic_get(ar->st, ident.name, ar->cap[3], &f);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = arm_fail(ar, 404, "NotFound",
                      "The federated identity credential '%s' was not found.", ar->cap[3]);
        goto out;
    }
    CHECK(rc);
    arm_reply(ar, 200, fic_json(ar, &f));
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}

static mv_rc fic_item_json(struct arm_req *ar, const void *item, json_t **out)
{
    *out = fic_json(ar, item);
    return *out ? MV_OK : MV_ERR_INTERNAL;
}

void arm_fic_list(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_identity ident;
    struct st_fic *list = NULL;
    size_t n = 0;
    CHECK(parent(ar, FIC_READ, &ident));
    CHECK(store_fic_list(ar->st, ident.name, &list, &n));
    arm_reply_list(ar, list, n, sizeof *list, fic_item_json);
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    free(list);
}

void arm_fic_delete(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    struct st_identity ident;
    int writing = 0;
    CHECK(parent(ar, FIC_DELETE, &ident));
    if (!writer_enter(ident.name)) {
        rc = arm_fail(ar, 409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                      "Too many Federated Identity Credentials are written concurrently for the "
                      "managed identity '%s'. Write them one after another.", ident.name);
        goto out;
    }
    writing = 1;
    rc = store_fic_delete(ar->st, ident.name, ar->cap[3]);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        arm_reply_empty(ar, 204);
        goto out;
    }
    CHECK(rc);
    arm_reply_empty(ar, 200);
out:
    if (writing)
        writer_leave(ident.name);
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
}
