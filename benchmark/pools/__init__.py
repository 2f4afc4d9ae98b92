"""Pool adapters by kind: each turns a source dataset into the pool table plus image shards.

The pool table (Parquet) has one row per sample with at least ``uid`` (32 hex chars, DataComp's
128-bit id), ``caption``, ``image`` (``<shard>#<member>`` relative to the pool's directory),
``width``, ``height`` and ``source``. Columns starting with ``gt_`` are hidden ground truth (defect
labels, object boxes): reports read them, curation steps never see them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from benchmark.pools.subset import ImageSubset
from benchmark.registry import Registry
from benchmark.spec.strict import Strict
from benchmark.store import write_atomic

if TYPE_CHECKING:
    from benchmark.pools.contamination import EvalSet

REQUIRED_COLUMNS = ("uid", "caption", "image", "width", "height", "source")
HIDDEN_PREFIX = "gt_"

BUILTIN_MODULES = (
    "benchmark.pools.shapes",
    "benchmark.pools.coco",
    "benchmark.pools.flickr",
    "benchmark.pools.cc3m",
    "benchmark.pools.byod",
)


class PoolParams(Strict):
    """Base for a pool kind's options in a track's ``pool:`` block."""

    kind: str
    subset: ImageSubset | None = Field(
        None, description="keep a seeded subset of the images, each with all its captions"
    )

    @model_serializer(mode="wrap")
    def _no_unset_subset(self, handler: SerializerFunctionWrapHandler) -> dict:
        """A pool without a subset dumps as before the option existed, so the run-store keys
        made from its dump (pool, curate) stay the same."""
        data = handler(self)
        if self.subset is None:
            data.pop("subset", None)
        return data


@dataclass
class PoolBuild:
    """What an adapter produced: the table (rows reference shards under the pool dir)."""

    table: pa.Table
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count


@dataclass(frozen=True)
class PoolKind:
    name: str
    params: type[PoolParams]
    build: Callable[[PoolParams, Path], PoolBuild]
    columns: tuple[str, ...] = ()  # visible columns beyond REQUIRED_COLUMNS (for ``validate``)

    @property
    def visible_columns(self) -> tuple[str, ...]:
        return (*REQUIRED_COLUMNS, *self.columns)


_KINDS: Registry[PoolKind] = Registry("pool kind", BUILTIN_MODULES)


def register(
    name: str, params: type[PoolParams], columns: tuple[str, ...] = ()
) -> Callable[[Callable], Callable]:
    """Register ``build(params, out_dir) -> PoolBuild`` as pool kind ``name``; ``columns`` are
    the visible columns its table has beyond the required ones."""

    def deco(fn: Callable) -> Callable:
        _KINDS.add(name, PoolKind(name, params, fn, columns))
        return fn

    return deco


def get(name: str) -> PoolKind:
    """The pool kind called ``name``; a KeyError's message suggests the closest names, or
    lists them all."""
    return _KINDS.get(name)


def build_stage(
    work: Path, params: PoolParams, prefix: str, eval_sets: list[EvalSet] | None = None
) -> None:
    """The pool stage's build: the adapter's table and shards in ``work``, less any sample that
    shows an image of ``eval_sets`` (counted in ``report.json``), its image references made
    relative to the store root by ``prefix`` (the stage's directory), as ``pool.parquet``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    built = get(params.kind).build(params, work)
    table = built.table
    report: dict = {"rows_built": table.num_rows, "skipped": built.skipped}
    if eval_sets:
        from benchmark.pools.contamination import remove_contaminated
        from benchmark.pools.shards import ShardReader

        reader = ShardReader(work)
        table, found = remove_contaminated(table, reader, eval_sets)
        reader.close()
        report["contamination"] = asdict(found)
    table = table.set_column(
        table.column_names.index("image"),
        "image",
        pc.binary_join_element_wise(prefix, table.column("image"), ""),
    )
    report["rows"] = table.num_rows
    pq.write_table(table, work / "pool.parquet")
    write_atomic(work / "report.json", json.dumps(report, indent=2, default=str))
