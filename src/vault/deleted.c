/* deleted.c: soft-deleted secrets (reference §4.2): get and list deleted, recover, purge.
 *
 * The SDK pollers depend on these: after DELETE they poll GET /deletedsecrets/{n} until 200
 * (404 = keep polling), after recover they poll GET /secrets/{n}/ until 200; purge must answer
 * exactly 204. Purge protection refuses purge (the retention period then runs its course). */
#include <string.h>

#include "vault/vault_internal.h"

void vault_op_get_deleted(struct vault_ctx *c)
{
    struct st_secret s;
    memset(&s, 0, sizeof s);
    mv_rc rc = store_secret_get_deleted(c->w->st, c->vault.name, c->name, &s);
    if (rc == MV_ERR_NOT_FOUND)
        vault_secret_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_secret(c, &s, VJ_DELETED | VJ_ID_VERSION);
    st_secret_clear(&s);
}

void vault_op_list_deleted(struct vault_ctx *c)
{
    char after[MV_SECRET_MAX_NAME + 1];
    size_t limit = 0, n = 0;
    int has_after = 0;
    struct st_secret *rows = NULL;
    if (!vault_page_params(c, &limit, after, sizeof after, &has_after))
        return;
    mv_rc rc = store_secret_list_deleted(c->w->st, c->vault.name, has_after ? after : NULL,
                                         limit + 1, &rows, &n);
    if (rc != MV_OK) {
        vault_rc_error(c, rc);
        return;
    }
    vault_reply_page(c, rows, n, limit, VJ_DELETED, "/deletedsecrets", 0);
    st_secrets_free(rows, n);
}

void vault_op_recover(struct vault_ctx *c)
{
    struct st_secret s;
    memset(&s, 0, sizeof s);
    if (vault_deleted_managed_refused(c, "Secret"))
        return; /* recover the certificate instead */
    mv_rc rc = store_secret_recover(c->w->st, c->vault.name, c->name);
    if (rc == MV_OK)
        rc = store_secret_get(c->w->st, c->vault.name, c->name, NULL, &s);
    if (rc == MV_ERR_NOT_FOUND)
        vault_secret_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_secret(c, &s, VJ_ID_VERSION);
    st_secret_clear(&s);
}

void vault_op_purge(struct vault_ctx *c)
{
    if (c->vault.purge_protection) {
        vault_error(c, 403, "Forbidden",
                    "Operation \"purge\" is not allowed because purge protection is enabled for "
                    "this vault. Key Vault service will automatically purge it after the "
                    "retention period has passed.",
                    "PurgeProtected");
        return;
    }
    if (vault_deleted_managed_refused(c, "Secret"))
        return; /* purge the certificate instead */
    mv_rc rc = store_secret_purge(c->w->st, c->vault.name, c->name);
    if (rc == MV_ERR_NOT_FOUND)
        vault_secret_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_body(c, 204, NULL, 0); /* reference §4.2: exactly 204, no body */
}
