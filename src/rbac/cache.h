/* cache.h: RBAC decisions on data actions from each principal's role assignments, read once.
 *
 * One cache per thread (no locks). A principal's assignments are read from the store once
 * (scope, and the role definition resolved once) and a decision is an in-memory scan of them
 * with rbac_scope_covers / rbac_role_allows, whatever the resource: rbac_check's rule exactly
 * (data actions, no role-assignment condition involved), minus the query. 32 sets of 4
 * principals; a principal with more than RBAC_CACHE_MAX_ASSIGN assignments is decided by
 * rbac_check every time. The cache does not watch the store: its owner calls rbac_cache_clear
 * whenever the store generation moved (any change to role assignments moves it). */
#ifndef MV_RBAC_CACHE_H
#define MV_RBAC_CACHE_H

#include "store/store.h"

#define RBAC_CACHE_MAX_ASSIGN 64

struct rbac_cache;

MV_MUST_CHECK mv_rc rbac_cache_new(struct rbac_cache **out);
void rbac_cache_free(struct rbac_cache *c);
/* Forgets every principal (the store generation moved). */
void rbac_cache_clear(struct rbac_cache *c);
/* rbac_check(st, oid, action, 1, resource, allowed), from the cache when oid is in it. */
MV_MUST_CHECK mv_rc rbac_cache_check(struct rbac_cache *c, struct store *st, const char *oid,
                                     const char *action, const char *resource, int *allowed);

#endif
