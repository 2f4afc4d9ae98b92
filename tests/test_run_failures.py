"""Runs that meet a damaged stage, a full disk, or a recipe training cannot use: a damaged stage
is rebuilt, and everything else ends in one line naming the stage or step, exit 2."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from conftest import TEST_TRACK

from benchmark.cli import main
from benchmark.ops.context import StepContext
from benchmark.pipeline import Runner
from benchmark.pools.shards import ShardReader
from benchmark.spec.load import load_recipe, load_track
from benchmark.store import Store


def _error(capsys) -> str:
    """The one error line a failed command printed (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("smallcomp: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0].removeprefix("smallcomp: error: ")


def _recipe(tmp_path: Path, body: str, *edits: tuple[str, str]) -> Path:
    """A recipe on a copy of the test track with ``edits`` (old, new) made to its text."""
    text = TEST_TRACK.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    track = tmp_path / "track.yaml"
    track.write_text(text)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ntrack: {track}\n{body}")
    return recipe


def _run(runs: Path, recipe: Path) -> int:
    args = ["run", str(recipe), "--scale", "micro", "--leaderboard", str(runs.parent / "lb")]
    return main(["--runs", str(runs), *args])


def test_truncated_curated_parquet_is_rebuilt(tmp_path: Path, recipe, capsys):
    spec = load_recipe(recipe("steps:\n  - op: caption_length\n    min_words: 2\n"))
    runner = Runner(Store(tmp_path))
    table, _ = runner.curate(spec)
    (parquet,) = tmp_path.glob("curate/*/curated.parquet")
    os.truncate(parquet, parquet.stat().st_size // 2)
    capsys.readouterr()
    again, _ = runner.curate(spec)
    err = capsys.readouterr().err
    assert "[pool] cached" in err and "[curate] rebuilding: curated.parquet is " in err
    assert again.equals(table)


def test_truncated_pool_shard_is_rebuilt_before_reuse(tmp_path: Path, capsys):
    track = load_track(TEST_TRACK)
    runner = Runner(Store(tmp_path))
    table = runner.track_pool(track)
    (shard,) = tmp_path.glob("pool/*/*.tar")
    whole = shard.stat().st_size
    os.truncate(shard, whole // 2)
    capsys.readouterr()
    assert runner.track_pool(track).equals(table)
    err = capsys.readouterr().err
    assert f"[pool] rebuilding: {shard.name} is {whole // 2:,} bytes, its manifest says" in err
    assert shard.stat().st_size == whole


def test_shard_damaged_in_place_is_counted_and_its_curation_not_kept(
    tmp_path: Path, recipe, capsys
):
    r = recipe("steps:\n  - op: dedup\n")
    runs = tmp_path / "runs"
    table = Runner(Store(runs)).track_pool(load_recipe(r).track)
    (shard,) = runs.glob("pool/*/*.tar")
    size = shard.stat().st_size
    with shard.open("r+b") as f:  # the second half zeroed: same size, so reuse cannot tell
        f.seek(size // 2)
        f.write(bytes(size - size // 2))
    ctx = StepContext("steps[0] (dedup)", ShardReader(runs), 0, tmp_path / "w")
    read = sum(im is not None for _, images in ctx.iter_images(table) for im in images)
    assert 0 < ctx.unreadable < table.num_rows and read + ctx.unreadable == table.num_rows
    assert list(ctx.reader.damaged) == [str(shard.relative_to(runs))]
    capsys.readouterr()
    assert main(["--runs", str(runs), "curate", str(r)]) == 2
    line = _error(capsys)
    assert line.startswith(f"[curate] not kept: images lost to damaged shards: {shard} (")
    assert not list(runs.glob("curate/*/manifest.json"))


def test_disk_full_while_curating_is_one_line_and_leaves_nothing(
    tmp_path: Path, recipe, capsys, monkeypatch
):
    r = recipe("steps:\n  - op: no_filter\n")
    runs = tmp_path / "runs"
    Runner(Store(runs)).track_pool(load_recipe(r).track)

    def full(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28]")

    monkeypatch.setattr(pq, "write_table", full)
    assert main(["--runs", str(runs), "curate", str(r)]) == 2
    line = _error(capsys)
    assert line.startswith("[curate] disk full writing ") and " MiB free; " in line
    assert "partial output removed" in line
    assert [p.suffix for p in (runs / "curate").iterdir()] == [".lock"]  # no stage, no partial


@pytest.mark.slow
def test_disk_full_at_a_checkpoint_is_one_line_and_leaves_no_tmp(
    tmp_path: Path, capsys, monkeypatch
):
    every_step = ("checkpoint_every: 4", "checkpoint_every: 1")
    r = _recipe(tmp_path, "steps:\n  - op: no_filter\n", every_step)
    runs = tmp_path / "runs"
    Runner(Store(runs)).curate(load_recipe(r))

    def full(obj, where, **kwargs):  # what torch.save does on a full disk
        Path(where).write_bytes(b"PK half a zip")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=4096))
    assert _run(runs, r) == 2
    line = _error(capsys)
    assert line.startswith("[train] disk full writing ") and "0.0 MiB free" in line
    assert "inline_container.cc" in line
    assert not list(runs.rglob("checkpoint.tmp"))
    assert not list(runs.glob("train/*/manifest.json"))


def test_sampler_without_its_column_is_one_line_naming_it(tmp_path: Path, recipe, capsys):
    """Caught from the recipe alone, before curation: no step writes the sampler's column."""
    r = recipe("steps:\n  - op: no_filter\nsampler:\n  op: paired\n")
    assert _run(tmp_path / "runs", r) == 2
    err = _error(capsys)
    assert err.startswith(f"{r}:6:7: field 'sampler': 'paired' reads column 'parent_uid'"), err
    assert not (tmp_path / "runs" / "curate").exists()


def test_negclip_without_hard_negatives_is_refused_before_curation(tmp_path: Path, capsys):
    r = _recipe(
        tmp_path,
        "steps:\n  - op: no_filter\nloss: negclip\n",
        ("losses: [clip]", "losses: [clip, negclip]"),
    )
    assert _run(tmp_path / "runs", r) == 2
    assert _error(capsys) == (
        f"{r}:5:7: field 'loss': negclip trains on column 'negative_captions', which no step "
        "writes; add a 'hard_negatives' step"
    )
    assert not (tmp_path / "runs" / "curate").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "steps:\n  - op: caption_length\n    min_words: 1000\n",
            "train: the curated set has 0 rows, fewer than one batch of 64",
        ),
    ],
)
def test_training_the_recipe_cannot_do_is_one_line_naming_it(tmp_path: Path, capsys, body, message):
    r = _recipe(tmp_path, body, ("losses: [clip]", "losses: [clip, negclip]"))
    assert _run(tmp_path / "runs", r) == 2
    assert _error(capsys) == f"{r}: {message}"
