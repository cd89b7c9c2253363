"""Operations on dataset folders: pick episodes, copy or move them, merge datasets, split one by a seed.

Nothing is ever lost:

- an episode arrives under a new ``episode_{n:06d}.h5`` name, ``n`` above the
  highest index in the destination and its trash, and never replaces a file:
  it is copied to a hidden ``.<name>.<random>.copying`` file, flushed to disk,
  checked (same bytes, opens as an episode), then hard-linked to its name — a
  link fails rather than overwrite, and another ``n`` is taken;
- a move removes its sources only after every copy is checked;
- when an operation fails, the copies it made so far are removed, so both
  sides are as they were.

Everything runs on the caller's thread; files are read in 1 MiB blocks.
"""

from __future__ import annotations

import glob
import hashlib
import os
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recordings.format import SUFFIX
from recordings.library import episode_files
from recordings.reader import Episode, EpisodeError
from recordings.recorder import next_episode_path

Progress = Callable[[int, int, str], None]
_BLOCK = 1 << 20


@dataclass
class Transfer:
    """What an operation did: ``(source, new file)`` pairs, in order."""

    copied: list[tuple[Path, Path]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)  # sources a move removed

    def text(self, verb: str) -> str:
        if not self.copied:
            return f"nothing to {verb}"
        dests = sorted({p.parent for _, p in self.copied})
        return f"{verb} {len(self.copied)} episode(s) to {', '.join(map(str, dests))}"


def resolve(inputs: Sequence[str | Path]) -> list[Path]:
    """Episode files named by folders (their episodes), files, or glob patterns; in order, without repeats.

    Raises ValueError naming an input that matches nothing.
    """
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = episode_files(path)
        elif path.is_file():
            found = [path]
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(str(item)) if Path(p).is_file() and Path(p).suffix == SUFFIX)
        else:
            raise ValueError(f"{item}: no such file or folder")
        if not found:
            raise ValueError(f"{item}: no episode files there")
        out += [p for p in found if p not in out]
    return out


def copy_episodes(paths: Sequence[Path], dest: Path, progress: Progress | None = None) -> Transfer:
    """Copy episode files into the dataset folder ``dest`` (created if missing) under new names."""
    dest = Path(dest)
    for path in paths:
        _check_source(Path(path), dest)
    dest.mkdir(parents=True, exist_ok=True)
    done = Transfer()
    try:
        for i, path in enumerate(paths):
            if progress:
                progress(i, len(paths), Path(path).name)
            done.copied.append((Path(path), _copy_one(Path(path), dest)))
    except BaseException:
        for _, new in done.copied:
            new.unlink(missing_ok=True)
        raise
    if progress:
        progress(len(paths), len(paths), "")
    return done


def move_episodes(paths: Sequence[Path], dest: Path, progress: Progress | None = None) -> Transfer:
    """Copy, check every copy, then remove the sources."""
    done = copy_episodes(paths, dest, progress)
    for source, _ in done.copied:
        source.unlink()
        done.removed.append(source)
    return done


def split(paths: Sequence[Path], train: Path, val: Path, val_fraction: float, seed: int) -> tuple[Transfer, Transfer]:
    """Copy ``paths`` into ``train`` and ``val``: a seeded shuffle, ``round(val_fraction * n)`` episodes to val.

    The same paths and seed always give the same split; each side keeps the
    input order. ``train`` and ``val`` must be different folders.
    """
    if not 0 <= val_fraction <= 1:
        raise ValueError(f"the validation fraction must be in [0, 1], got {val_fraction}")
    if Path(train).resolve() == Path(val).resolve():
        raise ValueError("train and validation need different folders")
    order = list(range(len(paths)))
    random.Random(seed).shuffle(order)
    n_val = round(val_fraction * len(paths))
    val_set = set(order[:n_val])
    val_paths = [p for i, p in enumerate(paths) if i in val_set]
    train_paths = [p for i, p in enumerate(paths) if i not in val_set]
    to_train = copy_episodes(train_paths, train)
    try:
        to_val = copy_episodes(val_paths, val)
    except BaseException:
        for _, new in to_train.copied:
            new.unlink(missing_ok=True)
        raise
    return to_train, to_val


def _check_source(path: Path, dest: Path) -> None:
    if not path.is_file():
        raise ValueError(f"{path}: no such episode file")
    if path.parent.resolve() == dest.resolve():
        raise ValueError(f"{path.name} is already in {dest}")
    with Episode.open(path) as ep:
        if ep.status != "complete":
            raise EpisodeError(f"{path.name} was not finalized: run `teleop-app episodes repair {path}` first")


def _copy_one(path: Path, dest: Path) -> Path:
    """Copy to a hidden file, flush, check, then link under a free episode name (never replacing one)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".copying", dir=dest)
    os.close(fd)
    tmp = Path(name)
    try:
        digest = _copy_bytes(path, tmp)
        if _digest(tmp) != digest:
            raise OSError(f"the copy of {path.name} in {dest} differs from it")
        with Episode.open(tmp) as ep:
            ep.tick_count()
        while True:
            target = next_episode_path(dest)
            try:
                os.link(tmp, target)
                break
            except FileExistsError:  # taken meanwhile by another writer: take the next index
                continue
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _copy_bytes(src: Path, dst: Path) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(_BLOCK):
            h.update(block)
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()
