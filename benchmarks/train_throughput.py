"""Training images/s, side by side in one run: the project's loop against open_clip's trainer and
against the bare step, on the same shapes shards, model config and hyperparameters.

Why: the train stage should cost what the model costs, not what the data path costs. Four loops:

1. bare step: forward + backward + AdamW (the project's parameter groups, cosine schedule, open_clip
   ClipLoss, logit-scale clamp) of the scale's model on tensors already in memory;
2. project (cached): ``benchmark.train.train`` as the train stage calls it (random sampler),
   with its uint8 image cache as it is used by default;
3. project (decode, cache off): the same with ``SMALLCOMP_IMAGE_CACHE_GB=0``, so the scale's
   DataLoader workers decode PNGs from the shards every step;
4. ``open_clip_train.main``: open_clip's own trainer reading the same webdataset shards (png + txt
   members) with the same model, batch, lr, warmup, schedule, betas, eps, weight decay,
   precision and loader workers, on the CPU (its webdataset reader patched to skip the
   end-of-shard marker newer webdataset emits, which it fails on: ``_end_of_shard_fix``).

Each run is a fresh process (so the env var holds whenever it is read, and no loader worker or
logging setup leaks into the next run); loops alternate within each repeat, so the other load on
a shared machine hits all of them. Throughput is steady state: every loop calls its lr scheduler
once per step, right after its batch arrives, and that call is timestamped (the scheduler
functions are wrapped from outside, in the measured process only). The first
``--warmup-steps`` steps (worker start, shuffle buffers, first allocations) are dropped, the rest
is cut into windows of ``--window`` steps, and the median window rate over all repeats is
reported. "whole call" is the samples over the wall time of the entire call (model build, cache
fill, loader start, final save included).

With the defaults (24 steps per run, 3 repeats, the track's 20k-image pool built in a temporary
store) a run takes about 7 minutes on 2 free cores; ``--runs DIR`` keeps the pool and the image
cache for the next run.

    python benchmarks/train_throughput.py [--steps 24] [--repeats 3] [--scale tiny] [--runs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CACHE_ENV = "SMALLCOMP_IMAGE_CACHE_GB"
BARE, CACHED, DECODE, OPEN_CLIP = "bare", "cached", "decode", "open_clip"
LABELS = {
    BARE: "bare step",
    CACHED: "project (cached)",
    DECODE: "project (decode, cache off)",
    OPEN_CLIP: "open_clip_train.main",
}
ORDER = [BARE, CACHED, DECODE, OPEN_CLIP]


# -- one measurement, in its own process --------------------------------------------------------


def _stamped(schedule, stamps: list[float]):
    """``schedule`` (cosine_lr, const_lr) whose per-step adjust function records when it is
    called: once per step, after the step's batch has arrived, in both trainers."""

    def make(*args, **kwargs):
        adjust = schedule(*args, **kwargs)

        def stamped(step):
            stamps.append(time.perf_counter())
            return adjust(step)

        return stamped

    return make


def _bare(job: dict, stamps: list[float]) -> dict:
    import math

    import open_clip
    import torch
    from open_clip.loss import ClipLoss
    from open_clip_train.scheduler import const_lr, cosine_lr

    from benchmark import train
    from benchmark.models import clip
    from benchmark.spec.track import Scale

    scale = Scale.model_validate(job["scale"])
    torch.manual_seed(0)
    model = open_clip.create_model(
        scale.model,
        pretrained=scale.pretrained,
        device="cpu",
        output_dict=True,
        force_quick_gelu=clip.uses_quick_gelu(scale.model, scale.pretrained),
    )
    # the project's parameter groups (open_clip's no-decay rule) and optimizer settings
    optimizer = torch.optim.AdamW(
        train._param_groups(model, scale.weight_decay),
        lr=scale.lr,
        betas=scale.betas,
        eps=scale.eps,
    )
    schedule = cosine_lr if scale.schedule == "cosine" else const_lr
    adjust = _stamped(schedule, stamps)(optimizer, scale.lr, scale.warmup, scale.steps)
    size = model.visual.image_size
    size = size if isinstance(size, tuple) else (size, size)
    context = model.context_length
    vocab = model.vocab_size
    n = scale.batch_size
    inputs = [(torch.randn(n, 3, *size), torch.randint(1, vocab, (n, context))) for _ in range(4)]
    loss_fn = ClipLoss()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=scale.precision != "fp32")
    model.train()
    for step in range(scale.steps):
        adjust(step)
        images, texts = inputs[step % len(inputs)]
        with autocast:
            out = model(images, texts)
            value = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        float(value.detach())
    return {}


def _project(job: dict, stamps: list[float]) -> dict:
    import pyarrow.parquet as pq

    from benchmark import train
    from benchmark.spec.recipe import Step
    from benchmark.spec.track import Scale

    train.cosine_lr = _stamped(train.cosine_lr, stamps)
    train.const_lr = _stamped(train.const_lr, stamps)
    scale = Scale.model_validate(job["scale"])
    table = pq.read_table(job["pool_file"])
    order = train.sampler_order(Step(op="random"))
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    return train.train(table, Path(job["store_root"]), scale, order, 0, out, device="cpu")


def _end_of_shard_fix() -> bool:
    """webdataset >= 0.2.96 ends each shard's member stream with an ``{}`` marker that
    open_clip_train's ``group_by_keys_nothrow`` cannot read (KeyError: 'fname' as the first shard
    runs out: open_clip issue #935, webdataset issue #384). Its reader is given the stream without
    the marker, as before 0.2.96; the shapes keys are unique across shards, so no samples merge.
    The loader workers are forked and inherit this."""
    import functools
    import inspect

    import open_clip_train.data as oc_data

    expander = oc_data.tar_file_expander
    if "eof_value" not in inspect.signature(expander).parameters:
        return False
    oc_data.tar_file_expander = functools.partial(expander, eof_value=None)
    return True


def _open_clip(job: dict, stamps: list[float]) -> dict:
    import open_clip_train.main as oc_main

    from benchmark.models import clip  # noqa: F401 - registers the track's model configs
    from benchmark.spec.track import Scale

    scale = Scale.model_validate(job["scale"])
    eof_fix = _end_of_shard_fix()
    oc_main.cosine_lr = _stamped(oc_main.cosine_lr, stamps)
    oc_main.const_lr = _stamped(oc_main.const_lr, stamps)
    precision = {"fp32": "fp32", "amp_bf16": "amp_bf16", "amp": "amp"}[scale.precision]
    args = [
        *("--train-data", job["shards"], "--dataset-type", "webdataset"),
        *("--train-num-samples", str(scale.steps * scale.batch_size)),
        *("--batch-size", str(scale.batch_size), "--epochs", "1"),
        *("--lr", str(scale.lr), "--warmup", str(scale.warmup), "--lr-scheduler", scale.schedule),
        *("--wd", str(scale.weight_decay), "--eps", str(scale.eps)),
        *("--beta1", str(scale.betas[0]), "--beta2", str(scale.betas[1])),
        *("--workers", str(scale.workers), "--model", scale.model, "--device", "cpu"),
        *("--precision", precision, "--seed", "0"),
        *("--logs", job["out"], "--name", "open_clip", "--save-frequency", "0"),
        *("--report-to", "", "--zeroshot-frequency", "0", "--val-frequency", "0"),
    ]
    if scale.pretrained:
        args += ["--pretrained", scale.pretrained]
    if job["resampled"]:
        args.append("--dataset-resampled")
    code = oc_main.main(args)
    if code not in (None, 0):
        raise RuntimeError(f"open_clip_train.main returned {code}")
    return {"end_of_shard_fix": eof_fix, "args": args}


def child(kind: str, job_file: str) -> None:
    job = json.loads(Path(job_file).read_text())
    stamps: list[float] = []
    run = {BARE: _bare, CACHED: _project, DECODE: _project, OPEN_CLIP: _open_clip}[kind]
    t0 = time.perf_counter()
    record = run(job, stamps)
    call_s = time.perf_counter() - t0
    result = {"stamps": [s - t0 for s in stamps], "call_s": call_s, "record": record}
    Path(job["result"]).write_text(json.dumps(result))


# -- the driver ---------------------------------------------------------------------------------


def _shards(pool_file: Path, store_root: Path, tmp: Path) -> tuple[str, int, str]:
    """A brace pattern of the pool's shards for open_clip, their count, and where they are: the
    store's own shards when every sample has png + txt members (open_clip's keys), else a copy
    with the table's captions written as txt, in ``tmp``."""
    import pyarrow.parquet as pq

    from benchmark.pools.shards import split_ref

    table = pq.read_table(pool_file, columns=["caption", "image"])
    refs = table.column("image").to_pylist()
    shards = sorted({split_ref(r)[0] for r in refs})
    stems = [Path(s).name.rsplit("-", 1)[0] for s in shards]
    with tarfile.open(store_root / shards[0]) as tf:
        names = tf.getnames()
    keys = {n.rsplit(".", 1)[0] for n in names}
    has_txt = all(f"{k}.txt" in names for k in keys)
    numbers = [Path(s).stem.rsplit("-", 1)[-1] for s in shards]
    contiguous = numbers == [
        f"{int(numbers[0]) + i:0{len(numbers[0])}d}" for i in range(len(shards))
    ]
    same_dir = all(Path(s).parent == Path(shards[0]).parent for s in shards)
    if has_txt and contiguous and same_dir and len(set(stems)) == 1:
        where = "the run store's shards (png + txt members)"
        directory, stem = store_root / Path(shards[0]).parent, stems[0]
    else:
        import io

        from benchmark.pools.shards import ShardReader

        directory, stem = tmp / "wds", "shard"
        directory.mkdir()
        reader = ShardReader(store_root)
        by_shard: dict[str, list[tuple[str, str]]] = {}
        for r, c in zip(refs, table.column("caption").to_pylist(), strict=True):
            by_shard.setdefault(split_ref(r)[0], []).append((r, c))
        for i, s in enumerate(shards):
            with tarfile.open(directory / f"{stem}-{i:06d}.tar", "w") as out:
                for j, (r, caption) in enumerate(by_shard[s]):
                    ext = split_ref(r)[1].rsplit(".", 1)[-1]
                    for name, data in ((ext, reader.read_bytes(r)), ("txt", caption.encode())):
                        info = tarfile.TarInfo(f"{i:06d}{j:09d}.{name}")
                        info.size = len(data)
                        out.addfile(info, io.BytesIO(data))
        where = f"a temporary copy with png + txt members in {directory} (the store's lack txt)"
        shards = [f"{stem}-{i:06d}.tar" for i in range(len(shards))]
    first, last = (Path(s).name.rsplit("-", 1)[1].split(".")[0] for s in (shards[0], shards[-1]))
    pattern = str(directory / f"{stem}-{{{first}..{last}}}.tar")
    if len(shards) == 1:
        pattern = str(directory / Path(shards[0]).name)
    return pattern, len(shards), where


def _cache_code() -> list[str]:
    """The files under benchmark/ that read the cache's env var."""
    return sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "benchmark").rglob("*.py")
        if CACHE_ENV in p.read_text(encoding="utf-8", errors="replace")
    )


def _windows(stamps: list[float], skip: int, window: int, batch: int) -> list[float]:
    """img/s of each whole window of ``window`` steps after the first ``skip`` steps."""
    t = stamps[skip:]
    return [window * batch / (t[i + window] - t[i]) for i in range(0, len(t) - window, window)]


def _run(kind: str, job: dict, tmp: Path, name: str, timeout: int) -> dict:
    job_file = tmp / f"{name}.json"
    job = {**job, "result": str(tmp / f"{name}.result.json"), "out": str(tmp / name)}
    job_file.write_text(json.dumps(job))
    env = dict(os.environ)
    env.pop(CACHE_ENV, None)
    if kind == DECODE:
        env[CACHE_ENV] = "0"
    log = tmp / f"{name}.log"
    with log.open("w") as f:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(job_file)],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            timeout=timeout,
        )
    if proc.returncode:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"exit status {proc.returncode}:\n    " + "\n    ".join(tail))
    return json.loads(Path(job["result"]).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument(
        "--steps", type=int, default=24, help="train steps per measurement (default 24)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurements per loop (default 3)")
    parser.add_argument("--track", default="shapes", help="track name or file (default shapes)")
    parser.add_argument("--scale", default="tiny", help="the track's scale (default tiny)")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="shapes pool rows (default: the track's pool, checked against its eval images)",
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=5,
        help="steps dropped from the start of each run (default 5)",
    )
    parser.add_argument("--window", type=int, default=6, help="steps per rate window (default 6)")
    parser.add_argument(
        "--loops",
        default=",".join(ORDER),
        help=f"loops to measure, comma-separated (default {','.join(ORDER)})",
    )
    parser.add_argument(
        "--runs", help="run store root for the pool (default: a temporary directory)"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per run (default 900)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    loops = [k for k in args.loops.split(",") if k]
    if unknown := [k for k in loops if k not in LABELS]:
        parser.error(f"--loops: unknown {', '.join(unknown)} (known: {', '.join(ORDER)})")
    if args.steps < args.warmup_steps + args.window + 1:
        parser.error("--steps must be at least --warmup-steps + --window + 1")

    from benchmark.pipeline import Runner
    from benchmark.spec.load import find_track, load_track
    from benchmark.store import Store

    spec = load_track(find_track(args.track, REPO))
    base = spec.scale(args.scale)
    scale = base.model_copy(
        update={"samples_seen": args.steps * base.batch_size, "checkpoint_every": 10**9}
    )
    batch = scale.batch_size
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        store = Store(Path(args.runs) if args.runs else tmp / "runs")
        runner = Runner(store)
        t0 = time.perf_counter()
        if args.pool_size is None:
            pool_file = runner.track_pool_file(spec)
        else:
            pool_file = runner.pool_file(spec.pool.model_copy(update={"size": args.pool_size}))
        import pyarrow.parquet as pq

        rows = pq.read_metadata(pool_file).num_rows
        pool_s = time.perf_counter() - t0
        pattern, n_shards, where = _shards(pool_file, store.root, tmp)
        resampled = rows < scale.steps * batch
        cache = _cache_code()
        lines = [
            f"{spec.track.name}/{args.scale}: {scale.model}, batch {batch}, lr {scale.lr}, "
            f"warmup {scale.warmup}, {scale.schedule}, {scale.precision}, "
            f"{scale.workers} loader worker(s); {args.steps} steps per run, {args.repeats} "
            f"repeats; device cpu, torch threads {_threads()}",
            f"pool: {rows} rows ({pool_s:.0f} s to build or find) in {store.root}",
            f"open_clip_train.main reads {n_shards} shard(s): {where}"
            + ("; --dataset-resampled (pool smaller than the run)" if resampled else ""),
            "open_clip_train.main feeds its own train transform (RandomResizedCrop), the "
            "project its eval transform (resize + center crop), as each trainer does",
            f"image cache: {CACHE_ENV} read in {', '.join(cache)}; its stage is built in the "
            "store by the first cached run (in that run's whole call) and reused after"
            if cache
            else f"image cache: {CACHE_ENV} appears nowhere in benchmark/ yet: both project "
            "rows run the same (decoding) loop",
        ]
        print("\n" + "\n".join(lines), flush=True)
        job = {
            "scale": scale.model_dump(mode="json"),
            "pool_file": str(pool_file),
            "store_root": str(store.root),
            "shards": pattern,
            "resampled": resampled,
        }
        rates: dict[str, list[float]] = {k: [] for k in loops}
        whole: dict[str, list[float]] = {k: [] for k in loops}
        failed: dict[str, str] = {}
        for repeat in range(args.repeats):
            turn = loops[repeat % len(loops) :] + loops[: repeat % len(loops)]
            for kind in turn:
                if kind in failed:
                    continue
                load = os.getloadavg()[0]
                try:
                    result = _run(kind, job, tmp, f"r{repeat}-{kind}", args.timeout)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    failed[kind] = str(e)
                    print(f"  repeat {repeat}: {LABELS[kind]} FAILED: {e}", flush=True)
                    continue
                windows, line = _report(
                    kind, result, args.steps, args.warmup_steps, args.window, batch
                )
                rates[kind].extend(windows)
                whole[kind].append(args.steps * batch / result["call_s"])
                print(f"  repeat {repeat}: {LABELS[kind]:<28} {line} [load {load:.1f}]", flush=True)
        _table(loops, rates, whole, failed)


def _report(
    kind: str, result: dict, steps: int, skip: int, window: int, batch: int
) -> tuple[list[float], str]:
    """One run's window rates, and a line saying what they are."""
    stamps, record = result["stamps"], result["record"]
    windows = _windows(stamps, skip, window, batch)
    notes = []
    if len(stamps) != steps:
        notes.append(f"{len(stamps)} scheduler calls for {steps} steps")
    if not windows and record.get("samples_per_s"):  # the hook saw nothing: the record's rate
        windows = [record["samples_per_s"]]
        notes.append("no per-step stamps: the record's samples_per_s")
    if kind in (CACHED, DECODE):
        notes.append(f"record {record.get('samples_per_s')} img/s")
        notes += [f"{k}={v}" for k, v in record.items() if "cache" in k.lower()]
    if kind == OPEN_CLIP and record.get("end_of_shard_fix"):
        notes.append("end-of-shard marker skipped")
    rate = f"{statistics.median(windows):7.0f} img/s" if windows else "      - img/s"
    listed = ", ".join(f"{w:.0f}" for w in windows)
    notes.insert(0, f"windows {listed}; whole call {result['call_s']:.1f} s")
    return windows, f"{rate} ({'; '.join(notes)})"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _table(
    loops: list[str],
    rates: dict[str, list[float]],
    whole: dict[str, list[float]],
    failed: dict[str, str],
) -> None:
    """The medians, and the best windows: on a shared machine the best window is the one the
    other load slowed least, so its ratios are the ones to trust when the medians disagree."""
    med = {k: statistics.median(v) for k, v in rates.items() if v}
    best = {k: max(v) for k, v in rates.items() if v}
    print(
        f"\n{'loop':<29}{'img/s':>7}{'vs bare':>9}{'best window':>13}{'vs bare':>9}"
        f"{'whole call img/s':>18}{'windows':>9}"
    )
    for k in loops:
        if k not in med:
            print(f"{LABELS[k]:<29}{'failed' if k in failed else '-':>7}")
            continue
        vs = f"{med[k] / med[BARE]:.2f}" if BARE in med else "-"
        vs_best = f"{best[k] / best[BARE]:.2f}" if BARE in best else "-"
        w = f"{statistics.median(whole[k]):.0f}" if whole[k] else "-"
        print(
            f"{LABELS[k]:<29}{med[k]:>7.0f}{vs:>9}{best[k]:>13.0f}{vs_best:>9}{w:>18}"
            f"{len(rates[k]):>9}"
        )
    print("(img/s: median window over all repeats; whole call: median over repeats)\n")

    def ratio(a: str, b: str, target: float) -> None:
        if a in med and b in med:
            m, x = med[a] / med[b], best[a] / best[b]
            verdict = f"; target >= {target}x: {'met' if m >= target else 'NOT met'}"
            print(
                f"{LABELS[a]} / {LABELS[b]}: {m:.2f}x (best windows {x:.2f}x)"
                + (verdict if target else "")
            )

    ratio(CACHED, BARE, 0.97)
    ratio(CACHED, OPEN_CLIP, 1.3)
    ratio(DECODE, OPEN_CLIP, 0)
    for k, error in failed.items():
        print(f"{LABELS[k]} failed: {error.splitlines()[0]} (its log's tail is above)")


if __name__ == "__main__":
    main()
