"""Built-in policy checkpoints (``.pt``) and the policy that runs one.

A checkpoint is ``torch.save`` of a plain dict (loaded with
``weights_only=True``: no pickled code runs on load): format and app version,
the network configuration (cameras, image size, joints, chunk, task
vocabulary, head), normalization statistics, the weights and what it was trained on.
Checkpoints written before the flow head existed load unchanged (a setting
they lack takes its default).

The flow head continues a committed chunk when the runner passes a
:class:`~policies.base.Prefix` (real-time chunking): its sampler is guided
toward the prefix (:mod:`.flow`), then the first ``hold`` per-tick actions are
set to the prefix exactly and the rest of the overlap is blended with weights
falling linearly from 1 to 0 (:func:`overlap_weights`), so the seam is continuous.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.base import ActionKind, Policy, PolicyError, PolicyInfo, Prefix
from policies.builtin.flow import Guidance
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


def load(path: Path, *, threads: int = 1, device: str = "cpu", seed: int | None = None) -> BuiltinPolicy:
    """The policy in checkpoint ``path`` (the ``.pt`` loader of :mod:`policies.loading`).

    ``threads``: torch threads for inference. One by default: the policy shares
    the app process with the control loop, the recorder and the GUI.
    ``device``: ``"cpu"`` or ``"cuda"`` (``teleop-app serve --device`` on a GPU box).
    ``seed``: the flow head's noise restarts from this seed at every reset (None: fresh noise).
    """
    if device not in ("cpu", "cuda"):
        raise PolicyLoadError(f"device {device!r}: the built-in policy runs on cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise PolicyLoadError("device cuda: this torch build sees no CUDA GPU (use --device cpu)")
    data = read_checkpoint(path)
    try:
        config = BuiltinConfig.from_dict(data["config"])
        norm = Normalization.from_dict(data["normalization"])
        policy = BuiltinPolicy(config, norm, data["state_dict"], name=Path(path).name, device=device, seed=seed)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise PolicyLoadError(f"{Path(path).name}: damaged built-in policy checkpoint ({exc})") from None
    torch.set_num_threads(threads)
    return policy


class BuiltinPolicy(Policy):
    """Answers absolute joint targets for ``config.chunk_length`` ticks, interpolated from the predicted ones."""

    def __init__(self, config: BuiltinConfig, norm: Normalization, state_dict: Mapping[str, torch.Tensor],
                 name: str = "builtin", device: str = "cpu", seed: int | None = None) -> None:
        self.config = config
        self.norm = norm
        self.device = torch.device(device)
        self.net = BuiltinNet(config)
        self.net.load_state_dict(state_dict)
        self.net.to(self.device).eval()
        self.info = PolicyInfo(ActionKind.JOINT, config.dim, config.chunk_length, name=name,
                               continues=config.head == "flow", resizes_images=True)
        self._words: dict[str, torch.Tensor] = {}
        self.seed = seed
        self._noise = torch.Generator()
        self.reset()

    def reset(self) -> None:
        if self.seed is None:
            self._noise.seed()
        else:
            self._noise.manual_seed(self.seed)

    def predict(self, observation: Observation) -> tuple[np.ndarray, dict[str, float]]:
        return self._predict(observation, None)

    def predict_continuing(self, observation: Observation, prefix: Prefix) -> tuple[np.ndarray, dict[str, float]]:
        if self.config.head != "flow":
            return self._predict(observation, None)
        if prefix.actions.ndim != 2 or prefix.actions.shape[1] != self.config.dim:
            raise PolicyError(f"a prefix of shape {prefix.actions.shape} does not fit {self.config.dim} joints")
        return self._predict(observation, prefix)

    def _predict(self, observation: Observation, prefix: Prefix | None) -> tuple[np.ndarray, dict[str, float]]:
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
        dev = self.device
        noise = (torch.randn(1, cfg.steps * cfg.dim, generator=self._noise).to(dev) if cfg.head == "flow" else None)
        guidance, weights = (None, None) if prefix is None else self._guidance(prefix)
        # guided: no_grad, not inference_mode, because the sampler differentiates through the flow head
        with torch.inference_mode() if guidance is None else torch.no_grad():
            out = self.net(torch.from_numpy(images[None]).to(dev), state.to(dev), words.to(dev),
                           noise=noise, guidance=guidance).cpu().numpy()
        # Far from the demonstrations a regression can point past anything demonstrated (and out of the
        # runner's spec, which stops the robot): keep to the demonstrated range instead.
        targets = np.clip(decode_targets(out, cfg, self.norm)[0], self.norm.target_min, self.norm.target_max)
        actions = interpolate(targets, cfg.stride)
        if prefix is not None:
            m = len(weights)
            w = weights[:, None]
            actions[:m] = w * prefix.actions[:m] + (1.0 - w) * actions[:m]
        return actions, {"infer_ms": (time.perf_counter() - t0) * 1e3}

    def _guidance(self, prefix: Prefix) -> tuple[Guidance, np.ndarray]:
        """The sampler's guidance toward ``prefix`` (in step space) and the per-tick blend weights."""
        cfg = self.config
        committed = np.asarray(prefix.actions, np.float64)[: cfg.chunk_length]
        m = len(committed)
        weights = overlap_weights(m, min(prefix.hold, m))
        at = np.arange(cfg.steps) * cfg.stride  # the tick of each predicted target
        inside = at < m
        y = np.zeros((cfg.steps, cfg.dim))
        y[inside] = committed[at[inside]]
        w = np.zeros((cfg.steps, cfg.dim))
        w[inside] = weights[at[inside], None]
        target = torch.from_numpy(self.norm.targets(y).astype(np.float32).reshape(1, -1))
        return Guidance(target, torch.from_numpy(w.astype(np.float32).reshape(1, -1))), weights

    def _image(self, image: np.ndarray) -> np.ndarray:
        size = self.config.image_size
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PolicyError(f"camera images must be HxWx3 uint8, got {image.dtype} {image.shape}")
        return np.ascontiguousarray(resize_with_pad(image, size, size).transpose(2, 0, 1))


def overlap_weights(committed: int, hold: int) -> np.ndarray:
    """Per-tick weights of the committed actions in a continuation: 1 on the first ``hold``, then falling
    linearly to 0 at ``committed`` (the end of the committed overlap)."""
    j = np.arange(committed)
    weights = np.clip((committed - j) / (committed - hold + 1), 0.0, 1.0)
    weights[:hold] = 1.0
    return weights


def interpolate(targets: np.ndarray, stride: int) -> np.ndarray:
    """``[steps, dim]`` targets ``stride`` ticks apart to ``[(steps - 1) * stride + 1, dim]``, one per tick:
    a uniform cubic B-spline with the targets as control points, its ends pinned to the first and last
    target by mirrored control points. It keeps a steady motion exactly, never kinks the velocity at a
    target (straight lines between targets turn it every ``stride`` ticks) and smooths target noise
    instead of drawing it as a zig-zag."""
    steps = len(targets)
    q = np.concatenate([2 * targets[:1] - targets[1:2], targets, 2 * targets[-1:] - targets[-2:-1]])
    k = np.arange((steps - 1) * stride + 1)
    i = np.minimum(k // stride, steps - 2)
    t = ((k - i * stride) / stride)[:, None]
    b0, b1 = (1 - t) ** 3, 3 * t ** 3 - 6 * t ** 2 + 4
    b2, b3 = -3 * t ** 3 + 3 * t ** 2 + 3 * t + 1, t ** 3
    return (b0 * q[i] + b1 * q[i + 1] + b2 * q[i + 2] + b3 * q[i + 3]) / 6.0
