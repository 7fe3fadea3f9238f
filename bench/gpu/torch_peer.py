#!/usr/bin/env python3
"""The PyTorch peer of bench/engine_gpu.sh: torchvision's ResNet-50 (the
architecture of `inferd zoo resnet50`) on the same GPU, inputs already on
the device, in eager mode and as CUDA-graph replay, FP16 channels-last and
TF32; optionally torch.compile(mode="max-autotune") with its cache under
--cache. Prints one JSON object per (mode, precision, batch).

With --go FILE, compiled modes compile and warm every batch size first,
then write FILE.ready and wait for FILE to exist before timing: the GPU
run compiles (mostly CPU work) while the other stages run, and times once
the GPU is its own again."""
import argparse
import json
import os
import time

import torch
import torchvision


def timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,8,32,64,128,256")
    ap.add_argument("--precisions", default="fp16,tf32")
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--cache", default="/tmp/torch-cache")
    ap.add_argument("--go", help="compile first, then wait for this file before timing")
    a = ap.parse_args()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", a.cache)
    torch.backends.cudnn.benchmark = True
    for prec in a.precisions.split(","):
        torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
        torch.backends.cudnn.allow_tf32 = prec == "tf32"
        dtype = torch.float16 if prec == "fp16" else torch.float32
        model = torchvision.models.resnet50().eval().cuda().to(dtype).to(memory_format=torch.channels_last)
        for mode in a.modes.split(","):
            fn_model = model
            if mode == "compile":
                fn_model = torch.compile(model, mode="max-autotune", dynamic=False)
            staged = {}
            if mode == "compile" and a.go:
                for batch in [int(b) for b in a.batch.split(",")]:
                    x = torch.rand(batch, 3, 224, 224, device="cuda", dtype=dtype).to(
                        memory_format=torch.channels_last)
                    t0 = time.time()
                    with torch.inference_mode():
                        for _ in range(3):
                            fn_model(x)
                    torch.cuda.synchronize()
                    staged[batch] = (x, time.time() - t0)
                open(a.go + ".ready", "w").close()
                while not os.path.exists(a.go):
                    time.sleep(0.5)
            for batch in [int(b) for b in a.batch.split(",")]:
                x = torch.rand(batch, 3, 224, 224, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
                t0 = time.time()
                if batch in staged:
                    x, compiled_s = staged[batch]
                    t0 -= compiled_s
                with torch.inference_mode():
                    if mode == "graph":
                        static_x = x.clone()
                        s = torch.cuda.Stream()
                        s.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(s):
                            for _ in range(3):
                                model(static_x)
                        torch.cuda.current_stream().wait_stream(s)
                        g = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(g):
                            model(static_x)
                        fn = g.replay
                    else:
                        fn = lambda: fn_model(x)
                    fn()
                    torch.cuda.synchronize()
                    setup_s = time.time() - t0
                    iters = max(5, min(a.iters, int(2000 / batch) + 5))
                    t = timed(fn, iters, 5)
                p50, p99 = t[len(t) // 2], t[min(len(t) - 1, int(len(t) * 0.99))]
                print(json.dumps({"peer": "pytorch " + torch.__version__, "mode": mode, "precision": prec,
                                  "batch": batch, "images_per_sec": batch / (p50 * 1e-3), "latency_ms_p50": p50,
                                  "latency_ms_p99": p99, "setup_s": setup_s, "cudnn": torch.backends.cudnn.version()}),
                      flush=True)


if __name__ == "__main__":
    main()
