"""DataComp's image-based filter: keep the pool's image clusters that the target classes fall in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from PIL import Image
from pydantic import Field

from benchmark.columns import EMBEDDING, IMAGE, WIDTH
from benchmark.evaluate.shapes import CLASSNAMES
from benchmark.models.trust import ClipModel, ClipWeights
from benchmark.ops.batching import kmeans
from benchmark.ops.context import StepContext
from benchmark.ops.embedding import bundle, image_embeddings
from benchmark.ops.registry import Params, register
from benchmark.spec.numbers import Seed
from benchmark.world import CANVAS, Obj, Scene, render, sample_objects

if TYPE_CHECKING:
    import torch

SHAPES_TARGETS = "shapes"
# Keeps the rendered targets apart from the eval suite's zero-shot scenes, which are drawn from
# (EVAL_SEED, 99, label, i): curating towards the test images themselves would be a leak.
TARGET_STREAM = 17


class ImageBased(Params):
    clusters: int = Field(100, ge=1, description="k-means clusters over the pool's images")
    targets: str = Field(
        SHAPES_TARGETS,
        min_length=1,
        description="'shapes' (render the shapes world's classes) or an ImageFolder directory "
        "<class>/<image> (e.g. ImageNet train) for real tracks",
    )
    per_class: int = Field(5, ge=1, le=10_000, description="target images per class")
    iterations: int = Field(25, ge=1, le=1000, description="k-means iterations")
    seed: Seed = Field(0, description="k-means start, rendered targets and folder subsampling")
    batch_size: int = Field(256, ge=1)
    model: ClipModel = Field(None, description="open_clip name or saved dir; default: track's")
    pretrained: ClipWeights = Field(None, description="safetensors path or open_clip tag")


def shapes_targets(per_class: int, seed: int, size: int) -> Iterator[Image.Image]:
    """``per_class`` clean one-object scenes of every zero-shot class (colour + shape), seeded."""
    for label, name in enumerate(CLASSNAMES):
        colour, shape = name.split()
        for i in range(per_class):
            rng = np.random.default_rng([seed, TARGET_STREAM, label, i])
            (o,) = sample_objects(rng, 1)
            scene = Scene((Obj(shape, colour, o.size, o.x, o.y),), int(rng.integers(2**31)))
            yield render(scene, size)


def folder_targets(root: Path, per_class: int, seed: int) -> Iterator[Image.Image]:
    """Up to ``per_class`` readable images from each ``<class>/`` folder (a seeded choice when a
    class has more), one at a time: ImageNet's train split does not fit in memory decoded.
    Unreadable files are skipped, as in the pool."""
    classes = sorted(d for d in root.iterdir() if d.is_dir())
    for label, d in enumerate(classes):
        files = sorted(f for f in d.iterdir() if f.is_file())
        rng = np.random.default_rng([seed, TARGET_STREAM, label])
        for k in sorted(rng.permutation(len(files))[:per_class]):
            try:
                with Image.open(files[k]) as im:
                    yield im.convert("RGB")
            except (OSError, ValueError, Image.DecompressionBombError):
                continue


def _pool_image_size(table: pa.Table) -> int:
    """Rendered targets take the pool's size so they pass through the same resize as its images."""
    if WIDTH in table.column_names and table.num_rows:
        return int(np.median(table.column(WIDTH).to_numpy(zero_copy_only=False)))
    return CANVAS


def centroids(x: torch.Tensor, labels: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """(cluster ids that have members, their mean embeddings)."""
    import torch

    ids, inverse = np.unique(labels, return_inverse=True)
    index = torch.from_numpy(inverse)
    sums = torch.zeros(len(ids), x.shape[1]).index_add_(0, index, x)
    counts = torch.bincount(index, minlength=len(ids)).unsqueeze(1)
    return ids, sums / counts


def nearest_centre(x: torch.Tensor, centres: torch.Tensor) -> np.ndarray:
    """Each row's centre by DataComp's rule (baselines/apply_filter.py, ``get_centroid_ids_gpu``):
    the largest inner product with the centroids as k-means left them, not normalised. Means of
    unit vectors are shorter the more spread their cluster, so this is not the nearest centre by
    distance: a tight cluster's long centroid wins rows that lie nearer a loose one."""
    return (x @ centres.T).argmax(dim=1).numpy()


@register(
    "image_based",
    "filter",
    ImageBased,
    reads=(IMAGE, WIDTH),
    uses=(EMBEDDING,),
    scope="table",
)
def image_based(table: pa.Table, p: ImageBased, ctx: StepContext) -> pa.Table:
    """DataComp's image-based filter (Gadre et al. 2023): cluster the pool's reference-CLIP image
    embeddings by k-means, embed images of the target classes, and keep the samples in every
    cluster that is the nearest cluster of at least one target image, so training images look
    like the concepts the evaluation asks about. As in DataComp, pool rows and targets are both
    assigned to the centroid with the largest inner product (``nearest_centre``), so a pool row
    can belong to another cluster than the one k-means gave it. Targets are ``shapes`` (clean
    renders of the shapes world's zero-shot classes, seeded apart from the eval scenes) or an
    ImageFolder directory (ImageNet's train split in DataComp). Unreadable images are dropped.
    Clusters kept go to the step's record. k-means is torch's, not faiss: a second OpenMP
    runtime in the process slows the training that follows several-fold. A global step: it
    reads an ``embedding`` column (``embed``) made by the same model, and embeds the images
    itself only without one."""
    import torch

    folder = None
    if p.targets != SHAPES_TARGETS:  # a wrong path fails before the pool is embedded
        folder = Path(os.path.expandvars(os.path.expanduser(p.targets)))
        if not folder.is_dir():
            raise ctx.fail(f"targets: no directory {folder} (want 'shapes' or <class>/<image>)")
    vectors = image_embeddings(table, ctx, p.model, p.pretrained, p.batch_size)
    readable = np.flatnonzero(~np.isnan(vectors).any(axis=1))
    keep = np.zeros(table.num_rows, dtype=bool)
    record = {"clusters": 0, "clusters_kept": 0, "target_images": 0}
    if len(readable):
        x = torch.from_numpy(vectors[readable])
        labels = kmeans(x, p.clusters, p.iterations, p.seed)
        ids, centres = centroids(x, labels)
        images = (
            shapes_targets(p.per_class, p.seed, _pool_image_size(table))
            if folder is None
            else folder_targets(folder, p.per_class, p.seed)
        )
        targets = bundle(p.model, p.pretrained, ctx).encode_images(images, p.batch_size)
        if not len(targets):
            raise ctx.fail(f"targets: no readable images in <class>/ folders under {folder}")
        kept = np.unique(nearest_centre(targets, centres))
        keep[readable[np.isin(nearest_centre(x, centres), kept)]] = True
        record = {"clusters": len(ids), "clusters_kept": len(kept), "target_images": len(targets)}
    ctx.extra_costs["image_based"] = record
    return table.filter(pa.array(keep))
