/*
 * Model settings, the audit trail and request queries.
 */
#include "store/internal.h"


enum bms_status bms__store_audit_schema(struct bms_store *store,
                                             struct bms_diag *diag)
{
    (void)store;
    (void)diag;
    return BMS_OK;
}


enum bms_status bms_store_put_audit(struct bms_store *store,
                                    const struct bms_audit_record *rec,
                                    struct bms_diag *diag)
{
    (void)store;
    (void)rec;
    (void)diag;
    return BMS_OK;
}
