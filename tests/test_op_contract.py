"""The op contract: a row-local op gives the same table on any split into batches (row part per
batch, concatenated, then the global part), declares what it reads and writes, and counts its
work additively, so an executor may run it on batches anywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from llm_server import LLMServer  # tests/ is on sys.path

from benchmark import columns
from benchmark.curate import split_hidden
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools.shapes import Defects, ShapesPool, build
from benchmark.pools.shards import ShardReader
from benchmark.text.vocabulary import categories, mentions, vocabulary

DEFECTS = Defects(mismatched=0.2, junk=0.1, non_english=0.15, near_duplicate=0.15, vague=0.1)
SHAPES = vocabulary("shapes")

# (op, params) run on the shapes table; every row-local op of ours appears at least once.
ROW_CASES = [
    ("no_filter", {}),
    ("caption_length", {"min_words": 4, "min_chars": 20}),
    ("caption_length", {"max_words": 8, "words": "fasttext"}),
    ("image_size", {"min_side": 20, "max_aspect": 2.0}),
    ("language", {}),
    ("language", {"keep": ["en", "es"], "min_score": 0.5}),
    ("keywords", {"vocabulary": "shapes"}),
    ("keywords", {"vocabulary": "coco"}),
    ("text_based", {"classes": "shapes"}),
    ("text_based", {"classes": "shapes", "match": "nouns", "depth": 1}),
    ("rewrite", {"k": 3, "seed": 5}),
    ("hard_negatives", {"vocabulary": "shapes", "seed": 1}),
    ("hard_negatives", {"vocabulary": "coco", "tagger": "rules"}),
    ("edit_caption", {"vocabulary": "shapes"}),
    ("edit_caption", {"vocabulary": "shapes", "fallback": "drop"}),
]
ROW_OPS = {
    "no_filter",
    "caption_length",
    "image_size",
    "language",
    "keywords",
    "text_based",
    "rewrite",
    "hard_negatives",
    "edit_caption",
}
TABLE_OPS = {"dedup", "random", "grouped", "paired", "clustered"}


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[pa.Table, Path]:
    """The shapes pool's visible columns, with varied image sizes and what an inpaint/repaint
    step would have left (``removed`` on some rows, ``added`` on some of those)."""
    out = tmp_path_factory.mktemp("pool")
    table = split_hidden(build(ShapesPool(size=90, image_size=32, defects=DEFECTS), out).table)[0]
    rng = np.random.default_rng(0)
    n = table.num_rows
    table = table.set_column(
        table.column_names.index(columns.WIDTH),
        columns.WIDTH,
        pa.array(rng.integers(5, 80, n), pa.int32()),
    )
    table = table.set_column(
        table.column_names.index(columns.HEIGHT),
        columns.HEIGHT,
        pa.array(rng.integers(5, 80, n), pa.int32()),
    )
    removed, added = [], []
    for i, caption in enumerate(table.column(columns.CAPTION).to_pylist()):
        named = [c for m in mentions(caption, SHAPES) for c in m.categories]
        cat = named[0] if named and i % 3 else None
        removed.append(cat)
        other = next(c for c in SHAPES.categories if c != cat)
        added.append(other if cat is not None and i % 4 == 0 else None)
    table = table.append_column(columns.REMOVED, pa.array(removed, pa.string()))
    table = table.append_column(columns.ADDED, pa.array(added, pa.string()))
    return table, out


def _ctx(root: Path) -> StepContext:
    return StepContext("steps[0] (op)", ShardReader(root), 0, root / "work")


def _batches(table: pa.Table) -> list[pa.Table]:
    """Three uneven slices (the first small, the middle large)."""
    n = table.num_rows
    a, b = n // 7, n // 7 + n // 2
    return [table.slice(0, a), table.slice(a, b - a), table.slice(b)]


def _sum(a, b):
    """Counters summed over batches as an executor sums them: numbers add, dicts by key."""
    if isinstance(a, dict) or isinstance(b, dict):
        a, b = a or {}, b or {}
        return {k: _sum(a.get(k), b.get(k)) for k in sorted(set(a) | set(b))}
    return (a or 0) + (b or 0)


def _run_split(op: registry.Op, table: pa.Table, p, root: Path) -> tuple[pa.Table, list]:
    outs, contexts = [], []
    for batch in _batches(table):
        contexts.append(_ctx(root))
        outs.append(op.fn(batch, p, contexts[-1]))
    out = pa.concat_tables(outs)
    if op.kind == "generate":
        out = registry.append_generated(table, out)
    if op.decide:
        out = op.decide(out, p, _ctx(root))
    return out, contexts


def _check_split(table: pa.Table, root: Path, name: str, params: dict, costs: bool = True):
    op = registry.get(name)
    assert op.scope == "rows", name
    p = op.params.model_validate(params)
    whole_ctx = _ctx(root)
    whole = op.apply(table, p, whole_ctx)
    split, contexts = _run_split(op, table, p, root)
    assert split.schema.equals(whole.schema), name
    assert split.equals(whole), name
    assert sum(c.samples_processed for c in contexts) == whole_ctx.samples_processed, name
    if costs:
        total: dict = {}
        for c in contexts:
            total = _sum(total, c.extra_costs)
        assert total == _sum({}, whole_ctx.extra_costs), name
    return whole


def _check_columns(table: pa.Table, out: pa.Table, op: registry.Op, p) -> None:
    """Columns the op added or changed are in its writes; rows it kept are otherwise intact."""
    writes = set(op.columns_written(p))
    assert set(out.column_names) - set(table.column_names) <= writes, op.name
    assert set(table.column_names) <= set(out.column_names), op.name
    row = {u: i for i, u in enumerate(table.column(columns.UID).to_pylist())}
    before = table.take(pa.array([row[u] for u in out.column(columns.UID).to_pylist()], pa.int64()))
    changed = {c for c in table.column_names if not before.column(c).equals(out.column(c))}
    assert changed <= writes, (op.name, changed)


@pytest.mark.parametrize(("name", "params"), ROW_CASES, ids=lambda v: str(v))
def test_row_op_is_the_same_on_any_split(pool, name, params):
    table, root = pool
    op = registry.get(name)
    out = _check_split(table, root, name, params)
    _check_columns(table, out, op, op.params.model_validate(params))
    if name not in ("no_filter", "image_size", "caption_length"):
        assert out.num_rows > 0, name  # the case says something


@pytest.mark.parametrize(("name", "params"), ROW_CASES, ids=lambda v: str(v))
def test_every_declared_read_is_needed(pool, name, params):
    table, root = pool
    op = registry.get(name)
    p = op.params.model_validate(params)
    for column in op.columns_read(p):
        with pytest.raises(OpError, match=rf"needs column\(s\) {column}"):
            op.apply(table.drop_columns([column]), p, _ctx(root))


def test_dedup_is_global_and_declares_its_columns(pool):
    table, root = pool
    op = registry.get("dedup")
    assert op.scope == "table" and op.decide is None
    p = op.params.model_validate({"by": "image+caption"})
    assert op.columns_read(p) == (columns.IMAGE, columns.CAPTION)
    out = op.apply(table, p, _ctx(root))
    assert 0 < out.num_rows <= table.num_rows
    _check_columns(table, out, op, p)
    with pytest.raises(OpError, match=r"needs column\(s\) caption"):
        op.apply(table.drop_columns([columns.CAPTION]), p, _ctx(root))


def test_samplers_are_global_and_read_the_columns_their_params_name():
    reads = {
        "random": (),
        "grouped": (columns.IMAGE_GROUP,),
        "paired": (columns.UID, columns.PARENT_UID),
        "clustered": (columns.EMBEDDING,),
    }
    for name, expected in reads.items():
        op = registry.get(name)
        assert op.kind == "sample" and op.scope == "table", name
        assert op.columns_read(op.params()) == expected, name
        assert op.columns_written(op.params()) == (), name
    assert registry.get("grouped").columns_read(registry.get("grouped").params(column="g")) == (
        "g",
    )


# The least an op with required params takes (outside a recipe, no file it names is read).
REQUIRED_PARAMS = {"uids": {"path": "uids.npy"}}


def test_every_op_declares_what_it_reads():
    undeclared = []
    for op in registry.all_ops():
        p = op.params.model_validate(REQUIRED_PARAMS.get(op.name, {}))
        if op.name in ("no_filter", "random"):
            assert op.columns_read(p) == (), op.name
        elif not op.columns_read(p):
            undeclared.append(op.name)
        assert all(isinstance(c, str) for c in (*op.columns_read(p), *op.columns_written(p)))
    assert undeclared == []
    ours = {op.name: op for op in registry.all_ops() if op.name in ROW_OPS | TABLE_OPS}
    assert set(ours) == ROW_OPS | TABLE_OPS
    assert all(ours[n].scope == "rows" for n in ROW_OPS)
    assert all(ours[n].scope == "table" for n in TABLE_OPS)


# --- the LLM paths, against a local OpenAI-compatible server --------------------------------


def _responder(messages: list[dict]) -> str:
    """Answers each caption on its own: shape keywords per numbered line, or k framings."""
    system = next(m["content"] for m in messages if m["role"] == "system")
    user = messages[-1]["content"]
    if k := re.search(r"Rewrite an image caption (\d+) times", system):
        frames = [f"a photo of {user}", f"an image of {user}", f"{user}, seen here"]
        return json.dumps({"rewrites": frames[: int(k.group(1))]})
    lines = [line.split(": ", 1) for line in user.splitlines()]
    return json.dumps(
        {"captions": [{"index": int(i), "categories": categories(c, SHAPES)} for i, c in lines]}
    )


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-contract-000000000000")
    with LLMServer(_responder) as server:
        yield server


def _llm(server: LLMServer) -> dict:
    return {
        "model": "test-model",
        "base_url": server.base_url,
        "prices": {"test-model": {"input": 1.0, "output": 2.0}},
        "max_retries": 1,
        "retry_base_s": 0.001,
        "retry_max_s": 0.01,
    }


def test_llm_ops_are_the_same_on_any_split(pool, llm):
    """With a model that answers each caption on its own, the split changes the prompts (and
    the tokens spent) but not a row's answer."""
    table, root = pool
    cases = [
        ("keywords", {"vocabulary": "shapes", "backend": "llm", "captions_per_request": 4}),
        ("rewrite", {"k": 2, "backend": "llm"}),
    ]
    for name, params in cases:
        out = _check_split(table, root, name, {**params, "llm": _llm(llm)}, costs=False)
        op = registry.get(name)
        _check_columns(table, out, op, op.params.model_validate({**params, "llm": _llm(llm)}))
    assert llm.counts["chat"] > 0
