#!/usr/bin/python3
"""Write the two large models the engine benchmark runs (bench/engine.sh).

    bench/models/resnet18.onnx     ResNet-18, image [N,3,224,224] -> [N,1000]
    bench/models/bert_small.onnx   BERT-style encoder, token ids [N,128]
                                   -> last_hidden_state [N,128,256],
                                      pooler_output [N,256]

Both are defined here (no torchvision), initialised from a fixed seed and
exported in eval mode at opset 17 with the batch dimension dynamic, so two
runs write the same weights.  The weights are random: the benchmark
measures speed and agreement between engines, not accuracy.

    /usr/bin/python3 tools/make_bench_models.py [--out DIR] [--force]
"""
import argparse
import math
import os
import sys

import torch
from torch import nn

SEED = 20240917
OPSET = 17
SEQ_LEN = 128


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut, as in the ResNet paper."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                nn.BatchNorm2d(c_out))

    def forward(self, x):
        shortcut = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class ResNet18(nn.Module):
    """The 18-layer ResNet: a 7x7 stem, four stages of two blocks each,
    global average pooling and a 1000-way classifier."""

    def __init__(self, n_classes=1000):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
            nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        stages = []
        c_in = 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(BasicBlock(c_in, c_out, stride))
            stages.append(BasicBlock(c_out, c_out, 1))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, n_classes)

    def forward(self, x):
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def init_resnet(model, gen):
    """He initialisation for the convolutions; batch-norm statistics drawn
    near their trained ranges so that folding them into the convolutions
    is not a no-op."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out),
                                 generator=gen)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.0, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, without a mask."""

    def __init__(self, hidden, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.head_size = hidden // n_heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def split_heads(self, x):
        n, s, _ = x.shape
        x = x.view(n, s, self.n_heads, self.head_size)
        return x.permute(0, 2, 1, 3)

    def forward(self, x):
        n, s, h = x.shape
        q = self.split_heads(self.query(x))
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2))
        scores = scores / math.sqrt(self.head_size)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v)
        ctx = ctx.permute(0, 2, 1, 3).reshape(n, s, h)
        return self.out(ctx)


class EncoderLayer(nn.Module):
    """Post-norm transformer layer as in BERT: attention, add and norm,
    feed-forward with GELU, add and norm."""

    def __init__(self, hidden, n_heads, ffn):
        super().__init__()
        self.attn = SelfAttention(hidden, n_heads)
        self.norm1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.gelu = nn.GELU()
        self.ffn_out = nn.Linear(ffn, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.ffn_out(self.gelu(self.ffn_in(x))))


class BertSmall(nn.Module):
    """Token, position and segment embeddings, four encoder layers and the
    tanh pooler over the first token."""

    def __init__(self, vocab=30522, hidden=256, n_layers=4, n_heads=4,
                 ffn=1024, max_pos=512):
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        self.positions = nn.Embedding(max_pos, hidden)
        self.segments = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(
            [EncoderLayer(hidden, n_heads, ffn) for _ in range(n_layers)])
        self.pool = nn.Linear(hidden, hidden)
        self.register_buffer("position_ids",
                             torch.arange(SEQ_LEN).unsqueeze(0))

    def forward(self, input_ids):
        x = self.tokens(input_ids) + self.positions(self.position_ids)
        x = self.norm(x + self.segments.weight[0])
        for layer in self.layers:
            x = layer(x)
        pooled = torch.tanh(self.pool(x[:, 0]))
        return x, pooled


def init_bert(model, gen):
    """BERT's initialisation: normal(0, 0.02) weights, zero biases,
    LayerNorm at identity."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            with torch.no_grad():
                m.weight.normal_(0.0, 0.02, generator=gen)
                if getattr(m, "bias", None) is not None:
                    m.bias.zero_()


def export(model, example, path, input_names, output_names):
    axes = {name: {0: "N"} for name in input_names + output_names}
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, example, path, opset_version=OPSET,
                          input_names=input_names,
                          output_names=output_names,
                          dynamic_axes=axes, do_constant_folding=True)
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--out", default=os.path.join(root, "bench",
                                                      "models"))
    parser.add_argument("--force", action="store_true",
                        help="rewrite models that already exist")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(SEED)

    path = os.path.join(args.out, "resnet18.onnx")
    if args.force or not os.path.exists(path):
        gen = torch.Generator().manual_seed(SEED)
        model = ResNet18()
        init_resnet(model, gen)
        example = torch.rand(1, 3, 224, 224, generator=gen)
        export(model, (example,), path, ["image"], ["logits"])

    path = os.path.join(args.out, "bert_small.onnx")
    if args.force or not os.path.exists(path):
        gen = torch.Generator().manual_seed(SEED + 1)
        model = BertSmall()
        init_bert(model, gen)
        example = torch.randint(0, 100, (1, SEQ_LEN), generator=gen)
        export(model, (example,), path, ["input_ids"],
               ["last_hidden_state", "pooler_output"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
