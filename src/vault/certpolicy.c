/* certpolicy.c: CertificatePolicy documents (reference §2.5): validation, the defaults Key
 * Vault fills in, the merge of a PATCH /policy, the policy derived from an imported
 * certificate, and the certs_spec a policy asks for.
 *
 * Pure functions of their arguments (fuzzed by tests/fuzz/fuzz_cert_policy.c). A normalised
 * policy always has key_props {exportable, kty, key_size|crv, reuse_key}, secret_props
 * {contentType}, x509_props {subject, sans?, ekus, key_usage, validity_months},
 * lifetime_actions, issuer {name} and attributes {enabled, created, updated}; whatever else the
 * client sent is dropped, never echoed. */
#include <string.h>
#include <strings.h>

#include "crypto/certs.h"
#include "vault/vault_internal.h"

#define SERVER_AUTH "1.3.6.1.5.5.7.3.1"
#define CLIENT_AUTH "1.3.6.1.5.5.7.3.2"
#define CT_PKCS12 "application/x-pkcs12"
#define CT_PEM "application/x-pem-file"

static int set(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0;
}

static const json_t *obj_member(const json_t *o, const char *k, int *bad)
{
    const json_t *v = o ? json_object_get(o, k) : NULL;
    if (v && json_is_null(v))
        return NULL;
    if (v && !json_is_object(v))
        *bad = 1;
    return json_is_object(v) ? v : NULL;
}

/* A string array of at most CERTS_MAX_NAMES short strings (copied), or NULL. */
static json_t *str_array(const json_t *a, int *bad)
{
    if (!a || json_is_null(a))
        return NULL;
    if (!json_is_array(a) || json_array_size(a) > CERTS_MAX_NAMES) {
        *bad = 1;
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            *bad = 1;
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, json_string(json_string_value(v)));
    }
    return out;
}

static const json_t *pick(const json_t *in, const json_t *base, const char *k)
{
    const json_t *v = in ? json_object_get(in, k) : NULL;
    if (v && !json_is_null(v))
        return v;
    return base ? json_object_get(base, k) : NULL;
}

static int is_ec(const char *kty)
{
    return strcmp(kty, "EC") == 0 || strcmp(kty, "EC-HSM") == 0;
}

mv_rc vault_cert_policy_normalize(const json_t *in, const json_t *base, int64_t now,
                                  json_t **out, const char **why)
{
    mv_rc rc = MV_OK;
    int bad = 0;
    json_t *p = json_object();
    json_t *kp = json_object(), *sp = json_object(), *xp = json_object(), *iss = json_object(),
           *attrs = json_object(), *sans = NULL, *las = NULL;
    *out = NULL;
    *why = "The policy is invalid.";
    ENSURE(p && kp && sp && xp && iss && attrs, MV_ERR_INTERNAL);
    if (in && !json_is_object(in)) {
        *why = "The policy must be a JSON object.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    const json_t *ikp = obj_member(in, "key_props", &bad), *bkp = obj_member(base, "key_props", &bad);
    const json_t *isp = obj_member(in, "secret_props", &bad),
                 *bsp = obj_member(base, "secret_props", &bad);
    const json_t *ixp = obj_member(in, "x509_props", &bad),
                 *bxp = obj_member(base, "x509_props", &bad);
    const json_t *iis = obj_member(in, "issuer", &bad), *bis = obj_member(base, "issuer", &bad);
    const json_t *iat = obj_member(in, "attributes", &bad),
                 *bat = obj_member(base, "attributes", &bad);
    ENSURE(!bad, MV_ERR_BAD_REQUEST);

    /* key_props */
    const json_t *v = pick(ikp, bkp, "kty");
    const json_t *crv = pick(ikp, bkp, "crv");
    const char *kty = v ? json_string_value(v) : (crv ? "EC" : "RSA");
    if (!kty || !(strcmp(kty, "RSA") == 0 || strcmp(kty, "RSA-HSM") == 0 || is_ec(kty))) {
        *why = "The key type (kty) must be RSA, RSA-HSM, EC or EC-HSM.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    ENSURE(set(kp, "kty", json_string(kty)), MV_ERR_INTERNAL);
    v = pick(ikp, bkp, "exportable");
    if (v && !json_is_boolean(v))
        ENSURE(0, MV_ERR_BAD_REQUEST);
    ENSURE(set(kp, "exportable", json_boolean(v ? json_is_true(v) : 1)), MV_ERR_INTERNAL);
    v = pick(ikp, bkp, "reuse_key");
    if (v && !json_is_boolean(v))
        ENSURE(0, MV_ERR_BAD_REQUEST);
    ENSURE(set(kp, "reuse_key", json_boolean(v && json_is_true(v))), MV_ERR_INTERNAL);
    if (is_ec(kty)) {
        const char *c = crv ? json_string_value(crv) : "P-256";
        if (!c || !(strcmp(c, "P-256") == 0 || strcmp(c, "P-384") == 0 ||
                    strcmp(c, "P-521") == 0 || strcmp(c, "P-256K") == 0)) {
            *why = "The curve (crv) must be P-256, P-384, P-521 or P-256K.";
            ENSURE(0, MV_ERR_BAD_REQUEST);
        }
        ENSURE(set(kp, "crv", json_string(c)), MV_ERR_INTERNAL);
        v = pick(ikp, bkp, "key_size");
        if (v && json_is_integer(v))
            ENSURE(set(kp, "key_size", json_integer(json_integer_value(v))), MV_ERR_INTERNAL);
    } else {
        v = pick(ikp, bkp, "key_size");
        json_int_t size = v ? (json_is_integer(v) ? json_integer_value(v) : -1) : 2048;
        if (size != 2048 && size != 3072 && size != 4096) {
            *why = "The key size must be 2048, 3072 or 4096 for RSA.";
            ENSURE(0, MV_ERR_BAD_REQUEST);
        }
        ENSURE(set(kp, "key_size", json_integer(size)), MV_ERR_INTERNAL);
    }

    /* secret_props */
    v = pick(isp, bsp, "contentType");
    const char *ct = v ? json_string_value(v) : CT_PKCS12;
    if (!ct || !(strcmp(ct, CT_PKCS12) == 0 || strcmp(ct, CT_PEM) == 0)) {
        *why = "The secret content type must be application/x-pkcs12 or application/x-pem-file.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    ENSURE(set(sp, "contentType", json_string(ct)), MV_ERR_INTERNAL);

    /* x509_props */
    v = pick(ixp, bxp, "subject");
    if (v && (!json_is_string(v) ||
              (json_string_length(v) > 0 && !certs_subject_ok(json_string_value(v))))) {
        *why = "The subject of the policy is not a valid X.500 distinguished name.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    if (v && json_string_length(v) > 0)
        ENSURE(set(xp, "subject", json_string(json_string_value(v))), MV_ERR_INTERNAL);
    const json_t *isans = pick(ixp, bxp, "sans");
    size_t n_sans = 0;
    if (isans && !json_is_null(isans)) {
        ENSURE(json_is_object(isans), MV_ERR_BAD_REQUEST);
        sans = json_object();
        ENSURE(sans != NULL, MV_ERR_INTERNAL);
        static const char *const KINDS[] = {"emails", "dns_names", "upns"};
        for (size_t i = 0; i < 3; i++) {
            json_t *a = str_array(json_object_get(isans, KINDS[i]), &bad);
            ENSURE(!bad, MV_ERR_BAD_REQUEST);
            if (a && json_array_size(a) > 0) {
                n_sans += json_array_size(a);
                ENSURE(set(sans, KINDS[i], a), MV_ERR_INTERNAL);
            } else {
                json_decref(a);
            }
        }
        if (n_sans) {
            ENSURE(set(xp, "sans", sans), MV_ERR_INTERNAL);
            sans = NULL;
        }
    }
    if (!json_object_get(xp, "subject") && n_sans == 0) {
        *why = "The policy must have a subject or at least one subject alternative name.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    json_t *ekus = str_array(pick(ixp, bxp, "ekus"), &bad);
    ENSURE(!bad, MV_ERR_BAD_REQUEST);
    if (!ekus) {
        ekus = json_pack("[ss]", SERVER_AUTH, CLIENT_AUTH);
        ENSURE(ekus != NULL, MV_ERR_INTERNAL);
    }
    {
        size_t i;
        json_t *e;
        json_array_foreach(ekus, i, e)
        {
            const char *s = json_string_value(e);
            int ok = s[0] >= '0' && s[0] <= '9';
            for (const char *q = s; *q && ok; q++)
                ok = (*q >= '0' && *q <= '9') || *q == '.';
            if (!ok) {
                json_decref(ekus);
                *why = "The enhanced key usages must be dotted object identifiers.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
        }
    }
    ENSURE(set(xp, "ekus", ekus), MV_ERR_INTERNAL);
    json_t *ku = str_array(pick(ixp, bxp, "key_usage"), &bad);
    ENSURE(!bad, MV_ERR_BAD_REQUEST);
    if (!ku) {
        ku = is_ec(kty) ? json_pack("[s]", "digitalSignature")
                        : json_pack("[ss]", "digitalSignature", "keyEncipherment");
        ENSURE(ku != NULL, MV_ERR_INTERNAL);
    }
    {
        size_t i;
        json_t *e;
        json_array_foreach(ku, i, e)
        {
            unsigned bit = certs_ku_bit(json_string_value(e));
            if (!bit || (is_ec(kty) && (bit & (CERTS_KU_KEY_ENCIPHERMENT |
                                               CERTS_KU_DATA_ENCIPHERMENT)))) {
                json_decref(ku);
                *why = bit ? "Unsupported key operation(s): \"wrapKey\", \"unwrapKey\". "
                             "Supported values are \"sign\", \"verify\"."
                           : "The key usage is not one Key Vault knows.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
        }
    }
    ENSURE(set(xp, "key_usage", ku), MV_ERR_INTERNAL);
    v = pick(ixp, bxp, "validity_months");
    json_int_t months = v ? (json_is_integer(v) ? json_integer_value(v) : -1) : 12;
    if (months < 1 || months > CERTS_MAX_MONTHS) {
        *why = "validity_months must be between 1 and 1200.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    ENSURE(set(xp, "validity_months", json_integer(months)), MV_ERR_INTERNAL);

    /* issuer */
    v = pick(iis, bis, "name");
    const char *iname = v ? json_string_value(v) : "Unknown";
    if (!iname || !vault_name_ok(iname)) {
        *why = "The issuer name is invalid.";
        ENSURE(0, MV_ERR_BAD_REQUEST);
    }
    ENSURE(set(iss, "name", json_string(iname)), MV_ERR_INTERNAL);
    v = pick(iis, bis, "cty");
    if (v && json_is_string(v) && json_string_length(v) <= 64)
        ENSURE(set(iss, "cty", json_string(json_string_value(v))), MV_ERR_INTERNAL);
    v = pick(iis, bis, "cert_transparency");
    if (v && json_is_boolean(v))
        ENSURE(set(iss, "cert_transparency", json_boolean(json_is_true(v))), MV_ERR_INTERNAL);

    /* lifetime_actions: replaced as a whole when given */
    const json_t *ila = in ? json_object_get(in, "lifetime_actions") : NULL;
    if (!ila || json_is_null(ila))
        ila = base ? json_object_get(base, "lifetime_actions") : NULL;
    las = json_array();
    ENSURE(las != NULL, MV_ERR_INTERNAL);
    if (ila && !json_is_null(ila)) {
        ENSURE(json_is_array(ila) && json_array_size(ila) <= 8, MV_ERR_BAD_REQUEST);
        size_t i;
        const json_t *a;
        json_array_foreach(ila, i, a)
        {
            const json_t *tr = json_object_get(a, "trigger");
            const json_t *ac = json_object_get(a, "action");
            const json_t *at = ac ? json_object_get(ac, "action_type") : NULL;
            const char *type = at ? json_string_value(at) : NULL;
            if (!json_is_object(tr) || !type ||
                !(strcasecmp(type, "AutoRenew") == 0 || strcasecmp(type, "EmailContacts") == 0)) {
                *why = "A lifetime action needs a trigger and an action_type of AutoRenew or "
                       "EmailContacts.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
            const json_t *pct = json_object_get(tr, "lifetime_percentage");
            const json_t *days = json_object_get(tr, "days_before_expiry");
            json_t *t = json_object();
            ENSURE(t != NULL, MV_ERR_INTERNAL);
            if (pct && json_is_integer(pct) && json_integer_value(pct) >= 1 &&
                json_integer_value(pct) <= 99 && !days) {
                set(t, "lifetime_percentage", json_integer(json_integer_value(pct)));
            } else if (days && json_is_integer(days) && json_integer_value(days) >= 1 &&
                       json_integer_value(days) <= months * 27 && !pct) {
                set(t, "days_before_expiry", json_integer(json_integer_value(days)));
            } else {
                json_decref(t);
                *why = "A lifetime action's trigger needs lifetime_percentage (1-99) or "
                       "days_before_expiry (1 to validity_months x 27), not both.";
                ENSURE(0, MV_ERR_BAD_REQUEST);
            }
            json_t *item = json_pack("{s:o,s:{s:s}}", "trigger", t, "action", "action_type",
                                     strcasecmp(type, "AutoRenew") == 0 ? "AutoRenew"
                                                                        : "EmailContacts");
            ENSURE(item != NULL && json_array_append_new(las, item) == 0, MV_ERR_INTERNAL);
        }
    } else {
        json_t *item = json_pack("{s:{s:i},s:{s:s}}", "trigger", "lifetime_percentage", 80,
                                 "action", "action_type",
                                 strcmp(iname, "Self") == 0 ? "AutoRenew" : "EmailContacts");
        ENSURE(item != NULL && json_array_append_new(las, item) == 0, MV_ERR_INTERNAL);
    }

    /* attributes */
    v = pick(iat, bat, "enabled");
    if (v && !json_is_boolean(v))
        ENSURE(0, MV_ERR_BAD_REQUEST);
    ENSURE(set(attrs, "enabled", json_boolean(v ? json_is_true(v) : 1)), MV_ERR_INTERNAL);
    v = bat ? json_object_get(bat, "created") : NULL;
    ENSURE(set(attrs, "created", json_integer(v && json_is_integer(v) ? json_integer_value(v)
                                                                       : now)),
           MV_ERR_INTERNAL);
    ENSURE(set(attrs, "updated", json_integer(now)), MV_ERR_INTERNAL);

    ENSURE(set(p, "key_props", kp), MV_ERR_INTERNAL);
    kp = NULL;
    ENSURE(set(p, "secret_props", sp), MV_ERR_INTERNAL);
    sp = NULL;
    ENSURE(set(p, "x509_props", xp), MV_ERR_INTERNAL);
    xp = NULL;
    ENSURE(set(p, "lifetime_actions", las), MV_ERR_INTERNAL);
    las = NULL;
    ENSURE(set(p, "issuer", iss), MV_ERR_INTERNAL);
    iss = NULL;
    ENSURE(set(p, "attributes", attrs), MV_ERR_INTERNAL);
    attrs = NULL;
    *out = p;
    p = NULL;
out:
    if (rc == MV_ERR_BAD_REQUEST && bad && strcmp(*why, "The policy is invalid.") == 0)
        *why = "The policy is invalid: a member has the wrong type.";
    json_decref(p);
    json_decref(kp);
    json_decref(sp);
    json_decref(xp);
    json_decref(iss);
    json_decref(attrs);
    json_decref(sans);
    json_decref(las);
    return rc;
}

static void fill_names(const json_t *a, const char **dst, size_t *n)
{
    size_t i;
    const json_t *v;
    *n = 0;
    json_array_foreach(a, i, v)
    {
        if (*n < CERTS_MAX_NAMES && json_is_string(v))
            dst[(*n)++] = json_string_value(v);
    }
}

mv_rc vault_cert_policy_spec(const json_t *policy, struct certs_spec *spec)
{
    mv_rc rc = MV_OK;
    memset(spec, 0, sizeof *spec);
    const json_t *xp = json_object_get(policy, "x509_props");
    ENSURE(json_is_object(xp), MV_ERR_INTERNAL);
    spec->subject = json_string_value(json_object_get(xp, "subject"));
    const json_t *sans = json_object_get(xp, "sans");
    if (sans) {
        fill_names(json_object_get(sans, "dns_names"), spec->dns, &spec->n_dns);
        fill_names(json_object_get(sans, "emails"), spec->emails, &spec->n_emails);
        fill_names(json_object_get(sans, "upns"), spec->upns, &spec->n_upns);
    }
    fill_names(json_object_get(xp, "ekus"), spec->ekus, &spec->n_ekus);
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(xp, "key_usage"), i, v)
    spec->key_usage |= certs_ku_bit(json_string_value(v));
    spec->validity_months = (int)json_integer_value(json_object_get(xp, "validity_months"));
out:
    return rc;
}

static json_t *names_array(const char *const *names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

mv_rc vault_cert_policy_from_cert(const struct certs_desc *d, const json_t *given,
                                  const char *content_type, int64_t now, json_t **out,
                                  const char **why)
{
    mv_rc rc = MV_OK;
    json_t *in = given ? json_deep_copy(given) : json_object();
    json_t *xp = json_object(), *kp = json_object(), *sp = json_object(), *sans = json_object();
    ENSURE(in && xp && kp && sp && sans, MV_ERR_INTERNAL);
    /* what the certificate says wins over the given policy's x509 properties (Azure does so) */
    if (d->subject[0])
        set(xp, "subject", json_string(d->subject));
    if (d->spec.n_dns)
        set(sans, "dns_names", names_array(d->spec.dns, d->spec.n_dns));
    if (d->spec.n_emails)
        set(sans, "emails", names_array(d->spec.emails, d->spec.n_emails));
    if (d->spec.n_upns)
        set(sans, "upns", names_array(d->spec.upns, d->spec.n_upns));
    if (json_object_size(sans))
        set(xp, "sans", json_incref(sans));
    if (d->spec.n_ekus)
        set(xp, "ekus", names_array(d->spec.ekus, d->spec.n_ekus));
    json_t *ku = json_array();
    for (unsigned b = 1; ku && b <= CERTS_KU_DECIPHER_ONLY; b <<= 1)
        if ((d->spec.key_usage & b) && !(d->is_ec && (b & (CERTS_KU_KEY_ENCIPHERMENT |
                                                           CERTS_KU_DATA_ENCIPHERMENT))))
            json_array_append_new(ku, json_string(certs_ku_name(b)));
    if (ku && json_array_size(ku) == 0)
        json_array_append_new(ku, json_string("digitalSignature"));
    set(xp, "key_usage", ku);
    set(xp, "validity_months", json_integer(d->spec.validity_months));
    if (!json_object_get(xp, "subject") && !json_object_get(xp, "sans"))
        set(xp, "subject", json_string("CN=imported"));
    set(in, "x509_props", xp);
    xp = NULL;
    json_t *gkp = json_object_get(in, "key_props");
    if (json_is_object(gkp))
        json_object_update(kp, gkp);
    set(kp, "kty", json_string(d->is_ec ? "EC" : "RSA"));
    if (d->is_ec) {
        json_object_del(kp, "key_size");
        set(kp, "crv", json_string(d->crv ? d->crv : "P-256"));
    } else {
        json_object_del(kp, "crv");
        set(kp, "key_size", json_integer(d->key_size));
    }
    set(in, "key_props", kp);
    kp = NULL;
    set(sp, "contentType", json_string(content_type));
    set(in, "secret_props", sp);
    sp = NULL;
    const json_t *iss = json_object_get(in, "issuer");
    if (!json_is_object(iss))
        set(in, "issuer", json_pack("{s:s}", "name", "Unknown"));
    CHECK(vault_cert_policy_normalize(in, NULL, now, out, why));
out:
    json_decref(in);
    json_decref(xp);
    json_decref(kp);
    json_decref(sp);
    json_decref(sans);
    return rc;
}
