"""The stages wired through the run store: pool -> curate -> train -> evaluate -> result.

Each stage is keyed by the hash of its inputs, so an unchanged recipe does no work twice, and
results differ only where inputs do.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark import curate as curation
from benchmark import pools, train
from benchmark.columns import NEGATIVES, REWRITES
from benchmark.distributed import Launch
from benchmark.evaluate import registry as tasks
from benchmark.evaluate.retrieval import karpathy_test_keys
from benchmark.models import clip
from benchmark.ops import registry as ops
from benchmark.ops.context import StepContext
from benchmark.pools.contamination import EvalSet
from benchmark.pools.shards import ShardReader
from benchmark.pools.subset import subset_images
from benchmark.spec import budget
from benchmark.spec.load import RecipeSpec, TrackSpec
from benchmark.spec.recipe import Step
from benchmark.spec.track import Scale
from benchmark.store import Stage, Store, digest, write_atomic
from benchmark.track_models import TrackModels

# What a result's numbers depend on (ultralytics trains the detector, diffusers runs the fill).
LIBRARIES = (
    "smallcomp",
    "torch",
    "open_clip_torch",
    "clip-benchmark",
    "webdataset",
    "pyarrow",
    "numpy",
    "ultralytics",
    "diffusers",
)


@dataclass
class Runner:
    store: Store
    device: str = "cpu"
    allow_weights: tuple[str, ...] = ()  # pickled weights recipes may name (``--allow-weights``)
    # "local", or a ``curate_ray.RayOptions`` to curate on a Ray cluster; never part of a key
    executor: object = "local"
    # how many processes train (``--gpus``, ``--nnodes``): never part of a stage's key
    launch: Launch = field(default_factory=Launch)

    # -- pool ------------------------------------------------------------------------------
    def pool(self, params: pools.PoolParams, eval_sets: list[EvalSet] | None = None) -> pa.Table:
        """The pool table, image references relative to the store root, without any sample that
        shows an eval image (those are counted in the pool report)."""
        return pq.read_table(self.pool_file(params, eval_sets))

    def pool_file(self, params: pools.PoolParams, eval_sets: list[EvalSet] | None = None) -> Path:
        """The pool table's parquet file (built unless done)."""
        inputs = params.model_dump(mode="json")
        if eval_sets:
            inputs["guard"] = [
                [e.name, [Path(f).name for f in e.files], list(e.ids), e.dataset] for e in eval_sets
            ]
        stage = self.store.stage("pool", inputs)
        if params.subset is not None:
            return self._pool_subset(params, eval_sets, stage)
        prefix = f"pool/{stage.key}/"
        path = stage.ensure(lambda work: pools.build_stage(work, params, prefix, eval_sets))
        return path / "pool.parquet"

    def _pool_subset(
        self, params: pools.PoolParams, eval_sets: list[EvalSet] | None, stage: Stage
    ) -> Path:
        """A subset pool: rows of the whole clean pool (built once, its shards shared, not
        copied), so the subset holds exactly the images asked for; its report names it by uid
        hash."""
        whole = self.pool(params.model_copy(update={"subset": None}), eval_sets)

        def build(work: Path) -> None:
            table = subset_images(whole, params.subset)
            report = {
                "subset": params.subset.model_dump(),
                "of_rows": whole.num_rows,
                "rows": table.num_rows,
                "uid_hash": curation.uid_hash(table.column("uid").to_pylist()),
            }
            pq.write_table(table, work / "pool.parquet")
            write_atomic(work / "report.json", json.dumps(report, indent=2))

        return stage.ensure(build) / "pool.parquet"

    def track_pool(self, track: TrackSpec) -> pa.Table:
        return pq.read_table(self.track_pool_file(track))

    def track_pool_file(self, track: TrackSpec) -> Path:
        """The track's pool, checked against the track's eval images (files and split ids)."""
        sets = []
        for e in track.track.eval_images:
            root = track.data_root
            files = sorted(p for p in (root / e.dir).iterdir() if p.is_file()) if e.dir else []
            ids = karpathy_test_keys(root / e.split_file) if e.split_file else []
            sets.append(EvalSet(e.name, files, ids, e.dataset))
        return self.pool_file(track.pool, sets)

    # -- reference model -------------------------------------------------------------------
    def reference(self, track: TrackSpec) -> clip.ClipBundle:
        ref = track.track.reference
        if ref is None:
            raise ValueError(f"track '{track.track.name}' has no reference model")
        if ref.model is not None:
            # The track is the benchmark's: its own model loads as it is.
            return clip.create(ref.model, ref.pretrained, self.device, (ref.model, ref.pretrained))
        table = self.pool(track.reference_pool)
        path = self.train(
            table,
            ref.train,
            Step(op="random"),
            ref.train.seeds[0],
            "reference",
            where=f"{track.file}: reference",
        )
        return clip.create(str(path), device=self.device)

    # -- detector --------------------------------------------------------------------------
    def detector(self, track: TrackSpec) -> str:
        """The track's detector weights: named, or trained once on the embedded world (cached,
        with its held-out mAP50 in the stage's report)."""
        spec = track.track.detector
        if spec is None:
            raise ValueError(f"track '{track.track.name}' has no detector")
        if spec.model is not None:
            return spec.model
        from benchmark.pools.shapes_detection import build_detector

        stage = self.store.stage("detector", spec.train.model_dump())
        path = stage.ensure(lambda work: build_detector(work, spec.train, self.device))
        return str(path / "detector.pt")

    # -- curate ----------------------------------------------------------------------------
    def _curate_stage(self, spec: RecipeSpec) -> Stage:
        track = spec.track
        steps = [s.model_dump() for s in spec.recipe.steps]
        ref = track.track.reference.model_dump() if track.track.reference else None
        inputs = {
            "pool": track.pool.model_dump(mode="json"),
            "steps": steps,
            "reference": ref,
            "seed": curation.CURATION_SEED,
        }
        if track.track.detector and any(ops.get(s.op).isolate for s in spec.recipe.steps):
            inputs["detector"] = track.track.detector.model_dump()
        if track.track.eval_images:
            inputs["guard"] = [e.model_dump() for e in track.track.eval_images]
        return self.store.stage("curate", inputs)

    def curation_stage(self, spec: RecipeSpec) -> Stage:
        """Where the recipe's curation is (or would be) stored; runs nothing."""
        return self._curate_stage(spec)

    def curate(self, spec: RecipeSpec) -> tuple[pa.Table, dict]:
        pool_file = self.track_pool_file(spec.track)
        budget.check(spec, pq.read_metadata(pool_file).num_rows, self.device)
        stage = self._curate_stage(spec)
        if self.executor != "local":
            path = self._curate_on_ray(spec, pool_file, stage)
        elif not stage.done and any(ops.get(s.op).isolate for s in spec.recipe.steps):
            # The heavy libraries these steps load must not share the trainer's process.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                pool.submit(
                    _curate_in_worker, self.store.root, self.device, spec, self.allow_weights
                ).result()
            path = stage.path
        else:
            path = self.build_curation(spec, pq.read_table(pool_file))
        return pq.read_table(path / "curated.parquet"), json.loads(
            (path / "report.json").read_text()
        )

    def build_curation(self, spec: RecipeSpec, pool_table: pa.Table) -> Path:
        """The curate stage's directory: the recipe's steps applied to the pool, unless done.

        A curation that lost images to a damaged shard is not kept: cached, it would hide the
        loss from every later run."""
        stage = self._curate_stage(spec)
        reader = ShardReader(self.store.root)
        models = TrackModels(self, spec.track)

        def context(i: int, step: Step, work_dir: Path) -> StepContext:
            return StepContext(
                f"{spec.file}: steps[{i}] ({step.op})",
                reader,
                curation.CURATION_SEED + i,
                work_dir,
                self.device,
                models.reference,
                models.detector,
                self.store.root,
                self.allow_weights,
                Path(spec.file).resolve().parent,
            )

        steps = spec.recipe.steps
        return stage.ensure(
            lambda work: curation.build_stage(work, pool_table, steps, context, models, reader)
        )

    def _curate_on_ray(self, spec: RecipeSpec, pool_file: Path, stage: Stage) -> Path:
        """The curate stage built on a Ray cluster: the same stage, key and report as local."""
        from benchmark import curate_ray

        root, device, allow = self.store.root, self.device, self.allow_weights
        return stage.ensure(
            lambda work: curate_ray.build_stage(
                work, pool_file, spec, root, device, allow, self.executor
            )
        )

    # -- train -----------------------------------------------------------------------------
    def train(
        self,
        table: pa.Table,
        scale: Scale,
        sampler: Step,
        seed: int,
        name: str = "train",
        loss: str = "clip",
        *,
        where: str,
    ) -> Path:
        """The trained model's directory. ``where`` names what asked for it (the recipe file)
        in the one-line error a bad sampler, loss or curated set gets."""
        inputs = {
            "data": curation.uid_hash(table.column("uid").to_pylist()),
            "captions": curation.uid_hash(table.column("caption").to_pylist()),
            "images": digest(table.column("image").to_pylist()),
            "scale": scale.model_dump(),
            "sampler": sampler.model_dump(),
            "seed": seed,
        }
        for column in (REWRITES, NEGATIVES):
            if column in table.column_names:
                inputs[column] = digest(table.column(column).to_pylist())
        for value in sampler.params.values():  # columns the sampler reads (groups, embeddings)
            if isinstance(value, str) and value in table.column_names:
                inputs[f"sampler:{value}"] = digest(table.column(value).to_pylist())
        if loss != "clip":
            inputs["loss"] = loss
        stage = self.store.stage(name, inputs)
        run_id = f"smallcomp-{name}-{stage.key}"
        build = train.stage_build(
            self.launch,
            table,
            self.store.root,
            scale,
            sampler,
            seed,
            self.device,
            loss,
            run_id,
            where,
        )
        return stage.ensure(build, resume=True)

    # -- evaluate --------------------------------------------------------------------------
    def evaluate(self, model_dir: Path, track: TrackSpec) -> dict:
        ev = track.track.eval
        stage = self.store.stage(
            "evaluate",
            {
                "model": str(model_dir.name),
                "suite": ev.suite,
                "version": ev.version,
                "tasks": ev.tasks,
                "options": ev.options,
            },
        )

        def build(work: Path) -> None:
            bundle = clip.create(str(model_dir), device=self.device)
            results = {}
            for name in ev.tasks:
                t0 = time.perf_counter()
                results[name] = tasks.get(name).fn(bundle, track.eval_params[name]) | {
                    "model": str(model_dir),
                    "wall_s": round(time.perf_counter() - t0, 2),
                }
            write_atomic(work / "results.json", json.dumps(results, indent=2))

        return json.loads((stage.ensure(build) / "results.json").read_text())

    # -- the whole run ---------------------------------------------------------------------
    def run_all(
        self,
        jobs: list[tuple[RecipeSpec, int]],
        scale_name: str,
        workers: int,
        started: Callable[[RecipeSpec, int], None],
        done: Callable[[RecipeSpec, int, dict], None],
    ) -> None:
        """Run each (recipe, seed): in order here, or ``workers`` at a time in worker processes
        (the shared stages, pools, reference and curations, are built here first, in order, so
        no two workers build one). The one place that manages worker processes for runs."""
        if workers == 1:
            for spec, seed in jobs:
                started(spec, seed)
                done(spec, seed, self.run(spec, scale_name, seed))
            return
        for spec in {id(spec): spec for spec, _ in jobs}.values():
            self.curate(spec)
        threads = max(1, (os.cpu_count() or 1) // workers)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            args = (str(self.store.root), self.device, self.allow_weights, scale_name, threads)
            futures = {
                pool.submit(_run_in_worker, spec, seed, *args): (spec, seed) for spec, seed in jobs
            }
            for future, (spec, seed) in futures.items():
                done(spec, seed, future.result())

    def run(self, spec: RecipeSpec, scale_name: str, seed: int) -> dict:
        scale = spec.track.scale(scale_name)
        table, report = self.curate(spec)
        model_dir = self.train(
            table, scale, spec.recipe.sampler, seed, loss=spec.recipe.loss, where=spec.file
        )
        results = self.evaluate(model_dir, spec.track)
        record = json.loads((model_dir / "train.json").read_text())
        ev = spec.track.track.eval
        return {
            "recipe": spec.recipe.name,
            "recipe_hash": spec.hash,
            "recipe_file": spec.file,
            "track": spec.track.track.name,
            "scale": scale_name,
            "seed": seed,
            "suite": ev.suite,
            "suite_version": ev.version,
            "tasks": results,
            "headline": {n: results[n]["metrics"][tasks.get(n).headline] for n in ev.tasks},
            "headline_tasks": ev.headline_tasks,  # their mean is the score the result ranks by
            "curated": {
                "size": report["curated_rows"],
                "pool_size": report["pool_rows"],
                "uid_hash": report["uid_hash"],
                "weights": report.get("weights", {}),
            },
            "costs": {"curation_wall_s": report["wall_s"], "steps": report["steps"]},
            "train": record,
            "device": self.device,
            "world_size": record.get("world_size", 1),  # the training that made the model
            "devices": record.get("devices", [self.device]),
            "versions": {lib: version(lib) for lib in LIBRARIES}
            | {"python": platform.python_version()},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }


def _run_in_worker(
    spec: RecipeSpec,
    seed: int,
    root: str,
    device: str,
    allow_weights: tuple[str, ...],
    scale_name: str,
    threads: int,
) -> dict:
    """One (recipe, seed) run in a worker process of ``run_all``."""
    import torch

    torch.set_num_threads(threads)
    return Runner(Store(root), device, allow_weights).run(spec, scale_name, seed)


def _curate_in_worker(
    root: Path, device: str, spec: RecipeSpec, allow_weights: tuple[str, ...]
) -> None:
    runner = Runner(Store(root), device, allow_weights)
    runner.build_curation(spec, runner.track_pool(spec.track))
