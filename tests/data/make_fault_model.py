"""Writes tests/data/fault.onnx and fault_plus1.onnx, the models of the
crash isolation tests.

fault.onnx        x float [N, 4] -> y = BmsTestFault(x) float [N, 4]: a
                  copy of x in a build with the test-only operator (make
                  TEST_FAULTS=1), unless x[0, 0] is 1 (SIGSEGV), 2
                  (abort), 3 (hang) or 4 (memory without bound).  A
                  release build refuses the model.
fault_plus1.onnx  y = BmsTestFault(x + 1): the zeros of the warm-up
                  canary crash it, x[0, 0] = 10 does not (y = x + 1).

Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/data/make_fault_model.py
"""
import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    node = helper.make_node("BmsTestFault", ["x"], ["y"], name="fault")
    graph = helper.make_graph(
        [node], "fault",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, producer_name="bms-tests",
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, os.path.join(HERE, "fault.onnx"))

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    nodes = [helper.make_node("Add", ["x", "one"], ["x1"], name="plus1"),
             helper.make_node("BmsTestFault", ["x1"], ["y"], name="fault")]
    graph = helper.make_graph(
        nodes, "fault_plus1",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [one])
    model = helper.make_model(graph, producer_name="bms-tests",
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, os.path.join(HERE, "fault_plus1.onnx"))


if __name__ == "__main__":
    main()
