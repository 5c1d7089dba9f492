/* secrets.c: the secret operations of mv_secret_client (reference §4.2), each one request through
 * client_kv_call, returning the service's JSON text. list follows nextLink and joins the pages.
 *
 * Names and versions are checked here (reference §4.1: names [0-9A-Za-z-]{1,127}), so they need
 * no escaping in paths. Buffers that held a secret value are wiped before they are freed. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

static int valid_chars(const char *s, size_t max, int dash)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (dash && c == '-')))
            return 0;
        if (n >= max)
            return 0;
    }
    return n > 0;
}

static mv_rc check_name(const char *name)
{
    if (!name || !valid_chars(name, MV_SECRET_MAX_NAME, 1))
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                                "secret names are 1-127 characters of 0-9, a-z, A-Z and '-'");
    return MV_OK;
}

/* Hands the reply text to the caller (or wipes it when json is NULL). */
static mv_rc give(mv_buf *b, char **json)
{
    if (!json) {
        mv_buf_free_secret(b);
        return MV_OK;
    }
    *json = mv_buf_take(b);
    if (!*json)
        return client_set_error(MV_STATUS_ERROR, MV_ERR_INTERNAL, "out of memory");
    return MV_OK;
}

static mv_rc simple(struct mv_secret_client *sc, const char *method, const char *fmt, const char *name,
                    long expect, char **json)
{
    mv_rc rc = MV_OK;
    char path[MV_SECRET_MAX_NAME + 64];
    mv_buf b;
    mv_buf_init(&b, 0);
    CHECK(check_name(name));
    CHECK(mv_fmt(path, sizeof path, fmt, name));
    CHECK(client_kv_call(sc, method, path, NULL, expect, &b));
    CHECK(give(&b, json));
out:
    mv_buf_free_secret(&b);
    return rc;
}

static mv_rc begin_call(struct mv_secret_client *sc, char **json)
{
    client_begin();
    if (json)
        *json = NULL;
    if (!sc)
        return client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "no secret client");
    return MV_OK;
}

int mv_secret_set(struct mv_secret_client *sc, const char *name, const char *value,
                  const char *content_type, char **json)
{
    mv_rc rc = begin_call(sc, json);
    json_t *o = NULL;
    char *body = NULL;
    char path[MV_SECRET_MAX_NAME + 16];
    mv_buf b;
    mv_buf_init(&b, 0);
    if (rc != MV_OK)
        goto out;
    CHECK(check_name(name));
    if (!value) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "a secret needs a value");
        goto out;
    }
    /* Reference §4.2: {"value", "contentType"?}; the service creates a new version. */
    o = json_pack("{s:s}", "value", value);
    ENSURE_MSG(o != NULL, MV_ERR_BAD_REQUEST, "value is not valid UTF-8");
    if (content_type)
        ENSURE_MSG(json_object_set_new(o, "contentType", json_string(content_type)) == 0,
                   MV_ERR_BAD_REQUEST, "content type is not valid UTF-8");
    body = json_dumps(o, JSON_COMPACT);
    ENSURE_MSG(body != NULL, MV_ERR_INTERNAL, "out of memory");
    CHECK(mv_fmt(path, sizeof path, "/secrets/%s", name));
    CHECK(client_kv_call(sc, "PUT", path, body, 200, &b));
    CHECK(give(&b, json));
out:
    if (body) {
        OPENSSL_cleanse(body, strlen(body));
        free(body);
    }
    json_decref(o);
    mv_buf_free_secret(&b);
    return client_end(rc);
}

int mv_secret_get(struct mv_secret_client *sc, const char *name, const char *version, char **json)
{
    mv_rc rc = begin_call(sc, json);
    char path[MV_SECRET_MAX_NAME + CLIENT_MAX_VERSION + 16];
    mv_buf b;
    mv_buf_init(&b, 0);
    if (rc != MV_OK)
        goto out;
    CHECK(check_name(name));
    if (version && *version && !valid_chars(version, CLIENT_MAX_VERSION, 0)) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST, "a secret version is letters and digits");
        goto out;
    }
    /* Reference §4.1: "latest" is GET /secrets/{name}/ with an empty version, as the SDKs send it. */
    CHECK(mv_fmt(path, sizeof path, "/secrets/%s/%s", name, version ? version : ""));
    CHECK(client_kv_call(sc, "GET", path, NULL, 200, &b));
    CHECK(give(&b, json));
out:
    mv_buf_free_secret(&b);
    return client_end(rc);
}

/* Appends the page's "value" items to all and returns its nextLink (NULL on the last page). */
static mv_rc list_page(const mv_buf *page, json_t *all, char *next, size_t nextlen, int *more)
{
    mv_rc rc = MV_OK;
    json_t *j = json_loadb(page->p ? page->p : "", page->len, 0, NULL);
    json_t *items = json_object_get(j, "value");
    ENSURE_MSG(json_is_array(items), MV_ERR_UNAVAILABLE, "list page has no value array");
    ENSURE_MSG(json_array_extend(all, items) == 0, MV_ERR_INTERNAL, "out of memory");
    json_t *nl = json_object_get(j, "nextLink");
    *more = json_is_string(nl) && json_string_length(nl) > 0;
    if (*more)
        CHECK(mv_copy(next, nextlen, json_string_value(nl)));
    else
        ENSURE_MSG(!nl || json_is_null(nl) || json_is_string(nl), MV_ERR_UNAVAILABLE, "bad nextLink");
out:
    if (rc != MV_OK && rc != MV_ERR_INTERNAL)
        rc = client_set_error(MV_STATUS_ERROR, rc, "the vault's list reply is malformed");
    json_decref(j);
    return rc;
}

int mv_secret_list(struct mv_secret_client *sc, char **json)
{
    mv_rc rc = begin_call(sc, json);
    if (rc == MV_OK)
        rc = client_list(sc, "/secrets?maxresults=25", json);
    return client_end(rc);
}

mv_rc client_list(struct mv_secret_client *sc, const char *first, char **json)
{
    mv_rc rc = MV_OK;
    json_t *all = json_array();
    char next[4 * MV_MAX_URL];
    size_t total = 0;
    mv_buf page;
    mv_buf_init(&page, 0);
    CHECK(mv_copy(next, sizeof next, first));
    ENSURE_MSG(all != NULL, MV_ERR_INTERNAL, "out of memory");
    /* Reference §4.2: follow nextLink (absolute, same origin, carries api-version) until null. */
    for (int pages = 0, more = 1; more; pages++) {
        if (pages >= CLIENT_LIST_MAX_PAGES || total > CLIENT_LIST_MAX_BYTES) {
            rc = client_set_error(MV_STATUS_ERROR, MV_ERR_LIMIT, "the vault's list does not end");
            goto out;
        }
        CHECK(client_kv_call(sc, "GET", next, NULL, 200, &page));
        total += page.len;
        CHECK(list_page(&page, all, next, sizeof next, &more));
        mv_buf_free(&page);
    }
    if (json) {
        *json = json_dumps(all, JSON_COMPACT);
        ENSURE_MSG(*json != NULL, MV_ERR_INTERNAL, "out of memory");
    }
out:
    mv_buf_free(&page);
    json_decref(all);
    return rc;
}

int mv_secret_delete(struct mv_secret_client *sc, const char *name, char **json)
{
    mv_rc rc = begin_call(sc, json);
    if (rc == MV_OK)
        rc = simple(sc, "DELETE", "/secrets/%s", name, 200, json);
    return client_end(rc);
}

int mv_secret_recover(struct mv_secret_client *sc, const char *name, char **json)
{
    mv_rc rc = begin_call(sc, json);
    if (rc == MV_OK)
        rc = simple(sc, "POST", "/deletedsecrets/%s/recover", name, 200, json);
    return client_end(rc);
}

int mv_secret_purge(struct mv_secret_client *sc, const char *name)
{
    mv_rc rc = begin_call(sc, NULL);
    /* Reference §4.2: purge answers exactly 204 with no body. */
    if (rc == MV_OK)
        rc = simple(sc, "DELETE", "/deletedsecrets/%s", name, 204, NULL);
    return client_end(rc);
}

int mv_secret_backup(struct mv_secret_client *sc, const char *name, char **json)
{
    mv_rc rc = begin_call(sc, json);
    if (rc == MV_OK)
        rc = simple(sc, "POST", "/secrets/%s/backup", name, 200, json);
    return client_end(rc);
}

int mv_secret_restore(struct mv_secret_client *sc, const char *backup_json, char **json)
{
    mv_rc rc = begin_call(sc, json);
    json_t *in = NULL, *o = NULL;
    char *body = NULL;
    mv_buf b;
    mv_buf_init(&b, 0);
    if (rc != MV_OK)
        goto out;
    /* Reference §4.2: POST /secrets/restore {"value":"<base64url blob>"}. */
    in = backup_json ? json_loads(backup_json, 0, NULL) : NULL;
    const char *blob = json_string_value(json_object_get(in, "value"));
    if (!blob || !*blob) {
        rc = client_set_error(MV_STATUS_BAD_REQUEST, MV_ERR_BAD_REQUEST,
                              "a backup is the JSON {\"value\":\"<blob>\"} that backup returned");
        goto out;
    }
    o = json_pack("{s:s}", "value", blob);
    ENSURE_MSG(o != NULL, MV_ERR_INTERNAL, "out of memory");
    body = json_dumps(o, JSON_COMPACT);
    ENSURE_MSG(body != NULL, MV_ERR_INTERNAL, "out of memory");
    CHECK(client_kv_call(sc, "POST", "/secrets/restore", body, 200, &b));
    CHECK(give(&b, json));
out:
    free(body);
    json_decref(in);
    json_decref(o);
    mv_buf_free_secret(&b);
    return client_end(rc);
}
