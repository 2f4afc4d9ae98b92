"""Exact and near-duplicate removal by a perceptual image signature (optionally with caption)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from PIL import Image
from pydantic import Field

from benchmark.columns import CAPTION, IMAGE, IMAGE_GROUP
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register

SIDE = 8  # signature: an 8x8 colour thumbnail, box-filtered (robust to noise, re-encoding, jitter)


class Dedup(Params):
    by: Literal["image", "image+caption"] = "image"
    threshold: float = Field(
        0.35, ge=0, le=10, description="L2 distance between signatures that counts as duplicate"
    )


def signature(image: Image.Image) -> np.ndarray:
    """192 floats in [0, 1]: the image at 8x8 in colour."""
    thumb = image.convert("RGB").resize((SIDE, SIDE), Image.BOX)
    return np.asarray(thumb, dtype=np.float32).ravel() / 255.0


def first_of_groups(
    sigs: np.ndarray, keys: list[str], threshold: float, chunk: int = 2048
) -> np.ndarray:
    """Keep row i unless an earlier kept row with the same key lies within ``threshold``.

    Exact all-pairs search in chunks with torch (no faiss here: a second OpenMP runtime in the
    process slows the training that follows several-fold on a small CPU).
    """
    import torch

    x = torch.from_numpy(sigs)
    keep = np.ones(len(sigs), dtype=bool)
    for start in range(0, len(sigs), chunk):
        stop = min(start + chunk, len(sigs))
        d = torch.cdist(x[start:stop], x[:stop])
        rows, cols = torch.nonzero(d <= threshold, as_tuple=True)
        earlier: dict[int, list[int]] = {}
        for i, j in zip((rows + start).tolist(), cols.tolist(), strict=True):
            if j < i:
                earlier.setdefault(i, []).append(j)
        for i in range(start, stop):
            if any(keep[j] and keys[j] == keys[i] for j in earlier.get(i, ())):
                keep[i] = False
    return keep


def _reads(p: Dedup) -> tuple[str, ...]:
    return (IMAGE, CAPTION) if p.by == "image+caption" else (IMAGE,)


@register("dedup", "filter", Dedup, reads=_reads, scope="table")
def dedup(table: pa.Table, p: Dedup, ctx: StepContext) -> pa.Table:
    """Drop rows whose image (or image and caption) repeats an earlier row's; keeps the first.

    With ``by: image``, rows that share an ``image_group`` (several captions of one photo) are one
    unit: the group stays or goes together, and its image is read once. Unreadable images are
    dropped.
    """
    ctx.require(table, *_reads(p))
    if p.by == "image" and IMAGE_GROUP in table.column_names:
        units = table.column(IMAGE_GROUP).to_pylist()
    else:
        units = list(range(table.num_rows))
    first: dict = {}
    for i, u in enumerate(units):
        first.setdefault(u, i)
    reps = np.array(sorted(first.values()), dtype=np.int64)
    sigs = np.full((len(reps), SIDE * SIDE * 3), np.nan, dtype=np.float32)
    for idx, images in ctx.iter_images(table.take(reps)):
        for k, im in zip(idx, images, strict=True):
            if im is not None:
                sigs[k] = signature(im)
    readable = ~np.isnan(sigs[:, 0])
    keys = [""] * len(reps)
    if p.by == "image+caption":
        captions = table.column(CAPTION).to_pylist()
        keys = [captions[i].strip().lower() for i in reps]
    keep = np.zeros(len(reps), dtype=bool)
    if readable.any():
        ok = np.flatnonzero(readable)
        keep[ok] = first_of_groups(sigs[ok], [keys[i] for i in ok], p.threshold)
    kept = {units[r] for r, k in zip(reps, keep, strict=True) if k}
    return table.filter(pa.array([u in kept for u in units], pa.bool_()))
