"""Standardized CLIP training: the track's scale fixes everything; the recipe gives the data.

Exactly ``samples_seen`` samples are seen whatever the curated size (fewer samples, more
epochs, as in DataComp). Data order is a pure function of (seed, epoch), and checkpoints hold
model, optimizer and step, so a killed run resumes to the same final weights.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import open_clip
import pyarrow as pa
import torch
from open_clip.loss import ClipLoss
from open_clip_train.scheduler import const_lr, cosine_lr
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from benchmark.loss import NegClipLoss
from benchmark.models import clip
from benchmark.ops.context import OpError
from benchmark.pools.shards import ShardReader
from benchmark.spec.track import Scale
from benchmark.text.caption_pick import pick_caption
from benchmark.text.seeding import sample_rng

CHECKPOINT = "checkpoint.pt"


REWRITES = "caption_rewrites"  # LaCLIP: each epoch draws the original or one rewrite
NEGATIVES = "negative_captions"  # NegCLIP: each epoch draws one hard negative per sample


class Pairs(Dataset):
    """Row i of the curated table at a given epoch: (image, caption tokens[, negative tokens]).

    Indices are ``(row, epoch)`` pairs so per-epoch choices (rewrites, negatives) stay a pure
    function of the data order, which a resumed run replays exactly.
    """

    def __init__(
        self,
        table: pa.Table,
        reader: ShardReader,
        preprocess,
        tokenizer,
        seed: int,
        negatives: bool,
    ) -> None:
        self.refs = table.column("image").to_pylist()
        self.uids = table.column("uid").to_pylist()
        self.captions = table.column("caption").to_pylist()
        cols = table.column_names
        self.rewrites = table.column(REWRITES).to_pylist() if REWRITES in cols else None
        self.negatives = table.column(NEGATIVES).to_pylist() if negatives else None
        self.reader, self.preprocess, self.tokenizer, self.seed = (
            reader,
            preprocess,
            tokenizer,
            seed,
        )

    def __len__(self) -> int:
        return len(self.refs)

    def caption(self, i: int, epoch: int) -> str:
        rewrites = self.rewrites[i] if self.rewrites else None
        return pick_caption(self.uids[i], self.captions[i], rewrites, self.seed, epoch)

    def __getitem__(self, index: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        i, epoch = index
        image = self.preprocess(self.reader.read_image(self.refs[i]))
        text = self.tokenizer([self.caption(i, epoch)])[0]
        if self.negatives is None:
            return image, text
        # a row without negatives gets another row's caption: an ordinary extra negative
        negs = self.negatives[i] or [self.captions[(i + 1) % len(self.captions)]]
        negative = negs[int(sample_rng(self.uids[i], self.seed + 1, epoch).integers(len(negs)))]
        return image, text, self.tokenizer([negative])[0]


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
    checkpoint to resume from and no half-written one."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(
            {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step},
            tmp,
        )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def train(
    table: pa.Table,
    store_root: Path,
    scale: Scale,
    order_fn: Callable,
    seed: int,
    out: Path,
    device: str = "cpu",
    loss: str = "clip",
) -> dict:
    """Train into ``out`` (resuming from its checkpoint if present); returns the train record.

    ``loss`` is ``clip`` (open_clip's ClipLoss) or ``negclip`` (needs ``negative_captions``).
    What the recipe got wrong (its sampler, its loss, a curated set smaller than one batch) is
    an OpError naming that part; the caller prefixes the recipe's file.
    """
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
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    data = Pairs(table, ShardReader(store_root), preprocess, tokenizer, seed, loss == "negclip")
    loader = DataLoader(
        data,
        batch_sampler=list(batches(table, order_fn, scale.batch_size, seed, start, steps)),
        num_workers=scale.workers,
        prefetch_factor=4 if scale.workers else None,
    )
    loss_fn = NegClipLoss() if loss == "negclip" else ClipLoss()
    autocast = torch.autocast(
        device.split(":")[0], dtype=torch.bfloat16, enabled=scale.precision != "fp32"
    )
    model.train()
    t0, losses = time.perf_counter(), []
    # closed on failure too, so an error line starts a line of its own
    with tqdm(total=steps, initial=start, desc="train", unit="step", mininterval=1.0) as bar:
        for step, (images, texts, *negatives) in enumerate(loader, start=start):
            adjust(step)
            with autocast:
                out_ = model(images.to(device), texts.to(device))
                features = [out_["image_features"], out_["text_features"]]
                if negatives:
                    features.append(model.encode_text(negatives[0].to(device), normalize=True))
                value = loss_fn(*features, out_["logit_scale"])
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
            if done % scale.checkpoint_every == 0 and done < steps:
                _save_checkpoint(ckpt, model, optimizer, done)
    clip.save(model, scale.model, out)
    ckpt.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    return {
        "steps": steps,
        "samples_seen": steps * scale.batch_size,
        "resumed_from": start,
        "wall_s": round(wall, 2),
        "final_loss": losses[-1] if losses else None,
        "samples_per_s": round((steps - start) * scale.batch_size / wall, 1) if wall else None,
        "curated_size": table.num_rows,
        "epochs": round(steps * scale.batch_size / max(table.num_rows, 1), 2),
    }
