"""The in-process server over inferd_server_*, inferd_request_* and
inferd_response_*: a model repository loaded into this process, with the
same scheduling, batching and statistics as `inferd serve`, and no network.

A request's life. infer_async builds an inferd_request whose inputs point
into the caller's arrays (or one converted copy of each, see
engine._prepare_input), registers the call under a token and hands the
request to inferd_server_infer. From then on the server owns the request and
calls two callbacks, each exactly once: release, once it no longer reads the
input buffers (the arrays are let go then), and response, with the answer.
Both are the two module-level ctypes functions below, never per-call
objects, so no callback object can be collected while C still holds it; the
token (the userp of both) finds the call. A call is forgotten once both
callbacks ran. If inferd_server_infer refuses the request, neither callback
runs: the token is dropped and the request deleted here.

Callbacks run on a server thread, or on the caller's own inside
inferd_server_infer (a request run at once); either way they only take
short locks and resolve a concurrent.futures.Future, so they never block.

Outputs are not copied: each returned array reads the response's own
memory, and the response is deleted (inferd_response_delete) when the last
array of it is garbage. BYTES outputs are parsed into object arrays (a copy).
An output the caller gave an array for (outputs={name: array}) is written by
the server straight into that array: the request then has an output
allocator (inferd_request_set_output_allocator), two more module-level
ctypes functions with the same token, that lends the server the array's
memory; the array is held in _lent until the server gives the buffer back
(when the response is deleted).

Cancellation (InferFuture.cancel) calls inferd_request_cancel, which may
only reach a request that still exists: the server frees it once its
response callback returns. So each call has a lock, held around the C
cancel call and taken by the response callback to mark the call answered
(call.request = None) before anything else; cancel() never calls C once
that is done.
"""
import ctypes
import itertools
import json
import threading
import weakref
from concurrent.futures import CancelledError, Future

import numpy as np

from . import _types
from ._errors import InferdError, check, from_borrowed, invalid, to_c
from ._handle import Closable, Handle
from ._library import (INFERD_MEMORY_CPU, INFERD_MEMORY_CPU_PINNED, INFERD_RESPONSE_FINAL, OUTPUT_ALLOC_FN,
                       OUTPUT_RELEASE_FN, RELEASE_FN, RESPONSE_FN, CudaMemoryPool, ServerOptions, c_int64_p, free,
                       lib)
from .engine import _check_output_array, _prepare_input, _strings

MODEL_CONTROL_MODES = {"none": 0, "poll": 1, "explicit": 2}


class InferResult(dict):
    """{output name: array} of one response, with the response's id, model
    name and model version as attributes."""

    def __init__(self, outputs, id, model, model_version):
        super().__init__(outputs)
        self.id = id
        self.model = model
        self.model_version = model_version


class _Response:
    """Owns one inferd_response; the arrays over its outputs hold this."""
    __slots__ = ("ptr", "_delete", "__weakref__")

    def __init__(self, ptr):
        self.ptr = ptr
        self._delete = lib.inferd_response_delete  # no global lookup at interpreter exit

    def __del__(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            self._delete(ptr)


def _read_response(ptr, given=None) -> InferResult:
    """The outputs of a response as arrays over its memory, or the caller's
    own arrays (`given`, {name: array}) where the server wrote into them;
    raises the response's error."""
    error = lib.inferd_response_error(ptr)
    if error:
        # Deleted now rather than with the traceback that would hold it.
        exc = from_borrowed(error)
        lib.inferd_response_delete(ptr)
        raise exc
    owner = _Response(ptr)
    outputs = {}
    for i in range(lib.inferd_response_output_count(ptr)):
        name, datatype, shape, rank = ctypes.c_char_p(), ctypes.c_int(), c_int64_p(), ctypes.c_int()
        data, size = ctypes.c_void_p(), ctypes.c_size_t()
        check(lib.inferd_response_output(ptr, i, ctypes.byref(name), ctypes.byref(datatype), ctypes.byref(shape),
                                         ctypes.byref(rank), ctypes.byref(data), ctypes.byref(size)))
        label = name.value.decode()
        dims = tuple(shape[d] for d in range(rank.value))
        kind = lib.inferd_response_output_memory(ptr, i, None)
        if kind not in (INFERD_MEMORY_CPU, INFERD_MEMORY_CPU_PINNED):  # only host memory is ever lent
            raise InferdError("INTERNAL", f"output '{label}' is in memory of kind {kind}, not host memory")
        if datatype.value == _types.BYTES:
            raw = ctypes.string_at(data.value, size.value) if size.value else b""
            outputs[label] = _types.parse_bytes(raw, dims, f"output '{label}'")
            continue
        dtype = _types.numpy_dtype(datatype.value)
        count = int(np.prod(dims, dtype=np.int64))
        if count * dtype.itemsize != size.value:
            raise InferdError("INTERNAL", f"output '{label}' has {size.value} bytes for shape {list(dims)} of "
                                          f"{_types.name_of(datatype.value)}")
        array = given.get(label) if given else None
        if array is not None and data.value == array.ctypes.data:
            outputs[label] = _callers_array(array, label, dtype, dims, count)
            continue
        if not size.value:
            outputs[label] = np.empty(dims, dtype)
            continue
        memory = (ctypes.c_uint8 * size.value).from_address(data.value)
        memory._response = owner  # the array keeps the response alive through its buffer
        outputs[label] = np.frombuffer(memory, dtype=dtype).reshape(dims)
    model = lib.inferd_response_model(ptr)
    return InferResult(outputs, (lib.inferd_response_id(ptr) or b"").decode(), model.decode() if model else "",
                       lib.inferd_response_model_version(ptr))


def _callers_array(array, label, dtype, dims, count):
    """The caller's array the server wrote output `label` into: itself when
    it has the output's shape, else a view of its first `count` items in
    that shape (a larger array serving a smaller batch)."""
    if array.dtype != dtype:  # checked at submission; only a model reloaded since gets here
        raise InferdError("INVALID_ARG", f"output '{label}' is {dtype}; it was written into the array given, "
                                         f"of dtype {array.dtype}")
    if array.shape == dims:
        return array
    return array.reshape(-1)[:count].reshape(dims)


class InferFuture(Future):
    """The concurrent.futures.Future of one request (Server.infer_async),
    whose cancel() asks the server not to run it.

    It stays pending (running() is False) until the server answers: the
    server does not say when a request starts to run."""

    _call = None

    def cancel(self) -> bool:
        """Cancels the request if the server has not run it yet.

        A request still queued is answered CANCELLED without running: the
        future ends cancelled and this returns True. One already running or
        answered completes as usual, and this returns False. It waits for the
        server's answer (at once when an instance of the model is idle, else
        until one ends its batch), except from a callback of a request (a
        done-callback), where waiting could block the server's thread: there
        it asks and returns cancelled(), and the future may still end
        cancelled later."""
        call = self._call
        if call is None:  # not made by infer_async
            return super().cancel()
        with call.lock:
            request = call.request
            if request is not None:
                # The response callback takes this lock before it lets the
                # request go, so the request exists throughout this call.
                check(lib.inferd_request_cancel(request))
                call.cancel_asked = True
        if request is None or getattr(_in_callback, "active", False):
            return self.cancelled()
        try:
            self.exception()  # waits for the answer
        except CancelledError:
            return True
        return False


class _Call:
    """One request handed to the server, until both its callbacks ran."""
    __slots__ = ("future", "inputs", "outputs", "released", "answered", "lock", "request", "cancel_asked")

    def __init__(self, future, inputs, outputs):
        self.future = future
        self.inputs = inputs  # the arrays the request's inputs point into
        self.outputs = outputs  # {name: array} the caller gave for outputs, or None
        self.released = False
        self.answered = False
        # Held around inferd_request_cancel, and by the response callback
        # while it sets request to None (answered: cancel() leaves C alone).
        self.lock = threading.Lock()
        self.request = None  # the inferd_request *, from just before submission until answered
        self.cancel_asked = False


_calls = {}
_calls_lock = threading.Lock()
_tokens = itertools.count(1)
# The caller's output arrays lent to the server, by the buffer_userp the
# allocator gave each: taken out when the server gives the buffer back.
# Plain dict operations, no lock: the release comes from
# inferd_response_delete, which may run in a garbage collection on a thread
# that holds any lock of this module.
_lent = {}
_lent_ids = itertools.count(1)
# Set on a thread while it runs one of the callbacks: inferd_server_delete
# there would wait for the very request being answered.
_in_callback = threading.local()


def _forget_if_done(token, call):
    if call.released and call.answered:
        with _calls_lock:
            _calls.pop(token, None)


@RELEASE_FN
def _on_release(request, token):
    _in_callback.active = True
    try:
        _release(token)
    finally:
        _in_callback.active = False


def _release(token):
    with _calls_lock:
        call = _calls.get(token)
    if call is None:
        return
    call.inputs = None  # the server no longer reads them
    call.released = True
    _forget_if_done(token, call)


@RESPONSE_FN
def _on_response(response, flags, token):
    _in_callback.active = True
    try:
        _respond(response, flags, token)
    finally:
        _in_callback.active = False


def _respond(response, flags, token):
    with _calls_lock:
        call = _calls.get(token)
    if call is None:  # cannot happen: the token is registered before submission
        lib.inferd_response_delete(response)
        return
    if not flags & INFERD_RESPONSE_FINAL:
        # Every model answers once today, with FINAL; a response that is not
        # the last is not what this API returns.
        lib.inferd_response_delete(response)
        return
    with call.lock:
        # The server frees the request when this callback returns: from now
        # on cancel() does not reach it.
        call.request = None
        cancel_asked = call.cancel_asked
    result = error = None
    try:
        result = _read_response(response, call.outputs)
    except BaseException as e:  # the request's error, or a malformed output
        error = e
    future, call.future, call.outputs = call.future, None, None
    # Forgotten before the future resolves, so that whoever waits on it
    # finds the call gone.
    call.answered = True
    _forget_if_done(token, call)
    if cancel_asked and isinstance(error, InferdError) and error.code == "CANCELLED":
        Future.cancel(future)  # pending until now, so it cancels (and runs the done-callbacks)
        future.set_running_or_notify_cancel()  # wakes concurrent.futures.wait and as_completed
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


@OUTPUT_ALLOC_FN
def _on_output_alloc(name, byte_size, token, buffer, kind, memory_id, buffer_userp):
    """Lends the server the caller's array for an output; *buffer stays NULL
    (the server's own memory) for outputs without one. An array too small
    fails the request (an error returned here is the server's to delete)."""
    try:
        with _calls_lock:
            call = _calls.get(token)
        array = call.outputs.get(name.decode()) if call is not None and call.outputs else None
        if array is None:
            return None
        if array.nbytes < byte_size:
            raise invalid(f"the array given has {array.nbytes} bytes, the output needs {byte_size}")
        lent = next(_lent_ids)
        _lent[lent] = array
        buffer[0] = array.ctypes.data
        buffer_userp[0] = lent  # *kind stays INFERD_MEMORY_CPU
        return None
    except InferdError as e:
        return to_c(e)
    except BaseException as e:  # an exception cannot cross into C
        return to_c(InferdError("INTERNAL", f"the output allocator failed: {type(e).__name__}: {e}"))


@OUTPUT_RELEASE_FN
def _on_output_release(buffer, byte_size, kind, memory_id, lent, token):
    try:
        _lent.pop(lent, None)
    except BaseException:  # at interpreter exit the module may be gone; nothing to keep then
        pass


def _json_text(fn, *args):
    """Calls a library function whose last argument is a char ** of
    malloc'd JSON, and returns the text parsed; frees the C string."""
    out = ctypes.c_void_p()
    check(fn(*args, ctypes.byref(out)))
    try:
        return json.loads(ctypes.string_at(out.value).decode()) if out.value else None
    finally:
        free(out.value)


class Server(Closable):
    """An inferd server in this process (inferd_server_create) over a model
    repository (<model>/config.pbtxt and <model>/<version>/model.onnx).

    Options are those of inferd_server_options: model_control_mode ("none":
    load everything at start, "poll": also reload what changes, "explicit":
    only what load_model asks, after startup_models), repository_poll_secs,
    strict_model_config, server_id, threads_per_instance, latency_summaries,
    cuda_memory_pools ({gpu: bytes}), pinned_memory_pool_byte_size,
    min_compute_capability, max_inflight_bytes, exit_on_error (a model that
    fails to load at start fails the constructor) and strict_readiness
    (is_ready() only while no model is unavailable or loading). Zero, False
    or None keeps the library's default.

    Every method may be called from any thread. close() (or leaving a `with`
    block) stops the server: it waits for the requests in flight, whose
    futures are then all resolved.
    """

    def __init__(self, model_repository, model_control_mode="none", startup_models=None, repository_poll_secs=0,
                 strict_model_config=False, server_id=None, threads_per_instance=0, latency_summaries=False,
                 cuda_memory_pools=None, pinned_memory_pool_byte_size=0, min_compute_capability=0.0,
                 max_inflight_bytes=0, exit_on_error=False, strict_readiness=False):
        if isinstance(model_control_mode, str):
            if model_control_mode.lower() not in MODEL_CONTROL_MODES:
                raise invalid(f"model_control_mode {model_control_mode!r} is not one of "
                              f"{', '.join(MODEL_CONTROL_MODES)}")
            model_control_mode = MODEL_CONTROL_MODES[model_control_mode.lower()]
        options = ServerOptions(model_repository=str(model_repository).encode(),
                                model_control_mode=int(model_control_mode),
                                repository_poll_secs=int(repository_poll_secs),
                                strict_model_config=bool(strict_model_config),
                                server_id=server_id.encode() if server_id else None,
                                threads_per_instance=int(threads_per_instance),
                                latency_summaries=bool(latency_summaries),
                                pinned_memory_pool_byte_size=int(pinned_memory_pool_byte_size),
                                min_compute_capability=float(min_compute_capability),
                                max_inflight_bytes=int(max_inflight_bytes),
                                exit_on_error=bool(exit_on_error),
                                strict_readiness=bool(strict_readiness))
        names = pools = None
        if startup_models:
            names, count = _strings(startup_models)
            options.startup_models = names
            options.startup_model_count = count
        if cuda_memory_pools:
            pools = (CudaMemoryPool * len(cuda_memory_pools))(
                *[CudaMemoryPool(int(gpu), int(size)) for gpu, size in dict(cuda_memory_pools).items()])
            options.cuda_memory_pools = pools
            options.cuda_memory_pool_count = len(cuda_memory_pools)
        ptr = ctypes.c_void_p()
        check(lib.inferd_server_create(ctypes.byref(options), ctypes.byref(ptr)))
        del names, pools  # read by inferd_server_create only
        self.model_repository = str(model_repository)
        self._handle = Handle(ptr.value, lib.inferd_server_delete, "server")
        self._finalizer = weakref.finalize(self, _collect_server, self._handle)

    def __repr__(self):
        return f"<inferd.Server {self.model_repository!r}{' closed' if self._handle.closed else ''}>"

    # ---- health, metadata, repository ----

    def is_live(self) -> bool:
        with self._handle.use() as p:
            return bool(lib.inferd_server_is_live(p))

    def is_ready(self) -> bool:
        """Live, not stopping, and every model asked for at start loaded."""
        with self._handle.use() as p:
            return bool(lib.inferd_server_is_ready(p))

    def model_ready(self, model: str, version: int = -1) -> bool:
        """Whether the version (-1: the latest) is ready. A model the server
        does not know, or not ready, is False rather than an error; other
        errors (a malformed version) raise."""
        ready = ctypes.c_bool()
        with self._handle.use() as p:
            try:
                check(lib.inferd_server_model_ready(p, model.encode(), int(version), ctypes.byref(ready)))
            except InferdError as e:
                if e.code in ("NOT_FOUND", "UNAVAILABLE"):
                    return False
                raise
        return ready.value

    def metadata(self) -> dict:
        """The server's metadata (KServe v2: name, version, extensions)."""
        with self._handle.use() as p:
            return _json_text(lib.inferd_server_metadata, p)

    def model_metadata(self, model: str, version: int = -1) -> dict:
        with self._handle.use() as p:
            return _json_text(lib.inferd_server_model_metadata, p, model.encode(), int(version))

    def model_config(self, model: str, version: int = -1) -> dict:
        with self._handle.use() as p:
            return _json_text(lib.inferd_server_model_config, p, model.encode(), int(version))

    def model_statistics(self, model: str = None, version: int = -1) -> dict:
        """Triton's statistics of `model` (None: every loaded model)."""
        with self._handle.use() as p:
            return _json_text(lib.inferd_server_model_statistics, p, model.encode() if model else None, int(version))

    def repository_index(self, ready_only: bool = False) -> list:
        with self._handle.use() as p:
            return _json_text(lib.inferd_server_repository_index, p, bool(ready_only))

    def load_model(self, model: str, config=None):
        """Loads (or reloads) a model; config (a dict, or JSON text) replaces
        its config.pbtxt. Returns when it is ready; raises when it failed."""
        if config is not None and not isinstance(config, (str, bytes)):
            config = json.dumps(config)
        if isinstance(config, str):
            config = config.encode()
        with self._handle.use() as p:
            check(lib.inferd_server_load_model(p, model.encode(), config))

    def unload_model(self, model: str):
        with self._handle.use() as p:
            check(lib.inferd_server_unload_model(p, model.encode()))

    def stop_accepting(self):
        """Begins a graceful stop: new requests are refused (OVERLOADED)."""
        with self._handle.use() as p:
            lib.inferd_server_stop_accepting(p)

    def drain(self, timeout: float) -> int:
        """Waits until nothing is queued or running, at most `timeout`
        seconds; returns how many requests are still pending."""
        with self._handle.use() as p:
            return lib.inferd_server_drain(p, int(timeout * 1000))

    @property
    def inflight_bytes(self) -> tuple:
        """(bytes held for requests not yet answered, their bound or 0)."""
        limit = ctypes.c_uint64()
        with self._handle.use() as p:
            return lib.inferd_server_inflight_bytes(p, ctypes.byref(limit)), limit.value

    # ---- inference ----

    def infer(self, model: str, inputs: dict, outputs=None, version: int = -1, id=None, timeout=None,
              priority: int = 0) -> InferResult:
        """Runs one request and returns {output name: array} (an InferResult).

        inputs: {name: array} with the batch dimension when the model batches
        ((array, "BF16") for a datatype NumPy lacks). outputs: None for every
        output, a list of names, or a dict of the outputs to return, each
        name with: k > 0 for the top-k classes of the output as BYTES, 0 or
        None for the tensor, or a NumPy array for the tensor written straight
        into that array (C-contiguous, writable, of the output's dtype, not
        BYTES; the result then holds that very array, or a view of its start
        when it is larger than the output). A wrong array raises InferdError
        INVALID_ARG here; one too small for the output fails the request
        (INVALID_ARG), leaving its contents unspecified. timeout: seconds the
        request may wait in the model's queue (None: the model's default). A
        refusal or a failed request raises InferdError.
        """
        return self.infer_async(model, inputs, outputs, version, id, timeout, priority).result()

    def infer_async(self, model: str, inputs: dict, outputs=None, version: int = -1, id=None, timeout=None,
                    priority: int = 0) -> "InferFuture":
        """infer() without waiting: an InferFuture (a concurrent.futures.Future)
        of the InferResult (or of the InferdError), whose cancel() keeps a
        request still queued from running. A request the server refuses
        outright raises here. The future is resolved on a server thread (or
        on this one, before this returns): callbacks added to it must not
        block."""
        requested, arrays = self._requested_outputs(model, version, outputs)
        prepared = [(name, *_prepare_input(value, None, f"input '{name}'")) for name, value in inputs.items()]
        future = InferFuture()
        call = _Call(future, [data for _, _, _, data in prepared], arrays or None)
        future._call = call
        with self._handle.use() as p:
            request = ctypes.c_void_p()
            check(lib.inferd_request_create(p, model.encode(), int(version), ctypes.byref(request)))
            submitted = False
            token = None
            try:
                if id is not None:
                    check(lib.inferd_request_set_id(request, str(id).encode()))
                if priority:
                    check(lib.inferd_request_set_priority(request, int(priority)))
                if timeout is not None:
                    check(lib.inferd_request_set_timeout_us(request, max(1, int(timeout * 1e6))))
                for name, datatype, shape, data in prepared:
                    dims = (ctypes.c_int64 * max(1, len(shape)))(*shape)
                    check(lib.inferd_request_add_input(request, name.encode(), datatype, dims, len(shape),
                                                       data.ctypes.data, data.nbytes))
                for name, classes in requested.items():
                    check(lib.inferd_request_add_requested_output(request, name.encode(), classes))
                token = next(_tokens)
                with _calls_lock:
                    _calls[token] = call
                lib.inferd_request_set_callbacks(request, _on_release, token, _on_response, token)
                if arrays:
                    lib.inferd_request_set_output_allocator(request, _on_output_alloc, _on_output_release, token)
                call.request = request.value  # before submission: the answer may come within it
                check(lib.inferd_server_infer(p, request))
                submitted = True
            finally:
                if not submitted:
                    # Refused (or never handed over): no callback runs; the request is still ours.
                    if token is not None:
                        with _calls_lock:
                            _calls.pop(token, None)
                    call.request = call.future = None
                    lib.inferd_request_delete(request)
        return future

    def _requested_outputs(self, model, version, outputs):
        """({name: classification count} to ask for, {name: the caller's
        array}) of infer's `outputs`; the arrays checked against the model's
        outputs (its metadata), so that none is written with another dtype."""
        if outputs is None:
            return {}, {}
        if not isinstance(outputs, dict):
            return {name: 0 for name in outputs}, {}
        requested, arrays = {}, {}
        for name, value in outputs.items():
            if value is None or isinstance(value, (int, np.integer)):
                requested[name] = int(value or 0)
                continue
            if not isinstance(value, np.ndarray):
                raise invalid(f"output '{name}': the buffer given is a {type(value).__name__}, not a NumPy array")
            arrays[name] = value
            requested[name] = 0
        if arrays:
            datatypes = {o["name"]: o["datatype"] for o in self.model_metadata(model, version)["outputs"]}
            for name, array in arrays.items():
                if name not in datatypes:
                    continue  # the library refuses the request, naming it
                if datatypes[name] == "BYTES":
                    raise invalid(f"output '{name}' is BYTES, returned as an object array: it cannot be written "
                                  "into an array given")
                _check_output_array(array, name, _types.numpy_dtype(_types.number_of(datatypes[name])), 0)
        return requested, arrays

    def close(self):
        """Stops the server: waits for the requests in flight (their futures
        are all resolved when it returns), then frees it. Not from a
        callback of its own futures, which would wait for itself."""
        if getattr(_in_callback, "active", False) and not self._handle.closed:
            raise InferdError("INVALID_ARG", "a server cannot be closed from the callback of one of its requests "
                                             "(it would wait for that request)")
        self._finalizer()



def _collect_server(handle):
    """Closes a server that was garbage-collected (or left open at exit). The
    collection may happen on a thread inside a callback, where closing would
    wait for the request being answered: a thread of its own closes it then."""
    if getattr(_in_callback, "active", False):
        threading.Thread(target=handle.close, name="inferd-server-close", daemon=True).start()
    else:
        handle.close()


def pending_calls() -> int:
    """Requests handed to a server whose callbacks have not both run (for tests)."""
    with _calls_lock:
        return len(_calls)


def lent_arrays() -> int:
    """The caller's output arrays the server has not given back yet (for tests)."""
    return len(_lent)
