/*
 * API keys and their rate limits.
 */
#include "store/internal.h"


enum bms_status bms__store_keys_schema(struct bms_store *store,
                                       struct bms_diag *diag)
{
    (void)store;
    (void)diag;
    return BMS_OK;
}
