/*
 * The unit test program: runs every module's group and prints one closing
 * line, `unit: N passed, N failed`.  A module whose test file is not part
 * of this build is skipped (its entry point is a weak symbol).
 */
#include <stdio.h>

#include "unit.h"

#define WEAK __attribute__((weak))

WEAK int bms_test_base(int *n_tests);
WEAK int bms_test_engine(int *n_tests);
WEAK int bms_test_ops_core(int *n_tests);
WEAK int bms_test_ops_math(int *n_tests);
WEAK int bms_test_conv(int *n_tests);
WEAK int bms_test_ops_more(int *n_tests);
WEAK int bms_test_ops_fast(int *n_tests);
WEAK int bms_test_ops_last(int *n_tests);
WEAK int bms_test_manifest(int *n_tests);
WEAK int bms_test_repo(int *n_tests);
WEAK int bms_test_store(int *n_tests);
WEAK int bms_test_v2(int *n_tests);
WEAK int bms_test_v2_binary(int *n_tests);
WEAK int bms_test_v2_number(int *n_tests);
WEAK int bms_test_server(int *n_tests);
WEAK int bms_test_optimize(int *n_tests);
WEAK int bms_test_fuzz_regress(int *n_tests);
WEAK int bms_test_sched(int *n_tests);
WEAK int bms_test_control(int *n_tests);
WEAK int bms_test_routing(int *n_tests);
WEAK int bms_test_qos(int *n_tests);
WEAK int bms_test_auth(int *n_tests);
WEAK int bms_test_cache(int *n_tests);
WEAK int bms_test_gzip(int *n_tests);
WEAK int bms_test_package(int *n_tests);
WEAK int bms_test_manager(int *n_tests);
WEAK int bms_test_audit(int *n_tests);
WEAK int bms_test_gateway(int *n_tests);

int main(void)
{
    int (*const groups[])(int *) = {
        bms_test_base, bms_test_engine, bms_test_ops_core,
        bms_test_ops_math, bms_test_conv, bms_test_ops_more,
        bms_test_ops_last, bms_test_ops_fast,
        bms_test_manifest,
        bms_test_repo, bms_test_store, bms_test_v2, bms_test_server,
        bms_test_v2_binary, bms_test_v2_number,
        bms_test_optimize,
        bms_test_fuzz_regress,
        bms_test_sched,
        bms_test_control,
        bms_test_routing,
        bms_test_qos,
        bms_test_auth, bms_test_cache, bms_test_gzip, bms_test_package,
        bms_test_manager, bms_test_audit, bms_test_gateway,
    };
    int n_passed = 0;
    int n_failed = 0;

    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        int n_tests = 0;
        int failed;

        if (groups[i] == NULL) {
            continue;
        }
        failed = groups[i](&n_tests);
        n_failed += failed;
        n_passed += n_tests - failed;
    }
    printf("unit: %d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
