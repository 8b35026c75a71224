"""A structured mutation of the ONNX node tests: every small model of the
suite with one input dim set to 0 (or 1), each run once through the fuzz
target.  Random byte mutation rarely keeps a model valid while changing
one dim, and empty or broadcast dims are where kernels size their
scratch memory wrong.

    make fuzz
    /usr/bin/python3 tests/fuzz/sweep_dims.py [--dim 0|1] [--out DIR]

Prints each variant the target fails on, with the sanitizer's summary
line, and the count.  Variants go to build/fuzz/sweep-<dim>/ unless --out
says otherwise; copy one that fails into tests/data/fuzz-regress/.
"""
import argparse
import glob
import os
import subprocess

import onnx

ROOT = os.path.normpath(os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
NODE_DIR = "/usr/share/libonnx-testdata/data/node"
TARGET = os.path.join(ROOT, "build", "fuzz", "fuzz-onnx")
MAX_MODEL_SIZE = 8192         # bytes
MAX_INPUTS = 2                # inputs varied per model


def variants(path, value):
    """Yield (suffix, model bytes) with one input dim set to value."""
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    for k, vi in enumerate(inputs[:MAX_INPUTS]):
        for d in range(len(vi.type.tensor_type.shape.dim)):
            m = onnx.ModelProto()
            m.CopyFrom(model)
            dim = [i for i in m.graph.input
                   if i.name == vi.name][0].type.tensor_type.shape.dim[d]
            if dim.HasField("dim_value") and dim.dim_value == value:
                continue
            dim.ClearField("dim_param")
            dim.dim_value = value
            yield "in%d_d%d" % (k, d), m.SerializeToString()


def run(path):
    """The target's summary line for path, or None when it ran clean."""
    try:
        p = subprocess.run([TARGET, "-rss_limit_mb=2048", path],
                           capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "timeout"
    if p.returncode == 0:
        return None
    for line in p.stderr.splitlines():
        if line.startswith("SUMMARY:"):
            return line
    return "exit %d" % p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args()
    out = args.out or os.path.join(ROOT, "build", "fuzz",
                                   "sweep-%d" % args.dim)
    os.makedirs(out, exist_ok=True)
    n_run = n_bad = 0
    for path in sorted(glob.glob(os.path.join(NODE_DIR, "*",
                                              "model.onnx"))):
        name = path.split(os.sep)[-2]
        if "_expanded" in name or os.path.getsize(path) > MAX_MODEL_SIZE:
            continue
        try:
            cases = list(variants(path, args.dim))
        except Exception:             # a model onnx itself cannot read
            continue
        for suffix, data in cases:
            file = os.path.join(out, "%s_%s.onnx" % (name, suffix))
            with open(file, "wb") as f:
                f.write(data)
            n_run += 1
            what = run(file)
            if what is not None:
                n_bad += 1
                print("%s: %s" % (file, what))
    print("sweep: %d variants, %d failed" % (n_run, n_bad))


if __name__ == "__main__":
    main()
