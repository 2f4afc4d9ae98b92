"""Batch composition beyond shuffling: related rows together, or batches of similar samples.

Both samplers return a permutation of the rows for one epoch; consecutive ``batch_size`` chunks
are the batches (the trainer drops an epoch's remainder).
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pydantic import Field

from benchmark.columns import CLUSTER, EMBEDDING, PARENT_UID, UID
from benchmark.ops.context import OpError
from benchmark.ops.registry import Params, register
from benchmark.spec.numbers import Seed

if TYPE_CHECKING:
    import torch


class Paired(Params):
    column: str = Field(
        PARENT_UID,
        description="rows whose value here equals another row's uid (or value) share a batch",
    )


def group_keys(table: pa.Table, column: str) -> list[str]:
    """A row's group is its ``column`` value, or its own uid when that is null: an original
    (no parent) and the rows generated from it (parent = its uid) form one group."""
    for needed in (UID, column):
        if needed not in table.column_names:
            raise OpError(
                f"sampler (paired): column '{needed}' missing; add the step that writes it "
                "(a generate step writes parent_uid) or choose another sampler"
            )
    uids = table.column(UID).to_pylist()
    values = table.column(column).to_pylist()
    return [u if v is None else str(v) for u, v in zip(uids, values, strict=True)]


def pack(groups: list[list[int]], batch_size: int) -> np.ndarray:
    """Concatenate ``groups`` (already in random order) so that each lies inside one batch.

    Each batch is filled with the earliest remaining group that fits its room. Only when no
    remaining group fits is one split: its first rows close the batch and the rest go to the end
    of the epoch (which the trainer drops when it is short of a batch). Groups larger than a
    batch are cut into batch-sized pieces first.
    """
    pieces = [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
    by_size: dict[int, deque[int]] = defaultdict(deque)  # size → piece indices, in order
    for k, piece in enumerate(pieces):
        by_size[len(piece)].append(k)
    out: list[int] = []
    spill: list[int] = []
    room = batch_size
    while any(by_size.values()):
        fits = [q[0] for size, q in by_size.items() if q and size <= room]
        if fits:
            k = min(fits)
            by_size[len(pieces[k])].popleft()
            out += pieces[k]
            room -= len(pieces[k])
        else:
            k = min(q[0] for q in by_size.values() if q)
            by_size[len(pieces[k])].popleft()
            out += pieces[k][:room]
            spill += pieces[k][room:]
            room = 0
        if room == 0:
            room = batch_size
    return np.asarray(out + spill, dtype=np.int64)


@register("paired", "sample", Paired, reads=lambda p: (UID, p.column))
def paired(table: pa.Table, p: Paired, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """An original and the samples generated from it (rows sharing ``parent_uid``, the original
    by its uid) land next to each other in the same batch, so each is the other's in-batch
    negative: the contrastive loss must tell an image from its edit, as in counterfactual-pair
    training. Groups are shuffled every epoch; rows without relatives fill the gaps."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(group_keys(table, p.column)):
        groups.setdefault(key, []).append(i)
    members = list(groups.values())
    return pack([members[k] for k in rng.permutation(len(members))], batch_size)


class Clustered(Params):
    clusters: int = Field(16, ge=1, description="k-means clusters (without a cluster column)")
    clusters_per_batch: int = Field(2, ge=1, description="clusters each batch is drawn from")
    column: str = Field(EMBEDDING, description="float list column to cluster")
    cluster_column: str = Field(CLUSTER, description="int column used as is when present")
    iterations: int = Field(25, ge=1, le=1000)
    seed: Seed = Field(0, description="k-means initialisation (the same clusters every epoch)")


def kmeans(x: torch.Tensor, k: int, iterations: int, seed: int) -> np.ndarray:
    """Cluster labels by Lloyd's algorithm from a k-means++ start, seeded (no faiss: a second
    OpenMP runtime in the process slows the training that follows several-fold)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    k = min(k, len(x))
    centres = x[torch.randint(len(x), (1,), generator=g)]
    d = torch.cdist(x, centres).squeeze(1) ** 2  # to the nearest centre, updated per new centre
    for _ in range(1, k):
        if d.sum() <= 0:  # fewer distinct points than k
            break
        new = x[torch.multinomial(d / d.sum(), 1, generator=g)]
        centres = torch.cat([centres, new])
        d = torch.minimum(d, torch.cdist(x, new).squeeze(1) ** 2)
    labels = torch.cdist(x, centres).argmin(dim=1)
    for _ in range(iterations):
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=len(centres)).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        new = torch.cdist(x, centres).argmin(dim=1)
        if torch.equal(new, labels):
            break
        labels = new
    return labels.numpy()


def cluster_labels(table: pa.Table, p: Clustered) -> np.ndarray:
    import torch

    if p.cluster_column in table.column_names:
        values = table.column(p.cluster_column).to_pylist()
        return np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
    if p.column not in table.column_names:
        raise OpError(
            f"sampler (clustered): column '{p.cluster_column}' (cluster ids) or '{p.column}' "
            "(embeddings to cluster) missing; add the step that writes one"
        )
    rows = table.column(p.column).to_pylist()
    labels = np.full(len(rows), -1, dtype=np.int64)  # unreadable images: a cluster of their own
    ok = [i for i, r in enumerate(rows) if r is not None]
    if ok:
        x = torch.tensor([rows[i] for i in ok], dtype=torch.float32)
        labels[ok] = kmeans(x, p.clusters, p.iterations, p.seed)
    return labels


# Reads names the embeddings: a cluster-id column, used instead when present, is optional.
@register("clustered", "sample", Clustered, reads=lambda p: (p.column,))
def clustered(
    table: pa.Table, p: Clustered, batch_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Each batch is drawn from ``clusters_per_batch`` clusters (k-means on ``embedding``, or the
    ``cluster`` column), so in-batch negatives are similar samples: harder negatives for the
    contrastive loss at no extra cost. Clusters are picked in proportion to the rows they have
    left and share the batch evenly; a cluster that runs dry is topped up from the batch's
    other clusters first. Rows left over after the last full batch follow, shuffled."""
    labels = cluster_labels(table, p)
    queues = {c: deque(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    out: list[int] = []
    for _ in range(len(labels) // batch_size):
        alive = [c for c, q in queues.items() if q]
        left = np.array([len(queues[c]) for c in alive], dtype=np.float64)
        m = min(p.clusters_per_batch, len(alive))
        chosen = list(rng.choice(alive, size=m, replace=False, p=left / left.sum()))
        batch: list[int] = []
        for j, c in enumerate(chosen):
            share = batch_size // m + (j < batch_size % m)
            batch += [queues[c].popleft() for _ in range(min(share, len(queues[c])))]
        others = sorted(set(alive) - set(chosen), key=lambda c: -len(queues[c]))
        for c in chosen + others:
            while len(batch) < batch_size and queues[c]:
                batch.append(queues[c].popleft())
        out += batch
    rest = [i for q in queues.values() for i in q]
    return np.asarray(out + [rest[k] for k in rng.permutation(len(rest))], dtype=np.int64)
