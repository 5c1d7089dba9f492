/* validate.c: access-token validation on the resource side (vault, control plane), see
 * validate.h for the order of the checks.
 *
 * Trust: the signing keys of the store that are still published, parsed into the loop's key
 * set on first use, reloaded when the store's change generation moved (a key rotated in or
 * retired anywhere: compared at most once per TOKEN_KEYSET_CHECK_MS, or KEYSET_MISS_CHECK_MS on
 * an unknown kid) or when older than KEYSET_MAX_AGE_MS (whatever the feed says), and on an
 * unknown kid at most once per KEYSET_RELOAD_INTERVAL_MS, so a flood of tokens with random kids
 * costs at most a generation read per KEYSET_MISS_CHECK_MS. Only RS256 is
 * accepted (RFC 8725 §3.1: "none" and HS* are never in the allowlist; jwt_parse refuses them),
 * a kid is required, and the key is found by kid — never by what else the header says. Times
 * use MV_CLOCK_SKEW_SECS. One loop's key set is touched by its own thread only. */
#include "token/validate.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "common/limits.h"
#include "common/log.h"
#include "common/util.h"
#include "crypto/digest.h"
#include "crypto/jws.h"
#include "crypto/keys.h"

#define KEYSET_RELOAD_INTERVAL_MS 5000
#define KEYSET_MISS_CHECK_MS 100
#define KEYSET_MAX_AGE_MS 30000

void token_keyset_free(struct token_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        EVP_PKEY_free(ks->keys[i].key);
        ks->keys[i] = (struct token_key){{0}, NULL};
    }
    ks->n = 0;
    ks->loaded_ms = 0;
}

int token_key_published(int64_t retired, int64_t now, int64_t token_lifetime)
{
    if (token_lifetime <= 0)
        token_lifetime = MV_TOKEN_LIFETIME_SECS;
    return retired == 0 || retired > now - token_lifetime - MV_CLOCK_SKEW_SECS;
}

mv_rc token_keyset_reload(struct token_keyset *ks, struct store *st, int64_t token_lifetime)
{
    mv_rc rc = MV_OK;
    struct st_signing_key *rows = NULL;
    size_t n = 0;
    int64_t now = mv_now(), now_ms = mv_now_ms();
    int64_t gen = -1;
    struct token_keyset fresh;
    memset(&fresh, 0, sizeof fresh);
    ks->loaded_ms = now_ms > 0 ? now_ms : 1; /* 0 means "never loaded" */
    ks->checked_ms = ks->loaded_ms;
    if (store_generation(st, &gen) != MV_OK)
        gen = -1; /* compared again at the next check */
    CHECK(store_signing_keys(st, &rows, &n));
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY *k = NULL;
        if (!token_key_published(rows[i].retired, now, token_lifetime))
            continue; /* every token it signed has expired */
        if (fresh.n == TOKEN_MAX_KEYS) {
            LOG_WARN("validate: more than %d signing keys; ignoring the rest", TOKEN_MAX_KEYS);
            break;
        }
        if (!rows[i].public_pem ||
            keys_from_public_pem(rows[i].public_pem, strlen(rows[i].public_pem), &k) != MV_OK ||
            !keys_is_rsa(k)) {
            LOG_WARN("validate: skipping unusable signing key %s", rows[i].kid);
            EVP_PKEY_free(k);
            continue;
        }
        struct token_key *v = &fresh.keys[fresh.n++];
        memcpy(v->kid, rows[i].kid, sizeof v->kid);
        v->key = k;
    }
    fresh.loaded_ms = ks->loaded_ms;
    fresh.checked_ms = ks->checked_ms;
    fresh.gen = gen;
    token_keyset_free(ks);
    *ks = fresh;
out:
    st_signing_keys_free(rows, n);
    return rc;
}

static EVP_PKEY *find_key(const struct token_keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return ks->keys[i].key;
    return NULL;
}

/* Reloads ks when the store's generation moved since it was loaded (a key rotated in or retired
 * by any process or server), comparing at most once per TOKEN_KEYSET_CHECK_MS. */
static void follow_generation(struct token_verifier *tv, int64_t every_ms)
{
    struct token_keyset *ks = tv->keys;
    int64_t now_ms = mv_now_ms(), gen = -1;
    if (ks->loaded_ms == 0 || now_ms - ks->checked_ms < every_ms)
        return;
    ks->checked_ms = now_ms;
    /* Unchanged generation: nothing to do, unless the set is KEYSET_MAX_AGE_MS old (a stalled
     * change feed must not keep a retired key accepted for long). */
    if (store_generation(tv->st, &gen) == MV_OK && gen == ks->gen && gen >= 0 &&
        now_ms - ks->loaded_ms < KEYSET_MAX_AGE_MS)
        return;
    if (token_keyset_reload(ks, tv->st, tv->token_lifetime) != MV_OK)
        LOG_WARN("validate: cannot reload the signing keys (%s); keeping the old set",
                 mv_last_detail());
}

int token_keyset_knows(struct token_verifier *tv, const char *kid)
{
    follow_generation(tv, TOKEN_KEYSET_CHECK_MS);
    return find_key(tv->keys, kid) != NULL;
}

/* The key for kid: loads lazily; follows the generation; on a miss reloads, rate-limited. NULL
 * if unknown. */
static mv_rc key_for(struct token_verifier *tv, const char *kid, EVP_PKEY **out)
{
    mv_rc rc = MV_OK;
    struct token_keyset *ks = tv->keys;
    follow_generation(tv, TOKEN_KEYSET_CHECK_MS);
    *out = find_key(ks, kid);
    if (*out)
        goto out;
    /* An unknown kid may be a key just rotated in: look at the generation sooner (a flood of
     * random kids still costs at most one generation read per KEYSET_MISS_CHECK_MS). */
    follow_generation(tv, KEYSET_MISS_CHECK_MS);
    *out = find_key(ks, kid);
    if (*out)
        goto out;
    if (ks->loaded_ms == 0 || mv_now_ms() - ks->loaded_ms >= KEYSET_RELOAD_INTERVAL_MS) {
        CHECK(token_keyset_reload(ks, tv->st, tv->token_lifetime));
        *out = find_key(ks, kid);
    }
out:
    return rc;
}

/* A string claim copied into dst; 0 if absent, not a string or too long. */
static int copy_claim(const jwt *t, const char *name, char *dst, size_t dstlen)
{
    const char *v = jwt_claim_str(t, name);
    dst[0] = '\0';
    if (!v)
        return 0;
    size_t n = strlen(v);
    if (n >= dstlen)
        return 0;
    memcpy(dst, v, n + 1);
    return 1;
}

static int in_list(const char *s, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* The claim checks once the signature holds. Sets *why; MV_ERR_UNAUTHENTICATED on failure. */
static mv_rc check_claims(const struct token_verifier *tv, const jwt *t,
                          struct token_info *info, enum token_failure *why)
{
    mv_rc rc = MV_OK;
    long long exp = 0, nbf = 0;
    int64_t now = mv_now();
    int have_aud = copy_claim(t, "aud", info->aud, sizeof info->aud);
    int have_iss = copy_claim(t, "iss", info->iss, sizeof info->iss);

    *why = TOKEN_BAD_ISSUER;
    ENSURE_MSG(have_iss && strcmp(info->iss, tv->issuer) == 0, MV_ERR_UNAUTHENTICATED,
               "token issuer is not ours");
    *why = TOKEN_BAD_TENANT;
    ENSURE_MSG(copy_claim(t, "tid", info->tid, sizeof info->tid) &&
                   strcmp(info->tid, tv->tenant_id) == 0,
               MV_ERR_UNAUTHENTICATED, "token tenant is not ours");
    /* RFC 7519 §4.1.3: "If the principal processing the claim does not identify itself with a
     * value in the "aud" claim when this claim is present, then the JWT MUST be rejected."
     * Exact string comparison (reference §3.2: no normalisation). */
    *why = TOKEN_BAD_AUDIENCE;
    ENSURE_MSG(have_aud && in_list(info->aud, tv->audiences), MV_ERR_UNAUTHENTICATED,
               "token audience not accepted here");
    /* RFC 7519 §4.1.4: reject on or after exp, with a small leeway for clock skew. */
    *why = TOKEN_MALFORMED;
    ENSURE_MSG(jwt_claim_int(t, "exp", &exp) == MV_OK, MV_ERR_UNAUTHENTICATED,
               "token without an integer exp");
    info->exp = (int64_t)exp;
    *why = TOKEN_EXPIRED;
    ENSURE_MSG((int64_t)exp > now - MV_CLOCK_SKEW_SECS, MV_ERR_UNAUTHENTICATED, "token expired");
    /* RFC 7519 §4.1.5: reject before nbf (optional claim; ours always carry it). */
    if (json_object_get(t->claims, "nbf")) {
        *why = TOKEN_MALFORMED;
        ENSURE_MSG(jwt_claim_int(t, "nbf", &nbf) == MV_OK, MV_ERR_UNAUTHENTICATED,
                   "token nbf is not an integer");
        *why = TOKEN_NOT_YET_VALID;
        ENSURE_MSG((int64_t)nbf <= now + MV_CLOCK_SKEW_SECS, MV_ERR_UNAUTHENTICATED,
                   "token not yet valid");
    }
    *why = TOKEN_MALFORMED;
    ENSURE_MSG(copy_claim(t, "oid", info->oid, sizeof info->oid) && info->oid[0],
               MV_ERR_UNAUTHENTICATED, "token without oid");
    if (!copy_claim(t, "appid", info->appid, sizeof info->appid))
        info->appid[0] = '\0';
    *why = TOKEN_OK;
out:
    return rc;
}

mv_rc token_validate(struct token_verifier *tv, const char *token, size_t len,
                     struct token_info *info, enum token_failure *why)
{
    mv_rc rc = MV_OK;
    jwt t;
    int parsed = 0;
    EVP_PKEY *key = NULL;
    memset(info, 0, sizeof *info);
    memset(&t, 0, sizeof t);
    *why = TOKEN_MALFORMED;

    ENSURE_MSG(token && len > 0 && len <= MV_MAX_TOKEN_BYTES, MV_ERR_UNAUTHENTICATED,
               "token empty or too long");
    rc = jwt_parse(token, len, JWS_ALLOW(JWS_RS256), &t);
    ENSURE_MSG(rc == MV_OK, MV_ERR_UNAUTHENTICATED, "token is not an RS256 JWS");
    parsed = 1;
    ENSURE_MSG(t.kid && *t.kid, MV_ERR_UNAUTHENTICATED, "token without kid");
    ENSURE_MSG(strlen(t.kid) < sizeof info->kid, MV_ERR_UNAUTHENTICATED, "token kid too long");
    memcpy(info->kid, t.kid, strlen(t.kid) + 1);

    CHECK(key_for(tv, t.kid, &key));
    *why = TOKEN_BAD_SIGNATURE;
    ENSURE_MSG(key != NULL, MV_ERR_UNAUTHENTICATED, "token kid unknown");
    rc = jwt_verify(&t, key);
    ENSURE_MSG(rc == MV_OK, MV_ERR_UNAUTHENTICATED, "token signature does not verify");

    CHECK(check_claims(tv, &t, info, why));
    CHECK(digest_sha256_hex(token, len, info->hash));
out:
    if (parsed)
        jwt_free(&t);
    if (rc != MV_OK && *why == TOKEN_OK)
        *why = TOKEN_MALFORMED;
    return rc;
}

/* RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, where
 * b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
 * The scheme is case-insensitive (RFC 7235 §2.1). */
const char *token_from_authorization(const char *header, size_t *len)
{
    static const char SCHEME[] = "Bearer";
    if (!header || strncasecmp(header, SCHEME, sizeof SCHEME - 1) != 0)
        return NULL;
    const char *p = header + sizeof SCHEME - 1;
    if (*p != ' ')
        return NULL;
    while (*p == ' ')
        p++;
    size_t n = 0, pad = 0;
    for (; p[n]; n++) {
        char c = p[n];
        int body = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (c == '=')
            pad++;
        else if (!body || pad)
            return NULL; /* a space, a control byte, or a character after the padding */
    }
    if (n == pad || n > MV_MAX_TOKEN_BYTES)
        return NULL;
    *len = n;
    return p;
}
