"""Training settings of the built-in policy (no torch import: the CLI reads the defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass

HEADS = ("continuous", "binned", "flow")


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 20
    head: str = "continuous"
    include_failures: bool = False
    seed: int = 0
    image_size: int = 96
    steps: int = 10
    stride: int = 5
    sample_every: int = 3  # ticks between samples
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    shift: int = 4  # pixels of random image shift
    state_noise: float = 0.02  # rad, std of the noise added to the measured joints
    task_dropout: float = 0.1  # share of samples shown a blank sentence (what a policy told nothing should do)
    label_sigma: float = 2.0  # bins, spread of the binned head's labels
    flow_steps: int = 10  # Euler steps the flow head samples with (stored in the checkpoint)
    channels: int = 16
    threads: int = 2
    device: str = "cpu"  # or "cuda"; under torchrun each process takes the GPU of its LOCAL_RANK

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r} (cpu or cuda)")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r} (known: {', '.join(HEADS)})")
        small = [name for name, value, least in (
            ("epochs", self.epochs, 1), ("batch size", self.batch_size, 1), ("image size", self.image_size, 16),
            ("steps", self.steps, 2), ("stride", self.stride, 1), ("sample spacing", self.sample_every, 1),
            ("threads", self.threads, 1), ("flow steps", self.flow_steps, 1)) if value < least]
        if small:
            raise ValueError(f"training settings too small: {', '.join(small)}")
        if not 0.0 <= self.task_dropout < 1.0:
            raise ValueError("the task dropout must be within [0, 1)")
