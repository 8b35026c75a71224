"""Writes hostile ONNX files into tests/data/fuzz-regress/ (hostile_*.onnx).

Each file attacks one check of the bms loader or executor: truncated and
mistyped protobuf, absurd and negative dims, cycles, colliding names,
initializers whose data disagrees with their dims, huge attribute lists and
deeply nested subgraphs.  tests/unit/test_fuzz_regress.c loads every file
in that folder and asserts that bms refuses it with a message or loads and
runs it cleanly; the files also seed the fuzzer (tests/fuzz/make_corpus.sh).

Run with /usr/bin/python3 from the repository root:
    /usr/bin/python3 tests/fuzz/make_hostile.py
"""
import os
import struct

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "fuzz-regress")
# Models that load but whose run asks for more memory than any machine
# has.  They are kept apart from the regression set, which only loads
# models; tests/unit/test_engine.c runs them under the session memory
# limit, which refuses them with BMS_ERR_LIMIT whatever the machine's
# overcommit policy.
OOM_OUT = os.path.join(HERE, "oom")
OOM_CASES = ("expand_to_2p40", "constant_of_shape_256gib")
OPSET = 13
F = TensorProto.FLOAT
I64 = TensorProto.INT64


def model_bytes(nodes, inputs, outputs, inits=(), opset=OPSET):
    graph = helper.make_graph(list(nodes), "hostile", list(inputs),
                              list(outputs), initializer=list(inits))
    model = helper.make_model(graph,
                              opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="bms-hostile")
    model.ir_version = 7
    return model.SerializeToString()


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def bare_tensor(name, dtype, dims):
    """A TensorProto with these dims and no data, whatever the dims say."""
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    return t


def identity_model():
    return model_bytes([helper.make_node("Identity", ["x"], ["y"])],
                       [vi("x", F, [2, 3])], [vi("y", F, [2, 3])])


# Protobuf wire format by hand, for what onnx.helper will not write.
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def ld(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return key(field, 2) + varint(len(payload)) + payload


def vint(field, n):
    return key(field, 0) + varint(n)


def opset_import():
    return ld(8, vint(2, OPSET))


def raw_model(graph):
    return vint(1, 7) + opset_import() + ld(7, graph)


def tensor_vi(name, elem, dims):
    shape = b"".join(ld(1, vint(1, d)) for d in dims)
    return ld(1, name) + ld(2, ld(1, vint(1, elem) + ld(2, shape)))


def cases_wire():
    good = identity_model()
    yield "truncated_half", good[:len(good) // 2]
    yield "truncated_last_byte", good[:-1]
    # graph (field 7) sent as a varint instead of a message
    yield "graph_as_varint", vint(1, 7) + opset_import() + vint(7, 5)
    # opset_import version as a length-delimited field
    yield "opset_version_as_bytes", (vint(1, 7) + ld(8, ld(2, "xx")) +
                                     good[good.index(b"\x3a"):])
    # a length prefix far beyond the end of the file
    yield "length_past_end", vint(1, 7) + key(7, 2) + varint(1 << 40) + b"x"
    # ten-byte varint of -1 as a dim_value
    yield "dim_value_minus_one_varint", raw_model(
        ld(1, ld(1, "x") + ld(2, "y") + ld(4, "Identity")) +
        ld(11, tensor_vi("x", F, [-1])) + ld(12, tensor_vi("y", F, [-1])))


def cases_dims():
    yield "input_dim_2p62", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", F, [1 << 62, 4])], [vi("y", F, None)])
    yield "input_dims_product_overflow", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", F, [1 << 31, 1 << 31, 1 << 31])], [vi("y", F, None)])
    yield "input_negative_dim", raw_model(
        ld(1, ld(1, "x") + ld(2, "y") + ld(4, "Relu")) +
        ld(11, tensor_vi("x", F, [2, -5])) + ld(12, tensor_vi("y", F, [2])))
    yield "input_nine_dims", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", F, [1] * 9)], [vi("y", F, None)])
    big = bare_tensor("w", F, [1 << 62])
    yield "initializer_dim_2p62", model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [vi("x", F, [1])], [vi("y", F, None)], [big])
    neg = bare_tensor("w", F, [-2])
    neg.float_data.extend([1.0, 2.0])
    yield "initializer_negative_dim", model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [vi("x", F, [2])], [vi("y", F, None)], [neg])
    # Reshape to a shape far beyond any memory, and to two -1 dims
    for name, shape in [("reshape_to_2p62", [1 << 62, 1 << 62]),
                        ("reshape_two_minus_one", [-1, -1]),
                        ("reshape_zero_and_minus_one", [0, -1, 0])]:
        s = numpy_helper.from_array(np.array(shape, np.int64), "s")
        yield name, model_bytes(
            [helper.make_node("Reshape", ["x", "s"], ["y"])],
            [vi("x", F, [2, 3])], [vi("y", F, None)], [s])
    # Expand to 2^40 elements: shape math allows it, memory does not
    s = numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "s")
    yield "expand_to_2p40", model_bytes(
        [helper.make_node("Expand", ["x", "s"], ["y"])],
        [vi("x", F, [1])], [vi("y", F, None)], [s])
    # ConstantOfShape asking for 2^36 floats (256 GiB)
    s = numpy_helper.from_array(np.array([1 << 18, 1 << 18], np.int64), "s")
    yield "constant_of_shape_256gib", model_bytes(
        [helper.make_node("ConstantOfShape", ["s"], ["y"])],
        [], [vi("y", F, None)], [s])
    yield "gemm_dim_mismatch_dynamic", model_bytes(
        [helper.make_node("Gemm", ["x", "w"], ["y"])],
        [vi("x", F, ["n", 3])], [vi("y", F, None)],
        [numpy_helper.from_array(np.ones((4, 2), np.float32), "w")])


def cases_graph():
    yield "cycle_two_nodes", model_bytes(
        [helper.make_node("Relu", ["x", "b"], ["a"]),
         helper.make_node("Relu", ["a"], ["b"])],
        [vi("x", F, [1])], [vi("b", F, [1])])
    yield "cycle_self_loop", model_bytes(
        [helper.make_node("Add", ["x", "a"], ["a"])],
        [vi("x", F, [1])], [vi("a", F, [1])])
    w = numpy_helper.from_array(np.ones(2, np.float32), "w")
    yield "collide_two_initializers", model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [vi("x", F, [2])], [vi("y", F, [2])], [w, w])
    yield "collide_input_and_output", model_bytes(
        [helper.make_node("Relu", ["x"], ["x"])],
        [vi("x", F, [2])], [vi("x", F, [2])])
    yield "collide_two_inputs", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", F, [2]), vi("x", F, [3])], [vi("y", F, [2])])
    yield "collide_node_outputs", model_bytes(
        [helper.make_node("Split", ["x"], ["y", "y"], axis=0)],
        [vi("x", F, [2])], [vi("y", F, [1])])
    yield "output_listed_twice", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", F, [2])], [vi("y", F, [2]), vi("y", F, [2])])
    yield "input_also_output", model_bytes(
        [], [vi("x", F, [2])], [vi("x", F, [2])])
    yield "no_outputs", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"])], [vi("x", F, [2])], [])
    yield "empty_names", model_bytes(
        [helper.make_node("Relu", [""], [""])],
        [vi("x", F, [2])], [vi("y", F, [2])])
    yield "input_without_type", raw_model(
        ld(1, ld(1, "x") + ld(2, "y") + ld(4, "Relu")) +
        ld(11, ld(1, "x")) + ld(12, ld(1, "y")))
    yield "input_sequence_type", raw_model(
        ld(1, ld(1, "x") + ld(2, "y") + ld(4, "Identity")) +
        ld(11, ld(1, "x") + ld(2, ld(4, ld(1, ld(1, vint(1, F)))))) +
        ld(12, ld(1, "y")))
    yield "no_opset", vint(1, 7) + ld(
        7, ld(1, ld(1, "x") + ld(2, "y") + ld(4, "Relu")) +
        ld(11, tensor_vi("x", F, [1])) + ld(12, tensor_vi("y", F, [1])))
    yield "op_in_other_domain", model_bytes(
        [helper.make_node("Relu", ["x"], ["y"], domain="com.example")],
        [vi("x", F, [2])], [vi("y", F, [2])])
    yield "relu_three_inputs", model_bytes(
        [helper.make_node("Relu", ["x", "x", "x"], ["y", "z"])],
        [vi("x", F, [2])], [vi("y", F, [2])])


def cases_data():
    t = bare_tensor("w", F, [2])
    t.raw_data = b"\0\0\0"
    yield "raw_data_short", model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [vi("x", F, [2])], [vi("y", F, [2])], [t])
    t = bare_tensor("w", F, [2, 2])
    t.float_data.extend([1.0] * 5)
    yield "float_data_long", model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [vi("x", F, [2, 2])], [vi("y", F, [2, 2])], [t])
    t = helper.make_tensor("w", I64, [3], vals=[1, 2, 3])
    t.data_type = F
    yield "data_in_wrong_field", model_bytes(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [vi("x", F, [3])], [vi("y", F, [3])], [t])
    t = bare_tensor("w", F, [0, 1 << 40])
    yield "initializer_zero_by_2p40", model_bytes(
        [helper.make_node("Relu", ["w"], ["y"])], [], [vi("y", F, None)],
        [t])
    t = helper.make_tensor("w", F, [2], vals=[1.0, 2.0])
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", "/etc/passwd"
    yield "external_data", model_bytes(
        [helper.make_node("Relu", ["w"], ["y"])], [], [vi("y", F, [2])], [t])
    t = bare_tensor("w", 77, [1])
    t.int32_data.append(1)
    yield "unknown_datatype", model_bytes(
        [helper.make_node("Relu", ["w"], ["y"])], [], [vi("y", F, [1])], [t])
    c = helper.make_node("Constant", [], ["y"])
    c.attribute.extend([helper.make_attribute("value_float", 1.0)])
    c.attribute.extend([helper.make_attribute("value_ints", [1, 2])])
    yield "constant_two_values", model_bytes([c], [], [vi("y", F, None)])
    c = helper.make_node("Constant", [], ["y"])
    a = c.attribute.add()
    a.name, a.type = "value", 4
    yield "constant_tensor_missing", model_bytes([c], [], [vi("y", F, None)])
    s = numpy_helper.from_array(np.array([1 << 62], np.int64), "i")
    yield "gather_index_2p62", model_bytes(
        [helper.make_node("Gather", ["x", "i"], ["y"])],
        [vi("x", F, [4])], [vi("y", F, None)], [s])
    s = numpy_helper.from_array(np.array([-(1 << 62)], np.int64), "i")
    yield "gather_index_minus_2p62", model_bytes(
        [helper.make_node("Gather", ["x", "i"], ["y"])],
        [vi("x", F, [4])], [vi("y", F, None)], [s])


def cases_attrs():
    yield "transpose_perm_5000", model_bytes(
        [helper.make_node("Transpose", ["x"], ["y"],
                          perm=list(range(5000)))],
        [vi("x", F, [2, 3])], [vi("y", F, None)])
    yield "transpose_perm_repeated", model_bytes(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 0])],
        [vi("x", F, [2, 3])], [vi("y", F, None)])
    yield "transpose_perm_2p62", model_bytes(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[1 << 62, 0])],
        [vi("x", F, [2, 3])], [vi("y", F, None)])
    node = helper.make_node("Relu", ["x"], ["y"])
    for i in range(1000):
        node.attribute.extend([helper.make_attribute("a%d" % i, i)])
    yield "relu_1000_attributes", model_bytes(
        [node], [vi("x", F, [2])], [vi("y", F, [2])])
    yield "concat_axis_2p62", model_bytes(
        [helper.make_node("Concat", ["x", "x"], ["y"], axis=1 << 62)],
        [vi("x", F, [2])], [vi("y", F, None)])
    yield "softmax_axis_minus_2p62", model_bytes(
        [helper.make_node("Softmax", ["x"], ["y"], axis=-(1 << 62))],
        [vi("x", F, [2])], [vi("y", F, None)])
    # axis given as a float and as a string: the wrong attribute types
    node = helper.make_node("Concat", ["x", "x"], ["y"])
    node.attribute.extend([helper.make_attribute("axis", 0.5)])
    yield "concat_axis_float", model_bytes(
        [node], [vi("x", F, [2])], [vi("y", F, None)])
    node = helper.make_node("Flatten", ["x"], ["y"])
    node.attribute.extend([helper.make_attribute("axis", "one")])
    yield "flatten_axis_string", model_bytes(
        [node], [vi("x", F, [2, 3])], [vi("y", F, None)])
    yield "conv_kernel_2p62", model_bytes(
        [helper.make_node("Conv", ["x", "w"], ["y"],
                          kernel_shape=[1 << 62, 1 << 62],
                          strides=[0, 0], pads=[-5, -5, -5, -5])],
        [vi("x", F, [1, 1, 4, 4])], [vi("y", F, None)],
        [numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "w")])
    yield "maxpool_stride_zero", model_bytes(
        [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2],
                          strides=[0, 0])],
        [vi("x", F, [1, 1, 4, 4])], [vi("y", F, None)])
    yield "cast_to_string", model_bytes(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.STRING)],
        [vi("x", F, [2])], [vi("y", F, None)])
    yield "cast_to_2p62", model_bytes(
        [helper.make_node("Cast", ["x"], ["y"], to=1 << 62)],
        [vi("x", F, [2])], [vi("y", F, None)])


def nested_if(depth):
    """A graph whose one If node nests depth then_branch graphs."""
    inner = b""
    for _ in range(depth):
        attr = ld(1, "then_branch") + vint(20, 5) + ld(6, inner)
        inner = ld(1, ld(1, "c") + ld(2, "y") + ld(4, "If") + ld(5, attr))
    return inner


def cases_nesting():
    yield "if_nested_200", raw_model(
        nested_if(200) + ld(11, tensor_vi("c", TensorProto.BOOL, [])) +
        ld(12, tensor_vi("y", F, [1])))
    # Nesting as deep as a 60 KB file allows, attribute -> graph -> node
    # -> attribute: only the protobuf parser sees the depth, so it must
    # not recurse without bound.
    attr = ld(1, "g")
    while True:
        nxt = ld(6, ld(1, ld(5, attr)))
        if len(nxt) > 60000:
            break
        attr = nxt
    yield "attr_graph_nested_deep", raw_model(
        ld(1, ld(1, "x") + ld(2, "y") + ld(4, "Relu") + ld(5, attr)) +
        ld(11, tensor_vi("x", F, [1])) + ld(12, tensor_vi("y", F, [1])))


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(OOM_OUT, exist_ok=True)
    for gen in (cases_wire, cases_dims, cases_graph, cases_data,
                cases_attrs, cases_nesting):
        for name, data in gen():
            where = OOM_OUT if name in OOM_CASES else OUT
            with open(os.path.join(where, "hostile_%s.onnx" % name),
                      "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
