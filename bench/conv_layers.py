#!/usr/bin/env python3
"""Lists the Conv layers of an ONNX model, one line each, for bench_conv_layers.

The convolution-only figure that bench/precision_cpu.sh sets next to the whole
network needs each Conv's geometry at the benchmarked batch, and nothing else of
the model, so the C side stays a plain oneDNN harness with no ONNX parser.

usage: bench/conv_layers.py --model M.onnx --batch N --out layers.txt

Each line: name N C H W OC KH KW SH SW PT PL PB PR DH DW G relu
(relu=1 when the Conv's output feeds a Relu and nothing else, possibly through
a BatchNormalization that folds into it; the server fuses that Relu as a
post-op, so the layer is timed with it.)
"""
import argparse
import math
import sys

import onnx
from onnx import shape_inference


def fail(msg):
    print(f"conv_layers: {msg}", file=sys.stderr)
    sys.exit(1)


def attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def shape_of(value_info):
    dims = value_info.type.tensor_type.shape.dim
    if not dims or any(not d.HasField("dim_value") for d in dims):
        return None
    return [d.dim_value for d in dims]


def pads_for(node, in_hw, k, s, d):
    """Explicit pads [top, left, bottom, right] whatever auto_pad says."""
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        p = list(attr(node, "pads", [0, 0, 0, 0]))
        if len(p) != 4:
            fail(f"{node.name}: pads {p} are not 2-D")
        return p
    if auto_pad == "VALID":
        return [0, 0, 0, 0]
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        fail(f"{node.name}: auto_pad '{auto_pad}' is not known")
    # SAME keeps ceil(in / stride) outputs; the odd pixel of padding goes to the
    # end for SAME_UPPER and to the start for SAME_LOWER.
    begin, end = [], []
    for i in range(2):
        out = math.ceil(in_hw[i] / s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i])
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return [begin[0], begin[1], end[0], end[1]]


def only_consumer(value, consumers, graph_outputs):
    users = consumers.get(value, [])
    return users[0] if len(users) == 1 and value not in graph_outputs else None


def feeds_only_relu(value, consumers, graph_outputs):
    """True when the Conv's output reaches a Relu and nothing else.

    A BatchNormalization in between (the zoo's exported ResNet-50 keeps them)
    is folded into the Conv's weights and bias at inference, so it is looked
    through: the server runs Conv+BN+Relu as one convolution with a ReLU post-op.
    """
    user = only_consumer(value, consumers, graph_outputs)
    if user is not None and user.op_type == "BatchNormalization":
        user = only_consumer(user.output[0], consumers, graph_outputs)
    return user is not None and user.op_type == "Relu"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.batch < 1:
        fail(f"--batch must be at least 1, not {args.batch}")

    try:
        model = onnx.load(args.model)
    except Exception as e:  # onnx raises several kinds for a bad file
        fail(f"cannot load '{args.model}': {e}")
    g = model.graph
    initializers = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    if not inputs:
        fail(f"'{args.model}' has no graph input")
    # Only the batch is left free in the zoo models; pinning it lets shape
    # inference give every Conv a concrete input.
    first = inputs[0].type.tensor_type.shape.dim
    if not first:
        fail(f"input '{inputs[0].name}' has no shape")
    first[0].ClearField("dim_param")
    first[0].dim_value = args.batch
    model = shape_inference.infer_shapes(model)
    g = model.graph

    shapes = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = shape_of(vi)
        if s:
            shapes[vi.name] = s
    for t in g.initializer:
        shapes[t.name] = list(t.dims)
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    graph_outputs = {o.name for o in g.output}
    lines = []
    for idx, n in enumerate(g.node):
        if n.op_type != "Conv":
            continue
        name = n.name or f"conv{idx}"
        x, w = shapes.get(n.input[0]), shapes.get(n.input[1])
        if not x or len(x) != 4 or not w or len(w) != 4:
            fail(f"{name}: input or weight shape is unknown or not 4-D ({x}, {w})")
        groups = attr(n, "group", 1)
        k = list(attr(n, "kernel_shape", w[2:]))
        s = list(attr(n, "strides", [1, 1]))
        d = list(attr(n, "dilations", [1, 1]))
        p = pads_for(n, x[2:], k, s, d)
        relu = int(feeds_only_relu(n.output[0], consumers, graph_outputs))
        fields = [x[0], x[1], x[2], x[3], w[0], k[0], k[1], s[0], s[1], *p, d[0], d[1], groups, relu]
        lines.append(" ".join([name.replace(" ", "_")] + [str(v) for v in fields]))
    if not lines:
        fail(f"'{args.model}' has no Conv node")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"conv_layers: {len(lines)} Conv layers at batch {args.batch} -> {args.out}")


if __name__ == "__main__":
    main()
