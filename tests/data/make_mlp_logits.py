"""Writes tests/data/fashion_mlp_logits.txt: the bundled MLP's logits for
Fashion-MNIST test images 20 to 51, computed by PyTorch from the weights
in models/fashion_mlp/1/model.onnx (Flatten, Gemm with transB, Relu, Gemm
with transB), one image a line, ten values written with 9 significant
digits (enough to read every float32 back exactly).  tests/e2e/
test_binary.py compares bms's raw logits with them.

Run with Debian's python3-onnx and python3-torch:
    /usr/bin/python3 tests/data/make_mlp_logits.py
"""
import gzip
import os
import struct

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
FIRST, LAST = 20, 52            # images FIRST .. LAST - 1


def test_images():
    with gzip.open(IMAGES) as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    assert magic == 2051, magic
    return np.frombuffer(raw, np.uint8, n * rows * cols, 16).reshape(
        n, rows * cols)


def main():
    model = onnx.load(os.path.join(ROOT, "models", "fashion_mlp", "1",
                                   "model.onnx"))
    w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy())
         for t in model.graph.initializer}
    x = test_images()[FIRST:LAST].astype(np.float32) / np.float32(255)
    with torch.no_grad():
        h = torch.relu(torch.from_numpy(x) @ w["1.weight"].T + w["1.bias"])
        out = (h @ w["4.weight"].T + w["4.bias"]).numpy()
    with open(os.path.join(HERE, "fashion_mlp_logits.txt"), "w") as f:
        for row in out:
            f.write(" ".join("%.9g" % v for v in row) + "\n")


if __name__ == "__main__":
    main()
