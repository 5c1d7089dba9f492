/* limits.h: every limit of mivault as a named constant, in one place (DESIGN §8).
 * Limits before authentication are tighter than after it. */
#ifndef MV_COMMON_LIMITS_H
#define MV_COMMON_LIMITS_H

/* HTTP, all listeners */
#define MV_MAX_HEADER_BYTES (16 * 1024)       /* all request headers together */
#define MV_MAX_BODY_BYTES (2 * 1024 * 1024)   /* largest body any route accepts: restore blobs */
#define MV_MAX_URI_BYTES 4096
#define MV_HTTP_TIMEOUT_SECS 30               /* idle/read timeout per connection */
#define MV_MAX_CONNECTIONS 4096               /* per listener (config maxConnections) */
#define MV_HEADER_TIMEOUT_SECS 10             /* a request head complete within, in total */
#define MV_BODY_MIN_RATE 1024                 /* bytes/s a body keeps up after that (bodyMinRate) */
#define MV_UNAUTH_BODY_BYTES (16 * 1024)      /* any body without an Authorization header */
/* Descriptors kept free of connections, for the store, the audit log and outbound calls:
 * a quarter of RLIMIT_NOFILE, at least MV_FD_HEADROOM_MIN. The rest is shared by at most
 * MV_LISTENERS_PER_PROCESS listeners (`mivault up` runs the server and an agent). */
#define MV_FD_HEADROOM_MIN 64
#define MV_LISTENERS_PER_PROCESS 2
#define MV_ACCEPT_PAUSE_MS 250                /* listener paused this long on EMFILE/ENFILE */

/* IMDS (agent): requests carry no body at all, except the Cloud-Shell form POST */
#define MV_IMDS_MAX_BODY_BYTES 4096
#define MV_IMDS_RATE_PER_SEC 200              /* token requests per second before 429 */

/* Vault: refused requests (401/403) per caller (token oid, else client address) per 10 s,
 * counted apart from the vault's budget; beyond it the caller gets 429 (src/vault/throttle.c) */
#define MV_REFUSED_PER_CALLER 1000
#define MV_REFUSED_CALLERS 4096               /* callers tracked per process (power of two) */

/* Tokens and JOSE */
#define MV_MAX_TOKEN_BYTES 8192               /* a bearer token or client assertion */
#define MV_MAX_JSON_DEPTH 16
#define MV_CLOCK_SKEW_SECS 300                /* allowed skew on exp / nbf / iat */
#define MV_TOKEN_LIFETIME_SECS (24 * 3600)    /* default access token lifetime */
#define MV_ASSERTION_MAX_LIFETIME_SECS 600    /* client assertions must expire within this */
#define MV_JOIN_TOKEN_TTL_SECS (15 * 60)
#define MV_TOKEN_BODY_BYTES (16 * 1024)       /* token endpoint form (before authentication) */
#define MV_ENROLL_BODY_BYTES 4096             /* POST /mivault/enroll JSON (before authentication) */

/* Key Vault (reference §4.1) */
#define MV_SECRET_MAX_VALUE_BYTES (25 * 1024)
#define MV_SECRET_MAX_NAME 127
#define MV_SECRET_MAX_CONTENT_TYPE 255
#define MV_SECRET_MAX_TAGS 15
#define MV_SECRET_MAX_TAG_LEN 256
/* A set-secret body: a 25 KiB value plus 15 tags and a content type, as the SDKs serialise them.
 * Python's json.dumps escapes every non-ASCII character as \uXXXX (a control byte: 6 bytes for 1;
 * a 4-byte character: 12), so a legal value can take 6 times its size on the wire. */
#define MV_VAULT_BODY_BYTES (256 * 1024)
#define MV_LIST_DEFAULT_PAGE 25
#define MV_LIST_MAX_PAGE 25

/* Names */
#define MV_MAX_NAME 64                        /* VM, identity, resource group */
#define MV_VAULT_NAME_MIN 3
#define MV_VAULT_NAME_MAX 24
#define MV_MAX_SCOPE 512
#define MV_MAX_URL 1024

/* Audit log rotation (config auditMaxBytes, auditKeep): 100 MiB a file, ten rotated files kept,
 * so one server's trail takes at most ~1.1 GB of disk. */
#define MV_AUDIT_MAX_BYTES (100 * 1024 * 1024)
#define MV_AUDIT_KEEP 10
#define MV_AUDIT_CHECKPOINT_SECS 10 /* audit checkpoints into the store, while records come */

#endif
