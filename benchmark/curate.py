"""Apply a recipe's data steps to the pool table, measuring each step and (where the pool has
hidden ground truth) how well each filter found the defects."""

from __future__ import annotations

import hashlib
import heapq
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from benchmark.models.trust import UnsafeModel
from benchmark.ops import registry
from benchmark.ops.context import StepContext
from benchmark.pools import HIDDEN_PREFIX
from benchmark.spec.recipe import Step
from benchmark.store import StoreError, write_atomic

if TYPE_CHECKING:
    from benchmark.pools.shards import ShardReader
    from benchmark.track_models import TrackModels


@dataclass
class Curated:
    table: pa.Table
    steps: list[dict] = field(default_factory=list)  # per-step cost and effect records

    @property
    def uid_hash(self) -> str:
        return uid_hash(self.table.column("uid").to_pylist())


def uid_hash(uids: list[str]) -> str:
    return hashlib.sha256("\n".join(uids).encode()).hexdigest()


def uid_array(uids: list[str]) -> np.ndarray:
    """DataComp's interchange format: each 128-bit hex uid as a pair of uint64."""
    return np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], np.dtype("u8,u8"))


def split_hidden(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(what ops may see, the uid-keyed hidden ground truth)."""
    hidden = [c for c in table.column_names if c.startswith(HIDDEN_PREFIX)]
    return table.drop_columns(hidden), table.select(["uid", *hidden])


def filter_quality(before: set[str], after: set[str], defect: dict[str, str | None]) -> dict:
    """Precision/recall of the removal against the hidden defect labels, over pool rows only:
    rows a generating step added have no label, and a filter that drops them (``quality_check``
    rejecting edits) has found no pool defect, nor removed a clean pool row."""
    before = before & defect.keys()
    removed = before - after
    bad = {u for u in before if defect.get(u)}
    hit = removed & bad
    out = {
        "removed": len(removed),
        "precision": len(hit) / len(removed) if removed else None,
        "recall": len(hit) / len(bad) if bad else None,
    }
    by_kind = Counter(defect[u] for u in hit)
    totals = Counter(defect[u] for u in bad)
    out["recall_by_defect"] = {k: by_kind[k] / n for k, n in sorted(totals.items())}
    return out


CURATION_SEED = 0  # curation is part of the recipe, not of the training seed
REMOVED_SAMPLE = 16  # uids of what each filter step removed, kept for the site's gallery


def removed_sample(uids: Iterable[str], k: int = REMOVED_SAMPLE) -> list[str]:
    """A few uids a filter step removed: the ``k`` with the smallest sha256, so every executor
    picks the same ones whatever order its batches came in."""
    return heapq.nsmallest(k, set(uids), key=lambda u: hashlib.sha256(u.encode()).digest())


def check_reads(
    op: registry.Op, params: registry.Params, columns: list[str], ctx: StepContext
) -> None:
    """The columns a step declares it reads must be there; ``validate`` catches this from the
    recipe alone, this catches a pool or a third-party op that differs from its declaration."""
    missing = [c for c in op.columns_read(params) if c not in columns]
    if missing:
        raise ctx.fail(
            f"needs column(s) {', '.join(missing)}; add the step that produces them earlier"
        )


def step_record(
    i: int,
    op: registry.Op,
    step: Step,
    rows_in: int,
    rows_out: int,
    wall: float,
    device_s: dict[str, float],
    samples: int,
    unreadable: int,
    extra: dict,
) -> dict:
    """One step's cost and effect, the same fields whichever executor ran it. ``wall_s`` is
    the step's elapsed time locally and its summed worker time on a cluster; ``device_s`` is
    the seconds each device spent on it."""
    return {
        "step": i,
        "op": op.name,
        "kind": op.kind,
        "params": step.params,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "wall_s": round(wall, 3),
        "device": "/".join(sorted({d.split(":")[0] for d in device_s})) or "cpu",
        "device_s": {d: round(t, 3) for d, t in sorted(device_s.items())},
        "samples_processed": samples,
        "unreadable_images": unreadable,
        "samples_per_s": round(samples / wall, 1) if wall > 0 else None,
        **extra,
    }


def merge_costs(total: dict, part: dict) -> dict:
    """Sum per-batch cost records: numbers add, nested records merge, anything else (a store
    path) is the same in every batch and kept once."""
    out = dict(total)
    for key, value in part.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = merge_costs(out[key], value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = out[key] + value
    return out


def defect_labels(hidden: pa.Table) -> dict[str, str | None]:
    if "gt_defect" not in hidden.column_names:
        return {}
    uids, labels = hidden.column("uid").to_pylist(), hidden.column("gt_defect").to_pylist()
    return dict(zip(uids, labels, strict=True))


def curate(
    table: pa.Table, steps: list[Step], make_context, setup_s: Callable[[], float] = lambda: 0.0
) -> Curated:
    """Run ``steps`` in order in this process (the local executor). ``make_context(i, step)``
    builds each step's StepContext.

    ``setup_s()`` is the running total of seconds spent building the track's shared models (the
    reference CLIP, the detector) on first use: a step's ``wall_s`` leaves it out, so a recipe's
    cost does not depend on whether it ran first on an empty cache; ``setup_s`` is recorded."""
    visible, hidden = split_hidden(table)
    defect = defect_labels(hidden)
    records = []
    for i, step in enumerate(steps):
        op = registry.get(step.op)
        ctx: StepContext = make_context(i, step)
        params = op.params.model_validate(step.params)
        check_reads(op, params, visible.column_names, ctx)
        before = visible.column("uid").to_pylist()
        t0, setup0 = time.perf_counter(), setup_s()
        try:
            visible = op.apply(visible, params, ctx)
        except UnsafeModel as e:  # a loader refused a model file: the step's error, one line
            raise ctx.fail(str(e)) from None
        setup = setup_s() - setup0
        wall = time.perf_counter() - t0 - setup
        record = step_record(
            i,
            op,
            step,
            len(before),
            visible.num_rows,
            wall,
            {ctx.device: wall},
            ctx.samples_processed,
            ctx.unreadable,
            ctx.extra_costs,
        )
        if setup:
            record["setup_s"] = round(setup, 3)
        if op.kind == "filter":
            after = set(visible.column("uid").to_pylist())
            record["removed_sample"] = removed_sample(set(before) - after)
            if defect:
                record["quality"] = filter_quality(set(before), after, defect)
        records.append(record)
    return Curated(visible, records)


def write(curated: Curated, out: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(curated.table, out / "curated.parquet")
    np.save(out / "uids.npy", uid_array(curated.table.column("uid").to_pylist()))


def build_stage(
    work: Path,
    pool_table: pa.Table,
    steps: list[Step],
    context_for: Callable[[int, Step, Path], StepContext],
    models: TrackModels,
    reader: ShardReader,
) -> None:
    """The local curate stage's build: ``steps`` applied to ``pool_table`` here, written into
    ``work`` (``curated.parquet``, ``uids.npy``, ``report.json``).

    ``context_for(i, step, work_dir)`` makes step i's context (``work_dir`` is its scratch
    directory under ``work``); ``models`` are the track models those contexts hand out, timed
    apart from the steps' cost; ``reader`` is the contexts' shard reader. A curation that lost
    images to a damaged shard is not kept: cached, it would hide the loss from every later run.
    """
    t0 = time.perf_counter()
    result = curate(
        pool_table,
        steps,
        lambda i, step: context_for(i, step, work / f"step{i}"),
        lambda: models.setup_s,
    )
    if reader.damaged:
        lost = "; ".join(f"{reader.root / s} ({p})" for s, p in reader.damaged.items())
        raise StoreError("curate", f"not kept: images lost to damaged shards: {lost}")
    write(result, work)
    report = {
        "pool_rows": pool_table.num_rows,
        "curated_rows": result.table.num_rows,
        "uid_hash": result.uid_hash,
        "steps": result.steps,
        "wall_s": round(time.perf_counter() - t0 - models.setup_s, 3),
        "setup_s": round(models.setup_s, 3),
        "weights": models.weights,
    }
    write_atomic(work / "report.json", json.dumps(report, indent=2))
