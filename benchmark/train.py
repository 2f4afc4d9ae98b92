"""Standardized CLIP training: the track's scale fixes everything; the recipe gives the data.

Exactly ``samples_seen`` samples are seen whatever the curated size (fewer samples, more
epochs, as in DataComp). Data order is a pure function of (seed, epoch), and checkpoints hold
model, optimizer and step, so a killed run resumes to the same final weights.

Under torchrun (``smallcomp run --gpus N``, or ``torchrun -m benchmark.train`` by hand: see
``main``) the track's batch stays the global batch: every rank draws the same global batches and
trains on its slice of each, with the contrastive loss over every rank's features, so N ranks
optimize what one process does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import open_clip
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from open_clip.loss import ClipLoss
from open_clip_train.scheduler import const_lr, cosine_lr
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from benchmark import distributed, image_cache
from benchmark.columns import CAPTION, IMAGE, NEGATIVES, REWRITES, UID
from benchmark.loss import NegClipLoss
from benchmark.models import clip
from benchmark.ops.context import OpError
from benchmark.pools.shards import ShardReader
from benchmark.spec.errors import SpecError
from benchmark.spec.recipe import Step
from benchmark.spec.track import Scale
from benchmark.store import Store, StoreError, write_atomic
from benchmark.text.caption_pick import pick_caption
from benchmark.text.seeding import sample_rng

CHECKPOINT = "checkpoint.pt"
RECORD = "train.json"
ERROR = "train-error.txt"  # a rank's one-line error, for the launcher (``launched``) to report
LAUNCH = "launch"  # what the launcher hands the ranks (table, scale); removed when done


class Texts:
    """Row i's caption and hard negative in an epoch, as strings: the one rule both feeds use.

    Per-epoch choices (rewrites, negatives) are a pure function of (seed, epoch, uid), so a
    resumed run replays exactly what it would have trained on.
    """

    def __init__(self, table: pa.Table, seed: int, negatives: bool) -> None:
        self.uids = table.column(UID).to_pylist()
        self.captions = table.column(CAPTION).to_pylist()
        cols = table.column_names
        self.rewrites = table.column(REWRITES).to_pylist() if REWRITES in cols else None
        self.negatives = table.column(NEGATIVES).to_pylist() if negatives else None
        self.seed = seed

    def caption(self, i: int, epoch: int) -> str:
        rewrites = self.rewrites[i] if self.rewrites else None
        if not rewrites:  # the draw has one option: skip making its generator
            return self.captions[i]
        return pick_caption(self.uids[i], self.captions[i], rewrites, self.seed, epoch)

    def negative(self, i: int, epoch: int) -> str:
        # a row without negatives gets another row's caption: an ordinary extra negative
        negs = self.negatives[i] or [self.captions[(i + 1) % len(self.captions)]]
        return negs[int(sample_rng(self.uids[i], self.seed + 1, epoch).integers(len(negs)))]

    def strings(self) -> list[str]:
        """Every text a run can draw, each once, in a fixed order."""
        out = dict.fromkeys(self.captions)
        for lists in (self.rewrites, self.negatives):
            for texts in lists or ():
                out.update(dict.fromkeys(texts or ()))
        return list(out)


class Pairs(Dataset):
    """The decode feed: row i at an epoch, read from its shard and transformed, for DataLoader
    workers. Indices are ``(row, epoch)`` pairs (see ``Texts``)."""

    def __init__(self, table: pa.Table, reader: ShardReader, preprocess, tokenizer, texts: Texts):
        self.refs = table.column(IMAGE).to_pylist()
        self.reader, self.preprocess, self.tokenizer, self.texts = (
            reader,
            preprocess,
            tokenizer,
            texts,
        )

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        i, epoch = index
        image = self.preprocess(self.reader.read_image(self.refs[i]))
        text = self.tokenizer([self.texts.caption(i, epoch)])[0]
        if self.texts.negatives is None:
            return image, text
        return image, text, self.tokenizer([self.texts.negative(i, epoch)])[0]


class CachedPairs:
    """The cache feed: whole batches from the decoded-image cache and texts tokenized once, in
    the training process (no workers to feed). Gives exactly the decode feed's tensors."""

    def __init__(self, images: np.ndarray, normalize, tokenizer, texts: Texts) -> None:
        strings = texts.strings()
        self.row = {s: k for k, s in enumerate(strings)}
        self.tokens = torch.cat(
            [tokenizer(strings[k : k + 4096]) for k in range(0, len(strings), 4096)]
        )
        self.images, self.normalize, self.texts = images, normalize, texts

    def __call__(self, batch: list[tuple[int, int]]) -> tuple[torch.Tensor, ...]:
        rows = np.fromiter((i for i, _ in batch), dtype=np.int64, count=len(batch))
        images = image_cache.batch(self.images, rows, self.normalize)
        text = self.tokens[[self.row[self.texts.caption(i, e)] for i, e in batch]]
        if self.texts.negatives is None:
            return images, text
        return images, text, self.tokens[[self.row[self.texts.negative(i, e)] for i, e in batch]]


def prefetched(batches: Iterator, depth: int = 2) -> Iterator:
    """``batches``, each made in a thread while the model trains on the one before, so the
    step never waits for its input (torch's kernels release the GIL). The thread stops when
    the batches end, fail (re-raised here) or the consumer goes away."""
    done, stop = object(), threading.Event()
    ready: queue.Queue = queue.Queue(maxsize=depth)

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fill() -> None:
        try:
            for b in batches:
                if not offer(b):
                    return
            offer(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            offer(e)

    worker = threading.Thread(target=fill, name="batches", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def batches(
    table: pa.Table, order_fn: Callable, batch_size: int, seed: int, start: int, steps: int
) -> Iterator[list[tuple[int, int]]]:
    """Batches ``start..steps-1`` of the deterministic stream as (row, epoch) pairs; each epoch
    drops its remainder."""
    step, epoch = 0, 0
    while step < steps:
        order = np.asarray(order_fn(table, batch_size, np.random.default_rng([seed, epoch])))
        n = len(order) // batch_size
        if n == 0:
            raise OpError(
                f"train: the curated set has {len(order)} rows, "
                f"fewer than one batch of {batch_size}"
            )
        for b in range(n):
            if step >= steps:
                return
            if step >= start:
                yield [(int(i), epoch) for i in order[b * batch_size : (b + 1) * batch_size]]
            step += 1
        epoch += 1


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on gains, biases, embeddings and the logit scale (open_clip's rule)."""

    def exclude(n: str, p: torch.nn.Parameter) -> bool:
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n

    named = list(model.named_parameters())
    return [
        {"params": [p for n, p in named if exclude(n, p) and p.requires_grad], "weight_decay": 0.0},
        {
            "params": [p for n, p in named if not exclude(n, p) and p.requires_grad],
            "weight_decay": weight_decay,
        },
    ]


def _save_checkpoint(path: Path, model, optimizer, step: int) -> None:
    """Write to a temporary name, then rename: a failed save (a full disk) leaves the previous
    checkpoint to resume from and no half-written one. The name is the writer's own, so the
    writers of several machines sharing one directory never mix their bytes."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    try:
        torch.save(
            {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
            tmp,
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_model(model, name: str, out: Path) -> None:
    """The final weights and config, each file renamed into place whole."""
    tmp = out / f".model.{os.getpid()}"
    clip.save(model, name, tmp)
    for f in sorted(tmp.iterdir()):
        os.replace(f, out / f.name)
    tmp.rmdir()


def _clear_leftovers(out: Path) -> None:
    """Temporary files of a writer that was killed mid-save (before any rank writes again)."""
    for p in out.glob(f"{Path(CHECKPOINT).stem}.*.tmp"):
        p.unlink(missing_ok=True)
    for p in out.glob(".model.*"):
        shutil.rmtree(p, ignore_errors=True)


def _resume(ckpt: Path, rank: distributed.Rank) -> dict | None:
    """The checkpoint to resume from: the newest any rank sees, so every rank resumes from the
    same step even when machines keep their own checkpoints and one died before its last save."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True) if ckpt.exists() else None
    if not rank.joined or rank.world_size == 1:
        return state
    steps: list = [None] * rank.world_size
    dist.all_gather_object(steps, int(state["step"]) if state else 0)
    if min(steps) == max(steps):
        return state
    box = [state]
    dist.broadcast_object_list(box, src=steps.index(max(steps)))
    return box[0]


class _Towers(torch.nn.Module):
    """Everything a step encodes in one forward, so DDP sees every use of the weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images, texts, negatives=None) -> tuple[list[torch.Tensor], torch.Tensor]:
        out = self.model(images, texts)
        features = [out["image_features"], out["text_features"]]
        if negatives is not None:
            features.append(self.model.encode_text(negatives, normalize=True))
        return features, out["logit_scale"]


def _describe(device: str) -> str:
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def train(
    table: pa.Table,
    store_root: Path,
    scale: Scale,
    order_fn: Callable,
    seed: int,
    out: Path,
    device: str = "cpu",
    loss: str = "clip",
    rank: distributed.Rank | None = None,
) -> dict:
    """Train into ``out`` (resuming from its checkpoint if present); returns the train record.

    ``loss`` is ``clip`` (open_clip's ClipLoss) or ``negclip`` (needs ``negative_captions``).
    What the recipe got wrong (its sampler, its loss, a curated set smaller than one batch) is
    an OpError naming that part; the caller prefixes the recipe's file. ``rank`` is this
    process's place in a torchrun job (``distributed.join``); without it, a job of one on
    ``device``.
    """
    rank = rank or distributed.Rank(device=device)
    device, world = rank.device, rank.world_size
    if scale.batch_size % world:
        raise OpError(
            f"train: batch_size {scale.batch_size} (the track's global batch) does not split "
            f"evenly over {world} ranks"
        )
    local_batch = scale.batch_size // world
    if loss == "negclip" and NEGATIVES not in table.column_names:
        raise OpError(f"loss (negclip): column '{NEGATIVES}' missing; add a hard_negatives step")
    torch.manual_seed(seed)
    model = open_clip.create_model(
        scale.model,
        pretrained=scale.pretrained,
        device=device,
        output_dict=True,
        force_quick_gelu=clip.uses_quick_gelu(scale.model, scale.pretrained),
    )
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)
    tokenizer = open_clip.get_tokenizer(scale.model)
    optimizer = torch.optim.AdamW(
        _param_groups(model, scale.weight_decay), lr=scale.lr, betas=scale.betas, eps=scale.eps
    )
    steps = scale.steps
    if scale.schedule == "cosine":
        adjust = cosine_lr(optimizer, scale.lr, scale.warmup, steps)
    else:
        adjust = const_lr(optimizer, scale.lr, scale.warmup, steps)
    start = 0
    ckpt = out / CHECKPOINT
    if rank.writer:
        _clear_leftovers(out)
    state = _resume(ckpt, rank)
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    del state
    # every rank draws the same global batches and takes its slice of each
    mine = slice(rank.rank * local_batch, (rank.rank + 1) * local_batch)
    texts = Texts(table, seed, loss == "negclip")
    plan = [b[mine] for b in batches(table, order_fn, scale.batch_size, seed, start, steps)]
    cached = image_cache.ensure(Store(store_root), table.column(IMAGE).to_pylist(), preprocess)
    if cached is not None:
        loader: Iterable = prefetched(map(CachedPairs(*cached, tokenizer, texts), plan))
    else:
        data = Pairs(table, ShardReader(store_root), preprocess, tokenizer, texts)
        loader = DataLoader(
            data,
            batch_sampler=plan,
            num_workers=scale.workers,
            prefetch_factor=4 if scale.workers else None,
        )
    towers: torch.nn.Module = _Towers(model)
    if rank.joined:
        ids = [rank.local_rank] if device.startswith("cuda") else None
        towers = torch.nn.parallel.DistributedDataParallel(towers, device_ids=ids)
        # open_clip's feature gather (and ours) uses torch.distributed.nn.all_gather, which
        # torch marks deprecated; it is the differentiable gather both losses need
        warnings.filterwarnings(
            "ignore", r"torch\.distributed\.nn\.functional\.all_gather", FutureWarning
        )
    if loss == "negclip":
        loss_fn = NegClipLoss(rank.rank, world)
    else:
        loss_fn = ClipLoss(local_loss=True, gather_with_grad=True, rank=rank.rank, world_size=world)
    autocast = torch.autocast(
        device.split(":")[0], dtype=torch.bfloat16, enabled=scale.precision != "fp32"
    )
    model.train()
    t0, losses = time.perf_counter(), []
    # closed on failure too, so an error line starts a line of its own
    with tqdm(
        total=steps,
        initial=start,
        desc="train" if world == 1 else f"train ({world} ranks)",
        unit="step",
        mininterval=1.0,
        disable=rank.rank != 0,
    ) as bar:
        for step, (images, texts, *negatives) in enumerate(loader, start=start):
            adjust(step)
            with autocast:
                negative = negatives[0].to(device) if negatives else None
                features, logit_scale = towers(images.to(device), texts.to(device), negative)
                value = loss_fn(*features, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(value.detach()))
            done = step + 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{losses[-1]:.3f}",
                img_s=f"{len(losses) * scale.batch_size / (time.perf_counter() - t0):.0f}",
            )
            if rank.writer and done % scale.checkpoint_every == 0 and done < steps:
                _save_checkpoint(ckpt, model, optimizer, done)
    final = losses[-1] if losses else None
    devices = [_describe(device)]
    if rank.joined and world > 1:
        if final is not None:  # the global batch's loss: the mean of the ranks' equal slices
            mean = torch.tensor([final], dtype=torch.float64, device=device)
            dist.all_reduce(mean)
            final = float(mean) / world
        devices = [None] * world
        dist.all_gather_object(devices, _describe(device))
    if rank.writer:
        _save_model(model, scale.model, out)
        ckpt.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    return {
        "steps": steps,
        "samples_seen": steps * scale.batch_size,
        "resumed_from": start,
        "wall_s": round(wall, 2),
        "final_loss": final,
        "samples_per_s": round((steps - start) * scale.batch_size / wall, 1) if wall else None,
        "curated_size": table.num_rows,
        "epochs": round(steps * scale.batch_size / max(table.num_rows, 1), 2),
        "world_size": world,
        "batch_per_rank": local_batch,
        "feed": "image cache" if cached is not None else f"decode ({scale.workers} workers)",
        "devices": devices,
    }


def sampler_order(sampler: Step) -> Callable:
    """The sampler op as the trainer calls it: ``(table, batch_size, rng) -> row order``."""
    from benchmark.ops import registry as ops

    op = ops.get(sampler.op)
    params = op.params.model_validate(sampler.params)

    def order(t: pa.Table, batch_size: int, rng) -> object:
        return op.fn(t, params, batch_size, rng)

    return order


def _columns(table: pa.Table, sampler: Step) -> list[str]:
    """The columns training reads: the trainer's, and those the sampler's params name."""
    from benchmark.ops import registry as ops

    params = ops.get(sampler.op).params.model_validate(sampler.params).model_dump()
    named = {v for v in params.values() if isinstance(v, str)}
    wanted = {UID, CAPTION, IMAGE, REWRITES, NEGATIVES} | named
    return [c for c in table.column_names if c in wanted]


def launched(
    launch: distributed.Launch,
    table: pa.Table,
    store_root: Path,
    scale: Scale,
    sampler: Step,
    seed: int,
    out: Path,
    device: str,
    loss: str,
    run_id: str,
) -> dict:
    """``train`` on ``launch.nproc`` ranks per machine under torchrun, through ``main``: the
    entry a hand launch uses. Returns the train record; a recipe's mistake is an OpError as in
    ``train``, any other failure of the ranks a StoreError (their checkpoints kept)."""
    job = out / LAUNCH
    job.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.select(_columns(table, sampler)), job / "table.parquet")
    write_atomic(job / "scale.json", scale.model_dump_json(indent=2))
    error = out / ERROR
    error.unlink(missing_ok=True)
    args = [
        *("--runs", str(store_root), "--table", str(job / "table.parquet")),
        *("--scale", str(job / "scale.json"), "--sampler", sampler.model_dump_json()),
        *("--seed", str(seed), "--out", str(out), "--device", device, "--loss", loss),
        *("--error-file", str(error)),
    ]
    code = launch.run("benchmark.train", args, run_id)
    if code:
        if error.exists():
            message = error.read_text()
            error.unlink()
            raise OpError(message)
        raise StoreError(
            "train",
            f"the ranks failed (torchrun exit status {code}; their output is above); "
            f"checkpoints in {out} are kept: run again to resume",
        )
    shutil.rmtree(job)
    return json.loads((out / RECORD).read_text())


def stage_build(
    launch: distributed.Launch,
    table: pa.Table,
    store_root: Path,
    scale: Scale,
    sampler: Step,
    seed: int,
    device: str,
    loss: str,
    run_id: str,
    where: str,
) -> Callable[[Path], None]:
    """The train stage's build, ``build(work)``: ``train`` here for a job of one, ``launched``
    under torchrun otherwise, then the record (``train.json``). The sampler is resolved now, so a
    bad one fails before the stage starts; a recipe's mistake while training is an OpError
    prefixed with ``where`` (the recipe file)."""
    order = sampler_order(sampler)

    def build(work: Path) -> None:
        try:
            if launch.distributed:
                record = launched(
                    launch, table, store_root, scale, sampler, seed, work, device, loss, run_id
                )
            else:
                record = train(table, store_root, scale, order, seed, work, device, loss)
        except OpError as e:
            raise OpError(f"{where}: {e}") from e
        write_atomic(work / RECORD, json.dumps(record, indent=2))

    return build


# -- the command line: ``python -m benchmark.train`` or ``torchrun ... -m benchmark.train`` --------

EPILOG = """examples:
  # one process
  python -m benchmark.train --runs runs --table runs/curate/<key> --track shapes --scale tiny \\
      --out models/basic-s0
  # 2 ranks on this machine (GPUs, or gloo processes on the CPU)
  torchrun --nproc-per-node 2 -m benchmark.train --runs runs --table runs/curate/<key> \\
      --track shapes --scale tiny --out models/basic-s0
  # 2 machines, 8 GPUs each (run on both; HOST is machine 0)
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
      -m benchmark.train ...

The track's batch_size is the global batch: it must split evenly over the ranks. The first rank
on each machine writes checkpoints and the model into --out; a run killed and started again with
the same arguments resumes from the newest checkpoint and ends with the same weights.
`smallcomp run --gpus N` launches this same entry for the train stage.
"""


def _seed(text: str) -> int:
    from benchmark.spec.numbers import SEED_LIMIT

    if not text.isdigit() or int(text) >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed must be an integer in 0..{SEED_LIMIT - 1}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmark.train",
        description="Standardized CLIP training on a curated table at a track's scale; the "
        "same entry runs alone, under torchrun (one rank per process, one device each: "
        "cuda:LOCAL_RANK with NCCL, or the CPU with gloo), and for `smallcomp run --gpus N`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--runs",
        required=True,
        help="run store root: the table's image references are relative to it",
    )
    p.add_argument(
        "--table",
        required=True,
        help="the table to train on: a .parquet file, or a stage directory holding "
        "curated.parquet (runs/curate/<key>) or pool.parquet",
    )
    p.add_argument(
        "--scale",
        required=True,
        help="a scale of --track by name (tiny), or a JSON file of one scale's settings",
    )
    p.add_argument("--track", help="track name or file whose scale --scale names")
    p.add_argument(
        "--sampler",
        default="random",
        help='sampler op name, or JSON {"op": NAME, "params": {...}} (default: random)',
    )
    p.add_argument("--seed", type=_seed, default=0, help="training seed (default 0)")
    p.add_argument(
        "--out",
        required=True,
        help="model directory: checkpoints while training (resumed from), then the model "
        "(open_clip_config.json + weights) and train.json",
    )
    p.add_argument(
        "--device",
        help="cpu or cuda (default: cuda if available, else cpu); under torchrun each rank "
        "takes cuda:LOCAL_RANK",
    )
    p.add_argument(
        "--loss",
        choices=["clip", "negclip"],
        default="clip",
        help="clip: open_clip's ClipLoss; negclip: hard negatives (needs negative_captions)",
    )
    # the launcher's: where the writer leaves a recipe's one-line error for it to report
    p.add_argument("--error-file", help=argparse.SUPPRESS)
    return p


class UsageError(Exception):
    """A command-line argument that names nothing usable (one line, exit 2)."""


def _table(path: Path) -> pa.Table:
    if path.is_dir():
        for name in ("curated.parquet", "pool.parquet"):
            if (path / name).exists():
                return pq.read_table(path / name)
        raise UsageError(f"--table {path}: holds neither curated.parquet nor pool.parquet")
    if not path.exists():
        raise UsageError(f"--table {path}: no such file or directory")
    return pq.read_table(path)


def _scale(args: argparse.Namespace) -> Scale:
    if args.scale.endswith(".json"):
        return Scale.model_validate_json(Path(args.scale).read_text())
    if not args.track:
        raise UsageError(f"--scale {args.scale}: name a --track, or give a scale .json file")
    from benchmark.spec.load import find_track, load_track

    return load_track(find_track(args.track, Path.cwd())).scale(args.scale)


def _sampler(text: str) -> tuple[Step, Callable]:
    sampler = Step.model_validate_json(text) if text.lstrip().startswith("{") else Step(op=text)
    try:
        return sampler, sampler_order(sampler)
    except KeyError as e:  # an unknown op; the message suggests names
        raise UsageError(f"--sampler: {e.args[0]}") from None


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError

    from benchmark.device import default_device

    args = parser().parse_args(argv)
    out = Path(args.out)
    rank = distributed.Rank()
    try:
        table, scale, (_, order) = _table(Path(args.table)), _scale(args), _sampler(args.sampler)
        try:
            rank = distributed.join(args.device or default_device())
        except ValueError as e:
            raise UsageError(str(e)) from None
        out.mkdir(parents=True, exist_ok=True)
        record = train(
            table, Path(args.runs), scale, order, args.seed, out, loss=args.loss, rank=rank
        )
        if rank.writer:
            write_atomic(out / RECORD, json.dumps(record, indent=2))
    except (OpError, SpecError, ValidationError, UsageError) as e:
        message = " ".join(str(e).split()) if isinstance(e, ValidationError) else str(e)
        print(f"benchmark.train: error: {message}", file=sys.stderr)
        if isinstance(e, OpError) and rank.writer and args.error_file:
            write_atomic(Path(args.error_file), message)
        return 2
    finally:
        distributed.leave(rank)
    return 0


if __name__ == "__main__":
    sys.exit(main())
