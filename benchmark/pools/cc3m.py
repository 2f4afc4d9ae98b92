"""CC3M as a pool, from img2dataset's webdataset output (``NNNNN.tar`` + ``NNNNN.parquet``).

A sample's uid hashes its URL (from the ``json`` member), so the same CC3M pair gets the same uid
however img2dataset sharded it. Each shard's parquet lists what img2dataset wrote, which is how a
truncated tar's loss is counted exactly rather than guessed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from tqdm import tqdm

from benchmark.pools import PoolBuild, PoolParams, register
from benchmark.pools.byod import TarSamples, add_tar_sample
from benchmark.pools.images import PoolRows
from benchmark.pools.shards import ShardWriter
from benchmark.spec.paths import DataDir

SOURCE = "cc3m"


class Cc3mPool(PoolParams):
    kind: Literal["cc3m"] = "cc3m"
    root: DataDir = Field(description="img2dataset --output_format webdataset output folder")
    shard_size: int = Field(10_000, ge=1)


def _url(members: dict[str, bytes]) -> str | None:
    try:
        url = json.loads(members["json"]).get("url")
    except (KeyError, ValueError, AttributeError):
        return None
    return url if isinstance(url, str) and url else None


def _written(tar: Path) -> set[str] | None:
    """Keys img2dataset reports as written into ``tar``, or None without a readable parquet."""
    try:
        t = pq.read_table(tar.with_suffix(".parquet"), columns=["key", "status"])
    except (OSError, ValueError, pa.ArrowInvalid):
        return None
    return {k for k, s in zip(*(c.to_pylist() for c in t.columns), strict=True) if s == "success"}


@register("cc3m", Cc3mPool, columns=("image_group",))
def build(p: Cc3mPool, out_dir: Path) -> PoolBuild:
    """Copy the downloaded image bytes into the pool's shards; one row per (URL, caption)."""
    tars = sorted(p.root.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(
            f"no .tar shards in {p.root}: run `smallcomp pool download cc3m` (img2dataset) first"
        )
    rows = PoolRows({"image_group": pa.string()})
    writer = ShardWriter(out_dir, prefix="cc3m", maxcount=p.shard_size)
    n = 0
    for tar in tqdm(tars, desc="cc3m pool", unit="tar"):
        samples, seen = TarSamples(tar), set()
        for key, members in samples:
            seen.add(key)
            url = _url(members)
            native = url or f"{tar.name}/{key}"
            n += add_tar_sample(rows, writer, n, members, SOURCE, native)
        if samples.truncated:
            written = _written(tar)
            rows.skip("truncated_tar")
            rows.skip(
                "lost_in_truncated_tar",
                samples.partial if written is None else len(written - seen),
            )
    writer.close()
    return rows.build()
