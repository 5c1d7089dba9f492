/* state.c: the per-loop-thread caches of the vault (DESIGN §7), reached as w->vault_state and
 * touched only by the thread that owns the worker (no locks).
 *
 * - Verified tokens, keyed by the SHA-256 of the token, kept until the token's exp: a repeat
 *   request skips the RSA verification. 256 sets of 4 ways (1024 entries); a full set evicts
 *   its oldest entry. Only successful validations are cached.
 * - Vault rows and RBAC decisions, valid while store_generation() is unchanged (the store
 *   bumps it on every change to vaults, principals and role assignments, from any connection
 *   or process), so a revoked assignment takes effect on the next request. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "arm/rbac.h"
#include "common/log.h"
#include "vault/vault_internal.h"

#define TOK_SETS 256
#define TOK_WAYS 4
#define VAULT_SLOTS 64
#define RBAC_SLOTS 512
#define RBAC_KEY (ST_ID + 96 + MV_MAX_SCOPE + MV_SECRET_MAX_NAME + 16)

struct tok_entry {
    unsigned char digest[32];
    uint64_t born; /* insertion tick; 0 = empty */
    struct token_info info;
};

struct vault_entry {
    int used;
    struct st_vault v;
};

struct rbac_entry {
    int used;
    int allowed;
    char key[RBAC_KEY]; /* oid \n action \n resource (lower-case) */
};

struct vault_state {
    struct tok_entry tokens[TOK_SETS][TOK_WAYS];
    uint64_t tick;
    int64_t gen;
    int gen_valid;
    struct vault_entry vaults[VAULT_SLOTS];
    struct rbac_entry rbac[RBAC_SLOTS];
};

mv_rc vault_worker_init(struct mv_worker *w)
{
    struct vault_state *s = calloc(1, sizeof *s);
    if (!s) {
        mv_fail(MV_ERR_INTERNAL, "vault state: out of memory");
        return MV_ERR_INTERNAL;
    }
    w->vault_state = s;
    return MV_OK;
}

void vault_worker_free(struct mv_worker *w)
{
    if (!w || !w->vault_state)
        return;
    /* Token infos are not secrets, but the cache is what lets a token in: wipe it anyway. */
    OPENSSL_cleanse(w->vault_state, sizeof(struct vault_state));
    free(w->vault_state);
    w->vault_state = NULL;
}

static uint32_t fnv(const char *s, uint32_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

int vault_state_token_get(struct mv_worker *w, const unsigned char digest[32], int64_t now,
                          struct token_info *out)
{
    struct vault_state *s = w->vault_state;
    if (!s)
        return 0;
    struct tok_entry *set = s->tokens[digest[0]];
    for (int i = 0; i < TOK_WAYS; i++) {
        struct tok_entry *e = &set[i];
        if (e->born && CRYPTO_memcmp(e->digest, digest, 32) == 0) {
            if (e->info.exp <= now) {
                e->born = 0; /* expired: forget it, validate afresh */
                return 0;
            }
            *out = e->info;
            return 1;
        }
    }
    return 0;
}

void vault_state_token_put(struct mv_worker *w, const unsigned char digest[32],
                           const struct token_info *info)
{
    struct vault_state *s = w->vault_state;
    if (!s)
        return;
    struct tok_entry *set = s->tokens[digest[0]];
    struct tok_entry *victim = &set[0];
    for (int i = 0; i < TOK_WAYS; i++) {
        if (!set[i].born || memcmp(set[i].digest, digest, 32) == 0) {
            victim = &set[i];
            break;
        }
        if (set[i].born < victim->born)
            victim = &set[i];
    }
    memcpy(victim->digest, digest, 32);
    victim->info = *info;
    victim->born = ++s->tick;
}

/* Drops the generation-bound caches if the store changed since they were filled. */
static void sync_generation(struct vault_state *s, struct store *st)
{
    int64_t gen = 0;
    if (store_generation(st, &gen) != MV_OK) {
        LOG_WARN("vault: store generation unavailable (%s); caches bypassed", mv_last_detail());
        gen = -1;
    }
    if (!s->gen_valid || gen != s->gen || gen < 0) {
        memset(s->vaults, 0, sizeof s->vaults);
        memset(s->rbac, 0, sizeof s->rbac);
        s->gen = gen;
        s->gen_valid = gen >= 0;
    }
}

mv_rc vault_state_vault(struct mv_worker *w, const char *name, struct st_vault *out)
{
    struct vault_state *s = w->vault_state;
    if (!s)
        return store_vault_get(w->st, name, out);
    sync_generation(s, w->st);
    struct vault_entry *e = &s->vaults[fnv(name, 2166136261u) % VAULT_SLOTS];
    if (s->gen_valid && e->used && mv_streq_ci(e->v.name, name)) {
        *out = e->v;
        return MV_OK;
    }
    mv_rc rc = store_vault_get(w->st, name, out);
    if (rc == MV_OK && s->gen_valid) {
        e->v = *out;
        e->used = 1;
    }
    return rc;
}

mv_rc vault_state_rbac(struct mv_worker *w, const char *oid, const char *action,
                       const char *resource, int *allowed)
{
    struct vault_state *s = w->vault_state;
    char key[RBAC_KEY];
    /* Called after vault_state_vault in the same request: the generation is current. */
    int cacheable = s && s->gen_valid &&
                    mv_fmt(key, sizeof key, "%s\n%s\n%s", oid, action, resource) == MV_OK;
    struct rbac_entry *e = NULL;
    if (cacheable) {
        mv_lower(key);
        e = &s->rbac[fnv(key, 2166136261u) % RBAC_SLOTS];
        if (e->used && strcmp(e->key, key) == 0) {
            *allowed = e->allowed;
            return MV_OK;
        }
    }
    mv_rc rc = rbac_check(w->st, oid, action, 1, resource, allowed);
    if (rc == MV_OK && e) {
        memcpy(e->key, key, sizeof key);
        e->allowed = *allowed;
        e->used = 1;
    }
    return rc;
}
