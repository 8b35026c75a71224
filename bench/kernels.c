/*
 * bench-kernels: oneDNN against OpenBLAS on the matrix products and
 * convolutions that bms's engine runs, in one process, so that the choice
 * of kernel library rests on figures from this machine.
 *
 * Every case is timed the same way: a warm-up, then SAMPLES samples of
 * enough back-to-back calls to last at least SAMPLE_MIN_MS, and the median
 * of the per-call times, with the best sample beside it (on a shared
 * machine the best is the least disturbed, the median the typical).
 * Each result is compared with a reference computed in double precision
 * by a plain loop, and the largest absolute difference is printed next
 * to the timing; a difference above the tolerance marks the row BAD and
 * makes the exit status 1.
 *
 * Output: a few lines starting with '#' (library versions, the OpenBLAS
 * core in use), then one whitespace-separated row per measurement, the
 * first ones the FMA peak of one core at 256 and at 512 bits:
 *
 *   kind case shape threads method median_ms best_ms gflops best_gflops
 *   max_abs_diff check
 *
 * GFLOP/s count 2 * m * n * k for a product and the direct algorithm's
 * multiply-adds for a convolution, also for Winograd (which does fewer),
 * so that every method of one case is compared on the same work.
 *
 * bench/kernels.sh runs this under several OpenBLAS settings and merges
 * the rows into one table.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#define SAMPLES 25             /* timed samples per case */
#define SAMPLE_MIN_MS 2.0      /* shortest sample; short calls repeat */
#define WARMUP_MS 100.0        /* warm-up before the first sample */
#define SETTLE_MS 200          /* idle time between multi-thread cases */
#define ALIGN 64               /* bytes, for every buffer */
#define FMA_CHAINS 12          /* independent FMAs in flight */
#define FMA_STEPS 100000       /* FMAs per chain in one peak call */

/* One matrix-product shape: C[m,n] = A[m,k] * B[k,n], batch times. */
struct gemm_case {
    const char *name;
    int64_t m;
    int64_t n;
    int64_t k;
    int64_t batch;
};

/* One 2-D convolution at batch 1, square kernel, stride 1, same padding. */
struct conv_case {
    const char *name;
    int64_t c;                 /* input channels */
    int64_t m;                 /* output channels */
    int64_t hw;                /* height and width, in and out */
    int64_t kernel;            /* kernel height and width */
};

/* The products bms meets: the Fashion-MNIST MLP's first layer at batch 1
 * and 64, the BERT-style encoder (width 256, seq 128, 4 heads of 64:
 * fused QKV, the two FFN halves, one attention product per head), and a
 * square product near the FMA peak. */
static const struct gemm_case gemm_cases[] = {
    {"mlp-b1", 1, 128, 784, 1},
    {"mlp-b64", 64, 128, 784, 1},
    {"bert-qkv", 128, 768, 256, 1},
    {"bert-ffn1", 128, 1024, 256, 1},
    {"bert-ffn2", 128, 256, 1024, 1},
    {"bert-attn", 128, 128, 64, 4},
    {"square", 1024, 1024, 1024, 1},
};

/* ResNet-18's 3x3 convolutions of its first and third stages. */
static const struct conv_case conv_cases[] = {
    {"resnet-3x3-64", 64, 64, 56, 3},
    {"resnet-3x3-256", 256, 256, 14, 3},
};

enum lib {
    LIB_OPENBLAS,
    LIB_ONEDNN
};

/* A product to time: the operands of every batch entry, laid out in turn. */
struct gemm_run {
    const struct gemm_case *gc;
    enum lib lib;
    const float *a;
    const float *b;
    float *c;
};

/* A convolution through im2col and one sgemm. */
struct im2col_run {
    const struct conv_case *cc;
    enum lib lib;              /* which sgemm */
    int gemm;                  /* 0: im2col alone */
    const float *x;            /* NCHW */
    const float *w;            /* OIHW, that is [m, c * kernel^2] */
    float *col;                /* [c * kernel^2, hw * hw] */
    float *y;                  /* NCHW */
};

/* A convolution through oneDNN's primitive, with the reorders bms runs:
 * the source in from plain NCHW and the destination back out to it (the
 * weights are constant, so reordered once, before timing). */
struct prim_run {
    dnnl_stream_t stream;
    dnnl_primitive_t conv;
    dnnl_primitive_t src_reorder;      /* NULL when layouts agree */
    dnnl_primitive_t dst_reorder;      /* NULL when layouts agree */
    dnnl_memory_t src_user;
    dnnl_memory_t src;
    dnnl_memory_t wei;
    dnnl_memory_t dst;
    dnnl_memory_t dst_user;
};

/* Per-call times of one case, in ms. */
struct timing {
    double median_ms;
    double best_ms;            /* the fastest sample: the least disturbed */
};

static int n_bad;                      /* rows over the tolerance */
static volatile float fma_sink;        /* keeps the peak loops live */


static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}


static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}


static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa;
    double b = *(const double *)pb;

    return (a > b) - (a < b);
}


/*
 * The median and the best time of one call of fn(arg).  The warm-up also
 * sizes the samples: calls shorter than SAMPLE_MIN_MS are repeated within
 * one sample so that the clock's resolution does not matter.
 */
static struct timing time_calls(void (*fn)(void *), void *arg)
{
    double samples[SAMPLES];
    double start = now_ms();
    double per_call;
    long n_calls = 0;
    long n_inner;

    while (n_calls < 3 || now_ms() - start < WARMUP_MS) {
        fn(arg);
        n_calls++;
    }
    per_call = (now_ms() - start) / (double)n_calls;
    n_inner = (long)ceil(SAMPLE_MIN_MS / per_call);
    n_inner = n_inner < 1 ? 1 : n_inner;
    for (int s = 0; s < SAMPLES; s++) {
        double t0 = now_ms();

        for (long i = 0; i < n_inner; i++) {
            fn(arg);
        }
        samples[s] = (now_ms() - t0) / (double)n_inner;
    }
    qsort(samples, SAMPLES, sizeof(samples[0]), cmp_double);
    return (struct timing){samples[SAMPLES / 2], samples[0]};
}


/* Both libraries' thread counts; each keeps its own pool. */
static void use_threads(int n)
{
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}


static float *buffer_alloc(size_t n_floats)
{
    size_t size = (n_floats * sizeof(float) + ALIGN - 1) &
                  ~(size_t)(ALIGN - 1);
    float *p = aligned_alloc(ALIGN, size);

    if (p == NULL) {
        fprintf(stderr, "bench-kernels: out of memory (%zu bytes)\n",
                size);
        exit(2);
    }
    memset(p, 0, size);
    return p;
}


/* Uniform values in [-1, 1) from a fixed xorshift stream. */
static void fill_random(float *p, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t s = *state;

        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        *state = s;
        p[i] = (float)((double)(s >> 40) / (double)(1 << 23) - 1.0);
    }
}


static float max_abs_diff(const float *got, const double *want, size_t n)
{
    double worst = 0.0;

    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);

        worst = d > worst ? d : worst;
    }
    return (float)worst;
}


/*
 * One result row; diff below 0 when there is no result to check.  Inputs
 * are uniform in [-1, 1), so a dot product of length k has a spread near
 * sqrt(k / 9); float rounding stays far below 1e-3 * sqrt(k), while a
 * wrong result is off by whole units.
 */
static void print_row(const char *kind, const char *name, const char *shape,
                      int threads, const char *method, struct timing t,
                      double flops, float diff, int64_t k)
{
    int ok = diff <= 1e-3 * sqrt((double)k);
    char diff_text[16] = "-";

    if (!ok) {
        n_bad++;
    }
    if (diff >= 0.0f) {
        snprintf(diff_text, sizeof(diff_text), "%.2e", (double)diff);
    }
    printf("%-4s %-14s %-14s %d %-15s %9.4f %9.4f %7.1f %7.1f %8s %s\n",
           kind, name, shape, threads, method, t.median_ms, t.best_ms,
           flops / (t.median_ms * 1e6), flops / (t.best_ms * 1e6),
           diff_text, diff < 0.0f ? "-" : ok ? "ok" : "BAD");
    fflush(stdout);
}


/*
 * The FMA peak of one core, for the ratios: FMA_CHAINS chains hide the
 * FMA latency, so the loop runs at the FMA units' throughput.  The 256-bit
 * one is what AVX2 kernels (OpenBLAS's Haswell) can reach, the 512-bit one
 * what AVX-512 kernels can.
 */
__attribute__((target("avx2,fma")))
static void fma256_call(void *arg)
{
    __m256 acc[FMA_CHAINS];
    __m256 mul = _mm256_set1_ps(0.999999f);
    __m256 add = _mm256_set1_ps(1e-6f);
    float sum = 0.0f;

    (void)arg;
#pragma GCC unroll 12
    for (int j = 0; j < FMA_CHAINS; j++) {
        acc[j] = _mm256_set1_ps((float)j);
    }
    for (long i = 0; i < FMA_STEPS; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < FMA_CHAINS; j++) {
            acc[j] = _mm256_fmadd_ps(acc[j], mul, add);
        }
    }
    for (int j = 0; j < FMA_CHAINS; j++) {
        sum += acc[j][0];
    }
    fma_sink = sum;
}


__attribute__((target("avx512f")))
static void fma512_call(void *arg)
{
    __m512 acc[FMA_CHAINS];
    __m512 mul = _mm512_set1_ps(0.999999f);
    __m512 add = _mm512_set1_ps(1e-6f);
    float sum = 0.0f;

    (void)arg;
#pragma GCC unroll 12
    for (int j = 0; j < FMA_CHAINS; j++) {
        acc[j] = _mm512_set1_ps((float)j);
    }
    for (long i = 0; i < FMA_STEPS; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < FMA_CHAINS; j++) {
            acc[j] = _mm512_fmadd_ps(acc[j], mul, add);
        }
    }
    for (int j = 0; j < FMA_CHAINS; j++) {
        sum += acc[j][0];
    }
    fma_sink = sum;
}


static void bench_peak(void)
{
    double flops = 2.0 * FMA_CHAINS * FMA_STEPS;

    use_threads(1);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        print_row("peak", "fma", "12-chains", 1, "avx2",
                  time_calls(fma256_call, NULL), flops * 8, -1.0f, 1);
    }
    if (__builtin_cpu_supports("avx512f")) {
        print_row("peak", "fma", "12-chains", 1, "avx512",
                  time_calls(fma512_call, NULL), flops * 16, -1.0f, 1);
    }
}


static void gemm_call(void *arg)
{
    const struct gemm_run *r = arg;
    const struct gemm_case *gc = r->gc;

    for (int64_t i = 0; i < gc->batch; i++) {
        const float *a = r->a + i * gc->m * gc->k;
        const float *b = r->b + i * gc->k * gc->n;
        float *c = r->c + i * gc->m * gc->n;

        if (r->lib == LIB_OPENBLAS) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                        (int)gc->m, (int)gc->n, (int)gc->k, 1.0f, a,
                        (int)gc->k, b, (int)gc->n, 0.0f, c, (int)gc->n);
        } else {
            dnnl_sgemm('N', 'N', gc->m, gc->n, gc->k, 1.0f, a, gc->k, b,
                       gc->n, 0.0f, c, gc->n);
        }
    }
}


/* C = A * B for every batch entry, row-major, in double. */
static void gemm_reference(const struct gemm_case *gc, const float *a,
                           const float *b, double *c)
{
    for (int64_t e = 0; e < gc->batch; e++) {
        const float *ae = a + e * gc->m * gc->k;
        const float *be = b + e * gc->k * gc->n;
        double *ce = c + e * gc->m * gc->n;

        for (int64_t i = 0; i < gc->m; i++) {
            double *row = ce + i * gc->n;

            for (int64_t j = 0; j < gc->n; j++) {
                row[j] = 0.0;
            }
            for (int64_t p = 0; p < gc->k; p++) {
                double av = ae[i * gc->k + p];
                const float *brow = be + p * gc->n;

                for (int64_t j = 0; j < gc->n; j++) {
                    row[j] += av * brow[j];
                }
            }
        }
    }
}


static void bench_gemm(const struct gemm_case *gc, const int *threads,
                       int n_threads, uint64_t *seed)
{
    size_t a_n = (size_t)(gc->batch * gc->m * gc->k);
    size_t b_n = (size_t)(gc->batch * gc->k * gc->n);
    size_t c_n = (size_t)(gc->batch * gc->m * gc->n);
    float *a = buffer_alloc(a_n);
    float *b = buffer_alloc(b_n);
    float *c = buffer_alloc(c_n);
    double *want = malloc(c_n * sizeof(*want));
    double flops = 2.0 * (double)gc->batch * (double)gc->m *
                   (double)gc->n * (double)gc->k;
    static const char *names[] = {"openblas", "onednn"};
    char shape[64];

    if (want == NULL) {
        fprintf(stderr, "bench-kernels: out of memory\n");
        exit(2);
    }
    fill_random(a, a_n, seed);
    fill_random(b, b_n, seed);
    gemm_reference(gc, a, b, want);
    snprintf(shape, sizeof(shape), "%" PRId64 "x%" PRId64 "x%" PRId64,
             gc->m, gc->k, gc->n);
    if (gc->batch > 1) {
        size_t len = strlen(shape);

        snprintf(shape + len, sizeof(shape) - len, "*%" PRId64, gc->batch);
    }
    for (int t = 0; t < n_threads; t++) {
        use_threads(threads[t]);
        for (int lib = LIB_OPENBLAS; lib <= LIB_ONEDNN; lib++) {
            struct gemm_run r = {gc, (enum lib)lib, a, b, c};
            struct timing tm;

            memset(c, 0, c_n * sizeof(*c));
            tm = time_calls(gemm_call, &r);
            print_row("gemm", gc->name, shape, threads[t], names[lib], tm,
                      flops, max_abs_diff(c, want, c_n), gc->k);
            if (threads[t] > 1) {
                sleep_ms(SETTLE_MS);
            }
        }
    }
    free(want);
    free(c);
    free(b);
    free(a);
}


/* col[(ci, kh, kw), (oh, ow)] = x[ci, oh + kh - pad, ow + kw - pad]. */
static void im2col(const struct conv_case *cc, const float *x, float *col)
{
    int64_t hw = cc->hw;
    int64_t pad = cc->kernel / 2;

    for (int64_t ci = 0; ci < cc->c; ci++) {
        for (int64_t kh = 0; kh < cc->kernel; kh++) {
            for (int64_t kw = 0; kw < cc->kernel; kw++) {
                for (int64_t oh = 0; oh < hw; oh++) {
                    int64_t ih = oh + kh - pad;
                    float *dst = col + oh * hw;
                    const float *src = x + (ci * hw + ih) * hw;

                    for (int64_t ow = 0; ow < hw; ow++) {
                        int64_t iw = ow + kw - pad;

                        dst[ow] = ih >= 0 && ih < hw && iw >= 0 && iw < hw
                                      ? src[iw] : 0.0f;
                    }
                }
                col += hw * hw;
            }
        }
    }
}


static void im2col_call(void *arg)
{
    const struct im2col_run *r = arg;
    const struct conv_case *cc = r->cc;
    int64_t k = cc->c * cc->kernel * cc->kernel;
    int64_t n = cc->hw * cc->hw;

    im2col(cc, r->x, r->col);
    if (!r->gemm) {
        return;
    }
    if (r->lib == LIB_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cc->m,
                    (int)n, (int)k, 1.0f, r->w, (int)k, r->col, (int)n,
                    0.0f, r->y, (int)n);
    } else {
        dnnl_sgemm('N', 'N', cc->m, n, k, 1.0f, r->w, k, r->col, n, 0.0f,
                   r->y, n);
    }
}


/* The direct convolution in double: the reference for every method. */
static void conv_reference(const struct conv_case *cc, const float *x,
                           const float *w, double *y)
{
    int64_t hw = cc->hw;
    int64_t kk = cc->kernel;
    int64_t pad = kk / 2;

    for (int64_t mo = 0; mo < cc->m; mo++) {
        double *plane = y + mo * hw * hw;

        for (int64_t i = 0; i < hw * hw; i++) {
            plane[i] = 0.0;
        }
        for (int64_t ci = 0; ci < cc->c; ci++) {
            for (int64_t kh = 0; kh < kk; kh++) {
                for (int64_t kw = 0; kw < kk; kw++) {
                    double wv = w[((mo * cc->c + ci) * kk + kh) * kk + kw];

                    for (int64_t oh = 0; oh < hw; oh++) {
                        int64_t ih = oh + kh - pad;

                        if (ih < 0 || ih >= hw) {
                            continue;
                        }
                        for (int64_t ow = 0; ow < hw; ow++) {
                            int64_t iw = ow + kw - pad;

                            if (iw >= 0 && iw < hw) {
                                plane[oh * hw + ow] +=
                                    wv * x[(ci * hw + ih) * hw + iw];
                            }
                        }
                    }
                }
            }
        }
    }
}


/* Stop on a oneDNN failure other than a refusal: the bench is broken. */
static void dnnl_check(dnnl_status_t st, const char *what)
{
    if (st != dnnl_success) {
        fprintf(stderr, "bench-kernels: %s failed (dnnl status %d)\n", what,
                (int)st);
        exit(2);
    }
}


static dnnl_primitive_t reorder_create(dnnl_engine_t eng,
                                       const dnnl_memory_desc_t *from,
                                       const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;

    if (dnnl_memory_desc_equal(from, to)) {
        return NULL;
    }
    dnnl_check(dnnl_reorder_primitive_desc_create(&pd, from, eng, to, eng,
                                                  NULL), "reorder desc");
    dnnl_check(dnnl_primitive_create(&prim, pd), "reorder");
    dnnl_primitive_desc_destroy(pd);
    return prim;
}


static void exec2(dnnl_stream_t stream, dnnl_primitive_t prim, int a0,
                  dnnl_memory_t m0, int a1, dnnl_memory_t m1)
{
    dnnl_exec_arg_t args[] = {{a0, m0}, {a1, m1}};

    dnnl_check(dnnl_primitive_execute(prim, stream, 2, args), "execute");
}


static void prim_call(void *arg)
{
    const struct prim_run *r = arg;
    dnnl_exec_arg_t args[] = {
        {DNNL_ARG_SRC, r->src}, {DNNL_ARG_WEIGHTS, r->wei},
        {DNNL_ARG_DST, r->dst}
    };

    if (r->src_reorder != NULL) {
        exec2(r->stream, r->src_reorder, DNNL_ARG_FROM, r->src_user,
              DNNL_ARG_TO, r->src);
    }
    dnnl_check(dnnl_primitive_execute(r->conv, r->stream, 3, args),
               "convolution");
    if (r->dst_reorder != NULL) {
        exec2(r->stream, r->dst_reorder, DNNL_ARG_FROM, r->dst,
              DNNL_ARG_TO, r->dst_user);
    }
    dnnl_check(dnnl_stream_wait(r->stream), "stream wait");
}


/* A memory object over handle, or over memory of its own when NULL. */
static dnnl_memory_t memory_create(dnnl_engine_t eng,
                                   const dnnl_memory_desc_t *md,
                                   void *handle)
{
    dnnl_memory_t m;

    dnnl_check(dnnl_memory_create(&m, md, eng,
                                  handle ? handle : DNNL_MEMORY_ALLOCATE),
               "memory");
    return m;
}


/* A plain descriptor in tag and one that leaves the layout to oneDNN. */
static void md_pair(dnnl_memory_desc_t *plain, dnnl_memory_desc_t *any,
                    const dnnl_dims_t dims, dnnl_format_tag_t tag)
{
    dnnl_memory_desc_init_by_tag(plain, 4, dims, dnnl_f32, tag);
    dnnl_memory_desc_init_by_tag(any, 4, dims, dnnl_f32,
                                 dnnl_format_tag_any);
}


/* The weights in the primitive's layout md, reordered once from plain w
 * (constant weights, as bms caches them), or over w itself when the
 * layouts agree. */
static dnnl_memory_t weights_prepare(dnnl_stream_t stream,
                                     dnnl_engine_t eng,
                                     const dnnl_memory_desc_t *plain,
                                     const dnnl_memory_desc_t *md,
                                     const float *w)
{
    dnnl_primitive_t reorder = reorder_create(eng, plain, md);
    dnnl_memory_t user = memory_create(eng, plain, (void *)w);
    dnnl_memory_t wei;

    if (reorder == NULL) {
        return user;
    }
    wei = memory_create(eng, md, NULL);
    exec2(stream, reorder, DNNL_ARG_FROM, user, DNNL_ARG_TO, wei);
    dnnl_check(dnnl_stream_wait(stream), "stream wait");
    dnnl_primitive_destroy(reorder);
    dnnl_memory_destroy(user);
    return wei;
}


/*
 * The primitive for cc with algorithm alg and layouts left to oneDNN,
 * made the way src/engine/ops/dnnl_conv.c makes it; 0 when oneDNN has no
 * implementation for it.  Created after the thread count is set, since
 * oneDNN sizes its blocking to the threads it will have.
 */
static int prim_create(struct prim_run *r, dnnl_engine_t eng,
                       const struct conv_case *cc, dnnl_alg_kind_t alg,
                       const float *x, const float *w, float *y)
{
    dnnl_dims_t src_dims = {1, cc->c, cc->hw, cc->hw};
    dnnl_dims_t wei_dims = {cc->m, cc->c, cc->kernel, cc->kernel};
    dnnl_dims_t dst_dims = {1, cc->m, cc->hw, cc->hw};
    dnnl_dims_t strides = {1, 1};
    dnnl_dims_t pad = {cc->kernel / 2, cc->kernel / 2};
    dnnl_memory_desc_t src_plain, wei_plain, dst_plain;
    dnnl_memory_desc_t src_any, wei_any, dst_any;
    const dnnl_memory_desc_t *src_md, *wei_md, *dst_md;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd;

    memset(r, 0, sizeof(*r));
    md_pair(&src_plain, &src_any, src_dims, dnnl_nchw);
    md_pair(&wei_plain, &wei_any, wei_dims, dnnl_oihw);
    md_pair(&dst_plain, &dst_any, dst_dims, dnnl_nchw);
    dnnl_check(dnnl_convolution_forward_desc_init(
                   &cd, dnnl_forward_inference, alg, &src_any, &wei_any,
                   NULL, &dst_any, strides, pad, pad), "convolution desc");
    if (dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL) !=
            dnnl_success) {
        return 0;
    }
    src_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dst_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_check(dnnl_primitive_create(&r->conv, pd), "convolution");
    dnnl_check(dnnl_stream_create(&r->stream, eng,
                                  dnnl_stream_default_flags), "stream");
    r->src_reorder = reorder_create(eng, &src_plain, src_md);
    r->dst_reorder = reorder_create(eng, dst_md, &dst_plain);

    /* oneDNN takes non-const handles; sources are only read. */
    r->src_user = memory_create(eng, &src_plain, (void *)x);
    r->dst_user = memory_create(eng, &dst_plain, y);
    r->src = r->src_reorder ? memory_create(eng, src_md, NULL)
                            : r->src_user;
    r->dst = r->dst_reorder ? memory_create(eng, dst_md, NULL)
                            : r->dst_user;
    r->wei = weights_prepare(r->stream, eng, &wei_plain, wei_md, w);
    dnnl_primitive_desc_destroy(pd);
    return 1;
}


static void prim_destroy(struct prim_run *r)
{
    if (r->src != r->src_user) {
        dnnl_memory_destroy(r->src);
    }
    if (r->dst != r->dst_user) {
        dnnl_memory_destroy(r->dst);
    }
    dnnl_memory_destroy(r->src_user);
    dnnl_memory_destroy(r->dst_user);
    dnnl_memory_destroy(r->wei);
    dnnl_primitive_destroy(r->src_reorder);
    dnnl_primitive_destroy(r->dst_reorder);
    dnnl_primitive_destroy(r->conv);
    dnnl_stream_destroy(r->stream);
}


/* The four ways to run cc (and im2col alone) at one thread count. */
static void bench_conv_threads(const struct conv_case *cc, int threads,
                               dnnl_engine_t eng, const char *shape,
                               const float *x, const float *w, float *col,
                               float *y, const double *want)
{
    static const dnnl_alg_kind_t algs[] = {
        dnnl_convolution_direct, dnnl_convolution_winograd
    };
    static const char *alg_names[] = {"onednn-direct", "onednn-winograd"};
    static const char *gemm_names[] = {"im2col+openblas", "im2col+onednn"};
    int64_t k = cc->c * cc->kernel * cc->kernel;
    size_t y_n = (size_t)(cc->m * cc->hw * cc->hw);
    double flops = 2.0 * (double)cc->m * (double)k *
                   (double)(cc->hw * cc->hw);
    struct im2col_run only = {cc, LIB_ONEDNN, 0, x, w, col, y};
    struct timing tm;

    use_threads(threads);
    tm = time_calls(im2col_call, &only);
    print_row("conv", cc->name, shape, threads, "im2col-only", tm, flops,
              -1.0f, k);
    for (int lib = LIB_OPENBLAS; lib <= LIB_ONEDNN; lib++) {
        struct im2col_run r = {cc, (enum lib)lib, 1, x, w, col, y};

        memset(y, 0, y_n * sizeof(*y));
        tm = time_calls(im2col_call, &r);
        print_row("conv", cc->name, shape, threads, gemm_names[lib], tm,
                  flops, max_abs_diff(y, want, y_n), k);
        if (threads > 1) {
            sleep_ms(SETTLE_MS);
        }
    }
    for (int a = 0; a < 2; a++) {
        struct prim_run r;

        memset(y, 0, y_n * sizeof(*y));
        if (!prim_create(&r, eng, cc, algs[a], x, w, y)) {
            printf("# %s %d %s: refused by oneDNN\n", cc->name, threads,
                   alg_names[a]);
            continue;
        }
        tm = time_calls(prim_call, &r);
        print_row("conv", cc->name, shape, threads, alg_names[a], tm, flops,
                  max_abs_diff(y, want, y_n), k);
        prim_destroy(&r);
    }
}


static void bench_conv(const struct conv_case *cc, const int *threads,
                       int n_threads, dnnl_engine_t eng, uint64_t *seed)
{
    int64_t k = cc->c * cc->kernel * cc->kernel;
    size_t x_n = (size_t)(cc->c * cc->hw * cc->hw);
    size_t w_n = (size_t)(cc->m * k);
    size_t y_n = (size_t)(cc->m * cc->hw * cc->hw);
    float *x = buffer_alloc(x_n);
    float *w = buffer_alloc(w_n);
    float *col = buffer_alloc((size_t)k * (size_t)(cc->hw * cc->hw));
    float *y = buffer_alloc(y_n);
    double *want = malloc(y_n * sizeof(*want));
    char shape[64];

    if (want == NULL) {
        fprintf(stderr, "bench-kernels: out of memory\n");
        exit(2);
    }
    fill_random(x, x_n, seed);
    fill_random(w, w_n, seed);
    conv_reference(cc, x, w, want);
    snprintf(shape, sizeof(shape), "%" PRId64 "x%" PRId64 "x%" PRId64
             "->%" PRId64, cc->c, cc->hw, cc->hw, cc->m);
    for (int t = 0; t < n_threads; t++) {
        bench_conv_threads(cc, threads[t], eng, shape, x, w, col, y, want);
    }
    free(want);
    free(y);
    free(col);
    free(w);
    free(x);
}


int main(int argc, char **argv)
{
    static const int threads[] = {1, 2};
    const dnnl_version_t *v = dnnl_version();
    uint64_t seed = 0x9e3779b97f4a7c15u;
    dnnl_engine_t eng;

    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: bench-kernels (no arguments)\n");
        return 2;
    }
    dnnl_check(dnnl_engine_create(&eng, dnnl_cpu, 0), "engine");
    printf("# onednn %d.%d.%d, %s\n", v->major, v->minor, v->patch,
           openblas_get_config());
    printf("# openblas core %s, OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
           openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "",
           getenv("OPENBLAS_L2_SIZE") ? getenv("OPENBLAS_L2_SIZE") : "");
    printf("# kind case shape threads method median_ms best_ms gflops "
           "best_gflops max_abs_diff check\n");
    bench_peak();
    for (size_t i = 0; i < sizeof(gemm_cases) / sizeof(gemm_cases[0]);
         i++) {
        bench_gemm(&gemm_cases[i], threads, 2, &seed);
    }
    for (size_t i = 0; i < sizeof(conv_cases) / sizeof(conv_cases[0]);
         i++) {
        bench_conv(&conv_cases[i], threads, 2, eng, &seed);
    }
    dnnl_engine_destroy(eng);
    if (n_bad > 0) {
        fprintf(stderr, "bench-kernels: %d results out of tolerance\n",
                n_bad);
        return 1;
    }
    return 0;
}
