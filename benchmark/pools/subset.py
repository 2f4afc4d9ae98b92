"""A fixed, seeded subset of a pool's images with all of each image's captions: the smaller
setting a track can name (COCO's 30k-image fine-tuning pool) without a pool adapter of its own.

An image is a pool ``image`` reference (the captions of one picture share one). The subset is
drawn after the eval images leave the pool, so it holds exactly the images asked for, and it is
ranked by a hash of the seed and each image's smallest uid: uids come from the source's own ids,
so the same seed names the same images whatever shard size, executor or numpy version built the
pool, and a smaller subset of one seed is part of every larger one. The pool report names the
result by its uid hash.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from benchmark.spec.numbers import Seed
from benchmark.spec.strict import Strict


class ImageSubset(Strict):
    images: int = Field(gt=0, description="images to keep, each with all its captions")
    seed: Seed = Field(0, description="which images: one seed always draws the same ones")


def _rank(seed: int, uid: str) -> str:
    return hashlib.sha256(f"{seed}:{uid}".encode()).hexdigest()


def subset_images(table: pa.Table, subset: ImageSubset) -> pa.Table:
    """The rows of ``subset.images`` images of ``table``, in the table's order; asking for more
    images than the pool holds is an error, not a smaller pool."""
    first: dict[str, str] = {}  # image reference -> its smallest uid
    for uid, ref in zip(
        table.column("uid").to_pylist(), table.column("image").to_pylist(), strict=True
    ):
        if ref not in first or uid < first[ref]:
            first[ref] = uid
    if subset.images > len(first):
        raise ValueError(
            f"pool subset: {subset.images} images asked for, but the pool holds {len(first)}"
        )
    chosen = sorted(first, key=lambda ref: _rank(subset.seed, first[ref]))[: subset.images]
    return table.filter(pc.is_in(table.column("image"), value_set=pa.array(chosen)))
