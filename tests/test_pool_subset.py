"""A pool's seeded image subset on coco-mini: deterministic, every caption of a chosen image kept,
the whole pool's shards shared, and the subset named by its uid hash."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from benchmark.pipeline import Runner
from benchmark.pools.coco import CocoPool
from benchmark.spec.load import load_track
from benchmark.store import Store


def coco_mini_track(tmp_path: Path, samples: Path, name: str, subset: str = "") -> Path:
    track = tmp_path / f"{name}.yaml"
    track.write_text(
        f"name: t\ndata_root: {samples}\n"
        f"pool: {{kind: coco, root: coco-mini{subset}}}\n"
        "eval_images: [{name: val, dir: coco-mini/val2017, dataset: coco}]\n"
        "eval: {suite: s, version: '1', tasks: [zeroshot]}\n"
        "scales:\n  a: {model: shapes-vit-tiny, samples_seen: 64, batch_size: 8, lr: 0.001,"
        " warmup: 0, weight_decay: 0, seeds: [0]}\n"
    )
    return track


def captions_per_image(table) -> Counter:
    return Counter(table.column("image_group").to_pylist())


def subset_reports(runs: Path) -> list[dict]:
    reports = [json.loads(p.read_text()) for p in (runs / "pool").glob("*/report.json")]
    return [r for r in reports if "subset" in r]


def test_subset_keeps_all_captions_of_its_seeded_images(tmp_path: Path, samples: Path):
    runner = Runner(Store(tmp_path / "runs"))
    whole = captions_per_image(
        runner.track_pool(load_track(coco_mini_track(tmp_path, samples, "t")))
    )
    assert len(whole) == 80

    def subset(images: int, seed: int, store: Path = tmp_path / "runs"):
        option = f", subset: {{images: {images}, seed: {seed}}}"
        spec = load_track(coco_mini_track(tmp_path, samples, f"t{images}-{seed}", option))
        return Runner(Store(store)).track_pool(spec)

    table = subset(20, 0)
    chosen = captions_per_image(table)
    assert len(chosen) == 20
    assert all(chosen[g] == whole[g] for g in chosen)  # every caption of each chosen image
    # the whole pool's shards are shared: the subset stage holds a table and a report only
    subset_dirs = [p.parent for p in (tmp_path / "runs" / "pool").glob("*/report.json")]
    assert sum(1 for d in subset_dirs if not list(d.glob("*.tar"))) == 1
    (report,) = subset_reports(tmp_path / "runs")
    assert report["subset"] == {"images": 20, "seed": 0} and report["rows"] == table.num_rows

    again = subset(20, 0, tmp_path / "elsewhere")  # another store builds the same subset
    assert again.column("uid").to_pylist() == table.column("uid").to_pylist()
    assert subset_reports(tmp_path / "elsewhere")[0]["uid_hash"] == report["uid_hash"]
    assert set(captions_per_image(subset(20, 1))) != set(chosen)  # the seed picks the images
    assert set(captions_per_image(subset(10, 0))) < set(chosen)  # smaller subsets nest
    with pytest.raises(ValueError, match="81 images asked for, but the pool holds 80"):
        subset(81, 0)


def test_a_pool_without_subset_dumps_as_before(tmp_path: Path):
    """Run-store keys come from the dump: adding the option must not rebuild existing pools."""
    assert "subset" not in CocoPool(root=tmp_path).model_dump(mode="json")
    dumped = CocoPool(root=tmp_path, subset={"images": 3}).model_dump(mode="json")
    assert dumped["subset"] == {"images": 3, "seed": 0}
