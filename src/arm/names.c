/* names.c: ARM name rules, resource ids and scope checks.
 *
 * mivault has one subscription and one resource group per tenant (srv->tenant). Resource ids
 * are built from them with Azure's canonical casing; ids and scopes that callers send are
 * compared segment by segment, ASCII case-insensitively (ARM is case-insensitive in paths). */
#include <string.h>
#include <strings.h>

#include "arm/arm_internal.h"
#include "common/limits.h"

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Azure VM names (as agreed for mivault): ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ */
int arm_vm_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MV_MAX_NAME || !is_alnum(name[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alnum(name[i]) && name[i] != '_' && name[i] != '.' && name[i] != '-')
            return 0;
    return 1;
}

/* User-assigned identity names: letters, digits, '-' and '_', starting with a letter or digit,
 * at most 64 (the store's limit; Azure allows 128). Azure also asks for at least 3 characters;
 * mivault accepts shorter names (its CLI and tests use "u1"). */
int arm_identity_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MV_MAX_NAME || !is_alnum(name[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!is_alnum(name[i]) && name[i] != '_' && name[i] != '-')
            return 0;
    return 1;
}

/* Key Vault names: 3..24, ^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$, no "--". The name is the
 * first DNS label of the vault's host, so this also keeps it a valid label. */
int arm_vault_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < MV_VAULT_NAME_MIN || n > MV_VAULT_NAME_MAX)
        return 0;
    char first = name[0];
    if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z')) || !is_alnum(name[n - 1]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (!is_alnum(name[i]) && name[i] != '-')
            return 0;
        if (name[i] == '-' && name[i - 1] == '-')
            return 0;
    }
    return 1;
}

mv_rc arm_sub_id(const struct arm_plane *srv, char out[ST_SCOPE])
{
    return mv_fmt(out, ST_SCOPE, "/subscriptions/%s", srv->tenant.subscription_id);
}

mv_rc arm_rg_id(const struct arm_plane *srv, char out[ST_SCOPE])
{
    return mv_fmt(out, ST_SCOPE, "/subscriptions/%s/resourceGroups/%s", srv->tenant.subscription_id,
                  srv->tenant.resource_group);
}

mv_rc arm_resource_id(const struct arm_plane *srv, const char *type, const char *name, char out[ST_SCOPE])
{
    return mv_fmt(out, ST_SCOPE, "/subscriptions/%s/resourceGroups/%s/providers/%s/%s",
                  srv->tenant.subscription_id, srv->tenant.resource_group, type, name);
}

/* Next '/'-separated segment of *p (which points just past a '/'), as a slice. */
static mv_slice next_seg(const char **p)
{
    const char *s = *p, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    *p = e ? e + 1 : s + n;
    return (mv_slice){s, n};
}

int arm_parse_resource_id(const struct arm_plane *srv, const char *id, const char *type, char out[ST_NAME])
{
    if (!id || id[0] != '/')
        return 0;
    const char *p = id + 1;
    /* type is "Provider/resourceType" */
    const char *slash = strchr(type, '/');
    if (!slash)
        return 0;
    mv_slice ns = {type, (size_t)(slash - type)}, rt = mv_slice_cstr(slash + 1);
    mv_slice s[8];
    for (int i = 0; i < 8; i++) {
        if (!*p)
            return 0;
        s[i] = next_seg(&p);
    }
    if (*p) /* more segments */
        return 0;
    if (!mv_slice_eq_ci(s[0], "subscriptions") || !mv_slice_eq_ci(s[1], srv->tenant.subscription_id) ||
        !mv_slice_eq_ci(s[2], "resourceGroups") || !mv_slice_eq_ci(s[3], srv->tenant.resource_group) ||
        !mv_slice_eq_ci(s[4], "providers") || s[5].len != ns.len ||
        strncasecmp(s[5].p, ns.p, ns.len) != 0 || s[6].len != rt.len ||
        strncasecmp(s[6].p, rt.p, rt.len) != 0)
        return 0;
    if (s[7].len == 0 || s[7].len >= ST_NAME)
        return 0;
    memcpy(out, s[7].p, s[7].len);
    out[s[7].len] = '\0';
    return 1;
}

mv_rc arm_check_sub(struct arm_req *ar, const char *sub)
{
    if (mv_streq_ci(sub, ar->srv->tenant.subscription_id))
        return MV_OK;
    return arm_fail(ar, 404, "SubscriptionNotFound", "The subscription '%s' could not be found.", sub);
}

mv_rc arm_check_rg(struct arm_req *ar, const char *rg)
{
    if (mv_streq_ci(rg, ar->srv->tenant.resource_group))
        return MV_OK;
    return arm_fail(ar, 404, "ResourceGroupNotFound", "Resource group '%s' could not be found.", rg);
}

mv_rc arm_check_scope(struct arm_req *ar)
{
    mv_rc rc = MV_OK;
    char sub[ST_SCOPE], rg[ST_SCOPE];
    const char *p = ar->scope;
    if (strcmp(p, "/") == 0)
        return MV_OK;
    ENSURE(p[0] == '/', MV_ERR_INTERNAL);
    p++;
    mv_slice s0 = next_seg(&p);
    if (!mv_slice_eq_ci(s0, "subscriptions") || !*p)
        return arm_fail(ar, 400, "InvalidScope", "The scope '%s' is not valid: mivault supports '/' and "
                        "scopes within its subscription.", ar->scope);
    mv_slice s1 = next_seg(&p);
    memcpy(sub, s1.p, s1.len);
    sub[s1.len] = '\0';
    CHECK(arm_check_sub(ar, sub));
    if (!*p)
        return MV_OK;
    mv_slice s2 = next_seg(&p);
    if (!mv_slice_eq_ci(s2, "resourceGroups"))
        return MV_OK;
    if (!*p)
        return arm_fail(ar, 400, "InvalidScope", "The scope '%s' is not valid.", ar->scope);
    mv_slice s3 = next_seg(&p);
    memcpy(rg, s3.p, s3.len);
    rg[s3.len] = '\0';
    CHECK(arm_check_rg(ar, rg));
out:
    return rc;
}

mv_rc arm_not_found(struct arm_req *ar, const char *type, const char *name)
{
    return arm_fail(ar, 404, "ResourceNotFound",
                    "The Resource '%s/%s' under resource group '%s' was not found.", type, name,
                    ar->srv->tenant.resource_group);
}
