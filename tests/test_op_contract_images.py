"""The row-local contract of the image ops: the row part run batch by batch (splits at multiples
of the op's ``batch_size``), combined as an executor combines it, is ``op.apply`` on the whole
table bit for bit, and the step's counters are the sums of the batches'."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch
from test_counterfactual import pool  # noqa: F401  (fixture: shapes pool with detections)
from test_image_ops import reference  # noqa: F401  (fixture: random-init reference CLIP)

from benchmark.columns import IMAGE, PARENT_IMAGE, PARENT_UID
from benchmark.curate import merge_costs
from benchmark.ops import registry
from benchmark.ops.context import StepContext
from benchmark.pools.shards import ShardReader
from benchmark.text.vocabulary import vocabulary

# A yaml YOLO names its classes "0".."79": each stands for one of the shapes world's shapes. A
# random net is unsure of everything (and boxes whole images): a tiny threshold keeps its guesses.
_SHAPES = vocabulary("shapes").categories
SHAPES = {str(i): _SHAPES[i % len(_SHAPES)] for i in range(80)}
DETECTOR = {"model": "yolov8n.yaml", "imgsz": 64, "conf": 1e-5, "classes": SHAPES}


def context(root, encoder=None, name: str = "steps[1] (op)") -> StepContext:
    encode = None if encoder is None else (lambda: encoder)
    return StepContext(name, ShardReader(root), 0, root / "w", reference=encode, store_root=root)


def split(table: pa.Table, sizes: list[int]) -> list[pa.Table]:
    """``table`` cut into batches of ``sizes`` rows (the last takes what is left)."""
    out, start = [], 0
    for n in sizes:
        out.append(table.slice(start, n))
        start += n
    return [*out, table.slice(start)]


def by_batches(name: str, table: pa.Table, sizes: list[int], make_ctx, params: dict):
    """The executor's way: the row part per batch (fresh context each), combined, then the
    global part; returns the table and the summed counters."""
    op = registry.get(name)
    p = op.params.model_validate(params)
    parts, costs, processed, unreadable = [], {}, 0, 0
    batches = split(table, sizes)
    assert all(n % p.batch_size == 0 for n in sizes) and len(batches) >= 2
    for batch in batches:
        ctx = make_ctx()
        torch.manual_seed(0)  # a yaml detector is random-initialised: the same weights each call
        parts.append(op.fn(batch, p, ctx))
        costs = merge_costs(costs, ctx.extra_costs)
        processed, unreadable = processed + ctx.samples_processed, unreadable + ctx.unreadable
    out = pa.concat_tables(parts)
    if op.kind == "generate":
        out = registry.append_generated(table, out)
    if op.decide is not None:
        out = op.decide(out, p, make_ctx())
    return out, (costs, processed, unreadable)


def whole(name: str, table: pa.Table, ctx: StepContext, params: dict):
    op = registry.get(name)
    torch.manual_seed(0)
    out = op.apply(table, op.params.model_validate(params), ctx)
    return out, (ctx.extra_costs, ctx.samples_processed, ctx.unreadable)


@pytest.fixture(scope="module")
def scenes(pool):  # noqa: F811
    """The counterfactual pool as ops see it, with ``keywords``."""
    table, root = pool
    table = table.drop_columns(["gt_objects"])
    op = registry.get("keywords")
    ctx = context(root, name="steps[0] (keywords)")
    return op.apply(table, op.params.model_validate({"vocabulary": "shapes"}), ctx), root


def test_ops_declare_their_columns_scope_and_device():
    expect = {
        "clip_score": ("rows", True),
        "embed": ("rows", True),
        "detect": ("rows", True),
        "inpaint": ("rows", True),
        "repaint": ("rows", True),
        "quality_check": ("rows", True),
        "image_based": ("table", False),
        "nearest_images": ("table", False),
    }
    for name, (scope, device) in expect.items():
        op = registry.get(name)
        assert (op.scope, op.device) == (scope, device), name
        assert op.columns_read(op.params()), name
    assert registry.get("clip_score").decide is not None
    assert PARENT_IMAGE in registry.get("inpaint").columns_written(registry.get("inpaint").params())
    assert PARENT_IMAGE in registry.get("quality_check").columns_read(
        registry.get("quality_check").params()
    )
    p = registry.get("nearest_images").params.model_validate({"column": "nn"})
    assert registry.get("nearest_images").columns_written(p) == ("nn",)


@pytest.mark.parametrize("params", [{"fraction": 0.5}, {"threshold": 0.0}, {}])
def test_clip_score_by_batches_is_the_whole_step(scenes, reference, params):  # noqa: F811
    table, root = scenes
    params = {"batch_size": 4} | params
    a, costs = by_batches("clip_score", table, [16, 8], lambda: context(root, reference), params)
    b, total = whole("clip_score", table, context(root, reference), params)
    assert a.equals(b) and costs == total
    assert 0 < b.num_rows <= table.num_rows


def test_embed_by_batches_is_the_whole_step(scenes, reference):  # noqa: F811
    table, root = scenes
    params = {"batch_size": 4}
    a, costs = by_batches("embed", table, [12, 8], lambda: context(root, reference), params)
    b, total = whole("embed", table, context(root, reference), params)
    assert a.equals(b) and a.schema.equals(b.schema, check_metadata=True) and costs == total
    again, _ = by_batches("embed", b, [8, 4], lambda: context(root, reference), params)
    assert again.equals(b)  # reused as is, batch by batch


@pytest.mark.slow
def test_detect_by_batches_is_the_whole_step(scenes):
    table, root = scenes
    table = table.drop_columns(["detections"]).slice(0, 16)  # the fixture's are the world's
    params = DETECTOR | {"batch_size": 4, "max_area": 1.0}
    a, costs = by_batches("detect", table, [8, 4], lambda: context(root), params)
    b, total = whole("detect", table, context(root), params)
    assert a.equals(b) and costs == total
    found = [d for d in b.column("detections").to_pylist() if d]
    assert found  # the random net's guesses, mapped to shapes: something to compare


def _pixels(root, table: pa.Table) -> list[np.ndarray]:
    reader = ShardReader(root)
    return [np.asarray(reader.read_image(r)) for r in table.column(IMAGE).to_pylist()]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("inpaint", {"dilate": 1, "seed": 11}),
        ("repaint", {"backend": "shapes", "vocabulary": "shapes", "variants": 2, "seed": 12}),
    ],
)
def test_generate_by_batches_is_the_whole_step(scenes, tmp_path, name, params):
    """Batches write their chunks into one store; the whole step then reads them back. The
    whole step from scratch in another store: the same rows and pixels, the same counters."""
    table, root = scenes
    params = params | {"batch_size": 2, "chunk_size": 3}
    a, costs = by_batches(name, table, [10, 14], lambda: context(root), params)
    b, again = whole(name, table, context(root), params)
    assert a.equals(b) and a.num_rows > table.num_rows
    assert again[0]["edits"]["generated"] == 0
    assert a.column_names[: table.num_columns] == table.column_names
    new = a.slice(table.num_rows)
    assert new.column(PARENT_UID).null_count == 0
    assert new.column(PARENT_IMAGE).to_pylist() == [
        dict(zip(table.column("uid").to_pylist(), table.column(IMAGE).to_pylist(), strict=True))[u]
        for u in new.column(PARENT_UID).to_pylist()
    ]
    assert a.slice(0, table.num_rows).column(PARENT_IMAGE).null_count == table.num_rows
    # whole, from scratch: its chunks may group other edits (other references), same pixels
    other = tmp_path / "other"
    shutil.copytree(root, other, ignore=shutil.ignore_patterns("generated", "w"))
    c, total = whole(name, table, context(other), params)
    assert costs == total and total[0]["edits"]["generated"] == new.num_rows
    assert a.drop_columns([IMAGE]).equals(c.drop_columns([IMAGE]))
    assert all(
        np.array_equal(x, y)
        for x, y in zip(_pixels(root, new), _pixels(other, c.slice(table.num_rows)), strict=True)
    )


@pytest.mark.slow
def test_quality_check_by_batches_is_the_whole_step(scenes, reference):  # noqa: F811
    table, root = scenes
    parents = table.slice(0, 12)
    edited, _ = whole("inpaint", parents, context(root), {"dilate": 0, "seed": 13})
    caption = registry.get("edit_caption")
    edited = caption.apply(
        edited, caption.params.model_validate({"vocabulary": "shapes"}), context(root)
    )
    params = {
        "detector_model": DETECTOR["model"],
        "imgsz": 64,
        "detector_conf": 1e-5,
        "batch_size": 4,
    }
    make = lambda: context(root, reference)  # noqa: E731
    a, costs = by_batches("quality_check", edited, [8, 4], make, params)
    b, total = whole("quality_check", edited, make(), params)
    assert a.equals(b) and costs == total
    record = total[0]["quality_check"]
    assert record["checked"] == edited.num_rows - parents.num_rows > 0
    assert record["rejected"] and "parent_missing" not in record["rejected"]
    # the parents' rows are not needed: each edit names its parent's image itself
    alone, again = whole("quality_check", edited.slice(parents.num_rows), make(), params)
    assert alone.equals(b.slice(parents.num_rows)) and again[0] == total[0]
