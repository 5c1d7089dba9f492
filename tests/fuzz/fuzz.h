/* fuzz.h: what the libFuzzer harnesses of tests/fuzz/ share (docs/fuzzing.md).
 *
 * Each harness is one fuzz_<name>.c with LLVMFuzzerTestOneInput over one parser of untrusted
 * bytes. A harness is deterministic, touches no network and no files, frees everything it gets
 * (LeakSanitizer runs at every exit), and calls fuzz_fail() when a parser breaks one of its
 * documented invariants, so a wrong answer is a finding just as a crash is. */
#ifndef MV_TESTS_FUZZ_H
#define MV_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant did not hold: abort, so libFuzzer saves the input as a crash. */
#define fuzz_fail(what)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", (what), __FILE__, __LINE__);       \
        abort();                                                                                   \
    } while (0)
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(#cond);                                                                      \
    } while (0)

/* Log lines cost more than most parses and say nothing to the fuzzer: silence every level. */
static inline void fuzz_quiet(void)
{
    mv_log_set_level((enum mv_log_level)(MV_LOG_ERROR + 1));
}

/* A NUL-terminated copy of p[0..n) (aborts on out-of-memory: not a finding, but not silent). */
static inline char *fuzz_str(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        fuzz_fail("out of memory");
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Splits data at the first '\n': *head = data[0..i), *tail = data[i+1..size); returns 0 (head is
 * everything, tail empty) when there is no '\n'. */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **tail,
                             size_t *head_len, size_t *tail_len)
{
    const uint8_t *nl = size ? memchr(data, '\n', size) : NULL;
    if (!nl) {
        *head_len = size;
        *tail = data + size;
        *tail_len = 0;
        return 0;
    }
    *head_len = (size_t)(nl - data);
    *tail = nl + 1;
    *tail_len = size - *head_len - 1;
    return 1;
}

#endif
