"""Samplers `paired` and `clustered`: the batch properties a recipe relies on."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from benchmark.ops import registry
from benchmark.ops.batching import kmeans, pack
from benchmark.ops.context import OpError


def order(name: str, table: pa.Table, batch_size: int, seed: int = 0, **params) -> np.ndarray:
    op = registry.get(name)
    return op.fn(table, op.params.model_validate(params), batch_size, np.random.default_rng(seed))


def batches_of(idx: np.ndarray, batch_size: int) -> list[set[int]]:
    n = len(idx) // batch_size
    return [set(idx[b * batch_size : (b + 1) * batch_size].tolist()) for b in range(n)]


def family_table(n_originals: int, children: list[int]) -> pa.Table:
    """Originals (no parent) and, for original i, ``children[i % len(children)]`` edits."""
    uids, parents = [], []
    for i in range(n_originals):
        uids.append(f"o{i}")
        parents.append(None)
        for j in range(children[i % len(children)]):
            uids.append(f"o{i}-e{j}")
            parents.append(f"o{i}")
    return pa.table({"uid": uids, "parent_uid": pa.array(parents, pa.string())})


def groups_of(table: pa.Table) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    uids, parents = table["uid"].to_pylist(), table["parent_uid"].to_pylist()
    for i, (u, p) in enumerate(zip(uids, parents, strict=True)):
        out.setdefault(p or u, []).append(i)
    return out


@pytest.mark.parametrize(("children", "batch_size"), [([1], 8), ([0, 1, 2], 8), ([1, 0], 7)])
def test_paired_puts_each_original_and_its_edits_in_one_batch_side_by_side(children, batch_size):
    table = family_table(60, children)
    idx = order("paired", table, batch_size)
    assert sorted(idx.tolist()) == list(range(table.num_rows))  # every row, once
    position = {int(r): k for k, r in enumerate(idx)}
    full = len(idx) // batch_size * batch_size
    split = 0
    for members in groups_of(table).values():
        where = sorted(position[m] for m in members)
        assert where == list(range(where[0], where[0] + len(where)))  # adjacent
        if where[-1] < full and where[0] // batch_size != where[-1] // batch_size:
            split += 1
    assert split <= 1  # only when no remaining group can fill a batch's last places


def test_paired_shuffles_per_epoch_and_treats_null_as_own_uid():
    table = family_table(40, [1])
    assert not np.array_equal(order("paired", table, 8, seed=0), order("paired", table, 8, seed=1))
    assert np.array_equal(order("paired", table, 8, seed=3), order("paired", table, 8, seed=3))
    singles = pa.table({"uid": [f"u{i}" for i in range(10)], "parent_uid": [None] * 10})
    assert sorted(order("paired", singles, 4).tolist()) == list(range(10))
    with pytest.raises(OpError, match=r"sampler \(paired\): column 'parent_uid' missing"):
        order("paired", singles.drop_columns(["parent_uid"]), 4)
    assert len(order("paired", singles.slice(0, 0), 4)) == 0


def test_pack_cuts_groups_larger_than_a_batch_and_keeps_every_row():
    idx = pack([[0, 1, 2, 3, 4], [5], [6, 7]], 3)
    assert sorted(idx.tolist()) == list(range(8))
    assert idx[:3].tolist() == [0, 1, 2]


def blobs(n_per: int, k: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 10
    truth = np.repeat(np.arange(k), n_per)
    return centres[truth] + rng.normal(size=(k * n_per, dim)) * 0.1, truth


def test_kmeans_recovers_separated_clusters_deterministically():
    x, truth = blobs(50, 5)
    labels = kmeans(torch.tensor(x, dtype=torch.float32), 5, 25, seed=0)
    assert np.array_equal(labels, kmeans(torch.tensor(x, dtype=torch.float32), 5, 25, seed=0))
    pairs = set(zip(truth.tolist(), labels.tolist(), strict=True))
    assert len(pairs) == 5  # a one-to-one match between true and found clusters


def test_clustered_batches_draw_from_few_clusters():
    x, truth = blobs(64, 6, seed=1)
    table = pa.table({"uid": [str(i) for i in range(len(x))], "embedding": x.tolist()})
    idx = order("clustered", table, 32, clusters=6, clusters_per_batch=2)
    assert sorted(idx.tolist()) == list(range(len(x)))
    spans = [len({truth[i] for i in b}) for b in batches_of(idx, 32)]
    assert sum(s <= 2 for s in spans) >= len(spans) - 2  # the last few may mop up leftovers
    assert np.mean(spans) < 2.5

    by_column = table.append_column("cluster", pa.array(truth.tolist(), pa.int64()))
    idx = order("clustered", by_column, 16, clusters_per_batch=1)
    spans = [len({truth[i] for i in b}) for b in batches_of(idx, 16)]
    assert spans == [1] * len(spans)  # 64 rows per cluster: every batch from one cluster


def test_clustered_edge_cases():
    table = pa.table({"uid": ["a", "b", "c"], "cluster": pa.array([1, None, 1], pa.int64())})
    assert sorted(order("clustered", table, 2).tolist()) == [0, 1, 2]
    with pytest.raises(OpError, match=r"sampler \(clustered\): .*cluster.*embedding"):
        order("clustered", table.drop_columns(["cluster"]), 2)
    empty = pa.table(
        {"uid": pa.array([], pa.string()), "embedding": pa.array([], pa.list_(pa.float32()))}
    )
    assert len(order("clustered", empty, 4)) == 0
    few = pa.table({"uid": ["a", "b"], "embedding": [[0.0, 1.0], [0.0, 1.0]]})
    assert sorted(order("clustered", few, 1, clusters=8).tolist()) == [0, 1]
    unreadable = pa.table({"uid": ["a", "b", "c"], "embedding": [[0.0, 1.0], None, [1.0, 0.0]]})
    assert sorted(order("clustered", unreadable, 1, clusters=2).tolist()) == [0, 1, 2]


def test_grouped_keeps_every_row_of_groups_larger_than_a_batch():
    table = pa.table({"uid": [str(i) for i in range(10)], "g": [0] * 7 + [1, 2, 3]})
    idx = order("grouped", table, 4, column="g")
    assert sorted(idx.tolist()) == list(range(10))
