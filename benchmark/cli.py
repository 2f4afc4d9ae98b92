"""The `smallcomp` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmark.spec.errors import SpecError

EPILOG = """examples:
  smallcomp run recipes/baselines/no_filter.yaml              # shapes/tiny, seed 0
  smallcomp run recipes/baselines/*.yaml --seeds 0,1,2        # every baseline, 3 seeds
  smallcomp curate recipes/baselines/basic.yaml --report      # filter precision/recall
  smallcomp validate recipes/*.yaml tracks/*.yaml
  smallcomp ops                                               # every op and its params
"""


def _seeds(text: str) -> list[int]:
    from benchmark.spec.numbers import SEED_LIMIT

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be comma-separated integers: {text!r}"
        ) from None
    if not all(0 <= s < SEED_LIMIT for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be in 0..{SEED_LIMIT - 1}: {text!r}")
    return seeds


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return int(text)


def _runner(args: argparse.Namespace, allow_weights: Sequence[str] = ()):
    from benchmark.device import default_device
    from benchmark.pipeline import Runner
    from benchmark.store import Store

    return Runner(Store(args.runs), args.device or default_device(), tuple(allow_weights))


def cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.spec.load import load_spec

    for f in args.files:
        load_spec(f, args.allow_weights)
        print(f"{f}: ok")
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from benchmark.ops.registry import all_ops

    for op in all_ops():
        print(f"{op.name}  [{op.kind}]")
        if op.doc:
            print("    " + " ".join(op.doc.split()))
        for name, field in op.params.model_fields.items():
            default = "required" if field.is_required() else f"default {field.default!r}"
            desc = f" - {field.description}" if field.description else ""
            print(f"    {name}: {field.annotation!s} ({default}){desc}".replace("typing.", ""))
        print()
    return 0


def cmd_pool_build(args: argparse.Namespace) -> int:
    from benchmark.spec.load import find_track, load_track

    spec = load_track(find_track(args.track, Path.cwd()))
    table = _runner(args).track_pool(spec)
    print(f"{spec.track.name}: {table.num_rows:,} rows, columns {', '.join(table.column_names)}")
    return 0


def cmd_pool_download(args: argparse.Namespace) -> int:
    from benchmark.pools import download

    to = Path(args.to)
    if args.dataset == "coco":
        if args.dry_run:
            for req in download.coco_requests(to):
                print(req)
            return 0
        print(f"COCO train2017 ready at {download.download_coco(to)}")
        return 0
    if args.tsv is None:
        print(
            "smallcomp: error: cc3m needs --tsv (the url/caption TSV you obtained)", file=sys.stderr
        )
        return 2
    if args.dry_run:
        url_list = download.tsv_with_header(Path(args.tsv), to, "url", "caption")
        print(" ".join(download.img2dataset_command(url_list, to)))
        return 0
    print(download.download_cc3m(Path(args.tsv), to).summary())
    return 0


def _report(report: dict) -> str:
    lines = [
        f"pool {report['pool_rows']:,} rows -> curated {report['curated_rows']:,} rows "
        f"(uid hash {report['uid_hash'][:16]}), {report['wall_s']:.1f} s"
    ]
    for s in report["steps"]:
        line = (
            f"  [{s['step']}] {s['op']:<16} {s['kind']:<8} {s['rows_in']:>8,} -> "
            f"{s['rows_out']:>8,}  {s['wall_s']:>7.2f} s"
        )
        q = s.get("quality")
        if q:
            p = "n/a" if q["precision"] is None else f"{q['precision']:.3f}"
            r = "n/a" if q["recall"] is None else f"{q['recall']:.3f}"
            line += f"  precision {p} recall {r}"
            line += (
                "  (" + ", ".join(f"{k} {v:.2f}" for k, v in q["recall_by_defect"].items()) + ")"
            )
        lines.append(line)
    return "\n".join(lines)


def cmd_curate(args: argparse.Namespace) -> int:
    from benchmark.spec.load import load_recipe

    spec = load_recipe(args.recipe, args.track, allow_weights=args.allow_weights)
    _, report = _runner(args, args.allow_weights).curate(spec)
    print(_report(report) if args.report else json.dumps(report, indent=2))
    return 0


def _run_job(root: str, device: str, spec, scale: str, seed: int, threads: int) -> dict:
    """One (recipe, seed) run in a worker process of ``run --jobs``."""
    import torch

    from benchmark.pipeline import Runner
    from benchmark.store import Store

    torch.set_num_threads(threads)
    return Runner(Store(root), device).run(spec, scale, seed)


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark import leaderboard
    from benchmark.spec.load import load_recipe

    runner = _runner(args, args.allow_weights)
    # validate every recipe (and its budget) before any work
    specs = [load_recipe(r, args.track, runner.device, args.allow_weights) for r in args.recipes]
    board = Path(args.leaderboard)
    jobs = []
    for spec in specs:
        scale = spec.track.scale(args.scale)
        seeds = args.seeds or scale.seeds[:1]
        if not args.seeds and len(scale.seeds) > 1:
            listed = ",".join(map(str, scale.seeds))
            print(
                f"note: seed {seeds[0]} only; --seeds {listed} gives the scale's full set "
                "(mean and 95% CI on the leaderboard)",
                file=sys.stderr,
            )
        jobs += [(spec, seed) for seed in seeds]

    def done(spec, seed: int, result: dict) -> None:
        path = leaderboard.save_result(board, result)
        heads = "  ".join(f"{k} {100 * v:.1f}" for k, v in result["headline"].items())
        print(f"{spec.recipe.name} seed {seed}: {heads}  -> {path}", flush=True)

    if args.jobs == 1:
        for spec, seed in jobs:
            print(
                f"== {spec.recipe.name} on {spec.track.track.name}/{args.scale}, seed {seed}",
                file=sys.stderr,
            )
            done(spec, seed, runner.run(spec, args.scale, seed))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        for spec in specs:  # shared stages (pools, reference, curation) once, in order
            runner.curate(spec)
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = {
                pool.submit(
                    _run_job, str(runner.store.root), runner.device, spec, args.scale, seed, threads
                ): (spec, seed)
                for spec, seed in jobs
            }
            for future, (spec, seed) in futures.items():
                done(spec, seed, future.result())
    for path in leaderboard.build(board):
        print(f"leaderboard: {path}")
        track_rows = [
            r
            for r in leaderboard.rows(leaderboard.load_results(board))
            if r["recipe"] in {s.recipe.name for s in specs}
        ]
        for r in track_rows:
            if r["track"] == path.stem and r["scale"] == args.scale:
                tasks = "  ".join(f"{t} {100 * m:.1f}" for t, (m, _) in r["tasks"].items())
                print(
                    f"  {r['recipe']} ({len(r['seeds'])} seeds): average "
                    f"{100 * r['average'][0]:.1f}  {tasks}"
                )
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark import leaderboard

    for path in leaderboard.build(Path(args.leaderboard)):
        print(path)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark.spec.load import load_track

    spec = load_track(args.track)
    results = _runner(args).evaluate(Path(args.model), spec)
    print(json.dumps(results, indent=2))
    return 0


def _allow_weights(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--allow-weights",
        action="append",
        default=[],
        metavar="PATH",
        help="let recipes name this pickled model file, or any file under this directory "
        "(repeatable): ultralytics .pt and torch .pt/.bin files run code when loaded, so a "
        "recipe alone may name only safetensors weights and code-free configs",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="smallcomp",
        description="Declarative benchmark for CLIP training-data curation at small scale: a YAML "
        "recipe filters, rewrites and batches a fixed pool; smallcomp trains CLIP at the track's "
        "fixed budget, evaluates it and ranks recipes on a leaderboard.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--runs",
        default=os.environ.get("SMALLCOMP_RUNS", "runs"),
        help="run store directory (default: $SMALLCOMP_RUNS or ./runs)",
    )
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("run", help="curate, train, evaluate and rank one or more recipes")
    s.add_argument("recipes", nargs="+", metavar="RECIPE")
    s.add_argument("--track", help="track name or file (default: the recipe's)")
    s.add_argument("--scale", default="tiny", help="the track's scale (default: tiny)")
    s.add_argument(
        "--seeds", type=_seeds, help="comma-separated seeds (default: the scale's first seed)"
    )
    s.add_argument("--leaderboard", default="leaderboard", help="results and pages directory")
    s.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        help="(recipe, seed) runs in parallel worker processes after curation (default 1); "
        "a GPU with spare cores trains several small models at once",
    )
    _allow_weights(s)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser(
        "validate", help="check recipes and tracks; one FILE:LINE:COL line per error"
    )
    s.add_argument("files", nargs="+", metavar="FILE")
    _allow_weights(s)
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("pool", help="build a track's pool, or download a source dataset")
    pool = s.add_subparsers(dest="pool_command", required=True, metavar="ACTION")
    b = pool.add_parser(
        "build",
        help="build a track's pool table and shards (checked against the track's eval images)",
    )
    b.add_argument("track", help="track name or file")
    b.set_defaults(fn=cmd_pool_build)
    d = pool.add_parser("download", help="download COCO 2017 (resumable) or CC3M via img2dataset")
    d.add_argument("dataset", choices=["coco", "cc3m"])
    d.add_argument("--to", required=True, help="destination directory")
    d.add_argument("--tsv", help="cc3m: the url<TAB>caption file to fetch")
    d.add_argument(
        "--dry-run", action="store_true", help="print what would be fetched, fetch nothing"
    )
    d.set_defaults(fn=cmd_pool_download)

    s = sub.add_parser("curate", help="apply a recipe's steps to the pool")
    s.add_argument("recipe")
    s.add_argument("--track", help="track name or file (default: the recipe's)")
    _allow_weights(s)
    s.add_argument(
        "--report",
        action="store_true",
        help="print each step's effect, cost and precision/recall on hidden defects",
    )
    s.set_defaults(fn=cmd_curate)

    s = sub.add_parser("evaluate", help="run a track's eval suite on a saved model directory")
    s.add_argument("model", help="model directory (open_clip_config.json + weights)")
    s.add_argument("--track", required=True, help="track file")
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("leaderboard", help="aggregate results into <dir>/<track>.md")
    s.add_argument("--leaderboard", default="leaderboard", help="results and pages directory")
    s.set_defaults(fn=cmd_leaderboard)

    s = sub.add_parser("ops", help="list curation operators with their params")
    s.set_defaults(fn=cmd_ops)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from benchmark.ops.context import OpError
    from benchmark.store import StoreError

    try:
        return args.fn(args)
    except (SpecError, OpError, StoreError) as e:
        print(f"smallcomp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("smallcomp: interrupted; finished stages are kept, training resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
