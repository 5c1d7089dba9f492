/* tls.c: the server's TLS context and the per-connection TLS bufferevent (see server.h).
 *
 * One SSL_CTX is shared by every loop (SSL_new on a shared, no longer modified SSL_CTX is
 * thread-safe in OpenSSL 3). HTTP/1.1 only, so no ALPN callback. */
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "http/internal.h"
#include "http/server.h"

static void ssl_fail(const char *what, const char *file)
{
    char e[256];
    ERR_error_string_n(ERR_get_error(), e, sizeof e);
    ERR_clear_error();
    mv_fail(MV_ERR_INTERNAL, "%s %s: %s", what, file ? file : "", e);
}

mv_rc http_tls_ctx(const char *cert_pem, const char *key_pem, SSL_CTX **out)
{
    mv_rc rc = MV_OK;
    static const unsigned char sid_ctx[] = "mivault";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    *out = NULL;
    if (!ctx) {
        ssl_fail("SSL_CTX_new", NULL);
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    /* TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1). */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        ssl_fail("SSL_CTX_set_min_proto_version", NULL);
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    /* No renegotiation (a client-triggered CPU sink, and useless to HTTP/1.1 clients here);
     * no compression (CRIME); the server's cipher order wins. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) != 1) {
        ssl_fail("SSL_CTX_set_session_id_context", NULL);
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_pem) != 1) {
        ssl_fail("loading certificate chain", cert_pem);
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1) {
        ssl_fail("loading private key", key_pem);
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_fail("private key does not match certificate", cert_pem);
        rc = MV_ERR_INTERNAL;
        goto out;
    }
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return rc;
}

struct bufferevent *http_tls_bevcb(struct event_base *base, void *ssl_ctx)
{
    SSL *ssl = SSL_new(ssl_ctx);
    if (!ssl) {
        LOG_ERROR("SSL_new failed");
        ERR_clear_error();
        return NULL; /* evhttp falls back to plain; http_dispatch refuses such connections */
    }
    /* fd -1: evhttp sets the accepted socket later. CLOSE_ON_FREE frees the SSL and the fd. */
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        LOG_ERROR("bufferevent_openssl_socket_new failed");
        return NULL;
    }
    /* A client that closes without close_notify (most do, after their last response) is a normal
     * end of connection, not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}
