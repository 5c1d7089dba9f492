/* json.c: the response shapes of the secrets API (reference §4.2 "JSON shapes"):
 * SecretBundle, SecretItem, DeletedSecretBundle, DeletedSecretItem, SecretAttributes.
 *
 * Invariants: times are JSON integers (reference §9 item 2); ids are absolute and use the vault
 * URL the client addressed (host and port as sent), so SDK id parsers and challenge caches see
 * the same netloc; a secret value is never put into a jansson object, it is spliced into the
 * serialised text by vault_json_with_value so that its only copies are buffers we wipe. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "vault/vault_internal.h"

/* Reference §4.2: recoveryLevel values; 90 days is the service default ("Recoverable"), fewer
 * days are "CustomizedRecoverable"; "+Purgeable" unless purge protection is on. */
const char *vault_recovery_level(int days, int purge_protection)
{
    if (days <= 0)
        return "Purgeable";
    if (days >= VAULT_RECOVERABLE_DAYS_MAX)
        return purge_protection ? "Recoverable" : "Recoverable+Purgeable";
    return purge_protection ? "CustomizedRecoverable" : "CustomizedRecoverable+Purgeable";
}

static mv_rc set_new(json_t *obj, const char *key, json_t *val)
{
    if (!val || json_object_set_new(obj, key, val) != 0) {
        mv_fail(MV_ERR_INTERNAL, "json: out of memory");
        return MV_ERR_INTERNAL;
    }
    return MV_OK;
}

static mv_rc attributes(const struct st_secret *s, const struct vault_view *v, json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *a = json_object();
    ENSURE(a != NULL, MV_ERR_INTERNAL);
    CHECK(set_new(a, "enabled", json_boolean(s->enabled)));
    if (s->nbf)
        CHECK(set_new(a, "nbf", json_integer(s->nbf)));
    if (s->exp)
        CHECK(set_new(a, "exp", json_integer(s->exp)));
    CHECK(set_new(a, "created", json_integer(s->created)));
    CHECK(set_new(a, "updated", json_integer(s->updated)));
    CHECK(set_new(a, "recoveryLevel", json_string(vault_recovery_level(v->days, v->purge_protection))));
    if (v->days > 0)
        CHECK(set_new(a, "recoverableDays", json_integer(v->days)));
    *out = a;
    a = NULL;
out:
    json_decref(a);
    return rc;
}

mv_rc vault_secret_json(const struct st_secret *s, const struct vault_view *v, unsigned flags,
                        json_t **out)
{
    mv_rc rc = MV_OK;
    json_t *o = json_object();
    json_t *a = NULL;
    mv_buf id;
    mv_buf_init(&id, MV_MAX_URL);
    ENSURE(o != NULL, MV_ERR_INTERNAL);

    if ((flags & VJ_DELETED) && v->days > 0) {
        /* Reference §4.2: "Omit recoveryId if soft-delete is off". */
        CHECK(mv_buf_addf(&id, "%s/deletedsecrets/%s", v->url, s->name));
        CHECK(set_new(o, "recoveryId", json_string(id.p)));
        CHECK(set_new(o, "deletedDate", json_integer(s->deleted)));
        CHECK(set_new(o, "scheduledPurgeDate", json_integer(s->purge_at)));
        mv_buf_reset(&id);
    }
    CHECK(mv_buf_addf(&id, "%s/secrets/%s", v->url, s->name));
    if (flags & VJ_ID_VERSION)
        CHECK(mv_buf_addf(&id, "/%s", s->version));
    CHECK(set_new(o, "id", json_string(id.p)));
    if (s->content_type)
        CHECK(set_new(o, "contentType", json_string(s->content_type)));
    CHECK(attributes(s, v, &a));
    rc = set_new(o, "attributes", a); /* steals a, even on failure */
    a = NULL;
    CHECK(rc);
    if (s->tags_json) {
        json_error_t jerr;
        json_t *tags = json_loads(s->tags_json, 0, &jerr);
        if (json_is_object(tags))
            CHECK(set_new(o, "tags", tags));
        else {
            json_decref(tags);
            LOG_WARN("vault: stored tags of a secret are not a JSON object; omitted");
        }
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    json_decref(a);
    mv_buf_free(&id);
    return rc;
}

mv_rc vault_json_escape(mv_buf *out, const char *s, size_t len)
{
    static const char HEX[] = "0123456789abcdef";
    mv_rc rc = MV_OK;
    size_t run = 0; /* start of the pending run of bytes that need no escaping */
    CHECK(mv_buf_add(out, "\"", 1));
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6];
        size_t n = 0;
        /* RFC 8259 §7: quotation mark, reverse solidus and the control characters (U+0000
         * through U+001F) must be escaped. */
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch, n = 2;
        } else if (ch < 0x20) {
            esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
            esc[4] = HEX[ch >> 4], esc[5] = HEX[ch & 15], n = 6;
        } else {
            continue;
        }
        CHECK(mv_buf_add(out, s + run, i - run));
        CHECK(mv_buf_add(out, esc, n));
        run = i + 1;
    }
    CHECK(mv_buf_add(out, s + run, len - run));
    CHECK(mv_buf_add(out, "\"", 1));
out:
    return rc;
}

mv_rc vault_json_with_value(const json_t *obj, const char *value, size_t len, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char *rest = json_dumps(obj, JSON_COMPACT);
    ENSURE(rest != NULL && rest[0] == '{', MV_ERR_INTERNAL);
    CHECK(mv_buf_adds(out, "{\"value\":"));
    CHECK(vault_json_escape(out, value, len));
    if (strcmp(rest, "{}") != 0)
        CHECK(mv_buf_add(out, ",", 1));
    CHECK(mv_buf_adds(out, rest + 1));
out:
    free(rest);
    return rc;
}

/* ---- the SecretBundle with its value, written directly (the GET hot path) ---- */

/* Allocates b's storage once, for up to n bytes (b must be empty): the writers below then
 * never reallocate. A low estimate is harmless (mv_buf grows as usual). */
static mv_rc reserve(mv_buf *b, size_t n)
{
    if (b->p)
        return MV_OK;
    if (n > b->max)
        n = b->max;
    b->p = malloc(n + 1);
    if (!b->p) {
        mv_fail(MV_ERR_INTERNAL, "out of memory");
        return MV_ERR_INTERNAL;
    }
    b->p[0] = '\0';
    b->len = 0;
    b->cap = n + 1;
    return MV_OK;
}

static mv_rc add_lit(mv_buf *b, const char *s) { return mv_buf_add(b, s, strlen(s)); }

/* An integer as jansson prints a json_integer ("%lld"). */
static mv_rc add_int(mv_buf *b, long long v)
{
    char d[24];
    size_t i = sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--i] = '-';
    return mv_buf_add(b, d + i, sizeof d - i);
}

/* Length of the UTF-8 sequence at s[0..n) (RFC 3629 §4: no overlongs, no surrogates, nothing
 * above U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Bytes copied as they are: printable ASCII but '"' and '\\'. */
static const unsigned char PLAIN[256] = {
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,       /* '"' = 0x22 */
    [0x30] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x40] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x50] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,       /* '\\' = 0x5c */
    [0x60] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    [0x70] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The characters of s escaped as jansson's json_dumps escapes them ('"', '\\', \b \f \n \r \t,
 * other controls \u00XX), quotes not included. Like json_string, refuses invalid UTF-8. */
static mv_rc add_escaped(mv_buf *b, const char *s)
{
    static const char HEX[] = "0123456789ABCDEF";
    mv_rc rc = MV_OK;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), run = 0, i = 0;
    while (i < n) {
        while (i < n && PLAIN[u[i]])
            i++;
        if (i == n)
            break;
        unsigned char ch = u[i];
        char esc[6];
        size_t en = 2;
        if (ch >= 0x80) {
            size_t step = utf8_seq(u + i, n - i);
            ENSURE_MSG(step > 0, MV_ERR_INTERNAL, "json: a string is not UTF-8");
            i += step;
            continue;
        }
        esc[0] = '\\';
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = HEX[ch >> 4], esc[5] = HEX[ch & 15];
            en = 6;
        }
        CHECK(mv_buf_add(b, s + run, i - run));
        CHECK(mv_buf_add(b, esc, en));
        run = ++i;
    }
    CHECK(mv_buf_add(b, s + run, n - run));
out:
    return rc;
}

static mv_rc add_str(mv_buf *b, const char *s)
{
    mv_rc rc = MV_OK;
    CHECK(mv_buf_add(b, "\"", 1));
    CHECK(add_escaped(b, s));
    CHECK(mv_buf_add(b, "\"", 1));
out:
    return rc;
}

mv_rc vault_bundle_json(const struct st_secret *s, const struct vault_view *v, unsigned flags,
                        const char *value, size_t len, mv_buf *out)
{
    mv_rc rc = MV_OK;
    char *tags = NULL;
    if (s->tags_json) {
        json_error_t jerr;
        json_t *t = json_loads(s->tags_json, 0, &jerr);
        if (json_is_object(t)) {
            tags = json_dumps(t, JSON_COMPACT);
            json_decref(t);
            ENSURE_MSG(tags != NULL, MV_ERR_INTERNAL, "json: out of memory");
        } else {
            json_decref(t);
            LOG_WARN("vault: stored tags of a secret are not a JSON object; omitted");
        }
    }
    /* Every escaped byte takes at most 6: a bound for the whole bundle. */
    size_t strs = 2 * strlen(v->url) + 2 * strlen(s->name) + strlen(s->version) +
                  (s->content_type ? strlen(s->content_type) : 0);
    CHECK(reserve(out, 6 * len + 6 * strs + (tags ? strlen(tags) : 0) + 512));

    CHECK(add_lit(out, "{\"value\":"));
    CHECK(vault_json_escape(out, value, len));
    if ((flags & VJ_DELETED) && v->days > 0) {
        /* Reference §4.2: "Omit recoveryId if soft-delete is off". */
        CHECK(add_lit(out, ",\"recoveryId\":\""));
        CHECK(add_escaped(out, v->url));
        CHECK(add_lit(out, "/deletedsecrets/"));
        CHECK(add_escaped(out, s->name));
        CHECK(add_lit(out, "\",\"deletedDate\":"));
        CHECK(add_int(out, (long long)s->deleted));
        CHECK(add_lit(out, ",\"scheduledPurgeDate\":"));
        CHECK(add_int(out, (long long)s->purge_at));
    }
    CHECK(add_lit(out, ",\"id\":\""));
    CHECK(add_escaped(out, v->url));
    CHECK(add_lit(out, "/secrets/"));
    CHECK(add_escaped(out, s->name));
    if (flags & VJ_ID_VERSION) {
        CHECK(add_lit(out, "/"));
        CHECK(add_escaped(out, s->version));
    }
    CHECK(add_lit(out, "\""));
    if (s->content_type) {
        CHECK(add_lit(out, ",\"contentType\":"));
        CHECK(add_str(out, s->content_type));
    }
    CHECK(add_lit(out, s->enabled ? ",\"attributes\":{\"enabled\":true"
                                  : ",\"attributes\":{\"enabled\":false"));
    if (s->nbf) {
        CHECK(add_lit(out, ",\"nbf\":"));
        CHECK(add_int(out, (long long)s->nbf));
    }
    if (s->exp) {
        CHECK(add_lit(out, ",\"exp\":"));
        CHECK(add_int(out, (long long)s->exp));
    }
    CHECK(add_lit(out, ",\"created\":"));
    CHECK(add_int(out, (long long)s->created));
    CHECK(add_lit(out, ",\"updated\":"));
    CHECK(add_int(out, (long long)s->updated));
    CHECK(add_lit(out, ",\"recoveryLevel\":\""));
    CHECK(add_lit(out, vault_recovery_level(v->days, v->purge_protection)));
    CHECK(add_lit(out, "\""));
    if (v->days > 0) {
        CHECK(add_lit(out, ",\"recoverableDays\":"));
        CHECK(add_int(out, v->days));
    }
    CHECK(add_lit(out, "}"));
    if (tags) {
        CHECK(add_lit(out, ",\"tags\":"));
        CHECK(add_lit(out, tags));
    }
    CHECK(add_lit(out, "}"));
out:
    free(tags);
    return rc;
}
