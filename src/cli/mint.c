/* mint.c: `mivault token mint`: the admin signs arbitrary claims with the tenant's current
 * signing key. It exists so that teams (and our own tests) can exercise a resource's 401 paths
 * with correctly signed but wrong tokens: expired, another issuer, another tenant, another
 * audience, an unknown kid. It needs the state dir and the master key, i.e. full control of
 * the authority already; it never talks to the network. */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authority/authority.h"
#include "cli/cli.h"
#include "crypto/jws.h"
#include "server/context.h"

int verb_token_mint(struct cli *c)
{
    const char *claims_s = cli_get(c, "claims"), *kid = cli_get(c, "kid");
    json_error_t err;
    json_t *claims = NULL;
    struct store *st = NULL;
    struct mv_server *srv = NULL;
    mv_buf out;
    int status = 1;
    mv_buf_init(&out, MV_MAX_TOKEN_BYTES);
    if (!claims_s)
        return cli_error("token mint: --claims JSON is required") + 1;
    claims = json_loads(claims_s, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(claims)) {
        cli_error("token mint: --claims must be a JSON object (%s)", err.text);
        goto done;
    }
    if (cli_load_state(c) != MV_OK)
        goto done;
    srv = calloc(1, sizeof *srv);
    char db[PATH_MAX];
    if (!srv || state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK || store_open(db, &st) != MV_OK || state_data_key(&c->paths, st, srv->data_key) != MV_OK ||
        state_tenant(st, &srv->tenant) != MV_OK ||
        state_issuer(&c->cfg, srv->tenant.tenant_id, srv->issuer, sizeof srv->issuer) != MV_OK ||
        authority_load_keys(srv, st) != MV_OK) {
        cli_error("token mint: cannot load the signing key: %s", mv_last_detail());
        goto done;
    }
    if (jws_sign(srv->sign_key, JWS_RS256, kid ? kid : srv->sign_kid, claims, &out) != MV_OK) {
        cli_error("token mint: signing failed");
        goto done;
    }
    printf("%s\n", out.p);
    status = 0;
done:
    if (srv) {
        authority_free_keys(srv);
        OPENSSL_cleanse(srv->data_key, sizeof srv->data_key);
        free(srv);
    }
    store_close(st);
    json_decref(claims);
    mv_buf_free(&out);
    return status;
}
