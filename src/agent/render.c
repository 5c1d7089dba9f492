/* render.c: the IMDS token reply rendered without jansson (pure, unit-tested against jansson).
 *
 * The cached-token path is the agent's hot path, and building the reply with json_pack +
 * json_dumps was two thirds of its instructions (docs/benchmarks.md, Profile). Every field of
 * the reply is a string (reference §1.2, §9 item 1) and only expires_in changes, once a second,
 * so the body is rendered once per cache entry (imds_body_tmpl_make, at put) and each reply is
 * three copies and two integers (imds_body_render).
 *
 * Invariant: the bytes are those jansson's json_dumps(JSON_COMPACT) produced for the same
 * object, field order included (jansson keeps insertion order): the escaping below is jansson's
 * (dump.c: '"', '\\' and code points below 0x20 escaped, \b \f \n \r \t by name, the others as
 * \u00XX with upper-case hex; '/' and non-ASCII as they are), and strings that are not valid
 * UTF-8 are refused as jansson refuses them (RFC 3629 §3: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "common/buf.h"
#include "common/jsonw.h"

#define I64_MAX_DIGITS 20 /* "-9223372036854775808" */

mv_rc agent_json_escape(const char *s, mv_buf *out)
{
    return jsonw_escape(out, s, strlen(s), JSONW_STRICT);
}

static mv_rc add_i64_str(mv_buf *b, int64_t v)
{
    return mv_buf_addf(b, "%" PRId64 "\"", v);
}

mv_rc imds_body_tmpl_make(const char *resource, const struct agent_token *t, int64_t fetched,
                          struct imds_body_tmpl *out)
{
    mv_rc rc = MV_OK;
    mv_buf b;
    /* The token, an escaped resource (at most 6 bytes per input byte) and fixed text. */
    mv_buf_init(&b, 6 * (strlen(t->access_token) + strlen(resource) + sizeof t->client_id) + 512);
    *out = (struct imds_body_tmpl){0};
    /* Field order of the reply as it always was (reference §1.2's example). */
    CHECK(mv_buf_adds(&b, "{\"access_token\":\""));
    CHECK(agent_json_escape(t->access_token, &b));
    CHECK(mv_buf_adds(&b, "\",\"refresh_token\":\"\",\"expires_in\":\""));
    out->cut1 = b.len;
    CHECK(mv_buf_adds(&b, "\",\"expires_on\":\""));
    CHECK(add_i64_str(&b, t->exp));
    CHECK(mv_buf_adds(&b, ",\"ext_expires_in\":\""));
    out->cut2 = b.len;
    CHECK(mv_buf_adds(&b, "\",\"not_before\":\""));
    CHECK(add_i64_str(&b, t->nbf ? t->nbf : fetched));
    CHECK(mv_buf_adds(&b, ",\"resource\":\""));
    CHECK(agent_json_escape(resource, &b));
    CHECK(mv_buf_adds(&b, "\",\"token_type\":\"Bearer\",\"client_id\":\""));
    CHECK(agent_json_escape(t->client_id, &b));
    CHECK(mv_buf_adds(&b, "\""));
    out->len = b.len;
    out->p = mv_buf_take(&b);
out:
    if (rc != MV_OK)
        *out = (struct imds_body_tmpl){0};
    mv_buf_free_secret(&b);
    return rc;
}

void imds_body_tmpl_free(struct imds_body_tmpl *b)
{
    if (b->p) {
        OPENSSL_cleanse(b->p, b->len);
        free(b->p);
    }
    *b = (struct imds_body_tmpl){0};
}

size_t imds_body_max(const struct imds_body_tmpl *b)
{
    return b->len + 2 * I64_MAX_DIGITS + 1;
}

/* Decimal digits of v >= 0, written backwards from end; returns the start. */
static char *u64_digits(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

size_t imds_body_render(const struct imds_body_tmpl *b, int64_t exp, int64_t now, char *dst)
{
    char num[I64_MAX_DIGITS];
    int64_t left = exp - now;
    char *end = num + sizeof num;
    char *d = u64_digits(left > 0 ? (uint64_t)left : 0, end);
    size_t nlen = (size_t)(end - d), o = 0;
    memcpy(dst, b->p, b->cut1);
    o += b->cut1;
    memcpy(dst + o, d, nlen);
    o += nlen;
    memcpy(dst + o, b->p + b->cut1, b->cut2 - b->cut1);
    o += b->cut2 - b->cut1;
    memcpy(dst + o, d, nlen);
    o += nlen;
    memcpy(dst + o, b->p + b->cut2, b->len - b->cut2);
    o += b->len - b->cut2;
    return o;
}
