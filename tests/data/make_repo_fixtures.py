"""Writes the small ONNX models the repository and manifest tests load.

tiny_mlp.onnx: image float [N, 4, 4] -> Flatten -> Gemm (16 -> 3) -> logits
float [N, 3], a three-class classifier shape.
tiny_two_inputs.onnx: image float [N, 4] + mask float [N, 4] -> Add -> sum
float [N, 4], a graph with two inputs.
tiny_rank1.onnx: x float [N, 1] -> Squeeze (axis 1) -> score float [N], one
value per item (no class dimension).

Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/data/make_repo_fixtures.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13


def save(graph, name):
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bms-fixtures")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(HERE, name))


def tiny_mlp():
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((16, 3)).astype(np.float32)
    bias = np.array([0.5, -0.25, 0.125], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "weight", "bias"], ["logits"])],
        "tiny_mlp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                       ["N", 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N", 3])],
        [numpy_helper.from_array(weight, "weight"),
         numpy_helper.from_array(bias, "bias")])
    save(graph, "tiny_mlp.onnx")


def tiny_two_inputs():
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "mask"], ["sum"])],
        "tiny_two_inputs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                       ["N", 4]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT,
                                       ["N", 4])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT,
                                       ["N", 4])])
    save(graph, "tiny_two_inputs.onnx")


def tiny_rank1():
    graph = helper.make_graph(
        [helper.make_node("Squeeze", ["x", "axes"], ["score"])],
        "tiny_rank1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")])
    save(graph, "tiny_rank1.onnx")


if __name__ == "__main__":
    tiny_mlp()
    tiny_two_inputs()
    tiny_rank1()
