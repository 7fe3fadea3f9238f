"""inferd from Python: the engine (Plan, Context) and the in-process server
(Server) of libinferd.so, through ctypes and NumPy.

    import inferd, numpy as np
    with inferd.Plan("model.onnx") as plan, plan.create_context() as ctx:
        y = ctx.run({"input": np.zeros((1, 3, 224, 224), np.float32)})["output"]

The library is found through INFERD_LIBRARY (a path to libinferd.so), else
next to this package, else in the build folder of the checkout this package
lies in, else by ctypes.util.find_library("inferd"). See docs/python.md.
"""
import ctypes

from . import _library
from ._errors import InferdError
from ._library import LibraryNotFound
from ._types import bf16_to_float32, float32_to_bf16
from .engine import Context, ModelInfo, Plan, TensorSpec, inspect
from .server import InferFuture, InferResult, Server

__all__ = ["Context", "InferFuture", "InferResult", "InferdError", "LibraryNotFound", "ModelInfo", "Plan", "Server",
           "TensorSpec", "api_version", "bf16_to_float32", "build_info", "device_count", "device_describe",
           "float32_to_bf16", "inspect", "library_path", "set_log_handler", "set_log_level", "version"]

__version__ = "0.1.0"

_lib = _library.lib

#: Where the loaded libinferd.so was found.
library_path = _library.path


def version() -> str:
    """The library's version string, e.g. "0.1.0"."""
    return _lib.inferd_version().decode()


def api_version() -> tuple:
    """The library's C API version as (major, minor)."""
    return _library.api


def build_info() -> str:
    """Version, CPU kernels and instruction set, CUDA runtime and GPUs found."""
    return _lib.inferd_build_info().decode()


def device_count(kind: str = "cpu") -> int:
    """Devices of `kind` ("cpu" or "cuda") this build can use now."""
    kinds = {"cpu": 0, "cuda": 1}
    if kind not in kinds:
        raise InferdError("INVALID_ARG", f"device kind {kind!r} is not 'cpu' or 'cuda'")
    return _lib.inferd_device_count(kinds[kind])


def device_describe(device="cpu") -> str:
    """One line about a device ("cpu", "cuda:N")."""
    from .engine import parse_device
    d = parse_device(device)
    size = _lib.inferd_device_describe(d, None, 0) + 1
    buf = ctypes.create_string_buffer(size)
    _lib.inferd_device_describe(d, buf, size)
    return buf.value.decode(errors="replace")


LOG_LEVELS = {"error": 0, "warn": 1, "info": 2, "verbose": 3}


def set_log_level(level):
    """Drops log lines above `level` ("error", "warn", "info" (the default),
    "verbose", or 0-3). Process-wide: set it before making servers or plans."""
    if isinstance(level, str):
        if level.lower() not in LOG_LEVELS:
            raise InferdError("INVALID_ARG", f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
        level = LOG_LEVELS[level.lower()]
    _lib.inferd_log_set_level(int(level))


# Every sink handed to the library, kept for the life of the process: a
# thread may still be inside one the library has just been told to forget.
_log_sinks = []


def set_log_handler(handler):
    """Sends the library's log lines to handler(level_name, message) instead
    of stderr (None: stderr again). The handler runs on whatever thread logs,
    a server's included; it must not call inferd. Process-wide; set it
    before making servers or plans."""
    if handler is None:
        _lib.inferd_log_set_sink(_library.LOG_FN(), None)
        return
    names = {v: k for k, v in LOG_LEVELS.items()}

    def sink(level, message, userp):
        try:
            handler(names.get(level, str(level)), message.decode(errors="replace") if message else "")
        except Exception:  # an exception cannot cross into C
            pass

    if not _log_sinks:
        import atexit
        # Lines logged while the interpreter ends go to stderr again.
        atexit.register(set_log_handler, None)
    _log_sinks.append(_library.LOG_FN(sink))
    _lib.inferd_log_set_sink(_log_sinks[-1], None)
