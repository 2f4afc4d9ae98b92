"""COCO 2017 captions as a pool: one row per (image, caption), from train2017 only.

val2017 holds the images of the evaluation suite (SugarCrepe, COCO retrieval), so it is refused by
name rather than left to the contamination check. The five captions of an image share one shard
member and an ``image_group``, so samplers and dedup can tell they show the same picture.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field, field_validator
from tqdm import tqdm

from benchmark.pools import PoolBuild, PoolParams, register
from benchmark.pools.images import (
    PoolRows,
    Rejected,
    check_caption,
    read_image_file,
    sample_uid,
    store_image,
)
from benchmark.pools.shards import ShardWriter

SOURCE = "coco"
_OBJECT = pa.struct([("category", pa.string()), ("bbox", pa.list_(pa.float64()))])


class CocoPool(PoolParams):
    kind: Literal["coco"] = "coco"
    root: Path = Field(description="directory with annotations/ and train2017/ (official layout)")
    split: str = "train2017"
    shard_size: int = Field(10_000, ge=1)

    @field_validator("split")
    @classmethod
    def _train_only(cls, split: str) -> str:
        if split != "train2017":
            raise ValueError(
                f"split {split!r} cannot be a pool: only train2017 may enter one, because "
                "val2017 holds the evaluation images (SugarCrepe, COCO retrieval)"
            )
        return split


def _objects(instances: Path) -> dict[int, list[dict]]:
    """Per image id, its annotated objects with category names (hidden ground truth)."""
    data = json.loads(instances.read_text(encoding="utf-8"))
    names = {c["id"]: c["name"] for c in data["categories"]}
    objects: dict[int, list[dict]] = defaultdict(list)
    for a in data["annotations"]:
        objects[a["image_id"]].append(
            {"category": names[a["category_id"]], "bbox": [float(v) for v in a["bbox"]]}
        )
    return objects


@register("coco", CocoPool)
def build(p: CocoPool, out_dir: Path) -> PoolBuild:
    """Copy train2017 JPEGs unchanged into shards; captions and objects come from the JSONs."""
    ann_dir = p.root / "annotations"
    captions_file = ann_dir / f"captions_{p.split}.json"
    if not captions_file.is_file():
        raise FileNotFoundError(f"{captions_file} not found: is {p.root} a COCO 2017 root?")
    data = json.loads(captions_file.read_text(encoding="utf-8"))
    captions: dict[int, list[dict]] = defaultdict(list)
    for a in data["annotations"]:
        captions[a["image_id"]].append(a)
    instances = ann_dir / f"instances_{p.split}.json"
    objects = _objects(instances) if instances.is_file() else None

    extra = {"image_group": pa.string()} | (
        {"gt_objects": pa.list_(_OBJECT)} if objects is not None else {}
    )
    rows = PoolRows(extra)
    writer = ShardWriter(out_dir, prefix="coco", maxcount=p.shard_size)
    for info in tqdm(data["images"], desc="coco pool", unit="img", mininterval=1.0):
        image_id = info["id"]
        anns = captions.pop(image_id, [])
        if not anns:
            continue
        try:
            raw = read_image_file(p.root / p.split / info["file_name"])
            image = store_image(writer, f"{image_id:012d}", raw)
        except Rejected as r:
            rows.skip(r.reason, len(anns))
            continue
        group = {"image_group": str(image_id)}
        if objects is not None:
            group["gt_objects"] = objects.get(image_id, [])
        for a in anns:
            try:
                caption = check_caption(a["caption"])
            except Rejected as r:
                rows.skip(r.reason)
                continue
            rows.add(sample_uid(SOURCE, str(image_id), a["id"]), caption, image, SOURCE, **group)
    writer.close()
    rows.skip("missing_image", sum(len(anns) for anns in captions.values()))
    return rows.build()
