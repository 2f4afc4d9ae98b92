"""Batch composition: the order in which the trainer sees the curated table, epoch by epoch.

A sampler returns row indices for one epoch; consecutive ``batch_size`` chunks are the batches.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import Field

from benchmark.columns import IMAGE_GROUP
from benchmark.ops.context import OpError
from benchmark.ops.registry import Params, register


@register("random", "sample")
def random(table: pa.Table, p: Params, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A fresh uniform shuffle every epoch (standard CLIP training)."""
    return rng.permutation(table.num_rows)


class Grouped(Params):
    column: str = Field(IMAGE_GROUP, description="rows sharing this value share a batch")


@register("grouped", "sample", Grouped, reads=lambda p: (p.column,))
def grouped(table: pa.Table, p: Grouped, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Rows with the same group id land in the same batch (e.g. an original and its edits), so
    each is the other's in-batch negative. Groups are shuffled, then packed into batches; a group
    that does not fit the current batch's room starts the next one (gaps filled by singletons)."""
    if p.column not in table.column_names:
        raise OpError(
            f"sampler (grouped): column '{p.column}' missing; add the step that writes it"
        )
    ids = table.column(p.column).to_pylist()
    groups: dict = {}
    for i, g in enumerate(ids):
        groups.setdefault(g, []).append(i)
    members = list(groups.values())
    members = [members[k] for k in rng.permutation(len(members))]
    big = [
        m[i : i + batch_size] for m in members if len(m) > 1 for i in range(0, len(m), batch_size)
    ]
    singles = [m[0] for m in members if len(m) == 1]
    out: list[int] = []
    room = batch_size
    for m in big:
        if len(m) > room:
            take, singles = singles[:room], singles[room:]
            out.extend(take)
            room -= len(take)
            if room:  # not enough singletons to pad: start the next batch anyway
                out.extend(m[:room])
                m = m[room:]
            room = batch_size
        out.extend(m)
        room -= len(m)
        if room == 0:
            room = batch_size
    out.extend(singles)
    return np.asarray(out, dtype=np.int64)
