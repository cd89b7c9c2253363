"""Held-out error of a built-in checkpoint: how far its joint targets are from a folder of demonstrations.

The samples are read exactly as training reads them (:func:`.dataset.load_demos`
with the checkpoint's image size, horizon and cameras), without augmentation;
task words are mapped onto the checkpoint's vocabulary (words it never saw are
unknown). Single-threaded, in the caller's thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from policies.builtin.checkpoint import load
from policies.builtin.dataset import load_demos
from policies.builtin.model import decode_targets


def heldout_error(checkpoint: Path, folder: Path, *, batch: int = 256) -> float:
    """Mean absolute joint-target error (rad) of ``checkpoint`` over every sample of ``folder``."""
    policy = load(checkpoint)
    cfg, norm = policy.config, policy.norm
    demos = load_demos(folder, image_size=cfg.image_size, steps=cfg.steps, stride=cfg.stride, cameras=cfg.cameras)
    remap = np.array([cfg.vocab.index(w) if w in cfg.vocab else cfg.vocab.index("<unk>") for w in demos.vocab])
    errors = []
    for start in range(0, len(demos), batch):
        i = np.arange(start, min(start + batch, len(demos)))
        images = np.stack([demos.frames[c][demos.frame_index[i, c]] for c in range(len(cfg.cameras))], axis=1)
        state = norm.state(demos.state[i]).astype(np.float32)
        with torch.inference_mode():
            out = policy.net(torch.from_numpy(images), torch.from_numpy(state),
                             torch.from_numpy(remap[demos.words[i]])).numpy()
        errors.append(np.abs(decode_targets(out, cfg, norm) - demos.targets[i]).reshape(len(i), -1).mean(axis=1))
    return float(np.concatenate(errors).mean())
