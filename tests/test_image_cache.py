"""The decoded-image cache feeds training exactly what decoding from shards feeds it, is built
once per curated set (not per seed), is rebuilt when its bytes change, and steps aside past its
size limit."""

from __future__ import annotations

import numpy as np
import open_clip
import pyarrow as pa
import pytest
import torch
from conftest import TEST_TRACK

from benchmark import image_cache, train
from benchmark.columns import IMAGE, NEGATIVES, REWRITES
from benchmark.models import clip
from benchmark.pipeline import Runner
from benchmark.pools.shards import ShardReader
from benchmark.spec.load import load_track
from benchmark.spec.recipe import Step
from benchmark.store import Store


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> tuple[Store, pa.Table]:
    store = Store(tmp_path_factory.mktemp("runs"))
    table = Runner(store).track_pool(load_track(TEST_TRACK)).slice(0, 300)
    n = table.num_rows
    table = table.append_column(
        REWRITES, pa.array([[f"rewrite {i}", f"other {i}"] if i % 3 else [] for i in range(n)])
    )
    negatives = [[f"negative {i}"] if i % 2 else [] for i in range(n)]
    return store, table.append_column(NEGATIVES, pa.array(negatives, pa.list_(pa.string())))


def _model():
    model = open_clip.create_model("shapes-vit-tiny")
    return open_clip.image_transform(model.visual.image_size, is_train=False)


def test_cache_batches_equal_decoded_batches(pool):
    store, table = pool
    preprocess, tokenizer = _model(), open_clip.get_tokenizer("shapes-vit-tiny")
    texts = train.Texts(table, seed=3, negatives=True)
    decoded = train.Pairs(table, ShardReader(store.root), preprocess, tokenizer, texts)
    cached = train.CachedPairs(
        *image_cache.ensure(store, table.column(IMAGE).to_pylist(), preprocess), tokenizer, texts
    )
    batch = [(i, e) for e in (0, 1, 5) for i in (0, 1, 2, 7, 150, 299)]
    want = [torch.stack(x) for x in zip(*(decoded[b] for b in batch), strict=True)]
    got = cached(batch)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert torch.equal(g, w)  # bit for bit: the same weights either way


def _train(store: Store, table: pa.Table, out, seed: int = 0) -> tuple[dict, dict]:
    scale = load_track(TEST_TRACK).scale("micro").model_copy(update={"samples_seen": 256})
    order = train.sampler_order(Step(op="random"))
    record = train.train(table, store.root, scale, order, seed, out, loss="negclip")
    return record, clip.create(str(out)).model.state_dict()


@pytest.mark.slow
def test_training_from_cache_gives_the_decode_paths_weights(pool, tmp_path, monkeypatch):
    store, table = pool
    cached, a = _train(store, table, tmp_path / "cached")
    monkeypatch.setenv("SMALLCOMP_IMAGE_CACHE_GB", "0")
    decoded, b = _train(store, table, tmp_path / "decoded")
    assert cached["feed"] == "image cache" and decoded["feed"].startswith("decode")
    assert cached["final_loss"] == decoded["final_loss"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cache_is_shared_by_seeds_and_rebuilt_when_changed(pool, capsys):
    store, table = pool
    refs, preprocess = table.column(IMAGE).to_pylist(), _model()
    first, _ = image_cache.ensure(store, refs, preprocess)
    path = first.filename
    assert first.shape == (len(refs), 32, 32, 3) and first.dtype == np.uint8
    again, _ = image_cache.ensure(store, refs, preprocess)
    assert again.filename == path  # one cache per curated set, whatever the seed
    with open(path, "r+b") as f:  # flip bytes in the middle of the pixels
        f.seek(-5000, 2)
        f.write(b"\x00" * 16)
    capsys.readouterr()
    rebuilt, _ = image_cache.ensure(store, refs, preprocess)
    assert "rebuilding" in capsys.readouterr().err
    pil_part = image_cache.split(preprocess)[0]
    fresh = np.stack([np.asarray(pil_part(im)) for im in _images(store, refs)])
    assert np.array_equal(np.asarray(rebuilt), fresh)


def _images(store: Store, refs: list[str]):
    reader = ShardReader(store.root)
    return [reader.read_image(r) for r in refs]


def test_cache_steps_aside_past_its_limit(pool, monkeypatch):
    store, table = pool
    refs = table.column(IMAGE).to_pylist()
    monkeypatch.setenv("SMALLCOMP_IMAGE_CACHE_GB", str(len(refs) * 32 * 32 * 3 / 2**30 / 2))
    assert image_cache.ensure(store, refs, _model()) is None
    monkeypatch.setenv("SMALLCOMP_IMAGE_CACHE_GB", "lots")
    with pytest.raises(Exception, match="SMALLCOMP_IMAGE_CACHE_GB"):
        image_cache.ensure(store, refs, _model())
