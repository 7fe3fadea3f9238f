"""What the reduced-precision tests share: a one-convolution model, the
calibration and `inferd run` helpers, and crops of the real photos."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper, save


def one_conv_model(path, relu_first):
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")]
    nodes = []
    src = "x"
    if relu_first:
        nodes.append(helper.make_node("Relu", ["x"], ["r"]))
        src = "r"
    nodes.append(helper.make_node("Conv", [src, "w", "b"], ["y"], pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "int8", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 12, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16, 12, 12])], inits)
    return save_model(graph, path)


def save_model(graph, path):
    """Writes `graph` as an opset-13 ONNX model at path and returns path."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    save(model, str(path))
    return path


def calibrate(run_inferd, model, batches, where, method="max"):
    """The calibration cache of `model` from the arrays in `batches`."""
    data = where / "cal"
    data.mkdir()
    for k, b in enumerate(batches):
        np.save(data / f"b{k}.npy", b)
    cache = where / "cal.cache"
    run_inferd("calibrate", "--model", model, "--data", data, "--output", cache, "--method", method, check=True)
    return cache


def rel_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def run_model(run_inferd, model, x, out, *extra):
    np.save(out.parent / f"{out.name}-x.npy", x)
    run_inferd("run", "--model", model, "--input", f"{model_input(model)}={out.parent / f'{out.name}-x.npy'}",
               "--output-dir", out, "--threads", "2", *extra, check=True)
    files = sorted(p for p in out.glob("*.npy") if not p.name.startswith("input_"))
    return np.load(files[0])


def model_input(model):
    import onnx
    return onnx.load(str(model), load_external_data=False).graph.input[0].name


def photo_crops(real_model, names, per_photo, seed):
    """Square crops (35-100% of the shorter side) with random flips of real
    photos, resized to the model's size and normalized as it wants."""
    from PIL import Image
    info = real_model.info
    size = info["image_size"]
    mean, std = np.array(info["mean"], np.float32), np.array(info["std"], np.float32)
    rng = np.random.default_rng(seed)
    out = []
    for name in names:
        with Image.open(real_model.images[name]) as im:
            im = im.convert("RGB")
            w, h = im.size
            for _ in range(per_photo):
                s = rng.uniform(0.35, 1.0) * min(w, h)
                x0, y0 = rng.uniform(0, w - s), rng.uniform(0, h - s)
                c = im.crop((int(x0), int(y0), int(x0 + s), int(y0 + s))).resize((size, size), Image.BILINEAR)
                if rng.random() < 0.5:
                    c = c.transpose(Image.FLIP_LEFT_RIGHT)
                out.append(((np.asarray(c, np.float32) - mean) / std).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


CALIBRATION_PHOTOS = ["chelsea", "coffee", "rocket"]
EVALUATION_PHOTOS = ["astronaut", "china", "flower", "motorcycle_left"]


def int8_config(name, cache=None, keep=None, precision="int8"):
    params = f'parameters {{ key: "precision" value: "{precision}" }}'
    if cache:
        params += f' parameters {{ key: "calibration_cache" value: "{cache}" }}'
    if keep:
        params += f' parameters {{ key: "int8_keep" value: "{keep}" }}'
    return (f'name: "{name}"\nmax_batch_size: 4\n'
            'input [ { name: "x" data_type: TYPE_FP32 dims: [ 8, 12, 12 ] } ]\n'
            'output [ { name: "y" data_type: TYPE_FP32 dims: [ 16, 12, 12 ] } ]\n'
            'optimization { execution_accelerators { cpu_execution_accelerator [\n'
            f'  {{ name: "inferd" {params} }} ] }} }}\n')
