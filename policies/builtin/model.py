"""The built-in policy's configuration, normalization and network.

What the network predicts: ``steps`` absolute joint targets spaced ``stride``
control ticks apart, starting at the observation's tick; the policy
interpolates them linearly to one target per tick, so a chunk covers
``(steps - 1) * stride + 1`` ticks. Absolute, not offsets from the measured
joints: an offset's small bias is added to a new state at every re-plan and
integrates into drift (a gripper that slowly closes while it should stay open).

Inputs: one image per camera (square, aspect-preserving zero padding as
:func:`policies.observation.resize_with_pad` makes it), the measured arm joints
(standardized) and the task sentence as a bag of known words. With ``film``
(every checkpoint trained since the two-cube scene) the sentence also scales and
shifts every convolution's channels (FiLM, as RT-1 conditions its image
encoder): "red" can turn the keypoints toward the red cube before anything
is pooled, instead of asking the MLP to pick one cube out of features that
describe both. Older checkpoints (no ``film`` in their config) read the
sentence at the MLP only, as they were trained. The measured
gripper joint is left out on purpose: given it, the network learned "the jaws
are closing, so close them" — a jaw that sagged a little closed on its own
before the cube was reached. Whether to close has to come from the images.

Heads: ``continuous`` regresses the standardized targets (L1 loss); ``binned``
classifies each target into one of ``bins`` uniform bins between the data's
1st and 99th percentile of that step and joint (cross-entropy), RT-2 style, with
:class:`policies.tokenizer.ActionTokenizer` doing the binning; it answers bin
centres (see :func:`decode_targets`); ``flow`` is a flow-matching head (π0
style, :mod:`policies.builtin.flow`) over the standardized targets: it samples a
chunk from noise in ``flow_steps`` Euler steps, so it can represent several ways
of doing the same thing instead of their average, and it can be guided to
continue a committed chunk (real-time chunking).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from policies.builtin.flow import FlowHead, Guidance, sample
from policies.builtin.options import HEADS
from policies.tokenizer import ActionTokenizer

PAD, UNKNOWN = 0, 1  # word ids reserved in every vocabulary
MIN_STD = 1e-3  # rad: a joint that barely varies is scaled as if it varied this much
MIN_RANGE = 1e-3  # rad: the narrowest bin range of the binned head
SLOT_DIM = 32  # features per (step, joint) slot of the binned head


@dataclass(frozen=True)
class BuiltinConfig:
    """Everything needed to rebuild the network; stored in the checkpoint."""

    cameras: tuple[str, ...]
    joint_names: tuple[str, ...]
    rate_hz: float = 100.0  # control rate of the training episodes
    image_size: int = 96  # square input images
    steps: int = 10  # targets predicted per chunk
    stride: int = 5  # control ticks between predicted targets
    head: str = "continuous"
    bins: int = 256
    flow_steps: int = 10  # Euler steps of the flow head's sampler
    channels: int = 16  # first conv layer; deeper layers use twice as many
    keypoints: int = 32  # spatial-softmax keypoints per camera
    hidden: int = 256
    task_dim: int = 16
    film: bool = False  # the task conditions the convolutions (see the module doc); old checkpoints lack it
    vocab: tuple[str, ...] = ("<pad>", "<unk>")  # task words; ids PAD and UNKNOWN reserved

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r} (known: {', '.join(HEADS)})")
        if not self.cameras:
            raise ValueError("the built-in policy needs at least one camera")
        if self.steps < 2 or self.stride < 1 or self.image_size < 16 or self.flow_steps < 1:
            raise ValueError("steps must be >= 2, stride >= 1, image_size >= 16 and flow_steps >= 1")

    @property
    def dim(self) -> int:
        return len(self.joint_names)

    @property
    def chunk_length(self) -> int:
        """Per-tick actions in one answer."""
        return (self.steps - 1) * self.stride + 1

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BuiltinConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown built-in policy settings {', '.join(sorted(unknown))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def task_words(task: str) -> list[str]:
    """The words of a task sentence, lower case, punctuation dropped."""
    return re.findall(r"[a-z0-9]+", task.lower())


def build_vocab(tasks: Sequence[str]) -> tuple[str, ...]:
    words = sorted({w for task in tasks for w in task_words(task)})
    return ("<pad>", "<unk>", *words)


def encode_task(task: str, vocab: Sequence[str], length: int | None = None) -> np.ndarray:
    """Word ids of ``task`` (unknown words -> UNKNOWN), padded with PAD to ``length``."""
    index = {w: i for i, w in enumerate(vocab)}
    ids = [index.get(w, UNKNOWN) for w in task_words(task)] or [UNKNOWN]
    if length is not None:
        ids = ids[:length] + [PAD] * (length - len(ids))
    return np.asarray(ids, dtype=np.int64)


@dataclass(frozen=True)
class Normalization:
    """Statistics of the measured joints ``[dim]`` and of the commanded targets per chunk step ``[steps, dim]``."""

    state_mean: np.ndarray
    state_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    target_low: np.ndarray  # 1st percentile (binned head range)
    target_high: np.ndarray  # 99th percentile
    target_min: np.ndarray  # [dim] the demonstrated range: the policy never commands beyond it
    target_max: np.ndarray

    @classmethod
    def of(cls, states: np.ndarray, targets: np.ndarray) -> Normalization:
        """From samples: ``states`` ``[n, dim]``, ``targets`` ``[n, steps, dim]``."""
        s, a = np.asarray(states, np.float64), np.asarray(targets, np.float64)
        low, high = np.quantile(a, 0.01, axis=0), np.quantile(a, 0.99, axis=0)
        return cls(s.mean(0), np.maximum(s.std(0), MIN_STD), a.mean(0), np.maximum(a.std(0), MIN_STD),
                   low, np.maximum(high, low + MIN_RANGE), a.min(axis=(0, 1)), a.max(axis=(0, 1)))

    def to_dict(self) -> dict[str, list]:
        return {f.name: np.asarray(getattr(self, f.name)).tolist() for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalization:
        return cls(**{k: np.asarray(v, dtype=np.float64) for k, v in d.items()})

    def state(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, np.float64) - self.state_mean) / self.state_std

    def targets(self, targets: np.ndarray) -> np.ndarray:
        """Targets ``[..., steps, dim]`` standardized (the continuous head's labels)."""
        return (np.asarray(targets, np.float64) - self.target_mean) / self.target_std

    def untargets(self, z: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`targets`."""
        return np.asarray(z, np.float64) * self.target_std + self.target_mean

    def tokenizer(self, bins: int) -> ActionTokenizer:
        """Bins over the flattened ``steps * dim`` targets (time-major, as the head's slots are)."""
        return ActionTokenizer(self.target_low.ravel(), self.target_high.ravel(), bins, "uniform")


def decode_targets(out: np.ndarray, config: BuiltinConfig, norm: Normalization) -> np.ndarray:
    """The network's output for a batch to joint targets ``[B, steps, dim]`` in robot units.

    The binned head answers the centre of each slot's median bin (the bin where
    the predicted distribution's cumulative probability reaches one half), not of
    its most likely bin: while the arm descends, the demonstrated speeds spread the
    "keep going" probability over many bins and a single bin of "stay" can be the
    most likely one, which stalled the arm above the cube in rollouts.
    """
    if config.head in ("continuous", "flow"):
        return norm.untargets(out)
    logits = np.asarray(out, dtype=np.float64)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    tokens = (cdf >= 0.5 * cdf[..., -1:]).argmax(axis=-1)
    return norm.tokenizer(config.bins).detokenize(tokens).reshape(len(tokens), config.steps, config.dim)


class SpatialSoftmax(nn.Module):
    """Expected image coordinates (in [-1, 1]) of each channel's softmax: two numbers per channel."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weights = F.softmax(x.reshape(b, c, -1) / self.log_temperature.exp()[:, None], dim=-1)
        return (weights @ self.grid).reshape(b, 2 * c)


class CameraEncoder(nn.Module):
    """Three strided convolutions to a quarter of the image size, keypoints plus average-pooled features.

    With ``task_dim`` > 0 each convolution's output channels are scaled and
    shifted by a linear map of the task embedding before the ReLU
    (``h·(1 + γ) + β``); the maps start at zero, so an untrained encoder is the
    unconditioned one.
    """

    def __init__(self, image_size: int, channels: int, keypoints: int, task_dim: int = 0) -> None:
        super().__init__()
        c2 = 2 * channels
        self.conv = nn.Sequential(
            nn.Conv2d(3, channels, 5, stride=2, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(channels, c2, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.film = nn.ModuleList()
        if task_dim > 0:
            for conv in self.conv[::2]:
                film = nn.Linear(task_dim, 2 * conv.out_channels)
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)
                self.film.append(film)
        side = (image_size + 3) // 4
        self.keypoints = nn.Conv2d(c2, keypoints, 1)
        self.softmax = SpatialSoftmax(keypoints, side, side)
        self.out_dim = 2 * keypoints + c2

    def forward(self, image: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        """``image``: ``[B, 3, S, S]`` floats in [0, 1]; ``task`` ``[B, task_dim]`` (used with FiLM only)."""
        h = (image - 0.5) * 4.0
        if not self.film:
            h = self.conv(h)
        else:
            for conv, film in zip(self.conv[::2], self.film):
                gamma, beta = film(task)[:, :, None, None].chunk(2, dim=1)
                h = F.relu(conv(h) * (1.0 + gamma) + beta)
        return torch.cat([self.softmax(self.keypoints(h)), h.mean(dim=(2, 3))], dim=1)


class BuiltinNet(nn.Module):
    """Per-camera encoders, state and task embeddings, fused by an MLP into the chunk head."""

    def __init__(self, config: BuiltinConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList(
            CameraEncoder(config.image_size, config.channels, config.keypoints, config.task_dim if config.film else 0)
            for _ in config.cameras)
        self.task = nn.EmbeddingBag(len(config.vocab), config.task_dim, mode="mean", padding_idx=PAD)
        fused = sum(e.out_dim for e in self.encoders) + config.dim - 1 + config.task_dim
        h = config.hidden
        self.trunk = nn.Sequential(nn.Linear(fused, h), nn.ReLU(inplace=True), nn.Linear(h, h), nn.ReLU(inplace=True))
        slots = config.steps * config.dim
        if config.head == "continuous":
            self.head = nn.Linear(h, slots)
        elif config.head == "flow":
            self.head = FlowHead(h, slots)
        else:
            # Each (step, joint) slot gets its own small feature vector, one classifier shared by all
            # slots turns it into bin logits: far fewer weights than a linear layer to slots * bins logits.
            self.head = nn.Sequential(nn.Linear(h, slots * SLOT_DIM), nn.Unflatten(1, (slots, SLOT_DIM)),
                                      nn.ReLU(inplace=True), nn.Linear(SLOT_DIM, config.bins))

    def features(self, images: torch.Tensor, state: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """The fused observation features ``[B, hidden]`` the head reads (arguments as :meth:`forward`)."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        task = self.task(words)
        feats = [enc(images[:, i], task) for i, enc in enumerate(self.encoders)]
        return self.trunk(torch.cat([*feats, state[:, :-1], task], dim=1))

    def forward(self, images: torch.Tensor, state: torch.Tensor, words: torch.Tensor,
                noise: torch.Tensor | None = None, guidance: Guidance | None = None,
                noisy: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``images`` ``[B, cameras, 3, S, S]`` uint8 or floats in [0, 1]; ``state`` standardized ``[B, dim]``
        (the gripper joint, last, is not used: see the module doc);
        ``words`` ``[B, L]`` word ids. Returns standardized targets ``[B, steps, dim]`` (continuous, flow) or
        logits ``[B, steps * dim, bins]`` (binned). The flow head samples from ``noise`` ``[B, steps * dim]``
        (None: drawn from torch's global generator), guided by ``guidance`` if given; in training it is
        given ``noisy`` = ``(x_τ [B, steps * dim], τ [B])`` and returns the predicted velocity instead."""
        x = self.features(images, state, words)
        cfg = self.config
        if cfg.head == "continuous":
            return self.head(x).reshape(-1, cfg.steps, cfg.dim)
        if cfg.head == "flow":
            if noisy is not None:
                return self.head.velocity(x, *noisy)
            if noise is None:
                noise = torch.randn(x.shape[0], cfg.steps * cfg.dim, device=x.device)
            return sample(self.head, x, noise.to(x), cfg.flow_steps, guidance).reshape(-1, cfg.steps, cfg.dim)
        return self.head(x)
