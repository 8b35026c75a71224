/*
 * Internal to the kernels: the sliding-window geometry Conv and the pools
 * share.  A struct bms__window holds the attributes as the node gives them
 * (kernel_shape, strides, dilations, pads, auto_pad, ceil_mode); resolving
 * it against one input's spatial dims gives a struct bms__window_geom with
 * every per-dim number the loops need, pads for auto_pad included.
 */
#ifndef BMS_ENGINE_OPS_WINDOW_H
#define BMS_ENGINE_OPS_WINDOW_H

#include "engine/graph.h"

#define BMS__MAX_SPATIAL (BMS_MAX_DIMS - 2)

enum bms__auto_pad {
    BMS__AUTO_PAD_NOTSET = 0,
    BMS__AUTO_PAD_VALID,
    BMS__AUTO_PAD_SAME_UPPER,
    BMS__AUTO_PAD_SAME_LOWER
};

struct bms__window {
    int n_spatial;               /* 0 until an attribute or input fixes it */
    int has_kernel;
    int64_t kernel[BMS__MAX_SPATIAL];
    int64_t strides[BMS__MAX_SPATIAL];     /* 1 when absent */
    int64_t dilations[BMS__MAX_SPATIAL];   /* 1 when absent */
    int64_t pads[2 * BMS__MAX_SPATIAL];    /* begins, then ends; 0 */
    enum bms__auto_pad auto_pad;
    int ceil_mode;
};

struct bms__window_geom {
    int n_spatial;
    int64_t in[BMS__MAX_SPATIAL];          /* input spatial dims */
    int64_t out[BMS__MAX_SPATIAL];         /* output spatial dims */
    int64_t kernel[BMS__MAX_SPATIAL];
    int64_t strides[BMS__MAX_SPATIAL];
    int64_t dilations[BMS__MAX_SPATIAL];
    int64_t pad_begin[BMS__MAX_SPATIAL];
    int64_t pad_end[BMS__MAX_SPATIAL];
};

/*
 * Read the window attributes of node into *w.  kernel_shape is required
 * when need_kernel (the pools) and otherwise may come later from the
 * weights (Conv).  BMS_ERR_INVALID naming the op and attribute when a
 * value is out of range or the lengths disagree.
 */
enum bms_status bms__window_parse(const struct bms__node *node,
                                  int need_kernel, struct bms__window *w,
                                  struct bms_diag *diag);

/*
 * Resolve w for an input whose spatial dims are in[0..n_spatial) (-1:
 * known only at run, giving -1 out), with kernel dims taken from kernel
 * when w has none.  BMS_ERR_INVALID naming the op when the ranks disagree
 * or the window does not fit the padded input.
 */
enum bms_status bms__window_resolve(const struct bms__node *node,
                                    const struct bms__window *w,
                                    int n_spatial, const int64_t *in,
                                    const int64_t *kernel,
                                    struct bms__window_geom *g,
                                    struct bms_diag *diag);

#endif
