/* test_proc_tcp.c: the agent's caller lookup (src/agent/peer.c): the /proc/net/tcp and tcp6
 * parser on fixed tables, and the live lookup on a real loopback connection (the caller's uid
 * and cgroup are this process's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_internal.h"

/* A real table's shape (x86-64, little-endian: 127.0.0.1 prints as 0100007F). The agent
 * listens on 127.0.0.1:8080 (1F90); the caller is 127.0.0.1:40000 (9C40), uid 1001. */
static const char TCP4[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0"
    "        0 11111 1 0000000000000000 100 0 0 10 0\n"
    "   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0"
    "        0 22222 1 0000000000000000 20 4 30 10 -1\n"
    "   2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001"
    "        0 33333 1 0000000000000000 20 4 30 10 -1\n";

static struct agent_conn conn4(int lport, int pport)
{
    struct agent_conn k;
    memset(&k, 0, sizeof k);
    inet_pton(AF_INET, "127.0.0.1", k.local);
    inet_pton(AF_INET, "127.0.0.1", k.peer);
    k.local_port = lport;
    k.peer_port = pport;
    return k;
}

static int little_endian(void)
{
    uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void test_tcp4_finds_caller(void **st)
{
    (void)st;
    if (!little_endian())
        skip();
    struct agent_conn k = conn4(8080, 40000);
    uint32_t uid = 0;
    uint64_t ino = 0;
    assert_int_equal(agent_proc_tcp_find(TCP4, strlen(TCP4), &k, &uid, &ino), MV_OK);
    assert_int_equal(uid, 1001); /* the caller's end, not the agent's (line 1, uid 0) */
    assert_int_equal(ino, 33333);
}

static void test_tcp4_no_match(void **st)
{
    (void)st;
    uint32_t uid = 7;
    uint64_t ino = 7;
    struct agent_conn k = conn4(8080, 40001); /* another port */
    assert_int_equal(agent_proc_tcp_find(TCP4, strlen(TCP4), &k, &uid, &ino), MV_ERR_NOT_FOUND);
    k = conn4(8080, 40000);
    inet_pton(AF_INET, "10.0.0.5", k.peer); /* another address: a remote caller */
    assert_int_equal(agent_proc_tcp_find(TCP4, strlen(TCP4), &k, &uid, &ino), MV_ERR_NOT_FOUND);
    /* The header line alone, an empty text, a truncated line. */
    assert_int_equal(agent_proc_tcp_find(TCP4, 100, &k, &uid, &ino), MV_ERR_NOT_FOUND);
    assert_int_equal(agent_proc_tcp_find("", 0, &k, &uid, &ino), MV_ERR_NOT_FOUND);
    k = conn4(8080, 40000);
    size_t cut = strlen(TCP4) - 60; /* line 2 ends before its inode */
    assert_int_equal(agent_proc_tcp_find(TCP4, cut, &k, &uid, &ino), MV_ERR_NOT_FOUND);
    assert_int_equal(uid, 7);
}

static void test_tcp4_malformed(void **st)
{
    (void)st;
    static const char *bad[] = {
        "h\n   2: 0100007G:9C40 0100007F:1F90 01 0:0 0:0 0 1001 0 33333\n", /* not hex */
        "h\n   2: 0100007F9C40 0100007F:1F90 01 0:0 0:0 0 1001 0 33333\n",  /* no ':' */
        "h\n   2: 0100007F:9C40 0100007F:1F90 01 0:0 0:0 0 -1 0 33333\n",   /* uid */
        "h\n   2: 0100007F:9C40 0100007F:1F90 01 0:0 0:0 0 4294967296 0 33333\n",
        "h\n   2: 0100007F:9C40 0100007F:1F90 01 0:0 0:0 0 1001 0 99999999999999999999999\n",
        "h\n   2: 0100007F:9C40 0100007F:1F90\n",
        "h\n0100007F:9C40 0100007F:1F90 01 0:0 0:0 0 1001 0 33333\n", /* no "sl:" */
    };
    if (!little_endian())
        skip();
    struct agent_conn k = conn4(8080, 40000);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t uid = 0;
        uint64_t ino = 0;
        assert_int_equal(agent_proc_tcp_find(bad[i], strlen(bad[i]), &k, &uid, &ino),
                         MV_ERR_NOT_FOUND);
    }
    static const char ok[] = "h\n   2: 0100007F:9C40 0100007F:1F90 01 0:0 0:0 0 1001 0 33333";
    uint32_t uid = 0;
    uint64_t ino = 0;
    assert_int_equal(agent_proc_tcp_find(ok, strlen(ok), &k, &uid, &ino), MV_OK); /* no '\n' */
    assert_int_equal(ino, 33333);
}

static void test_tcp6_finds_caller(void **st)
{
    (void)st;
    if (!little_endian())
        skip();
    /* ::1 prints as four words 00000000 00000000 00000000 01000000. */
    static const char t6[] =
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:1F90 01 "
        "00000000:00000000 00:00000000 00000000  1002        0 44444 1 0 20 4 30 10 -1\n";
    struct agent_conn k;
    memset(&k, 0, sizeof k);
    k.v6 = 1;
    inet_pton(AF_INET6, "::1", k.local);
    inet_pton(AF_INET6, "::1", k.peer);
    k.local_port = 8080;
    k.peer_port = 40000;
    uint32_t uid = 0;
    uint64_t ino = 0;
    assert_int_equal(agent_proc_tcp_find(t6, strlen(t6), &k, &uid, &ino), MV_OK);
    assert_int_equal(uid, 1002);
    assert_int_equal(ino, 44444);
    k.v6 = 0; /* the same text read as an IPv4 table: nothing */
    assert_int_equal(agent_proc_tcp_find(t6, strlen(t6), &k, &uid, &ino), MV_ERR_NOT_FOUND);
}

/* The live lookup: this process connects to itself over loopback. */
static void test_live_loopback(void **st)
{
    (void)st;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 1), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    int s = accept(ls, NULL, NULL);
    assert_true(s >= 0);

    struct agent_caller who;
    if (access("/proc/net/tcp", R_OK) != 0)
        skip();
    assert_int_equal(agent_peer_uid(s, &who), MV_OK);
    assert_int_equal(who.local, 1);
    assert_int_equal(who.uid, getuid());
    assert_true(who.inode > 0);

    char cg[4096], want[4096] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(want, sizeof want, "%s", line + 3);
        }
    fclose(f);
    mv_rc rc = agent_peer_cgroup(&who, cg, sizeof cg);
    if (want[0]) {
        assert_int_equal(rc, MV_OK);
        assert_string_equal(cg, want);
    }
    close(s);
    close(c);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp4_finds_caller),
        cmocka_unit_test(test_tcp4_no_match),
        cmocka_unit_test(test_tcp4_malformed),
        cmocka_unit_test(test_tcp6_finds_caller),
        cmocka_unit_test(test_live_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
