/* fuzz_agent_reply.c: the agent's reading of the authority's token reply
 * (src/agent/authority.c: agent_authority_reply), and the IMDS body rendered from what it read
 * (src/agent/render.c), which is what a workload then receives.
 *
 * Input: one byte choosing the HTTP status, then the reply body. Checked: a 200 that is taken
 * gives a non-empty token with a positive expiry; any other status is never taken; and the
 * rendered IMDS body of a taken token is a JSON object that reads back the token. */
#include <jansson.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void render(const struct agent_token *t)
{
    struct imds_body_tmpl b;
    if (imds_body_tmpl_make("https://vault.azure.net", t, 1700000000, &b) != MV_OK)
        return; /* a token or client id that is not UTF-8: not cached, as documented */
    char *out = malloc(imds_body_max(&b) + 1);
    FUZZ_ASSERT(out != NULL);
    size_t n = imds_body_render(&b, t->exp, 1700000000, out);
    FUZZ_ASSERT(n <= imds_body_max(&b));
    out[n] = '}';
    json_t *j = json_loadb(out, n + 1, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_ASSERT(j != NULL);
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    FUZZ_ASSERT(tok && strcmp(tok, t->access_token) == 0);
    json_decref(j);
    free(out);
    imds_body_tmpl_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 200, 200, 200, 400, 401, 403, 429, 500, 503, 302, 0};
    if (size < 1)
        return 0;
    long status = statuses[data[0] % (sizeof statuses / sizeof statuses[0])];
    struct agent_token t;
    mv_rc rc = agent_authority_reply(status, (const char *)data + 1, size - 1, &t);
    if (rc != MV_OK) {
        FUZZ_ASSERT(t.access_token == NULL);
        return 0;
    }
    FUZZ_ASSERT(status == 200);
    FUZZ_ASSERT(t.access_token && *t.access_token && t.exp > 0);
    FUZZ_ASSERT(memchr(t.client_id, '\0', sizeof t.client_id));
    FUZZ_ASSERT(memchr(t.mirid, '\0', sizeof t.mirid));
    render(&t);
    agent_token_free(&t);
    return 0;
}
