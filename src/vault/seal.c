/* seal.c: secret values at rest. Every value is sealed with AES-256-GCM under the data key
 * (crypto/aead.h) with the AAD "secret:<vault>/<name>/<version>" (lower-case), so a sealed row
 * moved to another vault, name or version no longer opens (DESIGN §5). */
#include "crypto/aead.h"
#include "vault/vault_internal.h"

mv_rc vault_seal_value(const struct vault_ctx *c, const char *name, const char *version,
                       const char *pt, size_t len, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char aad[MV_VAULT_NAME_MAX + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    CHECK(vault_secret_aad(c->vault_name, name, version, aad, sizeof aad));
    CHECK(aead_seal(c->w->srv->data_key, aad, pt, len, out));
out:
    return rc;
}

mv_rc vault_open_value(const struct vault_ctx *c, const struct st_secret *s, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char aad[MV_VAULT_NAME_MAX + MV_SECRET_MAX_NAME + MV_VERSION_LEN + 16];
    CHECK(vault_secret_aad(c->vault_name, s->name, s->version, aad, sizeof aad));
    mv_buf_init(out, s->sealed.len);
    CHECK(aead_open(c->w->srv->data_key, aad, s->sealed.p, s->sealed.len, out));
out:
    return rc;
}
