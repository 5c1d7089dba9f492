/* agent.c: `mivault agent`, the host agent of one VM (src/agent/, docs/agent.md).
 *
 * The join token is a one-time secret, so it should not sit in `ps` output or
 * /proc/PID/cmdline, which every local user can read. It can come from a file (--join-file F),
 * from standard input (--join -), or, for convenience, as --join TOKEN: then its bytes in the
 * argument area are overwritten as soon as they are copied, which is what /proc/PID/cmdline
 * shows from then on (a reader racing the first milliseconds of the process could still see
 * it: prefer the file or stdin). The copy is wiped once the agent has enrolled. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "common/secmem.h"
#include "common/util.h"

#define JOIN_INPUT_MAX 4096 /* a token is 99 characters; a file may add a newline or two */

/* Reads a whole stream into buf (NUL-terminated); 0 on success. */
static int read_stream(FILE *f, char *buf, size_t len)
{
    size_t n = fread(buf, 1, len - 1, f);
    if (ferror(f))
        return -1;
    if (n == len - 1 && fgetc(f) != EOF)
        return -1; /* longer than any token */
    buf[n] = '\0';
    return 0;
}

/* The token from --join-file, --join - or --join TOKEN into buf; "" if none. 0 or an error
 * printed. */
static int join_token(const struct cli *c, char *buf, size_t len)
{
    const char *file = cli_get(c, "join-file");
    const char *arg = cli_get(c, "join");
    buf[0] = '\0';
    if (file && arg)
        return cli_error("agent: give --join or --join-file, not both");
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            return cli_error("agent: cannot read --join-file %s", file);
        int bad = read_stream(f, buf, len);
        fclose(f);
        return bad ? cli_error("agent: --join-file %s is not a join token", file) : 0;
    }
    if (!arg)
        return 0;
    if (strcmp(arg, "-") == 0)
        return read_stream(stdin, buf, len) ? cli_error("agent: stdin is not a join token") : 0;
    if (mv_copy(buf, len, arg) != MV_OK)
        return cli_error("agent: --join is not a join token");
    /* The argument area is what /proc/PID/cmdline reads: overwrite the token there. */
    char *argv_bytes = (char *)arg;
    memset(argv_bytes, 'x', strlen(argv_bytes));
    return 0;
}

int verb_agent(struct cli *c)
{
    char join[JOIN_INPUT_MAX];
    const char *metrics_at = NULL;
    struct cli_metrics *metrics = NULL;
    struct agent_opts o = {
        .state_dir = c->state_dir,
        .vm = cli_get(c, "vm"),
        .listen = cli_get(c, "listen"),
        .imds_address = cli_get(c, "imds-address"),
        .server_url = cli_get(c, "server"),
    };
    if (!o.vm || !*o.vm)
        return cli_error("agent: --vm is required") + 1;
    if (cli_metrics_flag(c, &metrics_at))
        return 2;
    if (mv_protect_daemon() != MV_OK)
        return cli_error("%s", cli_detail());
    if (join_token(c, join, sizeof join))
        return 2;
    /* As root: the state dir (made here on a new machine) goes to its user, who the agent
     * becomes once listening. */
    struct mv_paths paths;
    struct mv_user u;
    umask(077);
    if (state_paths(c->state_dir, &paths) != MV_OK || mv_mkdirs(paths.dir, 0700) != MV_OK ||
        cli_state_user(c, paths.dir, &u) != MV_OK) {
        OPENSSL_cleanse(join, sizeof join);
        return cli_error("agent: %s", cli_detail());
    }
    o.run_as = &u;
    o.join_token = join[0] ? join : NULL;
    if (metrics_at && cli_metrics_start(metrics_at, NULL, &metrics) != MV_OK) {
        OPENSSL_cleanse(join, sizeof join);
        return 1;
    }
    mv_rc rc = agent_run(&o);
    cli_metrics_stop(metrics);
    OPENSSL_cleanse(join, sizeof join);
    return rc == MV_OK ? 0 : 1;
}
