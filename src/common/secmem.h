/* secmem.h: memory for key material, and the process-wide protections of secrets in memory.
 *
 * Keys (the master and data keys, the process's own copy of a private key) live in pages that a
 * core dump leaves out (MADV_DONTDUMP), locked in RAM where the memlock limit allows (never
 * swapped out), and wiped when freed. The processes themselves are made non-dumpable: no core
 * file, and /proc/PID/mem and ptrace closed to the same user (docs/security.md). */
#ifndef MV_COMMON_SECMEM_H
#define MV_COMMON_SECMEM_H

#include <stddef.h>

#include "common/result.h"

/* The environment variable that keeps core dumps on, for debugging ("1"). */
#define MV_CORE_DUMPS_ENV "MIVAULT_CORE_DUMPS"

/* Zeroed, page-aligned memory of at least n bytes, excluded from core dumps; NULL on failure. */
void *mv_secmem_alloc(size_t n);
/* Wipes and unmaps; p NULL is a no-op. n is the size given to mv_secmem_alloc. */
void mv_secmem_free(void *p, size_t n);

/* Core dumps off (RLIMIT_CORE 0, PR_SET_DUMPABLE 0) unless MV_CORE_DUMPS_ENV is "1". Call again
 * after a change of user, which resets the dumpable flag. */
MV_MUST_CHECK mv_rc mv_protect_process(void);
/* The protections of a long-running process: mv_protect_process, no_new_privs, and OpenSSL's
 * secure heap (its private-key numbers then live in locked pages left out of dumps). Call it
 * before any thread starts and any key loads. */
MV_MUST_CHECK mv_rc mv_protect_daemon(void);

#endif
