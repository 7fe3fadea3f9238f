"""inferd_error * as a Python exception.

Every C call that returns an error is passed through check(): NULL is
success, anything else becomes an InferdError and the C error is deleted
there and then, so no caller ever holds one.
"""
from ._library import lib


class InferdError(Exception):
    """An error of the inferd library (or of this package, in the same terms).

    code: the code's short name, as inferd_error_code_name gives it
    ("INVALID_ARG", "NOT_FOUND", ...). message: the library's message.
    """

    def __init__(self, code: str, message: str):
        super().__init__(code, message)  # both in args, so that it pickles
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}"

    @property
    def http_status(self) -> int:
        """The HTTP status a frontend answers this error with."""
        return lib.inferd_error_code_http_status(_code_number(self.code))


_CODE_NUMBERS = {}


def _code_number(name: str) -> int:
    if not _CODE_NUMBERS:
        number = 0
        while True:
            text = lib.inferd_error_code_name(number)
            if text is None or (number and text.decode() in _CODE_NUMBERS):
                break
            _CODE_NUMBERS[text.decode()] = number
            number += 1
            if number > 1000:  # a library that names every number: stop
                break
    return _CODE_NUMBERS.get(name, 0)


def from_borrowed(error) -> InferdError:
    """The exception for an error the caller does not own (a response's)."""
    code = lib.inferd_error_code_name(lib.inferd_error_code_of(error))
    message = lib.inferd_error_message(error)
    return InferdError(code.decode() if code else "UNKNOWN", message.decode(errors="replace") if message else "")


def check(error) -> None:
    """Raises the InferdError of `error` (an owned inferd_error *), deleting it."""
    if error is None:
        return
    try:
        exc = from_borrowed(error)
    finally:
        lib.inferd_error_delete(error)
    raise exc


def to_c(error: InferdError):
    """A new inferd_error * of the same code and message, for a callback that
    hands an error to the library (which then owns it)."""
    return lib.inferd_error_create(_code_number(error.code), error.message.encode(errors="replace"))


def invalid(message: str) -> InferdError:
    """An INVALID_ARG error found on the Python side, before calling the library."""
    return InferdError("INVALID_ARG", message)
