"""NegCLIP's hard-negative images: each sample trains next to the pool images most like its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import Field

from benchmark.columns import EMBEDDING, IMAGE, UID
from benchmark.models.trust import ClipModel, ClipWeights
from benchmark.ops.context import StepContext
from benchmark.ops.embedding import image_embeddings
from benchmark.ops.registry import Params, register
from benchmark.spec.numbers import Seed
from benchmark.text.seeding import sample_rng

if TYPE_CHECKING:
    import torch

# Similarities computed at once (64 MiB of float32): exact search whose memory does not grow with
# the square of the pool.
CHUNK = 1 << 24


class NearestImages(Params):
    group_size: int = Field(2, ge=2, le=64, description="rows per group: a sample and neighbours")
    column: str = Field(
        "neighbour_group",
        min_length=1,
        description="int group-id column to write; name it in the sampler (grouped, column: ...)",
    )
    candidates: int = Field(8, ge=1, le=1024, description="nearest images considered per image")
    max_similarity: float | None = Field(
        None,
        gt=-1.0,
        le=1.0,
        description="never group two images more cosine-similar than this (near-duplicates are "
        "false negatives: the same scene, its caption true of both); default: no cut",
    )
    seed: Seed = Field(0, description="order among equally similar pairs (exact duplicates)")
    batch_size: int = Field(256, ge=1)
    model: ClipModel = Field(None, description="open_clip name or saved dir; default: track's")
    pretrained: ClipWeights = Field(None, description="safetensors path or open_clip tag")


def nearest(x: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` most cosine-similar other rows, most similar first, as (indices,
    similarities); index -1 where fewer exist. ``x`` is L2-normalised."""
    import torch

    n = len(x)
    k = min(k, max(n - 1, 0))
    index = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    step = max(1, CHUNK // max(n, 1))
    for start in range(0, n, step):
        s = x[start : start + step] @ x.T
        rows = torch.arange(len(s))
        s[rows, rows + start] = -torch.inf
        values, found = s.topk(k, dim=1)
        found[torch.isinf(values)] = -1
        index[start : start + step] = found.numpy()
        sims[start : start + step] = values.numpy()
    return index, sims


def match(
    index: np.ndarray,
    sims: np.ndarray,
    rank: np.ndarray,
    group_size: int,
    cut: tuple[torch.Tensor, float] | None = None,
) -> tuple[list[list[int]], list[float]]:
    """Greedy grouping over the candidate pairs, most similar first, ties in ``rank`` order: two
    free items open a group, a free item joins an item's group while it has room. Returns the
    groups (members in joining order) and the similarity of every join. With ``cut`` (the
    normalised vectors and a similarity), no group holds two items more similar than that: the
    cut is checked against every member, not only the pair that joins.

    Most-similar-first rather than item by item in a random order: an image whose nearest is
    one of a near-duplicate pair must not take it from its twin."""
    n, k = index.shape
    items, others, values = np.repeat(np.arange(n), k), index.ravel(), sims.ravel()
    found = others >= 0
    if cut is not None:
        found &= values <= cut[1]
    items, others, values = items[found], others[found], values[found]
    group = np.full(n, -1, dtype=np.int64)
    groups: list[list[int]] = []
    joins: list[float] = []
    for e in np.lexsort((rank[others], rank[items], -values)):
        a, b = int(items[e]), int(others[e])
        if group[a] < 0 and group[b] < 0:
            group[[a, b]] = len(groups)
            groups.append([a, b])
        elif (group[a] < 0) != (group[b] < 0):
            free, g = (b, group[a]) if group[a] >= 0 else (a, group[b])
            if len(groups[g]) == group_size:
                continue
            if cut is not None and float((cut[0][groups[g]] @ cut[0][free]).max()) > cut[1]:
                continue
            group[free] = g
            groups[g].append(free)
        else:
            continue
        joins.append(float(values[e]))
    return groups, joins


@register(
    "nearest_images",
    "score",
    NearestImages,
    reads=(UID, IMAGE),
    writes=lambda p: (p.column,),
    uses=(EMBEDDING,),
    scope="table",
)
def nearest_images(table: pa.Table, p: NearestImages, ctx: StepContext) -> pa.Table:
    """NegCLIP's hard-negative images (Yuksekgonul et al. 2023): groups each image with its
    nearest images in the pool (exact cosine on reference-CLIP embeddings, at most
    ``group_size``) and writes a group id per row to ``column``: each row is in one group, with
    one row of each of the group's images, never two rows of the same image (captions of one
    photo pair with captions of its neighbour, one to one). With the ``grouped`` sampler on that
    column, neighbours share a batch, so each image's caption must beat a look-alike image's
    caption. Groups form greedily, most similar pairs first, so near-duplicates pair with each
    other unless ``max_similarity`` forbids it (then each pairs with its nearest look-alike that
    is not a copy); ties (exact duplicates) go in a random order keyed by (seed, uid), so groups
    do not depend on row order. Rows left without a partner, or with an unreadable image, get a
    group of their own. Group count and mean similarity of grouped images go to the step's
    record, with the images the cut kept from their nearest neighbour."""
    import torch

    ctx.require(table, UID)
    if p.column in table.column_names:
        raise ctx.fail(
            f"column '{p.column}' already exists (on photo pools 'image_group' means captions "
            "of one photo); write the neighbour groups to another column"
        )
    vectors = image_embeddings(table, ctx, p.model, p.pretrained, p.batch_size)
    readable = np.flatnonzero(~np.isnan(vectors).any(axis=1))
    uids = table.column("uid").to_pylist()
    rank = {int(i): sample_rng(uids[i], p.seed).random() for i in readable}
    # Without an image column (embeddings given) every row counts as its own image.
    refs = table.column("image").to_pylist() if "image" in table.column_names else uids
    rows_of: dict[str, list[int]] = {}
    for i in sorted(rank, key=rank.__getitem__):
        rows_of.setdefault(refs[i], []).append(i)
    images = list(rows_of.values())
    x = torch.from_numpy(vectors[[rows[0] for rows in images]])
    index, sims = nearest(x, p.candidates)
    cut = None if p.max_similarity is None else (x, p.max_similarity)
    order = np.array([rank[r[0]] for r in images])
    groups, joins = match(index, sims, order, p.group_size, cut)
    out = np.full(table.num_rows, -1, dtype=np.int64)
    formed = 0
    for g in groups:
        for t in range(max(len(images[m]) for m in g)):
            members = [images[m][t] for m in g if t < len(images[m])]
            if len(members) > 1:
                out[members] = formed
                formed += 1
    alone = np.flatnonzero(out < 0)
    out[alone] = formed + np.arange(len(alone))
    ctx.extra_costs["nearest_images"] = {
        "groups": formed,
        "rows_grouped": table.num_rows - len(alone),
        "mean_similarity": round(float(np.mean(joins)), 4) if joins else None,
    }
    if cut is not None:  # images whose nearest neighbour the cut kept them from
        over = int((sims[:, 0] > p.max_similarity).sum()) if sims.shape[1] else 0
        ctx.extra_costs["nearest_images"]["nearest_over_cut"] = over
    return table.append_column(p.column, pa.array(out, pa.int64()))
