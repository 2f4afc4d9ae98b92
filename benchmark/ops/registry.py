"""The operator registry: every curation step a recipe can name, with its kind and params model.

Recipes are data, so a step can only be an op found here: built-in modules register at import,
third-party packages through the ``smallcomp.ops`` entry-point group.

Loading the registry imports every op module, and ``validate`` and ``smallcomp ops`` do nothing
more, so an op module imports its heavy libraries (torch, open_clip, ultralytics, diffusers, the
OpenAI client) inside the functions that run the op: naming and checking steps stays cheap
(``tests/test_validate_fast.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import pyarrow as pa

from benchmark.ops.context import StepContext
from benchmark.registry import Registry
from benchmark.spec.strict import Strict

Kind = Literal["score", "filter", "map", "generate", "sample"]
KINDS: tuple[Kind, ...] = ("score", "filter", "map", "generate", "sample")

BUILTIN_MODULES = (
    "benchmark.ops.basic",
    "benchmark.ops.language",
    "benchmark.ops.dedup",
    "benchmark.ops.clip_score",
    "benchmark.ops.samplers",
    "benchmark.ops.keywords",
    "benchmark.ops.rewrite",
    "benchmark.ops.negatives",
    "benchmark.ops.batching",
    "benchmark.ops.detect",
    "benchmark.ops.inpaint",
    "benchmark.ops.quality_check",
    "benchmark.ops.embedding",
    "benchmark.ops.image_based",
    "benchmark.ops.neighbours",
    "benchmark.ops.edit_caption",
    "benchmark.ops.uids",
)


class Params(Strict):
    """Base for op params."""


# Estimated device-seconds per input row for the given params on a device kind ("cpu" or
# "cuda"): lets a track's curation budget refuse a recipe before any work starts.
Cost = Callable[[Params, str], float]
# The columns a step reads or writes: fixed, or named by its params (a sampler's ``column``).
Columns = tuple[str, ...] | Callable[[Params], tuple[str, ...]]
Part = Callable[[pa.Table, Params, StepContext], pa.Table]
Scope = Literal["rows", "table"]


@dataclass(frozen=True)
class Op:
    """One step a recipe can name, split the way it can be distributed.

    ``fn`` with ``scope="rows"`` is row-local: given any slice of the table it returns that
    slice's rows (a filter may drop some, a score or map adds or changes columns; a generate op
    returns only the rows it adds, which go after the whole table in input order), so an
    executor may run it on batches anywhere and concatenate. ``decide`` is the optional global
    part after it, over the whole table's columns on the driver (a quantile cut). ``scope=
    "table"`` ops (dedup, k-means, samplers) are global only: they never see pixels, only
    columns. ``reads`` and ``writes`` let ``validate`` check a recipe's column flow before any
    work; a global part is given only those columns and ``uses``. ``device`` marks a row part
    that wants the accelerator (a GPU actor on Ray)."""

    name: str
    kind: Kind
    params: type[Params]
    fn: Callable
    doc: str
    reads: Columns = ()
    writes: Columns = ()
    scope: Scope = "rows"
    decide: Part | None = None
    uses: tuple[str, ...] = ()  # columns read when the table has them (a cached embedding)
    device: bool = False
    cost: Cost | None = None
    # Runs in a worker process: libraries such as ultralytics and faiss bring their own OpenMP
    # runtime, which slows the trainer's torch several-fold once they share its process.
    isolate: bool = False

    def columns_read(self, p: Params) -> tuple[str, ...]:
        return self.reads(p) if callable(self.reads) else self.reads

    def columns_written(self, p: Params) -> tuple[str, ...]:
        return self.writes(p) if callable(self.writes) else self.writes

    def apply(self, table: pa.Table, p: Params, ctx: StepContext) -> pa.Table:
        """The whole step on one table in this process: the row part on the table as one
        batch, then the global part. Executors split the row part; the answer is the same."""
        if self.kind == "sample":
            raise TypeError(f"op {self.name!r} is a sampler: the trainer runs it")
        if self.scope == "table":
            return self.fn(table, p, ctx)
        out = self.fn(table, p, ctx)
        if self.kind == "generate":
            out = append_generated(table, out)
        return self.decide(out, p, ctx) if self.decide else out


def append_generated(table: pa.Table, new: pa.Table) -> pa.Table:
    """A generate step's output: the input rows (null in the columns only new rows have), then
    the new rows."""
    for name in new.column_names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, new.schema.field(name).type))
    return pa.concat_tables([table, new], promote_options="permissive")


_OPS: Registry[Op] = Registry(
    "op", BUILTIN_MODULES, "smallcomp.ops", lambda _: "; `smallcomp ops` lists them"
)


def register(
    name: str,
    kind: Kind,
    params: type[Params] = Params,
    *,
    reads: Columns = (),
    writes: Columns = (),
    scope: Scope = "rows",
    uses: tuple[str, ...] = (),
    device: bool = False,
    cost: Cost | None = None,
    isolate: bool = False,
) -> Callable[[Callable], Callable]:
    """Register ``fn`` as op ``name``; its docstring is what ``smallcomp ops`` shows. Samplers
    (``kind="sample"``) are global (``scope="table"``): ``fn(table, p, batch_size, rng)``."""
    if kind not in KINDS:
        raise ValueError(f"op {name!r}: kind must be one of {KINDS}, got {kind!r}")
    if kind == "sample":
        scope = "table"

    def deco(fn: Callable) -> Callable:
        old = _OPS.registered(name)
        if old is not None and old.fn is not fn:
            raise ValueError(f"op {name!r} is registered twice")
        doc = (fn.__doc__ or "").strip()
        op = Op(
            name,
            kind,
            params,
            fn,
            doc,
            reads=reads,
            writes=writes,
            scope=scope,
            uses=uses,
            device=device,
            cost=cost,
            isolate=isolate,
        )
        if old is None:
            _OPS.add(name, op)
        else:
            _OPS.replace(name, op)
        return fn

    return deco


def decide(name: str) -> Callable[[Part], Part]:
    """Register the global part of row-local op ``name`` (registered just before it)."""

    def deco(fn: Part) -> Part:
        op = _OPS.registered(name)
        if op is None:
            raise KeyError(f"op '{name}' is not registered; register it before its decide part")
        if op.scope != "rows":
            raise ValueError(f"op {name!r} is global already; it has no separate decide part")
        _OPS.replace(name, replace(op, decide=fn))
        return fn

    return deco


def get(name: str) -> Op:
    """The op called ``name``; a KeyError's message suggests the closest names."""
    return _OPS.get(name)


def all_ops() -> list[Op]:
    return sorted((op for _, op in _OPS.items()), key=lambda op: (KINDS.index(op.kind), op.name))
