"""Version 2 of the episode format (per-tick driver, the scripted source); version-1 files still open."""

from __future__ import annotations

import h5py
import numpy as np

from recordings import edit
from recordings.format import FORMAT_VERSION
from recordings.library import summarize
from recordings.reader import Episode
from recordings.repair import repair
from synthetic_episodes import make_episode


def as_version_1(path) -> None:
    """What version 1 wrote: no /ticks/driver, format_version 1."""
    with h5py.File(path, "r+") as f:
        del f["ticks/driver"]
        f.attrs["format_version"] = 1


def test_version_1_files_open_list_trim_and_repair(tmp_path):
    path = tmp_path / "episode_000001.h5"
    make_episode(path, seconds=1.0)
    as_version_1(path)
    with Episode.open(path) as ep:
        ticks = ep.ticks()
        assert ep.meta["format_version"] == 1 and not ep.issues
    assert set(ticks["driver"]) == {b""} and len(ticks["driver"]) == len(ticks["t"])
    summary = summarize(path)
    assert not summary.damaged and summary.who_drove == "human 100%"
    edit.set_trim(path, 0.2, 0.8)
    edit.apply_trim(path)  # a destructive trim keeps the file's own version
    with Episode.open(path) as ep:
        assert ep.meta["format_version"] == 1 and 0.55 < ep.duration < 0.65

    crashed = tmp_path / "episode_000002.h5"
    make_episode(crashed, seconds=1.0, crash=True)
    as_version_1(crashed)
    assert repair(crashed, idle_s=0).repaired
    with Episode.open(crashed) as ep:  # repaired into this version's layout
        assert ep.meta["format_version"] == FORMAT_VERSION and set(ep.ticks()["driver"]) == {b""}


def test_the_driver_of_every_tick_is_listed(tmp_path):
    path = tmp_path / "episode_000001.h5"
    make_episode(path, seconds=1.0)
    with h5py.File(path, "r+") as f:
        n = f["ticks/t"].shape[0]
        f["ticks/source"][:] = np.where(np.arange(n) < n // 4, 2, 3).astype(np.uint8)  # policy, then intervention
        f["ticks/driver"][:] = np.where(np.arange(n) < n // 4, b"pi0", b"spacemouse")
    summary = summarize(path)
    assert summary.who_drove == "intervention (spacemouse) 75% · policy (pi0) 25%"
    assert summary.drivers == {"intervention (spacemouse)": 0.75, "policy (pi0)": 0.25}
