"""The whole loop on the miniature shapes track: determinism, caching, resume after SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import open_clip
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO

from benchmark.cli import main
from benchmark.pipeline import Runner
from benchmark.spec.load import load_recipe
from benchmark.store import Store
from benchmark.track_models import weights_digest

STEPS = "steps:\n  - op: language\n  - op: caption_length\n    min_words: 2\n"


def _run(store: Path, recipe: Path, seed: int = 0) -> dict:
    return Runner(Store(store)).run(load_recipe(recipe), "micro", seed)


@pytest.mark.slow
def test_same_recipe_and_seed_give_identical_uids_and_metrics(tmp_path, recipe):
    r = recipe(STEPS)
    a, b = _run(tmp_path / "a", r), _run(tmp_path / "b", r)
    assert a["curated"]["uid_hash"] == b["curated"]["uid_hash"]
    assert a["headline"] == b["headline"]
    assert a["tasks"]["zeroshot"]["metrics"] == b["tasks"]["zeroshot"]["metrics"]
    c = _run(tmp_path / "a", r, seed=1)
    assert c["curated"]["uid_hash"] == a["curated"]["uid_hash"]  # curation is seed-free
    assert c["headline"] != a["headline"]


@pytest.mark.slow
def test_rerun_does_no_work_and_samples_seen_is_fixed(tmp_path, recipe):
    r = recipe(STEPS)
    first = _run(tmp_path, r)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("manifest.json")}
    t0 = time.perf_counter()
    again = _run(tmp_path, r)
    assert time.perf_counter() - t0 < 5
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("manifest.json")} == stamps
    assert again["headline"] == first["headline"]
    train = first["train"]
    assert train["samples_seen"] == 1024  # the scale's budget, whatever was kept
    assert train["curated_size"] == first["curated"]["size"] < 600
    assert train["epochs"] > 1024 / 600


@pytest.mark.slow
def test_sigkill_during_training_then_rerun_matches_uninterrupted(tmp_path, recipe):
    r = recipe(STEPS)
    reference = _run(tmp_path / "clean", r)
    runs = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "benchmark.cli",
        "--runs",
        str(runs),
        "run",
        str(r),
        "--scale",
        "micro",
        "--seeds",
        "0",
        "--leaderboard",
        str(tmp_path / "lb"),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(runs.glob("train/*.partial/checkpoint.pt")):
        assert proc.poll() is None, "run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(runs.glob("train/*/manifest.json")), "a killed stage must not look finished"
    step = torch.load(next(runs.glob("train/*.partial/checkpoint.pt")), weights_only=True)["step"]
    assert 0 < step < 16
    resumed = _run(runs, r)
    assert resumed["train"]["resumed_from"] >= step
    assert resumed["headline"] == reference["headline"]


@pytest.mark.slow
def test_checkpoint_loads_in_open_clip_and_uids_are_datacomp_npy(tmp_path, recipe):
    result = _run(tmp_path, recipe(STEPS))
    model_dir = Path(result["tasks"]["zeroshot"]["model"])
    model, _, _ = open_clip.create_model_and_transforms(
        "shapes-vit-tiny", pretrained=str(model_dir / "open_clip_model.safetensors")
    )
    local, _, _ = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    for a, b in zip(model.state_dict().values(), local.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    (curated,) = tmp_path.glob("curate/*/uids.npy")
    uids = np.load(curated)
    assert uids.dtype == np.dtype("u8,u8") and len(uids) == result["curated"]["size"]


@pytest.mark.slow
def test_cli_run_prints_row_and_writes_leaderboard(tmp_path, recipe, capsys):
    r = recipe("steps:\n  - op: no_filter\n", name="plain")
    code = main(
        [
            "--runs",
            str(tmp_path / "runs"),
            "run",
            str(r),
            "--scale",
            "micro",
            "--seeds",
            "0,1",
            "--leaderboard",
            str(tmp_path / "lb"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "plain (2 seeds, suite v1): headline " in out
    page = (tmp_path / "lb" / "shapes-test.md").read_text()
    assert "| 1 | plain `" in page and " ± " in page
    results = list((tmp_path / "lb" / "results" / "shapes-test" / "micro").rglob("*.json"))
    assert len(results) == 2
    res = json.loads(results[0].read_text())
    for key in ("recipe_hash", "suite_version", "versions", "costs", "curated", "seed"):
        assert key in res
    # the same runs in parallel worker processes give the same results
    args = ["run", str(r), "--scale", "micro", "--seeds", "0,1", "--jobs", "2"]
    assert (
        main(["--runs", str(tmp_path / "runs2"), *args, "--leaderboard", str(tmp_path / "lb2")])
        == 0
    )
    parallel = sorted((tmp_path / "lb2" / "results" / "shapes-test" / "micro").rglob("*.json"))
    for a, b in zip(sorted(results), parallel, strict=True):
        assert json.loads(a.read_text())["headline"] == json.loads(b.read_text())["headline"]


@pytest.mark.slow
def test_clip_score_with_trained_reference_reports_quality(tmp_path, recipe, capsys):
    r = recipe("steps:\n  - op: clip_score\n    fraction: 0.5\n")
    assert main(["--runs", str(tmp_path), "curate", str(r), "--report"]) == 0
    out = capsys.readouterr().out
    assert "clip_score" in out and "precision" in out and "recall" in out
    (report,) = tmp_path.glob("curate/*/report.json")
    record = json.loads(report.read_text())
    step = record["steps"][0]
    assert step["rows_out"] == 301  # DataComp's cut keeps the score at index int(600 * 0.5)
    assert step["quality"]["precision"] > 0.45  # the pool is 55% defective; better than chance
    assert list(tmp_path.glob("reference/*/open_clip_model.safetensors"))
    # training the reference on first use is the track's cost, not the recipe's
    (train,) = tmp_path.glob("reference/*/train.json")
    assert step["setup_s"] >= json.loads(train.read_text())["wall_s"]
    assert record["setup_s"] == step["setup_s"]
    assert step["wall_s"] < step["setup_s"]
    # the record names the reference build by its weights, so curations on builds that differ
    # (another machine's numerics) can be told apart
    (ref_dir,) = {p.parent for p in tmp_path.glob("reference/*/open_clip_model.safetensors")}
    assert record["weights"] == {"reference": weights_digest(str(ref_dir))}


@pytest.mark.slow
def test_negclip_with_rewrites_trains_and_differs_from_clip(tmp_path, recipe):
    track = tmp_path / "neg-track.yaml"
    text = (REPO / "tests" / "tracks" / "shapes-test.yaml").read_text()
    track.write_text(text.replace("losses: [clip]", "losses: [clip, negclip]"))
    body = (
        f"name: neg\ntrack: {track}\nsteps:\n  - op: language\n  - op: rewrite\n    k: 2\n"
        "  - op: hard_negatives\n    vocabulary: shapes\n"
    )
    clip_recipe, neg_recipe = tmp_path / "c.yaml", tmp_path / "n.yaml"
    clip_recipe.write_text(body)
    neg_recipe.write_text(body + "loss: negclip\n")
    clip_run, neg_run = _run(tmp_path / "s", clip_recipe), _run(tmp_path / "s", neg_recipe)
    assert clip_run["curated"]["uid_hash"] == neg_run["curated"]["uid_hash"]
    assert clip_run["train"]["final_loss"] != neg_run["train"]["final_loss"]
    (curated,) = (tmp_path / "s").glob("curate/*/curated.parquet")
    cols = pq.read_table(curated).column_names
    assert "caption_rewrites" in cols and "negative_captions" in cols
