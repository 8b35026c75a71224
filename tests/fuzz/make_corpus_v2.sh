#!/bin/sh
# Build the seed corpus of the v2 request fuzzer (fuzz_v2.c) in
# tests/fuzz/corpus_v2/: valid JSON and binary requests for the three
# models the target loads (fashion_mlp, v2_clf, v2_ints), one request per
# datatype, every literal request body in tests/e2e/*.py, and the kept
# inputs of tests/data/fuzz-regress-v2/.  Each file starts with the mode
# byte fuzz_v2.c reads (and, for a binary request, the two bytes of the
# JSON length).  The corpus is rebuilt from scratch each time and is not
# kept in git.
#
#   tests/fuzz/make_corpus_v2.sh
set -eu

cd "$(dirname "$0")/../.."

out=tests/fuzz/corpus_v2
rm -rf "$out"
mkdir -p "$out"

/usr/bin/python3 - "$out" <<'EOF'
import ast
import glob
import json
import os
import struct
import sys

out = sys.argv[1]

# The mode byte: model in bits 0-1, element limit in bits 2-3, run the
# engine in bit 6, binary in bit 7.
MLP, CLF, INTS = 0, 1, 2
RUN, BINARY = 0x40, 0x80


def save(name, mode, body, binary=None):
    """One seed: plain when binary is None, else JSON head and bytes."""
    head = json.dumps(body).encode() if isinstance(body, dict) else body
    if binary is None:
        data = bytes([mode]) + head
    else:
        data = bytes([mode | BINARY]) + struct.pack("<H", len(head)) + \
            head + binary
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def image(n=1, nested=False):
    values = [round((i % 17) / 16.0, 4) for i in range(784 * n)]
    if not nested:
        return values
    return [[[values[(b * 28 + r) * 28 + c] for c in range(28)]
             for r in range(28)] for b in range(n)]


def mlp_input(n=1, nested=False, **extra):
    d = {"name": "image", "datatype": "FP32", "shape": [n, 28, 28],
         "data": image(n, nested)}
    d.update(extra)
    return d


def floats(values):
    return struct.pack("<%df" % len(values), *values)


# fashion_mlp: image FP32 [N, 28, 28] -> label [N, 10], ten classes.
save("mlp_plain", MLP | RUN, {"inputs": [mlp_input()]})
save("mlp_nested", MLP, {"inputs": [mlp_input(nested=True)]})
save("mlp_batch2_id", MLP, {"id": "req \"7\"\n\u00e9",
                            "inputs": [mlp_input(2)]})
save("mlp_top3", MLP | RUN, {
    "inputs": [mlp_input()],
    "outputs": [{"name": "label", "parameters": {"classification": 3}}]})
save("mlp_raw", MLP, {
    "inputs": [mlp_input()],
    "outputs": [{"name": "label", "parameters": {"raw": True}}]})
save("mlp_timeout", MLP, {"inputs": [mlp_input()],
                          "parameters": {"timeout_ms": 250}})
save("mlp_keys_reordered", MLP, (
    '{"parameters": {"timeout_ms": 9, "other": [1, {"x": null}]},'
    ' "inputs": [{"data": %s, "shape": [1, 28, 28], "name": "image",'
    ' "datatype": "FP32", "extra": {"a": [true]}}], "id": ""}'
    % json.dumps(image())).encode())
save("mlp_binary_in", MLP | RUN, {"inputs": [{
    "name": "image", "datatype": "FP32", "shape": [1, 28, 28],
    "parameters": {"binary_data_size": 3136}}]}, floats(image()))
save("mlp_binary_out", MLP, {
    "inputs": [mlp_input()],
    "outputs": [{"name": "label", "parameters": {"binary_data": True}}]},
    b"")
save("mlp_binary_all", MLP | RUN, {
    "inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 28, 28],
                "parameters": {"binary_data_size": 3136}}],
    "outputs": [{"name": "label",
                 "parameters": {"classification": 2, "binary_data": True}}],
    "parameters": {"binary_data_output": True}}, floats(image()))
save("mlp_limit_784", MLP | 0x08, {"inputs": [mlp_input()]})

# v2_clf: x FP32 [N, 4] -> scores [N, 3] (cat, dog, bird), twice [N, 4].
rows = [[1, 2, 3, 4], [0.5, -1, 0, 2], [-1, 0, 1, 0.25]]
flat = [v for r in rows for v in r]
x = {"name": "x", "datatype": "FP32", "shape": [3, 4], "data": rows}
save("clf_plain", CLF | RUN, {"inputs": [x]})
save("clf_both_outputs", CLF, {"inputs": [x], "outputs": [
    {"name": "twice"}, {"name": "scores", "parameters": {"raw": True}}]})
save("clf_top2", CLF | RUN, {"inputs": [x], "outputs": [
    {"name": "scores", "parameters": {"classification": 2}}]})
save("clf_binary_in_out", CLF | RUN, {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 4],
                "parameters": {"binary_data_size": 48}}],
    "outputs": [{"name": "scores", "parameters": {"binary_data": True}},
                {"name": "twice", "parameters": {"binary_data": False}}]},
    floats(flat))
save("clf_binary_output_all", CLF, {
    "inputs": [x], "parameters": {"binary_data_output": True}}, b"")
save("clf_nan_inf", CLF, {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                "parameters": {"binary_data_size": 16}}],
    "outputs": [{"name": "scores", "parameters": {"classification": 3}}]},
    struct.pack("<4I", 0x7fc00000, 0x7f800000, 0xff800000, 0))
save("clf_limit_7", CLF | 0x0c, {"inputs": [x]})

# v2_ints: a, b INT64 [N, 3] -> sum; m UINT8 [N, 2] -> m2.
a = {"name": "a", "datatype": "INT64", "shape": [2, 3],
     "data": [[1, -2, 3], [9007199254740993, -9223372036854775808, 0]]}
b = {"name": "b", "datatype": "INT64", "shape": [2, 3],
     "data": [4, 5, 6, 7, 8, 9]}
m = {"name": "m", "datatype": "UINT8", "shape": [2, 2],
     "data": [0, 1, 127, 255]}
save("ints_plain", INTS | RUN, {"inputs": [a, b, m]})
save("ints_binary_in", INTS | RUN, {"inputs": [
    {"name": "a", "datatype": "INT64", "shape": [1, 3],
     "parameters": {"binary_data_size": 24}},
    {"name": "b", "datatype": "INT64", "shape": [1, 3],
     "data": [1, 2, 3]},
    {"name": "m", "datatype": "UINT8", "shape": [1, 2],
     "parameters": {"binary_data_size": 2}}],
    "outputs": [{"name": "m2", "parameters": {"binary_data": True}},
                {"name": "sum"}]},
    struct.pack("<3q", -1, 2 ** 62, 3) + bytes([200, 7]))
save("ints_batch0", INTS, {"inputs": [
    {"name": "a", "datatype": "INT64", "shape": [0, 3], "data": []},
    {"name": "b", "datatype": "INT64", "shape": [0, 3], "data": []},
    {"name": "m", "datatype": "UINT8", "shape": [0, 2], "data": []}]})

save("ints_top2_raw", INTS, {"inputs": [a, b, m], "outputs": [
    {"name": "sum", "parameters": {"classification": 2}},
    {"name": "m2", "parameters": {"classification": 9,
                                  "binary_data": True}}]}, b"")
save("ints_batch_differs", INTS, {"inputs": [
    a, b | {"shape": [1, 3], "data": [1, 2, 3]}, m]})
save("ints_rank_differs", INTS, {"inputs": [
    a, b, m | {"shape": [4], "data": [1, 2, 3, 4]}]})

# Near misses the parser and the binding refuse.
save("mlp_raw_and_top", MLP, {"inputs": [mlp_input()], "outputs": [
    {"name": "label", "parameters": {"raw": True, "classification": 2}}]})
save("mlp_output_twice", MLP, {"inputs": [mlp_input()], "outputs": [
    {"name": "label"}, {"name": "label"}]})
save("mlp_output_unknown", MLP, {"inputs": [mlp_input()], "outputs": [
    {"name": "labels"}]})
save("mlp_name_nul", MLP, {"inputs": [mlp_input(name="image\u0000x")]})
save("mlp_id_escapes", MLP | RUN, {
    "id": "\\ \" \b\f\n\r\t \u0001 \u00e9 \u20ac \U0001f600 end",
    "inputs": [mlp_input()]})
save("mlp_data_and_binary", MLP, {"inputs": [mlp_input(
    parameters={"binary_data_size": 3136})]}, floats(image()))
save("mlp_binary_short", MLP, {"inputs": [{
    "name": "image", "datatype": "FP32", "shape": [1, 28, 28],
    "parameters": {"binary_data_size": 3136}}]}, floats(image())[:-4])
save("mlp_binary_left_over", MLP, {"inputs": [{
    "name": "image", "datatype": "FP32", "shape": [1, 28, 28],
    "parameters": {"binary_data_size": 3136}}]}, floats(image()) + b"x")
save("mlp_datatype_long", MLP, {"inputs": [mlp_input(
    datatype="FP32-\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
             "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9")]})

# Every datatype, as JSON and as binary data, for input "a" of v2_ints
# (only INT64 binds; the others reach the parser's conversions).
values = {
    "BOOL": ([True, False, True], "<3?"),
    "UINT8": ([0, 128, 255], "<3B"),
    "UINT16": ([0, 1, 65535], "<3H"),
    "UINT32": ([0, 7, 4294967295], "<3I"),
    "UINT64": ([0, 9, 18446744073709551615], "<3Q"),
    "INT8": ([-128, 0, 127], "<3b"),
    "INT16": ([-32768, 1, 32767], "<3h"),
    "INT32": ([-2147483648, 2, 2147483647], "<3i"),
    "INT64": ([-9223372036854775808, 3, 9223372036854775807], "<3q"),
    "FP16": ([0.5, 1, -2], "<3e"),
    "FP32": ([3.4028234e38, -1.5e-45, 0.1], "<3f"),
    "FP64": ([1.7976931348623157e308, 5e-324, -0.0], "<3d"),
}
for dtype, (vals, fmt) in values.items():
    def one(**fields):
        d = {"name": "a", "datatype": dtype, "shape": [1, 3]}
        d.update(fields)
        return {"inputs": [d, b | {"shape": [1, 3], "data": [1, 2, 3]},
                           m | {"shape": [1, 2], "data": [1, 2]}]}
    raw = struct.pack(fmt, *vals)
    save("dtype_%s" % dtype.lower(), INTS, one(data=vals))
    save("dtype_%s_binary" % dtype.lower(), INTS,
         one(parameters={"binary_data_size": len(raw)}), raw)
save("dtype_bytes", INTS, {"inputs": [
    {"name": "a", "datatype": "BYTES", "shape": [1], "data": ["abc"]}]})

# The literal request bodies of the end-to-end tests, on fashion_mlp.
n = 0
for path in sorted(glob.glob("tests/e2e/*.py")):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            try:
                value = ast.literal_eval(node)
            except (ValueError, TypeError, SyntaxError):
                continue
            if "inputs" not in value:
                continue
            body = json.dumps(value).encode()
        elif isinstance(node, ast.Constant) and \
                isinstance(node.value, (str, bytes)):
            body = node.value.encode() if isinstance(node.value, str) \
                else node.value
            if not body.lstrip().startswith(b"{") or b'"inputs"' not in body:
                continue
        else:
            continue
        n += 1
        save("e2e_%s_%d" % (os.path.basename(path)[:-3], n), MLP, body)
EOF

for f in tests/data/fuzz-regress-v2/*; do
    [ -f "$f" ] && cp "$f" "$out/regress_$(basename "$f")"
done

echo "make_corpus_v2: $(find "$out" -type f | wc -l) files in $out"
