"""Counterfactual images: remove one detected, caption-named object from a sample's image."""

from __future__ import annotations

import io
import json
from typing import Literal

import pyarrow as pa
from pydantic import Field
from tqdm import tqdm

from benchmark.ops.context import StepContext
from benchmark.ops.generated import GeneratedStore, row_key
from benchmark.ops.registry import Params, register
from benchmark.store import digest
from benchmark.text.seeding import sample_rng

GENERATED = {
    "parent_uid": pa.string(),
    "generator": pa.string(),
    "removed": pa.string(),
    "edit_box": pa.list_(pa.float32()),
}


class Inpaint(Params):
    backend: Literal["classical", "diffusion"] = Field(
        "classical", description="OpenCV fill (no weights, CPU) or a diffusers pipeline"
    )
    method: Literal["telea", "ns"] = Field("telea", description="classical: OpenCV's algorithm")
    radius: int = Field(3, ge=1, description="classical: neighbourhood radius in pixels")
    model: str | None = Field(None, description="diffusion: hub id or local pipeline directory")
    steps: int = Field(30, ge=1, description="diffusion: denoising steps")
    guidance: float = Field(7.5, ge=0, description="diffusion: classifier-free guidance")
    strength: float = Field(1.0, gt=0, le=1, description="diffusion: noise strength")
    resolution: int = Field(512, ge=64, description="diffusion: working resolution")
    dtype: Literal["fp32", "fp16", "bf16"] = Field("fp32", description="diffusion: precision")
    prompt: str = Field("", description="diffusion: text prompt for the fill (e.g. 'background')")
    mask: Literal["box", "polygon"] = Field(
        "box", description="mask from detection boxes, or from segmentation polygons"
    )
    dilate: int = Field(2, ge=0, description="grow the mask by this many pixels")
    per_sample: int = Field(1, ge=1, le=4, description="edits per sample (different objects)")
    batch_size: int = Field(8, ge=1)
    chunk_size: int = Field(256, ge=1, description="edits per stored chunk (resume granularity)")
    seed: int = 0


def _cost(p: Inpaint, device: str) -> float:
    """Measured: OpenCV's fill costs milliseconds; a Stable-Diffusion-sized UNet step ~1 s on a
    CPU core pair at 512 px and ~0.02 s per image on one H100 in bf16 (benchmarks/)."""
    if p.backend == "classical":
        return 0.002
    per_step = 1.0 if device == "cpu" else 0.02
    return per_step * p.steps * (p.resolution / 512) ** 2 * p.per_sample


def _inpainter(p: Inpaint, ctx: StepContext):
    from benchmark.models import inpainter

    if p.backend == "classical":
        return inpainter.ClassicalInpainter(p.method, p.radius)
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


def _plans(table: pa.Table, p: Inpaint, step_hash: str) -> list[dict]:
    """One planned edit per (sample, object): only objects detected exactly once, since "the dog"
    is only gone when there was one dog; which objects, seeded by uid, not by row order."""
    plans = []
    columns = ("uid", "image", "caption", "source", "detections")
    rows = zip(*(table.column(c).to_pylist() for c in columns), strict=True)
    parents = table.column("parent_uid").to_pylist() if "parent_uid" in table.column_names else None
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
            inputs = json.dumps([image, label, box, det["polygon"]])
            plans.append(
                {
                    "key": row_key(step_hash, uid, inputs),
                    "parent_uid": uid,
                    "image": image,
                    "caption": caption,
                    "source": source,
                    "label": label,
                    "box": box,
                    "polygon": det["polygon"],
                }
            )
    return plans


def _generate(plans: list[dict], p: Inpaint, ctx: StepContext, store: GeneratedStore) -> int:
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
        edited = engine.inpaint(images, masks) if images else []
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


@register("inpaint", "generate", Inpaint, cost=_cost, isolate=True)
def inpaint(table: pa.Table, p: Inpaint, ctx: StepContext) -> pa.Table:
    """For each sample with detections (from ``detect``), remove one object it names by
    inpainting its (dilated) box or polygon, and add the edit as a new row: ``parent_uid``,
    ``generator``, ``removed`` (the object's category; ``edit_caption`` rewrites the caption
    next) and ``edit_box``. Originals stay. Edited images go to shards of their own under
    ``generated/<step hash>/``, keyed by parent uid and the edit's inputs, so generation resumes
    where it stopped, can be split across processes, and is never redone for unchanged inputs."""
    ctx.require(table, "uid", "image", "caption", "detections")
    if ctx.store_root is None:
        raise ctx.fail("needs a run store to keep generated images in")
    if "source" not in table.column_names:
        table = table.append_column("source", pa.nulls(table.num_rows, pa.string()))
    identity = p.model_dump(exclude={"batch_size", "chunk_size"})
    step_hash = digest({"op": "inpaint", "params": identity})
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
    generator = f"inpaint/{p.backend}"
    new = pa.table(
        {
            "uid": pa.array([x["key"] for x in plans], pa.string()),
            "caption": pa.array([x["caption"] for x in plans], pa.string()),
            "image": pa.array([have[x["key"]]["image"] for x in plans], pa.string()),
            "width": pa.array([have[x["key"]]["width"] for x in plans], pa.int32()),
            "height": pa.array([have[x["key"]]["height"] for x in plans], pa.int32()),
            "source": pa.array([x["source"] for x in plans], pa.string()),
            "parent_uid": pa.array([x["parent_uid"] for x in plans], pa.string()),
            "generator": pa.array([generator] * len(plans), pa.string()),
            "removed": pa.array([x["label"] for x in plans], pa.string()),
            "edit_box": pa.array([x["box"] for x in plans], GENERATED["edit_box"]),
        }
    )
    for name, dtype in GENERATED.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, dtype))
    return pa.concat_tables([table, new], promote_options="permissive")
