/*
 * Einsum over up to four operands: explicit ("ij,jk->ik") and implicit
 * ("ij,jk") outputs, ellipses that broadcast, repeated labels within one
 * operand (diagonals), F32, F64 and the integer datatypes.
 *
 * Every label gets one loop index; an output element is the sum, over
 * the labels not in the output, of the product of the operands at those
 * indices.  This is the definition read literally, fine for the small
 * contractions models use around attention; large matrix products
 * belong in MatMul.  TODO: route two-operand contractions that are
 * matrix products through bms__sgemm, which is far faster for big ones.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ops/elem.h"
#include "engine/ops/kernels.h"
#include "engine/ops/ops_more.h"

#define MAX_OPERANDS 4
#define MAX_EQUATION 128
#define N_LETTERS 52
#define N_LABELS (N_LETTERS + BMS_MAX_DIMS)    /* then ellipsis dims */

/* The equation resolved against one call's operands. */
struct einsum_plan {
    int n_ops;
    int n_labels_of[MAX_OPERANDS];
    int labels_of[MAX_OPERANDS][BMS_MAX_DIMS];   /* per operand dim */
    int64_t size[N_LABELS];                      /* 0: label unused */
    int n_out;
    int out[BMS_MAX_DIMS];
    int n_sum;
    int sum[N_LABELS];
};


static int letter_label(char c)
{
    if (c >= 'a' && c <= 'z') {
        return c - 'a';
    }
    if (c >= 'A' && c <= 'Z') {
        return 26 + c - 'A';
    }
    return -1;
}


enum bms_status bms__einsum_prepare(struct bms__node *node,
                                    struct bms_diag *diag)
{
    char eq[MAX_EQUATION];

    if (!bms__attr_string(node, "equation", eq, sizeof(eq))) {
        return bms_diag_set(diag, BMS_ERR_INVALID,
                            "Einsum: attribute equation is required");
    }
    return bms__math_check_arity(node, 1, MAX_OPERANDS, 1, 1, diag);
}


/*
 * Labels of one term (up to a ',' or '-' or the end) for an operand of
 * rank dims (-1: the output, whose ellipsis takes n_ell labels).  On
 * return *p is past the term.
 */
static int parse_term(const char **p, int rank, int n_ell, int *labels,
                      int *n)
{
    const char *s = *p;
    int n_letters = 0;
    int has_ell = 0;

    for (const char *q = s; *q != '\0' && *q != ',' && *q != '-'; q++) {
        if (letter_label(*q) >= 0) {
            n_letters++;
        }
    }
    *n = 0;
    while (*s != '\0' && *s != ',' && *s != '-') {
        if (strncmp(s, "...", 3) == 0) {
            int e = rank >= 0 ? rank - n_letters : n_ell;

            if (has_ell || e < 0 || *n + e > BMS_MAX_DIMS) {
                return -1;
            }
            for (int j = 0; j < e; j++) {
                labels[(*n)++] = N_LETTERS + (n_ell - e) + j;
            }
            has_ell = 1;
            s += 3;
            continue;
        }
        if (letter_label(*s) < 0 || *n >= BMS_MAX_DIMS) {
            return -1;
        }
        labels[(*n)++] = letter_label(*s++);
    }
    *p = s;
    if (rank >= 0 && *n != rank) {
        return -1;
    }
    return 0;
}


static int max_ellipsis(const char *eq, const struct bms_tensor *const *in,
                        int n_in)
{
    int best = 0;
    const char *s = eq;

    for (int k = 0; k < n_in; k++) {
        int n_letters = 0;
        int has_ell = 0;

        for (; *s != '\0' && *s != ',' && *s != '-'; s++) {
            n_letters += letter_label(*s) >= 0;
            has_ell |= *s == '.';
        }
        if (has_ell && in[k]->n_dims - n_letters > best) {
            best = in[k]->n_dims - n_letters;
        }
        if (*s == ',') {
            s++;
        }
    }
    return best;
}


static enum bms_status bad_equation(const char *eq, struct bms_diag *diag)
{
    return bms_diag_set(diag, BMS_ERR_INVALID,
                        "Einsum: equation '%s' does not fit the inputs", eq);
}


static enum bms_status einsum_plan(const struct bms__node *node,
                                   const struct bms_tensor *const *in,
                                   struct einsum_plan *pl,
                                   struct bms_diag *diag)
{
    char raw[MAX_EQUATION];
    char eq[MAX_EQUATION];
    const char *s = eq;
    int count[N_LABELS] = {0};
    size_t len = 0;
    int n_ell;

    bms__attr_string(node, "equation", raw, sizeof(raw));
    for (const char *r = raw; *r != '\0'; r++) {
        if (*r != ' ') {
            eq[len++] = *r;
        }
    }
    eq[len] = '\0';
    memset(pl, 0, sizeof(*pl));
    pl->n_ops = node->n_inputs;
    n_ell = max_ellipsis(eq, in, pl->n_ops);
    for (int k = 0; k < pl->n_ops; k++) {
        if (parse_term(&s, in[k]->n_dims, n_ell, pl->labels_of[k],
                       &pl->n_labels_of[k]) != 0 ||
            (k + 1 < pl->n_ops && *s++ != ',')) {
            return bad_equation(raw, diag);
        }
        for (int d = 0; d < in[k]->n_dims; d++) {
            int l = pl->labels_of[k][d];
            int64_t n = in[k]->dims[d];

            /* A label has one size across operands; 1 broadcasts, and
             * 0 is a size like any other. */
            count[l]++;
            if (count[l] > 1 && pl->size[l] != 1 && n != 1 &&
                n != pl->size[l]) {
                return bad_equation(raw, diag);
            }
            if (count[l] == 1 || pl->size[l] == 1) {
                pl->size[l] = n;
            }
        }
    }
    if (strncmp(s, "->", 2) == 0) {
        s += 2;
        if (parse_term(&s, -1, n_ell, pl->out, &pl->n_out) != 0 ||
            *s != '\0') {
            return bad_equation(raw, diag);
        }
    } else if (*s != '\0') {
        return bad_equation(raw, diag);
    } else {
        /* Implicit: the ellipsis dims, then letters seen once, sorted. */
        for (int j = 0; j < n_ell; j++) {
            pl->out[pl->n_out++] = N_LETTERS + j;
        }
        for (int l = 0; l < N_LETTERS; l++) {
            if (count[l] == 1 && pl->n_out < BMS_MAX_DIMS) {
                pl->out[pl->n_out++] = l;
            }
        }
    }
    for (int l = 0; l < N_LABELS; l++) {
        int in_out = 0;

        for (int j = 0; j < pl->n_out; j++) {
            in_out |= pl->out[j] == l;
        }
        if (count[l] > 0 && !in_out) {
            pl->sum[pl->n_sum++] = l;
        }
    }
    for (int j = 0; j < pl->n_out; j++) {
        if (count[pl->out[j]] == 0) {
            return bad_equation(raw, diag);
        }
    }
    return BMS_OK;
}


enum bms_status bms__einsum_infer(const struct bms__node *node,
                                  const struct bms_tensor *const *in,
                                  struct bms_tensor *out,
                                  struct bms_diag *diag)
{
    struct einsum_plan pl;
    enum bms_status rc;
    enum bms__elem_kind k = bms__elem_kind(in[0]->dtype);

    if (k == BMS__KIND_NONE || k == BMS__KIND_BOOL) {
        return bms__math_bad_dtype(node, in[0]->dtype, diag);
    }
    for (int i = 1; i < node->n_inputs; i++) {
        if (in[i]->dtype != in[0]->dtype) {
            return bms_diag_set(diag, BMS_ERR_INVALID,
                                "Einsum: inputs differ in datatype");
        }
    }
    rc = einsum_plan(node, in, &pl, diag);
    if (rc != BMS_OK) {
        return rc;
    }
    out->dtype = in[0]->dtype;
    out->n_dims = pl.n_out;
    for (int j = 0; j < pl.n_out; j++) {
        out->dims[j] = pl.size[pl.out[j]];
    }
    return BMS_OK;
}


/* Advance the indices of labels[0..n) as an odometer; 0 when done. */
static int odometer(int64_t *idx, const int *labels, int n,
                    const int64_t *size)
{
    for (int j = n - 1; j >= 0; j--) {
        if (++idx[labels[j]] < size[labels[j]]) {
            return 1;
        }
        idx[labels[j]] = 0;
    }
    return 0;
}


enum bms_status bms__einsum_run(const struct bms__node *node,
                                const struct bms_tensor *const *in,
                                struct bms_tensor *out,
                                struct bms__ctx *ctx)
{
    int64_t stride[MAX_OPERANDS][N_LABELS];
    int lab[MAX_OPERANDS][BMS_MAX_DIMS];
    int n_lab[MAX_OPERANDS] = {0};
    int64_t idx[N_LABELS] = {0};
    int64_t n_out = bms_tensor_numel(out);
    enum bms_dtype dt = out->dtype;
    struct einsum_plan pl;

    (void)ctx;
    if (einsum_plan(node, in, &pl, NULL) != BMS_OK) {
        return BMS_ERR_INVALID;
    }
    /* Per operand: the labels it steps along and their element strides
     * (summed over repeated labels; broadcast dims of 1 do not step). */
    for (int k = 0; k < pl.n_ops; k++) {
        int64_t st[BMS_MAX_DIMS];

        memset(stride[k], 0, sizeof(stride[k]));
        bms__elem_strides(in[k]->dims, in[k]->n_dims, st);
        for (int d = 0; d < in[k]->n_dims; d++) {
            int l = pl.labels_of[k][d];

            if (in[k]->dims[d] == 1) {
                continue;
            }
            if (stride[k][l] == 0) {
                lab[k][n_lab[k]++] = l;
            }
            stride[k][l] += st[d];
        }
    }
    for (int l = 0; l < pl.n_sum; l++) {
        if (pl.size[pl.sum[l]] == 0) {
            memset(out->data, 0, bms_tensor_size(out));
            return BMS_OK;
        }
    }
    for (int64_t i = 0; i < n_out; i++) {
        double acc = 0;

        do {
            double prod = 1;

            for (int k = 0; k < pl.n_ops; k++) {
                int64_t off = 0;

                for (int m = 0; m < n_lab[k]; m++) {
                    off += idx[lab[k][m]] * stride[k][lab[k][m]];
                }
                prod *= bms__elem_get_f(in[k]->data, dt, off);
            }
            acc += prod;
        } while (odometer(idx, pl.sum, pl.n_sum, pl.size));
        bms__elem_set_f(out->data, dt, i, acc);
        odometer(idx, pl.out, pl.n_out, pl.size);
    }
    return BMS_OK;
}
