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
#include "common/jsonw.h"
#include "vault/vault_internal.h"

/* Strings written here were stored by us as UTF-8: one that is not is an internal error, as
 * json_string's refusal is on the jansson path. */
static mv_rc internal(mv_rc rc) { return rc == MV_ERR_BAD_REQUEST ? MV_ERR_INTERNAL : rc; }

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
    if (flags & VJ_MANAGED) {
        /* a certificate's secret (docs/certificates.md): bundles name its key, items do not */
        if (!(flags & VJ_ITEM)) {
            mv_buf_reset(&id);
            CHECK(mv_buf_addf(&id, "%s/keys/%s/%s", v->url, s->name, s->version));
            CHECK(set_new(o, "kid", json_string(id.p)));
        }
        CHECK(set_new(o, "managed", json_true()));
    }
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
    return internal(jsonw_str(out, s, len, JSONW_STRICT));
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

/* An integer as jansson prints a json_integer; strings escaped as json_dumps escapes them. */
static mv_rc add_int(mv_buf *b, long long v) { return jsonw_int(b, v); }
static mv_rc add_escaped(mv_buf *b, const char *s)
{
    return internal(jsonw_escape(b, s, strlen(s), JSONW_STRICT));
}
static mv_rc add_str(mv_buf *b, const char *s) { return internal(jsonw_str(b, s, strlen(s), JSONW_STRICT)); }

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
    if (flags & VJ_MANAGED) {
        /* a certificate's secret: its key of the same name and version (docs/certificates.md) */
        CHECK(add_lit(out, ",\"kid\":\""));
        CHECK(add_escaped(out, v->url));
        CHECK(add_lit(out, "/keys/"));
        CHECK(add_escaped(out, s->name));
        CHECK(add_lit(out, "/"));
        CHECK(add_escaped(out, s->version));
        CHECK(add_lit(out, "\",\"managed\":true"));
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
