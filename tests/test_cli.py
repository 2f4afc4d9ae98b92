"""The command line a user types: help, op listing, pool download planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.cli import main


def test_help_explains_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("run", "validate", "curate", "leaderboard", "ops", "pool", "examples:"):
        assert word in out


def test_ops_lists_every_builtin_with_params(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for name in (
        "no_filter",
        "caption_length",
        "image_size",
        "language",
        "dedup",
        "clip_score",
        "random",
        "grouped",
    ):
        assert f"{name}  [" in out
    assert "fraction:" in out and "min_words:" in out


def test_pool_download_coco_dry_run_plans_official_files(tmp_path: Path, capsys):
    assert main(["pool", "download", "coco", "--to", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "train2017.zip" in out and "annotations_trainval2017.zip" in out
    assert not list(tmp_path.iterdir())  # nothing fetched


def test_pool_download_cc3m_needs_tsv(tmp_path: Path, capsys):
    assert main(["pool", "download", "cc3m", "--to", str(tmp_path)]) == 2
    assert "--tsv" in capsys.readouterr().err


def test_pool_download_cc3m_dry_run_builds_img2dataset_call(tmp_path: Path, capsys):
    tsv = tmp_path / "cc3m.tsv"
    tsv.write_text("a dog on a beach\thttp://example.invalid/1.jpg\n")
    out_dir = tmp_path / "out"
    assert (
        main(["pool", "download", "cc3m", "--to", str(out_dir), "--tsv", str(tsv), "--dry-run"])
        == 0
    )
    cmd = capsys.readouterr().out
    assert cmd.startswith("img2dataset") and "webdataset" in cmd


def test_bad_seeds_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "recipes/baselines/no_filter.yaml", "--seeds", "a,b"])
    assert e.value.code == 2
    assert "comma-separated integers" in capsys.readouterr().err
