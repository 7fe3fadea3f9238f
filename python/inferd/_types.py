"""inferd datatypes and NumPy dtypes, and the KServe layout of BYTES tensors.

Every datatype but two has a NumPy dtype of the same bytes. BYTES (variable
length) is an object array of bytes here, serialized on the way in (each
element a 4-byte little-endian length, then its bytes) and parsed on the way
out; that is the one datatype that is always copied. BF16 has no NumPy dtype:
its tensors are uint16 arrays holding the bit patterns (bf16_to_float32 and
float32_to_bf16 convert).
"""
import struct

import numpy as np

from ._errors import invalid
from ._library import lib

# enum inferd_datatype, in the header's order (values are only ever appended).
DATATYPES = ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES", "BF16"]
NUMBER = {name: i for i, name in enumerate(DATATYPES)}
BYTES = NUMBER["BYTES"]
BF16 = NUMBER["BF16"]

_NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
          "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
          "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_, "BF16": np.uint16}
_FROM_NUMPY = {np.dtype(t): NUMBER[name] for name, t in _NUMPY.items() if name not in ("BYTES", "BF16")}


def name_of(datatype: int) -> str:
    """The KServe name of an inferd_datatype value, as the library spells it."""
    return lib.inferd_datatype_name(datatype).decode()


def number_of(name: str) -> int:
    """The inferd_datatype of a KServe name ("FP32", ...); INVALID_ARG when unknown."""
    number = lib.inferd_datatype_from_name(name.encode())
    if number == 0:
        raise invalid(f"unknown datatype '{name}'")
    return number


def numpy_dtype(datatype: int) -> np.dtype:
    """The NumPy dtype that holds tensors of `datatype` (uint16 for BF16, object for BYTES)."""
    try:
        return np.dtype(_NUMPY[DATATYPES[datatype]])
    except (IndexError, KeyError):
        raise invalid(f"datatype {datatype} has no NumPy dtype") from None


def datatype_of(array: np.ndarray, what: str) -> int:
    """The inferd_datatype of an array's dtype (byte order aside: see native())."""
    dtype = array.dtype
    if dtype.kind in "OSU":
        return BYTES
    number = _FROM_NUMPY.get(dtype.newbyteorder("="))
    if number is None:
        raise invalid(f"{what} has dtype {dtype}, which no inferd datatype holds")
    return number


def native(array: np.ndarray) -> np.ndarray:
    """`array` itself when the library can read its memory as it is: C order,
    aligned, native byte order; else one copy that is."""
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.require(array, requirements=["C_CONTIGUOUS", "ALIGNED"])


def serialize_bytes(array: np.ndarray) -> np.ndarray:
    """A BYTES tensor's elements (bytes, or str as UTF-8) in the KServe layout, as a uint8 array."""
    parts = []
    for item in array.ravel(order="C"):
        if isinstance(item, str):
            item = item.encode()
        elif isinstance(item, np.bytes_):
            item = bytes(item)
        elif not isinstance(item, (bytes, bytearray, memoryview)):
            raise invalid(f"a BYTES element is {type(item).__name__}, not bytes or str")
        parts.append(struct.pack("<I", len(item)))
        parts.append(bytes(item))
    return np.frombuffer(b"".join(parts), dtype=np.uint8) if parts else np.empty(0, np.uint8)


def parse_bytes(raw: bytes, shape, what: str) -> np.ndarray:
    """An object array of `shape` from a BYTES tensor's KServe layout (a copy)."""
    count = int(np.prod(shape, dtype=np.int64))
    out = np.empty(count, dtype=np.object_)
    pos = 0
    for i in range(count):
        if pos + 4 > len(raw):
            raise invalid(f"{what}: BYTES data ends inside element {i} of {count}")
        (length,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + length > len(raw):
            raise invalid(f"{what}: BYTES element {i} runs past the data")
        out[i] = raw[pos:pos + length]
        pos += length
    return out.reshape(shape)


def bf16_to_float32(bits) -> np.ndarray:
    """float32 values of BF16 bit patterns (a uint16 array, as BF16 outputs come)."""
    bits = np.asarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def float32_to_bf16(values) -> np.ndarray:
    """BF16 bit patterns (uint16) of float32 values, rounded to nearest even; NaN stays NaN."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    bits = values.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded
