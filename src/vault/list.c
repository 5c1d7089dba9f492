/* list.c: list pages, shared by /secrets, /secrets/{n}/versions and /deletedsecrets.
 *
 * Reference §4.2 "Paging rules": {"value":[items], "nextLink": absolute URL | null}. The link
 * keeps the host:port the client used, carries api-version (JS fetches it as given; Python
 * overwrites api-version), and a $skiptoken that is the base64url of the last key of the page
 * (keyset paging: a page is "keys after this one", stable under concurrent inserts). Rows are
 * fetched with limit + 1 so that the last page says null without another round trip. */
#include <string.h>

#include "vault/vault_internal.h"

int vault_page_params(struct vault_ctx *c, size_t *limit, char *after, size_t after_len,
                      int *has_after)
{
    const kv_list *q = &c->req->query;
    if (vault_parse_maxresults(kv_get_ci(q, "maxresults"), limit) != MV_OK) {
        vault_bad_parameter(c, "The value of 'maxresults' must be an integer between 1 and 25.");
        return 0;
    }
    const char *tok = kv_get_ci(q, "$skiptoken");
    *has_after = 0;
    if (tok && *tok) {
        if (vault_skiptoken_decode(tok, after, after_len) != MV_OK) {
            vault_bad_parameter(c, "The value of '$skiptoken' is invalid.");
            return 0;
        }
        *has_after = 1;
    }
    return 1;
}

static mv_rc next_link(struct vault_ctx *c, const char *link_path, const char *key, size_t limit,
                       json_t **out)
{
    mv_rc rc = MV_OK;
    mv_buf tok, url;
    mv_buf_init(&tok, 4 * MV_SECRET_MAX_NAME);
    mv_buf_init(&url, MV_MAX_URL);
    CHECK(vault_skiptoken_encode(key, &tok));
    CHECK(mv_buf_addf(&url, "%s%s?api-version=%s&$skiptoken=%s&maxresults=%zu", c->url, link_path,
                      c->api_version, tok.p, limit));
    *out = json_string(url.p);
    ENSURE(*out != NULL, MV_ERR_INTERNAL);
out:
    mv_buf_free(&tok);
    mv_buf_free(&url);
    return rc;
}

void vault_reply_page(struct vault_ctx *c, struct st_secret *rows, size_t n, size_t limit,
                      unsigned flags, const char *link_path, int key_is_version)
{
    mv_rc rc = MV_OK;
    struct vault_view v = vault_view_of(c);
    json_t *page = json_object();
    json_t *items = json_array();
    json_t *link = NULL;
    size_t shown = n > limit ? limit : n;
    ENSURE(page && items, MV_ERR_INTERNAL);
    for (size_t i = 0; i < shown; i++) {
        json_t *item = NULL;
        /* SecretItem carries managed (no kid) for a certificate's secret */
        unsigned f = flags | (vault_secret_is_managed(c, &rows[i]) ? VJ_MANAGED | VJ_ITEM : 0);
        CHECK(vault_secret_json(&rows[i], &v, f, &item));
        ENSURE(json_array_append_new(items, item) == 0, MV_ERR_INTERNAL);
    }
    if (n > limit && shown > 0) {
        const struct st_secret *last = &rows[shown - 1];
        CHECK(next_link(c, link_path, key_is_version ? last->version : last->name, limit, &link));
    } else {
        link = json_null();
    }
    /* json_*_set_new steals the reference even when it fails. */
    int bad = json_object_set_new(page, "value", items);
    items = NULL;
    bad |= json_object_set_new(page, "nextLink", link);
    link = NULL;
    ENSURE(bad == 0, MV_ERR_INTERNAL);
    vault_reply_json(c, 200, page);
    page = NULL;
out:
    json_decref(page);
    json_decref(items);
    json_decref(link);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
}

void vault_reply_items(struct vault_ctx *c, json_t *items, const char *last_key, size_t limit,
                       const char *link_path)
{
    mv_rc rc = MV_OK;
    json_t *page = json_object();
    json_t *link = NULL;
    ENSURE(page && items, MV_ERR_INTERNAL);
    if (last_key)
        CHECK(next_link(c, link_path, last_key, limit, &link));
    else
        link = json_null();
    int bad = json_object_set_new(page, "value", items);
    items = NULL;
    bad |= json_object_set_new(page, "nextLink", link);
    link = NULL;
    ENSURE(bad == 0, MV_ERR_INTERNAL);
    vault_reply_json(c, 200, page);
    page = NULL;
out:
    json_decref(page);
    json_decref(items);
    json_decref(link);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
}
