"""The shapes world and pool: seeded, defects at their rates, boxes that match the pixels."""

from __future__ import annotations

from collections import Counter

import numpy as np

from benchmark.evaluate.shapes import CHOICE_TASKS, choice_items
from benchmark.pools.shapes import Defects, ShapesPool, build
from benchmark.pools.shards import ShardReader
from benchmark.world import BACKGROUND, Scene, render, sample_objects


def test_pool_is_deterministic_and_defects_follow_rates(tmp_path):
    p = ShapesPool(
        size=1500,
        image_size=32,
        defects=Defects(mismatched=0.2, junk=0.1, non_english=0.1, vague=0.1),
    )
    a = build(p, tmp_path / "a").table
    b = build(p, tmp_path / "b").table
    assert a.equals(b)
    counts = Counter(a.column("gt_defect").to_pylist())
    for defect, rate in [("mismatched", 0.2), ("junk", 0.1), ("non_english", 0.1)]:
        assert abs(counts[defect] / 1500 - rate) < 0.04
    assert len(set(a.column("uid").to_pylist())) == 1500
    reader = ShardReader(tmp_path / "a")
    assert reader.read_image(a.column("image")[1499].as_py()).size == (32, 32)


def test_boxes_cover_the_drawn_objects():
    rng = np.random.default_rng(3)
    objs = sample_objects(rng, 3)
    arr = np.asarray(render(Scene(objs, noise_seed=0)), dtype=int)
    for o in objs:
        x0, y0, x1, y1 = o.box
        patch = arr[y0:y1, x0:x1]
        assert (np.abs(patch - BACKGROUND).sum(-1) > 60).mean() > 0.3
    mask = np.ones(arr.shape[:2], bool)
    for o in objs:
        x0, y0, x1, y1 = o.box
        mask[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = False
    assert (np.abs(arr[mask] - BACKGROUND).max(-1) <= 6).all()  # only noise outside boxes


def test_choice_negatives_differ_from_positive_and_are_seeded():
    for task in CHOICE_TASKS:
        items = choice_items(task, 30)
        assert items == choice_items(task, 30)
        for _, captions in items:
            assert captions[0] not in captions[1:], (task, captions)
