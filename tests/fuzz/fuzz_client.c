/* fuzz_client.c: libmivault's parsing of what servers send it (src/client/): the Key Vault
 * WWW-Authenticate challenge and its domain check, URL authorities, the IMDS token reply, and
 * the error bodies of the vault and of IMDS, and the replies of key operations (keys.c).
 *
 * Input: one byte choosing the parser (and an HTTP status for the error bodies), then the text;
 * a first byte from 0xC0 up selects the key operation reply (bit 0: verify's boolean reply).
 * Checked: a parsed challenge has an authorization and a resource, and passes the domain check
 * only for a vault under the resource's domain; a netloc is lower-case, without userinfo; a
 * parsed token reply has a token and a positive expiry; error bodies always give an error; a
 * key reply's bytes are never more than its text. */
#include <string.h>

#include "client/client_internal.h"
#include "fuzz.h"

#define VAULT_URL "https://myvault.vault.localhost:8443/secrets/db?api-version=7.5"
static const char VAULT_HOST[] = "myvault.vault.localhost";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void challenge(const char *h)
{
    struct client_challenge ch;
    if (client_challenge_parse(h, &ch) != MV_OK)
        return;
    FUZZ_ASSERT(ch.authorization[0] != '\0' && ch.resource[0] != '\0');
    if (client_challenge_check(VAULT_URL, ch.resource) == MV_OK) {
        char res[MV_MAX_URL];
        FUZZ_ASSERT(client_url_netloc(ch.resource, res, sizeof res) == MV_OK);
        const char *c = strrchr(res, ':');
        size_t host = c && !strchr(res, ']') ? (size_t)(c - res) : strlen(res);
        /* The vault's host ends with "." + the resource's host. */
        FUZZ_ASSERT(host < sizeof VAULT_HOST - 1);
        FUZZ_ASSERT(memcmp(VAULT_HOST + (sizeof VAULT_HOST - 1 - host), res, host) == 0);
    }
}

static void netloc(const char *url)
{
    char out[MV_MAX_URL];
    if (client_url_netloc(url, out, sizeof out) != MV_OK)
        return;
    FUZZ_ASSERT(out[0] && !strchr(out, '@') && !strchr(out, '/'));
    for (const char *c = out; *c; c++)
        FUZZ_ASSERT(!(*c >= 'A' && *c <= 'Z'));
}

static void imds_reply(const char *p, size_t n)
{
    mv_buf tok;
    int64_t exp = 0;
    mv_buf_init(&tok, MV_MAX_TOKEN_BYTES);
    if (client_imds_parse(p, n, &tok, &exp) == MV_OK)
        FUZZ_ASSERT(tok.p && tok.len > 0 && exp > 0);
    mv_buf_free_secret(&tok);
}

static void key_reply(const char *p, size_t n, int want_bool)
{
    mv_buf bytes;
    int flag = -1;
    mv_buf_init(&bytes, 4 * 64 * 1024);
    if (client_key_reply(p, n, want_bool, &bytes, &flag) == MV_OK) {
        if (want_bool)
            FUZZ_ASSERT(flag == 0 || flag == 1);
        else
            FUZZ_ASSERT(bytes.len <= n);
    }
    mv_buf_free_secret(&bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {400, 401, 403, 404, 409, 429, 500, 503};
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    long status = statuses[(data[0] >> 3) % 8];
    char *s = fuzz_str(p, n);
    char out[MV_MAX_URL];
    client_begin();
    if (data[0] >= 0xC0) {
        key_reply(p, n, data[0] & 1);
        (void)client_end(MV_OK);
        free(s);
        return 0;
    }
    switch (data[0] % 6) {
    case 0: challenge(s); break;
    case 1: netloc(s); break;
    case 2: imds_reply(p, n); break;
    case 3: FUZZ_ASSERT(client_vault_error(status, p, n) != MV_OK); break;
    case 4: FUZZ_ASSERT(client_imds_error(status, p, n) != MV_OK); break;
    default:
        if (client_scope_to_resource(s, out, sizeof out) == MV_OK)
            FUZZ_ASSERT(strlen(out) <= strlen(s));
        break;
    }
    (void)client_end(MV_OK);
    free(s);
    return 0;
}
