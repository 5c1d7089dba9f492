/* params.c: the vault's query and path parameters: api-version allowlist, object names and
 * versions, maxresults, $skiptoken, and the AAD that binds a sealed value to its row.
 *
 * Pure functions of their arguments (unit-tested in tests/unit/test_vault_parse.c). */
#include <ctype.h>
#include <string.h>

#include "common/b64.h"
#include "common/util.h"
#include "vault/vault_internal.h"

/* Reference §4.1: "Accept at least 7.0–7.6 and 2025-07-01"; 2016-10-01 is what the oldest
 * Python client still lists; the two previews are sent by pinned SDK builds. */
static const char *const API_VERSIONS[] = {
    "2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01",
    "7.6-preview.2", "7.5-preview.1",
    "7.4-preview.1", /* Debian's azure-keyvault-keys 4.8.0b3 (reference §5.6) */
    NULL,
};

int vault_api_version_ok(const char *v)
{
    if (!v)
        return 0;
    for (size_t i = 0; API_VERSIONS[i]; i++)
        if (strcmp(v, API_VERSIONS[i]) == 0)
            return 1;
    return 0;
}

/* Reference §4.1: "secret/key name 1–127 chars, [0-9A-Za-z-]". */
int vault_name_ok(const char *name)
{
    if (!name)
        return 0;
    size_t n = 0;
    for (; name[n]; n++) {
        unsigned char ch = (unsigned char)name[n];
        if (!(isascii(ch) && (isalnum(ch) || ch == '-')) || n >= MV_SECRET_MAX_NAME)
            return 0;
    }
    return n >= 1;
}

/* Versions are system-generated 32-character strings (reference §4.1). We accept any short
 * alphanumeric string so a wrong one is a plain 404 rather than a 400. */
int vault_version_ok(const char *v)
{
    if (!v)
        return 0;
    size_t n = 0;
    for (; v[n]; n++) {
        unsigned char ch = (unsigned char)v[n];
        if (!(isascii(ch) && isalnum(ch)) || n >= MV_VERSION_LEN)
            return 0;
    }
    return 1;
}

mv_rc vault_parse_maxresults(const char *s, size_t *out)
{
    mv_rc rc = MV_OK;
    int64_t v = 0;
    if (!s) {
        *out = MV_LIST_DEFAULT_PAGE;
        return MV_OK;
    }
    ENSURE(s[0] >= '0' && s[0] <= '9', MV_ERR_BAD_REQUEST); /* no sign, no space */
    ENSURE(strlen(s) <= 4, MV_ERR_BAD_REQUEST);
    CHECK(mv_parse_i64(s, &v));
    ENSURE(v >= 1 && v <= MV_LIST_MAX_PAGE, MV_ERR_BAD_REQUEST);
    *out = (size_t)v;
out:
    return rc;
}

mv_rc vault_skiptoken_encode(const char *key, mv_buf *out)
{
    return b64url_encode(out, key, strlen(key));
}

mv_rc vault_skiptoken_decode(const char *tok, char *out, size_t len)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    mv_buf_init(&b, MV_SECRET_MAX_NAME);
    size_t n = tok ? strlen(tok) : 0;
    ENSURE(n > 0 && n <= 4 * ((MV_SECRET_MAX_NAME + 2) / 3) + 2, MV_ERR_BAD_REQUEST);
    rc = b64url_decode(&b, tok, n);
    ENSURE(rc == MV_OK, MV_ERR_BAD_REQUEST);
    ENSURE(b.len == strlen(b.p), MV_ERR_BAD_REQUEST); /* no embedded NUL */
    ENSURE(vault_name_ok(b.p), MV_ERR_BAD_REQUEST);
    CHECK(mv_copy(out, len, b.p));
out:
    mv_buf_free(&b);
    return rc;
}

mv_rc vault_secret_aad(const char *vault, const char *name, const char *version, char *out,
                       size_t len)
{
    mv_rc rc = MV_OK;
    CHECK(vault_cat(out, len, "secret:", vault, "/", name, "/", version, (char *)NULL));
    mv_lower(out);
out:
    return rc;
}
