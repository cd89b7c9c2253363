"""Selections and dataset operations on real episode files: copy, move, merge, split, export a selection."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from recordings import dataset_ops
from recordings.analysis.select import Condition, select
from recordings.edit import label
from recordings.reader import Episode

from command import cli  # isort: skip
from synthetic_episodes import make_episode  # isort: skip



def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(folder):
    """Every file under ``folder`` (hidden ones too) with its content hash."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def datasets(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    make_episode(a / "episode_000001.h5", seconds=0.6, seed=1, task="pick up the cube")
    make_episode(a / "episode_000002.h5", seconds=0.6, seed=2, task="pick up the cube", success="false")
    make_episode(a / "episode_000004.h5", seconds=0.6, seed=3, task="stack the cubes")
    make_episode(b / "episode_000001.h5", seconds=0.6, seed=4, task="stack the cubes")
    (b / ".trash").mkdir()
    make_episode(b / ".trash" / "episode_000005.h5", seconds=0.6, seed=5)
    return a, b


def test_copy_takes_new_names_above_the_trash_and_keeps_the_bytes(datasets):
    a, b = datasets
    before = snapshot(a)
    done = dataset_ops.copy_episodes(dataset_ops.resolve([a]), b)
    assert [new.name for _, new in done.copied] == ["episode_000006.h5", "episode_000007.h5", "episode_000008.h5"]
    for source, new in done.copied:
        assert digest(source) == digest(new)
    assert snapshot(a) == before  # sources untouched
    assert sorted(p.name for p in b.iterdir()) == [".trash", "episode_000001.h5", "episode_000006.h5",
                                                    "episode_000007.h5", "episode_000008.h5"]


def test_move_removes_sources_only_after_every_copy_is_checked(datasets, tmp_path):
    a, b = datasets
    sources = dataset_ops.resolve([str(a / "episode_00000[12].h5")])
    hashes = [digest(p) for p in sources]
    done = dataset_ops.move_episodes(sources, b)
    assert done.removed == sources and not any(p.exists() for p in sources)
    assert [digest(new) for _, new in done.copied] == hashes
    assert [p.name for p in dataset_ops.resolve([a])] == ["episode_000004.h5"]


def test_a_failed_move_leaves_both_sides_as_they_were(datasets, tmp_path):
    a, b = datasets
    (a / "episode_000009.h5").write_bytes(b"not an episode")  # refused before anything is copied
    before_a, before_b = snapshot(a), snapshot(b)
    with pytest.raises(Exception, match="episode_000009.h5"):
        dataset_ops.move_episodes(dataset_ops.resolve([a]), b)
    assert snapshot(a) == before_a and snapshot(b) == before_b


def test_a_copy_that_fails_halfway_removes_its_copies(datasets, monkeypatch):
    a, b = datasets
    before_a, before_b = snapshot(a), snapshot(b)
    real = dataset_ops._copy_bytes
    calls = []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(dataset_ops, "_copy_bytes", flaky)
    with pytest.raises(OSError, match="No space left"):
        dataset_ops.move_episodes(dataset_ops.resolve([a]), b)
    assert snapshot(a) == before_a and snapshot(b) == before_b


def test_never_overwrites_a_name_taken_meanwhile(datasets, monkeypatch):
    a, b = datasets
    taken = b / "episode_000006.h5"
    taken.write_bytes(b"someone else's file")
    real_next = dataset_ops.next_episode_path
    answers = iter([taken])  # the first answer is stale: a writer took the name after it was computed
    monkeypatch.setattr(dataset_ops, "next_episode_path", lambda d: next(answers, None) or real_next(d))
    done = dataset_ops.copy_episodes([a / "episode_000001.h5"], b)
    assert taken.read_bytes() == b"someone else's file" and done.copied[0][1].name == "episode_000007.h5"


def test_split_is_seeded_and_complete(datasets, tmp_path):
    a, b = datasets
    files = dataset_ops.resolve([a, b])
    train, val = dataset_ops.split(files, tmp_path / "train", tmp_path / "val", 0.5, seed=3)
    again_train, again_val = dataset_ops.split(files, tmp_path / "train2", tmp_path / "val2", 0.5, seed=3)
    assert [s for s, _ in train.copied] == [s for s, _ in again_train.copied]
    assert len(val.copied) == 2 and len(train.copied) == 2
    assert sorted(s for s, _ in train.copied + val.copied) == sorted(files)
    other = [dataset_ops.split(files, tmp_path / f"t{k}", tmp_path / f"v{k}", 0.5, seed=k)[1] for k in range(6)]
    assert len({tuple(s for s, _ in v.copied) for v in other}) > 1  # the seed matters
    with pytest.raises(ValueError, match="different folders"):
        dataset_ops.split(files, tmp_path / "same", tmp_path / "same", 0.5, seed=0)


def test_where_conditions(datasets):
    a, b = datasets
    files = dataset_ops.resolve([a, b])
    names = lambda paths: [f"{p.parent.name}/{p.name}" for p in paths]
    assert names(select(files, ["success=true"])) == ["a/episode_000001.h5", "a/episode_000004.h5",
                                                      "b/episode_000001.h5"]
    assert names(select(files, ["task=stack*", "success!=false"])) == ["a/episode_000004.h5", "b/episode_000001.h5"]
    assert select(files, ["source=human"]) == files and select(files, ["source=policy"]) == []
    assert select(files, ["flag=none"]) == files and select(files, ["flag=still"]) == []
    for bad in ("colour=red", "success=maybe", "flag=wobbly", "task"):
        with pytest.raises(ValueError, match="--where"):
            Condition.parse(bad)


def test_cli_copy_move_merge_split_and_export_a_selection(datasets, tmp_path):
    a, b = datasets
    out = cli("episodes", "copy", a / "episode_000001.h5", "--to", tmp_path / "c").stdout
    assert "copied 1 episode(s)" in out and (tmp_path / "c/episode_000001.h5").exists()
    out = cli("episodes", "merge", a, b, "--out", tmp_path / "merged", "--where", "success=true").stdout
    assert "merged 3 episode(s)" in out and len(list((tmp_path / "merged").glob("*.h5"))) == 3
    out = cli("episodes", "split", tmp_path / "merged", "--train", tmp_path / "tr", "--val", tmp_path / "va",
              "--val-fraction", "0.34", "--seed", "7").stdout
    assert "2 to" in out and "1 to" in out
    label(a / "episode_000004.h5", task="stack the cubes high")
    cli("export", "lerobot", a, str(b / "*.h5"), "--where", "task=stack*", "--out", tmp_path / "lr")
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_tasks"] == 2
    out = cli("episodes", "move", str(a / "*.h5"), "--to", tmp_path / "m", "--where", "success=false").stdout
    assert "moved 1 episode(s)" in out and not (a / "episode_000002.h5").exists()
    err = cli("episodes", "copy", tmp_path / "nothing_here", "--to", tmp_path / "x", code=2).stderr
    assert err.strip() == f"teleop-app: {tmp_path / 'nothing_here'}: no such file or folder"
    err = cli("export", "aloha", a, "--where", "flag=still", "--out", tmp_path / "y", code=2).stderr
    assert err.strip() == "teleop-app: no episode meets the --where conditions" and not (tmp_path / "y").exists()
