/* secmem.c: key memory and core-dump protection (see secmem.h).
 *
 * Why: a core dump of a server after SIGSEGV held a secret value 5 times and 11 bearer tokens.
 * Non-dumpable processes write no core at all; MADV_DONTDUMP pages keep keys out of a dump that
 * is made anyway (MIVAULT_CORE_DUMPS=1, or a dump taken with gcore by root). */
#include "common/secmem.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

/* OpenSSL's secure heap: a few RSA and EC private keys and signing temporaries need a few KiB. */
#define SECURE_HEAP_BYTES (256 * 1024)
#define SECURE_HEAP_MIN 32

static size_t round_pages(size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t p = pg > 0 ? (size_t)pg : 4096;
    return n == 0 ? p : (n + p - 1) / p * p;
}

void *mv_secmem_alloc(size_t n)
{
    size_t len = round_pages(n);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (madvise(p, len, MADV_DONTDUMP) != 0) {
        munmap(p, len);
        return NULL;
    }
    /* Best effort: an unprivileged process may be over its memlock limit. */
    (void)mlock(p, len);
    return p;
}

void mv_secmem_free(void *p, size_t n)
{
    if (!p)
        return;
    size_t len = round_pages(n);
    OPENSSL_cleanse(p, len);
    (void)munlock(p, len);
    munmap(p, len);
}

static int core_dumps_wanted(void)
{
    const char *v = getenv(MV_CORE_DUMPS_ENV);
    return v && strcmp(v, "1") == 0;
}

mv_rc mv_protect_process(void)
{
    mv_rc rc = MV_OK;
    if (core_dumps_wanted()) {
        /* A change of user clears the flag: set it again for the debugger. */
        (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        goto out;
    }
    struct rlimit none = {0, 0};
    ENSURE_MSG(setrlimit(RLIMIT_CORE, &none) == 0, MV_ERR_INTERNAL, "cannot set RLIMIT_CORE to 0");
    ENSURE_MSG(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0, MV_ERR_INTERNAL,
               "cannot make the process non-dumpable");
out:
    return rc;
}

mv_rc mv_protect_daemon(void)
{
    mv_rc rc = MV_OK;
    CHECK(mv_protect_process());
    if (core_dumps_wanted())
        LOG_WARN("%s=1: core dumps are on, and will hold secrets", MV_CORE_DUMPS_ENV);
    /* Before any thread exists, so that every thread has it (it is per thread): exec can never
     * gain privileges (setuid binaries, file capabilities). */
    ENSURE_MSG(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, MV_ERR_INTERNAL,
               "PR_SET_NO_NEW_PRIVS failed");
    if (!CRYPTO_secure_malloc_initialized())
        ENSURE_MSG(CRYPTO_secure_malloc_init(SECURE_HEAP_BYTES, SECURE_HEAP_MIN) != 0,
                   MV_ERR_INTERNAL, "cannot set up OpenSSL's secure heap");
out:
    return rc;
}
