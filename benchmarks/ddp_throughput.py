"""Train steps/s of the shapes track's tiny scale on 1 rank vs 2 ranks under torchrun (DDP).

Every run goes through the launcher `smallcomp run --gpus N` uses (``train.launched``): the same
global batch (the scale's 256), the same data order, the scale's loader workers per rank, the
machine's cores shared out among the ranks (OMP_NUM_THREADS); on a CPU the ranks are gloo
processes. A run's steps/s is its steps over its training loop's wall time (launch and imports
excluded). Rank counts alternate within each repeat so machine load hits all of them; the median
over repeats is reported.

    python benchmarks/ddp_throughput.py [--ranks 1,2] [--steps 40] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark import train  # noqa: E402
from benchmark.distributed import Launch  # noqa: E402
from benchmark.pipeline import Runner  # noqa: E402
from benchmark.spec.load import load_track  # noqa: E402
from benchmark.spec.recipe import Step  # noqa: E402
from benchmark.store import Store  # noqa: E402

TRACK = Path(__file__).resolve().parents[1] / "tracks" / "shapes.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2", help="rank counts to compare (default 1,2)")
    parser.add_argument("--steps", type=int, default=40, help="train steps per run (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per rank count (default 3)")
    parser.add_argument("--pool-size", type=int, default=4096, help="shapes pool rows to train on")
    parser.add_argument("--device", default="cpu", help="cpu (gloo ranks) or cuda (one GPU each)")
    parser.add_argument("--runs", help="run store for the pool (default: a temporary directory)")
    args = parser.parse_args()
    ranks = [int(r) for r in args.ranks.split(",")]

    spec = load_track(TRACK)
    tiny = spec.scale("tiny")
    scale = tiny.model_copy(
        update={"samples_seen": args.steps * tiny.batch_size, "checkpoint_every": 10**9}
    )
    with tempfile.TemporaryDirectory(prefix="ddp-throughput-") as tmp:
        store = Store(Path(args.runs or tmp) / "runs")
        pool = spec.pool.model_copy(update={"size": args.pool_size})
        table = Runner(store).pool(pool)
        print(
            f"shapes/tiny ({scale.model}, global batch {scale.batch_size}, "
            f"{scale.workers} loader worker(s) per rank), {args.steps} steps, "
            f"{table.num_rows} rows, device {args.device}",
            flush=True,
        )
        rates: dict[int, list[float]] = {n: [] for n in ranks}
        for repeat in range(args.repeats):
            for n in ranks:
                out = Path(tmp) / f"r{repeat}-n{n}"
                record = train.launched(
                    Launch(n),
                    table,
                    store.root,
                    scale,
                    Step(op="random"),
                    0,
                    out,
                    args.device,
                    "clip",
                    f"throughput-{repeat}-{n}",
                )
                rate = (record["steps"] - record["resumed_from"]) / record["wall_s"]
                rates[n].append(rate)
                print(f"  repeat {repeat}: {n} rank(s) {rate:.2f} steps/s", flush=True)
        base = statistics.median(rates[ranks[0]])
        print("\nranks  steps/s (median)  img/s   vs first")
        for n in ranks:
            m = statistics.median(rates[n])
            print(f"{n:>5}  {m:>16.2f}  {m * scale.batch_size:>6.0f}  {m / base:>7.2f}x")


if __name__ == "__main__":
    main()
