/* filter.c: the small subset of OData $filter that ARM clients send to the authorization
 * provider (az role assignment list / create, SDK role lookups):
 *
 *   principalId eq '<id>'    assignedTo('<id>')    atScope()        (role assignments)
 *   roleName eq '<name>'     type eq 'BuiltInRole'                  (role definitions)
 *
 * clauses joined by " and " (ASCII case-insensitive keywords). A string literal is quoted with
 * ' and a doubled '' stands for one quote (OData ABNF, "SQUOTE-in-string"). Anything else is
 * refused rather than half-understood: an ignored filter would widen a listing. */
#include <string.h>
#include <strings.h>

#include "arm/arm_internal.h"

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

/* Consumes kw (case-insensitive) if it is next. */
static int take(const char **p, const char *kw)
{
    size_t n = strlen(kw);
    if (strncasecmp(*p, kw, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* A quoted literal into out (cap bytes). */
static int literal(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    if (**p != '\'')
        return 0;
    (*p)++;
    for (;;) {
        char c = **p;
        if (c == '\0')
            return 0;
        (*p)++;
        if (c == '\'') {
            if (**p != '\'')
                break;
            (*p)++;
        }
        if (n + 1 >= cap)
            return 0;
        out[n++] = c;
    }
    out[n] = '\0';
    return 1;
}

/* "<name> eq '<value>'" once name was consumed. */
static int eq_literal(const char **p, char *out, size_t cap)
{
    skip_ws(p);
    if (!take(p, "eq"))
        return 0;
    if (**p != ' ')
        return 0;
    skip_ws(p);
    return literal(p, out, cap);
}

static int clause(const char **p, struct arm_filter *f)
{
    if (take(p, "atScope()")) {
        f->at_scope = 1;
        return 1;
    }
    if (take(p, "assignedTo(")) {
        skip_ws(p);
        if (!literal(p, f->principal_id, sizeof f->principal_id))
            return 0;
        skip_ws(p);
        return take(p, ")");
    }
    if (take(p, "principalId"))
        return eq_literal(p, f->principal_id, sizeof f->principal_id);
    if (take(p, "roleName"))
        return eq_literal(p, f->role_name, sizeof f->role_name);
    if (take(p, "type"))
        return eq_literal(p, f->type, sizeof f->type);
    return 0;
}

int arm_filter_parse(const char *s, struct arm_filter *f)
{
    memset(f, 0, sizeof *f);
    const char *p = s;
    skip_ws(&p);
    if (!*p)
        return 1;
    for (;;) {
        if (!clause(&p, f))
            return 0;
        skip_ws(&p);
        if (!*p)
            return 1;
        if (!take(&p, "and") || *p != ' ')
            return 0;
        skip_ws(&p);
    }
}
