"""Writes the model repository the v2 unit tests run requests on.

v2_repo/v2_clf: x float [N, 4] -> Gemm (W, b below) -> scores float [N, 3],
a three-class classifier (cat, dog, bird) in config.json, and
Mul(x, 2) -> twice float [N, 4], an output the manifest does not declare.
Versions 1 and 2 hold the same graph; version 3 is not ONNX and fails to
load, so the repository has a failed entry.
v2_repo/v2_ints: a int64 [N, 3] + b int64 [N, 3] -> Add -> sum int64, and
m uint8 [N, 2] -> Add(m, m) -> m2 uint8; no config.json.

W and b are binary fractions, so every FP32 result the tests check by hand
is exact.  Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/data/v2_make_models.py
It prints the scores numpy computes for the rows the tests send.
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "v2_repo")
OPSET = 13

W = np.array([[1.0, 0.0, -1.0],
              [0.5, 2.0, 0.0],
              [0.0, -1.0, 1.0],
              [0.25, 0.0, 0.5]], dtype=np.float32)
B = np.array([0.0, 0.5, -0.5], dtype=np.float32)


def save(graph, folder):
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bms-v2-tests")
    model.ir_version = 7
    onnx.checker.check_model(model)
    os.makedirs(folder, exist_ok=True)
    onnx.save(model, os.path.join(folder, "model.onnx"))


def classifier():
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["scores"]),
         helper.make_node("Mul", ["x", "two"], ["twice"])],
        "v2_clf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT,
                                       ["N", 3]),
         helper.make_tensor_value_info("twice", TensorProto.FLOAT,
                                       ["N", 4])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b"),
         numpy_helper.from_array(np.array([2.0], np.float32), "two")])
    base = os.path.join(REPO, "v2_clf")
    save(graph, os.path.join(base, "1"))
    save(graph, os.path.join(base, "2"))
    os.makedirs(os.path.join(base, "3"), exist_ok=True)
    with open(os.path.join(base, "3", "model.onnx"), "wb") as f:
        f.write(b"not an onnx model\n")
    manifest = {
        "name": "v2_clf", "version": "1.0",
        "description": "Test classifier: \"quoted\" and\ttabbed.",
        "license": "MIT",
        "inputs": [{"name": "x", "type": "float", "size": [4],
                    "order": "c"}],
        "outputs": [{"name": "scores", "type": "int",
                     "classes": ["cat", "dog", "bird"]}],
        "dependencies": [{"library": "numpy>=1.17", "package": "",
                          "script": "prep.py"}],
    }
    with open(os.path.join(base, "config.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def integers():
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]),
         helper.make_node("Add", ["m", "m"], ["m2"])],
        "v2_ints",
        [helper.make_tensor_value_info("a", TensorProto.INT64, ["N", 3]),
         helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 3]),
         helper.make_tensor_value_info("m", TensorProto.UINT8, ["N", 2])],
        [helper.make_tensor_value_info("sum", TensorProto.INT64, ["N", 3]),
         helper.make_tensor_value_info("m2", TensorProto.UINT8, ["N", 2])])
    save(graph, os.path.join(REPO, "v2_ints", "1"))


if __name__ == "__main__":
    classifier()
    integers()
    rows = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [1, 0, 1, 0]], np.float32)
    print("scores", (rows @ W + B).tolist())
