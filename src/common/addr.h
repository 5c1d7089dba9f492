/* addr.h: the two address forms mivault's command line and config take.
 *
 *   listen address   "ADDR:PORT" or "[V6]:PORT" (what a socket binds)
 *   public URL       "https://HOST[:PORT]" (what agents, the CLI and workloads dial: the load
 *                    balancer's address when several servers share one installation)
 *
 * Both are parsed strictly: anything else is refused with a detail that names the form. */
#ifndef MV_COMMON_ADDR_H
#define MV_COMMON_ADDR_H

#include <stddef.h>

#include "common/result.h"

#define MV_ADDR_HOST_MAX 254 /* a DNS name (253) or an IP literal, plus NUL */
#define MV_ADDR_URL_MAX (MV_ADDR_HOST_MAX + 24)

struct mv_listen {
    char host[MV_ADDR_HOST_MAX]; /* "127.0.0.1", "::1" (no brackets) */
    int port;                    /* 0..65535 (0: any free port) */
};

struct mv_public_url {
    char url[MV_ADDR_URL_MAX];   /* normalised: "https://host[:port]", the port left out iff 443 */
    char host[MV_ADDR_HOST_MAX]; /* lower case; an IPv6 literal without its brackets */
    int port;                    /* 1..65535, 443 when the URL names none */
    int is_ip;                   /* host is an IPv4 or IPv6 literal */
};

/* RFC 1123 §2.1 host name of n bytes: dot-separated labels of letters, digits and hyphens,
 * 1..63 long, no hyphen at either end of a label; at most 253 bytes; no wildcard, no trailing
 * dot. */
int mv_dns_name_ok(const char *s, size_t n);
MV_MUST_CHECK mv_rc mv_parse_listen(const char *s, struct mv_listen *out);
/* https only; a host (DNS name, IPv4 literal or [IPv6] literal) and an optional port; an empty
 * path ("/") at most: no user info, path, query or fragment. */
MV_MUST_CHECK mv_rc mv_parse_public_url(const char *s, struct mv_public_url *out);
/* "https://" + host (bracketed if IPv6) + ":port" unless port is 443. */
MV_MUST_CHECK mv_rc mv_https_origin(const char *host, int port, char *out, size_t len);

#endif
