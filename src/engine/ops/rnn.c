/*
 * The recurrent operators RNN, GRU and LSTM over F32: forward, reverse
 * and bidirectional, both layouts, sequence_lens, initial states, clip,
 * custom activations, GRU's linear_before_reset and LSTM's peepholes.
 *
 * Per direction the input projection X W^T + Wb of every step comes from
 * one bms__sgemm before the loop; each step then adds H R^T + Rb (one
 * more product) and applies the gates in the ONNX order: RNN one gate,
 * GRU z, r, h, LSTM i, o, f, c.  A batch entry past its sequence length
 * keeps its state and writes zeros to Y.  Scratch holds the projections
 * and the state.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/blas.h"
#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

enum cell { CELL_RNN, CELL_GRU, CELL_LSTM };

/* The default activations, the only ones bms runs: the loader keeps no
 * STRINGS attribute values, so `activations` cannot be read. */
enum act { ACT_SIGMOID, ACT_TANH };

/* Activations per direction: f, g, h (RNN uses f; GRU f, g). */
#define MAX_ACTS 6

struct rnn_params {
    enum cell cell;
    int n_gates;
    int n_dirs;
    int reverse;                 /* forward-only direction runs backwards */
    int layout;
    int64_t hidden;
    float clip;                  /* 0: none */
    int linear_before_reset;
    enum act acts[MAX_ACTS];
};


static enum bms_status parse_acts(struct bms__node *node,
                                  struct rnn_params *p,
                                  struct bms_diag *diag)
{
    static const enum act dflt[3][3] = {
        {ACT_TANH, ACT_TANH, ACT_TANH},
        {ACT_SIGMOID, ACT_TANH, ACT_TANH},
        {ACT_SIGMOID, ACT_TANH, ACT_TANH},
    };
    int per_dir = p->cell == CELL_RNN ? 1 : p->cell == CELL_GRU ? 2 : 3;

    for (int i = 0; i < per_dir * p->n_dirs; i++) {
        p->acts[i] = dflt[p->cell][i % per_dir];
    }
    if (bms__attr_find(node, "activations") != NULL) {
        return bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                            "%s: attribute activations not supported",
                            node->op_type);
    }
    return BMS_OK;
}


enum bms_status bms__rnn_prepare(struct bms__node *node,
                                 struct bms_diag *diag)
{
    char dir[16] = "forward";
    struct rnn_params *p;
    enum bms_status rc;
    int lstm = strcmp(node->op_type, "LSTM") == 0;

    rc = bms__math_check_arity(node, 3, lstm ? 8 : 6, 0, lstm ? 3 : 2,
                               diag);
    if (rc != BMS_OK) {
        return rc;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BMS_ERR_NOMEM;
    }
    p->cell = lstm ? CELL_LSTM : strcmp(node->op_type, "GRU") == 0
                                     ? CELL_GRU : CELL_RNN;
    p->n_gates = p->cell == CELL_RNN ? 1 : p->cell == CELL_GRU ? 3 : 4;
    bms__attr_string(node, "direction", dir, sizeof(dir));
    p->n_dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    p->reverse = strcmp(dir, "reverse") == 0;
    p->layout = (int)bms__attr_int(node, "layout", 0);
    p->hidden = bms__attr_int(node, "hidden_size", 0);
    p->clip = bms__attr_float(node, "clip", 0.0f);
    p->linear_before_reset =
        bms__attr_int(node, "linear_before_reset", 0) != 0;
    rc = parse_acts(node, p, diag);
    if (rc == BMS_OK && (p->n_dirs == 1 && !p->reverse &&
                         strcmp(dir, "forward") != 0)) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID,
                          "%s: direction '%s' unknown", node->op_type, dir);
    }
    if (rc == BMS_OK && (p->layout < 0 || p->layout > 1 || p->clip < 0)) {
        rc = bms_diag_set(diag, BMS_ERR_INVALID,
                          "%s: layout must be 0 or 1, clip not negative",
                          node->op_type);
    }
    if (rc == BMS_OK && bms__attr_int(node, "input_forget", 0) != 0) {
        rc = bms_diag_set(diag, BMS_ERR_UNSUPPORTED,
                          "LSTM: input_forget not supported");
    }
    if (rc != BMS_OK) {
        free(p);
        return rc;
    }
    node->params = p;
    return BMS_OK;
}


static const struct bms_tensor *opt_in(const struct bms__node *node,
                                       const struct bms_tensor *const *in,
                                       int k)
{
    return node->n_inputs > k ? in[k] : NULL;
}


/* The dims: seq, batch, input from X; hidden from W when the attribute
 * is absent. */
struct rnn_dims {
    int64_t seq;
    int64_t batch;
    int64_t input;
    int64_t hidden;
};


static int dims_are(const struct bms_tensor *t, int n, int64_t a, int64_t b,
                    int64_t c)
{
    int64_t want[3] = {a, b, c};

    if (t->n_dims != n || t->dtype != BMS_DTYPE_F32) {
        return 0;
    }
    for (int d = 0; d < n; d++) {
        if (t->dims[d] != want[d]) {
            return 0;
        }
    }
    return 1;
}


static enum bms_status rnn_dims(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct rnn_dims *rd, struct bms_diag *diag)
{
    const struct rnn_params *p = node->params;
    const struct bms_tensor *x = in[0];
    const struct bms_tensor *opt;
    int64_t g;
    int64_t nd = p->n_dirs;

    if (x->dtype != BMS_DTYPE_F32) {
        return bms__math_bad_dtype(node, x->dtype, diag);
    }
    if (x->n_dims != 3 || in[1]->n_dims != 3) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: X and W must be 3-D", node->op_type);
    }
    rd->seq = x->dims[p->layout ? 1 : 0];
    rd->batch = x->dims[p->layout ? 0 : 1];
    rd->input = x->dims[2];
    rd->hidden = p->hidden > 0 ? p->hidden : in[1]->dims[1] / p->n_gates;
    g = p->n_gates * rd->hidden;
    if (!dims_are(in[1], 3, nd, g, rd->input) ||
        !dims_are(in[2], 3, nd, g, rd->hidden)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: W or R does not fit X and hidden_size",
                            node->op_type);
    }
    if ((opt = opt_in(node, in, 3)) != NULL &&
        !dims_are(opt, 2, nd, 2 * g, 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: B must be [%lld, "
                            "%lld]", node->op_type, (long long)nd,
                            (long long)(2 * g));
    }
    if ((opt = opt_in(node, in, 4)) != NULL &&
        (opt->n_dims != 1 || opt->dims[0] != rd->batch ||
         opt->dtype != BMS_DTYPE_I32)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "%s: sequence_lens must be INT32 [batch]",
                            node->op_type);
    }
    for (int k = 5; k < 7; k++) {
        opt = opt_in(node, in, k);
        if (opt != NULL && (k == 5 || p->cell == CELL_LSTM) &&
            !dims_are(opt, 3, p->layout ? rd->batch : nd,
                      p->layout ? nd : rd->batch, rd->hidden)) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "%s: initial state %d must be [dirs, batch, "
                                "hidden]", node->op_type, k);
        }
    }
    if (p->cell == CELL_LSTM && (opt = opt_in(node, in, 7)) != NULL &&
        !dims_are(opt, 2, nd, 3 * rd->hidden, 0)) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "LSTM: P must be [dirs, 3 * hidden]");
    }
    return BMS_OK;
}


enum bms_status bms__rnn_infer(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               struct bms_diag *diag)
{
    const struct rnn_params *p = node->params;
    struct rnn_dims rd;
    enum bms_status rc;

    rc = rnn_dims(node, in, &rd, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    for (int j = 0; j < node->n_outputs; j++) {
        struct bms_tensor *t = &out[j];

        t->dtype = BMS_DTYPE_F32;
        if (j == 0) {
            int64_t y[4] = {rd.seq, p->n_dirs, rd.batch, rd.hidden};
            int64_t y1[4] = {rd.batch, rd.seq, p->n_dirs, rd.hidden};

            t->n_dims = 4;
            memcpy(t->dims, p->layout ? y1 : y, sizeof(y));
        } else {
            int64_t s[3] = {p->n_dirs, rd.batch, rd.hidden};
            int64_t s1[3] = {rd.batch, p->n_dirs, rd.hidden};

            t->n_dims = 3;
            memcpy(t->dims, p->layout ? s1 : s, sizeof(s));
        }
    }
    return BMS_OK;
}


static float activate(enum act act, float x)
{
    return act == ACT_SIGMOID ? 1.0f / (1.0f + expf(-x)) : tanhf(x);
}


static float clip(const struct rnn_params *p, float x)
{
    if (p->clip > 0) {
        x = x < -p->clip ? -p->clip : x > p->clip ? p->clip : x;
    }
    return x;
}


/* Everything one direction's loop works with. */
struct dir_state {
    const float *w;              /* [G * H, input] */
    const float *r;              /* [G * H, H] */
    const float *wb;             /* [G * H] or NULL */
    const float *rb;
    const float *peep;           /* LSTM [3 * H] or NULL */
    const enum act *acts;
    float *xw;                   /* [seq * batch, G * H], row t * batch + b */
    float *hr;                   /* [batch, G * H] */
    float *h;                    /* [batch, H] */
    float *c;                    /* [batch, H] */
    float *rh;                   /* GRU: [batch, H] r * h, then its R_h */
};


/* One GRU or RNN or LSTM step for batch entry b from the gate sums. */
static void cell_step(const struct rnn_params *p, struct dir_state *s,
                      int64_t hid, int64_t t, int64_t batch, int64_t b)
{
    const float *xw = s->xw + (t * batch + b) * p->n_gates * hid;
    const float *hr = s->hr + b * p->n_gates * hid;
    float *h = s->h + b * hid;

    for (int64_t j = 0; j < hid; j++) {
        float gate[4];

        for (int k = 0; k < p->n_gates; k++) {
            gate[k] = xw[k * hid + j] + hr[k * hid + j] +
                      (s->wb != NULL ? s->wb[k * hid + j] : 0) +
                      (s->rb != NULL ? s->rb[k * hid + j] : 0);
        }
        if (p->cell == CELL_RNN) {
            h[j] = activate(s->acts[0], clip(p, gate[0]));
        } else if (p->cell == CELL_GRU) {
            float z = activate(s->acts[0], clip(p, gate[0]));
            /* gate[2] so far holds X W_h + H R_h (+ biases); the h gate
             * needs R_h applied after the reset, recomputed in rh. */
            float hh = xw[2 * hid + j] +
                       (s->wb != NULL ? s->wb[2 * hid + j] : 0) +
                       s->rh[b * hid + j];

            hh = activate(s->acts[1], clip(p, hh));
            h[j] = (1 - z) * hh + z * h[j];
        } else {
            float *c = s->c + b * hid;
            const float *pp = s->peep;
            float i = activate(s->acts[0], clip(p, gate[0] +
                               (pp != NULL ? pp[j] * c[j] : 0)));
            float f = activate(s->acts[0], clip(p, gate[2] +
                               (pp != NULL ? pp[2 * hid + j] * c[j] : 0)));
            float cc = activate(s->acts[1], clip(p, gate[3]));
            float o;

            c[j] = f * c[j] + i * cc;
            o = activate(s->acts[0], clip(p, gate[1] +
                         (pp != NULL ? pp[hid + j] * c[j] : 0)));
            h[j] = o * activate(s->acts[2], c[j]);
        }
    }
}


/*
 * GRU's candidate gate: with linear_before_reset r * (H R_h^T + Rb_h),
 * else (r * H) R_h^T + Rb_h; rh gets that term for each batch entry b at
 * its step ts[b] (entries with ts[b] < 0 are idle this step).
 */
static enum bms_status gru_reset(const struct rnn_params *p,
                                 struct dir_state *s, int64_t hid,
                                 const int64_t *ts, int64_t batch,
                                 int n_threads, float *rhh)
{
    int64_t g = 3 * hid;
    enum bms_status rc;

    for (int64_t b = 0; b < batch; b++) {
        for (int64_t j = 0; j < hid && ts[b] >= 0; j++) {
            float r = s->xw[(ts[b] * batch + b) * g + hid + j] +
                      s->hr[b * g + hid + j] +
                      (s->wb != NULL ? s->wb[hid + j] : 0) +
                      (s->rb != NULL ? s->rb[hid + j] : 0);
            float rbh = s->rb != NULL ? s->rb[2 * hid + j] : 0;

            r = activate(s->acts[0], clip(p, r));
            if (p->linear_before_reset) {
                s->rh[b * hid + j] = r * (s->hr[b * g + 2 * hid + j] + rbh);
            } else {
                rhh[b * hid + j] = r * s->h[b * hid + j];
            }
        }
        for (int64_t j = 0; j < hid && ts[b] < 0; j++) {
            rhh[b * hid + j] = 0;
        }
    }
    if (p->linear_before_reset) {
        return BMS_OK;
    }
    rc = bms__sgemm(n_threads, 0, 1, batch, hid, hid, 1.0f, rhh, hid,
                    s->r + 2 * hid * hid, hid, 0.0f, s->rh, hid);
    for (int64_t i = 0; rc == BMS_OK && i < batch * hid; i++) {
        s->rh[i] += s->rb != NULL ? s->rb[2 * hid + i % hid] : 0;
    }
    return rc;
}


/* Where step t of batch entry b lives in X and Y (element offsets of the
 * row), for either layout. */
static int64_t x_row(const struct rnn_params *p, const struct rnn_dims *rd,
                     int64_t t, int64_t b)
{
    return p->layout ? b * rd->seq + t : t * rd->batch + b;
}


static int64_t y_row(const struct rnn_params *p, const struct rnn_dims *rd,
                     int64_t t, int dir, int64_t b)
{
    int64_t nd = p->n_dirs;

    return p->layout ? (b * rd->seq + t) * nd + dir
                     : (t * nd + dir) * rd->batch + b;
}


static int64_t s_row(const struct rnn_params *p, const struct rnn_dims *rd,
                     int dir, int64_t b)
{
    return p->layout ? b * p->n_dirs + dir : dir * rd->batch + b;
}


static enum bms_status run_dir(const struct bms__node *node,
                               const struct bms_tensor *const *in,
                               struct bms_tensor *out,
                               const struct rnn_dims *rd, int dir,
                               struct dir_state *s, float *xrow,
                               float *rhh, int64_t *ts, int n_threads)
{
    const struct rnn_params *p = node->params;
    const struct bms_tensor *lens = opt_in(node, in, 4);
    const float *x = in[0]->data;
    int64_t hid = rd->hidden;
    int64_t g = p->n_gates * hid;
    int backward = dir == 1 || p->reverse;
    enum bms_status rc;

    /* X in step-major order, then its projection onto W. */
    for (int64_t t = 0; t < rd->seq; t++) {
        for (int64_t b = 0; b < rd->batch; b++) {
            memcpy(xrow + (t * rd->batch + b) * rd->input,
                   x + x_row(p, rd, t, b) * rd->input,
                   sizeof(float) * (size_t)rd->input);
        }
    }
    rc = bms__sgemm(n_threads, 0, 1, rd->seq * rd->batch, g, rd->input, 1.0f,
                    xrow, rd->input, s->w, rd->input, 0.0f, s->xw, g);
    for (int64_t step = 0; rc == BMS_OK && step < rd->seq; step++) {
        rc = bms__sgemm(n_threads, 0, 1, rd->batch, g, hid, 1.0f, s->h, hid,
                        s->r, hid, 0.0f, s->hr, g);
        /* The step each batch entry is at; -1 once past its length. */
        for (int64_t b = 0; b < rd->batch; b++) {
            int64_t len = lens != NULL ? ((const int32_t *)lens->data)[b]
                                       : rd->seq;

            len = len < rd->seq ? len : rd->seq;
            ts[b] = step >= len ? -1 : backward ? len - 1 - step : step;
        }
        if (rc == BMS_OK && p->cell == CELL_GRU) {
            rc = gru_reset(p, s, hid, ts, rd->batch, n_threads, rhh);
        }
        for (int64_t b = 0; rc == BMS_OK && b < rd->batch; b++) {
            if (ts[b] < 0) {
                continue;
            }
            cell_step(p, s, hid, ts[b], rd->batch, b);
            if (node->n_outputs > 0 && node->outputs[0] >= 0) {
                memcpy((float *)out[0].data +
                           y_row(p, rd, ts[b], dir, b) * hid,
                       s->h + b * hid, sizeof(float) * (size_t)hid);
            }
        }
    }
    return rc;
}


enum bms_status bms__rnn_run(const struct bms__node *node,
                             const struct bms_tensor *const *in,
                             struct bms_tensor *out,
                             struct bms__ctx *ctx)
{
    const struct rnn_params *p = node->params;
    const struct bms_tensor *b = opt_in(node, in, 3);
    const struct bms_tensor *h0 = opt_in(node, in, 5);
    const struct bms_tensor *c0 = opt_in(node, in, 6);
    const struct bms_tensor *peep = opt_in(node, in, 7);
    struct rnn_dims rd;
    int64_t g;
    int64_t bh;
    size_t n_floats;
    float *mem;
    int64_t *ts;

    if (rnn_dims(node, in, &rd, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    g = p->n_gates * rd.hidden;
    bh = rd.batch * rd.hidden;
    /* ts (int64, two floats each), then xw, hr, h, c, rh, rhh, xrow. */
    n_floats = (size_t)(rd.seq * rd.batch * (g + rd.input) +
                        rd.batch * g + 4 * bh + 2 * rd.batch + 2);
    mem = bms__ctx_scratch(ctx, sizeof(float) * n_floats);
    if (mem == NULL) {
        return BMS_ERR_NOMEM;
    }
    ts = (int64_t *)mem;
    mem += 2 * rd.batch;
    if (node->n_outputs > 0) {
        memset(out[0].data, 0, bms_tensor_size(&out[0]));
    }
    for (int dir = 0; dir < p->n_dirs; dir++) {
        struct dir_state s;
        float *xrow;
        float *rhh;
        enum bms_status rc;

        s.w = (const float *)in[1]->data + dir * g * rd.input;
        s.r = (const float *)in[2]->data + dir * g * rd.hidden;
        s.wb = b != NULL ? (const float *)b->data + dir * 2 * g : NULL;
        s.rb = b != NULL ? s.wb + g : NULL;
        s.peep = p->cell == CELL_LSTM && peep != NULL
                     ? (const float *)peep->data + dir * 3 * rd.hidden
                     : NULL;
        s.acts = &p->acts[dir * (p->cell == CELL_RNN ? 1 : p->cell ==
                                 CELL_GRU ? 2 : 3)];
        s.xw = mem;
        s.hr = s.xw + rd.seq * rd.batch * g;
        s.h = s.hr + rd.batch * g;
        s.c = s.h + bh;
        s.rh = s.c + bh;
        rhh = s.rh + bh;
        xrow = rhh + bh;
        for (int64_t i = 0; i < rd.batch; i++) {
            int64_t at = s_row(p, &rd, dir, i) * rd.hidden;

            for (int64_t j = 0; j < rd.hidden; j++) {
                s.h[i * rd.hidden + j] =
                    h0 != NULL ? ((const float *)h0->data)[at + j] : 0;
                s.c[i * rd.hidden + j] =
                    c0 != NULL && p->cell == CELL_LSTM
                        ? ((const float *)c0->data)[at + j] : 0;
            }
        }
        rc = run_dir(node, in, out, &rd, dir, &s, xrow, rhh, ts,
                     ctx->n_threads);
        if (rc != BMS_OK) {
            return rc;
        }
        for (int64_t i = 0; i < rd.batch; i++) {
            int64_t at = s_row(p, &rd, dir, i) * rd.hidden;

            if (node->n_outputs > 1) {
                memcpy((float *)out[1].data + at, s.h + i * rd.hidden,
                       sizeof(float) * (size_t)rd.hidden);
            }
            if (node->n_outputs > 2) {
                memcpy((float *)out[2].data + at, s.c + i * rd.hidden,
                       sizeof(float) * (size_t)rd.hidden);
            }
        }
    }
    return BMS_OK;
}
