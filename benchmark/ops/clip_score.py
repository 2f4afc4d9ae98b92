"""CLIP score: cosine similarity of a sample's image and caption under a reference CLIP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from benchmark.columns import CAPTION, CLIP_SCORE, IMAGE
from benchmark.models.trust import ClipModel, ClipWeights
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, decide, register

if TYPE_CHECKING:
    from benchmark.models import clip


class ClipScore(Params):
    threshold: float | None = Field(None, ge=-1, le=1, description="keep score >= threshold")
    fraction: float | None = Field(
        None, gt=0, le=1, description="keep this top fraction (DataComp's cut: ties at it kept)"
    )
    model: ClipModel = Field(None, description="open_clip name or saved dir; default: track's")
    pretrained: ClipWeights = Field(None, description="safetensors path or open_clip tag")
    batch_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _one(self) -> ClipScore:
        if self.threshold is not None and self.fraction is not None:
            raise ValueError("give either 'threshold' or 'fraction', not both")
        return self


def scores(
    table: pa.Table, bundle: clip.ClipBundle, ctx: StepContext, batch_size: int
) -> np.ndarray:
    """Per-row image-caption cosine; unreadable images score -inf so any filter drops them."""
    captions = table.column("caption").to_pylist()
    out = np.full(table.num_rows, -np.inf, dtype=np.float32)
    for idx, images in ctx.iter_images(table, batch_size):
        ok = [k for k, im in enumerate(images) if im is not None]
        if not ok:
            continue
        img = bundle.encode_images([images[k] for k in ok], batch_size)
        txt = bundle.encode_texts([captions[idx[k]] for k in ok])
        out[idx[ok]] = (img * txt).sum(dim=1).numpy()
    return out


def fraction_threshold(s: np.ndarray, fraction: float) -> float:
    """The score a top ``fraction`` keeps down to, by DataComp's rule (baselines/apply_filter.py,
    ``get_threshold``): the score at index ``int(N * fraction)`` of the scores sorted from high to
    low. Keeping every score >= it keeps that row too, so at least ``int(N * fraction) + 1`` rows,
    and every row tied with it. At ``fraction`` 1 the index is past the end (DataComp would fail
    there); the lowest score is the cut instead."""
    if not len(s):
        return np.inf
    descending = np.sort(s)[::-1]
    return float(descending[min(int(len(s) * fraction), len(s) - 1)])


@register(
    "clip_score",
    "filter",
    ClipScore,
    reads=(IMAGE, CAPTION),
    writes=(CLIP_SCORE,),
    device=True,
)
def clip_score(table: pa.Table, p: ClipScore, ctx: StepContext) -> pa.Table:
    """Score every sample with a reference CLIP (the track's, or one named here) and keep those
    above a threshold or the top fraction (DataComp's CLIP score filter); adds ``clip_score``.
    A fraction is turned into a threshold as DataComp does (``fraction_threshold``), so ties at the
    cut are all kept; unreadable images score -inf and are dropped wherever the cut falls."""
    from benchmark.models import clip

    ctx.require(table, IMAGE, CAPTION)
    if p.model is not None:
        bundle = clip.create(p.model, p.pretrained, ctx.device, ctx.allow_weights)
    elif ctx.reference is not None:
        bundle = ctx.reference()
    else:
        raise ctx.fail("the track has no reference model; name one with 'model'")
    column = pa.array(scores(table, bundle, ctx, p.batch_size))
    if CLIP_SCORE in table.column_names:  # a second clip_score step: its cut is on its scores
        return table.set_column(table.column_names.index(CLIP_SCORE), CLIP_SCORE, column)
    return table.append_column(CLIP_SCORE, column)


@decide("clip_score")
def clip_score_cut(table: pa.Table, p: ClipScore, ctx: StepContext) -> pa.Table:
    """The global part: the cut over the whole table's scores (a fraction needs all of them)."""
    s = table.column(CLIP_SCORE).to_numpy()
    if p.fraction is not None:
        keep = (s >= fraction_threshold(s, p.fraction)) & np.isfinite(s)
    elif p.threshold is not None:
        keep = s >= p.threshold
    else:
        keep = np.isfinite(s)
    return table.filter(pa.array(keep))
