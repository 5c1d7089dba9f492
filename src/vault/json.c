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
