"""msgpack with numpy arrays, as the openpi websocket protocol encodes them.

An array is a map with *binary* keys ``{b"__ndarray__": True, b"data": raw bytes,
b"dtype": dtype.str, b"shape": [...]}``; a numpy scalar ``{b"__npgeneric__": True,
b"data": value, b"dtype": dtype.str}``. Object, void (structured) and complex
dtypes are refused both ways. Decoded arrays are read-only views of the message:
copy before editing.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

_REFUSED_KINDS = "OVc"


def _check(dtype: np.dtype) -> np.dtype:
    if dtype.kind in _REFUSED_KINDS:
        raise ValueError(f"numpy dtype {dtype} cannot be sent (object, structured and complex are refused)")
    return dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        _check(obj.dtype)
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        _check(obj.dtype)
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot encode {type(obj).__name__} in msgpack")


def _decode(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        dtype = _check(np.dtype(obj[b"dtype"]))
        return np.ndarray(buffer=obj[b"data"], dtype=dtype, shape=tuple(obj[b"shape"]))
    if b"__npgeneric__" in obj:
        return _check(np.dtype(obj[b"dtype"])).type(obj[b"data"])
    return obj


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, object_hook=_decode, raw=False)
