"""Counterfactual generation: edited rows, their own keyed shards, reuse, budget refusal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import REPO, TEST_TRACK, with_world_boxes

from benchmark import pools
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.ops.detect import DETECTION
from benchmark.ops.generated import GeneratedStore
from benchmark.pools.shards import ShardReader
from benchmark.spec.errors import SpecError
from benchmark.spec.load import load_recipe
from benchmark.text.inflection import fix_articles
from benchmark.world import BACKGROUND, COLOURS, Obj, Scene, render


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[pa.Table, Path]:
    """A clean 40-scene shapes pool with detections taken from the world's own boxes."""
    root = tmp_path_factory.mktemp("pool")
    params = pools.get("shapes").params.model_validate(
        {"size": 40, "seed": 3, "image_size": 64, "defects": {}}
    )
    table = pools.get("shapes").build(params, root).table
    table = with_world_boxes(table)
    return table.drop_columns(["gt_defect"]), root


def _inpaint(table: pa.Table, root: Path, **params) -> tuple[pa.Table, StepContext]:
    op = registry.get("inpaint")
    ctx = StepContext("steps[2] (inpaint)", ShardReader(root), 0, root / "w", store_root=root)
    return op.apply(table, op.params.model_validate(params), ctx), ctx


def test_inpaint_adds_one_edit_per_sample_that_removes_the_object(pool):
    table, root = pool
    out, ctx = _inpaint(table.drop_columns(["gt_objects"]), root, dilate=0)
    new = out.filter(pa.compute.is_valid(out.column("parent_uid")))
    assert out.num_rows == table.num_rows + new.num_rows
    shapes = [[o["shape"] for o in objs] for objs in table.column("gt_objects").to_pylist()]
    editable = sum(any(s.count(x) == 1 for x in s) for s in shapes)  # "the dog" needs one dog
    assert 0 < editable < table.num_rows and new.num_rows == editable
    assert ctx.extra_costs["edits"]["generated"] == new.num_rows
    reader = ShardReader(root)
    uids, gt = table.column("uid").to_pylist(), table.column("gt_objects").to_pylist()
    objects = dict(zip(uids, gt, strict=True))
    for row in new.to_pylist()[:10]:
        assert row["image"].startswith("generated/")
        assert len(row["uid"]) == 32 and row["generator"] == "inpaint/classical"
        gone = next(o for o in objects[row["parent_uid"]] if o["shape"] == row["removed"])
        others = np.zeros((64, 64), bool)  # neighbours' boxes may reach into this one
        for o in objects[row["parent_uid"]]:
            if o is not gone:
                others[o["y0"] : o["y1"] + 1, o["x0"] : o["x1"] + 1] = True
        region = np.zeros((64, 64), bool)
        region[gone["y0"] : gone["y1"], gone["x0"] : gone["x1"]] = True
        pixels = np.asarray(reader.read_image(row["image"]))[region & ~others].astype(int)
        assert np.abs(pixels - BACKGROUND).max(axis=1).mean() < 20  # background where it was


def test_inpaint_reuses_stored_edits_and_is_deterministic(pool):
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    first, _ = _inpaint(table, root, dilate=3)
    again, ctx = _inpaint(table, root, dilate=3)
    assert first.equals(again)
    assert ctx.extra_costs["edits"]["generated"] == 0
    assert ctx.extra_costs["edits"]["reused"] == first.num_rows - table.num_rows
    # a subset of parents (another recipe's filter) finds its edits under the same keys
    part, ctx = _inpaint(table.slice(0, 10), root, dilate=3)
    assert ctx.extra_costs["edits"]["generated"] == 0
    assert set(part.column("uid").to_pylist()) <= set(first.column("uid").to_pylist())


def test_edit_references_follow_pixels(pool, tmp_path):
    """Edits regenerated from scratch land at the same references, so a model trained on them
    is reused; other pixels under the same keys land elsewhere, so it is not."""
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    first, _ = _inpaint(table, root, dilate=2)
    shutil.rmtree(root / "generated")
    again, ctx = _inpaint(table, root, dilate=2)
    assert ctx.extra_costs["edits"]["reused"] == 0 and again.equals(first)
    rows = [("k1", b"pixels", 4, 4, "{}"), ("k2", b"more", 4, 4, "{}")]
    store = GeneratedStore(tmp_path, "step")
    same = [r["image"] for r in store.write(rows)]
    assert [r["image"] for r in store.write(rows)] == same
    other = [r["image"] for r in store.write([("k1", b"other", 4, 4, "{}"), rows[1]])]
    assert other != same and len(list(tmp_path.glob("generated/step/chunk-*.tar"))) == 2
    assert not list(tmp_path.glob("generated/step/.*"))  # no temporaries left


def test_inpaint_edge_cases(pool):
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    empty, _ = _inpaint(table.slice(0, 0), root)
    assert empty.num_rows == 0 and "parent_uid" in empty.column_names
    none = table.set_column(
        table.column_names.index("detections"),
        "detections",
        pa.array([[]] * table.num_rows, pa.list_(DETECTION)),
    )
    out, _ = _inpaint(none, root)
    assert out.num_rows == table.num_rows
    with pytest.raises(OpError, match=r"steps\[2\] \(inpaint\): needs column\(s\) detections"):
        _inpaint(table.drop_columns(["detections"]), root)
    with pytest.raises(OpError, match="needs 'model'"):
        _inpaint(table, root, backend="diffusion")


def test_over_budget_recipe_is_refused_before_any_work(tmp_path: Path):
    track = TEST_TRACK.read_text().replace(
        "rules:\n  losses: [clip]",
        "rules:\n  losses: [clip]\n  curation_budget: {device_s_per_1k: 1}",
    )
    (tmp_path / "t.yaml").write_text(track)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: r\ntrack: t.yaml\nsteps:\n  - op: keywords\n    vocabulary: shapes\n"
        "  - op: detect\n  - op: inpaint\n    backend: diffusion\n    model: some/model\n"
    )
    with pytest.raises(SpecError, match=r"r\.yaml:3:1: field 'steps': estimated curation") as e:
        load_recipe(recipe, device="cpu")
    assert "exceeds the track's budget of 1 device-s" in str(e.value)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "--runs", str(runs), "--device", "cpu"]
        + ["run", str(recipe), "--leaderboard", str(tmp_path / "lb")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "exceeds the track's budget" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not runs.exists()  # nothing was built


@pytest.mark.slow
def test_coco_mini_chain_with_random_yolo_and_tiny_diffusion(samples: Path, tmp_path: Path):
    """keywords -> detect (random-init YOLOv8n) -> inpaint (tiny random diffusers pipeline) ->
    edit_caption -> quality_check on real photos: shapes, counts and provenance of the edits."""
    from benchmark import curate as curation
    from benchmark.models.inpainter import tiny_pipeline
    from benchmark.spec.recipe import Step
    from benchmark.text.vocabulary import vocabulary

    params = pools.get("coco").params.model_validate(
        {"root": str(samples / "coco-mini"), "split": "train2017"}
    )
    pool = pools.get("coco").build(params, tmp_path).table.slice(0, 60)
    pipe = tiny_pipeline(tmp_path / "pipe")
    # an 80-class yaml names its classes "0".."79", in COCO's category order
    classes = {str(i): name for i, name in enumerate(vocabulary("coco").categories)}
    steps = [
        Step(op="keywords", params={"vocabulary": "coco"}),
        # a random network is unsure of everything: a tiny threshold keeps its guesses
        Step(
            op="detect",
            params={"model": "yolov8n.yaml", "conf": 1e-6, "imgsz": 320, "classes": classes}
            | {"max_objects": 1},
        ),
        Step(
            op="inpaint",
            params={"backend": "diffusion", "model": str(pipe), "steps": 2, "resolution": 64},
        ),
        Step(op="edit_caption", params={"vocabulary": "coco", "fallback": "absence"}),
        Step(
            op="quality_check",
            params={"detector_model": "yolov8n.yaml", "imgsz": 320, "clip": False},
        ),
    ]
    for i, s in enumerate(steps):  # as the loader does: defaults filled in
        steps[i] = Step(
            op=s.op, params=registry.get(s.op).params.model_validate(s.params).model_dump()
        )

    def context(i: int, step: Step) -> StepContext:
        return StepContext(
            f"steps[{i}] ({step.op})",
            ShardReader(tmp_path),
            i,
            tmp_path / f"s{i}",
            store_root=tmp_path,
        )

    detected = curation.curate(pool, steps[:2], context).table  # random net: detect once
    out = curation.curate(detected, steps[2:], context)
    table = out.table
    originals = {r["uid"]: r for r in table.to_pylist() if r["parent_uid"] is None}
    edits = [r for r in table.to_pylist() if r["parent_uid"] is not None]
    records = {r["op"]: r for r in out.steps}
    made = records["inpaint"]["edits"]["planned"]
    checked = records["quality_check"]["quality_check"]
    assert len(originals) == pool.num_rows and made > 0
    assert checked["checked"] <= made and len(edits) == checked["kept"] > 0
    reader = ShardReader(tmp_path)
    for e in edits:
        parent = originals[e["parent_uid"]]
        assert e["generator"] == "inpaint/diffusion" and e["image"].startswith("generated/")
        assert e["removed"] in parent["keywords"] and e["edit"] in ("removed", "absence")
        assert e["parent_caption"] == parent["caption"] != e["caption"]
        assert reader.read_image(e["image"]).size == reader.read_image(parent["image"]).size
    again = curation.curate(detected, steps[2:], context)
    assert again.table.equals(table)  # deterministic, and read back from the edit store
    assert {r["op"]: r for r in again.steps}["inpaint"]["edits"]["generated"] == 0


def test_quality_check_rejects_unchanged_edits_and_counts_reasons(pool):
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    edited, _ = _inpaint(table.slice(0, 12), root, dilate=0)
    parents = edited.filter(pa.compute.is_null(edited.column("parent_uid")))
    edits = edited.filter(pa.compute.is_valid(edited.column("parent_uid")))
    # a fake "edit" that is its parent's image again must go: nothing was removed
    uids, refs = parents.column("uid").to_pylist(), parents.column("image").to_pylist()
    parent_image = dict(zip(uids, refs, strict=True))
    copies = edits.set_column(
        edits.column_names.index("image"),
        "image",
        pa.array([parent_image[p] for p in edits.column("parent_uid").to_pylist()]),
    )
    copies = copies.set_column(
        0, "uid", pa.array([u[:-1] + "x" for u in edits.column("uid").to_pylist()])
    )
    both = pa.concat_tables([edited, copies])
    both = both.append_column("parent_caption", both.column("caption"))
    op = registry.get("quality_check")
    ctx = StepContext("steps[4] (quality_check)", ShardReader(root), 0, root / "q")
    out = op.apply(both, op.params.model_validate({"detector": False, "clip": False}), ctx)
    assert out.num_rows == edited.num_rows  # originals and real edits stay, copies go
    record = ctx.extra_costs["quality_check"]
    assert record["rejected"] == {"unchanged": copies.num_rows}
    assert record["checked"] == 2 * edits.num_rows
    none = op.apply(
        parents.append_column("parent_caption", parents.column("caption")),
        op.params.model_validate({"detector": False, "clip": False}),
        ctx,
    )
    assert none.num_rows == parents.num_rows
    with pytest.raises(
        OpError, match=r"steps\[4\] \(quality_check\): needs column\(s\) parent_caption"
    ):
        op.apply(edited, op.params.model_validate({}), ctx)


def _repaint(table: pa.Table, root: Path, **params) -> tuple[pa.Table, StepContext]:
    op = registry.get("repaint")
    params = {"backend": "shapes", "vocabulary": "shapes", "dilate": 0} | params
    ctx = StepContext("steps[2] (repaint)", ShardReader(root), 0, root / "w", store_root=root)
    return op.apply(table, op.params.model_validate(params), ctx), ctx


def test_repaint_paints_a_shape_the_scene_lacks_in_the_old_ones_colour_and_place(pool):
    table, root = pool
    out, ctx = _repaint(table.drop_columns(["gt_objects"]), root)
    new = out.filter(pa.compute.is_valid(out.column("parent_uid")))
    shapes = [[o["shape"] for o in objs] for objs in table.column("gt_objects").to_pylist()]
    assert new.num_rows == sum(any(s.count(x) == 1 for x in s) for s in shapes) > 0
    assert ctx.extra_costs["edits"]["generated"] == new.num_rows
    uids, gt = table.column("uid").to_pylist(), table.column("gt_objects").to_pylist()
    objects = dict(zip(uids, gt, strict=True))
    reader = ShardReader(root)
    for row in new.to_pylist():
        scene = objects[row["parent_uid"]]
        assert row["generator"] == "repaint/shapes" and row["removed"] != row["added"]
        assert row["added"] not in [o["shape"] for o in scene]
        old = next(o for o in scene if o["shape"] == row["removed"])
        truth = Obj(row["added"], old["colour"], old["size"], *_centre(old))
        expected = np.asarray(render(Scene((truth,), 0)), int)
        got = np.asarray(reader.read_image(row["image"]), int)
        box = np.zeros((64, 64), bool)
        box[old["y0"] : old["y1"] + 1, old["x0"] : old["x1"] + 1] = True
        for o in scene:  # neighbours' boxes may reach into this one
            if o is not old:
                box[o["y0"] : o["y1"] + 1, o["x0"] : o["x1"] + 1] = False
        drawn = np.abs(expected - BACKGROUND).max(axis=2) > 24
        painted = np.abs(got - BACKGROUND).max(axis=2) > 24
        assert (drawn[box] != painted[box]).mean() < 0.03  # the new shape, where the old was
        assert np.abs(got[drawn & box] - COLOURS[old["colour"]]).max(axis=1).mean() < 8


def _centre(o: dict) -> tuple[int, int]:
    return (o["x0"] + o["x1"]) // 2, (o["y0"] + o["y1"]) // 2


def test_repaint_and_inpaint_edit_each_original_once_into_one_paired_group(pool):
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    removed, _ = _inpaint(table, root, dilate=0)
    both, _ = _repaint(removed, root)
    again, ctx = _repaint(removed, root)
    assert both.equals(again) and ctx.extra_costs["edits"]["generated"] == 0
    edits = both.filter(pa.compute.is_valid(both.column("parent_uid"))).to_pylist()
    kinds = {(e["parent_uid"], e["generator"]) for e in edits}
    assert len(kinds) == len(edits)  # one removal and one replacement per parent, no edit of edits
    assert {e["generator"] for e in edits} == {"inpaint/classical", "repaint/shapes"}
    assert all(e["added"] is None for e in edits if e["generator"] == "inpaint/classical")
    sampler = registry.get("paired")
    order = sampler.fn(both, sampler.params.model_validate({}), 16, np.random.default_rng(0))
    parents = both.column("parent_uid").to_pylist()
    uids = both.column("uid").to_pylist()
    batch_of = {}
    for position, row in enumerate(order.tolist()):
        batch_of.setdefault(parents[row] or uids[row], set()).add(position // 16)
    assert sum(len(b) > 1 for b in batch_of.values()) <= len(order) // 16  # split only at ends


def test_edit_caption_swaps_the_name_and_quality_check_wants_the_new_object(pool):
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    edited, _ = _repaint(table, root)
    op = registry.get("edit_caption")
    ctx = StepContext("steps[3] (edit_caption)", ShardReader(root), 0, root / "e")
    out = op.apply(edited, op.params.model_validate({"vocabulary": "shapes"}), ctx)
    edits = [r for r in out.to_pylist() if r["parent_uid"] is not None]
    record = ctx.extra_costs["edit_caption"]
    assert record["replaced"] == len(edits) > 0 and record["removed"] == 0
    for e in edits:
        assert e["edit"] == "replaced" and e["parent_caption"] != e["caption"]
        words = e["caption"].replace(",", " ").split()
        assert e["added"] in words and e["removed"] not in words
        back = fix_articles(e["caption"].replace(e["added"], e["removed"]))
        assert back == e["parent_caption"]
    llm = op.params.model_validate({"backend": "llm", "llm": {"model": "gpt-4o-mini"}})
    with pytest.raises(OpError, match="replacements .repaint. need backend offline"):
        op.apply(edited, llm, ctx)
    # a detector that knows no shapes (COCO's 80 classes) never finds what was painted
    check = registry.get("quality_check")
    ctx = StepContext("steps[4] (quality_check)", ShardReader(root), 0, root / "q")
    params = {"detector_model": "yolov8n.yaml", "imgsz": 64, "clip": False}
    kept = check.apply(out, check.params.model_validate(params), ctx)
    assert kept.num_rows == out.num_rows - len(edits)
    assert ctx.extra_costs["quality_check"]["rejected"] == {"added_not_detected": len(edits)}


def test_repaint_variants_paint_different_categories_each(pool):
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    one, _ = _repaint(table, root)
    three, _ = _repaint(table, root, variants=3)
    edits = three.filter(pa.compute.is_valid(three.column("parent_uid"))).to_pylist()
    by_parent: dict[str, list[dict]] = {}
    for e in edits:
        by_parent.setdefault(e["parent_uid"], []).append(e)
    assert len(by_parent) == one.num_rows - table.num_rows  # the same objects are edited
    for group in by_parent.values():
        assert len(group) == 3 and len({e["added"] for e in group}) == 3
        assert len({e["removed"] for e in group}) == 1 and len({e["uid"] for e in group}) == 3


def test_repaint_params_are_checked():
    params = registry.get("repaint").params
    with pytest.raises(ValueError, match="set vocabulary: shapes"):
        params.model_validate({"backend": "shapes"})
    with pytest.raises(ValueError, match=r"'into' names \['dog'\]"):
        params.model_validate({"backend": "shapes", "vocabulary": "shapes", "into": ["dog"]})
    assert params.model_validate({"vocabulary": "coco", "into": ["cat", "dog"]}).into == [
        "cat",
        "dog",
    ]
