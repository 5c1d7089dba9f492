/* st_assertions.c: the client assertion ids the token endpoint has accepted (RFC 7523 §3
 * item 7, "the authorization server MAY ensure that JWTs are not replayed by maintaining the
 * set of used "jti" values for the length of time for which the JWT would be considered
 * valid"). One row per (client, jti), kept until the assertion could no longer be accepted.
 *
 * The INSERT is the check: a row already there and still kept means a replay (CONFLICT); an
 * expired row left over before the next prune is taken over. Expired rows are pruned at most
 * every ST_JTI_PRUNE_SECS per connection, so the table holds at most the assertions of the last
 * MV_ASSERTION_MAX_LIFETIME_SECS + skew plus one prune period. */
#include "store/sqlite_internal.h"

mv_rc sq_assertion_use(struct store *st, const char *client_id, const char *jti,
                       int64_t keep_until, int64_t now)
{
    mv_rc rc = MV_OK;
    sqlite3_stmt *s = NULL;
    int64_t changes = 0;
    ENSURE(client_id && client_id[0] && jti && jti[0], MV_ERR_BAD_REQUEST);
    if (now >= st->jti_pruned + ST_JTI_PRUNE_SECS) {
        CHECK(st_prep(st, ST_Q_JTI_PRUNE, "DELETE FROM assertion_jti WHERE keep_until < ?1", &s));
        st_bind_i64(st, s, 1, now);
        CHECK(st_run(st, s, NULL));
        st_done(s);
        s = NULL;
        st->jti_pruned = now;
    }
    CHECK(st_prep(st, ST_Q_JTI_USE,
                  "INSERT INTO assertion_jti (client_id, jti, keep_until) VALUES (?1, ?2, ?3)"
                  " ON CONFLICT (client_id, jti) DO UPDATE SET keep_until = excluded.keep_until"
                  " WHERE assertion_jti.keep_until < ?4",
                  &s));
    st_bind_text(st, s, 1, client_id);
    st_bind_text(st, s, 2, jti);
    st_bind_i64(st, s, 3, keep_until);
    st_bind_i64(st, s, 4, now);
    CHECK(st_run(st, s, &changes));
    ENSURE_MSG(changes > 0, MV_ERR_CONFLICT, "store: assertion jti already used");
out:
    st_done(s);
    return rc;
}
