"""Flickr8k / Flickr30k as a pool, from the official token file (``<name>.jpg#<k>\\t<caption>``).

One row per (image, caption); the captions of an image share one shard member and an
``image_group`` (the file name), which is also the native id the contamination check matches.
Flickr30k's test images are a retrieval eval set, so ``split_file`` can keep a pool to the
official training list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
from pydantic import Field
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


class FlickrPool(PoolParams):
    kind: Literal["flickr"] = "flickr"
    root: DataDir = Field(description="the dataset's directory; the paths below are inside it")
    captions: str = Field("captions.txt", description="token file, relative to root")
    images: str = Field("Images", description="image directory, relative to root")
    split_file: str | None = Field(
        None, description="only the images named in this file (one per line), relative to root"
    )
    source: str = "flickr8k"
    shard_size: int = Field(10_000, ge=1)


def _parse(line: bytes) -> tuple[str, str, str]:
    """``(image name, caption index, caption)`` of one token-file line; a name that is not
    UTF-8 makes the line malformed (a replacement character would name no file)."""
    key, tab, caption = line.partition(b"\t")
    try:
        name, hash_, index = key.decode("utf-8").strip().rpartition("#")
    except UnicodeDecodeError:
        raise Rejected("malformed_line") from None
    if not tab or not hash_ or not name or not index.isdigit():
        raise Rejected("malformed_line")
    return name, index, check_caption(caption)


def _captions(token_file: Path, rows: PoolRows) -> dict[str, list[tuple[str, str]]]:
    """Captions per image name, in file order; captions are small, images are never held."""
    by_image: dict[str, list[tuple[str, str]]] = {}
    with token_file.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                name, index, caption = _parse(line.rstrip(b"\r\n"))
            except Rejected as r:
                rows.skip(r.reason)
                continue
            by_image.setdefault(name, []).append((index, caption))
    return by_image


@register("flickr", FlickrPool, columns=("image_group",))
def build(p: FlickrPool, out_dir: Path) -> PoolBuild:
    """Copy each captioned image's bytes into shards once; one row per caption."""
    token_file = p.root / p.captions
    if not token_file.is_file():
        raise FileNotFoundError(f"{token_file} not found: the Flickr token file")
    rows = PoolRows({"image_group": pa.string()})
    by_image = _captions(token_file, rows)
    if p.split_file is not None:
        keep = set((p.root / p.split_file).read_text(encoding="utf-8").split())
        by_image = {name: caps for name, caps in by_image.items() if name in keep}
    writer = ShardWriter(out_dir, prefix="flickr", maxcount=p.shard_size)
    for n, (name, caps) in enumerate(tqdm(by_image.items(), desc=f"{p.source} pool", unit="img")):
        try:
            image = store_image(writer, f"{n:09d}", read_image_file(p.root / p.images / name))
        except Rejected as r:
            rows.skip(r.reason, len(caps))
            continue
        for index, caption in caps:
            rows.add(sample_uid(p.source, name, index), caption, image, p.source, image_group=name)
    writer.close()
    return rows.build()
