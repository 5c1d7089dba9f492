/* join.c: the CA an agent trusts, checked against its join token's pin (docs/internal-protocol.md
 * "Join tokens", "The CA, untrusted until pinned").
 *
 * With a join token, STATE/ca.pem must be a certificate whose SubjectPublicKeyInfo hashes to the
 * token's pin. If it already is (the server's own state dir, or an agent that joined before), it
 * stays. Otherwise, in an agent's own state dir, the CA is fetched from GET {server}/mivault/ca.pem
 * over TLS that verifies nothing, its key is hashed and compared with the pin in constant time,
 * and only then written. Nothing secret travels on that unverified connection; the join token
 * goes out later, on a connection verified against the pinned CA. The server's own ca.pem is
 * never replaced: a pin that does not match it is refused like any other mismatch. */
#include <openssl/crypto.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent_internal.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/ca.h"
#include "http/client.h"

#define CA_FETCH_MAX (64 * 1024)
#define CA_FETCH_ATTEMPTS 5 /* the server may still be starting */

static const char MISMATCH[] = "the server's CA does not match the join token's pin";

/* 1 if the file's CA key hashes to pin. */
static int file_matches(const char *path, const unsigned char pin[32])
{
    unsigned char have[32];
    if (!mv_file_exists(path) || ca_file_spki_sha256(path, have) != MV_OK)
        return 0;
    return CRYPTO_memcmp(have, pin, 32) == 0;
}

static mv_rc fetch_ca(const char *server, struct http_client_resp *r)
{
    mv_rc rc = MV_OK;
    struct http_client *http = NULL;
    char url[MV_MAX_URL + 32];
    static const char *const headers[] = {"Accept: application/x-pem-file", NULL};
    CHECK(mv_fmt(url, sizeof url, "%s/mivault/ca.pem", server));
    CHECK(http_client_new_unverified(&http));
    for (int attempt = 1;; attempt++) {
        rc = http_client_do(http, "GET", url, headers, NULL, 0, CA_FETCH_MAX, r);
        if (rc != MV_ERR_UNAVAILABLE || attempt >= CA_FETCH_ATTEMPTS)
            break;
        http_client_resp_free(r);
        sleep(1);
    }
    ENSURE_MSG(rc == MV_OK, rc, "cannot reach the server at %s to fetch its CA", server);
    ENSURE_MSG(r->status == 200, MV_ERR_UNAVAILABLE,
               "the server at %s did not give its CA (GET /mivault/ca.pem: HTTP %ld)", server,
               r->status);
out:
    http_client_free(http);
    return rc;
}

mv_rc agent_ca_pinned(const char *ca_path, int server_state, const char *server,
                      const unsigned char pin[32])
{
    mv_rc rc = MV_OK;
    struct http_client_resp r = {0};
    unsigned char got[32];
    if (file_matches(ca_path, pin))
        goto out;
    ENSURE_MSG(!server_state, MV_ERR_UNAUTHENTICATED, "%s (%s)", MISMATCH, ca_path);
    CHECK(fetch_ca(server, &r));
    ENSURE_MSG(ca_spki_sha256(r.body.p ? r.body.p : "", r.body.len, got) == MV_OK,
               MV_ERR_UNAUTHENTICATED, "the server at %s sent no CA certificate", server);
    ENSURE_MSG(CRYPTO_memcmp(got, pin, 32) == 0, MV_ERR_UNAUTHENTICATED, "%s (server %s)",
               MISMATCH, server);
    CHECK(mv_write_file(ca_path, r.body.p, r.body.len, 0644));
    LOG_INFO("agent: pinned the server's CA in %s", ca_path);
out:
    http_client_resp_free(&r);
    return rc;
}
