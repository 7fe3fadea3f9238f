#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are small valid (and a few nearly valid) inputs taken from what the
unit and integration tests send: inference request bodies, HTTP request
streams, ModelInferRequest messages, config.pbtxt files, ONNX models built
with onnx.helper, .npy files. Each file's name says what it holds; inputs
that once crashed a target are kept beside them as regress-*, and inputs a
long run found that add coverage as the SHA-1 names libFuzzer's -merge=1 gives
them (bench/results/fuzz.md); this script leaves both alone. Run it again
after changing a seed; the output is deterministic (protobuf messages are
written with their map fields in key order).

Needs numpy, onnx and tritonclient[grpc] (scripts/requirements.txt).
"""
import gzip
import io
import json
import pathlib
import re
import struct
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import service_pb2 as pb

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def c_string(source, name):
    """The value of `static const char name[] = "..." "...";` in a C file."""
    text = (ROOT / source).read_text()
    m = re.search(r"\b" + name + r"\[\]\s*=\s*(.*?);\n", text, re.S)
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))
    return "".join(bytes(p, "utf-8").decode("unicode_escape") for p in parts)


# ---- HTTP inference bodies: 3 bytes (header mode, 16-bit length) + body ----

def http_infer():
    def seed(name, body, header=None):
        if isinstance(body, str):
            body = body.encode()
        if header is None:
            prefix = b"\x00\x00\x00"
        else:
            prefix = bytes([1, header & 0xFF, header >> 8])
        write("http_infer", name, prefix + body)

    seed("fp32.json", json.dumps({"id": "r1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3],
                                                         "data": [[1, 2.5, -3e-2], [1e10, 0, -0.0]]}],
                                  "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}))
    seed("types.json", json.dumps({"inputs": [
        {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        {"name": "i8", "datatype": "INT8", "shape": [2], "data": [-128, 127]},
        {"name": "u64", "datatype": "UINT64", "shape": [1], "data": [18446744073709551615]},
        {"name": "h", "datatype": "FP16", "shape": [3], "data": [65504, 6e-8, "NaN"]},
        {"name": "bf", "datatype": "BF16", "shape": [1], "data": [1.5]},
        {"name": "d", "datatype": "FP64", "shape": [2], "data": [5e-324, 1.7976931348623157e308]},
        {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["abc", "\u00e9\\\""]}],
        "parameters": {"priority": 1, "timeout": 1000, "binary_data_output": False}}))
    seed("nonfinite.json", '{"inputs":[{"name":"x","datatype":"FP32","shape":[3],"data":[NaN,Infinity,-Infinity]}]}')
    seed("shm.json", json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "parameters": {
        "shared_memory_region": "r", "shared_memory_byte_size": 16, "shared_memory_offset": 0}}],
        "outputs": [{"name": "y", "parameters": {"shared_memory_region": "o", "shared_memory_byte_size": 16,
                                                 "classification": 3}}]}))
    seed("escaped-key.json", '{"inputs":[{"name":"x","datatype":"INT32","shape":[2],"d\\u0061ta":[1,2]}]}')
    # Regressions of issue 11 (scanner span array, exponent table).
    seed("nine-non-objects.json", '{"inputs":[0,0,0,0,0,0,0,0,0,{}]}')
    seed("tiny-exponent.json", '{"inputs":[{"name":"x","datatype":"FP64","shape":[1],"data":[5e-648]}]}')
    # Triton's JSON depth limit (100): data arrays just within and just past it.
    for name, levels in (("depth-100.json", 97), ("depth-101.json", 98)):
        seed(name, '{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":' + "[" * levels + "1" +
             "]" * levels + "}]}")
    head = json.dumps({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 7}},
        {"name": "y", "datatype": "INT16", "shape": [1], "parameters": {"binary_data_size": 2}}],
        "outputs": [{"name": "z"}], "parameters": {"binary_data_output": True}}).encode()
    binary = struct.pack("<2f", 1.0, 2.0) + struct.pack("<I", 3) + b"abc" + struct.pack("<h", -1)
    seed("binary.bin", head + binary, header=len(head))
    seed("binary-misaligned.bin", b" " + head + binary, header=len(head) + 1)
    write("http_infer", "header-text.bin", b"\x02 9" + b'{"inputs":[]}')


def http_inflate():
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [64], "data": [0.5] * 64}]}).encode()
    write("http_inflate", "gzip.bin", bytes([1 | (20 << 1)]) + gzip.compress(body, mtime=0))
    write("http_inflate", "zlib.bin", bytes([0 | (20 << 1)]) + zlib.compress(body))
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    write("http_inflate", "raw-deflate.bin", bytes([0 | (20 << 1)]) + raw.compress(body) + raw.flush())
    write("http_inflate", "gzip-two-members.bin", bytes([1 | (20 << 1)]) + gzip.compress(b"ab", mtime=0) * 2)
    write("http_inflate", "bomb.bin", bytes([1 | (10 << 1)]) + gzip.compress(b"\0" * 100000, mtime=0))
    write("http_inflate", "truncated.bin", bytes([0 | (20 << 1)]) + zlib.compress(body)[:-7])


# ---- HTTP byte streams: limits byte, chunking seed, then the client's bytes ----

def http_guard():
    def seed(name, stream, limits=2 + 5 * 2 + 15 * 2, chunking=7):
        write("http_guard", name, bytes([limits, chunking]) + stream.encode())

    infer = '{"inputs":[]}'
    seed("post.txt", "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(infer), infer)
         + "GET /v2/health/ready HTTP/1.1\r\n\r\n")
    seed("chunked.txt", "POST /v2/models/m/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n3 ext\r\nabc\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    seed("two-lengths.txt", "POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
    seed("length-and-chunked.txt", "POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
    seed("long-length.txt", "POST /a HTTP/1.1\r\nContent-Length: 00000000000000000000001\r\n\r\n")
    seed("body-over-limit.txt", "POST /a HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + "x" * 200 + "GET / HTTP/1.1\r\n\r\n",
         limits=1 + 5 * 1 + 15 * 1)
    seed("many-headers.txt", "GET / HTTP/1.1\r\n" + "".join("H%d: v\r\n" % i for i in range(8)) + "\r\n",
         limits=2 + 5 * 1 + 15 * 0)
    seed("bare-lf.txt", "HEAD / HTTP/1.1\nContent-Length: 3\nInferd-Refused: 400 close x\n\nGET / HTTP/1.0\n\n")
    seed("gzip-te.txt", "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")


def http_shm():
    write("http_shm", "system.json", b"\x00" + json.dumps({"key": "/inferd_shm", "offset": 0, "byte_size": 64}).encode())
    handle = "QUJD" * 21 + "RA=="  # 64 bytes, base64
    write("http_shm", "cuda.json", b"\x01" + json.dumps({"raw_handle": {"b64": handle}, "device_id": 0,
                                                         "byte_size": 1024}).encode())
    write("http_shm", "system-no-offset.json", b'\x00{"key":"k","byte_size":1}')


# ---- HTTP request targets (http_route) ----

def http_route():
    targets = {
        "server.txt": "/v2",
        "health.txt": "/v2/health/ready",
        "model.txt": "/v2/models/simple",
        "infer-version.txt": "/v2/models/res%2Fnet/versions/3/infer?timeout=1#f",
        "config.txt": "//v2//models/m%00x/config",
        "stats.txt": "/v2/models/stats",
        "bad-version.txt": "/v2/models/m/versions/-1/ready",
        "load.txt": "/v2/repository/models/..%2f..%2fetc/load",
        "index.txt": "http://host:8000/v2/repository/index?ready=1",
        "shm-register.txt": "/v2/systemsharedmemory/region/r%20%zz/register",
        "shm-status.txt": "/v2/cudasharedmemory/status",
        "too-many.txt": "/v2/models/m/versions/1/a/b/c/d/e/f",
    }
    for name, target in targets.items():
        write("http_route", name, target)


# ---- gRPC: mode byte, then the message or the stream ----

def grpc_infer():
    def infer_request(raw):
        r = pb.ModelInferRequest(model_name="m", model_version="1", id="req")
        r.parameters["priority"].uint64_param = 1
        r.parameters["timeout"].int64_param = 100
        r.parameters["binary_data_output"].bool_param = True
        x = r.inputs.add(name="x", datatype="FP32", shape=[2, 2])
        s = r.inputs.add(name="s", datatype="BYTES", shape=[2])
        if raw:
            r.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
            r.raw_input_contents.append(struct.pack("<I", 1) + b"a" + struct.pack("<I", 0))
        else:
            x.contents.fp32_contents.extend([1, 2, 3, 4])
            s.contents.bytes_contents.extend([b"a", b""])
        o = r.outputs.add(name="y")
        o.parameters["binary_data"].bool_param = False
        o.parameters["classification"].int64_param = 2
        return r.SerializeToString(deterministic=True)

    def typed_request():
        r = pb.ModelInferRequest(model_name="m")
        for name, dt, field, values in [("b", "BOOL", "bool_contents", [True, False]),
                                        ("i8", "INT8", "int_contents", [-128, 127]),
                                        ("u16", "UINT16", "uint_contents", [65535]),
                                        ("i64", "INT64", "int64_contents", [-1]),
                                        ("u64", "UINT64", "uint64_contents", [2 ** 64 - 1]),
                                        ("h", "FP16", "fp32_contents", [1.5]),
                                        ("d", "FP64", "fp64_contents", [2.5])]:
            t = r.inputs.add(name=name, datatype=dt, shape=[len(values)])
            getattr(t.contents, field).extend(values)
        t = r.inputs.add(name="empty", datatype="FP32", shape=[0])
        t = r.inputs.add(name="shm", datatype="FP32", shape=[4])
        t.parameters["shared_memory_region"].string_param = "r"
        t.parameters["shared_memory_byte_size"].int64_param = 16
        t.parameters["shared_memory_offset"].int64_param = 0
        return r.SerializeToString(deterministic=True)

    def frame(msg, compressed=False):
        return bytes([1 if compressed else 0]) + struct.pack(">I", len(msg)) + msg

    raw, typed, mixed = infer_request(True), typed_request(), infer_request(False)
    write("grpc_infer", "raw.pb", b"\x00" + raw)
    write("grpc_infer", "typed.pb", b"\x00" + typed)
    write("grpc_infer", "contents.pb", b"\x01" + mixed)
    # Stream: setting bits: encoding (2 bits), limit index (2 bits).
    write("grpc_infer", "stream.bin", bytes([2 | (0 << 2) | (2 << 4)]) + frame(raw) + frame(typed) + frame(mixed)[:9])
    write("grpc_infer", "stream-gzip.bin", bytes([2 | (1 << 2) | (2 << 4)]) + frame(gzip.compress(raw, mtime=0), True)
          + frame(typed))
    write("grpc_infer", "stream-deflate.bin", bytes([2 | (2 << 2) | (2 << 4)]) + frame(zlib.compress(mixed), True))
    write("grpc_infer", "stream-over-limit.bin", bytes([2 | (0 << 2) | (0 << 4)]) + frame(raw))
    others = [
        (2, pb.ModelReadyRequest(name="m", version="1")),
        (8, pb.RepositoryModelLoadRequest(model_name="m", parameters={
            "config": pb.ModelRepositoryParameter(string_param='{"max_batch_size": 8}')})),
        (11, pb.SystemSharedMemoryRegisterRequest(name="r", key="/k", offset=0, byte_size=64)),
        (14, pb.CudaSharedMemoryRegisterRequest(name="c", raw_handle=b"\1" * 64, device_id=0, byte_size=64)),
        (6, pb.ModelStatisticsRequest(name="m", version="")),
    ]
    for index, m in others:
        write("grpc_infer", "message-%02d.pb" % index, bytes([3 | (index << 2)]) + m.SerializeToString(deterministic=True))


# ---- gRPC call input: settings byte, cut points, then the DATA (grpc_frame) ----

def grpc_frame():
    def frame(msg, compressed=False):
        return bytes([1 if compressed else 0]) + struct.pack(">I", len(msg)) + msg

    def seed(name, data, encoding=0, limit=2, unary=False, cuts=()):
        settings = encoding | (limit << 2) | (16 if unary else 0)
        write("grpc_frame", name, bytes([settings, len(cuts)]) + b"".join(struct.pack("<H", c) for c in cuts) + data)

    body = bytes(range(40))
    three = frame(b"first") + frame(b"") + frame(body)
    seed("stream-three.bin", three + frame(b"cut short")[:7], cuts=(2, 5, 9, 12, 13, 30))
    seed("stream-gzip.bin", frame(gzip.compress(body * 4, mtime=0), True) + frame(b"plain"), encoding=1, cuts=(3, 40))
    seed("stream-deflate.bin", frame(zlib.compress(body), True) * 2, encoding=2, cuts=(4,))
    seed("stream-over-limit.bin", frame(b"ok") + frame(body), limit=1, cuts=(1, 8, 10))
    seed("stream-bad-flag.bin", frame(b"ok") + b"\x02" + struct.pack(">I", 1) + b"x", cuts=(6,))
    seed("stream-compressed-identity.bin", frame(zlib.compress(body), True), encoding=0, cuts=(5,))
    seed("unary.bin", frame(body), unary=True, cuts=(1, 5, 6))
    seed("unary-two.bin", frame(b"one") + frame(b"two"), unary=True, cuts=(8, 9))
    seed("unary-cut-short.bin", frame(body)[:20], unary=True, cuts=(4,))
    seed("unary-gzip.bin", frame(gzip.compress(body, mtime=0), True), encoding=1, unary=True, cuts=(2, 10))
    seed("unary-bomb.bin", frame(zlib.compress(b"\0" * 10000), True), encoding=2, limit=2, unary=True)


# ---- configurations: form byte, then the text ----

def model_config():
    resnet = c_string("tests/unit/server/config_test_util.h", "resnet50_config")
    unknown = c_string("tests/unit/server/test_model_config_fuzz.c", "unknown_sections")
    write("model_config", "resnet50.pbtxt", b"\x00" + resnet.encode())
    write("model_config", "unknown-sections.pbtxt", b"\x00" + unknown.encode())
    write("model_config", "minimal.pbtxt", b"\x02" + b'name: "m" max_batch_size: 8 input [{name: "input" '
          b'data_type: TYPE_FP32 dims: [3, 224, 224]}] output [{name: "output" data_type: TYPE_FP32 dims: [1, 1000]}, '
          b'{name: "features" data_type: TYPE_FP16 dims: [-1, 2048]}]')
    conf = {"name": "m", "max_batch_size": 16, "backend": "onnxruntime",
            "input": [{"name": "input", "data_type": "TYPE_FP32", "dims": ["3", 224, 224], "format": "FORMAT_NCHW"}],
            "output": [{"name": "output", "data_type": "TYPE_FP32", "dims": [1, 1000],
                        "label_filename": "labels.txt"}],
            "instance_group": [{"kind": "KIND_GPU", "count": 2, "gpus": [0, 1]}, {"kind": "KIND_AUTO"}],
            "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100,
                                 "priority_levels": 2, "default_priority_level": 1,
                                 "priority_queue_policy": {"1": {"timeout_action": "REJECT",
                                                                 "max_queue_size": 4}}},
            "parameters": {"precision": {"string_value": "fp16"}},
            "optimization": {"execution_accelerators": {"gpu_execution_accelerator": [
                {"name": "tensorrt", "parameters": {"precision_mode": "FP16"}}]}},
            "model_warmup": [{"name": "w", "batch_size": 1, "count": 2,
                              "inputs": {"input": {"data_type": "TYPE_FP32", "dims": [3, 224, 224],
                                                   "random_data": True}}}],
            "version_policy": {"latest": {"num_versions": 2}}}
    write("model_config", "override.json", b"\x01" + json.dumps(conf).encode())
    write("model_config", "empty.json", b"\x01{}")


# ---- ONNX models ----

def onnx_models():
    def model(name, nodes, inputs, outputs, inits=(), opset=17):
        g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="inferd-fuzz")
        m.ir_version = 8
        write("onnx_import", name + ".onnx", m.SerializeToString())

    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    W = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    B = numpy_helper.from_array(np.zeros(4, np.float32), "B")
    model("conv_relu_pool", [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"], axis=1)],
        [helper.make_tensor_value_info("x", f32, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", f32, None)], [W, B])
    G = numpy_helper.from_array(rng.standard_normal((4, 5)).astype(np.float32), "G")
    model("gemm_softmax", [
        helper.make_node("Gemm", ["x", "G"], ["h"], alpha=0.5, transB=0),
        helper.make_node("Softmax", ["h"], ["y"], axis=-1)],
        [helper.make_tensor_value_info("x", f32, ["N", 4])],
        [helper.make_tensor_value_info("y", f32, ["N", 5])], [G])
    shape = numpy_helper.from_array(np.array([0, -1], np.int64), "shape")
    model("shape_ops", [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Gather", ["s", "k"], ["d"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["f"]),
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["f", "f"], ["c"], axis=1),
        helper.make_node("Unsqueeze", ["c", "k"], ["u"]),
        helper.make_node("Cast", ["d"], ["y2"], to=f32)],
        [helper.make_tensor_value_info("x", f32, ["N", 2, 3])],
        [helper.make_tensor_value_info("u", f32, None), helper.make_tensor_value_info("t", f32, None),
         helper.make_tensor_value_info("y2", f32, None)], [shape])
    lo = numpy_helper.from_array(np.array(0, np.float32), "lo")
    model("clip_absent_min", [
        helper.make_node("Clip", ["x", "", "lo"], ["y"]),
        helper.make_node("Sub", ["y", "x"], ["z"]),
        helper.make_node("BatchNormalization", ["z", "sc", "bi", "me", "va"], ["b"], epsilon=1e-5)],
        [helper.make_tensor_value_info("x", f32, [1, 2, 2])],
        [helper.make_tensor_value_info("b", f32, None)],
        [lo] + [numpy_helper.from_array(np.ones(2, np.float32), n) for n in ("sc", "bi", "me", "va")])
    model("slice_pad_reduce", [
        helper.make_node("Slice", ["x", "st", "en", "ax"], ["s"]),
        helper.make_node("Pad", ["s", "pads"], ["p"], mode="reflect"),
        helper.make_node("ReduceMean", ["p"], ["y"], axes=[1], keepdims=0)],
        [helper.make_tensor_value_info("x", f32, ["N", 6, 4])],
        [helper.make_tensor_value_info("y", f32, None)],
        [numpy_helper.from_array(np.array([1], np.int64), "st"), numpy_helper.from_array(np.array([5], np.int64), "en"),
         numpy_helper.from_array(np.array([1], np.int64), "ax"),
         numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1], np.int64), "pads")], opset=13)


# ---- .npy files ----

def npy():
    def save(name, array, version=None):
        buf = io.BytesIO()
        if version:
            np.lib.format.write_array(buf, array, version=version)
        else:
            np.save(buf, array)
        write("npy", name, buf.getvalue())

    save("f32.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    save("i64-scalar.npy", np.array(7, dtype=np.int64))
    save("bool.npy", np.array([True, False, True]))
    save("u8-empty.npy", np.zeros((0, 3), dtype=np.uint8))
    save("f16-v2.npy", np.ones((2, 2), dtype=np.float16), version=(2, 0))
    save("fortran.npy", np.asfortranarray(np.ones((2, 3), dtype=np.float64)))
    save("big-endian.npy", np.arange(3, dtype=">i4"))


# ---- INT8 calibration caches ----

def calib_cache():
    head = "# inferd calibration cache v1\n"
    write("calib_cache", "entropy.txt", head + "model sha256:0123abcd\nmethod entropy\ninput\t2.5\nconv 1/out\t0.125\n")
    write("calib_cache", "percentile.txt", head + "model x\r\nmethod percentile 99.99\r\n# note\n\n#hash\t1e-07\n")
    write("calib_cache", "max-no-newline.txt", head + "model m\nmethod max\na\tb\t3")
    write("calib_cache", "bad-threshold.txt", head + "model m\nmethod max\nconv\t-1\n")
    write("calib_cache", "duplicate.txt", head + "model m\nmethod max\nc\t1\nc\t2\n")


if __name__ == "__main__":
    http_infer()
    http_inflate()
    http_guard()
    http_shm()
    http_route()
    grpc_infer()
    grpc_frame()
    model_config()
    onnx_models()
    npy()
    calib_cache()
