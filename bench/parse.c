/*
 * The v2 request parser on real requests: Fashion-MNIST test images as
 * JSON infer requests, parsed by the server's parser (the fast path for
 * "data") and by the same parser with every number through yajl's events
 * (bms__v2_request_parse_events, the parser as it was before the fast
 * path).  Prints microseconds per request, megabytes and numbers per
 * second, and the ratio.
 *
 *   make bench-parse && build/bench-parse [N_IMAGES] [SECONDS]
 *
 * The bodies are built here, two ways of writing the pixels (value / 255
 * as FP32): with 17 significant digits, as Python's json module writes
 * float(numpy.float32), and with 9, the shortest that reads back any FP32.
 * Every request is parsed both ways first and the tensors compared, so a
 * figure is never of a parse that went wrong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "server/v2_parse.h"

#define IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define PIXELS 784
#define BODY_SIZE (PIXELS * 32 + 256)

typedef enum bms_status (*parse_fn)(const char *, size_t, const char *,
                                    size_t, int64_t,
                                    struct bms__v2_request **,
                                    struct bms_diag *);

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/* The first n images' pixels; exits on a missing or short file. */
static unsigned char *read_images(int n)
{
    unsigned char head[16];
    unsigned char *pixels = malloc((size_t)n * PIXELS);
    gzFile f = gzopen(IMAGES, "rb");

    if (f == NULL || pixels == NULL ||
        gzread(f, head, sizeof(head)) != (int)sizeof(head) ||
        gzread(f, pixels, (unsigned)(n * PIXELS)) != n * PIXELS) {
        fprintf(stderr, "bench-parse: cannot read %d images of %s\n", n,
                IMAGES);
        exit(1);
    }
    gzclose(f);
    return pixels;
}


/* One request body for the image at px, each pixel with digits
 * significant digits.  Returns its length. */
static size_t make_body(char *body, const unsigned char *px, int digits)
{
    size_t len = (size_t)snprintf(body, BODY_SIZE, "{\"inputs\": [{\"name\":"
                                  " \"image\", \"datatype\": \"FP32\","
                                  " \"shape\": [1, 28, 28], \"data\": [");

    for (int i = 0; i < PIXELS; i++) {
        float v = (float)px[i] / 255.0f;

        len += (size_t)snprintf(body + len, BODY_SIZE - len, "%s%.*g",
                                i ? ", " : "", digits, (double)v);
    }
    len += (size_t)snprintf(body + len, BODY_SIZE - len, "]}]}");
    return len;
}


static struct bms__v2_request *parse_or_die(parse_fn parse,
                                            const char *body, size_t len)
{
    struct bms__v2_request *req = NULL;
    struct bms_diag diag = {""};

    if (parse(body, len, NULL, 0, BMS__V2_MAX_ELEMS, &req, &diag)
        != BMS_OK) {
        fprintf(stderr, "bench-parse: refused: %s\n", diag.msg);
        exit(1);
    }
    return req;
}


/* Seconds per request over every body, repeated for about secs. */
static double time_parse(parse_fn parse, char **bodies, size_t *lens,
                         int n, double secs)
{
    double start = now_s();
    double elapsed;
    long done = 0;

    do {
        for (int i = 0; i < n; i++) {
            bms__v2_request_destroy(parse_or_die(parse, bodies[i],
                                                 lens[i]));
        }
        done += n;
        elapsed = now_s() - start;
    } while (elapsed < secs);
    return elapsed / (double)done;
}


int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100;
    double secs = argc > 2 ? strtod(argv[2], NULL) : 2.0;
    static const int digit_counts[] = {17, 9};
    unsigned char *pixels;
    char **bodies;
    size_t *lens;

    if (n < 1 || n > 10000 || secs <= 0) {
        fprintf(stderr, "usage: bench-parse [N_IMAGES 1..10000]"
                " [SECONDS]\n");
        return 2;
    }
    pixels = read_images(n);
    bodies = calloc((size_t)n, sizeof(*bodies));
    lens = calloc((size_t)n, sizeof(*lens));
    printf("| pixels as | body bytes | events us | fast us | events MB/s"
           " | fast MB/s | fast numbers/s | events / fast |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t k = 0; k < 2; k++) {
        double mean_len = 0;
        double t_events;
        double t_fast;

        for (int i = 0; i < n; i++) {
            struct bms__v2_request *a;
            struct bms__v2_request *b;

            bodies[i] = bodies[i] ? bodies[i] : malloc(BODY_SIZE);
            lens[i] = make_body(bodies[i], pixels + (size_t)i * PIXELS,
                                digit_counts[k]);
            mean_len += (double)lens[i] / n;
            a = parse_or_die(bms__v2_request_parse_binary, bodies[i],
                             lens[i]);
            b = parse_or_die(bms__v2_request_parse_events, bodies[i],
                             lens[i]);
            if (memcmp(a->inputs[0].data.data, b->inputs[0].data.data,
                       PIXELS * sizeof(float)) != 0) {
                fprintf(stderr, "bench-parse: image %d: the parses"
                        " differ\n", i);
                return 1;
            }
            bms__v2_request_destroy(a);
            bms__v2_request_destroy(b);
        }
        t_events = time_parse(bms__v2_request_parse_events, bodies, lens,
                              n, secs);
        t_fast = time_parse(bms__v2_request_parse_binary, bodies, lens, n,
                            secs);
        printf("| %d digits | %.0f | %.2f | %.2f | %.0f | %.0f | %.3g |"
               " %.2f |\n", digit_counts[k], mean_len, t_events * 1e6,
               t_fast * 1e6, mean_len / t_events / 1e6,
               mean_len / t_fast / 1e6, PIXELS / t_fast, t_events / t_fast);
    }
    for (int i = 0; i < n; i++) {
        free(bodies[i]);
    }
    free(bodies);
    free(lens);
    free(pixels);
    return 0;
}
