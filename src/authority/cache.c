/* cache.c: the token endpoint's per-loop-thread caches (w->authority_state), touched only by
 * the thread that owns the worker (no locks); made on first use, freed by authority_worker_free.
 *
 * - Clients: client id → what the token endpoint reads about its client (an enrolled node and
 *   its VM, or a principal) and the client's public key, parsed once (DESIGN §6: never re-parse
 *   keys per request; OpenSSL 3's PEM decoder costs as much as the RSA signature), held as a
 *   jws_verifier (its verification context is set up once too).
 * - Subjects: (VM, identity selector) → the principal identity.c picked for a node.
 * - The signer of issued tokens (jws_signer), for the server's current signing key.
 *
 * Both are valid for one store generation only. The caller reads store_generation() once per
 * request; the store bumps it, in the same transaction as the change and from any connection
 * or process, on every change to nodes, principals, vms, vm_uai and identities (the triggers of
 * store/schema.c). So a deleted node, a replaced key, a detached identity or a deleted VM takes
 * effect on the next request, exactly as when every request read the store. When the generation
 * moves, a client's row is read again but its parsed key is kept if the PEM text is unchanged:
 * the key is a function of those bytes alone. Only what the store said is cached: each request
 * still verifies its own assertion and checks every claim (assertion.c). */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "authority/internal.h"
#include "common/log.h"
#include "common/metrics.h"
#include "crypto/keys.h"

#define CLIENT_SETS 64
#define CLIENT_WAYS 4
#define SUBJECT_SETS 64
#define SUBJECT_WAYS 4
#define SEL_VALUE_MAX ST_SCOPE /* longer selector values are not cached (nothing can match) */
#define SUBJECT_KEY (ST_NAME + 4 + SEL_VALUE_MAX)

static const char *const SELECTORS[] = {"mi_client_id", "mi_object_id", "mi_res_id"};
#define N_SELECTORS (sizeof SELECTORS / sizeof SELECTORS[0])

struct client_entry {
    uint64_t used;  /* tick of the last use; 0 = empty */
    int64_t gen;    /* generation the row was read at */
    char id[ST_ID]; /* the client id as sent */
    char *pem;      /* the PEM text c.key was parsed from; NULL if the client has none */
    struct authority_client c;
};

struct subject_entry {
    uint64_t used;
    int64_t gen;
    char key[SUBJECT_KEY]; /* vm \n selector index \n lower-case value */
    struct st_principal p; /* public_key_pem always NULL */
};

struct authority_state {
    uint64_t tick;
    jws_signer *signer; /* for srv->sign_key, or own_key once a rotation was seen */
    EVP_PKEY *own_key;  /* the current key when it is no longer srv->sign_key */
    char own_kid[32];
    int64_t key_gen;    /* generation the current key was checked at */
    int key_checked;    /* key_gen is set */
    int64_t key_checked_ms; /* when the store's current key was last read */
    struct client_entry clients[CLIENT_SETS][CLIENT_WAYS];
    struct subject_entry subjects[SUBJECT_SETS][SUBJECT_WAYS];
    char *jwks;         /* this loop's JWKS document, for jwks_gen (NULL: the start-up one) */
    int64_t jwks_gen;
};

static uint32_t fnv(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static struct authority_state *state(struct authority_loop *w)
{
    if (!w->authority_state)
        w->authority_state = calloc(1, sizeof(struct authority_state));
    return w->authority_state;
}

static void client_forget(struct client_entry *e)
{
    jws_verifier_free(e->c.key);
    free(e->pem);
    memset(e, 0, sizeof *e);
}

void authority_worker_free(struct authority_loop *w)
{
    struct authority_state *s = w ? w->authority_state : NULL;
    if (!s)
        return;
    for (size_t i = 0; i < CLIENT_SETS; i++)
        for (size_t j = 0; j < CLIENT_WAYS; j++)
            client_forget(&s->clients[i][j]);
    jws_signer_free(s->signer);
    EVP_PKEY_free(s->own_key);
    free(s->jwks);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
    w->authority_state = NULL;
}

const char *authority_jwks_current(struct authority_loop *w)
{
    struct authority_state *s = state(w);
    int64_t gen = 0;
    if (!s || store_generation(w->st, &gen) != MV_OK)
        return w->srv->jwks_json;
    if (!s->jwks || gen != s->jwks_gen) {
        char *doc = NULL;
        if (authority_jwks_build(w->srv, w->st, &doc) != MV_OK) {
            LOG_WARN("authority: cannot rebuild the JWKS: %s", mv_last_detail());
            return s->jwks ? s->jwks : w->srv->jwks_json;
        }
        free(s->jwks);
        s->jwks = doc;
        s->jwks_gen = gen;
    }
    return s->jwks;
}

/* The way of set holding id, else its empty or least recently used way (*found = 0). */
static struct client_entry *client_way(struct client_entry *set, const char *id, int *found)
{
    size_t victim = 0;
    for (size_t i = 0; i < CLIENT_WAYS; i++) {
        if (set[i].used && strcmp(set[i].id, id) == 0) {
            *found = 1;
            return &set[i];
        }
        if (set[i].used < set[victim].used)
            victim = i;
    }
    *found = 0;
    return &set[victim];
}

static struct subject_entry *subject_way(struct subject_entry *set, const char *key, int *found)
{
    size_t victim = 0;
    for (size_t i = 0; i < SUBJECT_WAYS; i++) {
        if (set[i].used && strcmp(set[i].key, key) == 0) {
            *found = 1;
            return &set[i];
        }
        if (set[i].used < set[victim].used)
            victim = i;
    }
    *found = 0;
    return &set[victim];
}

/* A verifier for the key of a PEM; NULL if it does not parse or is not a key we accept. */
static jws_verifier *parse_key(const char *pem)
{
    EVP_PKEY *key = NULL;
    jws_verifier *v = NULL;
    if (keys_from_public_pem(pem, strlen(pem), &key) == MV_OK &&
        jws_verifier_new(key, &v) != MV_OK)
        v = NULL;
    EVP_PKEY_free(key);
    return v;
}

/* Reads the client from the store: an enrolled node first, then a principal (token.c decides
 * which principals may authenticate). The PEM is handed over in *pem. */
static mv_rc client_read(struct store *st, const char *id, struct authority_client *c, char **pem)
{
    mv_rc rc = MV_OK;
    struct st_node node;
    memset(&node, 0, sizeof node);
    memset(c, 0, sizeof *c);
    *pem = NULL;
    rc = store_node_get(st, id, &node);
    if (rc == MV_OK) {
        c->is_node = 1;
        CHECK(mv_copy(c->vm, sizeof c->vm, node.vm));
        *pem = node.public_key_pem;
        node.public_key_pem = NULL;
        goto out;
    }
    if (rc != MV_ERR_NOT_FOUND)
        goto out;
    CHECK(store_principal_by_client(st, id, &c->principal));
    *pem = c->principal.public_key_pem;
    c->principal.public_key_pem = NULL;
out:
    st_node_clear(&node);
    return rc;
}

mv_rc authority_client_get(struct authority_loop *w, int64_t gen, const char *client_id,
                           const struct authority_client **out)
{
    mv_rc rc = MV_OK;
    struct authority_state *s = state(w);
    struct client_entry *e = NULL;
    struct authority_client fresh;
    char *pem = NULL;
    int found = 0;
    ENSURE_MSG(s != NULL, MV_ERR_INTERNAL, "authority cache: out of memory");
    ENSURE(strlen(client_id) < ST_ID, MV_ERR_NOT_FOUND);
    e = client_way(s->clients[fnv(client_id) % CLIENT_SETS], client_id, &found);
    if (found && gen >= 0 && e->gen == gen) {
        e->used = ++s->tick;
        *out = &e->c;
        mv_metric_inc(MV_M_CACHE_HITS, "authority_client", NULL);
        goto out;
    }
    mv_metric_inc(MV_M_CACHE_MISSES, "authority_client", NULL);
    rc = client_read(w->st, client_id, &fresh, &pem);
    if (rc != MV_OK) {
        if (found && rc == MV_ERR_NOT_FOUND)
            client_forget(e);
        goto out;
    }
    /* Same PEM bytes, same key: keep the parsed one. */
    jws_verifier *key = NULL;
    if (found && e->pem && pem && strcmp(e->pem, pem) == 0) {
        key = e->c.key;
        e->c.key = NULL;
    } else if (pem) {
        key = parse_key(pem); /* NULL if unusable: assertion.c refuses the client */
    }
    if (!found)
        client_forget(e);
    jws_verifier_free(e->c.key);
    free(e->pem);
    e->pem = pem;
    pem = NULL;
    e->c = fresh;
    e->c.key = key;
    memcpy(e->id, client_id, strlen(client_id) + 1);
    e->gen = gen; /* -1 (generation unknown) never matches: read again next time */
    e->used = ++s->tick;
    *out = &e->c;
out:
    free(pem);
    return rc;
}

/* vm \n selector \n value (ids compare case-insensitively: identity.c). 0 if not cacheable:
 * several selectors (refused by identity.c) or a value too long to be any id. */
static int subject_key(const char *vm, const kv_list *form, char key[SUBJECT_KEY])
{
    size_t n_sel = 0, sel = 0;
    const char *value = "";
    for (size_t i = 0; i < N_SELECTORS; i++) {
        if (kv_get(form, SELECTORS[i])) {
            n_sel++;
            sel = i;
            value = kv_get(form, SELECTORS[i]);
        }
    }
    if (n_sel > 1 || strlen(value) >= SEL_VALUE_MAX)
        return 0;
    if (mv_fmt(key, SUBJECT_KEY, "%s\n%zu\n%s", vm, n_sel ? sel : N_SELECTORS, value) != MV_OK)
        return 0;
    mv_lower(key);
    return 1;
}

mv_rc authority_subject_get(struct authority_loop *w, int64_t gen, const char *vm, const kv_list *form,
                            struct st_principal *out, struct authority_refusal *ref)
{
    mv_rc rc = MV_OK;
    struct authority_state *s = state(w);
    struct subject_entry *e = NULL;
    char key[SUBJECT_KEY];
    int found = 0;
    if (!s || gen < 0 || !subject_key(vm, form, key))
        return authority_node_principal(w->st, vm, form, out, ref);
    e = subject_way(s->subjects[fnv(key) % SUBJECT_SETS], key, &found);
    if (found && e->gen == gen) {
        e->used = ++s->tick;
        *out = e->p;
        goto out;
    }
    /* Refusals ("Identity not found") are not cached: they are read again each time. */
    CHECK(authority_node_principal(w->st, vm, form, out, ref));
    e->p = *out;
    e->p.public_key_pem = NULL;
    memcpy(e->key, key, sizeof key);
    e->gen = gen;
    e->used = ++s->tick;
out:
    return rc;
}

/* A rotation (`mivault authority key rotate`, or the schedule on any server) shows as a new
 * current key in the store: when the generation moved, the loop reads which key is current and
 * switches to it. A key that cannot be read or unsealed leaves the loop on the key it has. */
#define AUTHORITY_KEY_RECHECK_MS 60000

static void follow_rotation(struct authority_loop *w, struct authority_state *s, int64_t gen)
{
    EVP_PKEY *key = NULL;
    char kid[32];
    int64_t now_ms = mv_now_ms();
    /* Also every AUTHORITY_KEY_RECHECK_MS whatever the generation says: a loop whose change
     * feed stalled still stops signing with a rotated-out key within that time, well inside
     * the MV_CLOCK_SKEW_SECS margin retire allows for (authority_retire_key). */
    if (s->key_checked && (gen < 0 || gen == s->key_gen) &&
        now_ms - s->key_checked_ms < AUTHORITY_KEY_RECHECK_MS)
        return;
    s->key_gen = gen;
    s->key_checked = 1;
    s->key_checked_ms = now_ms;
    const char *have = s->own_key ? s->own_kid : w->srv->sign_kid;
    struct st_signing_key *keys = NULL;
    size_t n = 0;
    if (store_signing_keys(w->st, &keys, &n) != MV_OK) {
        LOG_WARN("token: cannot read the signing keys (%s); signing with %s", mv_last_detail(), have);
        s->key_checked = 0;
        return;
    }
    int same = 0;
    for (size_t i = 0; i < n; i++)
        if (keys[i].retired == 0) {
            same = strcmp(keys[i].kid, have) == 0;
            break;
        }
    st_signing_keys_free(keys, n);
    if (same)
        return;
    if (authority_current_key(w->srv, w->st, &key, kid) != MV_OK) {
        LOG_WARN("token: cannot load the current signing key (%s); signing with %s",
                 mv_last_detail(), have);
        s->key_checked = 0;
        return;
    }
    jws_signer_free(s->signer);
    s->signer = NULL;
    EVP_PKEY_free(s->own_key);
    s->own_key = key;
    memcpy(s->own_kid, kid, sizeof s->own_kid);
    LOG_INFO("token: now signing with key %s", kid);
}

jws_signer *authority_signer(struct authority_loop *w, int64_t gen)
{
    struct authority_state *s = state(w);
    if (!s)
        return NULL;
    follow_rotation(w, s, gen);
    EVP_PKEY *key = s->own_key ? s->own_key : w->srv->sign_key;
    const char *kid = s->own_key ? s->own_kid : w->srv->sign_kid;
    if (!key)
        return NULL;
    /* The signer holds a reference to the key it was made for, so while it lives no other key
     * can have that address: comparing pointers tells whether the key changed. */
    if (s->signer && jws_signer_key(s->signer) == key)
        return s->signer;
    jws_signer_free(s->signer);
    s->signer = NULL;
    if (jws_signer_new(key, JWS_RS256, kid, &s->signer) != MV_OK)
        s->signer = NULL;
    return s->signer;
}
