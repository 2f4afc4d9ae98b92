"""Embedding-based ops (embed, image_based, nearest_images): what they keep or group, and how
they compose with the samplers. Most tests use a stand-in encoder whose embedding space is known
(an image's colour thumbnail), so the right answer can be stated exactly; the op code is the
same for any ClipBundle."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from PIL import Image

from benchmark.curate import split_hidden
from benchmark.evaluate.shapes import zeroshot_items
from benchmark.models import clip
from benchmark.ops import neighbours, registry
from benchmark.ops.context import OpError, StepContext
from benchmark.ops.embedding import COLUMN, SOURCE_KEY
from benchmark.ops.image_based import shapes_targets
from benchmark.pools.shapes import Defects, ShapesPool, build
from benchmark.pools.shards import ShardReader, ShardWriter
from benchmark.spec.load import load_recipe
from benchmark.world import Scene, render

NEW_OPS = {"embed": "score", "image_based": "filter", "nearest_images": "score"}
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 90, 230)}


class Thumbnail:
    """A stand-in encoder: the image's 4x4 colour thumbnail, centred on the grey background and
    L2-normalised. Colours separate and near-duplicates are nearest, by construction."""

    embed_dim = 48

    def encode_images(self, images: Iterable[Image.Image], batch_size: int = 256) -> torch.Tensor:
        x = [np.asarray(im.convert("RGB").resize((4, 4), Image.BOX), np.float32) for im in images]
        x = np.stack(x).reshape(len(x), -1) if x else np.zeros((0, self.embed_dim), np.float32)
        return F.normalize(torch.tensor(x) - 200.0, dim=-1)


def noisy(colour: tuple[int, int, int], seed: int, size: int = 32) -> Image.Image:
    """A flat image of ``colour`` with a little seeded noise: every one distinct."""
    noise = np.random.default_rng(seed).integers(-8, 9, size=(size, size, 3))
    return Image.fromarray(np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8))


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def shard_table(root: Path, images: list[bytes | str]) -> pa.Table:
    """A pool table over ``images`` written to a shard under ``root``; a str entry reuses the
    reference of the earlier row it names (``"#3"``: row 3's image), as photo pools do."""
    writer = ShardWriter(root, prefix="t")
    refs: list[str] = []
    for i, data in enumerate(images):
        refs.append(
            refs[int(data[1:])] if isinstance(data, str) else writer.write(f"{i:06d}", "png", data)
        )
    writer.close()
    n = len(refs)
    return pa.table(
        {
            "uid": [hashlib.md5(str(i).encode()).hexdigest() for i in range(n)],
            "caption": [f"sample {i}" for i in range(n)],
            "image": pa.array(refs, pa.string()),
            "width": pa.array(np.full(n, 32, np.int32)),
        }
    )


def ctx(root: Path, encoder: object | None = None, name: str = "steps[1] (op)") -> StepContext:
    reference = None if encoder is None else (lambda: encoder)
    return StepContext(name, ShardReader(root), 0, root / "work", reference=reference)


def apply(op: str, table: pa.Table, c: StepContext, **params) -> pa.Table:
    o = registry.get(op)
    return o.apply(table, o.params.model_validate(params), c)


def sample(name: str, table: pa.Table, batch_size: int, seed: int = 0, **params) -> np.ndarray:
    o = registry.get(name)
    return o.fn(table, o.params.model_validate(params), batch_size, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[pa.Table, Path, pa.Table]:
    """A small real shapes pool with near-duplicates: (what ops see, root, hidden truth)."""
    out = tmp_path_factory.mktemp("pool")
    built = build(ShapesPool(size=120, image_size=32, defects=Defects(near_duplicate=0.2)), out)
    visible, hidden = split_hidden(built.table)
    return visible, out, hidden


@pytest.fixture(scope="module")
def reference() -> clip.ClipBundle:
    """The test track's reference architecture, randomly initialised (seeded): a real encoder
    for end-to-end paths, at no training cost."""
    torch.manual_seed(0)
    return clip.create("shapes-vit-tiny")


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> tuple[pa.Table, Path, np.ndarray]:
    """12 noisy flat images of each of three colours, interleaved; returns the colour per row."""
    root = tmp_path_factory.mktemp("colours")
    names = np.array([c for i in range(12) for c in COLOURS])
    images = [png(noisy(COLOURS[c], i)) for i, c in enumerate(names)]
    return shard_table(root, images), root, names


def test_new_ops_are_registered_with_docs_and_params():
    for name, kind in NEW_OPS.items():
        op = registry.get(name)
        assert op.kind == kind and len(op.doc) > 100, name
        assert issubclass(op.params, registry.Params)
        assert not op.isolate  # torch only: safe in the trainer's process


def test_embed_adds_normalised_vectors_null_when_unreadable(tmp_path, reference):
    images = [png(noisy(COLOURS["red"], 0)), b"not an image", png(noisy(COLOURS["blue"], 1)), "#0"]
    table = shard_table(tmp_path, images)
    c = ctx(tmp_path, reference)
    out = apply("embed", table, c)
    field = out.schema.field(COLUMN)
    assert field.type == pa.list_(pa.float32()) and field.metadata[SOURCE_KEY] == b"reference"
    rows = out.column(COLUMN).to_pylist()
    assert rows[1] is None
    assert all(abs(np.linalg.norm(rows[i]) - 1) < 1e-5 for i in (0, 2, 3))
    assert rows[3] == rows[0]  # same image reference, encoded once
    assert c.samples_processed == 3
    again = ctx(tmp_path, reference)
    assert apply("embed", out, again).equals(out) and again.samples_processed == 0  # reused


def test_embed_is_deterministic_and_composes_with_clustered_sampler(colours, reference):
    table, root, names = colours
    a = apply("embed", table, ctx(root, reference))
    b = apply("embed", table, ctx(root, reference))
    assert a.column(COLUMN).equals(b.column(COLUMN))
    idx = sample("clustered", a, 12, clusters=3, clusters_per_batch=1)
    assert sorted(idx.tolist()) == list(range(table.num_rows))
    # Under an encoder that separates the colours, batches are one colour each.
    by_colour = apply("embed", table, ctx(root, Thumbnail()))
    idx = sample("clustered", by_colour, 12, clusters=3, clusters_per_batch=1)
    assert [len(set(names[idx[k : k + 12]])) for k in range(0, len(idx), 12)] == [1, 1, 1]


def test_embed_with_another_model_replaces_the_column(colours, reference):
    table, root, _ = colours
    embedded = apply("embed", table, ctx(root, Thumbnail()))
    out = apply("embed", embedded, ctx(root, reference), model="shapes-vit-tiny")
    assert out.column_names.count(COLUMN) == 1
    assert out.schema.field(COLUMN).metadata[SOURCE_KEY] == b"shapes-vit-tiny|"
    assert len(out.column(COLUMN)[0].as_py()) == reference.embed_dim != Thumbnail.embed_dim


def test_image_based_keeps_the_clusters_of_the_targets(colours, tmp_path):
    table, root, names = colours
    targets = tmp_path / "targets"
    for k in range(3):  # an ImageFolder with one class, red
        (targets / "red").mkdir(parents=True, exist_ok=True)
        noisy(COLOURS["red"], 100 + k).save(targets / "red" / f"{k}.png")
    (targets / "red" / "broken.jpg").write_bytes(b"no image")
    c = ctx(root, Thumbnail())
    out = apply("image_based", table, c, clusters=3, targets=str(targets), per_class=10)
    assert out.column("uid").to_pylist() == [
        u for u, n in zip(table.column("uid").to_pylist(), names, strict=True) if n == "red"
    ]
    assert c.extra_costs["image_based"] == {"clusters": 3, "clusters_kept": 1, "target_images": 3}
    (targets / "blue").mkdir()
    noisy(COLOURS["blue"], 200).save(targets / "blue" / "0.png")
    out = apply("image_based", table, ctx(root, Thumbnail()), clusters=3, targets=str(targets))
    assert set(names[np.isin(table.column("uid"), out.column("uid"))]) == {"red", "blue"}


def test_image_based_shapes_targets_are_seeded_and_not_the_eval_images():
    a, b = list(shapes_targets(2, 0, 32)), list(shapes_targets(2, 0, 32))
    assert len(a) == 72 and all(im.size == (32, 32) for im in a)
    assert [im.tobytes() for im in a] == [im.tobytes() for im in b]
    assert [im.tobytes() for im in a] != [im.tobytes() for im in list(shapes_targets(2, 1, 32))]
    evals = {render(Scene((o,), i), 32).tobytes() for i, (o, _) in enumerate(zeroshot_items(2))}
    assert not evals & {im.tobytes() for im in a}


def test_image_based_on_a_real_pool_is_deterministic_and_reuses_embeddings(pool, reference):
    table, root, _ = pool
    c = ctx(root, reference)
    a = apply("image_based", table, c, clusters=12, per_class=1)
    b = apply("image_based", table, ctx(root, reference), clusters=12, per_class=1)
    assert a.equals(b) and 0 < a.num_rows <= table.num_rows
    assert 1 <= c.extra_costs["image_based"]["clusters_kept"] <= 12
    embedded = apply("embed", table, ctx(root, reference))
    reuse = ctx(root, reference)
    out = apply("image_based", embedded, reuse, clusters=12, per_class=1)
    assert out.column("uid").equals(a.column("uid")) and reuse.samples_processed == 0


def test_image_based_edge_cases(colours, tmp_path):
    table, root, _ = colours
    empty = apply("image_based", table.slice(0, 0), ctx(root, Thumbnail()), clusters=3)
    assert empty.num_rows == 0
    broken = shard_table(tmp_path / "broken", [b"x", b"y"])
    c = ctx(tmp_path / "broken", Thumbnail())
    assert apply("image_based", broken, c).num_rows == 0  # all unreadable: all filtered
    assert c.extra_costs["image_based"]["clusters_kept"] == 0
    with pytest.raises(OpError, match=r"steps\[1\] \(op\): needs column\(s\) image"):
        apply("image_based", table.drop_columns(["image"]), ctx(root, Thumbnail()))
    with pytest.raises(OpError, match=r"steps\[1\] \(op\): the track has no reference model"):
        apply("image_based", table, ctx(root))
    with pytest.raises(OpError, match=r"steps\[1\] \(op\): targets: no directory"):
        apply("image_based", table, ctx(root), targets=str(tmp_path / "none"))  # before any work
    (tmp_path / "unreadable" / "red").mkdir(parents=True)
    (tmp_path / "unreadable" / "red" / "0.png").write_bytes(b"no image")
    with pytest.raises(OpError, match=r"steps\[1\] \(op\): targets: no readable images"):
        apply("image_based", table, ctx(root, Thumbnail()), targets=str(tmp_path / "unreadable"))


def duplicates_pool(root: Path) -> tuple[pa.Table, dict[int, int]]:
    """Distinct scenes, some re-encoded (another reference, the same pixels) and some shown
    twice under one reference (two captions of a photo). Returns duplicate → original row."""
    rng = np.random.default_rng(5)
    images: list[bytes | str] = []
    for _ in range(30):  # random colour blocks: far apart from each other
        arr = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
        images.append(png(Image.fromarray(arr).resize((32, 32), Image.NEAREST)))
    dup = {30 + k: 2 * k for k in range(10)}  # rows 30..39 repeat rows 0, 2, ..., 18
    images += [images[j] for j in dup.values()]
    images += ["#1", "#3", "#5"]  # rows 40..42 share the references of rows 1, 3, 5
    return shard_table(root, images), dup


def test_nearest_images_pairs_near_duplicates_never_same_image(tmp_path):
    table, dup = duplicates_pool(tmp_path)
    c = ctx(tmp_path, Thumbnail())
    out = apply("nearest_images", table, c, column="nn")
    group = out.column("nn").to_numpy()
    for d, original in dup.items():
        assert group[d] == group[original]
    refs = table.column("image").to_pylist()
    sizes = np.bincount(group)
    assert sizes.max() == 2 and sizes.min() >= 1  # every row has a group, none beyond group_size
    for g in np.flatnonzero(sizes == 2):
        members = np.flatnonzero(group == g)
        assert len({refs[i] for i in members}) == len(members)  # never one image twice
    assert c.extra_costs["nearest_images"]["groups"] == int((sizes == 2).sum())
    assert c.extra_costs["nearest_images"]["mean_similarity"] <= 1.0


def test_nearest_images_max_similarity_keeps_copies_apart(tmp_path):
    """Copies are false negatives (one scene, a caption true of both): under the cut no group
    holds two images more similar than it, even where a third member links them."""
    table, dup = duplicates_pool(tmp_path)
    c = ctx(tmp_path, Thumbnail())
    out = apply("nearest_images", table, c, group_size=3, max_similarity=0.99)
    group = out.column("neighbour_group").to_numpy()
    for d, original in dup.items():
        assert group[d] != group[original]
    images = ShardReader(tmp_path)
    x = Thumbnail().encode_images(images.read_image(r) for r in table.column("image").to_pylist())
    refs = table.column("image").to_pylist()
    for g in np.flatnonzero(np.bincount(group) > 1):
        members = list(np.flatnonzero(group == g))
        assert len({refs[i] for i in members}) == len(members)
        s = x[members] @ x[members].T
        assert float(s.fill_diagonal_(-1).max()) <= 0.99
    record = c.extra_costs["nearest_images"]
    assert record["nearest_over_cut"] == 2 * len(dup) and record["groups"] > 0


def same_scene(a: list[dict], b: list[dict]) -> bool:
    """Two ground-truth object lists that are one scene re-rendered (boxes within 1 px)."""
    return len(a) == len(b) and all(
        (x["shape"], x["colour"], x["size"]) == (y["shape"], y["colour"], y["size"])
        and abs(x["x0"] - y["x0"]) <= 1
        and abs(x["y0"] - y["y0"]) <= 1
        for x, y in zip(a, b, strict=True)
    )


def test_nearest_images_groups_the_pools_near_duplicates_with_their_scene(pool):
    table, root, hidden = pool
    objects = hidden.column("gt_objects").to_pylist()
    dups = [
        i for i, d in enumerate(hidden.column("gt_defect").to_pylist()) if d == "near_duplicate"
    ]
    twins = {
        i: {k for k in range(len(objects)) if k != i and same_scene(objects[i], objects[k])}
        for i in dups
    }
    twins = {i: t for i, t in twins.items() if t}  # a re-render of a re-render has no twin left
    assert len(twins) >= 10
    # Groups of three: a scene and two re-renders of it can all be together.
    out = apply("nearest_images", table, ctx(root, Thumbnail()), group_size=3)
    group = out.column("neighbour_group").to_numpy()
    assert all(set(np.flatnonzero(group == group[i])) & t for i, t in twins.items())


def test_nearest_images_groups_of_three_deterministic_and_order_free(tmp_path):
    table, _ = duplicates_pool(tmp_path)
    a = apply("nearest_images", table, ctx(tmp_path, Thumbnail()), group_size=3, seed=4)
    b = apply("nearest_images", table, ctx(tmp_path, Thumbnail()), group_size=3, seed=4)
    assert a.equals(b)
    group = a.column("neighbour_group").to_numpy()
    assert np.bincount(group).max() == 3
    assert len(np.unique(group)) < table.num_rows
    # The same rows in another order form the same groups (picking order is keyed by uid).
    perm = np.random.default_rng(0).permutation(table.num_rows)
    shuffled = apply(
        "nearest_images", table.take(perm), ctx(tmp_path, Thumbnail()), group_size=3, seed=4
    )

    def partition(t: pa.Table) -> set[frozenset[str]]:
        uids, groups = t.column("uid").to_pylist(), t.column("neighbour_group").to_pylist()
        out: dict[int, set[str]] = {}
        for u, g in zip(uids, groups, strict=True):
            out.setdefault(g, set()).add(u)
        return {frozenset(s) for s in out.values()}

    assert partition(shuffled) == partition(a)


def test_nearest_search_in_chunks_matches_one_pass(monkeypatch):
    x = F.normalize(torch.randn(50, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    whole = neighbours.nearest(x, 5)
    monkeypatch.setattr(neighbours, "CHUNK", 7 * 50)  # 7 rows per chunk
    chunked = neighbours.nearest(x, 5)
    assert np.array_equal(whole[0], chunked[0]) and np.allclose(whole[1], chunked[1])
    assert not (whole[0] == np.arange(50)[:, None]).any()  # never its own neighbour
    sims = (x @ x.T).fill_diagonal_(-2).numpy()
    assert np.array_equal(whole[0][:, 0], sims.argmax(axis=1))  # exact


def test_nearest_images_edge_cases(colours, tmp_path):
    table, root, _ = colours
    empty = apply("nearest_images", table.slice(0, 0), ctx(root, Thumbnail()))
    assert empty.num_rows == 0 and empty.schema.field("neighbour_group").type == pa.int64()
    broken = shard_table(tmp_path, [b"x", b"y", png(noisy(COLOURS["red"], 0))])
    alone = apply("nearest_images", broken, ctx(tmp_path, Thumbnail()))
    assert sorted(alone.column("neighbour_group").to_pylist()) == [0, 1, 2]  # nobody to pair
    with pytest.raises(OpError, match=r"steps\[1\] \(op\): needs column\(s\) uid"):
        apply("nearest_images", table.drop_columns(["uid"]), ctx(root, Thumbnail()))
    with pytest.raises(OpError, match=r"steps\[1\] \(op\): column 'image_group' already exists"):
        grouped = table.append_column("image_group", pa.array(["a"] * table.num_rows))
        apply("nearest_images", grouped, ctx(root, Thumbnail()), column="image_group")


def test_nearest_images_then_grouped_sampler_puts_neighbours_in_one_batch(tmp_path):
    table, dup = duplicates_pool(tmp_path)
    out = apply("nearest_images", table, ctx(tmp_path, Thumbnail()), column="nn")
    idx = sample("grouped", out, 8, column="nn")
    assert sorted(idx.tolist()) == list(range(table.num_rows))
    batch = {int(r): k // 8 for k, r in enumerate(idx)}
    group = out.column("nn").to_numpy()
    for g in np.flatnonzero(np.bincount(group) == 2):
        a, b = np.flatnonzero(group == g)
        assert batch[a] == batch[b]


def test_new_baseline_recipes_validate():
    for name in ("image_based", "laion2b", "image_based_and_clip_score", "clustered_batches"):
        load_recipe(REPO / "recipes" / "baselines" / f"{name}.yaml")
    spec = load_recipe(REPO / "recipes" / "negclip_hard_images.yaml")
    nn = next(s for s in spec.recipe.steps if s.op == "nearest_images")
    assert spec.recipe.sampler.params["column"] == nn.params["column"]


@pytest.mark.slow
def test_embedding_ops_through_curation_with_trained_reference(tmp_path, recipe):
    """The test track's trained reference, through the runner: steps, records and sampler."""
    from benchmark.pipeline import Runner
    from benchmark.store import Store

    r = recipe(
        "steps:\n  - op: embed\n  - op: image_based\n    clusters: 8\n    per_class: 2\n"
        "  - op: nearest_images\nsampler:\n  op: grouped\n  column: neighbour_group\n"
    )
    spec = load_recipe(r)
    table, report = Runner(Store(tmp_path)).curate(spec)
    embed, image_based, nn = report["steps"]
    assert embed["rows_out"] == embed["rows_in"] == 600
    assert 0 < image_based["rows_out"] < 600 and image_based["image_based"]["clusters_kept"] >= 1
    assert image_based["samples_processed"] == 0  # the embed step's column was reused
    assert nn["nearest_images"]["groups"] > 0 and nn["nearest_images"]["mean_similarity"] > 0.5
    idx = sample("grouped", table, 64, column="neighbour_group")
    assert sorted(idx.tolist()) == list(range(table.num_rows))
