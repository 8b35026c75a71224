"""Writes the models the optimiser and memory plan tests load (opt_*.onnx).

Each model comes with opt_<name>_in.pb (one input batch, seeded) and
opt_<name>_out<k>.pb (the k-th graph output for it), computed here with
numpy, or with PyTorch in float64 for convolutions, never with bms.

opt_fold.onnx      Constant, Mul and Transpose over initializers only: all
                   three fold at load (5 nodes -> 2); one initializer is
                   read by nobody.
opt_dead.onnx      y = Relu(x), plus a Sigmoid -> Tanh -> Add branch that
                   reaches no output (4 nodes -> 1).
opt_convbn.onnx    Conv (with bias) -> BatchNormalization and Conv (no
                   bias, stride 2) -> BatchNormalization, both outputs of
                   the graph (4 nodes -> 2).
opt_fuse.onnx      Gemm -> Relu, MatMul -> LeakyRelu, Gemm -> Clip (bounds
                   from initializers), MatMul -> Sigmoid, MatMul -> Tanh
                   (10 nodes -> 5).
opt_fuse_conv.onnx Conv -> Clip(0, 6) -> Conv -> LeakyRelu -> Conv -> Tanh
                   (6 nodes -> 3).
opt_nofuse.onnx    activations that must stay: the producer's output is a
                   graph output, or has two readers (5 nodes -> 5).
opt_identity.onnx  Identity and Dropout (ratio input, unused mask) around
                   Add and Neg (7 nodes -> 4).  Two Identity nodes stay:
                   one maps the graph input straight to an output, the
                   other makes output y of Add's b, which Neg reads too.
opt_chain.onnx     x [N, 1000] -> Relu -> Sigmoid -> Tanh: the plan shares
                   the first and last buffers.
opt_view.onnx      x [N, 6] -> Relu -> Reshape [N, 2, 3] -> Sigmoid -> Tanh:
                   the Reshape output shares the Relu buffer.
opt_block.onnx     a small residual CNN exported by PyTorch with its
                   BatchNormalization nodes kept: every BN folds into its
                   Conv, and then LeakyRelu, two Relu and the final
                   Sigmoid fuse (20 nodes -> 11); expected: PyTorch's.

Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/data/make_opt_models.py
"""
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13
RNG = np.random.default_rng(20240611)


def rand(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape).astype(np.float32)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def info(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def save(name, nodes, inputs, outputs, inits, x, expected):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bms-optimiser-tests")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, "opt_%s.onnx" % name))
    with open(os.path.join(HERE, "opt_%s_in.pb" % name), "wb") as f:
        f.write(numpy_helper.from_array(x, "x").SerializeToString())
    for k, y in enumerate(expected):
        path = os.path.join(HERE, "opt_%s_out%d.pb" % (name, k))
        with open(path, "wb") as f:
            tensor = numpy_helper.from_array(y.astype(np.float32), "y")
            f.write(tensor.SerializeToString())


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def make_fold():
    x = rand(3, 4)
    c0 = np.array([1, 2, 3, 4], dtype=np.float32)
    w = np.array([0.5, -1, 2, 0.25], dtype=np.float32)
    w2 = rand(3, 4)
    nodes = [
        helper.make_node("Constant", [], ["c0"],
                         value=numpy_helper.from_array(c0, "c0v")),
        helper.make_node("Mul", ["c0", "w"], ["c1"]),
        helper.make_node("Transpose", ["w2"], ["wt"], perm=[1, 0]),
        helper.make_node("Add", ["x", "c1"], ["a"]),
        helper.make_node("MatMul", ["a", "wt"], ["y"]),
    ]
    inits = [init("w", w), init("w2", w2),
             init("unused", np.arange(100, dtype=np.float32))]
    y = (x.astype(np.float64) + c0 * w) @ w2.T.astype(np.float64)
    save("fold", nodes, [info("x", ["N", 4])], [info("y", ["N", 3])],
         inits, x, [y])


def make_dead():
    x = rand(2, 5)
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Tanh", ["s"], ["t"]),
        helper.make_node("Add", ["t", "bias"], ["u"]),
    ]
    inits = [init("bias", rand(5))]
    save("dead", nodes, [info("x", ["N", 5])], [info("y", ["N", 5])],
         inits, x, [np.maximum(x, 0)])


def batchnorm64(v, scale, bias, mean, var, eps):
    shape = (1, -1, 1, 1)
    return ((v - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) *
            scale.reshape(shape) + bias.reshape(shape))


def conv64(x, w, b=None, stride=1, pad=0):
    t = torch.nn.functional.conv2d(
        torch.from_numpy(x.astype(np.float64)),
        torch.from_numpy(w.astype(np.float64)),
        None if b is None else torch.from_numpy(b.astype(np.float64)),
        stride=stride, padding=pad)
    return t.numpy()


def bn_params(c):
    return [rand(c, low=0.5, high=1.5), rand(c), rand(c),
            rand(c, low=0.2, high=2.0)]


def make_convbn():
    x = rand(2, 3, 6, 6)
    w1, b1 = rand(4, 3, 3, 3), rand(4)
    w2 = rand(5, 3, 1, 1)
    p1 = bn_params(4)
    p2 = bn_params(5)
    names1 = ["s1", "b1n", "m1", "v1"]
    names2 = ["s2", "b2n", "m2", "v2"]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"],
                         pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1"] + names1, ["y1"],
                         epsilon=1e-3),
        helper.make_node("Conv", ["x", "w2"], ["c2"], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c2"] + names2, ["y2"]),
    ]
    inits = [init("w1", w1), init("b1", b1), init("w2", w2)]
    inits += [init(n, p) for n, p in zip(names1, p1)]
    inits += [init(n, p) for n, p in zip(names2, p2)]
    p1d = [p.astype(np.float64) for p in p1]
    p2d = [p.astype(np.float64) for p in p2]
    y1 = batchnorm64(conv64(x, w1, b1, pad=1), *p1d, 1e-3)
    y2 = batchnorm64(conv64(x, w2, stride=2), *p2d, 1e-5)
    save("convbn", nodes, [info("x", ["N", 3, 6, 6])],
         [info("y1", ["N", 4, 6, 6]), info("y2", ["N", 5, 3, 3])],
         inits, x, [y1, y2])


def make_fuse():
    x = rand(3, 16)
    w1, b1 = rand(8, 16), rand(8)
    w2, w3, b3 = rand(8, 8), rand(8, 8), rand(8)
    w4, w5 = rand(8, 6), rand(6, 4)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["m2"]),
        helper.make_node("LeakyRelu", ["m2"], ["r2"], alpha=0.2),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["g3"]),
        helper.make_node("Clip", ["g3", "lo", "hi"], ["r3"]),
        helper.make_node("MatMul", ["r3", "w4"], ["m4"]),
        helper.make_node("Sigmoid", ["m4"], ["r4"]),
        helper.make_node("MatMul", ["r4", "w5"], ["m5"]),
        helper.make_node("Tanh", ["m5"], ["y"]),
    ]
    inits = [init("w1", w1), init("b1", b1), init("w2", w2), init("w3", w3),
             init("b3", b3), init("w4", w4), init("w5", w5),
             init("lo", np.array(-0.5, dtype=np.float32)),
             init("hi", np.array(0.5, dtype=np.float32))]
    d = [a.astype(np.float64) for a in (x, w1, b1, w2, w3, b3, w4, w5)]
    r1 = np.maximum(d[0] @ d[1].T + d[2], 0)
    m2 = r1 @ d[3]
    r2 = np.where(m2 >= 0, m2, 0.2 * m2)
    r3 = np.clip(r2 @ d[4] + d[5], -0.5, 0.5)
    r4 = sigmoid(r3 @ d[6])
    y = np.tanh(r4 @ d[7])
    save("fuse", nodes, [info("x", ["N", 16])], [info("y", ["N", 4])],
         inits, x, [y])


def make_fuse_conv():
    x = rand(2, 2, 5, 5, low=-3, high=3)
    w1, b1 = rand(3, 2, 3, 3), rand(3)
    w2, b2 = rand(4, 3, 1, 1), rand(4)
    w3 = rand(2, 4, 3, 3)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c1", "zero", "six"], ["k1"]),
        helper.make_node("Conv", ["k1", "w2", "b2"], ["c2"]),
        helper.make_node("LeakyRelu", ["c2"], ["k2"], alpha=0.1),
        helper.make_node("Conv", ["k2", "w3"], ["c3"]),
        helper.make_node("Tanh", ["c3"], ["y"]),
    ]
    inits = [init("w1", w1), init("b1", b1), init("w2", w2), init("b2", b2),
             init("w3", w3), init("zero", np.array(0, dtype=np.float32)),
             init("six", np.array(6, dtype=np.float32))]
    k1 = np.clip(conv64(x, w1, b1, pad=1), 0, 6)
    c2 = conv64(k1, w2, b2)
    k2 = np.where(c2 >= 0, c2, 0.1 * c2)
    y = np.tanh(conv64(k2, w3))
    save("fuse_conv", nodes, [info("x", ["N", 2, 5, 5])],
         [info("y", ["N", 2, 3, 3])], inits, x, [y])


def make_nofuse():
    x = rand(2, 4)
    w, w2 = rand(4, 4), rand(4, 3)
    nodes = [
        helper.make_node("Gemm", ["x", "w"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("MatMul", ["x", "w2"], ["c"]),
        helper.make_node("Relu", ["c"], ["d"]),
        helper.make_node("Sigmoid", ["c"], ["e"]),
    ]
    a = x.astype(np.float64) @ w
    c = x.astype(np.float64) @ w2
    save("nofuse", nodes, [info("x", ["N", 4])],
         [info("a", ["N", 4]), info("b", ["N", 4]), info("d", ["N", 3]),
          info("e", ["N", 3])],
         [init("w", w), init("w2", w2)], x,
         [a, np.maximum(a, 0), np.maximum(c, 0), sigmoid(c)])


def make_identity():
    x = rand(2, 3)
    nodes = [
        helper.make_node("Identity", ["x"], ["a"]),
        helper.make_node("Add", ["a", "a"], ["b"]),
        helper.make_node("Dropout", ["b", "ratio"], ["c"]),
        helper.make_node("Identity", ["c"], ["y"]),
        helper.make_node("Identity", ["x"], ["z"]),
        helper.make_node("Dropout", ["b"], ["d", "mask"]),
        helper.make_node("Neg", ["d"], ["w"]),
    ]
    save("identity", nodes, [info("x", ["N", 3])],
         [info("y", ["N", 3]), info("z", ["N", 3]), info("w", ["N", 3])],
         [init("ratio", np.array(0.3, dtype=np.float32))], x,
         [2 * x, x, -2 * x])


def make_chain():
    x = rand(1, 1000, low=-4, high=4)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Sigmoid", ["a"], ["b"]),
        helper.make_node("Tanh", ["b"], ["y"]),
    ]
    y = np.tanh(sigmoid(np.maximum(x.astype(np.float64), 0)))
    save("chain", nodes, [info("x", ["N", 1000])],
         [info("y", ["N", 1000])], [], x, [y])


def make_view():
    x = rand(2, 6, low=-4, high=4)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("Sigmoid", ["f"], ["s"]),
        helper.make_node("Tanh", ["s"], ["y"]),
    ]
    y = np.tanh(sigmoid(np.maximum(x.astype(np.float64), 0)))
    save("view", nodes, [info("x", ["N", 6])], [info("y", ["N", 2, 3])],
         [init("shape", np.array([-1, 2, 3], dtype=np.int64))], x,
         [y.reshape(-1, 2, 3)])


class ResidualBlock(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class SmallResNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.blocks = torch.nn.Sequential(ResidualBlock(8), ResidualBlock(8))
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.nn.functional.leaky_relu(self.bn(self.stem(x)), 0.1)
        x = self.blocks(x).mean(dim=(2, 3))
        return torch.sigmoid(self.fc(x))


def make_block():
    torch.manual_seed(3)
    net = SmallResNet()
    # Statistics away from the identity, so that a wrong fold shows.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    net.eval()
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        y = net(x)
    torch.onnx.export(
        net, x, os.path.join(HERE, "opt_block.onnx"), input_names=["x"],
        output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
        opset_version=OPSET, do_constant_folding=False,
        training=torch.onnx.TrainingMode.PRESERVE)
    with open(os.path.join(HERE, "opt_block_in.pb"), "wb") as f:
        f.write(numpy_helper.from_array(x.numpy(), "x").SerializeToString())
    with open(os.path.join(HERE, "opt_block_out0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(y.numpy(), "y").SerializeToString())


if __name__ == "__main__":
    make_fold()
    make_dead()
    make_convbn()
    make_fuse()
    make_fuse_conv()
    make_nofuse()
    make_identity()
    make_chain()
    make_view()
    make_block()
