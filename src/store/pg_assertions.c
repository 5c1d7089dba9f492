/* pg_assertions.c: the client assertion ids the token endpoint has accepted, shared by every
 * server on the database (st_assertions.c has the rules; the same here in one round trip).
 *
 * The write is one autocommit statement. pg_run re-runs it when its commit outcome is unknown;
 * the row it then finds may be its own first attempt, told apart from a replay by the random
 * nonce each call writes. */
#include <string.h>

#include "store/pg_internal.h"

struct jti_use {
    const char *client_id, *jti;
    int64_t keep_until, now;
    char nonce[MV_VERSION_LEN + 1];
};

static mv_rc prune_fn(struct pg_store *pg, void *arg)
{
    const struct jti_use *u = arg;
    struct pg_params pp = {0};
    pp_i64(&pp, u->now);
    return pg_exec(pg, "DELETE FROM assertion_jti WHERE keep_until < $1", &pp, NULL, NULL);
}

static mv_rc use_fn(struct pg_store *pg, void *arg)
{
    mv_rc rc = MV_OK;
    const struct jti_use *u = arg;
    struct pg_params pp = {0};
    PGresult *r = NULL;
    int64_t changes = 0;
    pp_text(&pp, u->client_id);
    pp_text(&pp, u->jti);
    pp_i64(&pp, u->keep_until);
    pp_i64(&pp, u->now);
    pp_text(&pp, u->nonce);
    CHECK(pg_exec(pg,
                  "INSERT INTO assertion_jti (client_id, jti, keep_until, nonce)"
                  " VALUES (lower($1), $2, $3, $5)"
                  " ON CONFLICT (client_id, jti) DO UPDATE SET keep_until = excluded.keep_until,"
                  " nonce = excluded.nonce WHERE assertion_jti.keep_until < $4",
                  &pp, NULL, &changes));
    if (changes == 0 && pg->replay) {
        struct pg_params mine = {0};
        pp_text(&mine, u->client_id);
        pp_text(&mine, u->jti);
        pp_text(&mine, u->nonce);
        CHECK(pg_exec(pg,
                      "SELECT 1 FROM assertion_jti"
                      " WHERE client_id = lower($1) AND jti = $2 AND nonce = $3",
                      &mine, &r, NULL));
        changes = PQntuples(r);
    }
    ENSURE_MSG(changes > 0, MV_ERR_CONFLICT, "store: assertion jti already used");
out:
    PQclear(r);
    return rc;
}

mv_rc pg_assertion_use(struct pg_store *pg, const char *client_id, const char *jti,
                       int64_t keep_until, int64_t now)
{
    mv_rc rc = MV_OK;
    struct jti_use u = {client_id, jti, keep_until, now, {0}};
    ENSURE(client_id && client_id[0] && jti && jti[0], MV_ERR_BAD_REQUEST);
    CHECK(mv_hexid(u.nonce));
    if (now >= pg->jti_pruned + ST_JTI_PRUNE_SECS) {
        CHECK(pg_run(pg, PG_WRITE1, prune_fn, &u));
        pg->jti_pruned = now;
    }
    CHECK(pg_run(pg, PG_WRITE1, use_fn, &u));
out:
    return rc;
}
