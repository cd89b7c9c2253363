"""The Python pickles LeRobot's async-inference protocol carries, written and read without LeRobot installed.

Every ``data`` field of the protocol is ``pickle.dumps`` of a LeRobot dataclass
from ``lerobot.async_inference.helpers``: :class:`RemotePolicyConfig` (policy
setup), :class:`TimedObservation` (robot to server) and a list of
:class:`TimedAction` (server to robot, each action a ``torch.Tensor``). The
stand-ins below have the same fields; :func:`dumps` writes them under LeRobot's
module and class names (pickle protocol 4, as ``pickle.dumps`` does), so a real
server builds its own classes from them.

**Unpickling runs code chosen by the sender.** :func:`loads` is only called on
connections the user marked trusted (``--trust-pickle``); it additionally
refuses every global outside a short allowlist (these stand-ins, numpy's and
torch's array rebuilders, ``collections.OrderedDict``), so an unexpected
payload is an error naming the global rather than a call into it; a tensor's
storage bytes are read with ``torch.load(weights_only=True)``, not the full
``torch.load`` LeRobot's pickles name.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

HELPERS = "lerobot.async_inference.helpers"


@dataclass
class RemotePolicyConfig:
    policy_type: str
    pretrained_name_or_path: str
    lerobot_features: dict[str, Any]
    actions_per_chunk: int
    device: str = "cpu"
    rename_map: dict[str, str] = field(default_factory=dict)


@dataclass
class TimedObservation:
    timestamp: float
    timestep: int
    observation: dict[str, Any]
    must_go: bool = False


@dataclass
class TimedAction:
    timestamp: float
    timestep: int
    action: Any  # a torch.Tensor [action_dim]


_WIRE = {RemotePolicyConfig: (HELPERS, "RemotePolicyConfig"), TimedObservation: (HELPERS, "TimedObservation"),
         TimedAction: (HELPERS, "TimedAction")}
_FROM_WIRE = {where: cls for cls, where in _WIRE.items()}
_ALLOWED = {
    ("collections", "OrderedDict"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
    ("torch", "FloatStorage"), ("torch", "DoubleStorage"),
    ("torch", "HalfStorage"), ("torch", "BFloat16Storage"), ("torch", "float32"), ("torch", "float64"),
}


class _Pickler(pickle._Pickler):  # the Python pickler: its save_global can name a class it cannot import
    def save_global(self, obj: Any, name: str | None = None) -> None:
        where = _WIRE.get(obj)
        if where is None:
            super().save_global(obj, name)
            return
        self.save(where[0])
        self.save(where[1])
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


def _storage_from_bytes(data: bytes) -> Any:
    """What ``torch.storage._load_from_bytes`` gives, without its full (code-running) ``torch.load``."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _FROM_WIRE:
            return _FROM_WIRE[module, name]
        if (module, name) == ("torch.storage", "_load_from_bytes"):  # a tensor's storage: weights-only load
            return _storage_from_bytes
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (not part of an action chunk)")


def dumps(obj: Any) -> bytes:
    """``obj`` (the stand-ins, dicts, numpy arrays, …) pickled as LeRobot's side would pickle its own classes."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=4).dump(obj)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """A payload of a *trusted* server; stand-ins for LeRobot's classes. UnpicklingError on anything else."""
    return _Unpickler(io.BytesIO(data)).load()
