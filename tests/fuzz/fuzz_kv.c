/* fuzz_kv.c: application/x-www-form-urlencoded parsing (src/http/kv.c), the parser of every
 * query string and of the token endpoint's and Cloud Shell's form bodies.
 *
 * Checked: a parse either fails and leaves an empty list, or gives at most MV_KV_MAX pairs of
 * NUL-free strings; has_dup is exactly "some name repeats"; and kv_escape round-trips: each
 * pair, escaped and parsed again, comes back byte for byte. */
#include <string.h>

#include "fuzz.h"
#include "http/kv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void round_trip(const char *name, const char *value)
{
    mv_buf b;
    kv_list again;
    mv_buf_init(&b, 64 * 1024);
    if (kv_escape(name, &b) != MV_OK || mv_buf_add(&b, "=", 1) != MV_OK ||
        kv_escape(value, &b) != MV_OK)
        fuzz_fail("kv_escape failed within its cap");
    FUZZ_ASSERT(kv_parse(b.p, b.len, &again) == MV_OK);
    FUZZ_ASSERT(again.n == 1 && !again.has_dup);
    FUZZ_ASSERT(strcmp(again.name[0], name) == 0 && strcmp(again.value[0], value) == 0);
    kv_free(&again);
    mv_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kv_list l;
    if (kv_parse((const char *)data, size, &l) != MV_OK) {
        FUZZ_ASSERT(l.n == 0 && !l.has_dup);
        return 0;
    }
    FUZZ_ASSERT(l.n <= MV_KV_MAX);
    int dup = 0;
    for (size_t i = 0; i < l.n; i++) {
        FUZZ_ASSERT(l.name[i] != NULL && l.value[i] != NULL);
        for (size_t k = 0; k < i; k++)
            if (strcmp(l.name[k], l.name[i]) == 0)
                dup = 1;
        /* The first pair of a name is what kv_get answers. */
        const char *v = kv_get(&l, l.name[i]);
        FUZZ_ASSERT(v != NULL);
        FUZZ_ASSERT(kv_get_ci(&l, l.name[i]) != NULL);
        round_trip(l.name[i], l.value[i]);
    }
    FUZZ_ASSERT(dup == l.has_dup);
    kv_free(&l);
    return 0;
}
