/*
 * The bms program: picks the command from argv[1] and hands it the rest.
 * Also holds what every command shares: the usage text, integer parsing
 * and usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bms/server.h"
#include "cli/cli.h"

static const char usage_text[] =
    "usage: bms <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve      serve a model repository over HTTP (KServe v2)\n"
    "  predict    run one v2 infer request on a model, without a server\n"
    "  requests   print the latest request records\n"
    "  keys       make, list, revoke and limit API keys\n"
    "  bench      time the engine alone on one ONNX model\n"
    "  version    print the version\n"
    "  help       print this text\n"
    "\n"
    "  bms serve [--model-repository DIR] [--http-port N]\n"
    "            [--http-address A] [--data-dir DIR] [--threads N]\n"
    "            [--log-level debug|info|warn|error]\n"
    "            [--max-body-size BYTES] [--cache-mb N]\n"
    "            [--tls-cert FILE --tls-key FILE] [--max-header-bytes N]\n"
    "            [--max-elements N] [--max-request-ms MS]\n"
    "            [--max-connections-per-client N] [--poll-s N]\n"
    "            [--no-auth]\n"
    "  bms predict MODEL_DIR_OR_ONNX --input FILE [--output FILE]\n"
    "  bms requests [--data-dir DIR] [--limit N] [--json]\n"
    "  bms keys create --name N --role admin|user [--models a,b]\n"
    "            [--rps R [--burst B]] [--data-dir DIR]\n"
    "  bms keys list [--json] | revoke ID | limit ID --rps R [--burst B]\n"
    "  bms keys model-limit MODEL --rps R [--burst B]\n"
    "  bms bench MODEL.onnx [--batch N] [--threads T] [--iterations K]\n"
    "            [--warmup W] [--seed S] [--inputs FILE]\n"
    "            [--write-inputs FILE] [--dump-outputs FILE] [--json]\n"
    "            [--profile]\n"
    "\n"
    "Defaults: repository ./models, port 8000, address 127.0.0.1, data\n"
    "folder ./data, threads 2 per core (at least 4), log level info,\n"
    "bodies up to 64 MiB, 20 records.  predict reads FILE (\"-\": stdin)\n"
    "as a v2 infer request body and writes the response to stdout or\n"
    "--output.\n"
    "\n"
    "bench: the first dynamic dimension of each input is the batch\n"
    "(default 1), later ones are 1; inputs are seeded random values\n"
    "(floats in [-1, 1), integers in [0, 100)) or the raw little-endian\n"
    "tensors of --inputs FILE, concatenated in input order.  10 warm-up\n"
    "runs, then up to 100 timed runs within about 3 s unless\n"
    "--iterations is given; 1 thread unless --threads (0: one per core).\n"
    "--write-inputs writes the inputs it would use and stops;\n"
    "--dump-outputs writes the last run's outputs the same way.\n";


void bms__cli_usage(FILE *f)
{
    fputs(usage_text, f);
}


int bms__cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "bms %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    bms__cli_usage(stderr);
    return BMS__EXIT_USAGE;
}


int bms__cli_bad_option(const char *cmd, char **argv, int c)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";

    if (c == ':') {
        return bms__cli_usage_error(cmd, "option '%s' needs a value", arg);
    }
    if (optopt != 0) {
        return bms__cli_usage_error(cmd, "unknown option '-%c'", optopt);
    }
    return bms__cli_usage_error(cmd, "unknown option '%s'", arg);
}


int bms__cli_parse_long(const char *cmd, const char *opt, const char *s,
                        long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "bms %s: --%s: expected an integer in %ld..%ld, "
                "got '%s'\n", cmd, opt, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}


int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (cmd == NULL) {
        bms__cli_usage(stderr);
        return BMS__EXIT_USAGE;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0) {
        bms__cli_usage(stdout);
        return BMS__EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("bms %s\n", BMS_VERSION);
        return BMS__EXIT_OK;
    }
    if (strcmp(cmd, "serve") == 0) {
        return bms__cli_serve(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "predict") == 0) {
        return bms__cli_predict(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "requests") == 0) {
        return bms__cli_requests(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "keys") == 0) {
        return bms__cli_keys(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "bench") == 0) {
        return bms__cli_bench(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "worker") == 0) {
        return bms__cli_worker(argc - 1, argv + 1);
    }
    fprintf(stderr, "bms: unknown command '%s'\n\n", cmd);
    bms__cli_usage(stderr);
    return BMS__EXIT_USAGE;
}
