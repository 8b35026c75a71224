/*
 * Shared by the unit test files.  Each file defines one entry point,
 * `int bms_test_<module>(int *n_tests)`, that runs its cmocka group, sets
 * *n_tests and returns the number of failures; main.c calls them all.
 */
#ifndef BMS_TESTS_UNIT_H
#define BMS_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define BMS_RUN_GROUP(tests, n_tests)                                        \
    (*(n_tests) = (int)(sizeof(tests) / sizeof((tests)[0])),                 \
     cmocka_run_group_tests(tests, NULL, NULL))

int bms_test_base(int *n_tests);
int bms_test_engine(int *n_tests);
int bms_test_ops_core(int *n_tests);
int bms_test_ops_math(int *n_tests);
int bms_test_conv(int *n_tests);
int bms_test_ops_more(int *n_tests);
int bms_test_ops_fast(int *n_tests);
int bms_test_ops_last(int *n_tests);
int bms_test_manifest(int *n_tests);
int bms_test_repo(int *n_tests);
int bms_test_store(int *n_tests);
int bms_test_v2(int *n_tests);
int bms_test_server(int *n_tests);
int bms_test_optimize(int *n_tests);
int bms_test_fuzz_regress(int *n_tests);
int bms_test_sched(int *n_tests);
int bms_test_control(int *n_tests);
int bms_test_routing(int *n_tests);
int bms_test_qos(int *n_tests);

#endif
