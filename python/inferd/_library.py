"""Finding libinferd.so, loading it, and declaring the part of
include/inferd.h this package calls: the structs field for field, and every
function's argument and result types.

The structs mirror the header exactly, in the header's order, so that ctypes
lays them out as the C compiler does (tests/integration/test_python_package.py
compiles the header and compares every offset and size). A struct that grows
in the header must grow here in the same commit.

Handles (inferd_plan *, inferd_server *, ...) travel as c_void_p: the
library's objects are opaque and only ever passed back to it.
"""
import ctypes
import ctypes.util
import os
from pathlib import Path

# The C API this binding was written against (INFERD_API_VERSION_MAJOR and
# _MINOR of include/inferd.h): the library must have the same major and at
# least this minor.
API_MAJOR = 0
API_MINOR = 1

INFERD_MAX_RANK = 8
INFERD_RESPONSE_FINAL = 1
# enum inferd_memory_kind
INFERD_MEMORY_CPU = 0
INFERD_MEMORY_CPU_PINNED = 1

c_int64_p = ctypes.POINTER(ctypes.c_int64)


class Device(ctypes.Structure):
    """inferd_device."""
    _fields_ = [("kind", ctypes.c_int),      # inferd_device_kind
                ("ordinal", ctypes.c_int)]


class PlanOptions(ctypes.Structure):
    """inferd_plan_options."""
    _fields_ = [("backend", ctypes.c_char_p),
                ("max_batch_size", ctypes.c_int),
                ("disabled_passes", ctypes.c_char_p),
                ("threads", ctypes.c_int),
                ("optional_inputs", ctypes.POINTER(ctypes.c_char_p)),
                ("optional_input_count", ctypes.c_int),
                ("device", Device),
                ("precision", ctypes.c_int),  # inferd_precision
                ("tactic_cache", ctypes.c_char_p),
                ("build_all_batch_sizes", ctypes.c_bool),
                ("calibration_outputs", ctypes.c_bool),
                ("calibration_cache", ctypes.c_char_p),
                ("int8_keep", ctypes.c_char_p)]


class TensorInfo(ctypes.Structure):
    """inferd_tensor_info."""
    _fields_ = [("name", ctypes.c_char_p),
                ("datatype", ctypes.c_int),  # inferd_datatype
                ("rank", ctypes.c_int),
                ("dims", ctypes.c_int64 * INFERD_MAX_RANK)]


class ContextOptions(ctypes.Structure):
    """inferd_context_options."""
    _fields_ = [("threads", ctypes.c_int)]


class Tensor(ctypes.Structure):
    """inferd_tensor."""
    _fields_ = [("name", ctypes.c_char_p),
                ("datatype", ctypes.c_int),  # inferd_datatype
                ("rank", ctypes.c_int),
                ("dims", ctypes.c_int64 * INFERD_MAX_RANK),
                ("data", ctypes.c_void_p),
                ("byte_size", ctypes.c_size_t),
                ("memory", ctypes.c_int),    # inferd_memory_kind
                ("memory_id", ctypes.c_int)]


class ProfileEntry(ctypes.Structure):
    """inferd_profile_entry."""
    _fields_ = [("name", ctypes.c_char_p),
                ("kind", ctypes.c_char_p),
                ("milliseconds", ctypes.c_double),
                ("gflop", ctypes.c_double)]


class CudaMemoryPool(ctypes.Structure):
    """inferd_cuda_memory_pool."""
    _fields_ = [("gpu", ctypes.c_int),
                ("byte_size", ctypes.c_uint64)]


class ServerOptions(ctypes.Structure):
    """inferd_server_options."""
    _fields_ = [("model_repository", ctypes.c_char_p),
                ("model_control_mode", ctypes.c_int),  # inferd_model_control_mode
                ("startup_models", ctypes.POINTER(ctypes.c_char_p)),
                ("startup_model_count", ctypes.c_int),
                ("repository_poll_secs", ctypes.c_int),
                ("strict_model_config", ctypes.c_bool),
                ("server_id", ctypes.c_char_p),
                ("threads_per_instance", ctypes.c_int),
                ("latency_summaries", ctypes.c_bool),
                ("cuda_memory_pools", ctypes.POINTER(CudaMemoryPool)),
                ("cuda_memory_pool_count", ctypes.c_int),
                ("pinned_memory_pool_byte_size", ctypes.c_uint64),
                ("min_compute_capability", ctypes.c_double),
                ("max_inflight_bytes", ctypes.c_uint64),
                ("exit_on_error", ctypes.c_bool),
                ("strict_readiness", ctypes.c_bool)]


# Every struct above with its C name, for the layout test.
STRUCTS = {"inferd_device": Device, "inferd_plan_options": PlanOptions, "inferd_tensor_info": TensorInfo,
           "inferd_context_options": ContextOptions, "inferd_tensor": Tensor,
           "inferd_profile_entry": ProfileEntry, "inferd_cuda_memory_pool": CudaMemoryPool,
           "inferd_server_options": ServerOptions}

# void (*inferd_request_release_fn)(inferd_request *, void *userp)
RELEASE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
# void (*inferd_response_fn)(inferd_response *, uint32_t flags, void *userp)
RESPONSE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
# void (*inferd_log_fn)(inferd_log_level, const char *message, void *userp)
LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# inferd_error *(*inferd_output_alloc_fn)(const char *name, size_t byte_size, void *userp, void **buffer,
#                                         inferd_memory_kind *kind, int *memory_id, void **buffer_userp)
OUTPUT_ALLOC_FN = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int),
                                   ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_void_p))
# void (*inferd_output_release_fn)(void *buffer, size_t byte_size, inferd_memory_kind kind, int memory_id,
#                                  void *buffer_userp, void *userp)
OUTPUT_RELEASE_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                     ctypes.c_void_p, ctypes.c_void_p)

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_S = ctypes.c_char_p
_I = ctypes.c_int
_I64 = ctypes.c_int64
_U64 = ctypes.c_uint64
_SZ = ctypes.c_size_t
_B = ctypes.c_bool
_ERR = ctypes.c_void_p  # inferd_error *: NULL (None) is success

# name: (result type, argument types). Declared once here so that no call
# passes a pointer through ctypes' default int conversion (which would cut
# it to 32 bits).
SIGNATURES = {
    # errors
    "inferd_error_create": (_ERR, [_I, _S]),
    "inferd_error_code_of": (_I, [_P]),
    "inferd_error_message": (_S, [_P]),
    "inferd_error_code_name": (_S, [_I]),
    "inferd_error_code_http_status": (_I, [_I]),
    "inferd_error_code_grpc_status": (_I, [_I]),
    "inferd_error_delete": (None, [_P]),
    # data types, devices, precisions
    "inferd_datatype_name": (_S, [_I]),
    "inferd_datatype_from_name": (_I, [_S]),
    "inferd_datatype_size": (_SZ, [_I]),
    "inferd_precision_name": (_S, [_I]),
    "inferd_precision_from_name": (_B, [_S, ctypes.POINTER(ctypes.c_int)]),
    "inferd_device_from_name": (_B, [_S, ctypes.POINTER(Device)]),
    "inferd_device_count": (_I, [_I]),
    "inferd_device_describe": (_SZ, [Device, ctypes.c_char_p, _SZ]),
    # plans
    "inferd_plan_load": (_ERR, [_S, ctypes.POINTER(PlanOptions), _PP]),
    "inferd_plan_delete": (None, [_P]),
    "inferd_plan_input_count": (_I, [_P]),
    "inferd_plan_output_count": (_I, [_P]),
    "inferd_plan_input": (_ERR, [_P, _I, ctypes.POINTER(TensorInfo)]),
    "inferd_plan_output": (_ERR, [_P, _I, ctypes.POINTER(TensorInfo)]),
    "inferd_plan_has_dynamic_batch": (_B, [_P]),
    "inferd_plan_max_batch_size": (_I, [_P]),
    "inferd_plan_input_default": (_B, [_P, _I, _PP, ctypes.POINTER(_SZ)]),
    "inferd_plan_weight_bytes": (_SZ, [_P]),
    "inferd_plan_device": (Device, [_P]),
    "inferd_plan_precision": (_I, [_P]),
    "inferd_plan_backend_name": (_S, [_P]),
    # model inspection
    "inferd_model_inspect": (_ERR, [_S, _PP]),
    "inferd_model_inspect_with_defaults": (_ERR, [_S, ctypes.POINTER(ctypes.c_char_p), _I, _PP]),
    "inferd_model_info_delete": (None, [_P]),
    "inferd_model_info_input_count": (_I, [_P]),
    "inferd_model_info_output_count": (_I, [_P]),
    "inferd_model_info_inputs": (ctypes.POINTER(TensorInfo), [_P]),
    "inferd_model_info_outputs": (ctypes.POINTER(TensorInfo), [_P]),
    "inferd_model_info_has_dynamic_batch": (_B, [_P]),
    # contexts
    "inferd_context_create": (_ERR, [_P, ctypes.POINTER(ContextOptions), _PP]),
    "inferd_context_delete": (None, [_P]),
    "inferd_context_memory_bytes": (_SZ, [_P]),
    "inferd_context_run": (_ERR, [_P, _I, ctypes.POINTER(Tensor), _I, ctypes.POINTER(Tensor), _I]),
    "inferd_context_idle": (None, [_P]),
    "inferd_context_set_profiling": (None, [_P, _B]),
    "inferd_context_profile": (_I, [_P, ctypes.POINTER(ProfileEntry), _I]),
    # library
    "inferd_version": (_S, []),
    "inferd_api_version": (None, [ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]),
    "inferd_log_set_level": (None, [_I]),
    "inferd_log_set_sink": (None, [LOG_FN, _P]),
    "inferd_build_info": (_S, []),
    # server
    "inferd_server_create": (_ERR, [ctypes.POINTER(ServerOptions), _PP]),
    "inferd_server_delete": (None, [_P]),
    "inferd_server_is_live": (_B, [_P]),
    "inferd_server_is_ready": (_B, [_P]),
    "inferd_server_stop_accepting": (None, [_P]),
    "inferd_server_drain": (_I, [_P, _I]),
    "inferd_server_metadata": (_ERR, [_P, _PP]),
    "inferd_server_model_ready": (_ERR, [_P, _S, _I64, ctypes.POINTER(_B)]),
    "inferd_server_model_metadata": (_ERR, [_P, _S, _I64, _PP]),
    "inferd_server_model_config": (_ERR, [_P, _S, _I64, _PP]),
    "inferd_server_model_statistics": (_ERR, [_P, _S, _I64, _PP]),
    "inferd_server_repository_index": (_ERR, [_P, _B, _PP]),
    "inferd_server_load_model": (_ERR, [_P, _S, _S]),
    "inferd_server_unload_model": (_ERR, [_P, _S]),
    "inferd_server_inflight_bytes": (_U64, [_P, ctypes.POINTER(_U64)]),
    # requests and responses
    "inferd_request_create": (_ERR, [_P, _S, _I64, _PP]),
    "inferd_request_delete": (None, [_P]),
    "inferd_request_set_id": (_ERR, [_P, _S]),
    "inferd_request_set_priority": (_ERR, [_P, _U64]),
    "inferd_request_set_timeout_us": (_ERR, [_P, _U64]),
    "inferd_request_add_input": (_ERR, [_P, _S, _I, c_int64_p, _I, _P, _SZ]),
    "inferd_request_add_requested_output": (_ERR, [_P, _S, _I]),
    "inferd_request_set_callbacks": (None, [_P, RELEASE_FN, _P, RESPONSE_FN, _P]),
    "inferd_request_set_output_allocator": (None, [_P, OUTPUT_ALLOC_FN, OUTPUT_RELEASE_FN, _P]),
    "inferd_request_cancel": (_ERR, [_P]),
    "inferd_server_infer": (_ERR, [_P, _P]),
    "inferd_response_error": (_ERR, [_P]),
    "inferd_response_id": (_S, [_P]),
    "inferd_response_model": (_S, [_P]),
    "inferd_response_model_version": (_I64, [_P]),
    "inferd_response_output_count": (_I, [_P]),
    "inferd_response_output": (_ERR, [_P, _I, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_int),
                                      ctypes.POINTER(c_int64_p), ctypes.POINTER(ctypes.c_int), _PP,
                                      ctypes.POINTER(_SZ)]),
    "inferd_response_output_shm": (_S, [_P, _I, ctypes.POINTER(_U64), ctypes.POINTER(_U64)]),
    "inferd_response_output_memory": (_I, [_P, _I, ctypes.POINTER(ctypes.c_int)]),
    "inferd_response_delete": (None, [_P]),
}


class LibraryNotFound(ImportError):
    """libinferd.so could not be found or loaded; the message says where it looked."""


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def candidates():
    """Where the library is looked for, in order, as (how it was found, path
    or name). INFERD_LIBRARY, when set, is the only candidate."""
    explicit = os.environ.get("INFERD_LIBRARY")
    if explicit:
        return [("INFERD_LIBRARY", explicit)]
    found = [("next to the package", str(_package_dir() / "libinferd.so"))]
    # Imported from a checkout (python/inferd in the source tree): its build.
    checkout = _package_dir().parents[1]
    if (checkout / "include" / "inferd.h").is_file() and (checkout / "python" / "pyproject.toml").is_file():
        found.append(("the checkout's build", str(checkout / "build" / "libinferd.so")))
    name = ctypes.util.find_library("inferd")
    found.append(("ctypes.util.find_library('inferd')", name))
    return found


def _needs_asan_preloaded(path: str) -> bool:
    """Whether `path` is an AddressSanitizer build that this process cannot
    load: the ASan runtime must be the first library of the process (it is
    when LD_PRELOAD names it), else loading it ends the process."""
    try:
        with open(path, "rb") as f:
            if b"libasan.so" not in f.read():
                return False
        with open("/proc/self/maps") as maps:
            return "libasan.so" not in maps.read()
    except OSError:
        return False


def load():
    """The loaded library with every function of SIGNATURES declared, and
    where it came from. Raises LibraryNotFound naming what was tried."""
    tried = []
    for how, where in candidates():
        if not where:
            tried.append(f"{how}: nothing found")
            continue
        is_path = os.sep in where
        if is_path and not os.path.exists(where):
            tried.append(f"{how}: {where} does not exist")
            continue
        if is_path and _needs_asan_preloaded(where):
            raise LibraryNotFound(
                f"{where} ({how}) is built with AddressSanitizer; load it in a Python started with the ASan "
                "runtime first, e.g. LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0")
        try:
            lib = ctypes.CDLL(where)
        except OSError as e:
            tried.append(f"{how}: {where}: {e}")
            continue
        missing = [name for name in SIGNATURES if not hasattr(lib, name)]
        if missing:
            raise LibraryNotFound(f"{where} ({how}) lacks {len(missing)} functions of the inferd API this package "
                                  f"calls, e.g. {', '.join(missing[:5])}: it is too old or not libinferd")
        for name, (restype, argtypes) in SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        return lib, where
    raise LibraryNotFound("libinferd.so was not found; set INFERD_LIBRARY to its path (e.g. build/libinferd.so of "
                          "a checkout). Tried:\n  " + "\n  ".join(tried))


def check_api_version(lib, where):
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.inferd_api_version(ctypes.byref(major), ctypes.byref(minor))
    if major.value != API_MAJOR or minor.value < API_MINOR:
        raise LibraryNotFound(f"{where} has the inferd C API {major.value}.{minor.value}; this package was written "
                              f"for {API_MAJOR}.{API_MINOR} (same major, at least that minor)")
    return major.value, minor.value


lib, path = load()
api = check_api_version(lib, path)

# The C library's free(), for the JSON text the server returns ("malloc'd;
# the caller frees it"). Looked up in the process's global scope rather than
# in libc.so.6 by name, so that it is the free() libinferd's malloc() pairs
# with: under LD_PRELOAD=libasan.so both are the sanitizer's.
_libc = ctypes.CDLL(None)
free = _libc.free
free.restype = None
free.argtypes = [ctypes.c_void_p]
