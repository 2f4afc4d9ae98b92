"""The run store under stress: concurrent runs, files damaged after the fact, a full disk."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import TEST_TRACK

from benchmark import train
from benchmark.cli import main
from benchmark.store import Store, StoreError


def _build_slowly(root: Path, log: Path, release: Path) -> None:
    """One run's stage: records that its body ran (pid and work dir inode), then waits."""

    def build(work: Path) -> None:
        with log.open("a") as f:
            f.write(f"{os.getpid()} {work.stat().st_ino}\n")
        deadline = time.time() + 20
        while not release.exists() and time.time() < deadline:
            time.sleep(0.01)
        (work / "out.txt").write_text("first")

    # the stage's status lines, for the test to wait on
    sys.stderr = (root.parent / f"stderr-{os.getpid()}.txt").open("w", buffering=1)
    Store(root).stage("pool", {"a": 1}).ensure(build)


def _wait_for(predicate, what: str) -> None:
    deadline = time.time() + 20
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_second_of_two_concurrent_runs_reuses_the_first(tmp_path: Path):
    root, log, release = tmp_path / "runs", tmp_path / "log.txt", tmp_path / "release"
    ctx = multiprocessing.get_context("fork")
    first = ctx.Process(target=_build_slowly, args=(root, log, release))
    first.start()
    _wait_for(lambda: log.exists() and log.read_text(), "the first run to start building")
    second = ctx.Process(target=_build_slowly, args=(root, log, release))
    second.start()
    waiting = tmp_path / f"stderr-{second.pid}.txt"
    _wait_for(lambda: waiting.exists() and "waiting" in waiting.read_text(), "the second to wait")
    release.touch()
    first.join(20)
    second.join(20)
    assert first.exitcode == 0 and second.exitcode == 0
    (built,) = log.read_text().splitlines()  # the body ran once
    stage = Store(root).stage("pool", {"a": 1})
    assert stage.done and (stage.path / "out.txt").read_text() == "first"
    assert stage.path.stat().st_ino == int(built.split()[1])  # the first's dir, never replaced
    assert "built by another run meanwhile" in waiting.read_text()


def _write_table(work: Path) -> None:
    pq.write_table(pa.table({"x": list(range(20_000))}), work / "curated.parquet")
    (work / "report.json").write_text("{}")


def test_truncated_file_rebuilds_the_stage_with_a_notice(tmp_path: Path, capsys):
    stage = Store(tmp_path).stage("curate", {"a": 1})
    stage.ensure(_write_table)
    files = stage.manifest()["files"]
    assert set(files) == {"curated.parquet", "report.json"}
    whole = (stage.path / "curated.parquet").stat().st_size
    assert files["curated.parquet"]["bytes"] == whole
    os.truncate(stage.path / "curated.parquet", whole // 2)
    assert not stage.done
    capsys.readouterr()
    stage.ensure(_write_table)
    err = capsys.readouterr().err
    assert f"[curate] rebuilding: curated.parquet is {whole // 2:,} bytes" in err
    assert pq.read_table(stage.path / "curated.parquet").num_rows == 20_000


def test_small_file_changed_in_place_fails_its_hash(tmp_path: Path):
    stage = Store(tmp_path).stage("evaluate", {"a": 1})
    stage.ensure(lambda work: (work / "results.json").write_text('{"top1": 0.5}'))
    (stage.path / "results.json").write_text('{"top1": 0.9}')  # same size, other content
    assert stage.damage() == "results.json does not match its manifest's sha256"
    (stage.path / "results.json").unlink()
    assert stage.damage() == "results.json is missing"


def test_manifest_from_before_file_lists_is_reused(tmp_path: Path):
    stage = Store(tmp_path).stage("pool", {"a": 1})
    stage.ensure(lambda work: (work / "pool.parquet").write_text("x"))
    (stage.path / "manifest.json").write_text('{"stage": "pool"}')
    assert stage.done


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 256 KiB tmpfs: a real full disk (needs root and mount, as here and in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_is_one_line_and_leaves_nothing(tiny_disk: Path):
    stage = Store(tiny_disk).stage("curate", {"a": 1})

    def write_big(work: Path) -> None:
        np.save(work / "uids.npy", np.zeros(1 << 16))  # 512 KiB: numpy reports no errno

    with pytest.raises(StoreError) as e:
        stage.ensure(write_big)
    line = str(e.value)
    assert line.startswith(f"[curate] disk full writing {stage.partial}: ")
    assert "MiB free" in line and "\n" not in line
    assert not stage.path.exists() and not stage.partial.exists()


def test_disk_full_building_a_pool_is_one_line_through_the_cli(tiny_disk: Path, capsys):
    assert main(["--runs", str(tiny_disk), "pool", "build", str(TEST_TRACK)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("smallcomp: error: ")]
    assert len(lines) == 1 and "Traceback" not in err and "Exception ignored" not in err
    assert lines[0].startswith("smallcomp: error: [pool] disk full writing ")
    assert [p.suffix for p in (tiny_disk / "pool").iterdir()] == [".lock"]


def test_full_disk_at_a_checkpoint_keeps_the_last_one_and_no_tmp(tiny_disk: Path):
    stage = Store(tiny_disk).stage("train", {"a": 1})
    small, big = torch.nn.Linear(8, 8), torch.nn.Linear(256, 256)  # 0.5 MiB of weights

    def train_until_full(work: Path) -> None:
        train._save_checkpoint(
            work / train.CHECKPOINT, small, torch.optim.SGD(small.parameters()), 4
        )
        train._save_checkpoint(work / train.CHECKPOINT, big, torch.optim.SGD(big.parameters()), 8)

    with pytest.raises(StoreError, match=r"^\[train\] disk full writing .*RuntimeError"):
        stage.ensure(train_until_full, resume=True)
    assert not stage.path.exists()
    assert sorted(p.name for p in stage.partial.iterdir()) == [train.CHECKPOINT]
    assert torch.load(stage.partial / train.CHECKPOINT, weights_only=True)["step"] == 4
