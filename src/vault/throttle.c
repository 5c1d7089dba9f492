/* throttle.c: the per-vault service limits of Key Vault (reference §4.5): per vault and per
 * 10-second window, at most `ops` transactions and `creates` secret creations; a request over
 * a limit gets 429 with Retry-After and is not counted ("429s don't count toward the limit").
 *
 * The counters must be shared by every loop thread of the process, so this file keeps the one
 * mutable static of src/vault/: a fixed table of windows, indexed by a hash of the vault name
 * and guarded by one mutex. That is acceptable here because the critical section is a handful
 * of integer operations on one cache line, with no I/O and no allocation; the table has a
 * fixed size, so a name beyond its capacity shares a slot (conservative: it can only throttle
 * earlier, never admit more than the limit for any one vault). Several server processes on one
 * database each enforce the limit on their own share. */
#include <pthread.h>
#include <string.h>

#include "vault/vault_internal.h"

#define THROTTLE_SLOTS 1024 /* power of two */
#define THROTTLE_PROBE 8

struct window {
    char vault[MV_VAULT_NAME_MAX + 1];
    int64_t start; /* first second of the window; 0 = slot unused */
    int ops;
    int creates;
};

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct window throttle_table[THROTTLE_SLOTS];

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

/* The slot of vault for the window starting at start: its own, else an unused or stale one
 * within the probe distance, else (table crowded) the home slot, shared. */
static struct window *slot_for(const char *vault, int64_t start)
{
    uint32_t home = name_hash(vault) & (THROTTLE_SLOTS - 1);
    struct window *free_slot = NULL;
    for (uint32_t i = 0; i < THROTTLE_PROBE; i++) {
        struct window *w = &throttle_table[(home + i) & (THROTTLE_SLOTS - 1)];
        if (w->start != 0 && strcmp(w->vault, vault) == 0)
            return w;
        if (!free_slot && (w->start == 0 || w->start < start))
            free_slot = w;
    }
    struct window *w = free_slot ? free_slot : &throttle_table[home];
    if (free_slot) {
        size_t n = strlen(vault);
        if (n >= sizeof w->vault)
            n = sizeof w->vault - 1;
        memcpy(w->vault, vault, n);
        w->vault[n] = '\0';
        w->start = 0;
    }
    return w;
}

int vault_throttle(const char *vault, int is_create, int ops_limit, int creates_limit, int64_t now)
{
    int limit = is_create ? creates_limit : ops_limit;
    if (limit <= 0 || now <= 0)
        return 0;
    int64_t start = now - now % VAULT_THROTTLE_WINDOW_SECS;
    int retry = 0;
    pthread_mutex_lock(&throttle_lock);
    struct window *w = slot_for(vault, start);
    if (w->start != start) {
        w->start = start;
        w->ops = 0;
        w->creates = 0;
    }
    int *count = is_create ? &w->creates : &w->ops;
    if (*count >= limit)
        retry = (int)(start + VAULT_THROTTLE_WINDOW_SECS - now);
    else
        (*count)++;
    pthread_mutex_unlock(&throttle_lock);
    return retry > 0 ? retry : 0;
}
