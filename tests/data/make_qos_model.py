"""Writes tests/data/qos_reshape.onnx: y = Reshape(x [N, 4], shape [1]
INT64).  An all-zeros canary asks for shape [0], which cannot hold the
input, so the model's health canary fails while real requests succeed.

Run with Debian's python3-onnx: /usr/bin/python3 tests/data/make_qos_model.py
"""
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    s = helper.make_tensor_value_info("shape", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    graph = helper.make_graph([node], "canary_bad", [x, s], [y])
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, os.path.join(HERE, "qos_reshape.onnx"))


if __name__ == "__main__":
    main()
