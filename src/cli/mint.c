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

int verb_token_mint(struct cli *c)
{
    const char *claims_s = cli_get(c, "claims"), *kid = cli_get(c, "kid");
    json_error_t err;
    json_t *claims = NULL;
    struct store *st = NULL;
    struct authority_plane plane;
    unsigned char data_key[32];
    char issuer[320];
    mv_buf out;
    int status = 1;
    memset(&plane, 0, sizeof plane);
    plane.data_key = data_key;
    plane.issuer = issuer;
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
    plane.token_lifetime = c->cfg.token_lifetime;
    char db[PATH_MAX];
    if (state_store_location(&c->paths, &c->cfg, db, sizeof db) != MV_OK || store_open(db, &st) != MV_OK ||
        state_data_key(&c->paths, st, data_key) != MV_OK || state_tenant(st, &plane.tenant) != MV_OK ||
        state_issuer(&c->cfg, plane.tenant.tenant_id, issuer, sizeof issuer) != MV_OK ||
        authority_load_keys(&plane, st) != MV_OK) {
        cli_error("token mint: cannot load the signing key: %s", mv_last_detail());
        goto done;
    }
    if (jws_sign(plane.sign_key, JWS_RS256, kid ? kid : plane.sign_kid, claims, &out) != MV_OK) {
        cli_error("token mint: signing failed");
        goto done;
    }
    printf("%s\n", out.p);
    status = 0;
done:
    authority_free_keys(&plane);
    OPENSSL_cleanse(data_key, sizeof data_key);
    store_close(st);
    json_decref(claims);
    mv_buf_free(&out);
    return status;
}
