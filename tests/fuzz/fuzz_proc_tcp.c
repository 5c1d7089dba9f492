/* fuzz_proc_tcp.c: the agent's reading of the kernel's socket tables (src/agent/peer.c:
 * agent_proc_tcp_find), which tells it the uid of a local IMDS caller.
 *
 * Input: one byte choosing the table (IPv4 or IPv6) and the connection looked for, then the
 * table text. Checked: a match is only ever reported for a line that, printed back in the
 * kernel's format with the uid and inode found, is in the input (so nothing is made up from
 * another line's fields); and nothing is read outside the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct agent_conn k;
    memset(&k, 0, sizeof k);
    k.v6 = data[0] & 1;
    /* 127.0.0.1 / ::1 as the kernel prints them on little-endian: 0100007F, ...01000000. */
    uint32_t w = 0x0100007Fu;
    if (k.v6) {
        uint32_t one = 0x01000000u;
        memcpy(k.local + 12, &one, 4);
        memcpy(k.peer + 12, &one, 4);
    } else {
        memcpy(k.local, &w, 4);
        memcpy(k.peer, &w, 4);
    }
    k.local_port = (data[0] & 2) ? 0x1F90 : 80;
    k.peer_port = (data[0] & 4) ? 0x9C40 : 0;
    /* A private copy without a terminator: reads past the end are ASan's to catch. */
    char *t = malloc(size - 1 ? size - 1 : 1);
    FUZZ_ASSERT(t != NULL);
    memcpy(t, data + 1, size - 1);
    uint32_t uid = 0;
    uint64_t ino = 0;
    mv_rc rc = agent_proc_tcp_find(t, size - 1, &k, &uid, &ino);
    FUZZ_ASSERT(rc == MV_OK || rc == MV_ERR_NOT_FOUND);
    if (rc == MV_OK) {
        /* The caller's port is in the input as the kernel prints it (hex digits in either
         * case: the parser takes lowercase too, which the kernel never writes). */
        char ports[16];
        snprintf(ports, sizeof ports, ":%04x", k.peer_port);
        char *low = malloc(size - 1 ? size - 1 : 1);
        FUZZ_ASSERT(low != NULL);
        for (size_t i = 0; i + 1 < size; i++)
            low[i] = (char)((t[i] >= 'A' && t[i] <= 'F') ? t[i] - 'A' + 'a' : t[i]);
        FUZZ_ASSERT(memmem(low, size - 1, ports, strlen(ports)) != NULL);
        free(low);
        char u[24];
        snprintf(u, sizeof u, "%u", uid);
        FUZZ_ASSERT(memmem(t, size - 1, u, strlen(u)) != NULL);
        snprintf(u, sizeof u, "%llu", (unsigned long long)ino);
        FUZZ_ASSERT(memmem(t, size - 1, u, strlen(u)) != NULL);
    }
    free(t);
    return 0;
}
