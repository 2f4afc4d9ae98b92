"""The shapes world and pool: seeded, defects at their rates, boxes that match the pixels."""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pytest

from benchmark.evaluate.shapes import CHOICE_TASKS, choice_items
from benchmark.pools import shapes
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


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to spawn workers")
def test_pool_built_in_worker_processes_is_the_one_built_here(tmp_path, monkeypatch):
    p = ShapesPool(size=650, image_size=32, defects=Defects(mismatched=0.2, near_duplicate=0.2))
    here = build(p, tmp_path / "here")
    monkeypatch.setattr(shapes, "PARALLEL_MIN", 1)
    monkeypatch.setattr(shapes, "CHUNK", 100)  # 7 chunks over the workers, the last of 50
    spawned = build(p, tmp_path / "spawned")
    assert spawned.table.equals(here.table)
    a, b = ShardReader(tmp_path / "here"), ShardReader(tmp_path / "spawned")
    for ref in here.table.column("image").to_pylist():
        assert a.read_bytes(ref) == b.read_bytes(ref)


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


def test_choice_tasks_ask_about_the_same_scenes():
    tasks = ["attribution", "order", "replace_obj", "swap_obj", "swap_att", "add_att"]
    scenes = {task: [objs for objs, _ in choice_items(task, 50)] for task in tasks}
    assert all(s == scenes["attribution"] for s in scenes.values())
    assert all(len(objs) == 2 for objs in scenes["attribution"])


def test_add_att_negative_binds_a_colour_that_is_in_the_scene_to_the_wrong_object():
    for (a, b), (positive, negative) in choice_items("add_att", 200):
        assert positive.endswith(f"a {b.shape}")
        assert negative.endswith(f"{a.colour} {b.shape}") and a.colour != b.colour


def test_order_items_have_four_distinct_perturbations():
    for _, captions in choice_items("order", 200):
        assert len(captions) == 5 and len(set(captions)) == 5
        assert all(sorted(c.split()) == sorted(captions[0].split()) for c in captions)


def test_item_noise_is_the_bootstrap_spread_of_the_items():
    from benchmark.evaluate.choice import item_se

    rng = np.random.default_rng(0)
    correct = rng.random(10_000) < 0.7
    direct = [correct[rng.integers(len(correct), size=len(correct))].mean() for _ in range(400)]
    assert abs(item_se(correct) - np.std(direct)) < 0.1 * np.std(direct)
    assert item_se(correct) <= 0.005  # 10,000 items: half a point
