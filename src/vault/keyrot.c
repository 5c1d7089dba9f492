/* keyrot.c: key rotation (docs/keys.md "Rotation"): POST /keys/{n}/rotate, GET and PUT
 * /keys/{n}/rotationpolicy, and the scheduler that performs due Rotate actions.
 *
 * A policy is stored as its normalised JSON text ({"lifetimeActions":[{"trigger":{...},
 * "action":{"type":"Rotate"|"Notify"}}],"attributes":{"expiryTime"?}}); created/updated are the
 * row's. The scheduler (vault_key_rotation_tick, loop 0 of every server, every few seconds) reads
 * all policies; for a Rotate action whose trigger is due against the key's latest version it first
 * claims that version in the store (store_key_policy_claim: a conditional update, so with N
 * servers on one database exactly one of them rotates it), then adds the new version. Notify
 * actions are kept and returned; mivault has no event bus to send them to. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "http/offload.h"
#include "vault/vault_internal.h"

int64_t vault_iso_duration(const char *s)
{
    if (!s || *s != 'P')
        return -1;
    s++;
    int64_t total = 0;
    int in_time = 0, any = 0, any_time = 0;
    while (*s) {
        if (*s == 'T') {
            if (in_time)
                return -1;
            in_time = 1;
            s++;
            continue;
        }
        if (!isdigit((unsigned char)*s))
            return -1;
        int64_t n = 0;
        int digits = 0;
        while (isdigit((unsigned char)*s)) {
            if (++digits > 9)
                return -1;
            n = n * 10 + (*s++ - '0');
        }
        int64_t unit;
        switch (*s) {
        case 'Y': unit = in_time ? -1 : 365 * 86400LL; break;
        case 'M': unit = in_time ? 60 : 30 * 86400LL; break;
        case 'W': unit = in_time ? -1 : 7 * 86400LL; break;
        case 'D': unit = in_time ? -1 : 86400; break;
        case 'H': unit = in_time ? 3600 : -1; break;
        case 'S': unit = in_time ? 1 : -1; break;
        default: return -1;
        }
        if (unit < 0)
            return -1;
        s++;
        total += n * unit;
        any = 1;
        any_time |= in_time;
    }
    return any && (!in_time || any_time) ? total : -1;
}

/* ---- the policy document ---- */

/* Validates and normalises a KeyRotationPolicy body into *out (new reference). */
static mv_rc parse_policy(const char *body, size_t len, json_t **out, const char **why)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    json_t *in = NULL, *acts = json_array(), *attrs = json_object(), *doc = NULL;
    *out = NULL;
    *why = "The request body is not a valid rotation policy.";
    ENSURE(acts && attrs, MV_ERR_INTERNAL);
    ENSURE(body && len > 0 && vault_json_depth_ok(body, len, MV_MAX_JSON_DEPTH),
           MV_ERR_BAD_REQUEST);
    in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    ENSURE(json_is_object(in), MV_ERR_BAD_REQUEST);
    json_t *la = json_object_get(in, "lifetimeActions");
    ENSURE(!la || json_is_null(la) || (json_is_array(la) && json_array_size(la) <= 10),
           MV_ERR_BAD_REQUEST);
    json_t *a = json_object_get(in, "attributes");
    ENSURE(!a || json_is_null(a) || json_is_object(a), MV_ERR_BAD_REQUEST);
    json_t *et = json_object_get(a, "expiryTime");
    if (et && !json_is_null(et)) {
        *why = "The value of 'expiryTime' must be an ISO 8601 duration.";
        ENSURE(json_is_string(et) && vault_iso_duration(json_string_value(et)) > 0,
               MV_ERR_BAD_REQUEST);
        ENSURE(json_object_set_new(attrs, "expiryTime", json_string(json_string_value(et))) == 0,
               MV_ERR_INTERNAL);
    }
    size_t i;
    json_t *act;
    int have_rotate = 0, have_notify = 0;
    json_array_foreach(la, i, act) {
        *why = "Each lifetime action needs a trigger (timeAfterCreate or timeBeforeExpiry, an "
               "ISO 8601 duration) and an action type (Rotate or Notify).";
        json_t *trig = json_object_get(act, "trigger");
        const char *type = json_string_value(json_object_get(json_object_get(act, "action"), "type"));
        ENSURE(json_is_object(trig) && type, MV_ERR_BAD_REQUEST);
        json_t *tac = json_object_get(trig, "timeAfterCreate");
        json_t *tbe = json_object_get(trig, "timeBeforeExpiry");
        if (json_is_null(tac))
            tac = NULL;
        if (json_is_null(tbe))
            tbe = NULL;
        ENSURE((tac != NULL) != (tbe != NULL), MV_ERR_BAD_REQUEST);
        json_t *t = tac ? tac : tbe;
        ENSURE(json_is_string(t) && vault_iso_duration(json_string_value(t)) > 0,
               MV_ERR_BAD_REQUEST);
        /* reference pitfall 19: any case on input, Rotate / Notify on output */
        const char *norm = strcasecmp(type, "rotate") == 0   ? "Rotate"
                           : strcasecmp(type, "notify") == 0 ? "Notify"
                                                             : NULL;
        ENSURE(norm != NULL, MV_ERR_BAD_REQUEST);
        if (strcmp(norm, "Notify") == 0) {
            *why = "A Notify action takes a timeBeforeExpiry trigger.";
            ENSURE(tbe != NULL, MV_ERR_BAD_REQUEST);
        }
        *why = "A rotation policy holds at most one Rotate and one Notify action.";
        ENSURE(!(strcmp(norm, "Rotate") == 0 ? have_rotate++ : have_notify++), MV_ERR_BAD_REQUEST);
        if (tbe) {
            *why = "A timeBeforeExpiry trigger needs attributes.expiryTime.";
            ENSURE(json_object_get(attrs, "expiryTime"), MV_ERR_BAD_REQUEST);
        }
        json_t *o = json_pack("{s:{s:s},s:{s:s}}", "trigger",
                              tac ? "timeAfterCreate" : "timeBeforeExpiry", json_string_value(t),
                              "action", "type", norm);
        ENSURE(o && json_array_append_new(acts, o) == 0, MV_ERR_INTERNAL);
    }
    doc = json_object();
    ENSURE(doc && json_object_set(doc, "lifetimeActions", acts) == 0 &&
               json_object_set(doc, "attributes", attrs) == 0,
           MV_ERR_INTERNAL);
    *out = doc;
    doc = NULL;
out:
    json_decref(in);
    json_decref(acts);
    json_decref(attrs);
    json_decref(doc);
    return rc;
}

/* The KeyRotationPolicy reply for a stored policy (p may be NULL: none set). */
static void reply_policy(struct vault_ctx *c, const struct st_key_policy *p, const char *name)
{
    mv_rc rc = MV_OK;
    json_error_t jerr;
    json_t *doc = NULL;
    mv_buf id;
    mv_buf_init(&id, MV_MAX_URL);
    if (p && p->policy_json)
        doc = json_loads(p->policy_json, 0, &jerr);
    else
        doc = json_pack("{s:[],s:{}}", "lifetimeActions", "attributes");
    ENSURE(json_is_object(doc), MV_ERR_INTERNAL);
    CHECK(mv_buf_addf(&id, "%s/keys/%s/rotationpolicy", c->url, name));
    ENSURE(json_object_set_new(doc, "id", json_string(id.p)) == 0, MV_ERR_INTERNAL);
    if (p) {
        json_t *a = json_object_get(doc, "attributes");
        ENSURE(json_is_object(a) && json_object_set_new(a, "created", json_integer(p->created)) == 0 &&
                   json_object_set_new(a, "updated", json_integer(p->updated)) == 0,
               MV_ERR_INTERNAL);
    }
    vault_reply_json(c, 200, doc);
    doc = NULL;
out:
    json_decref(doc);
    mv_buf_free(&id);
    if (rc != MV_OK)
        vault_rc_error(c, rc);
}

/* The stored name of a live key (NOT_FOUND: replied 404); *managed: a certificate's key. */
static int key_exists_m(struct vault_ctx *c, char name[MV_SECRET_MAX_NAME + 1], int *managed)
{
    struct st_key k;
    mv_rc rc = store_key_get(c->w->st, c->vault.name, c->name, NULL, &k);
    if (rc == MV_OK) {
        rc = mv_copy(name, MV_SECRET_MAX_NAME + 1, k.name);
        *managed = k.managed;
    }
    st_key_clear(&k);
    if (rc == MV_ERR_NOT_FOUND)
        vault_key_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    return rc == MV_OK;
}

static int key_exists(struct vault_ctx *c, char name[MV_SECRET_MAX_NAME + 1])
{
    int managed = 0;
    return key_exists_m(c, name, &managed);
}

void vault_op_key_policy_get(struct vault_ctx *c)
{
    char name[MV_SECRET_MAX_NAME + 1];
    struct st_key_policy p;
    if (!key_exists(c, name))
        return;
    mv_rc rc = store_key_policy_get(c->w->st, c->vault.name, name, &p);
    if (rc == MV_OK)
        reply_policy(c, &p, name);
    else if (rc == MV_ERR_NOT_FOUND)
        reply_policy(c, NULL, name);
    else
        vault_rc_error(c, rc);
    if (rc == MV_OK)
        free(p.policy_json);
}

void vault_op_key_policy_put(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    char name[MV_SECRET_MAX_NAME + 1];
    const char *why = NULL;
    json_t *doc = NULL;
    struct st_key_policy p, got;
    memset(&p, 0, sizeof p);
    memset(&got, 0, sizeof got);
    if (parse_policy(c->req->body.p, c->req->body.len, &doc, &why) != MV_OK) {
        vault_bad_parameter(c, why);
        goto out;
    }
    int managed = 0;
    if (!key_exists_m(c, name, &managed))
        goto out;
    if (vault_managed_key(c, managed)) { /* a certificate's key renews with the certificate (docs/certificates.md) */
        vault_managed_forbidden(c, "Key", name);
        goto out;
    }
    CHECK(mv_copy(p.vault, sizeof p.vault, c->vault.name));
    CHECK(mv_copy(p.name, sizeof p.name, name));
    p.policy_json = json_dumps(doc, JSON_COMPACT);
    ENSURE(p.policy_json != NULL, MV_ERR_INTERNAL);
    p.created = p.updated = mv_now();
    CHECK(store_key_policy_put(c->w->st, &p));
    CHECK(store_key_policy_get(c->w->st, c->vault.name, name, &got));
    reply_policy(c, &got, name);
out:
    if (rc != MV_OK)
        vault_rc_error(c, rc);
    free(p.policy_json);
    free(got.policy_json);
    json_decref(doc);
}

/* ---- rotation ---- */

/* expiryTime of vault/name's policy in seconds, 0 if none. */
static int64_t policy_expiry(struct store *st, const char *vault, const char *name)
{
    struct st_key_policy p;
    json_error_t jerr;
    int64_t secs = 0;
    if (store_key_policy_get(st, vault, name, &p) != MV_OK)
        return 0;
    json_t *doc = json_loads(p.policy_json, 0, &jerr);
    const char *et = json_string_value(json_object_get(json_object_get(doc, "attributes"), "expiryTime"));
    if (et && (secs = vault_iso_duration(et)) < 0)
        secs = 0;
    json_decref(doc);
    free(p.policy_json);
    return secs;
}

/* Whether made is a key of old's kind (type, and size or curve): what a rotation of old makes. */
static int same_kind(EVP_PKEY *made, EVP_PKEY *old)
{
    if (!made || vkey_is_rsa(made) != vkey_is_rsa(old))
        return 0;
    if (vkey_is_rsa(old))
        return EVP_PKEY_get_bits(made) == EVP_PKEY_get_bits(old);
    const char *a = vkey_curve(made), *b = vkey_curve(old);
    return a && b && strcmp(a, b) == 0;
}

mv_rc vault_key_rotate_kind(const struct vault_plane *srv, struct store *st, const char *vault,
                            const char *name, int *rsa, int *bits, char *crv, size_t crvlen)
{
    mv_rc rc = MV_OK;
    struct st_key cur;
    EVP_PKEY *old = NULL;
    memset(&cur, 0, sizeof cur);
    CHECK(store_key_get(st, vault, name, NULL, &cur));
    CHECK(vault_key_open(srv->data_key, &cur, &old));
    *rsa = vkey_is_rsa(old);
    *bits = *rsa ? EVP_PKEY_get_bits(old) : 0;
    CHECK(mv_copy(crv, crvlen, *rsa ? "" : vkey_curve(old)));
out:
    EVP_PKEY_free(old);
    st_key_clear(&cur);
    return rc;
}

mv_rc vault_key_rotate(const struct vault_plane *srv, struct store *st, const char *vault,
                       const char *name, int64_t now, struct st_key *out)
{
    return vault_key_rotate_made(srv, st, vault, name, now, NULL, out);
}

mv_rc vault_key_rotate_made(const struct vault_plane *srv, struct store *st, const char *vault,
                            const char *name, int64_t now, EVP_PKEY *made, struct st_key *out)
{
    mv_rc rc = MV_OK;
    struct st_key cur;
    EVP_PKEY *old = NULL, *pkey = NULL;
    json_t *jwk = NULL;
    json_error_t jerr;
    char version[MV_VERSION_LEN + 1];
    const char *why = NULL;
    memset(out, 0, sizeof *out);
    CHECK(store_key_get(st, vault, name, NULL, &cur));
    CHECK(vault_key_open(srv->data_key, &cur, &old));
    jwk = json_loads(cur.jwk_json, 0, &jerr);
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    ENSURE(kty != NULL, MV_ERR_INTERNAL);
    int rsa = vkey_is_rsa(old);
    if (same_kind(made, old)) {
        ENSURE(EVP_PKEY_up_ref(made) == 1, MV_ERR_INTERNAL);
        pkey = made; /* generated off the loop for this rotation */
    } else {
        /* none given, or the latest version changed kind meanwhile: made here */
        CHECK(vkey_generate(rsa, rsa ? EVP_PKEY_get_bits(old) : 0, rsa ? NULL : vkey_curve(old),
                            &pkey, &why));
    }
    int64_t life = policy_expiry(st, vault, name);
    struct vault_key_attrs a = {.enabled = 1, .exp = life > 0 ? now + life : 0,
                                .tags_json = cur.tags_json};
    CHECK(mv_hexid(version));
    CHECK(vault_key_row_ops(srv->data_key, vault, cur.name, version, pkey, kty,
                            json_object_get(jwk, "key_ops"), &a, now, out));
    CHECK(store_key_add(st, out));
out:
    if (rc != MV_OK)
        st_key_clear(out);
    json_decref(jwk);
    EVP_PKEY_free(old);
    EVP_PKEY_free(pkey);
    st_key_clear(&cur);
    return rc;
}

/* Writes the new version (made: a key generated for it off the loop, or NULL) and replies. */
static void rotate_and_reply(struct vault_ctx *c, EVP_PKEY *made)
{
    struct st_key k;
    memset(&k, 0, sizeof k);
    mv_rc rc = vault_key_rotate_made(c->w->srv, c->w->st, c->vault.name, c->name, mv_now(), made,
                                     &k);
    if (rc == MV_ERR_NOT_FOUND)
        vault_key_not_found(c, c->name, NULL);
    else if (rc != MV_OK)
        vault_rc_error(c, rc);
    else
        vault_reply_key(c, &k, VJ_ID_VERSION);
    st_key_clear(&k);
}

/* A rotation whose key is generated off the loop (http/offload.h), like a create's (keys.c). */
struct rotgen_job {
    struct vault_deferred d; /* d.c answers */
    int rsa, bits;
    char crv[16];
    EVP_PKEY *pkey;
    const char *why;
};

static void rotgen_free(struct rotgen_job *j)
{
    EVP_PKEY_free(j->pkey);
    vault_deferred_free(&j->d);
    free(j);
}

static void rotgen_run(void *arg)
{
    struct rotgen_job *j = arg;
    if (vkey_generate(j->rsa, j->bits, j->rsa ? NULL : j->crv, &j->pkey, &j->why) != MV_OK) {
        EVP_PKEY_free(j->pkey);
        j->pkey = NULL; /* rotate_and_reply makes one then, and reports its failure */
    }
}

static void rotgen_done(void *arg)
{
    struct rotgen_job *j = arg;
    vault_deferred_resume(&j->d);
    rotate_and_reply(&j->d.c, j->pkey);
    vault_audit(&j->d.c);
    rotgen_free(j);
}

static void rotate_later(struct vault_ctx *c)
{
    mv_rc rc = MV_OK;
    struct rotgen_job *j = calloc(1, sizeof *j);
    ENSURE(j != NULL, MV_ERR_INTERNAL);
    rc = vault_key_rotate_kind(c->w->srv, c->w->st, c->vault.name, c->name, &j->rsa, &j->bits,
                               j->crv, sizeof j->crv);
    if (rc == MV_ERR_NOT_FOUND) {
        rc = MV_OK;
        vault_key_not_found(c, c->name, NULL);
        goto out;
    }
    CHECK(rc);
    CHECK(vault_defer(c, &j->d)); /* rotgen_done replies and audits */
    rc = http_offload_submit(c->w->srv->offload, c->w->base, rotgen_run, rotgen_done, j);
    if (rc != MV_OK) {
        vault_deferred_fail(&j->d, rc);
        rotgen_free(j);
    }
    return;
out:
    if (j)
        rotgen_free(j);
    if (rc != MV_OK && !c->deferred)
        vault_rc_error(c, rc);
}

void vault_op_key_rotate(struct vault_ctx *c)
{
    struct st_key k;
    memset(&k, 0, sizeof k);
    mv_rc rc = store_key_get(c->w->st, c->vault.name, c->name, NULL, &k);
    int managed = rc == MV_OK && vault_managed_key(c, k.managed);
    st_key_clear(&k);
    if (managed) {
        vault_managed_forbidden(c, "Key", c->name);
        return;
    }
    if (c->w->srv->offload) {
        rotate_later(c);
        return;
    }
    rotate_and_reply(c, NULL);
}

/* Is the Rotate action of policy p due for key k at now? */
static int rotation_due(const char *policy_json, const struct st_key *k, int64_t now)
{
    json_error_t jerr;
    json_t *doc = json_loads(policy_json, 0, &jerr);
    size_t i;
    json_t *act;
    int due = 0;
    json_array_foreach(json_object_get(doc, "lifetimeActions"), i, act) {
        const char *type = json_string_value(json_object_get(json_object_get(act, "action"), "type"));
        if (!type || strcasecmp(type, "Rotate") != 0)
            continue;
        json_t *trig = json_object_get(act, "trigger");
        const char *tac = json_string_value(json_object_get(trig, "timeAfterCreate"));
        const char *tbe = json_string_value(json_object_get(trig, "timeBeforeExpiry"));
        int64_t d = vault_iso_duration(tac ? tac : tbe);
        if (d <= 0)
            continue;
        if (tac && now >= k->created + d)
            due = 1;
        if (tbe && k->exp && now >= k->exp - d)
            due = 1;
    }
    json_decref(doc);
    return due;
}

void vault_key_rotation_tick(const struct vault_plane *srv, struct store *st, int64_t now)
{
    struct st_key_policy *ps = NULL;
    size_t n = 0;
    if (store_key_policy_list(st, &ps, &n) != MV_OK) {
        LOG_WARN("key rotation: listing policies failed: %s", mv_last_detail());
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct st_key k, made;
        if (store_key_get(st, ps[i].vault, ps[i].name, NULL, &k) != MV_OK)
            continue; /* deleted (or a store hiccup: next tick) */
        if (!k.managed && rotation_due(ps[i].policy_json, &k, now) &&
            store_key_policy_claim(st, ps[i].vault, ps[i].name, k.version) == MV_OK) {
            if (vault_key_rotate(srv, st, ps[i].vault, ps[i].name, now, &made) == MV_OK)
                LOG_INFO("key rotation: %s/%s rotated to version %s", ps[i].vault, ps[i].name,
                         made.version);
            else
                LOG_WARN("key rotation: %s/%s failed: %s", ps[i].vault, ps[i].name,
                         mv_last_detail());
            st_key_clear(&made);
        }
        st_key_clear(&k);
    }
    st_key_policies_free(ps, n);
}
