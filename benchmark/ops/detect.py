"""Find the objects a caption names in its image: the first step of a counterfactual edit."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from PIL import Image
from pydantic import Field

from benchmark.columns import DETECTIONS, IMAGE, KEYWORDS
from benchmark.models.trust import DetectorModel
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register

DETECTION = pa.struct(
    [
        ("label", pa.string()),
        ("x0", pa.float32()),
        ("y0", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("confidence", pa.float32()),
        ("polygon", pa.list_(pa.float32())),  # x0, y0, x1, y1, ... for segmentation models
    ]
)


class Detect(Params):
    model: DetectorModel = Field(
        None,
        description="YOLO model yaml (random init), or weights the user allowed "
        "(--allow-weights); default: track's",
    )
    classes: dict[str, str] = Field(
        {}, description="detector class name -> caption keyword, where the two differ"
    )
    conf: float = Field(0.25, gt=0, lt=1, description="minimum detection confidence")
    min_area: float = Field(0.0, ge=0, le=1, description="minimum box area / image area")
    max_area: float = Field(0.9, gt=0, le=1, description="maximum box area / image area")
    max_objects: int = Field(
        50, ge=1, description="most confident kept detections per image (a cap also hides repeats)"
    )
    imgsz: int = Field(640, ge=32, description="inference size (multiple of 32)")
    batch_size: int = Field(32, ge=1)


def _cost(p: Detect, device: str) -> float:
    """Measured YOLOv8n: ~36 img/s at 320 px on 2 CPU cores; a GPU runs ~20x that."""
    per_image = (p.imgsz / 320) ** 2 / 36
    return per_image if device == "cpu" else per_image / 20


@register(
    "detect",
    "score",
    Detect,
    reads=(IMAGE, KEYWORDS),
    writes=(DETECTIONS,),
    device=True,
    cost=_cost,
    isolate=True,
)
def detect(table: pa.Table, p: Detect, ctx: StepContext) -> pa.Table:
    """Run a YOLO detector (ultralytics; detection or segmentation weights) on the samples whose
    caption names an object (the ``keywords`` column), and keep the detections whose class is
    one of that caption's keywords: boxes (and polygons) in image pixels, as list column
    ``detections``. Only named objects matter: an edit must remove something the caption says,
    or caption and image stop agreeing in ways the edit did not intend. Samples without keywords
    get null (not run), unreadable images an empty list. The detector's batches are the rows
    with keywords in each ``batch_size`` rows of the table, so a split of the table at
    multiples of ``batch_size`` runs the same batches."""
    from benchmark.models.detector import Detector

    ctx.require(table, IMAGE, KEYWORDS)
    if p.model is None and ctx.detector is None:
        raise ctx.fail("the track has no detector; name one with 'model'")
    model = p.model if p.model is not None else ctx.detector()
    # The track's detector is the benchmark's own; a recipe's loads only if the user allowed it.
    allow = ctx.allow_weights if p.model is not None else (model,)
    detector = Detector(model, device=ctx.device, imgsz=p.imgsz, allow=allow)
    keywords = table.column(KEYWORDS).to_pylist()
    out: list[list[dict] | None] = [None] * table.num_rows
    for idx, images in windows(table, keywords, p.batch_size, ctx):
        ok = [k for k, im in enumerate(images) if im is not None]
        found = detector.detect([images[k] for k in ok], conf=p.conf, batch_size=p.batch_size)
        for k in range(len(images)):
            out[idx[k]] = []
        for k, dets in zip(ok, found, strict=True):
            row = idx[k]
            area = images[k].width * images[k].height
            wanted = set(keywords[row])
            for d in dets:
                label = p.classes.get(d.label, d.label)
                x0, y0, x1, y1 = d.box
                if label not in wanted or not p.min_area <= (x1 - x0) * (y1 - y0) / area <= (
                    p.max_area
                ):
                    continue
                polygon = [float(v) for pt in d.polygon for v in pt] if d.polygon else None
                out[row].append(
                    {
                        "label": label,
                        "x0": x0,
                        "y0": y0,
                        "x1": x1,
                        "y1": y1,
                        "confidence": d.confidence,
                        "polygon": polygon,
                    }
                )
    out = [None if dets is None else dets[: p.max_objects] for dets in out]
    return table.append_column(DETECTIONS, pa.array(out, pa.list_(DETECTION)))


def windows(
    table: pa.Table, wanted: list, batch_size: int, ctx: StepContext
) -> Iterator[tuple[list[int], list[Image.Image | None]]]:
    """Row indices and images of the rows with a truthy ``wanted``, window by window of
    ``batch_size`` rows: which rows share a model batch depends only on their position, not on
    the rest of the table, so the row part gives one answer on any split at those multiples."""
    refs = table.select([IMAGE])
    for start in range(0, table.num_rows, batch_size):
        rows = [i for i in range(start, min(start + batch_size, table.num_rows)) if wanted[i]]
        if rows:
            for _, images in ctx.iter_images(refs.take(pa.array(rows, pa.int64())), batch_size):
                yield rows, images
