"""Writes the small ONNX models the engine unit tests load (engine_*.onnx).

engine_mlp.onnx        PyTorch MLP 12 -> 16 -> 10 (ReLU), dynamic batch,
                       with engine_mlp_in.pb / engine_mlp_out.pb: a batch
                       of 3 inputs and PyTorch's outputs for them.
engine_view.onnx       PyTorch x.view(x.size(0), -1) on [N, 3, 4] -> Linear
                       (12 -> 5): the batch flows through Shape, Gather,
                       Concat and Reshape; no output shape is declared.
engine_unknown_op.onnx a node of type FooBar.
engine_two_unknown.onnx nodes of types Foo and Bar.
engine_cycle.onnx      two Identity nodes feeding each other.
engine_bad_init.onnx   an initializer with dims [2, 3] and 5 values.
engine_unsorted.onnx   Identity -> Transpose stored in reverse order.
engine_passthrough.onnx outputs that are a graph input and an initializer.
engine_gemm_misfit.onnx Gemm whose weights do not fit its input.
engine_two_sources.onnx a value produced by two nodes.
engine_reuse.onnx      x [2, 3] -> a = x^T, b = a^T, c = b^T, d = Identity(c),
                       y = Concat(a, d) on axis 0: a must outlive b and c,
                       whose memory the session may hand on.
engine_dangling.onnx   a node input that nothing produces.

Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/data/make_models.py
"""
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13


def save(graph, name, check=True):
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bms-engine-tests")
    model.ir_version = 7
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


def save_tensor(array, name, file_name):
    tensor = numpy_helper.from_array(array, name)
    with open(os.path.join(HERE, file_name), "wb") as f:
        f.write(tensor.SerializeToString())


def export(module, example, name, input_name):
    module.eval()
    torch.onnx.export(
        module, example, os.path.join(HERE, name), input_names=[input_name],
        output_names=["y"], dynamic_axes={input_name: {0: "batch"},
                                          "y": {0: "batch"}},
        opset_version=OPSET)


class View(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(x.view(x.size(0), -1))


def torch_models():
    torch.manual_seed(7)
    mlp = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 10))
    x = torch.randn(3, 12)
    export(mlp, x, "engine_mlp.onnx", "x")
    with torch.no_grad():
        y = mlp(x)
    save_tensor(x.numpy(), "x", "engine_mlp_in.pb")
    save_tensor(y.numpy(), "y", "engine_mlp_out.pb")
    export(View(), torch.randn(2, 3, 4), "engine_view.onnx", "x")
    # Drop the declared output shape: the loader's inference must find it.
    path = os.path.join(HERE, "engine_view.onnx")
    view = onnx.load(path)
    view.graph.output[0].type.tensor_type.ClearField("shape")
    onnx.save(view, path)


def value(name, dims, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, dims)


def bad_models():
    x = value("x", [2, 3])
    y = value("y", [2, 3])
    save(helper.make_graph([helper.make_node("FooBar", ["x"], ["y"])],
                           "unknown", [x], [y]), "engine_unknown_op.onnx",
         check=False)
    save(helper.make_graph([helper.make_node("Foo", ["x"], ["t"]),
                            helper.make_node("Bar", ["t"], ["y"])],
                           "unknown2", [x], [y]), "engine_two_unknown.onnx",
         check=False)
    cycle = [helper.make_node("Identity", ["b"], ["a"]),
             helper.make_node("Identity", ["a"], ["b"]),
             helper.make_node("Identity", ["a"], ["y"])]
    save(helper.make_graph(cycle, "cycle", [x], [y]), "engine_cycle.onnx",
         check=False)
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3],
                           [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    del w.float_data[5]
    save(helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])],
                           "bad_init", [x], [y], [w]),
         "engine_bad_init.onnx", check=False)
    twice = [helper.make_node("Identity", ["x"], ["y"]),
             helper.make_node("Identity", ["x"], ["y"])]
    save(helper.make_graph(twice, "twice", [x], [y]),
         "engine_two_sources.onnx", check=False)
    save(helper.make_graph([helper.make_node("Identity", ["nowhere"],
                                             ["y"])],
                           "dangling", [x], [y]), "engine_dangling.onnx",
         check=False)
    g = helper.make_tensor("g", TensorProto.FLOAT, [4, 5], [0.5] * 20)
    save(helper.make_graph([helper.make_node("Gemm", ["x", "g"], ["y"],
                                             name="fc1")],
                           "misfit", [value("x", ["batch", 3])],
                           [value("y", ["batch", 5])], [g]),
         "engine_gemm_misfit.onnx", check=False)


def good_models():
    nodes = [helper.make_node("Transpose", ["t"], ["y"], perm=[1, 0]),
             helper.make_node("Identity", ["x"], ["t"])]
    save(helper.make_graph(nodes, "unsorted", [value("x", [2, 3])],
                           [value("y", [3, 2])]),
         "engine_unsorted.onnx", check=False)
    c = helper.make_tensor("c", TensorProto.INT64, [2], [7, -8])
    save(helper.make_graph([], "passthrough", [value("x", ["n", 2])],
                           [value("x", ["n", 2]),
                            value("c", [2], TensorProto.INT64)], [c]),
         "engine_passthrough.onnx", check=False)
    chain = [helper.make_node("Transpose", ["x"], ["a"]),
             helper.make_node("Transpose", ["a"], ["b"]),
             helper.make_node("Transpose", ["b"], ["c"]),
             helper.make_node("Identity", ["c"], ["d"]),
             helper.make_node("Concat", ["a", "d"], ["y"], axis=0)]
    save(helper.make_graph(chain, "reuse", [value("x", [2, 3])],
                           [value("y", [6, 2])]), "engine_reuse.onnx")


if __name__ == "__main__":
    torch_models()
    bad_models()
    good_models()
