"""Damaged and foreign files: Episode.open raises EpisodeError with a reason, never another exception type."""

from __future__ import annotations

import random

import h5py
import numpy as np
import pytest

from recordings.reader import Episode, EpisodeError
from recordings.repair import repair
from test_recording_writer import write_episode


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "episode_000001.h5"
    write_episode(path, n_ticks=200, n_frames=10).finalize({})
    return path


def read_everything(path) -> None:
    """Every read the library, the player and the exporters do."""
    with Episode.open(path) as ep:
        ep.ticks()
        ep.ticks(trimmed=False)
        assert ep.duration <= ep.full_duration
        for cam in ep.camera_names:
            ep.camera_info(cam)
            ep.frame_at(cam, 0.5)
            for i in range(ep.frame_count(cam, trimmed=False)):
                ep.frame(cam, i, trimmed=False)


def edit(path, fn) -> None:
    with h5py.File(path, "r+") as f:
        fn(f)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(EpisodeError, match="no such file"):
        Episode.open(tmp_path / "nope.h5")
    with pytest.raises(EpisodeError, match="no such file"):
        Episode.open(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello", bytes(random.Random(0).randbytes(100_000))])
def test_not_hdf5(tmp_path, content):
    path = tmp_path / "episode_000001.h5"
    path.write_bytes(content)
    with pytest.raises(EpisodeError, match="not an HDF5 file"):
        Episode.open(path)


@pytest.mark.parametrize("fraction", [0.999, 0.5, 0.01])
def test_truncated(good, fraction):
    data = good.read_bytes()
    good.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(EpisodeError, match="truncated|not an HDF5 file"):
        Episode.open(good)


def test_another_hdf5_layout(tmp_path):
    path = tmp_path / "episode_0.hdf5"
    with h5py.File(path, "w") as f:  # ALOHA-style
        f.attrs["sim"] = True
        f.create_dataset("observations/qpos", data=np.zeros((10, 14)))
        f.create_dataset("action", data=np.zeros((10, 14)))
    with pytest.raises(EpisodeError, match="not a teleop episode"):
        Episode.open(path)


@pytest.mark.parametrize(("change", "reason"), [
    (lambda f: f.attrs.modify("format", "lerobot"), "not a teleop episode"),
    (lambda f: f.attrs.modify("format_version", 99), "newer than this app reads"),
    (lambda f: f.attrs.modify("format_version", 0), "unsupported format version"),
    (lambda f: f.attrs.__delitem__("task"), "missing root attribute.*task"),
    (lambda f: f.attrs.modify("joint_names", "[shoulder"), "'joint_names' is not valid JSON"),
    (lambda f: f.attrs.modify("cameras", '{"front": 1}'), "'cameras' must be a JSON list"),
    (lambda f: f.attrs.modify("status", "exploded"), "unknown status"),
    (lambda f: f.attrs.modify("success", "yes"), "success must be one of"),
    (lambda f: f.attrs.__setitem__("t0", "soon"), "'t0' must be a number"),
    (lambda f: f.__delitem__("ticks"), "missing group /ticks"),
    (lambda f: f.__delitem__("ticks/state"), "missing dataset /ticks/state"),
    (lambda f: f.__delitem__("cameras/wrist"), "camera 'wrist' is listed but /cameras/wrist is missing"),
    (lambda f: f.__delitem__("cameras/front/offset"), "missing dataset /cameras/front/offset"),
    (lambda f: f["cameras/front"].attrs.__delitem__("encoding"), "lacks attribute.*encoding"),
    (lambda f: f["cameras/front"].attrs.modify("encoding", "h264"), "unknown encoding"),
    (lambda f: (f.__delitem__("ticks/t"), f.create_dataset("ticks/t", data=np.zeros(200, np.float32))),
     "/ticks/t has dtype float32, expected float64"),
    (lambda f: (f.__delitem__("ticks/state"), f.create_dataset("ticks/state", data=np.zeros((200, 5), np.float32))),
     r"/ticks/state has rows of shape \(5,\), expected \(6,\)"),
    (lambda f: f["ticks/tick"].resize((0,)), "no ticks were recorded"),
])
def test_wrong_schema(good, change, reason):
    edit(good, change)
    with pytest.raises(EpisodeError, match=reason) as info:
        Episode.open(good)
    assert str(info.value).startswith(good.name)


def test_inconsistent_lengths_use_the_shortest(good):
    edit(good, lambda f: (f["ticks/state"].resize((150, 6)), f["cameras/front/size"].resize((7,))))
    with Episode.open(good) as ep:
        assert ep.tick_count(trimmed=False) == 150 and ep.ticks()["t"].shape == (150,)
        assert ep.frame_count("front", trimmed=False) == 7 and ep.frame_count("wrist", trimmed=False) == 10
        assert any("/ticks datasets differ in length" in issue for issue in ep.issues)
        assert any("/cameras/front datasets differ in length" in issue for issue in ep.issues)
    read_everything(good)


def test_frames_whose_bytes_are_missing_are_cut(good):
    with h5py.File(good, "r") as f:
        last_offset = int(f["cameras/wrist/offset"][8])
    edit(good, lambda f: f["cameras/wrist/data"].resize((last_offset + 10,)))  # frame 8 cut short, 9 gone
    with Episode.open(good) as ep:
        assert ep.frame_count("wrist", trimmed=False) == 8
        assert any("frame(s) with missing bytes" in issue for issue in ep.issues)
    read_everything(good)


def test_undecodable_frame(good):
    def scramble(f):
        offset, size = int(f["cameras/front/offset"][3]), int(f["cameras/front/size"][3])
        f["cameras/front/data"][offset: offset + size] = np.zeros(size, np.uint8)

    edit(good, scramble)
    with Episode.open(good) as ep:
        ep.frame("front", 2, trimmed=False)
        with pytest.raises(EpisodeError, match="frame 3 of 'front' cannot be decoded"):
            ep.frame("front", 3, trimmed=False)


@pytest.mark.parametrize("seed", range(40))
def test_random_damage_never_escapes_as_another_exception(good, seed):
    """Truncations, flipped bytes and overwritten runs anywhere: reading and repairing succeed or raise EpisodeError."""
    rng = random.Random(seed)
    data = bytearray(good.read_bytes())
    kind = seed % 3
    if kind == 0:
        data = data[: rng.randrange(len(data))]
    elif kind == 1:
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    else:
        i = rng.randrange(len(data))
        data[i: i + 4096] = rng.randbytes(len(data[i: i + 4096]))
    good.write_bytes(bytes(data))
    for attempt in (read_everything, lambda path: repair(path, idle_s=0), read_everything):
        try:
            attempt(good)
        except EpisodeError as exc:
            assert str(exc)
