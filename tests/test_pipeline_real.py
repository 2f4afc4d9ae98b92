"""The loop on real packs: the coco-mini track end to end, and the contamination guard."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from benchmark.cli import main
from benchmark.pipeline import Runner
from benchmark.spec.load import load_track
from benchmark.store import Store


def test_pool_stage_removes_eval_images(tmp_path: Path, samples: Path):
    val = sorted((samples / "coco-mini" / "val2017").glob("*.jpg"))[:12]
    train = sorted((samples / "coco-mini" / "train2017").glob("*.jpg"))[:12]
    pq.write_table(
        pa.table(
            {"url": [str(p) for p in val + train], "caption": [f"photo {i}" for i in range(24)]}
        ),
        tmp_path / "pool.parquet",
    )
    track = tmp_path / "t.yaml"
    track.write_text(
        f"name: t\ndata_root: {samples}\npool: {{kind: byod, path: {tmp_path / 'pool.parquet'}}}\n"
        "eval_images: [{name: val, dir: coco-mini/val2017}]\n"
        "eval: {suite: s, version: '1', tasks: [zeroshot]}\n"
        "scales:\n  a: {model: shapes-vit-tiny, samples_seen: 64, batch_size: 8, lr: 0.001,"
        " warmup: 0, weight_decay: 0, seeds: [0]}\n"
    )
    spec = load_track(track)
    runner = Runner(Store(tmp_path / "runs"))
    table = runner.track_pool(spec)
    assert table.num_rows == 12
    (report,) = (tmp_path / "runs" / "pool").glob("*/report.json")
    found = json.loads(report.read_text())["contamination"]
    assert found["removed_rows"] == 12 and found["by_set"]["val"]["hash"] == 12


@pytest.mark.slow
def test_coco_mini_track_runs_end_to_end(tmp_path: Path, samples: Path, capsys, monkeypatch):
    monkeypatch.setenv("SMALLCOMP_SAMPLES", str(samples))
    code = main(
        [
            "--runs",
            str(tmp_path / "runs"),
            "run",
            str(REPO / "recipes" / "baselines" / "no_filter.yaml"),
            "--track",
            "coco-mini",
            "--seeds",
            "0",
            "--leaderboard",
            str(tmp_path / "lb"),
        ]
    )
    assert code == 0
    (result,) = (tmp_path / "lb" / "results" / "coco-mini" / "tiny").rglob("*.json")
    res = json.loads(result.read_text())
    assert res["curated"]["pool_size"] == 400
    subsets = res["tasks"]["sugarcrepe"]["subsets"].values()
    assert sum(s["items"] for s in subsets) == 7511
    assert sum(s["evaluated"] for s in subsets) == 211
    assert res["tasks"]["imagenet"]["counts"]["images"] == 1000
    assert set(res["headline"]) == {"imagenet", "sugarcrepe", "coco_order", "retrieval_coco"}
    assert "| 1 | no_filter `" in (tmp_path / "lb" / "coco-mini.md").read_text()


def test_karpathy_test_ids_leave_the_coco_pool(tmp_path: Path, samples: Path):
    ids = sorted(int(p.stem) for p in (samples / "coco-mini" / "train2017").glob("*.jpg"))[:5]
    split = tmp_path / "dataset_coco.json"
    split.write_text(
        json.dumps(
            {
                "images": [
                    {"cocoid": i, "filename": f"COCO_val2014_{i:012d}.jpg", "split": "test"}
                    for i in ids
                ]
                + [{"cocoid": 1, "filename": "x.jpg", "split": "train"}]
            }
        )
    )
    track = tmp_path / "t.yaml"
    track.write_text(
        f"name: t\ndata_root: {samples}\npool: {{kind: coco, root: coco-mini}}\n"
        f"eval_images: [{{name: karpathy, split_file: {split}, dataset: coco}}]\n"
        "eval: {suite: s, version: '1', tasks: [zeroshot]}\n"
        "scales:\n  a: {model: shapes-vit-tiny, samples_seen: 64, batch_size: 8, lr: 0.001,"
        " warmup: 0, weight_decay: 0, seeds: [0]}\n"
    )
    table = Runner(Store(tmp_path / "runs")).track_pool(load_track(track))
    left = {int(g) for g in table.column("image_group").to_pylist()}
    assert not left & set(ids)
    assert len(left) == 75 and table.num_rows == 400 - 25
