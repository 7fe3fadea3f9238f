"""The engine: plans (a model compiled for a device) and execution contexts
(the memory and threads of one inference at a time), over inferd_plan_* and
inferd_context_*.

Zero copy. Context.run hands the library the data pointer of every input
array that is C-contiguous, aligned, in native byte order and of the
model's datatype: the library reads the caller's memory. Any other array is
converted once (np.require). Outputs are NumPy arrays allocated here, or
given by the caller, whose memory the library writes the results into:
there is no copy after the run. BYTES tensors are the exception both ways
(serialized in, parsed out).
"""
import ctypes
import threading
import weakref
from typing import NamedTuple

import numpy as np

from . import _types
from ._errors import InferdError, check, invalid
from ._handle import Closable, Handle
from ._library import INFERD_MAX_RANK, ContextOptions, Device, PlanOptions, ProfileEntry, Tensor, TensorInfo, lib

DEVICE_KINDS = {0: "cpu", 1: "cuda"}
PRECISIONS = ["default", "fp32", "tf32", "fp16", "bf16", "int8"]
# Outputs this package allocates start on a 64-byte boundary (a cache line,
# the widest vector the CPU kernels store), as `inferd run` allocates them.
_ALIGNMENT = 64


class TensorSpec(NamedTuple):
    """An input or output of a model: its name, KServe datatype and shape
    (-1 for the dynamic batch dimension)."""
    name: str
    datatype: str
    shape: tuple

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of its arrays (uint16 for BF16, object for BYTES)."""
        return _types.numpy_dtype(_types.NUMBER[self.datatype])


def _spec(info: TensorInfo) -> TensorSpec:
    return TensorSpec(info.name.decode(), _types.name_of(info.datatype), tuple(info.dims[:info.rank]))


def parse_device(device) -> Device:
    """A Device from "cpu", "cuda", "cuda:N", or a (kind, ordinal) pair."""
    if isinstance(device, Device):
        return device
    if isinstance(device, tuple):
        kind, ordinal = device
        kinds = {v: k for k, v in DEVICE_KINDS.items()}
        return Device(kinds[kind] if isinstance(kind, str) else int(kind), int(ordinal))
    out = Device()
    if not isinstance(device, str) or not lib.inferd_device_from_name(device.encode(), ctypes.byref(out)):
        raise invalid(f"device {device!r} is not 'cpu', 'cuda' or 'cuda:N'")
    return out


def device_name(device: Device) -> str:
    kind = DEVICE_KINDS.get(device.kind, str(device.kind))
    return kind if kind == "cpu" else f"{kind}:{device.ordinal}"


def _precision(precision) -> int:
    if precision is None:
        return 0
    if isinstance(precision, int):
        return precision
    out = ctypes.c_int()
    if not lib.inferd_precision_from_name(str(precision).lower().encode(), ctypes.byref(out)):
        raise invalid(f"precision {precision!r} is not one of fp32, tf32, fp16, bf16, int8")
    return out.value


def _strings(values):
    """A NULL-free const char *const * array of `values` (kept alive by the caller), and its length."""
    values = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
    return (ctypes.c_char_p * max(1, len(values)))(*values), len(values)


def _aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialized C-order array whose data starts on an _ALIGNMENT boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + _ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class ModelInfo(NamedTuple):
    """A model's inputs and outputs as inspect() reads them, without compiling it."""
    inputs: list
    outputs: list
    has_dynamic_batch: bool


def inspect(model_path, optional_inputs=None) -> ModelInfo:
    """The inputs and outputs of an ONNX model file (import and shape
    inference only: milliseconds where a Plan takes a second)."""
    info = ctypes.c_void_p()
    path = str(model_path).encode()
    if optional_inputs is None:
        check(lib.inferd_model_inspect(path, ctypes.byref(info)))
    else:
        names, count = _strings(optional_inputs)
        check(lib.inferd_model_inspect_with_defaults(path, names, count, ctypes.byref(info)))
    try:
        ins = lib.inferd_model_info_inputs(info)
        outs = lib.inferd_model_info_outputs(info)
        return ModelInfo([_spec(ins[i]) for i in range(lib.inferd_model_info_input_count(info))],
                         [_spec(outs[i]) for i in range(lib.inferd_model_info_output_count(info))],
                         bool(lib.inferd_model_info_has_dynamic_batch(info)))
    finally:
        lib.inferd_model_info_delete(info)


class Plan(Closable):
    """A model compiled for one device (inferd_plan_load). Immutable and
    shared by any number of contexts, from any threads.

    Options are those of inferd_plan_options: device ("cpu", "cuda",
    "cuda:N"), backend (None: follows the device), precision (None: the
    device's default; "fp32", "tf32", "fp16", "bf16", "int8"),
    max_batch_size (0: the model's own when static, else 1), threads (each
    context's default, 0: all cores), disabled_passes (names, or one
    comma-separated string), optional_inputs, tactic_cache,
    build_all_batch_sizes, calibration_outputs, calibration_cache and
    int8_keep.

    close() (or leaving a `with` block) deletes the plan once its last
    context is closed; a closed plan makes no more contexts.
    """

    def __init__(self, model_path, device="cpu", precision=None, max_batch_size=0, threads=0, backend=None,
                 disabled_passes=None, optional_inputs=None, tactic_cache=None, build_all_batch_sizes=False,
                 calibration_outputs=False, calibration_cache=None, int8_keep=None):
        def text(value):
            if value is None:
                return None
            if not isinstance(value, (str, bytes)):
                value = ",".join(value)
            return value.encode() if isinstance(value, str) else value

        options = PlanOptions(backend=text(backend), max_batch_size=int(max_batch_size),
                              disabled_passes=text(disabled_passes), threads=int(threads),
                              device=parse_device(device), precision=_precision(precision),
                              tactic_cache=text(str(tactic_cache) if tactic_cache is not None else None),
                              build_all_batch_sizes=bool(build_all_batch_sizes),
                              calibration_outputs=bool(calibration_outputs),
                              calibration_cache=text(str(calibration_cache) if calibration_cache is not None
                                                     else None),
                              int8_keep=text(int8_keep))
        keep = None
        if optional_inputs is not None:
            keep, count = _strings(optional_inputs)
            options.optional_inputs = keep
            options.optional_input_count = count
        ptr = ctypes.c_void_p()
        check(lib.inferd_plan_load(str(model_path).encode(), ctypes.byref(options), ctypes.byref(ptr)))
        del keep  # read during the load only
        self.model_path = str(model_path)
        self._handle = Handle(ptr.value, lib.inferd_plan_delete, "plan")
        self._finalizer = weakref.finalize(self, self._handle.close)
        p = ptr.value
        self.inputs = [self._info(lib.inferd_plan_input, p, i) for i in range(lib.inferd_plan_input_count(p))]
        self.outputs = [self._info(lib.inferd_plan_output, p, i) for i in range(lib.inferd_plan_output_count(p))]
        self.has_dynamic_batch = bool(lib.inferd_plan_has_dynamic_batch(p))
        self.max_batch_size = lib.inferd_plan_max_batch_size(p)
        self.weight_bytes = lib.inferd_plan_weight_bytes(p)
        self.device = device_name(lib.inferd_plan_device(p))
        self.precision = lib.inferd_precision_name(lib.inferd_plan_precision(p)).decode()
        self.backend = lib.inferd_plan_backend_name(p).decode()
        self._input_index = {spec.name: i for i, spec in enumerate(self.inputs)}
        self._output_index = {spec.name: i for i, spec in enumerate(self.outputs)}
        # Read once: a context may still run (and need them) after close().
        self._defaults = [self._default_bytes(p, i) for i in range(len(self.inputs))]

    @staticmethod
    def _info(getter, plan, index) -> TensorSpec:
        info = TensorInfo()
        check(getter(plan, index, ctypes.byref(info)))
        return _spec(info)

    def __repr__(self):
        state = " closed" if self._handle.closed else ""
        return f"<inferd.Plan {self.model_path!r} on {self.device} ({self.backend}, {self.precision}){state}>"

    def input_default(self, name):
        """The default value of optional input `name` for one batch item (the
        whole tensor when the model does not batch) as a read-only array,
        or None when it has none."""
        index = self._input_index.get(name)
        if index is None:
            raise invalid(f"the model has no input named '{name}'")
        raw = self._defaults[index]
        if raw is None:
            return None
        spec = self.inputs[index]
        shape = spec.shape[1:] if self.has_dynamic_batch else spec.shape
        if spec.datatype == "BYTES":
            return _types.parse_bytes(raw, shape, f"the default of '{name}'")
        return np.frombuffer(raw, dtype=spec.dtype).reshape(shape)

    @staticmethod
    def _default_bytes(plan, index):
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        if not lib.inferd_plan_input_default(plan, index, ctypes.byref(data), ctypes.byref(size)):
            return None
        return ctypes.string_at(data.value, size.value) if size.value else b""

    def create_context(self, threads=0) -> "Context":
        """A new execution context (inferd_context_create): its activation
        memory for max_batch_size is allocated now. threads 0: the plan's."""
        return Context(self, threads)

    def close(self):
        self._finalizer()



class Context(Closable):
    """One execution context of a plan: runs one inference at a time.

    Calls from several threads are serialized on a lock (the C context
    must not run two inferences at once); give each thread its own context
    to run in parallel. close() (or leaving a `with` block) deletes it,
    waiting for a run in progress.
    """

    def __init__(self, plan: Plan, threads=0):
        self.plan = plan
        plan_ptr = plan._handle.add_dependent()
        ptr = ctypes.c_void_p()
        try:
            check(lib.inferd_context_create(plan_ptr, ctypes.byref(ContextOptions(threads=int(threads))),
                                            ctypes.byref(ptr)))
        except BaseException:
            plan._handle.drop_dependent()
            raise
        self._lock = threading.Lock()
        self._handle = Handle(ptr.value, _context_deleter(plan._handle), "context")
        self._finalizer = weakref.finalize(self, self._handle.close)

    def __repr__(self):
        return f"<inferd.Context of {self.plan!r}{' closed' if self._handle.closed else ''}>"

    @property
    def memory_bytes(self) -> int:
        """Bytes of activation and scratch memory the context holds."""
        with self._handle.use() as p:
            return lib.inferd_context_memory_bytes(p)

    def run(self, inputs: dict, batch=None, outputs=None) -> dict:
        """Runs one inference and returns {output name: array}.

        inputs: {name: array} (or (array, "BF16") to name a datatype NumPy
        has no dtype for; uint16 arrays are taken as BF16 where the model
        wants BF16). An input the model declares optional may be left out:
        its default is passed. batch: the number of items; by default the
        first dimension of the inputs when the model batches, else 1.
        outputs: None for every output; a list of names for those; or
        {name: array or None} to have the library write into the given
        arrays (C-contiguous, writable, of the output's dtype, with room for
        it), which are then the arrays returned.

        Errors of the library (an unknown input, a wrong shape or datatype,
        a batch out of range) raise InferdError with its message.
        """
        with self._lock:
            tensors, n_in, keep, batch = self._input_tensors(inputs, batch)
            outs, n_out, arrays = self._output_tensors(outputs, batch)
            with self._handle.use() as p:
                check(lib.inferd_context_run(p, batch, tensors, n_in, outs, n_out))
                result = {}
                for t, (name, array) in zip(outs, arrays):
                    shape = tuple(t.dims[:t.rank])
                    if array is None:  # BYTES: serialized in the context's memory until its next run
                        raw = ctypes.string_at(t.data, t.byte_size) if t.byte_size else b""
                        result[name] = _types.parse_bytes(raw, shape, f"output '{name}'")
                    else:
                        result[name] = array if array.shape == shape else array.reshape(shape)
            del keep  # the inputs' memory, borrowed until here
            return result

    __call__ = run

    def _input_tensors(self, inputs: dict, batch):
        """The inferd_tensor array for `inputs`, how many it holds, what its
        tensors point into (to keep alive during the run), and the batch size."""
        plan = self.plan
        prepared = []
        for name, value in inputs.items():
            index = plan._input_index.get(name)
            spec = plan.inputs[index] if index is not None else None
            prepared.append((name, *_prepare_input(value, spec, f"input '{name}'")))
        if batch is None:
            batch = 1
            if plan.has_dynamic_batch:
                for _, _, shape, _ in prepared:
                    if len(shape):
                        batch = int(shape[0])
                        break
        batch = int(batch)
        given = set(inputs)
        for index, spec in enumerate(plan.inputs):
            if spec.name in given:
                continue
            raw = plan._defaults[index]
            if raw is None:
                continue  # the library names the missing input
            items = batch if plan.has_dynamic_batch else 1
            shape = ((batch,) + spec.shape[1:]) if plan.has_dynamic_batch else spec.shape
            # Items follow each other in C order (BYTES: serialized items too).
            data = np.frombuffer(raw * items, dtype=np.uint8 if spec.datatype == "BYTES" else spec.dtype)
            prepared.append((spec.name, _types.NUMBER[spec.datatype], shape, data))
        tensors = (Tensor * max(1, len(prepared)))()
        for t, (name, datatype, shape, data) in zip(tensors, prepared):
            if len(shape) > INFERD_MAX_RANK:
                raise invalid(f"input '{name}' has {len(shape)} dimensions; at most {INFERD_MAX_RANK} are supported")
            t.name = name.encode()
            t.datatype = datatype
            t.rank = len(shape)
            for d, extent in enumerate(shape):
                t.dims[d] = int(extent)
            t.data = data.ctypes.data if data.nbytes else None
            t.byte_size = data.nbytes
        return tensors, len(prepared), prepared, batch

    def _output_tensors(self, outputs, batch):
        plan = self.plan
        if outputs is None:
            wanted = {spec.name: None for spec in plan.outputs}
        elif isinstance(outputs, dict):
            wanted = dict(outputs)
        else:
            wanted = {name: None for name in outputs}
        tensors = (Tensor * max(1, len(wanted)))()
        arrays = []
        for t, (name, given) in zip(tensors, wanted.items()):
            t.name = name.encode()
            index = plan._output_index.get(name)
            if index is None:  # the library names it
                arrays.append((name, np.empty(0, np.uint8)))
                continue
            spec = plan.outputs[index]
            if spec.datatype == "BYTES":
                arrays.append((name, None))
                continue
            shape = list(spec.shape)
            if shape and (plan.has_dynamic_batch or shape[0] < 0):
                shape[0] = batch
            if any(extent < 0 for extent in shape):
                raise InferdError("UNSUPPORTED", f"output '{name}' has a dimension unknown before the run: "
                                                 f"{spec.shape}")
            shape = tuple(shape)
            dtype = spec.dtype
            need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if given is None:
                array = _aligned_empty(shape, dtype)
            else:
                array = _check_output_array(given, name, dtype, need)
                if array.shape != shape:
                    array = array.reshape(-1)[:need // dtype.itemsize].reshape(shape)
            t.data = array.ctypes.data if need else None
            t.byte_size = array.nbytes
            arrays.append((name, array))
        return tensors, len(wanted), arrays

    def set_profiling(self, enabled: bool):
        """Turns the per-step timings of profile() on or off."""
        with self._lock, self._handle.use() as p:
            lib.inferd_context_set_profiling(p, bool(enabled))

    def profile(self) -> list:
        """Per-step timings of the last run, as dicts (name, kind, milliseconds, gflop)."""
        with self._lock, self._handle.use() as p:
            count = lib.inferd_context_profile(p, None, 0)
            entries = (ProfileEntry * max(1, count))()
            count = min(count, lib.inferd_context_profile(p, entries, count))
            return [{"name": (e.name or b"").decode(), "kind": (e.kind or b"").decode(),
                     "milliseconds": e.milliseconds, "gflop": e.gflop} for e in entries[:count]]

    def idle(self):
        """Says the calling thread will not run this context for a while
        (the CPU backend then ends its OpenMP workers)."""
        with self._lock, self._handle.use() as p:
            lib.inferd_context_idle(p)

    def close(self):
        with self._lock:
            self._finalizer()



def _context_deleter(plan_handle: Handle):
    """Deletes a context, then lets its plan go (the plan must outlive it)."""
    def delete(ptr):
        lib.inferd_context_delete(ptr)
        plan_handle.drop_dependent()
    return delete


def _prepare_input(value, spec, what):
    """(inferd datatype, shape, array whose memory the library reads) for one
    input: the caller's own array when it can be read as it is."""
    datatype = None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        value, datatype = value[0], _types.number_of(value[1])
    if not isinstance(value, np.ndarray):
        dtype = None
        if spec is not None and datatype is None:
            dtype = spec.dtype
        elif datatype is not None:
            dtype = _types.numpy_dtype(datatype)
        value = np.asarray(value, dtype=dtype)
    if datatype is None:
        datatype = _types.datatype_of(value, what)
        # BF16 has no NumPy dtype: uint16 bit patterns stand for it.
        if spec is not None and spec.datatype == "BF16" and datatype == _types.NUMBER["UINT16"]:
            datatype = _types.BF16
    if datatype == _types.BYTES:
        return datatype, value.shape, _types.serialize_bytes(value)
    expected = _types.numpy_dtype(datatype)
    if value.dtype.newbyteorder("=") != expected:
        # An explicit datatype with an array of another size: refuse rather than reinterpret.
        raise invalid(f"{what} is given as {_types.name_of(datatype)} but its array has dtype {value.dtype}")
    return datatype, value.shape, _types.native(value)


def _check_output_array(array, name, dtype, need):
    if not isinstance(array, np.ndarray):
        raise invalid(f"output '{name}': the buffer given is a {type(array).__name__}, not a NumPy array")
    if array.dtype != dtype:
        raise invalid(f"output '{name}' is {dtype}; the array given is {array.dtype}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise invalid(f"output '{name}': the array given must be C-contiguous and writable")
    if array.nbytes < need:
        raise invalid(f"output '{name}' needs {need} bytes; the array given has {array.nbytes}")
    return array
