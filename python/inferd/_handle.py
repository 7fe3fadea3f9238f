"""The life of one C object held by a Python one.

A Handle owns a pointer and the function that deletes it. Calls borrow the
pointer with `with handle.use() as ptr:`; close() refuses new borrows, waits
until the borrows in progress end (another thread's call into the library)
and only then deletes, so no call ever reaches a deleted object. A handle may
also have dependents (a plan's contexts): closing it then only marks it
closed, and the last dependent to go deletes it, as the C API requires that
a plan outlive its contexts.

Handles are closed by close(), by `with`, and by a weakref.finalize of their
owner (garbage collection, or interpreter exit while the library is still
usable).
"""
import threading
from contextlib import contextmanager

from ._errors import InferdError


class Handle:
    def __init__(self, ptr, delete, what: str):
        self._ptr = ptr
        self._delete = delete
        self._what = what
        self._cond = threading.Condition()
        self._borrows = 0
        self._dependents = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def _closed_error(self):
        return InferdError("UNAVAILABLE", f"the {self._what} is closed")

    @contextmanager
    def use(self):
        with self._cond:
            if self._closed:
                raise self._closed_error()
            self._borrows += 1
        try:
            yield self._ptr
        finally:
            with self._cond:
                self._borrows -= 1
                if not self._borrows:
                    self._cond.notify_all()

    def add_dependent(self):
        with self._cond:
            if self._closed:
                raise self._closed_error()
            self._dependents += 1
            return self._ptr

    def drop_dependent(self):
        with self._cond:
            self._dependents -= 1
            ptr = self._take_if_done()
        self._finish(ptr)

    def close(self):
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while self._borrows:
                self._cond.wait()
            ptr = self._take_if_done()
        self._finish(ptr)

    def _take_if_done(self):
        if not self._closed or self._dependents or self._ptr is None:
            return None
        ptr, self._ptr = self._ptr, None
        return ptr

    def _finish(self, ptr):
        if ptr is not None:
            self._delete(ptr)


class Closable:
    """What the wrappers of C objects share: `closed`, and a `with` block
    that closes on the way out. Subclasses keep their Handle in _handle and
    define close()."""

    _handle: Handle

    def close(self):
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
