"""The `smallcomp` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from benchmark.spec.errors import SpecError

EPILOG = """examples:
  smallcomp run recipes/baselines/no_filter.yaml              # shapes/tiny, seed 0
  smallcomp run recipes/baselines/*.yaml --seeds 0,1,2        # every baseline, 3 seeds
  smallcomp curate recipes/baselines/basic.yaml --report      # filter precision/recall
  smallcomp validate recipes/*.yaml tracks/*.yaml
  smallcomp compare no_filter basic counterfactual            # differences with 95% CIs
  smallcomp ops                                               # every op and its params
  smallcomp submit recipes/baselines/basic.yaml --seeds 0,1,2 # a bundle others can verify
  smallcomp verify submissions/basic-*.tar.gz --retrain 0     # re-derive a bundle's claims
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

    executor = "local"
    if getattr(args, "executor", "local") == "ray":
        if args.ray_address:  # before Ray is imported: it reads its settings then
            os.environ["RAY_ADDRESS"] = args.ray_address
        try:
            from benchmark.curate_ray import RayOptions
        except ImportError:
            print("smallcomp: --executor ray needs Ray: pip install -e '.[ray]'", file=sys.stderr)
            raise SystemExit(2) from None
        executor = RayOptions(args.ray_address, args.ray_concurrency, args.ray_gpus_per_actor)
    device = args.device or default_device()
    return Runner(Store(args.runs), device, tuple(allow_weights), executor, launch=_launch(args))


def _launch(args: argparse.Namespace):
    """How many processes train (``run --gpus/--nnodes/--node-rank/--rdzv-endpoint``)."""
    from benchmark.distributed import Launch

    try:
        return Launch(
            getattr(args, "gpus", 1),
            getattr(args, "nnodes", 1),
            getattr(args, "node_rank", 0),
            getattr(args, "rdzv_endpoint", None),
        )
    except ValueError as e:
        print(f"smallcomp: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


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
        u = s.get("uids")
        if u:
            line += f"  uids listed {u['listed']:,}, not in pool {u['not_in_pool']:,}"
        lines.append(line)
    return "\n".join(lines)


def cmd_curate(args: argparse.Namespace) -> int:
    from benchmark.spec.load import load_recipe

    spec = load_recipe(args.recipe, args.track, allow_weights=args.allow_weights)
    _, report = _runner(args, args.allow_weights).curate(spec)
    print(_report(report) if args.report else json.dumps(report, indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark import leaderboard
    from benchmark.spec.load import load_recipe

    runner = _runner(args, args.allow_weights)
    # validate every recipe (and its budget) before any work
    specs = [load_recipe(r, args.track, runner.device, args.allow_weights) for r in args.recipes]
    board = Path(args.leaderboard)
    world = runner.launch.world_size
    if world > 1 and args.jobs > 1:
        print(
            "smallcomp: error: --jobs runs several trainings side by side, --gpus/--nnodes one "
            "training over several processes: give one of them",
            file=sys.stderr,
        )
        return 2
    if runner.device.startswith("cuda") and runner.launch.nproc > 1:
        import torch

        if runner.launch.nproc > torch.cuda.device_count():
            print(
                f"smallcomp: error: --gpus {runner.launch.nproc}: this machine has "
                f"{torch.cuda.device_count()} GPU(s); one rank per GPU",
                file=sys.stderr,
            )
            return 2
    jobs = []
    for spec in specs:
        scale = spec.track.scale(args.scale)
        if scale.batch_size % world:
            print(
                f"smallcomp: error: {spec.track.file}: scale {args.scale}: batch_size "
                f"{scale.batch_size} (the global batch) does not split evenly over {world} ranks",
                file=sys.stderr,
            )
            return 2
        seeds = args.seeds or scale.seeds[:1]
        if not args.seeds and len(scale.seeds) > 1:
            listed = ",".join(map(str, scale.seeds))
            print(
                f"note: seed {seeds[0]} only; --seeds {listed} gives the scale's full set "
                "(mean and 95% CI on the leaderboard)",
                file=sys.stderr,
            )
        for seed in seeds:
            ev = spec.track.track.eval
            stub = {
                "recipe": spec.recipe.name,
                "recipe_hash": spec.hash,
                "seed": seed,
                "track": spec.track.track.name,
                "scale": args.scale,
                "suite_version": ev.version,
            }
            kept = leaderboard.result_path(board, stub)
            if args.missing_only and kept.exists():
                print(f"{spec.recipe.name} seed {seed}: kept {kept}", file=sys.stderr)
                continue
            jobs.append((spec, seed))

    def done(spec, seed: int, result: dict) -> None:
        path = leaderboard.save_result(board, result)
        heads = "  ".join(f"{k} {100 * v:.1f}" for k, v in result["headline"].items())
        print(f"{spec.recipe.name} seed {seed}: {heads}  -> {path}", flush=True)

    def started(spec, seed: int) -> None:
        where = f"{spec.track.track.name}/{args.scale}"
        print(f"== {spec.recipe.name} on {where}, seed {seed}", file=sys.stderr)

    runner.run_all(jobs, args.scale, args.jobs, started, done)
    for path in leaderboard.build(board):
        print(f"leaderboard: {path}")
        current = {(s.track.track.name, s.recipe.name, s.track.track.eval.version) for s in specs}
        for r in leaderboard.rows(leaderboard.load_results(board)):
            if (r["track"], r["recipe"], r["suite_version"]) not in current:
                continue  # another suite version's row stays on the page, not in this summary
            if r["track"] == path.stem and r["scale"] == args.scale:
                tasks = "  ".join(f"{t} {100 * m:.1f}" for t, (m, _) in r["tasks"].items())
                m, h = r["average"]
                ci = "" if math.isnan(h) else f" ± {100 * h:.1f}"
                print(
                    f"  {r['recipe']} ({len(r['seeds'])} seeds, suite v{r['suite_version']}): "
                    f"headline {100 * m:.1f}{ci}  {tasks}"
                )
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark import leaderboard

    board = Path(args.leaderboard)
    for bundle in args.add:
        from benchmark.verify import verify

        runner = _runner(args, args.allow_weights)
        report = verify(bundle, runner, args.track, allow_weights=args.allow_weights)
        print(report.verdict())
        if not report.verified:
            print(f"smallcomp: error: {bundle} not added to {board}", file=sys.stderr)
            return report.exit_code
        for path in leaderboard.add_verified(board, report.results, report.stamp()):
            print(f"added (verified): {path}")
    for path in leaderboard.build(board):
        print(path)
    if args.site:
        import time

        from benchmark import site

        t0 = time.perf_counter()
        index = site.build(board, Path(args.site), Path(args.runs))
        print(f"site: {index} ({time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from benchmark.bundle import Refused, submit
    from benchmark.spec.load import load_recipe

    runner = _runner(args, args.allow_weights)
    spec = load_recipe(args.recipe, args.track, runner.device, args.allow_weights)
    try:
        folder, archive = submit(
            spec,
            args.scale,
            args.seeds,
            runner,
            Path(args.leaderboard),
            Path(args.out),
            args.with_models,
            args.track,
        )
    except Refused as e:
        print(f"smallcomp: error: submit refused: {e}", file=sys.stderr)
        return 2
    print(f"bundle: {folder}\narchive: {archive}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from benchmark.verify import verify

    report = verify(
        args.bundle,
        _runner(args, args.allow_weights),
        args.track,
        args.retrain,
        args.reevaluate,
        args.allow_weights,
    )
    print(report.verdict())
    return report.exit_code


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark import compare

    try:
        report = compare.compare(
            args.recipes,
            leaderboard=Path(args.leaderboard),
            track=args.track,
            scale=args.scale,
            baseline=args.baseline,
            method=args.method,
        )
    except compare.CompareError as e:
        print(f"smallcomp: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else compare.render(report))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark.spec.load import load_track

    spec = load_track(args.track)
    results = _runner(args).evaluate(Path(args.model), spec)
    print(json.dumps(results, indent=2))
    return 0


def _wrapped(text: str) -> str:
    """A description for a parser whose epilog keeps its own line breaks."""
    return textwrap.fill(text, 88)


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


def _executor(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group(
        "executor", "where curation runs; the answer (uid hash, step records) is the same"
    )
    g.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: row-local steps on Ray Data, streaming from "
        "the pool's parquet, model steps as actor pools (pip install -e '.[ray]')",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="an existing cluster (e.g. 127.0.0.1:6379, or 'auto'); default: start one here",
    )
    g.add_argument(
        "--ray-concurrency",
        type=_positive,
        metavar="N",
        help="actors per step (default: one per GPU for model steps, else one per CPU)",
    )
    g.add_argument(
        "--ray-gpus-per-actor",
        type=float,
        metavar="G",
        help="GPUs each model-step actor reserves (default: 1 where the cluster has GPUs)",
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
    s.add_argument(
        "--missing-only",
        action="store_true",
        help="skip each (recipe, seed) whose result for the track's current suite version is "
        "already in --leaderboard: a regeneration stopped midway picks up where it was",
    )
    g = s.add_argument_group(
        "distributed training",
        "the train stage under torch's elastic launcher (torchrun, DDP); the track's batch_size "
        "stays the global batch, split evenly over the ranks, and the stage's key and answer do "
        "not depend on how many there are",
    )
    g.add_argument(
        "--gpus",
        type=_positive,
        default=1,
        metavar="N",
        help="training processes on this machine, one device each; on CPU, gloo ranks "
        "(default 1: train in this process)",
    )
    g.add_argument(
        "--nnodes",
        type=_positive,
        default=1,
        metavar="M",
        help="machines in the training job; each runs the same command on its own run store "
        "(default 1)",
    )
    g.add_argument(
        "--node-rank",
        type=int,
        default=0,
        metavar="R",
        help="this machine's index, 0..M-1; machine 0 hosts the rendezvous (default 0)",
    )
    g.add_argument(
        "--rdzv-endpoint",
        metavar="HOST:PORT",
        help="machine 0's rendezvous address, the same on every machine (default: "
        "127.0.0.1 and a free port; required with --nnodes > 1)",
    )
    _allow_weights(s)
    _executor(s)
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
    _executor(s)
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

    s = sub.add_parser(
        "leaderboard",
        help="aggregate results into <dir>/<track>.md; --add takes in a verified bundle",
        description="Aggregate <dir>/results/<track>/<scale>/v<suite version>/*.json into "
        "<dir>/<track>.md. "
        "--add BUNDLE first verifies a submission bundle (as `smallcomp verify` does, without "
        "retraining) and, only if it verifies, copies its results into the results directory "
        "with a 'verified' field (bundle sha256, date, checks run); verified rows show ✓.",
    )
    s.add_argument("--leaderboard", default="leaderboard", help="results and pages directory")
    s.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="BUNDLE",
        help="a bundle directory or .tar.gz to verify and add (repeatable)",
    )
    s.add_argument(
        "--track", help="with --add: the local track to verify against (default: the bundle's)"
    )
    s.add_argument(
        "--site",
        metavar="DIR",
        help="also render a static site into DIR: sortable tables, plots, a page per recipe "
        "with samples from the run store (--runs); it opens from file:// with no network",
    )
    _allow_weights(s)
    s.set_defaults(fn=cmd_leaderboard)

    s = sub.add_parser(
        "submit",
        help="bundle a recipe's results for others to verify (uid list, results, manifest)",
        description=_wrapped(
            "Write a submission bundle for RECIPE's results at one scale: a directory "
            "and a .tar.gz of it holding the recipe (as written and as resolved) and its hash, the "
            "track and suite version, the curated uids in DataComp's format (sorted u8,u8 .npy) "
            "and their hash, every seed's result and train record, the environment, the curation "
            "cost records, optionally the trained models, and manifest.json with every file's "
            "sha256. It reads the results from --leaderboard and the curation from the run store "
            "(--runs); it never trains. A seed without a result, or with one made by another "
            "recipe hash or suite version, is refused with the `smallcomp run` command that makes "
            "it."
        ),
        epilog="example:\n"
        "  smallcomp run recipes/baselines/basic.yaml --seeds 0,1,2\n"
        "  smallcomp submit recipes/baselines/basic.yaml --seeds 0,1,2 --out submissions\n"
        "  smallcomp verify submissions/basic-<hash>-shapes-tiny.tar.gz --retrain 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("recipe")
    s.add_argument("--track", help="track name or file (default: the recipe's)")
    s.add_argument("--scale", default="tiny", help="the track's scale (default: tiny)")
    s.add_argument(
        "--seeds",
        type=_seeds,
        help="comma-separated seeds to bundle (default: every seed with a result)",
    )
    s.add_argument(
        "--with-models",
        action="store_true",
        help="include each seed's trained model (safetensors) so `verify --reevaluate` works",
    )
    s.add_argument("--out", default="submissions", help="where to write (default: submissions)")
    s.add_argument("--leaderboard", default="leaderboard", help="where the results are")
    _allow_weights(s)
    s.set_defaults(fn=cmd_submit)

    s = sub.add_parser(
        "verify",
        help="re-derive a bundle's uid hash and numbers; exit 0 verified, 1 mismatch, 2 malformed",
        description=_wrapped(
            "Check a submission bundle (directory or .tar.gz) instead of trusting it, one line "
            "per check, then a verdict. Exit 0 verified, 1 a check failed, 2 a malformed or "
            "unsafe bundle. Archives unpack only into a temporary directory; links and paths "
            "leading out of the bundle are refused."
        )
        + """

checks:
  manifest    every file listed, every listed file there, every sha256 matching
  track       the local track's name, suite version and scale are the bundle's
  recipe      validates against the local track, hashes to the bundled hash
  curation    re-run in the local run store (--runs): same uid hash, same uids.npy
  budget      the track's curation budget holds
  numbers     headlines are their tasks' metrics; the leaderboard row recomputes
  reevaluate  (--reevaluate) bundled models score the same metrics
  retrain     (--retrain SEED) the seed trains to the same metrics""",
        epilog="examples:\n"
        "  smallcomp verify submissions/basic-34ddf1ad-shapes-tiny.tar.gz\n"
        "  smallcomp verify BUNDLE --retrain 0      # train seed 0 again: on CPU, bit-identical\n"
        "  smallcomp verify BUNDLE --reevaluate     # rescore the models of submit --with-models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("bundle", metavar="BUNDLE", help="bundle directory or .tar.gz")
    s.add_argument(
        "--track", help="the local track name or file (default: the bundle's, from tracks/)"
    )
    s.add_argument(
        "--retrain",
        type=int,
        metavar="SEED",
        help="train SEED again in a fresh temporary run store on the local curation and compare "
        "metrics: exactly where both ran on the CPU, within 0.5 points otherwise",
    )
    s.add_argument(
        "--reevaluate",
        action="store_true",
        help="score the bundled models again and compare their metrics",
    )
    _allow_weights(s)
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser(
        "compare",
        help="each recipe's difference to a baseline per task, with 95%% CIs (paired by seed)",
    )
    s.add_argument(
        "recipes",
        nargs="*",
        metavar="RECIPE",
        help="recipe names (NAME@HASH for one version) or recipe files (which fix the hash); "
        "default: every recipe with results",
    )
    s.add_argument(
        "--baseline",
        metavar="NAME",
        help="what the others are compared to (default: the first recipe named, else no_filter)",
    )
    s.add_argument("--track", help="track name or file (default: the recipe files' track)")
    s.add_argument("--scale", default="tiny", help="the track's scale (default: tiny)")
    s.add_argument(
        "--leaderboard",
        default="leaderboard",
        help="results under DIR/results/<track>/<scale>/v<suite version>/",
    )
    s.add_argument(
        "--method",
        choices=("auto", "paired", "welch"),
        default="auto",
        help="the interval shown: paired over shared seeds, Welch's, or auto (paired with at "
        "least 2 shared seeds, else Welch's; default)",
    )
    s.add_argument("--json", action="store_true", help="print the comparison as JSON")
    s.set_defaults(fn=cmd_compare)

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
