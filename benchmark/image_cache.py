"""Curated images decoded once, at the model's resolution, into one memory-mapped uint8 array.

Decoding a PNG and resizing it every epoch cost more than a small model's step on two cores: the
training loop ran at 0.79x the bare step. The cache is a stage keyed by the images and the
transform, not the seed, so every seed of a curated set reads the same file. The tensors it gives
are bit for bit those the decode path gives (the same PIL resize, then the same ``/ 255`` and
normalization), so a run trains to the same weights whichever path fed it.

Past ``limit_bytes`` (``SMALLCOMP_IMAGE_CACHE_GB``, default 4; 0 turns the cache off) a track
keeps decoding from shards: photo tracks at 224 px need 150 KB per image.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torchvision import transforms
from tqdm import tqdm

from benchmark.pools.shards import ShardReader
from benchmark.store import Stage, Store, StoreError, digest, file_sha256

FILE = "images.npy"
DEFAULT_GB = 4.0


def limit_bytes() -> int:
    """The largest cache a run builds (the environment's ``SMALLCOMP_IMAGE_CACHE_GB``)."""
    text = os.environ.get("SMALLCOMP_IMAGE_CACHE_GB", str(DEFAULT_GB))
    try:
        gb = float(text)
    except ValueError:
        raise StoreError("images", f"SMALLCOMP_IMAGE_CACHE_GB={text!r} is not a number") from None
    return int(gb * 2**30)


def split(preprocess: transforms.Compose) -> tuple[Callable, transforms.Normalize]:
    """The model's transform cut where the image becomes a tensor: the PIL part runs once into
    the cache, the ``Normalize`` at the end runs per batch."""
    steps = list(preprocess.transforms)
    names = [type(t).__name__ for t in steps]
    at = next((i for i, n in enumerate(names) if n in ("ToTensor", "MaybeToTensor")), None)
    if at is None or at != len(steps) - 2 or not isinstance(steps[-1], transforms.Normalize):
        raise ValueError(f"no cacheable PIL part in this transform: {names}")
    return transforms.Compose(steps[:at]), steps[-1]


def _shape(pil_part: Callable, reader: ShardReader, first: str) -> tuple[int, ...]:
    return np.asarray(pil_part(reader.read_image(first)), dtype=np.uint8).shape


def _build(work: Path, refs: list[str], reader: ShardReader, pil_part: Callable, shape) -> None:
    out = np.lib.format.open_memmap(
        work / FILE, mode="w+", dtype=np.uint8, shape=(len(refs), *shape)
    )
    bad: list[str] = []
    for i, ref in enumerate(tqdm(refs, desc="image cache", unit="img", mininterval=1.0)):
        try:
            out[i] = np.asarray(pil_part(reader.read_image(ref)), dtype=np.uint8)
        except (OSError, ValueError):
            bad.append(ref)
    out.flush()
    del out
    if bad:  # the decode path would fail on these in training; say it now, naming them
        raise StoreError(
            "images",
            f"{len(bad):,} curated images do not decode (first: {bad[0]}); "
            f"damaged shards: {reader.damaged or 'none'}",
        )


def _drop_if_changed(stage: Stage) -> None:
    """The manifest checks sizes; a cache is read in place for hours, so its bytes are checked
    too (about a second per GB), and a cache that changed is removed to be rebuilt."""
    if (
        not stage.done
        or file_sha256(stage.path / FILE) == stage.manifest()["files"][FILE]["sha256"]
    ):
        return
    print(
        f"[images] rebuilding: {FILE} does not match its manifest's sha256  ({stage.path})",
        file=sys.stderr,
        flush=True,
    )
    shutil.rmtree(stage.path)


def ensure(
    store: Store, refs: list[str], preprocess: transforms.Compose
) -> tuple[np.ndarray, transforms.Normalize] | None:
    """The cached images of ``refs`` in table order (a read-only memory map) and the per-batch
    normalization, or None when the cache would pass the limit or the disk's free space."""
    pil_part, normalize = split(preprocess)
    if not refs:
        return None
    reader = ShardReader(store.root)
    try:
        shape = _shape(pil_part, reader, refs[0])
        need = len(refs) * int(np.prod(shape))
        store.root.mkdir(parents=True, exist_ok=True)
        if need > limit_bytes() or need > shutil.disk_usage(store.root).free // 2:
            return None
        stage = store.stage("images", {"images": digest(refs), "transform": repr(pil_part)})
        _drop_if_changed(stage)
        path = stage.ensure(lambda work: _build(work, refs, reader, pil_part, shape))
    finally:
        reader.close()
    return np.load(path / FILE, mmap_mode="r"), normalize


def batch(images: np.ndarray, rows: np.ndarray, normalize: transforms.Normalize) -> torch.Tensor:
    """Rows of the cache as the model's input: what ``preprocess`` gives, stacked."""
    x = torch.from_numpy(np.ascontiguousarray(images[rows])).permute(0, 3, 1, 2).contiguous()
    return normalize(x.to(torch.float32).div(255))
