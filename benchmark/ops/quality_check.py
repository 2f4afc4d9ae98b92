"""Keep a counterfactual only when the edit did what its caption now says."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import Field

from benchmark.columns import (
    ADDED,
    CAPTION,
    IMAGE,
    PARENT_CAPTION,
    PARENT_IMAGE,
    PARENT_UID,
    REMOVED,
    UID,
)
from benchmark.models.trust import DetectorModel
from benchmark.ops.context import StepContext
from benchmark.ops.detect import windows
from benchmark.ops.registry import Params, register

if TYPE_CHECKING:
    from benchmark.models import clip


class QualityCheck(Params):
    detector: bool = Field(
        True, description="(a) reject if the removed object is still found (or a painted one not)"
    )
    detector_model: DetectorModel = Field(
        None, description="YOLO model yaml, or allowed weights (--allow-weights); default: track's"
    )
    detector_conf: float = Field(0.25, gt=0, lt=1, description="(a) confidence that counts")
    imgsz: int = Field(640, ge=32, description="(a) detector inference size")
    clip: bool = Field(True, description="(b) reject unless the reference CLIP prefers the edit")
    clip_margin: float = Field(0.0, description="(b) new-caption score must beat old by this")
    noise: int = Field(24, ge=0, le=255, description="(c) pixel change (0-255) that is noise")
    min_changed: float = Field(
        0.002, ge=0, le=1, description="(c) reject if fewer pixels than this fraction changed"
    )
    batch_size: int = Field(64, ge=1)


def _cost(p: QualityCheck, device: str) -> float:
    """The detector pass dominates (see ``detect``); CLIP and pixel checks are cheap."""
    per_image = (p.imgsz / 320) ** 2 / 36 if p.detector else 0.0
    return (per_image + 0.002) if device == "cpu" else (per_image + 0.002) / 20


def _changed(a: np.ndarray, b: np.ndarray, noise: int) -> float:
    if a.shape != b.shape:
        return 1.0
    return float((np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > noise).mean())


@register(
    "quality_check",
    "filter",
    QualityCheck,
    reads=(UID, IMAGE, CAPTION, PARENT_UID, PARENT_IMAGE, REMOVED, PARENT_CAPTION),
    device=True,
    cost=_cost,
    isolate=True,
)
def quality_check(table: pa.Table, p: QualityCheck, ctx: StepContext) -> pa.Table:
    """Drop generated rows (those with a ``parent_uid``) whose edit fails any enabled check:
    (a) the detector still finds the removed object in the edited image, or does not find the
    one ``repaint`` painted in its place (``added``); (b) the reference CLIP scores the edited
    image higher with the parent's caption than with the edited one, i.e. the caption edit does
    not describe the image edit; (c) fewer than ``min_changed`` of the pixels
    changed by more than ``noise``, i.e. nothing visible was removed (against the parent's
    image the generate step wrote in ``parent_image``). Originals are kept. Counts of each
    rejection reason go to the step's record (a row can fail several). Every check reads the
    row alone; the models' batches are the generated rows in each ``batch_size`` rows."""
    ctx.require(table, UID, IMAGE, CAPTION, PARENT_UID, PARENT_IMAGE, REMOVED, PARENT_CAPTION)
    generated = [v is not None for v in table.column(PARENT_UID).to_pylist()]
    todo = np.flatnonzero(generated)
    parent_images = table.column(PARENT_IMAGE).to_pylist()
    removed = table.column(REMOVED).to_pylist()
    added = (
        table.column(ADDED).to_pylist() if ADDED in table.column_names else [None] * table.num_rows
    )
    captions = table.column(CAPTION).to_pylist()
    old = table.column(PARENT_CAPTION).to_pylist()
    reasons: Counter[str] = Counter()
    bad = np.zeros(table.num_rows, dtype=bool)
    detector = bundle = None
    if p.detector and len(todo):
        from benchmark.models.detector import Detector

        if p.detector_model is None and ctx.detector is None:
            raise ctx.fail("the track has no detector; name one with 'detector_model'")
        model = p.detector_model if p.detector_model is not None else ctx.detector()
        # As in ``detect``: the track's detector is trusted, a recipe's only if allowed.
        allow = ctx.allow_weights if p.detector_model is not None else (model,)
        detector = Detector(model, device=ctx.device, imgsz=p.imgsz, allow=allow)
    if p.clip and len(todo):
        if ctx.reference is None:
            raise ctx.fail("the track has no reference model for the CLIP check; set clip: false")
        bundle: clip.ClipBundle = ctx.reference()
    for rows, images in windows(table, generated, p.batch_size, ctx):
        ok = [k for k, im in enumerate(images) if im is not None]
        for k, im in enumerate(images):
            if im is None:
                reasons["unreadable"] += 1
                bad[rows[k]] = True
        if not ok:
            continue
        edits = [images[k] for k in ok]
        if detector is not None:
            found = detector.detect(edits, conf=p.detector_conf, batch_size=p.batch_size)
            for k, dets in zip(ok, found, strict=True):
                labels = {d.label for d in dets}
                if removed[rows[k]] in labels:
                    reasons["still_detected"] += 1
                    bad[rows[k]] = True
                if added[rows[k]] is not None and added[rows[k]] not in labels:
                    reasons["added_not_detected"] += 1
                    bad[rows[k]] = True
        if bundle is not None:
            img = bundle.encode_images(edits, p.batch_size)
            new = bundle.encode_texts([captions[rows[k]] for k in ok])
            before = bundle.encode_texts([old[rows[k]] or "" for k in ok])
            margin = ((img * new).sum(dim=1) - (img * before).sum(dim=1)).numpy()
            for k, m in zip(ok, margin, strict=True):
                if m <= p.clip_margin:
                    reasons["clip_prefers_parent_caption"] += 1
                    bad[rows[k]] = True
        for k in ok:
            row = rows[k]
            parent_ref = parent_images[row]
            if parent_ref is None:
                reasons["parent_missing"] += 1
                bad[row] = True
                continue
            try:
                parent = np.asarray(ctx.reader.read_image(parent_ref))
            except (OSError, ValueError):
                reasons["parent_unreadable"] += 1
                bad[row] = True
                continue
            if _changed(parent, np.asarray(images[k]), p.noise) < p.min_changed:
                reasons["unchanged"] += 1
                bad[row] = True
    ctx.extra_costs["quality_check"] = {
        "checked": len(todo),
        "kept": len(todo) - int(bad.sum()),
        "rejected": dict(sorted(reasons.items())),
    }
    return table.filter(pa.array(~bad))
