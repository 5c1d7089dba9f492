/* list.c: resource listings ({"value":[...]}), shared by VMs, identities and vaults. */
#include "arm/arm_internal.h"

mv_rc arm_list_scope(struct arm_req *ar, const char *read_action)
{
    mv_rc rc = MV_OK;
    char scope[ST_SCOPE];
    CHECK(ar->ncap >= 2 ? arm_rg_id(ar->srv, scope) : arm_sub_id(ar->srv, scope));
    ENSURE(arm_authorize(ar, read_action, scope), MV_ERR_FORBIDDEN);
out:
    return rc;
}

void arm_reply_list(struct arm_req *ar, const void *items, size_t n, size_t elem, arm_item_json_fn fn)
{
    mv_rc rc = MV_OK;
    json_t *list = json_array();
    ENSURE(list != NULL, MV_ERR_INTERNAL);
    for (size_t i = 0; i < n; i++) {
        json_t *j = NULL;
        CHECK(fn(ar, (const char *)items + i * elem, &j));
        ENSURE(json_array_append_new(list, j) == 0, MV_ERR_INTERNAL);
    }
    arm_reply(ar, 200, json_pack("{s:o}", "value", list));
    list = NULL;
out:
    if (rc != MV_OK)
        arm_fail_rc(ar, rc);
    json_decref(list);
}
