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
from benchmark.spec.paths import DataDir

SOURCE = "coco"
_OBJECT = pa.struct([("category", pa.string()), ("bbox", pa.list_(pa.float64()))])


class CocoPool(PoolParams):
    kind: Literal["coco"] = "coco"
    root: DataDir = Field(
        description="directory with annotations/ and train2017/ (official layout)"
    )
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


def _load(path: Path, *lists: str) -> dict:
    """The JSON object at ``path``, which must hold the named lists.

    Bytes that are not UTF-8 are decoded to lone surrogates (``surrogateescape``) instead of
    failing the whole file, so only the captions holding them are rejected (``check_caption``).
    A file that is no JSON object with those lists is not a COCO file: an error naming it.
    """
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig", "surrogateescape"))
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in lists):
        raise ValueError(f"{path}: not a COCO annotation file (needs lists {', '.join(lists)})")
    return data


def _objects(instances: Path, rows: PoolRows) -> dict[int, list[dict]]:
    """Per image id, its annotated objects with category names (hidden ground truth); an
    annotation without an image id, a known category or a 4-number box is counted and left out."""
    data = _load(instances, "categories", "annotations")
    names = {c.get("id"): c.get("name") for c in data["categories"] if isinstance(c, dict)}
    objects: dict[int, list[dict]] = defaultdict(list)
    for a in data["annotations"]:
        try:
            image_id, name = a["image_id"], names[a["category_id"]]
            box = [float(v) for v in a["bbox"]]
            ok = isinstance(image_id, int) and isinstance(name, str) and len(box) == 4
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            rows.skip("malformed_object")  # the row stays; only this ground-truth box is lost
            continue
        objects[image_id].append({"category": name, "bbox": box})
    return objects


def _captions(data: dict, rows: PoolRows) -> dict[int, list[dict]]:
    """Caption annotations per image id; one without an int ``image_id`` or an ``id`` (what its
    uid is made of) cannot become a row and is counted as ``malformed_annotation``."""
    captions: dict[int, list[dict]] = defaultdict(list)
    for a in data["annotations"]:
        if (
            isinstance(a, dict)
            and isinstance(a.get("image_id"), int)
            and isinstance(a.get("id"), int | str)
        ):
            captions[a["image_id"]].append(a)
        else:
            rows.skip("malformed_annotation")
    return captions


def _caption(annotation: dict) -> str:
    if "caption" not in annotation:
        raise Rejected("missing_caption")
    return check_caption(annotation["caption"])


@register("coco", CocoPool, columns=("image_group",))
def build(p: CocoPool, out_dir: Path) -> PoolBuild:
    """Copy train2017 JPEGs unchanged into shards; captions and objects come from the JSONs."""
    ann_dir = p.root / "annotations"
    captions_file = ann_dir / f"captions_{p.split}.json"
    if not captions_file.is_file():
        raise FileNotFoundError(f"{captions_file} not found: is {p.root} a COCO 2017 root?")
    data = _load(captions_file, "images", "annotations")
    instances = ann_dir / f"instances_{p.split}.json"
    extra = {"image_group": pa.string()}
    if instances.is_file():
        extra["gt_objects"] = pa.list_(_OBJECT)
    rows = PoolRows(extra)
    captions = _captions(data, rows)
    objects = _objects(instances, rows) if instances.is_file() else None
    writer = ShardWriter(out_dir, prefix="coco", maxcount=p.shard_size)
    for info in tqdm(data["images"], desc="coco pool", unit="img", mininterval=1.0):
        if not (
            isinstance(info, dict)
            and isinstance(info.get("id"), int)
            and isinstance(info.get("file_name"), str)
        ):
            rows.skip("malformed_image_entry")  # its captions are counted as missing_image
            continue
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
                caption = _caption(a)
            except Rejected as r:
                rows.skip(r.reason)
                continue
            rows.add(sample_uid(SOURCE, str(image_id), a["id"]), caption, image, SOURCE, **group)
    writer.close()
    rows.skip("missing_image", sum(len(anns) for anns in captions.values()))
    return rows.build()
