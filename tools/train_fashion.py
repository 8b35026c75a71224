#!/usr/bin/python3
"""Train the two default bms models on Fashion-MNIST and export them.

For each model (fashion_mlp, fashion_cnn) this writes, under the output
folder (models/ by default):

    <name>/1/model.onnx    the trained network, eval mode, dynamic batch
    <name>/config.json     the bms manifest
    <name>/reference.txt   PyTorch's predicted class for each test image
    <name>/accuracy.txt    test_accuracy=0.XXXX against the true labels

Everything is seeded and single-process with a fixed thread count, so a
rerun on the same machine writes byte-identical files.  Pixels are float32
in [0, 1] (byte / 255, nothing else), exactly what the HTTP clients send.

Run with Debian's interpreter, which has torch, onnx and numpy:

    /usr/bin/python3 tools/train_fashion.py [--out DIR] [--model NAME]
"""

import argparse
import gzip
import json
import os
import random
import sys
import time

import numpy as np
import onnx
import torch
from torch import nn

DATA_DIR = "/usr/share/datasets/fashion-mnist"
REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20240501
THREADS = 2
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
           "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path, magic, ndim):
    """Return the array stored in one gzipped IDX file.

    The header is a big-endian magic number followed by one big-endian
    32-bit size per dimension; the data are unsigned bytes.  Raises
    ValueError when the magic number or the length does not match.
    """
    with gzip.open(path, "rb") as f:
        raw = f.read()
    head = np.frombuffer(raw, dtype=">u4", count=1 + ndim)
    if int(head[0]) != magic:
        raise ValueError("%s: magic %d, expected %d"
                         % (path, int(head[0]), magic))
    shape = tuple(int(d) for d in head[1:])
    offset = 4 * (1 + ndim)
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError("%s: %d data bytes, header says %s"
                         % (path, len(raw) - offset, shape))
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_split(split):
    """Return (images float32 [N,28,28] in [0,1], labels int64 [N])."""
    images = read_idx(os.path.join(DATA_DIR, split
                                   + "-images-idx3-ubyte.gz"),
                      IMAGE_MAGIC, 3)
    labels = read_idx(os.path.join(DATA_DIR, split
                                   + "-labels-idx1-ubyte.gz"),
                      LABEL_MAGIC, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError("%s: %d images but %d labels"
                         % (split, images.shape[0], labels.shape[0]))
    pixels = images.astype(np.float32) / np.float32(255.0)
    return pixels, labels.astype(np.int64)


def build_mlp():
    """The MLP: input [N,28,28], output [N,10] logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


def build_cnn():
    """A LeNet-style CNN with batch norm: input [N,1,28,28]."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(6),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(16),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


# What differs between the two models: the network, the input layout the
# manifest declares, the export opset and the training schedule.
MODELS = {
    "fashion_mlp": {
        "build": build_mlp,
        "shape": (28, 28),
        "order": "hwc",
        "opset": 13,
        "epochs": 10,
        "kind": "a multilayer perceptron (784-128-10)",
    },
    "fashion_cnn": {
        "build": build_cnn,
        "shape": (1, 28, 28),
        "order": "chw",
        "opset": 17,
        "epochs": 8,
        "kind": "a LeNet-style convolutional network",
    },
}
BATCH = 64
LEARNING_RATE = 1e-3


def seed_everything(seed):
    """Make every source of randomness and parallelism fixed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(THREADS)


def train(model, images, labels, epochs, seed):
    """Train with Adam on shuffled mini-batches; return the model."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    n = x_all.shape[0]

    model.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for start in range(0, n, BATCH):
            idx = order[start:start + BATCH]
            optimizer.zero_grad()
            loss = loss_fn(model(x_all[idx]), y_all[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * idx.shape[0]
        print("  epoch %d: mean loss %.4f" % (epoch + 1, total / n),
              flush=True)
    return model


def predict(model, images):
    """Return the argmax class of each image, in eval mode, as int64."""
    model.eval()
    out = []
    with torch.no_grad():
        x_all = torch.from_numpy(images)
        for start in range(0, x_all.shape[0], 1000):
            logits = model(x_all[start:start + 1000])
            out.append(logits.argmax(dim=1))
    return torch.cat(out).numpy()


def export(model, spec, path):
    """Export the eval-mode model to ONNX, check it, return its op types."""
    model.eval()
    dummy = torch.zeros((1,) + spec["shape"], dtype=torch.float32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(model, dummy, path,
                      input_names=["image"], output_names=["label"],
                      dynamic_axes={"image": {0: "N"}, "label": {0: "N"}},
                      opset_version=spec["opset"],
                      training=torch.onnx.TrainingMode.EVAL,
                      do_constant_folding=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    return [node.op_type for node in proto.graph.node]


def manifest(name, spec):
    """Return the manifest of one model as a dict in the bms key order."""
    shape = list(spec["shape"])
    desc = ("Fashion-MNIST clothing classifier, %s. Input \"image\": "
            "float32 %s in %s order, one grayscale picture whose pixels "
            "are the bytes divided by 255 (range [0, 1], no other "
            "normalization). Output \"label\": 10 logits, the class is "
            "their argmax." % (spec["kind"], "x".join(map(str, shape)),
                               spec["order"]))
    return {
        "name": name,
        "version": "1.0",
        "description": desc,
        "license": "MIT",
        "inputs": [{"type": "float", "name": "image", "size": shape,
                    "order": spec["order"]}],
        "outputs": [{"type": "int", "name": "label", "classes": CLASSES}],
        "dependencies": [{"library": "torch==1.13.1", "package": "",
                          "script": "tools/train_fashion.py"}],
        # Two instances of one kernel thread each: for models this small
        # two requests running side by side on their own sessions beat
        # one session of two threads and a hand-off to its worker.
        "scheduling": {"instances": 2},
    }


def write_text(path, text):
    """Write text with Unix newlines, replacing the file."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def make_model(name, data, out_dir):
    """Train, export and describe one model under out_dir/name."""
    spec = MODELS[name]
    train_x, train_y, test_x, test_y = data
    shape = (-1,) + spec["shape"]
    folder = os.path.join(out_dir, name)

    print("%s: training %d epochs" % (name, spec["epochs"]), flush=True)
    started = time.monotonic()
    seed_everything(SEED)
    model = train(spec["build"](), train_x.reshape(shape), train_y,
                  spec["epochs"], SEED)
    seconds = time.monotonic() - started

    ops = export(model, spec, os.path.join(folder, "1", "model.onnx"))
    predicted = predict(model, test_x.reshape(shape))
    accuracy = float(np.mean(predicted == test_y))

    write_text(os.path.join(folder, "config.json"),
               json.dumps(manifest(name, spec), indent=2) + "\n")
    write_text(os.path.join(folder, "reference.txt"),
               "".join("%d\n" % p for p in predicted))
    write_text(os.path.join(folder, "accuracy.txt"),
               "test_accuracy=%.4f\n" % accuracy)
    print("%s: trained in %.1f s, opset %d, ops %s"
          % (name, seconds, spec["opset"], " ".join(ops)))
    print("%s: test_accuracy=%.4f" % (name, accuracy), flush=True)


def main():
    """Parse the options and build the chosen models."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO_DIR, "models"),
                        help="folder to write the models into")
    parser.add_argument("--model", choices=sorted(MODELS), action="append",
                        help="build only this model (repeatable)")
    args = parser.parse_args()

    data = load_split("train") + load_split("t10k")
    for name in args.model or ["fashion_mlp", "fashion_cnn"]:
        make_model(name, data, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
