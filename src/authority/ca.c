/* ca.c: GET /mivault/ca.pem, the server's CA certificate (PEM), unauthenticated.
 *
 * An agent on another machine has nothing to trust the server with yet. It fetches this
 * without verifying TLS and accepts it only if the SHA-256 of its SubjectPublicKeyInfo equals
 * the pin in its join token (docs/internal-protocol.md "Join tokens"); from then on every TLS
 * connection it makes is verified against it. The certificate is public: serving it to anyone
 * discloses nothing. Only ca.pem is read, never ca.key; the file is a few hundred bytes and
 * stays in the page cache, so it is read per request rather than cached per worker. */
#include <stdlib.h>

#include "authority/internal.h"
#include "common/log.h"
#include "common/util.h"
#include "http/reply.h"

#define CA_PEM_MAX (64 * 1024)

void authority_ca_pem(http_req *req, const struct authority_route_args *a)
{
    const struct authority_plane *p = a->w->srv;
    char *pem = NULL;
    size_t len = 0;
    if (mv_read_file(p->ca_pem, CA_PEM_MAX, &pem, &len) != MV_OK) {
        LOG_WARN("authority: cannot read %s: %s", p->ca_pem, mv_last_detail());
        reply_rc_oauth(req, MV_ERR_INTERNAL);
        return;
    }
    http_set_header(req, "Cache-Control", "no-store");
    http_reply(req, 200, "application/x-pem-file", pem, len);
    free(pem);
}
