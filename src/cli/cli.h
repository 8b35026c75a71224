/*
 * The bms command line: one function per command, called by main with the
 * command's own argv (argv[0] is the command name), each returning the
 * process exit status: 0 on success, 1 when the work failed, 2 for a usage
 * error.  Only this layer prints to the terminal or exits.
 */
#ifndef BMS_CLI_H
#define BMS_CLI_H

#include <stdio.h>

#define BMS__EXIT_OK 0
#define BMS__EXIT_FAIL 1
#define BMS__EXIT_USAGE 2

int bms__cli_serve(int argc, char **argv);
int bms__cli_predict(int argc, char **argv);
int bms__cli_requests(int argc, char **argv);
int bms__cli_bench(int argc, char **argv);
int bms__cli_worker(int argc, char **argv);    /* hidden */
int bms__cli_keys(int argc, char **argv);      /* API keys */

/* Print the usage text to f. */
void bms__cli_usage(FILE *f);

/*
 * Parse s as a decimal integer in [min, max] into *out.  On failure print
 * `bms <cmd>: --<opt>: ...` on stderr and return -1; else 0.
 */
int bms__cli_parse_long(const char *cmd, const char *opt, const char *s,
                        long min, long max, long *out);

/*
 * Report what getopt_long returned as c (':' for a missing value, '?' for
 * an unknown option; the optstring must start with ':'), then the usage,
 * on stderr.  Returns BMS__EXIT_USAGE.
 */
int bms__cli_bad_option(const char *cmd, char **argv, int c);

/* Report a usage error (printf-style) and the usage on stderr.  Returns
 * BMS__EXIT_USAGE. */
int bms__cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
