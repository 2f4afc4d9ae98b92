"""Counterfactual images: remove one detected, caption-named object from a sample's image
(``inpaint``), or paint an object of another category in its place (``repaint``)."""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable
from typing import Literal

import pyarrow as pa
from pydantic import Field, model_validator
from tqdm import tqdm

from benchmark.columns import (
    ADDED,
    CAPTION,
    DETECTIONS,
    EDIT_BOX,
    GENERATOR,
    HEIGHT,
    IMAGE,
    PARENT_IMAGE,
    PARENT_UID,
    REMOVED,
    SOURCE,
    UID,
    WIDTH,
)
from benchmark.models.trust import PipelineModel
from benchmark.ops.context import StepContext
from benchmark.ops.generated import GeneratedStore, row_key
from benchmark.ops.registry import Params, register
from benchmark.spec.numbers import Seed
from benchmark.store import digest
from benchmark.text.seeding import sample_rng
from benchmark.text.vocabulary import categories, vocabulary

# The columns only generated rows have (null in the originals): what ``quality_check`` and the
# ``paired`` sampler read. ``parent_image`` lets a check compare an edit with its parent within
# the row, wherever the parent row is.
GENERATED = {
    PARENT_UID: pa.string(),
    GENERATOR: pa.string(),
    REMOVED: pa.string(),
    ADDED: pa.string(),
    EDIT_BOX: pa.list_(pa.float32()),
    PARENT_IMAGE: pa.string(),
}


class _Painting(Params):
    """What every fill shares: the diffusion settings, the mask, batching and the seed."""

    model: PipelineModel = Field(
        None, description="diffusion: hub id or local pipeline directory (safetensors)"
    )
    steps: int = Field(30, ge=1, description="diffusion: denoising steps")
    guidance: float = Field(7.5, ge=0, description="diffusion: classifier-free guidance")
    strength: float = Field(1.0, gt=0, le=1, description="diffusion: noise strength")
    resolution: int = Field(512, ge=64, description="diffusion: working resolution")
    dtype: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="diffusion: precision")
    mask: Literal["box", "polygon"] = Field(
        "box", description="mask from detection boxes, or from segmentation polygons"
    )
    dilate: int = Field(2, ge=0, description="grow the mask by this many pixels")
    per_sample: int = Field(1, ge=1, le=4, description="edits per sample (different objects)")
    batch_size: int = Field(8, ge=1)
    chunk_size: int = Field(256, ge=1, description="edits per stored chunk (resume granularity)")
    seed: Seed = 0


class Inpaint(_Painting):
    backend: Literal["classical", "diffusion"] = Field(
        "classical", description="OpenCV fill (no weights, CPU) or a diffusers pipeline"
    )
    method: Literal["telea", "ns"] = Field("telea", description="classical: OpenCV's algorithm")
    radius: int = Field(3, ge=1, description="classical: neighbourhood radius in pixels")
    prompt: str = Field("", description="diffusion: text prompt for the fill (e.g. 'background')")


class Repaint(_Painting):
    backend: Literal["diffusion", "shapes"] = Field(
        "diffusion", description="a diffusers pipeline, or the shapes world's renderer (CPU)"
    )
    vocabulary: Literal["coco", "shapes"] = Field(
        "coco", description="the categories a replaced object may become: COCO's 80, or shapes"
    )
    into: list[str] | None = Field(
        None, description="only these categories (default: all the vocabulary's)"
    )
    variants: int = Field(
        1, ge=1, le=8, description="edits per object, each painting a different category"
    )
    prompt: str = Field(
        "a photo of a {object}", description="diffusion: prompt; {object} is the new category"
    )

    @model_validator(mode="after")
    def _paintable(self) -> Repaint:
        known = vocabulary(self.vocabulary).categories
        unknown = sorted(set(self.into or ()) - set(known))
        if unknown:
            raise ValueError(f"'into' names {unknown}, not in the {self.vocabulary} vocabulary")
        if self.backend == "shapes" and self.vocabulary != "shapes":
            raise ValueError("backend 'shapes' paints shapes: set vocabulary: shapes")
        return self


def _cost(p: Inpaint | Repaint, device: str) -> float:
    """Measured per edit: OpenCV's fill and the shapes painter cost milliseconds; a
    Stable-Diffusion-sized UNet step ~1 s on a CPU core pair at 512 px and ~0.02 s per image on
    one H100 in bf16 (benchmarks/)."""
    edits = p.per_sample * (p.variants if isinstance(p, Repaint) else 1)
    if p.backend in ("classical", "shapes"):
        return 0.002 * edits
    per_step = 1.0 if device == "cpu" else 0.02
    return per_step * p.steps * (p.resolution / 512) ** 2 * edits


def _inpainter(p: Inpaint | Repaint, ctx: StepContext):
    from benchmark.models import inpainter

    if p.backend == "classical":
        return inpainter.ClassicalInpainter(p.method, p.radius)
    if p.backend == "shapes":
        return inpainter.ShapesPainter(seed=p.seed)
    if p.model is None:
        raise ctx.fail("backend 'diffusion' needs 'model' (hub id or local pipeline directory)")
    return inpainter.DiffusionInpainter(
        p.model,
        steps=p.steps,
        guidance=p.guidance,
        strength=p.strength,
        seed=p.seed,
        resolution=p.resolution,
        dtype=p.dtype,
        device=ctx.device,
        batch_size=p.batch_size,
        prompt=p.prompt,
    )


def _replacement(p: Repaint) -> Callable[[str, str, str, set[str]], list[str]]:
    """What a replaced object becomes, ``variants`` times over: distinct categories of the
    vocabulary (or ``into``) that neither the image (by its detections) nor the caption has, so
    each edit's caption names each object once; drawn per (sample, object), seeded."""
    vocab = vocabulary(p.vocabulary)
    pool = tuple(p.into or vocab.categories)

    def choose(uid: str, label: str, caption: str, detected: set[str]) -> list[str]:
        taken = detected | set(categories(caption or "", vocab)) | {label}
        options = [c for c in pool if c not in taken]
        rng = sample_rng(uid, p.seed, zlib.crc32(label.encode()))
        return [options[k] for k in rng.permutation(len(options))[: p.variants]]

    return choose


def _plans(table: pa.Table, p: Inpaint | Repaint, step_hash: str) -> list[dict]:
    """One planned edit per (sample, object): only objects detected exactly once, since "the dog"
    is only gone when there was one dog; which objects, seeded by uid, not by row order. For
    ``repaint``, one edit per category painted in the object's place."""
    replace = _replacement(p) if isinstance(p, Repaint) else None
    plans = []
    columns = (UID, IMAGE, CAPTION, SOURCE, DETECTIONS)
    rows = zip(*(table.column(c).to_pylist() for c in columns), strict=True)
    parents = table.column(PARENT_UID).to_pylist() if PARENT_UID in table.column_names else None
    for i, (uid, image, caption, source, dets) in enumerate(rows):
        if not dets or (parents and parents[i] is not None):
            continue
        counts: dict[str, int] = {}
        for d in dets:
            counts[d["label"]] = counts.get(d["label"], 0) + 1
        single = sorted(label for label, n in counts.items() if n == 1)
        chosen = sample_rng(uid, p.seed).permutation(len(single))[: p.per_sample]
        for k in chosen:
            label = single[k]
            det = next(d for d in dets if d["label"] == label)
            box = [det[c] for c in ("x0", "y0", "x1", "y1")]
            for new in replace(uid, label, caption, set(counts)) if replace else [None]:
                inputs = json.dumps([image, label, box, det["polygon"], *([new] if new else [])])
                plans.append(
                    {
                        "key": row_key(step_hash, uid, inputs),
                        "parent_uid": uid,
                        "image": image,
                        "caption": caption,
                        "source": source,
                        "label": label,
                        "new": new,
                        "box": box,
                        "polygon": det["polygon"],
                    }
                )
    return plans


def _generate(
    plans: list[dict], p: Inpaint | Repaint, ctx: StepContext, store: GeneratedStore
) -> int:
    """Edit the planned images missing from the store, chunk by chunk; returns how many."""
    from benchmark.models.inpainter import mask_from_boxes, mask_from_polygons

    engine = _inpainter(p, ctx)
    bar = tqdm(total=len(plans), desc=ctx.name, unit="edit", leave=False, mininterval=1.0)
    made = 0
    for start in range(0, len(plans), p.chunk_size):
        chunk = plans[start : start + p.chunk_size]
        images, masks, kept = [], [], []
        for plan in chunk:
            try:
                im = ctx.reader.read_image(plan["image"])
            except (OSError, ValueError):
                continue  # unreadable parents make no edit (counted by the caller)
            if p.mask == "polygon" and plan["polygon"]:
                pts = plan["polygon"]
                mask = mask_from_polygons(im.size, [pts], p.dilate)
            else:
                mask = mask_from_boxes(im.size, [plan["box"]], p.dilate)
            images.append(im)
            masks.append(mask)
            kept.append(plan)
        objects = [plan["new"] for plan in kept] if isinstance(p, Repaint) else None
        edited = engine.inpaint(images, masks, objects) if images else []
        rows = []
        for plan, im in zip(kept, edited, strict=True):
            buf = io.BytesIO()
            im.save(buf, format="PNG", compress_level=1)
            rows.append((plan["key"], buf.getvalue(), im.width, im.height, "{}"))
        if rows:
            store.write(rows)
        made += len(rows)
        ctx.samples_processed += len(chunk)
        bar.update(len(chunk))
    bar.close()
    return made


def _edit(table: pa.Table, p: Inpaint | Repaint, ctx: StepContext, op: str) -> pa.Table:
    """Plan, generate what the store lacks, and return one new row per stored edit (only the
    new rows: ``registry.append_generated`` puts them after the whole input). Each row's edit
    depends on that row alone, and batches that run at once share the store safely."""
    ctx.require(table, UID, IMAGE, CAPTION, DETECTIONS)
    if ctx.store_root is None:
        raise ctx.fail("needs a run store to keep generated images in")
    if SOURCE not in table.column_names:
        table = table.append_column(SOURCE, pa.nulls(table.num_rows, pa.string()))
    identity = p.model_dump(exclude={"batch_size", "chunk_size"})
    step_hash = digest({"op": op, "params": identity})
    store = GeneratedStore(ctx.store_root, step_hash)
    plans = _plans(table, p, step_hash)
    have = store.done()
    missing = [plan for plan in plans if plan["key"] not in have]
    made = _generate(missing, p, ctx, store) if missing else 0
    if made:
        have = store.done()
    ctx.extra_costs["edits"] = {
        "planned": len(plans),
        "generated": made,
        "reused": len(plans) - len(missing),
        "unreadable": len(missing) - made,
        "store": str(store.rel),
    }
    plans = [plan for plan in plans if plan["key"] in have]
    generator = f"{op}/{p.backend}"
    return pa.table(
        {
            UID: pa.array([x["key"] for x in plans], pa.string()),
            CAPTION: pa.array([x["caption"] for x in plans], pa.string()),
            IMAGE: pa.array([have[x["key"]]["image"] for x in plans], pa.string()),
            WIDTH: pa.array([have[x["key"]]["width"] for x in plans], pa.int32()),
            HEIGHT: pa.array([have[x["key"]]["height"] for x in plans], pa.int32()),
            SOURCE: pa.array([x["source"] for x in plans], pa.string()),
            PARENT_UID: pa.array([x["parent_uid"] for x in plans], GENERATED[PARENT_UID]),
            GENERATOR: pa.array([generator] * len(plans), GENERATED[GENERATOR]),
            REMOVED: pa.array([x["label"] for x in plans], GENERATED[REMOVED]),
            ADDED: pa.array([x["new"] for x in plans], GENERATED[ADDED]),
            EDIT_BOX: pa.array([x["box"] for x in plans], GENERATED[EDIT_BOX]),
            PARENT_IMAGE: pa.array([x["image"] for x in plans], GENERATED[PARENT_IMAGE]),
        }
    )


@register(
    "inpaint",
    "generate",
    Inpaint,
    reads=(UID, IMAGE, CAPTION, DETECTIONS),
    writes=tuple(GENERATED),
    device=True,
    cost=_cost,
    isolate=True,
)
def inpaint(table: pa.Table, p: Inpaint, ctx: StepContext) -> pa.Table:
    """For each sample with detections (from ``detect``), remove one object it names by
    inpainting its (dilated) box or polygon, and add the edit as a new row: ``parent_uid``,
    ``parent_image``, ``generator``, ``removed`` (the object's category; ``edit_caption``
    rewrites the caption next) and ``edit_box``. Originals stay. Edited images go to shards of
    their own under ``generated/<step hash>/``, keyed by parent uid and the edit's inputs, so
    generation resumes where it stopped, can be split across processes, and is never redone for
    unchanged inputs."""
    return _edit(table, p, ctx, "inpaint")


@register(
    "repaint",
    "generate",
    Repaint,
    reads=(UID, IMAGE, CAPTION, DETECTIONS),
    writes=tuple(GENERATED),
    device=True,
    cost=_cost,
    isolate=True,
)
def repaint(table: pa.Table, p: Repaint, ctx: StepContext) -> pa.Table:
    """Like ``inpaint``, but the object's box is painted with an object of another category
    that neither the image nor the caption has ("a dog on a couch" → a cat on the couch), named
    in ``added``; ``edit_caption`` then swaps the name. A removal pair differs in whether
    something is there; a replacement pair differs only in what it is, which is what
    replace-object probes (SugarCrepe's replace_obj) test. ``variants`` paints that many
    different categories, one edit each, so the ``paired`` sampler puts the original and all
    of them in one batch (with any ``inpaint`` edit): each must find its own caption among
    captions that differ in that one word."""
    return _edit(table, p, ctx, "repaint")
