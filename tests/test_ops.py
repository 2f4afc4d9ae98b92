"""Curation ops on a small real shapes pool: what they keep, what they report, how they fail."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from benchmark.curate import curate, filter_quality, split_hidden, uid_array
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.ops.language import identify
from benchmark.pools.shapes import Defects, ShapesPool, build
from benchmark.pools.shards import ShardReader
from benchmark.spec.recipe import Step

DEFECTS = Defects(mismatched=0.2, junk=0.1, non_english=0.1, near_duplicate=0.15, vague=0.1)


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[pa.Table, Path]:
    out = tmp_path_factory.mktemp("pool")
    return build(ShapesPool(size=400, image_size=32, defects=DEFECTS), out).table, out


def _ctx(root: Path, name: str = "steps[0] (op)") -> StepContext:
    return StepContext(name, ShardReader(root), 0, root / "work")


def _apply(table: pa.Table, root: Path, op: str, **params) -> pa.Table:
    o = registry.get(op)
    return o.apply(split_hidden(table)[0], o.params.model_validate(params), _ctx(root))


def test_every_op_has_docstring_kind_and_params_model():
    ops = registry.all_ops()
    assert {o.kind for o in ops} >= {"filter", "sample"}
    for o in ops:
        assert o.doc, o.name
        assert issubclass(o.params, registry.Params)


def test_language_identifies_english_and_translations():
    assert identify("a red circle to the left of a blue square")[0] == "en"
    assert identify("ein roter Kreis links von einem blauen Quadrat")[0] == "de"
    assert identify("un cercle rouge à gauche d'un carré bleu")[0] == "fr"


def test_basic_filters_find_their_defects(pool):
    table, root = pool
    steps = [
        Step(op="language", params={"keep": ["en"], "min_score": 0.0}),
        Step(op="caption_length", params={"min_words": 2, "min_chars": 5}),
    ]
    result = curate(table, steps, lambda i, s: _ctx(root, f"steps[{i}]"))
    lang, length = result.steps
    assert lang["quality"]["recall_by_defect"]["non_english"] == 1.0
    assert lang["quality"]["precision"] > 0.9
    assert length["quality"]["recall_by_defect"]["junk"] == 1.0
    assert not any(c.startswith("gt_") for c in result.table.column_names)
    assert "lang" in result.table.column_names


def testfilter_quality_judges_pool_rows_only():
    """A filter that also drops generated rows (quality_check rejecting edits) is scored on the
    pool rows it removed: the edits carry no defect label and must not count as misses."""
    defect = {"junk": "junk", "clean": None, "vague": "vague"}
    q = filter_quality({"junk", "clean", "vague", "edit-1"}, {"clean", "vague"}, defect)
    assert (q["removed"], q["precision"], q["recall"]) == (1, 1.0, 0.5)
    assert q["recall_by_defect"] == {"junk": 1.0, "vague": 0.0}
    only_edits = filter_quality({"clean", "edit-1"}, {"clean"}, defect)
    assert (only_edits["removed"], only_edits["precision"]) == (0, None)


def test_dedup_removes_near_duplicates_keeps_first(pool):
    table, root = pool
    kept = set(_apply(table, root, "dedup").column("uid").to_pylist())
    defect = dict(
        zip(table.column("uid").to_pylist(), table.column("gt_defect").to_pylist(), strict=True)
    )
    dups = [u for u, d in defect.items() if d == "near_duplicate"]
    assert sum(u not in kept for u in dups) / len(dups) > 0.6
    assert table.column("uid")[0].as_py() in kept


def test_dedup_treats_image_group_as_one_unit(pool):
    table, root = pool
    t = table.slice(0, 10)
    doubled = pa.concat_tables([t, t.set_column(0, "uid", pa.array([f"x{i}" for i in range(10)]))])
    doubled = doubled.append_column("image_group", pa.array([str(i % 10) for i in range(20)]))
    out = _apply(doubled, root, "dedup")
    kept = Counter(out.column("image_group").to_pylist())
    assert set(kept.values()) == {2}  # a group stays or goes whole
    assert len(kept) >= 8  # two captions of the same photo are not duplicates of each other


def test_filters_on_empty_table_and_all_filtered(pool):
    table, root = pool
    empty = table.slice(0, 0)
    for op, params in [
        ("caption_length", {"min_words": 2}),
        ("language", {}),
        ("dedup", {}),
        ("image_size", {"min_side": 10}),
    ]:
        assert _apply(empty, root, op, **params).num_rows == 0
    assert _apply(table, root, "image_size", min_side=1000).num_rows == 0


def test_missing_column_error_names_the_step(pool):
    table, root = pool
    o = registry.get("caption_length")
    with pytest.raises(OpError, match=r"steps\[3\] \(caption_length\): needs column\(s\) caption"):
        o.apply(
            table.drop_columns(["caption"]), o.params(), _ctx(root, "steps[3] (caption_length)")
        )


def test_clip_score_without_reference_is_a_clear_error(pool):
    table, root = pool
    with pytest.raises(OpError, match="no reference model"):
        _apply(table, root, "clip_score", fraction=0.5)


def test_clip_score_fraction_with_named_model(pool, tmp_path):
    table, root = pool
    out = _apply(table.slice(0, 40), root, "clip_score", fraction=0.25, model="shapes-vit-tiny")
    assert out.num_rows == 11  # DataComp's cut: the score at index int(40 * 0.25) = 10 is kept
    assert np.isfinite(out.column("clip_score").to_numpy()).all()


def test_grouped_sampler_keeps_groups_in_one_batch():
    groups = [f"g{i // 2}" for i in range(40)] + [f"s{i}" for i in range(24)]
    t = pa.table({"image_group": groups})
    o = registry.get("grouped")
    order = o.fn(t, o.params(), 8, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(64))
    batches = [order[i : i + 8] for i in range(0, 64, 8)]
    where = {}
    for b, batch in enumerate(batches):
        for i in batch:
            where.setdefault(groups[i], set()).add(b)
    assert all(len(v) == 1 for v in where.values())


def test_random_sampler_is_seeded_permutation():
    t = pa.table({"uid": [str(i) for i in range(50)]})
    o = registry.get("random")
    a = o.fn(t, o.params(), 8, np.random.default_rng([0, 1]))
    b = o.fn(t, o.params(), 8, np.random.default_rng([0, 1]))
    assert (a == b).all() and sorted(a) == list(range(50))


def test_uid_array_is_datacomp_format():
    arr = uid_array(["0123456789abcdef" + "fedcba9876543210"])
    assert arr.dtype == np.dtype("u8,u8")
    assert arr[0][0] == 0x0123456789ABCDEF and arr[0][1] == 0xFEDCBA9876543210
