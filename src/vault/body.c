/* body.c: validation of the set-secret and update-secret bodies (reference §4.2):
 *
 *   {"value": str, "contentType"?: str, "tags"?: {str: str}, "attributes"?: {"enabled"?: bool,
 *    "nbf"?: int, "exp"?: int}}
 *
 * Invariants: a body is either accepted whole or refused with a fixed message (never echoing
 * input); the document is depth-checked before jansson sees it and duplicate keys are refused;
 * JSON null counts as absent (clients serialise unset optionals either way); unknown members
 * are ignored, as the service does. The value stays inside the parsed document and is wiped by
 * vault_secret_input_free. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "vault/vault_internal.h"

int vault_json_depth_ok(const char *p, size_t len, int max)
{
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (ch == '\\')
                esc = 1;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max)
                return 0;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return 1;
}

size_t vault_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

int vault_tags_ok(const json_t *tags)
{
    if (!json_is_object(tags) || json_object_size(tags) > MV_SECRET_MAX_TAGS)
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)tags, k, v) {
        if (!json_is_string(v))
            return 0;
        size_t klen = strlen(k);
        if (klen == 0 || vault_utf8_chars(k, klen) > MV_SECRET_MAX_TAG_LEN)
            return 0;
        if (vault_utf8_chars(json_string_value(v), json_string_length(v)) > MV_SECRET_MAX_TAG_LEN)
            return 0;
    }
    return 1;
}

static int present(const json_t *j) { return j && !json_is_null(j); }

/* attributes: only enabled / nbf / exp are writable; the read-only ones a client may echo back
 * (created, updated, recoveryLevel, ...) are ignored. */
static const char *parse_attributes(const json_t *a, struct vault_secret_input *out)
{
    if (!json_is_object(a))
        return "The attributes of the request are invalid.";
    json_t *en = json_object_get(a, "enabled");
    json_t *nbf = json_object_get(a, "nbf");
    json_t *exp = json_object_get(a, "exp");
    if (present(en)) {
        if (!json_is_boolean(en))
            return "The attribute 'enabled' must be a boolean.";
        out->has_enabled = 1;
        out->enabled = json_is_true(en);
    }
    if (present(nbf)) {
        if (!json_is_integer(nbf) || json_integer_value(nbf) < 0)
            return "The attribute 'nbf' must be a non-negative integer (Unix time).";
        out->has_nbf = 1;
        out->nbf = (int64_t)json_integer_value(nbf);
    }
    if (present(exp)) {
        if (!json_is_integer(exp) || json_integer_value(exp) < 0)
            return "The attribute 'exp' must be a non-negative integer (Unix time).";
        out->has_exp = 1;
        out->exp = (int64_t)json_integer_value(exp);
    }
    return NULL;
}

static const char *parse_fields(struct vault_secret_input *out, int require_value)
{
    json_t *root = out->root;
    json_t *value = json_object_get(root, "value");
    json_t *ct = json_object_get(root, "contentType");
    json_t *tags = json_object_get(root, "tags");
    json_t *attrs = json_object_get(root, "attributes");

    if (require_value) {
        if (!present(value))
            return "The parameter 'value' is required.";
        if (!json_is_string(value))
            return "The parameter 'value' must be a string.";
        /* Reference §4.1: "secret value ≤ 25 k bytes". */
        if (json_string_length(value) > MV_SECRET_MAX_VALUE_BYTES)
            return "The secret value exceeds the maximum size of 25 KB.";
        out->value = json_string_value(value);
        out->value_len = json_string_length(value);
    }
    if (present(ct)) {
        if (!json_is_string(ct))
            return "The parameter 'contentType' must be a string.";
        if (vault_utf8_chars(json_string_value(ct), json_string_length(ct)) >
            MV_SECRET_MAX_CONTENT_TYPE)
            return "The parameter 'contentType' exceeds 255 characters.";
        if (strlen(json_string_value(ct)) != json_string_length(ct))
            return "The parameter 'contentType' is invalid.";
        out->content_type = json_string_value(ct);
    }
    if (present(tags)) {
        if (!vault_tags_ok(tags))
            return "Tags must be an object of at most 15 string values, names and values of at "
                   "most 256 characters.";
        out->tags_json = json_dumps(tags, JSON_COMPACT);
        if (!out->tags_json)
            return "The parameter 'tags' is invalid.";
        out->has_tags = 1;
    }
    if (present(attrs))
        return parse_attributes(attrs, out);
    return NULL;
}

mv_rc vault_parse_secret_body(const char *body, size_t len, int require_value,
                              struct vault_secret_input *out, const char **why)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    *why = "The request body is too large.";
    ENSURE(len <= MV_VAULT_BODY_BYTES, MV_ERR_BAD_REQUEST);
    *why = "The request body is not a valid JSON object.";
    ENSURE(body && len > 0, MV_ERR_BAD_REQUEST);
    ENSURE(vault_json_depth_ok(body, len, MV_MAX_JSON_DEPTH), MV_ERR_BAD_REQUEST);
    out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    ENSURE(out->root != NULL, MV_ERR_BAD_REQUEST);
    ENSURE(json_is_object(out->root), MV_ERR_BAD_REQUEST);
    const char *msg = parse_fields(out, require_value);
    if (msg)
        *why = msg;
    ENSURE_MSG(msg == NULL, MV_ERR_BAD_REQUEST, "secret body: %s", msg);
    *why = NULL;
out:
    return rc;
}

void vault_json_wipe(json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_string(j)) {
        /* jansson owns this buffer; zeroing it before json_decref is the only way to wipe it. */
        OPENSSL_cleanse((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        json_object_foreach(j, k, v) vault_json_wipe(v);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) vault_json_wipe(v);
    }
}

void vault_secret_input_free(struct vault_secret_input *in)
{
    if (in->value)
        OPENSSL_cleanse((char *)in->value, in->value_len);
    json_decref(in->root);
    free(in->tags_json);
    memset(in, 0, sizeof *in);
}
