"""Curation on Ray Data (``--executor ray``): the same steps, the same answer as ``curate.curate``.

The pool streams from its parquet through one ``map_batches`` per row-local step; a step's
global part (a quantile cut, dedup, a clustering) runs on the driver over the few columns it
reads, and its decision goes back to the cluster as a uid join. The driver never holds the
pool's table, only those columns and the curated uid list, so its memory does not grow with the
pool's images or captions. Steps that run a model do it in actor pools (one model per actor,
``num_gpus`` each where the cluster has GPUs); the other row-local steps run as tasks, whose
worker processes Ray keeps from one recipe to the next. Every batch reports its rows, seconds,
device and counters to one records actor, so a step's record is as complete as a local run's.

The run store must be on a filesystem every node sees (a generate step's workers write their
content-named chunks under ``generated/<step hash>/`` themselves).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if (os.environ.get("RAY_ADDRESS") or "127.0.0.1:").split(":")[0] in {"127.0.0.1", "localhost"}:
    # A cluster this executor starts for itself stays on loopback, and so does a driver given
    # a loopback address: Ray otherwise swaps 127.0.0.1 for the machine's interface address
    # before it connects, where a cluster whose nodes are all on 127.0.0.1 does not listen.
    # Ray reads this once, when it is imported; it only stops ``ray start`` adding nodes.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray

from benchmark import columns
from benchmark.curate import (
    CURATION_SEED,
    check_reads,
    defect_labels,
    filter_quality,
    merge_costs,
    removed_sample,
    step_record,
    uid_array,
)
from benchmark.device import default_device
from benchmark.models.trust import UnsafeModel
from benchmark.ops import registry
from benchmark.ops.context import OpError, StepContext
from benchmark.pools import HIDDEN_PREFIX
from benchmark.pools.shards import ShardReader
from benchmark.spec.load import RecipeSpec, TrackSpec
from benchmark.spec.recipe import Step
from benchmark.store import write_atomic
from benchmark.track_models import TrackModels

MIN_BATCH_ROWS = 256  # rows per map_batches call, rounded up to a multiple of the op's batch


@dataclass(frozen=True)
class RayOptions:
    """How to use the cluster; never part of a recipe or of any stage key."""

    address: str | None = None  # an existing cluster ("auto", "127.0.0.1:6379"); else local
    concurrency: int | None = None  # actors per model step (default: one per GPU, else per CPU)
    gpus_per_actor: float | None = None  # default: 1 where the cluster has GPUs, else 0


@dataclass(frozen=True)
class StepSpec:
    """What a worker needs to rebuild a step's context: plain data, sent to every actor."""

    index: int
    step: Step
    name: str
    store_root: str
    work_dir: str
    device: str
    track: TrackSpec
    allow_weights: tuple[str, ...]
    track_defects: bool  # report removed uids (the pool has defect labels)
    recipe_dir: str | None = None  # what files a step names are relative to (``uids``)

    @property
    def seed(self) -> int:
        return CURATION_SEED + self.index


def init(options: RayOptions) -> None:
    """Connect to the cluster, or start one on this machine bound to loopback."""
    if ray.is_initialized():
        return
    if options.address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=options.address, log_to_driver=False)
    else:
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # the curated table's order is the answer
    ctx.enable_progress_bars = False


@ray.remote(num_cpus=0)
class Records:
    """Per-step sums of what the workers did, and the track models they loaded."""

    def __init__(self) -> None:
        self.steps: dict[int, dict] = defaultdict(
            lambda: {
                "rows_in": 0,
                "rows_out": 0,
                "busy_s": 0.0,
                "setup_s": 0.0,
                "device_s": defaultdict(float),
                "samples": 0,
                "unreadable": 0,
                "extra": {},
                "removed": [],
                "removed_sample": [],
                "workers": {},
                "schema": None,
            }
        )
        self.weights: dict[str, str] = {}

    def add(self, index: int, part: dict) -> None:
        s = self.steps[index]
        for key in ("rows_in", "rows_out", "busy_s", "setup_s", "samples", "unreadable"):
            s[key] += part[key]
        s["device_s"][part["device"]] += part["busy_s"]
        s["extra"] = merge_costs(s["extra"], part["extra"])
        s["removed"] += part["removed"]
        s["removed_sample"] = removed_sample(s["removed_sample"] + part["removed_sample"])
        w = s["workers"].setdefault(part["worker"], {"rows": 0, "busy_s": 0.0, **part["where"]})
        w["rows"] += part["rows_in"]
        w["busy_s"] += part["busy_s"]
        if s["schema"] is None:
            s["schema"] = part["schema"]
        self.weights |= part["weights"]

    def get(self) -> tuple[dict, dict]:
        return {i: dict(s) for i, s in self.steps.items()}, self.weights


def track_models(spec: StepSpec) -> TrackModels:
    """The track's models in this worker, built through its own view of the run store."""
    from benchmark.pipeline import Runner
    from benchmark.store import Store

    runner = Runner(Store(Path(spec.store_root)), spec.device, spec.allow_weights)
    return TrackModels(runner, spec.track)


def step_context(
    spec: StepSpec, models: TrackModels, reader: ShardReader, device: str
) -> StepContext:
    return StepContext(
        spec.name,
        reader,
        spec.seed,
        Path(spec.work_dir),
        device,
        models.reference,
        models.detector,
        Path(spec.store_root),
        spec.allow_weights,
        Path(spec.recipe_dir) if spec.recipe_dir else None,
    )


class RowWorker:
    """One worker of a run of row-local steps (an actor where a step runs a model, else kept
    by ``row_task``): builds their models once, then runs each batch through the steps in
    turn, reporting each step's part."""

    def __init__(
        self, specs: list[StepSpec], records: ray.actor.ActorHandle, threads: float
    ) -> None:
        self.specs = specs
        self.records = records
        self.ops = [registry.get(s.step.op) for s in specs]
        self.params = [
            op.params.model_validate(s.step.params) for op, s in zip(self.ops, specs, strict=True)
        ]
        self.models = [track_models(s) for s in specs]
        self.reader = ShardReader(Path(specs[0].store_root))
        gpus = [str(g) for g in ray.get_gpu_ids()]
        self.where = {"node": ray.get_runtime_context().get_node_id()[:12], "gpu_ids": gpus}
        self.worker = f"{os.getpid()}@{self.where['node']}"
        self.device = specs[0].device
        if gpus and default_device() == "cuda":
            self.device = "cuda"  # Ray set CUDA_VISIBLE_DEVICES: index 0 is this actor's GPU
        self.device_name = f"cuda:{gpus[0]}" if self.device == "cuda" else self.device
        if "torch" in sys.modules or any(op.device for op in self.ops):
            import torch

            torch.set_num_threads(max(1, round(threads)))

    def __call__(self, batch: pa.Table) -> pa.Table:
        for spec, op, params, models in zip(
            self.specs, self.ops, self.params, self.models, strict=True
        ):
            batch = self._step(spec, op, params, models, batch)
        return batch

    def _step(self, spec, op, params, models, batch: pa.Table) -> pa.Table:
        ctx = step_context(spec, models, self.reader, self.device)
        t0, setup0 = time.perf_counter(), models.setup_s
        try:
            out = op.fn(batch, params, ctx)
        except UnsafeModel as e:
            raise ctx.fail(str(e)) from None
        setup = models.setup_s - setup0
        removed: list[str] = []
        if op.kind == "filter":
            kept = pc.is_in(batch.column(columns.UID), value_set=out.column(columns.UID))
            removed = batch.column(columns.UID).filter(pc.invert(kept)).to_pylist()
        part = {
            "rows_in": batch.num_rows,
            "rows_out": out.num_rows,
            "busy_s": time.perf_counter() - t0 - setup,
            "setup_s": setup,
            "device": self.device_name,
            "samples": ctx.samples_processed,
            "unreadable": ctx.unreadable,
            "extra": ctx.extra_costs,
            "removed": removed if spec.track_defects else [],
            "removed_sample": removed_sample(removed),
            "worker": self.worker,
            "where": self.where,
            "schema": out.schema if op.kind == "generate" else None,
            "weights": dict(models.weights),
        }
        ray.get(self.records.add.remote(spec.index, part))
        return out


_row_workers: dict[tuple[str, int], RowWorker] = {}  # in a task's process: recent groups'


def row_task(
    batch: pa.Table,
    token: tuple[str, int],
    specs: list[StepSpec],
    records: ray.actor.ActorHandle,
    threads: float,
) -> pa.Table:
    """A batch through a group of row-local steps that load no model, as a Ray task: the
    process keeps the group's ``RowWorker`` for the group's later batches. An actor pool
    would start fresh processes (seconds each, importing torch) for every group of every
    recipe."""
    if token not in _row_workers:
        while len(_row_workers) >= 4:  # groups run one after another: older ones are done
            _row_workers.pop(next(iter(_row_workers)))
        _row_workers[token] = RowWorker(specs, records, threads)
    return _row_workers[token](batch)


_decisions: dict[str, pa.Table] = {}  # in a worker: each decision fetched once per process


def join(batch: pa.Table, ref: ray.ObjectRef, written: tuple[str, ...]) -> pa.Table:
    """Apply a driver-side decision (a table of kept uids and the columns written) to a batch:
    keep the rows it kept, in order, and take the columns it wrote."""
    key = ref.hex()
    if key not in _decisions:
        _decisions.clear()
        _decisions[key] = ray.get(ref)
    decided = _decisions[key]
    at = pc.index_in(batch.column(columns.UID), value_set=decided.column(columns.UID))
    keep = pc.is_valid(at)
    batch, at = batch.filter(keep), at.filter(keep)
    for name in written:
        values = decided.column(name).take(at)
        if name in batch.column_names:
            batch = batch.set_column(batch.column_names.index(name), name, values)
        else:
            batch = batch.append_column(name, values)
    return batch


def conform(batch: pa.Table, schema: pa.Schema) -> pa.Table:
    """A batch in the generate step's output schema (its inputs' columns, then the columns only
    new rows have): what it lacks is null, as ``registry.append_generated`` makes it locally."""
    out = []
    for field in schema:
        if field.name in batch.column_names:
            out.append(batch.column(field.name).cast(field.type))
        else:
            out.append(pa.nulls(batch.num_rows, field.type))
    return pa.table(out, schema=schema)


def batch_rows(params: registry.Params) -> int:
    """Rows per batch: a multiple of the op's own model batch, so a batch holds whole ones."""
    unit = math.lcm(*(getattr(params, k, 1) or 1 for k in ("batch_size", "chunk_size")))
    return unit * max(1, math.ceil(MIN_BATCH_ROWS / unit))


def node_cpus() -> list[float]:
    """The CPUs of each live node that has any: what ``actor_cpus`` must fit the actors into."""
    cpus = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n["Alive"]]
    return [c for c in cpus if c > 0] or [1.0]


def actor_cpus(node_cpus: list[float], actors: int) -> float:
    """CPUs each actor of a pool reserves: what leaves one whole CPU free on every node, shared
    by the actors the fullest node holds when Ray spreads them evenly.

    The tasks that list, read and join blocks each need one whole CPU on one node (Ray Data's
    ``ListFiles`` always asks for 1), or the pipeline waits on itself. Summing the cluster's CPUs
    is not enough: two 1-CPU nodes with a 0.5-CPU actor each have 1 CPU free in all and none
    whole on any node, and the first read never starts. Where the smallest node has 1 CPU the
    actors therefore reserve nothing (the pool's ``concurrency`` still bounds them; Ray may
    then put them all on one node). A lone 1-CPU node gives its CPU to its actor, unchanged.
    Each actor's threads follow its share (``RowWorker``).
    """
    if len(node_cpus) == 1 and node_cpus[0] <= 1:
        return 1.0
    per_node = math.ceil(actors / len(node_cpus))
    return max(min(node_cpus) - 1, 0.0) / per_node


def _pull(ds: ray.data.Dataset, names: list[str]) -> pa.Table:
    """Columns of the whole dataset, on the driver (small columns only: never pixels)."""
    refs = ds.select_columns(names).to_arrow_refs()
    tables = [t for t in ray.get(refs) if t.num_rows]
    return pa.concat_tables(tables) if tables else ds.select_columns(names).schema().empty_table()


def _check_order(before: pa.Table, after: pa.Table, name: str) -> None:
    """A global part may drop rows and write columns, not reorder: the join relies on it."""
    pos = pc.index_in(after.column(columns.UID), value_set=before.column(columns.UID))
    if pos.null_count or not np.all(np.diff(pos.to_numpy(zero_copy_only=False)) > 0):
        raise OpError(f"{name}: its global part reorders or invents rows; it may only drop them")


class Curation:
    """One recipe's steps over one pool on the cluster."""

    def __init__(
        self,
        pool_file: Path,
        steps: list[Step],
        spec_for: Callable[[int, Step, bool], StepSpec],
        options: RayOptions,
    ) -> None:
        init(options)
        self.pool_file = pool_file
        self.steps = steps
        self.spec_for = spec_for
        self.options = options
        schema = pq.read_schema(pool_file)
        self.visible = [n for n in schema.names if not n.startswith(HIDDEN_PREFIX)]
        hidden = [n for n in schema.names if n.startswith(HIDDEN_PREFIX)]
        self.defect = (
            defect_labels(pq.read_table(pool_file, columns=[columns.UID, *hidden]))
            if "gt_defect" in hidden
            else {}
        )
        self.records = Records.remote()
        self.token = os.urandom(8).hex()  # names this curation's workers in ``row_task``
        self.pool_rows = pq.read_metadata(pool_file).num_rows
        resources = ray.cluster_resources()
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.gpus = int(resources.get("GPU", 0))
        self.node_cpus = node_cpus()

    def _segments(self) -> list[list[int]]:
        """Steps grouped as they run: consecutive row-local steps share one actor pool (a
        step's global part ends its group); a generate step and a global step run alone."""
        groups: list[list[int]] = []
        for i, step in enumerate(self.steps):
            op = registry.get(step.op)
            alone = op.scope == "table" or op.kind == "generate"
            last = registry.get(self.steps[groups[-1][-1]].op) if groups else None
            joinable = (
                last is not None
                and last.scope == "rows"
                and last.kind != "generate"
                and last.decide is None
                and not alone
            )
            if joinable:
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    def _pool(self, ops: list[registry.Op], params: list[registry.Params]) -> dict:
        """Actor pool options for a group: GPUs where a step runs a model and the cluster has
        them. Rows per batch: a multiple of every step's own model batch."""
        o = self.options
        gpus = o.gpus_per_actor if o.gpus_per_actor is not None else (1 if self.gpus else 0)
        size = math.lcm(*(batch_rows(p) for p in params))
        on_gpus = bool(gpus) and any(op.device for op in ops)
        n = o.concurrency or (max(1, int(self.gpus // gpus)) if on_gpus else self.cpus)
        pool = {"batch_size": size, "concurrency": n, "num_cpus": actor_cpus(self.node_cpus, n)}
        return pool | {"num_gpus": gpus} if on_gpus else pool

    def run(self, out: Path) -> dict:
        # Enough blocks that every actor has work from the start (a pool file is often one
        # row group, which would be one block).
        blocks = max(2 * self.cpus, math.ceil(self.pool_rows / 4096))
        ds = ray.data.read_parquet(
            str(self.pool_file), columns=self.visible, override_num_blocks=blocks
        )
        names = list(self.visible)
        alive = set(self.defect)  # pool rows with labels not yet removed (filter quality)
        driver: dict[int, dict] = {}
        for group in self._segments():
            steps = [self.steps[i] for i in group]
            ops = [registry.get(s.op) for s in steps]
            params = [op.params.model_validate(s.params) for op, s in zip(ops, steps, strict=True)]
            specs = [
                self.spec_for(i, s, bool(self.defect)) for i, s in zip(group, steps, strict=True)
            ]
            ctxs = [
                step_context(s, track_models(s), ShardReader(Path(s.store_root)), s.device)
                for s in specs
            ]
            for op, p, ctx in zip(ops, params, ctxs, strict=True):
                check_reads(op, p, names, ctx)
                names += [c for c in op.columns_written(p) if c not in names]
            op, p, ctx, i = ops[-1], params[-1], ctxs[-1], group[-1]
            if op.scope == "table":
                ds, driver[i] = self._global(ds, op, p, ctx, op.fn)
                continue
            pool = self._pool(ops, params)
            # One block goes to one actor, and Ray Data's file reader makes one block of a
            # one-file pool whatever it is asked for (a join keeps its input's blocks): on a
            # cluster of several nodes, split the rows into batch-sized blocks as they stream,
            # so every node's actors get a share. Not on one node: there the split changed
            # counterfactual_unfiltered's curation (seen; cause not yet found).
            if len(self.node_cpus) > 1:
                ds = ds.repartition(target_num_rows_per_block=pool["batch_size"])
            if op.kind == "generate":
                ds = ds.materialize()  # the inputs are read twice: passed on, and edited
            worker_args = (specs, self.records, pool.get("num_cpus", 1.0))
            if any(op.device for op in ops):  # one model per actor, loaded once
                rows = ds.map_batches(
                    RowWorker, fn_constructor_args=worker_args, batch_format="pyarrow", **pool
                )
            else:  # tasks: Ray keeps their worker processes, so nothing starts per recipe
                token = (self.token, i)
                rows = ds.map_batches(
                    row_task, fn_args=(token, *worker_args), batch_format="pyarrow", **pool
                )
            if op.kind == "generate":
                rows = rows.materialize()  # the new rows go after all the inputs
                schema = ray.get(self.records.get.remote())[0].get(i, {}).get("schema")
                if schema is None:  # no batch made a row: the new rows' columns still appear
                    schema = op.fn(_pull(ds, names).slice(0, 0), p, ctx).schema
                names += [c for c in schema.names if c not in names]
                inputs = ds.schema().base_schema
                both = pa.schema([*inputs, *(f for f in schema if f.name not in inputs.names)])
                # In that order: Ray's union streams whichever side is ready first.
                parts = [
                    part.map_batches(conform, fn_args=(both,), batch_format="pyarrow")
                    .materialize()
                    .to_arrow_refs()
                    for part in (ds, rows)
                ]
                ds = ray.data.from_arrow_refs(parts[0] + parts[1])
            else:
                ds = rows
            if op.decide is not None:
                ds, driver[i] = self._global(ds, op, p, ctx, op.decide)
        return self._write(ds, out, alive, driver)

    def _global(self, ds, op, params, ctx, part) -> tuple[ray.data.Dataset, dict]:
        """Run a global part on the driver over the columns it reads, and join its decision
        back. Returns the new dataset and the part's own cost record."""
        ds = ds.materialize()
        available = ds.schema().names
        wanted = {columns.UID, *op.columns_read(params), *op.columns_written(params), *op.uses}
        small = _pull(ds, [n for n in available if n in wanted])
        t0 = time.perf_counter()
        try:
            decided = part(small, params, ctx)
        except UnsafeModel as e:
            raise ctx.fail(str(e)) from None
        wall = time.perf_counter() - t0
        _check_order(small, decided, ctx.name)
        written = tuple(
            n
            for n in decided.column_names
            if n != columns.UID and (n not in small.column_names or n in op.columns_written(params))
        )
        keep = ray.put(decided.select([columns.UID, *written]))
        # Ray Data hands the reference over unresolved: each worker fetches it once (join).
        joined = ds.map_batches(join, fn_args=(keep, written), batch_format="pyarrow")
        record = {
            "rows_in": small.num_rows,
            "rows_out": decided.num_rows,
            "wall": wall,
            "device": ctx.device,
            "samples": ctx.samples_processed,
            "unreadable": ctx.unreadable,
            "extra": ctx.extra_costs,
            "removed": pc.filter(
                small.column(columns.UID),
                pc.invert(
                    pc.is_in(small.column(columns.UID), value_set=decided.column(columns.UID))
                ),
            ).to_pylist(),
        }
        return joined, record

    def _write(self, ds, out: Path, alive: set[str], driver: dict[int, dict]) -> dict:
        """Stream the curated table into ``curated.parquet`` (one file, as locally), hashing
        its uids on the way; then the step records."""
        h = hashlib.sha256()
        uids: list[np.ndarray] = []
        writer = None
        n = 0
        schema = None
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if batch.num_rows == 0:
                continue
            if schema is None:
                schema = batch.schema
                writer = pq.ParquetWriter(out / "curated.parquet", schema)
            batch = batch.select(schema.names).cast(schema)
            ids = batch.column(columns.UID).to_pylist()
            h.update(("\n" if n else "").encode() + "\n".join(ids).encode())
            uids.append(uid_array(ids))
            n += batch.num_rows
            writer.write_table(batch)
        if writer is None:
            empty = ds.schema()
            pq.write_table(
                empty.empty_table() if empty else pa.table({columns.UID: []}),
                out / "curated.parquet",
            )
        else:
            writer.close()
        np.save(out / "uids.npy", np.concatenate(uids) if uids else uid_array([]))
        worked, weights = ray.get(self.records.get.remote())
        records = []
        for i, step in enumerate(self.steps):
            op = registry.get(step.op)
            w = worked.get(i)
            d = driver.get(i)
            rows_in = w["rows_in"] if w else d["rows_in"]
            rows_out = (d or w)["rows_out"]
            if w and op.kind == "generate":
                rows_out = w["rows_in"] + w["rows_out"]
            wall = (w["busy_s"] if w else 0.0) + (d["wall"] if d else 0.0)
            device_s = dict(w["device_s"]) if w else {}
            if d:
                device_s[d["device"]] = device_s.get(d["device"], 0.0) + d["wall"]
            extra = merge_costs(w["extra"] if w else {}, d["extra"] if d else {})
            record = step_record(
                i,
                op,
                step,
                rows_in,
                rows_out,
                wall,
                device_s,
                (w["samples"] if w else 0) + (d["samples"] if d else 0),
                (w["unreadable"] if w else 0) + (d["unreadable"] if d else 0),
                extra,
            )
            setup = w["setup_s"] if w else 0.0
            if setup:
                record["setup_s"] = round(setup, 3)
            if w:
                record["workers"] = sorted(w["workers"].values(), key=lambda x: x["node"])
            if op.kind == "filter":
                sample = (w["removed_sample"] if w else []) + (d["removed"] if d else [])
                record["removed_sample"] = removed_sample(sample)
            if self.defect and op.kind == "filter":
                removed = set((w["removed"] if w else []) + (d["removed"] if d else []))
                before = set(alive)
                alive -= removed
                record["quality"] = filter_quality(before, alive, self.defect)
            records.append(record)
        return {
            "pool_rows": self.pool_rows,
            "curated_rows": n,
            "uid_hash": h.hexdigest(),
            "steps": records,
            "weights": weights,
        }


def build_stage(
    work: Path,
    pool_file: Path,
    spec: RecipeSpec,
    store_root: Path,
    device: str,
    allow_weights: tuple[str, ...],
    options: RayOptions,
) -> None:
    """The curate stage's build on the cluster, into ``work``: the same files, and the same
    report as the local build's, plus its executor."""

    def step_spec(i: int, step: Step, defects: bool) -> StepSpec:
        return StepSpec(
            i,
            step,
            f"{spec.file}: steps[{i}] ({step.op})",
            str(store_root),
            str(work / f"step{i}"),
            device,
            spec.track,
            allow_weights,
            defects,
            str(Path(spec.file).resolve().parent),
        )

    t0 = time.perf_counter()
    report = Curation(pool_file, spec.recipe.steps, step_spec, options).run(work)
    report["wall_s"] = round(time.perf_counter() - t0, 3)
    report["setup_s"] = round(sum(s.get("setup_s", 0.0) for s in report["steps"]), 3)
    report["executor"] = "ray"
    write_atomic(work / "report.json", json.dumps(report, indent=2))
