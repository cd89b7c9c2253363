"""Training samples for the built-in policy, read from a folder of episode files.

Which episodes: successful ones (``success`` labelled true) unless
``include_failures``; only the kept (trimmed) range of each. Damaged files are
skipped and counted; everything else that makes a folder unusable (no episodes,
no successful ones, a camera or joint that differs between episodes) is a
:class:`DatasetError` with a one-line reason.

Where samples sit: on the control ticks, every ``sample_every``-th tick of the
kept range. Each sample holds

- the measured joints of that tick (``state``);
- per camera, the last frame captured at or before the tick (what the policy
  would have seen live; before a camera's first frame, its first frame), resized
  to a square with aspect-preserving zero padding exactly as
  :func:`policies.observation.resize_with_pad` does for a live observation;
- the commanded joint targets (``action``, after safety) at the tick and
  ``stride``, ``2 * stride`` … ticks later, ``steps`` of them; a target time
  after the kept range takes its last tick
  (the arm holds at the end), and times are matched "last tick at or before" so
  a dropped tick never shifts the horizon.

Each frame is decoded once (JPEG, on two threads) and kept as uint8 in memory,
so epochs never touch the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from policies.builtin.model import build_vocab, encode_task, task_words
from policies.observation import resize_with_pad
from recordings.library import episode_files
from recordings.reader import Episode, EpisodeError
from recordings.resample import last_at_or_before

ProgressFn = Callable[[int, int, str], None]


class DatasetError(ValueError):
    """A folder the built-in policy cannot train on; the message says why and what to do."""


@dataclass
class Demos:
    """Samples in memory (see the module doc); ``frames[c]`` is camera ``cameras[c]``'s ``[F, 3, S, S]`` uint8."""

    cameras: tuple[str, ...]
    joint_names: tuple[str, ...]
    rate_hz: float
    vocab: tuple[str, ...]
    frames: list[np.ndarray]
    frame_index: np.ndarray  # [n, cameras] rows of frames[c]
    state: np.ndarray  # [n, dim] measured joints
    targets: np.ndarray  # [n, steps, dim] commanded joint targets
    words: np.ndarray  # [n, L] task word ids
    episode: np.ndarray  # [n] index into episodes
    episodes: list[Path]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> episode count

    def __len__(self) -> int:
        return len(self.state)


def load_demos(folder: Path, *, image_size: int, steps: int, stride: int, sample_every: int = 1,
               include_failures: bool = False, cameras: Sequence[str] | None = None,
               progress: ProgressFn | None = None) -> Demos:
    """The samples of every usable episode in ``folder`` (see the module doc).

    ``cameras`` defaults to the color cameras of the first usable episode.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    files = episode_files(folder)
    if not files:
        raise DatasetError(f"{folder}: no episode files (*.h5) to train on; record some with `teleop-app collect` "
                           "or the console")
    chosen, skipped = _choose(files, include_failures)
    if not chosen:
        if include_failures:
            raise DatasetError(f"{folder}: none of its {len(files)} episode files is readable")
        raise DatasetError(f"{folder}: no successful episodes ({_counts(skipped)}); label good ones with "
                           "`teleop-app episodes label FILE --success` or pass --include-failures")
    first = chosen[0]
    joints = tuple(first.meta["joint_names"])
    rate = float(first.meta["control_rate_hz"])
    if cameras is None:
        cameras = tuple(c for c in first.camera_names if first.camera_info(c)["kind"] == "color")
        if not cameras:
            _close(chosen)
            raise DatasetError(f"{first.path.name} has no color camera: the built-in policy learns from images "
                               "(was it recorded with --no-cameras?)")
    cameras = tuple(cameras)
    try:
        for ep in chosen:
            _check_compatible(ep, first, joints, rate, cameras)
        vocab = build_vocab([ep.meta["task"] for ep in chosen])
        length = max(1, *(len(task_words(ep.meta["task"])) for ep in chosen))
        parts = []
        with ThreadPoolExecutor(2) as pool:
            for i, ep in enumerate(chosen):
                if progress is not None:
                    progress(i, len(chosen), ep.path.name)
                parts.append(_episode_samples(ep, cameras, image_size, steps, stride, sample_every, pool))
        if progress is not None:
            progress(len(chosen), len(chosen), "loaded")
    finally:
        _close(chosen)
    frames, index = [], []
    for c in range(len(cameras)):
        base = np.cumsum([0] + [len(p["frames"][c]) for p in parts[:-1]])
        frames.append(np.concatenate([p["frames"][c] for p in parts]))
        index.append(np.concatenate([p["frame_index"][:, c] + b for p, b in zip(parts, base)]))
    words = np.concatenate([np.repeat(encode_task(ep.meta["task"], vocab, length)[None], len(p["state"]), 0)
                            for ep, p in zip(chosen, parts)])
    return Demos(
        cameras=cameras, joint_names=joints, rate_hz=rate, vocab=vocab, frames=frames,
        frame_index=np.stack(index, axis=1), state=np.concatenate([p["state"] for p in parts]),
        targets=np.concatenate([p["targets"] for p in parts]), words=words,
        episode=np.concatenate([np.full(len(p["state"]), i) for i, p in enumerate(parts)]),
        episodes=[ep.path for ep in chosen], skipped=skipped,
    )


def _choose(files: list[Path], include_failures: bool) -> tuple[list[Episode], dict[str, int]]:
    """Open the episodes to train on; count the others by reason."""
    chosen, skipped = [], {}
    for path in files:
        try:
            ep = Episode.open(path)
        except EpisodeError:
            skipped["damaged"] = skipped.get("damaged", 0) + 1
            continue
        success = ep.meta["success"]
        if success == "true" or include_failures:
            chosen.append(ep)
        else:
            reason = "failed" if success == "false" else "unlabelled"
            skipped[reason] = skipped.get(reason, 0) + 1
            ep.close()
    return chosen, skipped


def _counts(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())) or "none"


def _close(episodes: list[Episode]) -> None:
    for ep in episodes:
        ep.close()


def _check_compatible(ep: Episode, first: Episode, joints: tuple[str, ...], rate: float,
                      cameras: tuple[str, ...]) -> None:
    name = ep.path.name
    if tuple(ep.meta["joint_names"]) != joints:
        raise DatasetError(f"{name} has joints {', '.join(ep.meta['joint_names'])} but {first.path.name} has "
                           f"{', '.join(joints)}: train on one robot's episodes")
    if float(ep.meta["control_rate_hz"]) != rate:
        raise DatasetError(f"{name} was recorded at {ep.meta['control_rate_hz']:g} Hz, {first.path.name} at "
                           f"{rate:g} Hz: train on episodes of one control rate")
    if ep.tick_count() == 0:
        raise DatasetError(f"{name}: no tick in its kept range (widen its trim)")
    missing = [c for c in cameras if c not in ep.camera_names]
    if missing:
        raise DatasetError(f"{name} has no camera {', '.join(missing)} (it has: "
                           f"{', '.join(ep.camera_names) or 'none'}); the policy needs {', '.join(cameras)}: "
                           "move that episode out of the folder")
    for c in cameras:
        if ep.frame_count(c) == 0:
            raise DatasetError(f"{name}: camera {c} has no frame in the kept range")


def _episode_samples(ep: Episode, cameras: tuple[str, ...], size: int, steps: int, stride: int,
                     sample_every: int, pool: ThreadPoolExecutor) -> dict[str, object]:
    ticks = ep.ticks(trimmed=True)
    t, state, action = ticks["t"], ticks["state"].astype(np.float32), ticks["action"].astype(np.float32)
    rows = np.arange(0, len(t), sample_every)
    rate = float(ep.meta["control_rate_hz"])
    target_t = t[rows, None] + np.arange(steps)[None, :] * (stride / rate)
    targets = action[last_at_or_before(t, target_t.ravel()).reshape(len(rows), steps)]
    frames, index = [], []
    for cam in cameras:
        which = last_at_or_before(ep.frame_times(cam), t[rows])
        used, inverse = np.unique(which, return_inverse=True)
        encoded = [np.frombuffer(ep.encoded_frame(cam, int(i)), np.uint8) for i in used]
        images = list(pool.map(lambda buf: _decode(buf, size), encoded))
        if any(im is None for im in images):
            raise DatasetError(f"{ep.path.name}: a frame of camera {cam} cannot be decoded")
        frames.append(np.stack(images))
        index.append(inverse)
    return {"state": state[rows], "targets": targets, "frames": frames, "frame_index": np.stack(index, axis=1)}


def _decode(buf: np.ndarray, size: int) -> np.ndarray | None:
    """A JPEG to a ``[3, size, size]`` RGB uint8 square, padded like a live observation."""
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        return None
    return np.ascontiguousarray(resize_with_pad(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size, size).transpose(2, 0, 1))
