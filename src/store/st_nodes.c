/* st_nodes.c: enrolled host agents (nodes) and their one-time join tokens.
 *
 * A join token is stored only as the hex SHA-256 of the token (internal-protocol.md), is
 * bound to one VM, expires, and is consumed at most once: store_join_consume marks it used in
 * a single UPDATE ... RETURNING, so two consumers racing on one token (even from two
 * processes) cannot both succeed. Both nodes and tokens go with their VM (ON DELETE CASCADE). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"

void st_node_clear(struct st_node *n)
{
    if (!n)
        return;
    free(n->public_key_pem);
    n->public_key_pem = NULL;
}

mv_rc sq_node_put(struct store *st, const struct st_node *n)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(n->client_id[0] && n->public_key_pem, MV_ERR_BAD_REQUEST);
    /* An unknown VM fails the foreign key: NOT_FOUND. */
    CHECK(st_prep(st, ST_Q_NODE_PUT,
                  "INSERT INTO nodes (client_id, vm, public_key_pem, created)"
                  " VALUES (?1, ?2, ?3, ?4)"
                  " ON CONFLICT (client_id) DO UPDATE SET vm = excluded.vm,"
                  " public_key_pem = excluded.public_key_pem, created = excluded.created",
                  &s));
    st_bind_text(st, s, 1, n->client_id);
    st_bind_text(st, s, 2, n->vm);
    st_bind_text(st, s, 3, n->public_key_pem);
    st_bind_i64(st, s, 4, n->created);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_node_get(struct store *st, const char *client_id, struct st_node *out)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    CHECK(st_prep(st, ST_Q_NODE_GET,
                  "SELECT client_id, vm, public_key_pem, created FROM nodes WHERE client_id = ?1",
                  &s));
    st_bind_text(st, s, 1, client_id);
    CHECK(st_step(st, s, &row));
    ENSURE(row, MV_ERR_NOT_FOUND);
    CHECK(st_col_text(s, 0, out->client_id, sizeof out->client_id));
    CHECK(st_col_text(s, 1, out->vm, sizeof out->vm));
    CHECK(st_col_dup(s, 2, &out->public_key_pem));
    ENSURE(out->public_key_pem, MV_ERR_INTERNAL);
    out->created = (int64_t)sqlite3_column_int64(s, 3);
out:
    st_done(s);
    if (rc != MV_OK)
        st_node_clear(out);
    return rc;
}

mv_rc sq_join_put(struct store *st, const char *token_hash, const char *vm, int64_t expires)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    ENSURE(token_hash && token_hash[0] && vm, MV_ERR_BAD_REQUEST);
    CHECK(st_prep(st, ST_Q_JOIN_PUT,
                  "INSERT INTO join_tokens (token_hash, vm, expires) VALUES (?1, ?2, ?3)", &s));
    st_bind_text(st, s, 1, token_hash);
    st_bind_text(st, s, 2, vm);
    st_bind_i64(st, s, 3, expires);
    CHECK(st_run(st, s, NULL));
out:
    st_done(s);
    return rc;
}

mv_rc sq_join_consume(struct store *st, const char *token_hash, int64_t now,
                         char vm_out[ST_NAME])
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int row = 0;
    vm_out[0] = '\0';
    /* One statement: the check (unused, unexpired) and the mark are one atomic write. */
    CHECK(st_prep(st, ST_Q_JOIN_CONSUME,
                  "UPDATE join_tokens SET used = ?2"
                  " WHERE token_hash = ?1 AND used = 0 AND expires > ?2 RETURNING vm",
                  &s));
    st_bind_text(st, s, 1, token_hash);
    st_bind_i64(st, s, 2, now > 0 ? now : 1); /* used != 0 marks it spent */
    CHECK(st_step(st, s, &row));
    ENSURE_MSG(row, MV_ERR_NOT_FOUND, "store: join token unknown, used or expired");
    CHECK(st_col_text(s, 0, vm_out, ST_NAME));
    /* Step to the end so the UPDATE completes (RETURNING rows come before the commit). */
    while (row)
        CHECK(st_step(st, s, &row));
out:
    st_done(s);
    if (rc != MV_OK)
        vm_out[0] = '\0';
    return rc;
}

/* Re-enrollment: the VM's earlier node keys stop authenticating, and spent or expired join
 * tokens (of every VM) go. One transaction (a savepoint inside the caller's). */
mv_rc sq_node_revoke_vm(struct store *st, const char *vm, int64_t now)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    struct st_tx tx = {0};
    ENSURE(vm && vm[0], MV_ERR_BAD_REQUEST);
    CHECK(st_tx_begin(st, &tx));
    CHECK(st_prep(st, ST_Q_NODE_REVOKE_VM, "DELETE FROM nodes WHERE vm = ?1", &s));
    st_bind_text(st, s, 1, vm);
    CHECK(st_run(st, s, NULL));
    st_done(s);
    s = NULL;
    CHECK(st_prep(st, ST_Q_JOIN_PURGE, "DELETE FROM join_tokens WHERE expires <= ?1 OR used <> 0",
                  &s));
    st_bind_i64(st, s, 1, now);
    CHECK(st_run(st, s, NULL));
    st_done(s);
    s = NULL;
    CHECK(st_tx_commit(st, &tx));
out:
    st_done(s);
    st_tx_end(st, &tx);
    return rc;
}
