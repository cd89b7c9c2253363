"""Training the built-in policy on a folder of episodes, on the CPU.

Batches are drawn from the in-memory samples of :mod:`.dataset`; images get a
random shift of up to ``shift`` pixels per camera (DrQ-style augmentation: with
a few thousand distinct frames the encoder otherwise memorizes pixels), the
measured joints a little Gaussian noise (so the policy has seen states slightly
off the demonstrations it must recover from), and a share ``task_dropout`` of
samples a blank sentence (the word id ``UNKNOWN`` that any sentence of unknown
words encodes to), so a policy told nothing does what the demonstrations do on
average rather than whatever an untrained embedding makes of it. AdamW with a cosine learning-rate
decay after a short warm-up.

Under ``torchrun`` (see :mod:`.distributed`) the same call trains data-parallel:
every process loads the samples, a ``DistributedSampler`` gives each its share
of every epoch, the per-process batch is ``batch_size / world size`` (the
optimizer sees the same total batch and number of steps as one process), DDP
averages the gradients, and rank 0 alone calls ``on_epoch`` and writes the
checkpoint (in the same format). Every process returns the same losses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from policies.builtin import distributed

from policies.builtin.checkpoint import save_checkpoint
from policies.builtin.dataset import Demos, ProgressFn, load_demos
from policies.builtin.flow import noisy
from policies.builtin.model import BuiltinConfig, BuiltinNet, Normalization, decode_targets, encode_task
from policies.builtin.options import TrainOptions


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    epochs: int
    loss: float  # mean over the epoch's batches
    samples_per_s: float
    elapsed_s: float

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / self.epoch * (self.epochs - self.epoch)


@dataclass
class TrainResult:
    path: Path
    samples: int
    episodes: int
    skipped: dict[str, int]
    losses: list[float] = field(default_factory=list)  # per epoch
    initial_loss: float = math.nan  # of the untrained network on the first 256 samples
    error_rad: float = math.nan  # mean |predicted - demonstrated| joint target, training samples, no augmentation
    load_s: float = 0.0
    train_s: float = 0.0


def train(folder: Path, out: Path, options: TrainOptions = TrainOptions(), *,
          on_load: ProgressFn | None = None, on_epoch: Callable[[EpochReport], None] | None = None) -> TrainResult:
    """Train on the episodes in ``folder`` and write the checkpoint ``out`` (data-parallel under torchrun)."""
    world = distributed.from_env()
    with distributed.started(world, options.device) as device:
        return _train(folder, out, options, world, device, on_load if world.is_main else None,
                      on_epoch if world.is_main else None)


def _train(folder: Path, out: Path, options: TrainOptions, world: distributed.World, device: torch.device,
           on_load: ProgressFn | None, on_epoch: Callable[[EpochReport], None] | None) -> TrainResult:
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    t0 = time.monotonic()
    demos = load_demos(folder, image_size=options.image_size, steps=options.steps, stride=options.stride,
                       sample_every=options.sample_every, include_failures=options.include_failures,
                       progress=on_load)
    config = BuiltinConfig(cameras=demos.cameras, joint_names=demos.joint_names, rate_hz=demos.rate_hz,
                           image_size=options.image_size, steps=options.steps, stride=options.stride,
                           head=options.head, flow_steps=options.flow_steps, channels=options.channels,
                           film=True, vocab=demos.vocab)
    norm = Normalization.of(demos.state, demos.targets)
    # each process its own augmentation stream; one process keeps the single-process stream
    batches = _Batches(demos, config, norm, options,
                       np.random.default_rng([options.seed, world.rank]) if world.distributed else rng)
    net = BuiltinNet(config).to(device)
    model = DistributedDataParallel(net) if world.distributed else net
    result = TrainResult(out, len(demos), len(demos.episodes), demos.skipped, load_s=time.monotonic() - t0)

    per_epoch = math.ceil(len(demos) / options.batch_size)  # optimizer steps, whatever the world size
    sampler = (DistributedSampler(range(len(demos)), num_replicas=world.size, rank=world.rank, shuffle=True,
                                  seed=options.seed) if world.distributed else None)
    total = per_epoch * options.epochs
    opt = torch.optim.AdamW(net.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    warmup = min(200, total // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    t_train = time.monotonic()
    with torch.no_grad():
        first = batches.batch(np.arange(min(len(demos), 256)), False)
        result.initial_loss = float(_loss(net, config, *(t.to(device) for t in first), gen=batches.gen))
    for epoch in range(options.epochs):
        model.train()
        if sampler is None:
            order = rng.permutation(len(demos))
        else:
            sampler.set_epoch(epoch)
            order = np.fromiter(sampler, dtype=np.int64)
        losses = []
        for idx in np.array_split(order, per_epoch):
            loss = _loss(model, config, *(t.to(device) for t in batches.batch(idx, True)), gen=batches.gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        result.losses.append(distributed.mean(float(np.mean(losses)), world, device))
        if on_epoch is not None:
            elapsed = time.monotonic() - t_train
            on_epoch(EpochReport(epoch + 1, options.epochs, result.losses[-1],
                                 len(demos) * (epoch + 1) / elapsed, elapsed))
    result.train_s = time.monotonic() - t_train
    net.eval()
    if not world.is_main:
        return result
    net.cpu()
    result.error_rad = _error_rad(net, config, norm, batches, rng)
    save_checkpoint(out, config, norm, net, training={
        "folder": str(folder), "episodes": [p.name for p in demos.episodes], "samples": len(demos),
        "skipped": demos.skipped, "options": asdict(options), "losses": result.losses,
        "error_rad": result.error_rad, "train_s": result.train_s, "processes": world.size,
    })
    return result


class _Batches:
    """Tensors of every sample, and batches of them with augmentation."""

    def __init__(self, demos: Demos, config: BuiltinConfig, norm: Normalization, options: TrainOptions,
                 rng: np.random.Generator) -> None:
        self.frames = [torch.from_numpy(f) for f in demos.frames]
        self.frame_index = torch.from_numpy(demos.frame_index)
        self.state = torch.from_numpy(norm.state(demos.state).astype(np.float32))
        self.noise = torch.from_numpy((options.state_noise / norm.state_std).astype(np.float32))
        self.words = torch.from_numpy(demos.words)
        self.soft: torch.Tensor | None = None
        if config.head in ("continuous", "flow"):
            self.target = torch.from_numpy(norm.targets(demos.targets).astype(np.float32))
        else:
            tokens = norm.tokenizer(config.bins).tokenize(demos.targets.reshape(len(demos), -1))
            self.target = torch.from_numpy(tokens)
            self.soft = soft_labels(config.bins, options.label_sigma)
        self.targets = demos.targets
        self.shift = options.shift
        self.task_dropout = options.task_dropout
        self.blank = torch.from_numpy(encode_task("", config.vocab, demos.words.shape[1]))
        self.gen = torch.Generator().manual_seed(int(rng.integers(2**31)))

    def batch(self, idx: np.ndarray, augment: bool) -> tuple[torch.Tensor, ...]:
        i = torch.from_numpy(idx)
        images = torch.stack([f[self.frame_index[i, c]] for c, f in enumerate(self.frames)], dim=1)
        state = self.state[i]
        if augment:
            images = random_shift(images, self.shift, self.gen)
            state = state + torch.randn(state.shape, generator=self.gen) * self.noise
        words = self.words[i]
        if augment and self.task_dropout > 0:
            drop = torch.rand(len(i), generator=self.gen) < self.task_dropout
            words = torch.where(drop[:, None], self.blank[None, :], words)
        target = self.target[i] if self.soft is None else self.soft[self.target[i]]
        return images, state, words, target


def soft_labels(bins: int, sigma: float) -> torch.Tensor:
    """Row ``k``: the label distribution for bin ``k``, a Gaussian of ``sigma`` bins around it.

    Hard one-bin labels make a neighbouring bin as wrong as a far one; spreading
    the label over the neighbours (as HL-Gauss does for value regression) trains
    a 256-bin head far faster. ``sigma`` 0 gives one-hot rows.
    """
    k = torch.arange(bins, dtype=torch.float32)
    if sigma <= 0:
        return torch.eye(bins)
    p = torch.exp(-0.5 * ((k[None, :] - k[:, None]) / sigma) ** 2)
    return p / p.sum(dim=1, keepdim=True)


def random_shift(images: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Each image of ``[B, cameras, 3, S, S]`` uint8 moved by up to ``pad`` pixels, edges repeated; floats in [0, 1]."""
    b, c, ch, h, w = images.shape
    x = images.reshape(b * c, ch, h, w).float() / 255.0
    if pad <= 0:
        return x.reshape(images.shape)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b * c, 2), generator=gen).tolist()
    out = torch.stack([padded[k, :, dy: dy + h, dx: dx + w] for k, (dy, dx) in enumerate(offsets)])
    return out.reshape(b, c, ch, h, w)


def _loss(net: BuiltinNet, config: BuiltinConfig, images: torch.Tensor, state: torch.Tensor, words: torch.Tensor,
          target: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """L1 (continuous), cross-entropy (binned) or the flow-matching loss (flow: noise and time from ``gen``)."""
    if config.head == "flow":
        x, tau, velocity = noisy(target.reshape(len(target), -1), gen)
        return F.mse_loss(net(images, state, words, noisy=(x, tau)), velocity)
    out = net(images, state, words)
    if config.head == "continuous":
        return F.l1_loss(out, target)
    return F.cross_entropy(out.reshape(-1, config.bins), target.reshape(-1, config.bins))


def _error_rad(net: BuiltinNet, config: BuiltinConfig, norm: Normalization, batches: _Batches,
               rng: np.random.Generator, n: int = 1024) -> float:
    """Mean absolute error of the decoded joint targets (rad) on up to ``n`` training samples."""
    idx = np.sort(rng.permutation(len(batches.targets))[:n])
    with torch.inference_mode():
        images, state, words, _ = batches.batch(idx, False)
        targets = decode_targets(net(images, state, words).numpy(), config, norm)
    return float(np.abs(targets - batches.targets[idx]).mean())
