"""The embedded `shapes` pool: a seeded image-text pool with web-like defects at known rates.

Each defect is recorded in the hidden ``gt_defect`` column, so a run report can say how well each
filter found it, while curation steps (which never see ``gt_`` columns) must find it on their own.
"""

from __future__ import annotations

import functools
import hashlib
import io
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator
from tqdm import tqdm

from benchmark.pools import PoolBuild, PoolParams, register
from benchmark.pools.shards import ShardWriter
from benchmark.spec.numbers import Seed
from benchmark.spec.strict import Strict
from benchmark.world import (
    CANVAS,
    TRANSLATIONS,
    Obj,
    Scene,
    describe,
    render,
    sample_objects,
    translate,
)

DEFECTS = ("mismatched", "junk", "non_english", "near_duplicate", "vague")
VAGUE = ("a picture", "an image", "image", "a photo", "untitled", "picture of something")


class Defects(Strict):
    """Fraction of the pool carrying each defect; the rest is clean."""

    mismatched: float = Field(0.0, ge=0, le=1, description="caption belongs to another image")
    junk: float = Field(0.0, ge=0, le=1, description="file- or camera-name text")
    non_english: float = Field(0.0, ge=0, le=1, description="caption in de/fr/es")
    near_duplicate: float = Field(0.0, ge=0, le=1, description="re-render of an earlier sample")
    vague: float = Field(0.0, ge=0, le=1, description="'a picture' and the like")

    @model_validator(mode="after")
    def _total(self) -> Defects:
        if sum(getattr(self, d) for d in DEFECTS) > 1:
            raise ValueError("defect rates add up to more than 1")
        return self


class ShapesPool(PoolParams):
    kind: Literal["shapes"] = "shapes"
    size: int = Field(20_000, ge=1, le=10_000_000)
    seed: Seed = 0
    image_size: int = Field(CANVAS, ge=16, le=512)
    max_objects: int = Field(3, ge=1, le=3)
    defects: Defects = Defects()
    shard_size: int = Field(10_000, ge=1)


def uid(seed: int, i: int) -> str:
    return hashlib.md5(f"shapes:{seed}:{i}".encode()).hexdigest()


def scene_of(seed: int, i: int, max_objects: int) -> tuple[tuple[Obj, ...], str]:
    """Sample i's true objects and caption: a pure function of (seed, i)."""
    rng = np.random.default_rng([seed, i, 0])
    objs = sample_objects(rng, int(rng.integers(1, max_objects + 1)))
    return objs, describe(objs, rng)


def _junk(rng: np.random.Generator) -> str:
    n = int(rng.integers(10_000))
    return (
        f"IMG_{n:04d}.JPG",
        f"DSC{n:05d}",
        f"photo_{2000 + n % 25}-{1 + n % 12:02d}-{1 + n % 28:02d}.jpg",
        f"Screenshot {n}",
        f"P{n:07d}.png",
    )[rng.integers(5)]


def _jitter(objs: tuple[Obj, ...], rng: np.random.Generator) -> tuple[Obj, ...]:
    return tuple(
        Obj(
            o.shape,
            o.colour,
            o.size,
            o.x + int(rng.integers(-1, 2)),
            o.y + int(rng.integers(-1, 2)),
        )
        for o in objs
    )


def _png(scene: Scene, size: int) -> bytes:
    buf = io.BytesIO()
    render(scene, size).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


_OBJECT = pa.struct(
    [("shape", pa.string()), ("colour", pa.string()), ("size", pa.string())]
    + [(k, pa.int32()) for k in ("x0", "y0", "x1", "y1")]
)


PARALLEL_MIN = 5_000  # below this, starting worker processes costs more than it saves
CHUNK = 500  # samples per task: large enough to amortise the hand-over, small for a fair split


Sample = tuple[bytes, str, str | None, list[dict]]  # PNG, caption, defect, object boxes


def _sample(p: ShapesPool, rates: np.ndarray, i: int) -> Sample:
    """Sample i (``rates``: the defects' cumulative rates): a pure function of (p, i), so any
    process makes the same bytes."""
    objs, caption = scene_of(p.seed, i, p.max_objects)
    rng = np.random.default_rng([p.seed, i, 1])
    u = rng.random()
    defect = DEFECTS[int(np.searchsorted(rates, u, side="right"))] if u < rates[-1] else None
    if defect == "mismatched":
        caption = describe(sample_objects(rng, int(rng.integers(1, p.max_objects + 1))), rng)
    elif defect == "junk":
        caption = _junk(rng)
    elif defect == "non_english":
        caption = translate(caption, list(TRANSLATIONS)[rng.integers(len(TRANSLATIONS))])
    elif defect == "vague":
        caption = VAGUE[rng.integers(len(VAGUE))]
    elif defect == "near_duplicate" and i > 0:
        objs, caption = scene_of(p.seed, int(rng.integers(i)), p.max_objects)
        objs = _jitter(objs, rng)
    elif defect == "near_duplicate":
        defect = None  # the first sample has nothing to duplicate
    scene = Scene(objs, noise_seed=int(rng.integers(2**31)))
    scale = p.image_size / CANVAS
    boxes = [
        {"shape": o.shape, "colour": o.colour, "size": o.size}
        | dict(zip(("x0", "y0", "x1", "y1"), (round(v * scale) for v in o.box), strict=True))
        for o in objs
    ]
    return _png(scene, p.image_size), caption, defect, boxes


def _samples(p: ShapesPool, indices: range) -> list[Sample]:
    rates = np.cumsum([getattr(p.defects, d) for d in DEFECTS])
    return [_sample(p, rates, i) for i in indices]


def _generated(p: ShapesPool) -> Iterator[list[Sample]]:
    """The samples in order, chunk by chunk; rendering (~2/3 of the build, one core each) runs
    in one spawned process per CPU for a large pool, and the shards are written here."""
    chunks = [range(s, min(s + CHUNK, p.size)) for s in range(0, p.size, CHUNK)]
    workers = min(len(os.sched_getaffinity(0)), len(chunks))
    if p.size < PARALLEL_MIN or workers < 2:
        yield from (_samples(p, c) for c in chunks)
        return
    # spawn: the caller may hold torch's threads, which a forked child would inherit locked
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
        yield from ex.map(functools.partial(_samples, p), chunks)


@register("shapes", ShapesPool)
def build(p: ShapesPool, out_dir: Path) -> PoolBuild:
    """Generate the pool into shards under ``out_dir``."""
    writer = ShardWriter(out_dir, prefix="shapes", maxcount=p.shard_size)
    cols: dict[str, list] = {k: [] for k in ("uid", "caption", "image", "gt_defect", "gt_objects")}
    bar = tqdm(total=p.size, desc="shapes pool", unit="img", mininterval=1.0)
    i = 0
    for chunk in _generated(p):
        for png, caption, defect, boxes in chunk:
            cols["image"].append(writer.write(f"{i:09d}", "png", png, txt=caption))
            cols["uid"].append(uid(p.seed, i))
            cols["caption"].append(caption)
            cols["gt_defect"].append(defect)
            cols["gt_objects"].append(boxes)
            i += 1
        bar.update(len(chunk))
    bar.close()
    writer.close()
    n = p.size
    table = pa.table(
        {
            "uid": pa.array(cols["uid"], pa.string()),
            "caption": pa.array(cols["caption"], pa.string()),
            "image": pa.array(cols["image"], pa.string()),
            "width": pa.array(np.full(n, p.image_size, np.int32)),
            "height": pa.array(np.full(n, p.image_size, np.int32)),
            "source": pa.array(["shapes"] * n, pa.string()),
            "gt_defect": pa.array(cols["gt_defect"], pa.string()),
            "gt_objects": pa.array(cols["gt_objects"], pa.list_(_OBJECT)),
        }
    )
    return PoolBuild(table)
