/* peer.c: who is calling, for a TCP connection from this host (the way identd answers): the
 * connection's four-tuple is looked up in the kernel's socket table (/proc/net/tcp or
 * /proc/net/tcp6), where the caller's end of the connection is the line whose local address is
 * the request's peer and whose remote address is the agent's end. That line gives the socket's
 * owner uid and inode. The cgroup is the cgroup v2 the caller's socket was created in: its id
 * from the kernel's socket diagnostics (sock_diag, INET_DIAG_CGROUP_ID, Linux 5.7+; no
 * privilege needed), mapped to a path by finding the cgroup2 directory with that inode number;
 * else (older kernels) the "0::" line of /proc/PID/cgroup of a process holding the socket, found
 * by scanning /proc/PID/fd (which needs the right to inspect the caller's processes).
 *
 * The table parser (agent_proc_tcp_find) is pure and sees bytes from the kernel, which are
 * trusted but still parsed as if they were not: tests/fuzz/fuzz_proc_tcp.c. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent_internal.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* n hex digits at *p (exactly), as a number; advances *p. -1 on anything else. */
static int hex_u32(const char **p, const char *end, int n, uint32_t *out)
{
    uint32_t v = 0;
    if (end - *p < n)
        return -1;
    for (int i = 0; i < n; i++) {
        int h = hexval((*p)[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | (uint32_t)h;
    }
    *p += n;
    *out = v;
    return 0;
}

/* An address as the kernel prints it: each 32-bit word of the address as it lies in memory,
 * printed as a native integer with %08X; then ':' and the port (%04X). */
static int parse_endpoint(const char **p, const char *end, int words, unsigned char addr[16],
                          int *port)
{
    for (int i = 0; i < words; i++) {
        uint32_t w;
        if (hex_u32(p, end, 8, &w) != 0)
            return -1;
        memcpy(addr + 4 * i, &w, 4);
    }
    uint32_t pt;
    if (*p >= end || **p != ':')
        return -1;
    (*p)++;
    if (hex_u32(p, end, 4, &pt) != 0)
        return -1;
    *port = (int)pt;
    return 0;
}

static void skip_spaces(const char **p, const char *end)
{
    while (*p < end && **p == ' ')
        (*p)++;
}

/* The next space-separated field; 0 if the line ends first. */
static int next_field(const char **p, const char *end, const char **f, size_t *n)
{
    skip_spaces(p, end);
    const char *s = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    *f = s;
    *n = (size_t)(*p - s);
    return *n > 0;
}

/* A decimal field (at most 20 digits). */
static int field_u64(const char *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return -1;
        uint64_t d = (uint64_t)(f[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* One table line (without its newline): 1 if it is the caller's end of k. */
static int line_match(const char *p, const char *end, const struct agent_conn *k,
                      uint32_t *uid, uint64_t *inode)
{
    int words = k->v6 ? 4 : 1;
    size_t alen = (size_t)words * 4;
    const char *f;
    size_t n;
    unsigned char la[16], ra[16];
    int lp, rp;
    /* "sl:" */
    if (!next_field(&p, end, &f, &n) || f[n - 1] != ':')
        return 0;
    skip_spaces(&p, end);
    if (parse_endpoint(&p, end, words, la, &lp) != 0)
        return 0;
    skip_spaces(&p, end);
    if (parse_endpoint(&p, end, words, ra, &rp) != 0)
        return 0;
    /* The caller's socket: its local end is our peer, its remote end is us. */
    if (lp != k->peer_port || rp != k->local_port || memcmp(la, k->peer, alen) != 0 ||
        memcmp(ra, k->local, alen) != 0)
        return 0;
    /* st, tx:rx, tr:when, retrnsmt, uid, timeout, inode */
    uint64_t u = 0, ino = 0;
    for (int i = 0; i < 4; i++)
        if (!next_field(&p, end, &f, &n))
            return 0;
    if (!next_field(&p, end, &f, &n) || field_u64(f, n, &u) != 0 || u > UINT32_MAX)
        return 0;
    if (!next_field(&p, end, &f, &n))
        return 0;
    if (!next_field(&p, end, &f, &n) || field_u64(f, n, &ino) != 0)
        return 0;
    *uid = (uint32_t)u;
    *inode = ino;
    return 1;
}

mv_rc agent_proc_tcp_find(const char *text, size_t len, const struct agent_conn *k,
                          uint32_t *uid, uint64_t *inode)
{
    const char *p = text, *end = text + len;
    int first = 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (!first && line_match(p, le, k, uid, inode))
            return MV_OK;
        first = 0; /* the header line */
        p = nl ? nl + 1 : end;
    }
    return MV_ERR_NOT_FOUND;
}

/* ---- the live lookup ---- */

#define PROC_TCP_MAX (64u << 20) /* a table larger than this is not read whole */

/* The whole file (NUL-terminated), or NULL. */
static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    while (b) {
        if (n + 1 >= cap) {
            if (cap >= PROC_TCP_MAX)
                break;
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0) {
            free(b);
            b = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (b) {
        b[n] = '\0';
        *len = n;
    }
    return b;
}

static mv_rc table_find(const char *path, const struct agent_conn *k, uint32_t *uid,
                        uint64_t *inode)
{
    size_t len = 0;
    char *t = slurp(path, &len);
    if (!t)
        return MV_ERR_UNAVAILABLE;
    mv_rc rc = agent_proc_tcp_find(t, len, k, uid, inode);
    free(t);
    return rc;
}

static int v4mapped(const unsigned char a[16])
{
    static const unsigned char pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pre, 12) == 0;
}

mv_rc agent_peer_uid(int fd, struct agent_caller *out)
{
    struct sockaddr_storage ls, ps;
    socklen_t ll = sizeof ls, pl = sizeof ps;
    struct agent_conn k;
    memset(&k, 0, sizeof k);
    memset(out, 0, sizeof *out);
    if (getsockname(fd, (struct sockaddr *)&ls, &ll) != 0 ||
        getpeername(fd, (struct sockaddr *)&ps, &pl) != 0 || ls.ss_family != ps.ss_family)
        return MV_ERR_UNAVAILABLE;
    if (ls.ss_family == AF_INET) {
        const struct sockaddr_in *l = (const struct sockaddr_in *)&ls;
        const struct sockaddr_in *p = (const struct sockaddr_in *)&ps;
        memcpy(k.local, &l->sin_addr, 4);
        memcpy(k.peer, &p->sin_addr, 4);
        k.local_port = ntohs(l->sin_port);
        k.peer_port = ntohs(p->sin_port);
    } else if (ls.ss_family == AF_INET6) {
        const struct sockaddr_in6 *l = (const struct sockaddr_in6 *)&ls;
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&ps;
        k.v6 = 1;
        memcpy(k.local, &l->sin6_addr, 16);
        memcpy(k.peer, &p->sin6_addr, 16);
        k.local_port = ntohs(l->sin6_port);
        k.peer_port = ntohs(p->sin6_port);
    } else {
        return MV_ERR_NOT_FOUND;
    }
    mv_rc rc = table_find(k.v6 ? "/proc/net/tcp6" : "/proc/net/tcp", &k, &out->uid, &out->inode);
    if (rc == MV_ERR_NOT_FOUND && k.v6 && v4mapped(k.local) && v4mapped(k.peer)) {
        /* A dual-stack listener: an IPv4 caller's socket is in the IPv4 table. */
        struct agent_conn k4 = k;
        memset(k4.local, 0, sizeof k4.local);
        memset(k4.peer, 0, sizeof k4.peer);
        memcpy(k4.local, k.local + 12, 4);
        memcpy(k4.peer, k.peer + 12, 4);
        k4.v6 = 0;
        rc = table_find("/proc/net/tcp", &k4, &out->uid, &out->inode);
    }
    if (rc == MV_OK) {
        out->local = 1;
        out->conn = k;
    }
    return rc;
}

static mv_rc proc_cgroup(const struct agent_caller *c, char *out, size_t outlen);

/* ---- the cgroup, from sock_diag ---- */

/* The cgroup v2 id of the caller's end of c->conn: MV_OK, or MV_ERR_UNAVAILABLE. */
static mv_rc diag_cgroup_id(const struct agent_caller *c, uint64_t *id)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof req);
    req.nlh.nlmsg_len = sizeof req;
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = c->conn.v6 ? AF_INET6 : AF_INET;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_sport = htons((uint16_t)c->conn.peer_port); /* the caller's end */
    req.r.id.idiag_dport = htons((uint16_t)c->conn.local_port);
    memcpy(req.r.id.idiag_src, c->conn.peer, c->conn.v6 ? 16 : 4);
    memcpy(req.r.id.idiag_dst, c->conn.local, c->conn.v6 ? 16 : 4);
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return MV_ERR_UNAVAILABLE;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    mv_rc rc = MV_ERR_UNAVAILABLE;
    long buf[2048]; /* aligned for the netlink headers */
    struct timeval tv = {1, 0};
    (void)setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (sendto(nl, &req, sizeof req, 0, (struct sockaddr *)&sa, sizeof sa) != (ssize_t)sizeof req)
        goto out;
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n <= 0)
        goto out;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            break;
        struct inet_diag_msg *m = NLMSG_DATA(h);
        unsigned int alen = (unsigned int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
        for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
            if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t)) {
                memcpy(id, RTA_DATA(a), sizeof *id);
                rc = MV_OK;
            }
        }
        break;
    }
out:
    close(nl);
    return rc;
}

/* Where cgroup2 is mounted ("" if it is not). */
static void cgroup2_mount(char *out, size_t len)
{
    size_t n = 0;
    char *t = slurp("/proc/self/mounts", &n);
    out[0] = '\0';
    for (char *line = t; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        /* "cgroup2 /sys/fs/cgroup cgroup2 rw,..." (no spaces in our mount points) */
        char *sp1 = strchr(line, ' ');
        char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (sp2 && strncmp(sp2 + 1, "cgroup2 ", 8) == 0 && (size_t)(sp2 - sp1 - 1) < len) {
            memcpy(out, sp1 + 1, (size_t)(sp2 - sp1 - 1));
            out[sp2 - sp1 - 1] = '\0';
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(t);
}

/* Depth-first search of dir (path of length plen in path[]) for the directory with inode id. */
static int find_ino(char *path, size_t plen, size_t cap, uint64_t id, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || de->d_name[0] == '.')
            continue;
        size_t nl = strlen(de->d_name);
        if (plen + 1 + nl + 1 > cap)
            continue;
        path[plen] = '/';
        memcpy(path + plen + 1, de->d_name, nl + 1);
        if ((uint64_t)de->d_ino == id)
            found = 1;
        else if (depth < 32)
            found = find_ino(path, plen + 1 + nl, cap, id, depth + 1);
        if (!found)
            path[plen] = '\0';
    }
    closedir(d);
    return found;
}

static mv_rc diag_cgroup(const struct agent_caller *c, char *out, size_t outlen)
{
    uint64_t id = 0;
    char mnt[256], path[4096];
    struct stat sb;
    if (diag_cgroup_id(c, &id) != MV_OK)
        return MV_ERR_UNAVAILABLE;
    cgroup2_mount(mnt, sizeof mnt);
    if (!mnt[0] || stat(mnt, &sb) != 0)
        return MV_ERR_UNAVAILABLE;
    size_t ml = strlen(mnt);
    if ((uint64_t)sb.st_ino == id)
        return mv_copy(out, outlen, "/") == MV_OK ? MV_OK : MV_ERR_UNAVAILABLE;
    memcpy(path, mnt, ml + 1);
    if (!find_ino(path, ml, sizeof path, id, 0))
        return MV_ERR_NOT_FOUND;
    return mv_copy(out, outlen, path + ml) == MV_OK ? MV_OK : MV_ERR_UNAVAILABLE;
}

/* The cgroup v2 path ("0::/path") of a /proc/PID/cgroup text. */
static int cgroup_v2(const char *t, char *out, size_t outlen)
{
    const char *p = t;
    while (p && *p) {
        if (strncmp(p, "0::", 3) == 0) {
            const char *s = p + 3, *e = strchr(s, '\n');
            size_t n = e ? (size_t)(e - s) : strlen(s);
            if (n == 0 || n >= outlen)
                return -1;
            memcpy(out, s, n);
            out[n] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

mv_rc agent_peer_cgroup(const struct agent_caller *c, char *out, size_t outlen)
{
    if (c->local && diag_cgroup(c, out, outlen) == MV_OK)
        return MV_OK;
    return proc_cgroup(c, out, outlen);
}

/* The older way: a process holding the socket, and its /proc/PID/cgroup. */
static mv_rc proc_cgroup(const struct agent_caller *c, char *out, size_t outlen)
{
    char want[64], path[128], link[64];
    int wn = snprintf(want, sizeof want, "socket:[%llu]", (unsigned long long)c->inode);
    if (!c->local || wn <= 0 || (size_t)wn >= sizeof want)
        return MV_ERR_NOT_FOUND;
    DIR *proc = opendir("/proc");
    if (!proc)
        return MV_ERR_UNAVAILABLE;
    mv_rc rc = MV_ERR_NOT_FOUND;
    struct dirent *de;
    while (rc == MV_ERR_NOT_FOUND && (de = readdir(proc)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        int n = snprintf(path, sizeof path, "/proc/%s/fd", de->d_name);
        if (n <= 0 || (size_t)n >= sizeof path)
            continue;
        DIR *fds = opendir(path);
        if (!fds)
            continue; /* gone, or not ours to read (hidepid) */
        struct dirent *fe;
        int found = 0;
        while (!found && (fe = readdir(fds)) != NULL) {
            char fp[160];
            if (fe->d_name[0] == '.')
                continue;
            n = snprintf(fp, sizeof fp, "%s/%s", path, fe->d_name);
            if (n <= 0 || (size_t)n >= sizeof fp)
                continue;
            ssize_t r = readlink(fp, link, sizeof link - 1);
            if (r == wn && memcmp(link, want, (size_t)wn) == 0)
                found = 1;
        }
        closedir(fds);
        if (!found)
            continue;
        n = snprintf(path, sizeof path, "/proc/%s/cgroup", de->d_name);
        size_t len = 0;
        char *t = n > 0 && (size_t)n < sizeof path ? slurp(path, &len) : NULL;
        rc = t && cgroup_v2(t, out, outlen) == 0 ? MV_OK : MV_ERR_UNAVAILABLE;
        free(t);
    }
    closedir(proc);
    return rc;
}
