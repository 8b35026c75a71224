"""Writes the models the transformer fast-path tests load (fast_*.onnx).

Each model comes with fast_<name>_in.pb (one input batch, seeded) and
fast_<name>_out<k>.pb (its k-th graph output for it), computed here with
numpy in float64, never with bms.

fast_block.onnx    one post-LayerNorm transformer encoder block as PyTorch
                   exports it (hidden 16, 2 heads, FFN 32, sequence 8):
                   Q/K/V projections with bias, Reshape and Transpose into
                   heads, scores scaled by Div, Softmax, the context
                   transposed back, the output projection, residual Add +
                   LayerNormalization, the FFN with the exported erf GELU
                   ((x * (erf(x / sqrt 2) + 1)) * 0.5), residual Add +
                   LayerNormalization.  The optimiser turns its 32 nodes
                   into 6 bms.MatMul, 2 bms.MatMul of the attention, 1
                   Softmax, 2 bms.AddLayerNorm and the Reshapes.
fast_gelu.onnx     the other GELU grouping, (x * 0.5) * (1 + erf(x *
                   (1 / sqrt 2))), alone: one bms.Gelu.
fast_nofuse.onnx   chains that must stay as they are: an Erf chain with
                   the wrong constant, a MatMul whose product has a second
                   reader, a Transpose that moves the last axis first
                   into a MatMul, an Add + LayerNormalization whose sum is
                   a graph output too (12 nodes -> 11: only the last bias
                   Add goes into its MatMul).
fast_transpose.onnx two Transposes of one [3, 20, 5, 18] input, one that
                   keeps the last axis (row copies) and one that does not
                   (tiled copies); the output is their concatenation.

Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/data/make_fast_models.py
"""
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
RNG = np.random.default_rng(20240917)
ERF = np.vectorize(math.erf)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(size=shape) * scale).astype(np.float32)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def scalar(name, value):
    return init(name, np.array(value, dtype=np.float32))


def info(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def save(name, nodes, inputs, outputs, inits, x, expected):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, "fast_%s.onnx" % name))
    with open(os.path.join(HERE, "fast_%s_in.pb" % name), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    for k, want in enumerate(expected):
        path = os.path.join(HERE, "fast_%s_out%d.pb" % (name, k))
        with open(path, "wb") as f:
            out = numpy_helper.from_array(want.astype(np.float32), "y")
            f.write(out.SerializeToString())


def gelu64(v):
    return v * 0.5 * (1.0 + ERF(v / math.sqrt(2.0)))


def layernorm64(v, scale, bias, eps):
    mean = v.mean(axis=-1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
    return (v - mean) / np.sqrt(var + eps) * scale + bias


def softmax64(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu_nodes(x, y, tag):
    """The exported erf GELU of x into y: (x * (erf(x / c) + 1)) * 0.5."""
    return [
        helper.make_node("Div", [x, "sqrt2"], [tag + "_d"]),
        helper.make_node("Erf", [tag + "_d"], [tag + "_e"]),
        helper.make_node("Add", [tag + "_e", "one"], [tag + "_a"]),
        helper.make_node("Mul", [x, tag + "_a"], [tag + "_m"]),
        helper.make_node("Mul", [tag + "_m", "half"], [y]),
    ]


def make_block():
    n, s, h, heads, ffn = 2, 8, 16, 2, 32
    dh = h // heads
    eps = 1e-5
    p = {k: rand(h, h, scale=0.3) for k in ("wq", "wk", "wv", "wo")}
    p.update({k: rand(h, scale=0.1) for k in ("bq", "bk", "bv", "bo")})
    p["w1"] = rand(h, ffn, scale=0.3)
    p["b1"] = rand(ffn, scale=0.1)
    p["w2"] = rand(ffn, h, scale=0.3)
    p["b2"] = rand(h, scale=0.1)
    for k in ("g1", "g2"):
        p[k] = (1.0 + rand(h, scale=0.1)).astype(np.float32)
    for k in ("e1", "e2"):
        p[k] = rand(h, scale=0.1)
    heads_shape = np.array([0, 0, heads, dh], dtype=np.int64)
    back_shape = np.array([0, 0, h], dtype=np.int64)
    nodes = []
    for k in ("q", "k", "v"):
        nodes += [
            helper.make_node("MatMul", ["x", "w" + k], [k + "_mm"]),
            helper.make_node("Add", ["b" + k, k + "_mm"], [k + "_b"]),
            helper.make_node("Reshape", [k + "_b", "heads_shape"],
                             [k + "_r"]),
        ]
    nodes += [
        helper.make_node("Transpose", ["q_r"], ["q_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["k_r"], ["k_t"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["v_r"], ["v_t"], perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", ["q_t", "k_t"], ["scores"]),
        helper.make_node("Div", ["scores", "sqrt_dh"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "v_t"], ["ctx"]),
        helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx_t", "back_shape"], ["ctx_r"]),
        helper.make_node("MatMul", ["ctx_r", "wo"], ["o_mm"]),
        helper.make_node("Add", ["o_mm", "bo"], ["o_b"]),
        helper.make_node("Add", ["x", "o_b"], ["res1"]),
        helper.make_node("LayerNormalization", ["res1", "g1", "e1"],
                         ["ln1"], axis=-1, epsilon=eps),
        helper.make_node("MatMul", ["ln1", "w1"], ["f_mm"]),
        helper.make_node("Add", ["b1", "f_mm"], ["f_b"]),
    ]
    nodes += gelu_nodes("f_b", "f_g", "g")
    nodes += [
        helper.make_node("MatMul", ["f_g", "w2"], ["f2_mm"]),
        helper.make_node("Add", ["f2_mm", "b2"], ["f2_b"]),
        helper.make_node("Add", ["ln1", "f2_b"], ["res2"]),
        helper.make_node("LayerNormalization", ["res2", "g2", "e2"], ["y"],
                         axis=-1, epsilon=eps),
    ]
    inits = [init(k, v) for k, v in p.items()]
    inits += [init("heads_shape", heads_shape),
              init("back_shape", back_shape),
              scalar("sqrt_dh", math.sqrt(dh)),
              scalar("sqrt2", math.sqrt(2.0)), scalar("one", 1.0),
              scalar("half", 0.5)]
    x = rand(n, s, h)

    q = {k: p[k].astype(np.float64) for k in p}
    x64 = x.astype(np.float64)

    def split(v):
        return v.reshape(n, s, heads, dh).transpose(0, 2, 1, 3)

    qh = split(x64 @ q["wq"] + q["bq"])
    kh = split(x64 @ q["wk"] + q["bk"])
    vh = split(x64 @ q["wv"] + q["bv"])
    probs = softmax64(qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(dh))
    ctx = (probs @ vh).transpose(0, 2, 1, 3).reshape(n, s, h)
    ln1 = layernorm64(x64 + ctx @ q["wo"] + q["bo"], q["g1"], q["e1"], eps)
    f = gelu64(ln1 @ q["w1"] + q["b1"]) @ q["w2"] + q["b2"]
    y = layernorm64(ln1 + f, q["g2"], q["e2"], eps)
    save("block", nodes, [info("x", ["N", s, h])], [info("y", ["N", s, h])],
         inits, x, [y])


def make_gelu():
    nodes = [
        helper.make_node("Mul", ["x", "rsqrt2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["one", "e"], ["a"]),
        helper.make_node("Mul", ["half", "x"], ["h"]),
        helper.make_node("Mul", ["h", "a"], ["y"]),
    ]
    inits = [scalar("rsqrt2", 1.0 / math.sqrt(2.0)), scalar("one", 1.0),
             scalar("half", 0.5)]
    x = np.concatenate([np.linspace(-12, 12, 97, dtype=np.float32),
                        rand(31, scale=3.0)]).reshape(1, 128)
    save("gelu", nodes, [info("x", ["N", 128])], [info("y", ["N", 128])],
         inits, x, [gelu64(x.astype(np.float64))])


def make_nofuse():
    h = 6
    w = rand(h, h, scale=0.5)
    g = (1.0 + rand(h, scale=0.1)).astype(np.float32)
    e = rand(h, scale=0.1)
    bias = rand(h, scale=0.1)
    nodes = [
        # Not GELU: the divisor is 1.5, not sqrt 2.
        helper.make_node("Div", ["x", "c15"], ["d"]),
        helper.make_node("Erf", ["d"], ["er"]),
        helper.make_node("Add", ["er", "one"], ["a"]),
        helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["gl"]),
        # The product has two readers: the bias Add stays.
        helper.make_node("MatMul", ["gl", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["mb"]),
        helper.make_node("Add", ["mm", "mb"], ["s"]),
        # The last axis would move first: the Transpose stays.
        helper.make_node("Transpose", ["s"], ["st"], perm=[2, 0, 1]),
        helper.make_node("MatMul", ["st", "w"], ["p"]),
        # The sum is a graph output: no Add + LayerNormalization.
        helper.make_node("Add", ["p", "bias"], ["sum"]),
        helper.make_node("LayerNormalization", ["sum", "g", "e"], ["y"],
                         axis=-1, epsilon=1e-5),
    ]
    inits = [init("w", w), init("g", g), init("e", e), init("bias", bias),
             scalar("c15", 1.5), scalar("one", 1.0), scalar("half", 0.5)]
    x = rand(2, h, h)
    x64 = x.astype(np.float64)
    w64 = w.astype(np.float64)
    mm = (x64 * (ERF(x64 / 1.5) + 1.0) * 0.5) @ w64
    s = mm + (mm + bias)
    total = s.transpose(2, 0, 1) @ w64 + bias
    y = layernorm64(total, g, e, 1e-5)
    save("nofuse", nodes, [info("x", [2, h, h])],
         [info("y", [h, 2, h]), info("sum", [h, 2, h])], inits, x,
         [y, total])


def make_transpose():
    x = rand(3, 20, 5, 18)
    nodes = [
        helper.make_node("Transpose", ["x"], ["a"], perm=[2, 0, 1, 3]),
        helper.make_node("Transpose", ["x"], ["b"], perm=[3, 1, 0, 2]),
        helper.make_node("Reshape", ["a", "flat"], ["af"]),
        helper.make_node("Reshape", ["b", "flat"], ["bf"]),
        helper.make_node("Concat", ["af", "bf"], ["y"], axis=0),
    ]
    inits = [init("flat", np.array([-1], dtype=np.int64))]
    y = np.concatenate([x.transpose(2, 0, 1, 3).reshape(-1),
                        x.transpose(3, 1, 0, 2).reshape(-1)])
    save("transpose", nodes, [info("x", [3, 20, 5, 18])],
         [info("y", [y.size])], inits, x, [y])


if __name__ == "__main__":
    make_block()
    make_gelu()
    make_nofuse()
    make_transpose()
