/* fuzz_vault_body.c: the vault's request bodies and parameters (src/vault/body.c, params.c):
 * SecretSetParameters / SecretUpdateParameters bodies, and the api-version, name, version,
 * maxresults and $skiptoken values of a data-plane request.
 *
 * Input: one byte choosing the parser, then its text. Checked: an accepted set body has a value
 * within 25 KB, a content type without NUL within 255 characters, tags that re-read as an object
 * of at most 15 strings, non-negative nbf/exp; a refused one has a fixed reason; an accepted
 * name matches ^[0-9A-Za-z-]{1,127}$, an accepted maxresults is 1..25, and a $skiptoken decodes
 * only to a valid name, which encodes back to the token (or to its canonical form). */
#include <ctype.h>
#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "vault/vault_internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void body(const char *p, size_t n, int require_value)
{
    struct vault_secret_input in;
    const char *why = NULL;
    if (vault_parse_secret_body(p, n, require_value, &in, &why) != MV_OK) {
        FUZZ_ASSERT(why != NULL && *why);
        vault_secret_input_free(&in);
        return;
    }
    FUZZ_ASSERT(why == NULL && json_is_object(in.root));
    if (require_value)
        FUZZ_ASSERT(in.value != NULL);
    if (in.value)
        FUZZ_ASSERT(in.value_len <= MV_SECRET_MAX_VALUE_BYTES);
    if (in.content_type) {
        size_t len = strlen(in.content_type);
        FUZZ_ASSERT(vault_utf8_chars(in.content_type, len) <= MV_SECRET_MAX_CONTENT_TYPE);
    }
    FUZZ_ASSERT(in.has_tags == (in.tags_json != NULL));
    if (in.tags_json) {
        json_t *t = json_loads(in.tags_json, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_ASSERT(t != NULL && vault_tags_ok(t));
        json_decref(t);
    }
    FUZZ_ASSERT(!in.has_nbf || in.nbf >= 0);
    FUZZ_ASSERT(!in.has_exp || in.exp >= 0);
    vault_json_wipe(in.root);
    vault_secret_input_free(&in);
}

static void name_rules(const char *s)
{
    if (vault_name_ok(s)) {
        size_t n = strlen(s);
        FUZZ_ASSERT(n >= 1 && n <= MV_SECRET_MAX_NAME);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(isalnum((unsigned char)s[i]) || s[i] == '-');
    }
    if (vault_version_ok(s))
        FUZZ_ASSERT(strlen(s) <= MV_VERSION_LEN);
    (void)vault_api_version_ok(s);
}

static void maxresults(const char *s)
{
    size_t v = 0;
    if (vault_parse_maxresults(s, &v) == MV_OK)
        FUZZ_ASSERT(v >= 1 && v <= MV_LIST_MAX_PAGE);
}

static void skiptoken(const char *s)
{
    char name[MV_SECRET_MAX_NAME + 1];
    if (vault_skiptoken_decode(s, name, sizeof name) != MV_OK)
        return;
    FUZZ_ASSERT(vault_name_ok(name));
    mv_buf again;
    mv_buf_init(&again, 4 * sizeof name);
    FUZZ_ASSERT(vault_skiptoken_encode(name, &again) == MV_OK);
    char back[MV_SECRET_MAX_NAME + 1];
    FUZZ_ASSERT(vault_skiptoken_decode(again.p, back, sizeof back) == MV_OK);
    FUZZ_ASSERT(strcmp(back, name) == 0);
    mv_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0: body(p, n, 1); break;
    case 1: body(p, n, 0); break;
    default: {
        char *s = fuzz_str(p, n);
        if (data[0] % 5 == 2)
            name_rules(s);
        else if (data[0] % 5 == 3)
            maxresults(s);
        else
            skiptoken(s);
        free(s);
    }
    }
    return 0;
}
