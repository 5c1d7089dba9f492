/* args.c: option access and the shared output/error helpers of the CLI. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/log.h"

const char *cli_get(const struct cli *c, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < c->nopts; i++)
        if (strcmp(c->opts[i].name, name) == 0)
            v = c->opts[i].value;
    return v;
}

int cli_flag(const struct cli *c, const char *name)
{
    for (int i = 0; i < c->nopts; i++)
        if (strcmp(c->opts[i].name, name) == 0)
            return 1;
    return 0;
}

int cli_get_all(const struct cli *c, const char *name, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < c->nopts && n < max; i++)
        if (strcmp(c->opts[i].name, name) == 0 && c->opts[i].value)
            out[n++] = c->opts[i].value;
    return n;
}

mv_rc cli_require(const struct cli *c, const char *name, const char **value)
{
    *value = cli_get(c, name);
    if (!*value || !**value) {
        cli_error("%s: --%s is required (see `mivault %s --help`)", c->verb, name, c->verb);
        return MV_ERR_BAD_REQUEST;
    }
    return MV_OK;
}

mv_rc cli_load_state(struct cli *c)
{
    mv_rc rc = state_paths(c->state_dir, &c->paths);
    if (rc != MV_OK)
        return rc;
    rc = state_config_load(&c->paths, &c->cfg);
    if (rc != MV_OK)
        cli_error("no mivault state in %s (run `mivault init` or `mivault up` first)", c->paths.dir);
    return rc;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (mv_log_json()) { /* --log-format json: stderr holds JSON lines only */
        char msg[1024];
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        mv_log(MV_LOG_ERROR, "%s", msg);
        return 1;
    }
    fputs("mivault: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static json_t *dotted(json_t *o, const char *path)
{
    char part[128];
    const char *p = path;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part)
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        o = json_object_get(o, part);
        p = dot ? dot + 1 : p + n;
    }
    return o;
}

/* Columns that hold Unix seconds (Key Vault attributes, token expiry): -o table shows them in
 * ISO 8601 UTC; JSON output keeps the numbers the API returns. */
static int time_column(const char *col)
{
    static const char *const TIMES[] = {"created", "updated", "expiresOn", "joinTokenExpiresOn", "deletedDate",
                                        "scheduledPurgeDate", "exp", "nbf", "iat", "notBefore", "expires", NULL};
    const char *last = strrchr(col, '.');
    last = last ? last + 1 : col;
    for (int i = 0; TIMES[i]; i++)
        if (strcmp(TIMES[i], last) == 0)
            return 1;
    return 0;
}

/* v as seconds since the epoch (an integer, or a string of digits as IMDS gives expires_on). */
static int epoch_seconds(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return 1;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > 12 || strspn(s, "0123456789") != strlen(s))
        return 0;
    *out = strtoll(s, NULL, 10);
    return 1;
}

static void cell(json_t *v, const char *col, char *out, size_t len)
{
    long long secs;
    if (v && time_column(col) && epoch_seconds(v, &secs) && secs >= 0 && secs < 253402300800LL) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        if (strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
            return;
    }
    if (!v || json_is_null(v))
        snprintf(out, len, "-");
    else if (json_is_string(v))
        snprintf(out, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_true(v))
        snprintf(out, len, "true");
    else if (json_is_false(v))
        snprintf(out, len, "false");
    else {
        char *s = json_dumps(v, JSON_COMPACT);
        snprintf(out, len, "%s", s ? s : "?");
        free(s);
    }
}

static void print_table(json_t *rows, const char *const *cols)
{
    enum { MAXC = 12, W = 96 };
    size_t ncol = 0, width[MAXC] = {0};
    while (cols[ncol] && ncol < MAXC)
        ncol++;
    for (size_t c = 0; c < ncol; c++)
        width[c] = strlen(cols[c]);
    char buf[W];
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (size_t c = 0; c < ncol; c++) {
            cell(dotted(row, cols[c]), cols[c], buf, sizeof buf);
            if (strlen(buf) > width[c])
                width[c] = strlen(buf);
        }
    }
    for (size_t c = 0; c < ncol; c++) {
        const char *last = strrchr(cols[c], '.');
        printf("%-*s  ", (int)width[c], last ? last + 1 : cols[c]);
    }
    printf("\n");
    for (size_t c = 0; c < ncol; c++) {
        for (size_t k = 0; k < width[c]; k++)
            putchar('-');
        printf("  ");
    }
    printf("\n");
    json_array_foreach(rows, i, row)
    {
        for (size_t c = 0; c < ncol; c++) {
            cell(dotted(row, cols[c]), cols[c], buf, sizeof buf);
            printf("%-*s  ", (int)width[c], buf);
        }
        printf("\n");
    }
}

void cli_print(const struct cli *c, json_t *v, const char *const *columns)
{
    if (!v)
        return;
    if (c->table && columns) {
        json_t *rows = json_is_array(v) ? json_incref(v) : json_is_array(json_object_get(v, "value"))
                                                               ? json_incref(json_object_get(v, "value"))
                                                               : json_pack("[O]", v);
        print_table(rows, columns);
        json_decref(rows);
    } else {
        char *s = json_dumps(v, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
    }
    json_decref(v);
}
