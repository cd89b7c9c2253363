"""JSON with numpy arrays in the ``json_numpy`` format (what the OpenVLA deploy server speaks).

An array or numpy scalar is ``{"__numpy__": base64 of its raw C-order bytes,
"dtype": dtype.str (e.g. "<f4", "|u1"), "shape": [...]}``; an empty shape is a
scalar. Object and structured dtypes are refused.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np


def _check(dtype: np.dtype) -> np.dtype:
    if dtype.kind in "OV":
        raise ValueError(f"numpy dtype {dtype} cannot be sent as json_numpy")
    return dtype


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)):
        _check(obj.dtype)
        return {"__numpy__": base64.b64encode(obj.tobytes()).decode("ascii"), "dtype": obj.dtype.str,
                "shape": list(np.shape(obj))}
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _decode(d: dict) -> Any:
    if "__numpy__" not in d:
        return d
    arr = np.frombuffer(base64.b64decode(d["__numpy__"]), dtype=_check(np.dtype(d["dtype"])))
    shape = d["shape"]
    return arr.reshape(shape) if shape else arr[0]


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_encode)


def loads(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_decode)
