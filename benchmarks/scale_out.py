"""Scale-out, side by side in one run: the local executor against Ray Data, and 1 vs 2 DDP ranks.

1. rows/s of a CPU-bound row-local step (CLIP-score scoring with the track's tiny ViT, random
   weights) on a shapes pool: local, then Ray with 1 and with 2 actors;
2. the driver's peak RSS for text-only steps (caption_length, image_size) over synthetic pools
   of 100k and 1M rows: local (the table in memory) against Ray (streamed from parquet);
3. train steps/s, 1 rank against 2 gloo ranks (``benchmarks/ddp_throughput.py``).

Each measurement runs in a fresh process, so its peak RSS is its own and no Ray session leaks
into the next. Medians over ``--repeats``; the machine is shared, so read the ratios.

    python benchmarks/scale_out.py [--rows 4000] [--sizes 100000,1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TRACK = REPO / "tests" / "tracks" / "shapes-test.yaml"

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from benchmark.ops import registry
from benchmark.ops.context import StepContext
from benchmark.pools.shards import ShardReader
from benchmark.spec.load import load_track
from benchmark.spec.recipe import Step

executor, pool_file, steps_json, actors = sys.argv[1:5]
pool_file = Path(pool_file)
root = pool_file.parent
steps = [
    Step(op=s["op"], params=registry.get(s["op"]).params.model_validate(s["params"]).model_dump())
    for s in json.loads(steps_json)
]
t0 = time.perf_counter()
if executor == "local":
    import torch
    torch.set_num_threads(2)
    from benchmark import curate as curation
    def context(i, step):
        return StepContext(f"steps[{i}]", ShardReader(root), i, root / f"w{i}", store_root=root)
    result = curation.curate(pq.read_table(pool_file), steps, context)
    records = result.steps
else:
    from benchmark import curate_ray
    track = load_track(sys.argv[5])
    def spec(i, step, defects):
        return curate_ray.StepSpec(i, step, f"steps[{i}]", str(root), str(root / f"r{i}"),
                                   "cpu", track, (), defects)
    out = root / f"ray-{os.getpid()}"
    out.mkdir()
    curate_ray.init(curate_ray.RayOptions())
    t0 = time.perf_counter()  # the cluster's start is not the step's cost
    options = curate_ray.RayOptions(concurrency=int(actors))
    records = curate_ray.Curation(pool_file, steps, spec, options).run(out)["steps"]
wall = time.perf_counter() - t0
print(json.dumps({
    "wall_s": wall,
    "rows": records[0]["rows_in"],
    "step_wall_s": [r["wall_s"] for r in records],
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def child(executor: str, pool: Path, steps: list[dict], actors: int = 1) -> dict:
    env = os.environ | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}
    args = [sys.executable, "-c", CHILD, executor, str(pool), json.dumps(steps), str(actors)]
    proc = subprocess.run(
        [*args, str(TRACK)], env=env, capture_output=True, text=True, timeout=1800, cwd=REPO
    )
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shapes_pool(rows: int, out: Path) -> Path:
    import pyarrow.parquet as pq

    from benchmark.pools.shapes import ShapesPool, build

    table = build(ShapesPool(size=rows, seed=5, image_size=64), out).table
    pq.write_table(table, out / "pool.parquet")
    return out / "pool.parquet"


def synthetic_pool(rows: int, out: Path) -> Path:
    """Text-only rows at the size of a real pool's table (captions of 6-20 words); the image
    references point nowhere, as no step here reads pixels."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    words = np.array(
        [
            "a",
            "the",
            "red",
            "small",
            "large",
            "circle",
            "square",
            "near",
            "above",
            "below",
            "photo",
            "of",
            "dog",
        ]
    )
    path = out / f"synthetic-{rows}.parquet"
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        lengths = rng.integers(6, 20, n)
        captions = [" ".join(rng.choice(words, k)) for k in lengths]
        table = pa.table(
            {
                "uid": [f"{i:032x}" for i in range(start, start + n)],
                "caption": captions,
                "image": [f"none-{i // 1000:05d}.tar#{i}.png" for i in range(start, start + n)],
                "width": pa.array(rng.integers(100, 400, n), pa.int32()),
                "height": pa.array(rng.integers(100, 400, n), pa.int32()),
                "source": ["synthetic"] * n,
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=4000, help="shapes pool rows for the scoring step")
    ap.add_argument("--sizes", default="100000,1000000", help="synthetic pool sizes for RSS")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-ddp", action="store_true", help="leave out the DDP comparison")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pool = shapes_pool(args.rows, Path(tmp) / "shapes")
        score = [{"op": "clip_score", "params": {"model": "shapes-vit-tiny", "batch_size": 256}}]
        print(
            f"1. clip_score scoring, {args.rows} shapes images (64 px), rows/s, median of "
            f"{args.repeats}"
        )
        rates, busy = {}, {}
        for name, executor, actors in (
            ("local", "local", 1),
            ("ray x1", "ray", 1),
            ("ray x2", "ray", 2),
        ):
            runs = [child(executor, pool, score, actors) for _ in range(args.repeats)]
            rates[name] = statistics.median(r["rows"] / r["wall_s"] for r in runs)
            busy[name] = statistics.median(r["rows"] / r["step_wall_s"][0] for r in runs)
            print(
                f"   {name:8s} {rates[name]:8.1f} rows/s end to end   "
                f"{busy[name]:8.1f} rows/s per busy worker-second"
            )
        print(
            f"   end to end: ray x2 / ray x1 = {rates['ray x2'] / rates['ray x1']:.2f}, "
            f"ray x1 / local = {rates['ray x1'] / rates['local']:.2f}"
        )

        text = [
            {"op": "caption_length", "params": {"min_words": 7, "min_chars": 5}},
            {"op": "image_size", "params": {"min_side": 150, "max_aspect": 2.0}},
        ]
        print("2. driver peak RSS, text-only steps (caption_length, image_size)")
        rss: dict[str, dict[int, float]] = {"local": {}, "ray": {}}
        for size in (int(s) for s in args.sizes.split(",")):
            path = synthetic_pool(size, Path(tmp))
            for executor in ("local", "ray"):
                r = child(executor, path, text, 2)
                rss[executor][size] = r["rss_mb"]
                print(
                    f"   {executor:5s} {size:>9,d} rows  {r['rss_mb']:8.0f} MB  "
                    f"{size / r['wall_s']:10.0f} rows/s"
                )
        small, large = sorted(rss["ray"])[0], sorted(rss["ray"])[-1]
        for executor in ("local", "ray"):
            ratio = rss[executor][large] / rss[executor][small]
            print(f"   {executor:5s} RSS at {large:,d} / at {small:,d} rows = {ratio:.2f}")

    if not args.skip_ddp:
        print("3. train steps/s, 1 rank vs 2 gloo ranks")
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "ddp_throughput.py")], check=True)


if __name__ == "__main__":
    main()
