"""Image embeddings under a reference CLIP, kept in one column that clustering, image-based
filtering and nearest-neighbour pairing all read, so a recipe pays for the image encoder once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import Field

from benchmark.columns import EMBEDDING, IMAGE
from benchmark.models.trust import ClipModel, ClipWeights
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register

if TYPE_CHECKING:
    from benchmark.models import clip

COLUMN = EMBEDDING
# Field metadata naming the model behind the column: a later step asking for another model must
# not silently reuse vectors from a different embedding space.
SOURCE_KEY = b"smallcomp.model"
REFERENCE = "reference"


class Embed(Params):
    model: ClipModel = Field(None, description="open_clip name or saved dir; default: track's")
    pretrained: ClipWeights = Field(None, description="safetensors path or open_clip tag")
    batch_size: int = Field(256, ge=1)


def source(model: str | None, pretrained: str | None) -> str:
    """How the column records its model: the track's reference, or the name and weights given."""
    return REFERENCE if model is None else f"{model}|{pretrained or ''}"


def bundle(model: str | None, pretrained: str | None, ctx: StepContext) -> clip.ClipBundle:
    """The model a step names, else the track's reference (built once per run, on first use)."""
    from benchmark.models import clip

    if model is not None:
        return clip.create(model, pretrained, ctx.device, ctx.allow_weights)
    if ctx.reference is None:
        raise ctx.fail("the track has no reference model; name one with 'model'")
    return ctx.reference()


def _made_by(table: pa.Table) -> str | None:
    """The model behind the table's ``embedding`` column (``source``), or None without one."""
    if COLUMN not in table.column_names:
        return None
    field = table.schema.field(COLUMN)
    return (field.metadata or {}).get(SOURCE_KEY, REFERENCE.encode()).decode()


def _from_column(table: pa.Table, ctx: StepContext) -> np.ndarray:
    lists = table.column(COLUMN).combine_chunks()
    valid = lists.is_valid().to_numpy(zero_copy_only=False)
    lengths = lists.value_lengths().to_numpy(zero_copy_only=False)[valid]
    dim = int(lengths[0]) if len(lengths) else 0
    if (lengths != dim).any():
        raise ctx.fail(f"column '{COLUMN}' holds vectors of different lengths")
    out = np.full((table.num_rows, dim), np.nan, dtype=np.float32)
    out[valid] = lists.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return out


def image_embeddings(
    table: pa.Table,
    ctx: StepContext,
    model: str | None = None,
    pretrained: str | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """(rows, dim) float32 L2-normalised image embeddings; a row whose image is unreadable is NaN.

    An ``embedding`` column made by the same model is used as is, so ``embed`` early in a recipe
    saves every later step the encoder pass. Rows that share an image reference (several
    captions of one photo) are encoded once.
    """
    if _made_by(table) == source(model, pretrained):
        return _from_column(table, ctx)
    ctx.require(table, IMAGE)
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=np.float32)
    encoder = bundle(model, pretrained, ctx)
    refs = table.column("image").to_pylist()
    slot = {r: k for k, r in enumerate(dict.fromkeys(refs))}
    unique = pa.table({"image": pa.array(list(slot), pa.string())})
    vectors = np.full((len(slot), encoder.embed_dim), np.nan, dtype=np.float32)
    for idx, images in ctx.iter_images(unique, batch_size):
        ok = [k for k, im in enumerate(images) if im is not None]
        if ok:
            encoded = encoder.encode_images([images[k] for k in ok], batch_size)
            vectors[idx[ok]] = encoded.numpy()
    return vectors[np.fromiter((slot[r] for r in refs), dtype=np.int64, count=len(refs))]


def embedding_array(vectors: np.ndarray) -> pa.Array:
    """NaN rows become nulls: a list<float32> column with one vector per readable row."""
    valid = ~np.isnan(vectors).any(axis=1)
    dim = vectors.shape[1]
    offsets = np.concatenate([[0], np.cumsum(np.where(valid, dim, 0))]).astype(np.int32)
    values = pa.array(vectors[valid].ravel(), pa.float32())
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(~valid))


@register("embed", "score", Embed, reads=(IMAGE,), writes=(EMBEDDING,), device=True)
def embed(table: pa.Table, p: Embed, ctx: StepContext) -> pa.Table:
    """Adds ``embedding``: each image's L2-normalised embedding under the track's reference CLIP
    (or the model named here), null where the image cannot be read. Computing it once lets the
    ``clustered`` sampler and later embedding-based steps (``image_based``, ``nearest_images``)
    share one encoder pass; they reuse the column when it comes from the model they would use.
    Replaces an ``embedding`` column made by another model."""
    if _made_by(table) == source(p.model, p.pretrained):
        return table  # the same vectors, row by row, whatever batch a row is in
    vectors = image_embeddings(table, ctx, p.model, p.pretrained, p.batch_size)
    field = pa.field(
        COLUMN, pa.list_(pa.float32()), metadata={SOURCE_KEY: source(p.model, p.pretrained)}
    )
    column = embedding_array(vectors)
    if COLUMN in table.column_names:
        return table.set_column(table.column_names.index(COLUMN), field, column)
    return table.append_column(field, column)
