"""Built-in policy checkpoints (``.pt``) and the policy that runs one.

A checkpoint is ``torch.save`` of a plain dict (loaded with
``weights_only=True``: no pickled code runs on load): format and app version,
the network configuration (cameras, image size, joints, chunk, task
vocabulary), normalization statistics, the weights and what it was trained on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.base import ActionKind, Policy, PolicyError, PolicyInfo
from policies.builtin.model import BuiltinConfig, BuiltinNet, Normalization, decode_targets, encode_task
from policies.loading import PolicyLoadError
from policies.observation import Observation, resize_with_pad
from drivers.app_version import APP_VERSION

FORMAT = "teleop-builtin-policy"
FORMAT_VERSION = 1


def save_checkpoint(path: Path, config: BuiltinConfig, norm: Normalization, net: BuiltinNet,
                    training: Mapping[str, Any]) -> None:
    """Write the checkpoint atomically (a crash leaves the old file or none, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "app_version": APP_VERSION,
        "action_kind": ActionKind.JOINT.value, "chunk_length": config.chunk_length,
        "config": config.to_dict(), "normalization": norm.to_dict(),
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "training": dict(training),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's dict; :class:`PolicyLoadError` if it is not a built-in policy checkpoint."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for files that are not its own
        raise PolicyLoadError(f"{path.name}: not a built-in policy checkpoint ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PolicyLoadError(f"{path.name}: a torch file but not a built-in policy checkpoint "
                              "(train one with `teleop-app train`)")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise PolicyLoadError(f"{path.name}: checkpoint format {data['format_version']} is newer than this app "
                              f"reads (<= {FORMAT_VERSION}): update teleop-app")
    return data


def load(path: Path, *, threads: int = 1, device: str = "cpu") -> BuiltinPolicy:
    """The policy in checkpoint ``path`` (the ``.pt`` loader of :mod:`policies.loading`).

    ``threads``: torch threads for inference. One by default: the policy shares
    the app process with the control loop, the recorder and the GUI.
    ``device``: ``"cpu"`` or ``"cuda"`` (``teleop-app serve --device`` on a GPU box).
    """
    if device not in ("cpu", "cuda"):
        raise PolicyLoadError(f"device {device!r}: the built-in policy runs on cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise PolicyLoadError("device cuda: this torch build sees no CUDA GPU (use --device cpu)")
    data = read_checkpoint(path)
    try:
        config = BuiltinConfig.from_dict(data["config"])
        norm = Normalization.from_dict(data["normalization"])
        policy = BuiltinPolicy(config, norm, data["state_dict"], name=Path(path).name, device=device)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise PolicyLoadError(f"{Path(path).name}: damaged built-in policy checkpoint ({exc})") from None
    torch.set_num_threads(threads)
    return policy


class BuiltinPolicy(Policy):
    """Answers absolute joint targets for ``config.chunk_length`` ticks, interpolated from the predicted ones."""

    def __init__(self, config: BuiltinConfig, norm: Normalization, state_dict: Mapping[str, torch.Tensor],
                 name: str = "builtin", device: str = "cpu") -> None:
        self.config = config
        self.norm = norm
        self.device = torch.device(device)
        self.net = BuiltinNet(config)
        self.net.load_state_dict(state_dict)
        self.net.to(self.device).eval()
        self.info = PolicyInfo(ActionKind.JOINT, config.dim, config.chunk_length, name=name)
        self._words: dict[str, torch.Tensor] = {}

    def predict(self, observation: Observation) -> tuple[np.ndarray, dict[str, float]]:
        cfg = self.config
        t0 = time.perf_counter()
        q = np.asarray(observation.state.joint_pos, dtype=np.float64)
        if q.shape != (cfg.dim,):
            raise PolicyError(f"the robot has {q.size} joints, the policy was trained on {cfg.dim} "
                              f"({', '.join(cfg.joint_names)})")
        missing = [c for c in cfg.cameras if c not in observation.images]
        if missing:
            have = ", ".join(observation.images) or "none"
            raise PolicyError(f"no image from camera {', '.join(missing)} (the policy needs "
                              f"{', '.join(cfg.cameras)}; the observation has {have})")
        images = np.stack([self._image(observation.images[c]) for c in cfg.cameras])
        words = self._words.get(observation.task)
        if words is None:
            words = self._words[observation.task] = torch.from_numpy(encode_task(observation.task, cfg.vocab)[None])
        state = torch.from_numpy(self.norm.state(q).astype(np.float32)[None])
        with torch.inference_mode():
            dev = self.device
            out = self.net(torch.from_numpy(images[None]).to(dev), state.to(dev), words.to(dev)).cpu().numpy()
        # Far from the demonstrations a regression can point past anything demonstrated (and out of the
        # runner's spec, which stops the robot): keep to the demonstrated range instead.
        targets = np.clip(decode_targets(out, cfg, self.norm)[0], self.norm.target_min, self.norm.target_max)
        return interpolate(targets, cfg.stride), {"infer_ms": (time.perf_counter() - t0) * 1e3}

    def _image(self, image: np.ndarray) -> np.ndarray:
        size = self.config.image_size
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PolicyError(f"camera images must be HxWx3 uint8, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(resize_with_pad(image, size, size).transpose(2, 0, 1))


def interpolate(targets: np.ndarray, stride: int) -> np.ndarray:
    """``[steps, dim]`` targets ``stride`` ticks apart to ``[(steps - 1) * stride + 1, dim]``, one per tick."""
    steps = len(targets)
    k = np.arange((steps - 1) * stride + 1)
    j = np.minimum(k // stride, steps - 2)
    frac = (k - j * stride) / stride
    return targets[j] * (1.0 - frac[:, None]) + targets[j + 1] * frac[:, None]
