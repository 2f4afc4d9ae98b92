"""ARO (Yuksekgonul et al., ICLR 2023): relations, attributes and word order.

VG-Relation / VG-Attribution read the official JSONs and crop each image to its box; accuracy is
plain and macro as the paper reports it (VG-R: mean over relations, leaving out the authors'
symmetric-relation list; VG-A: mean over attribute pairs with at least 25 cases). COCO-Order /
Flickr30k-Order perturb every caption four ways, as the official code does, from any caption set
:mod:`benchmark.evaluate.retrieval` reads; the model must score the original above all four. The
perturbations replay the official random draws (seed 1), so its published Order numbers can be
matched item by item rather than only statistically.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.evaluate.choice import choice_correct
from benchmark.text.penn_tags import ADJECTIVE_TAGS, NOUN_TAGS
from benchmark.text.trigrams import shuffle_trigrams, shuffle_within_trigrams

if TYPE_CHECKING:  # torch and open_clip load inside the evaluation: the text part stays cheap
    import torch

    from benchmark.evaluate.zeroshot import ImageRef
    from benchmark.models.clip import ClipBundle

VG_FILES = {
    "vg_relation": "visual_genome_relation.json",
    "vg_attribution": "visual_genome_attribution.json",
}
ORDER_TASKS = ("coco_order", "flickr30k_order")
TASKS = (*VG_FILES, *ORDER_TASKS)

# From the authors' "Replicate ARO!" notebook: relations whose swapped caption is not false.
SYMMETRIC_RELATIONS = frozenset(
    """adjusting|attached to|between|bigger than|biting|boarding|brushing|chewing|cleaning|climbing|
close to|coming from|coming out of|contain|crossing|dragging|draped over|drinking|drinking from|
driving|driving down|driving on|eating from|eating in|enclosing|exiting|facing|filled with|
floating in|floating on|flying|flying above|flying in|flying over|flying through|full of|
going down|going into|going through|grazing in|growing in|growing on|guiding|hanging from|
hanging in|hanging off|hanging over|higher than|holding onto|hugging|in between|jumping off|
jumping on|jumping over|kept in|larger than|leading|leaning over|leaving|licking|longer than|
looking in|looking into|looking out|looking over|looking through|lying next to|lying on top of|
making|mixed with|mounted on|moving|on the back of|on the edge of|on the front of|
on the other side of|opening|painted on|parked at|parked beside|parked by|parked in|
parked in front of|parked near|parked next to|perched on|petting|piled on|playing|playing in|
playing on|playing with|pouring|reaching for|reading|reflected on|riding on|running in|
running on|running through|seen through|sitting behind|sitting beside|sitting by|
sitting in front of|sitting near|sitting next to|sitting under|skiing down|skiing on|
sleeping in|sleeping on|smiling at|sniffing|splashing|sprinkled on|stacked on|standing against|
standing around|standing behind|standing beside|standing in front of|standing near|
standing next to|staring at|stuck in|surrounding|swimming in|swinging|talking to|topped with|
touching|traveling down|traveling on|tying|typing on|underneath|wading in|waiting for|
walking across|walking by|walking down|walking next to|walking through|working in|working on|
worn on|wrapped around|wrapped in|by|of|near|next to|with|beside|on the side of|around""".replace(
        "\n", ""
    ).split("|")
)
MIN_ATTRIBUTE_CASES = 25

PERTURBATIONS = (
    "shuffle_nouns_and_adj",
    "shuffle_allbut_nouns_and_adj",
    "shuffle_within_trigrams",
    "shuffle_trigrams",
)
TAGGER_PERTURBATIONS = frozenset(PERTURBATIONS[:2])
OFFICIAL_SEED = 1  # main_aro.py's --seed default, given to seed_all before the datasets are built
SPACY_HELP = (
    "the ARO perturbations shuffle_nouns_and_adj and shuffle_allbut_nouns_and_adj need spaCy's "
    "English POS tagger: pip install spacy && python -m spacy download en_core_web_sm "
    "(or pass perturbations=('shuffle_within_trigrams', 'shuffle_trigrams'))"
)


# --- Visual Genome relation / attribution -------------------------------------------------------


@dataclass(frozen=True)
class VGItem:
    image: ImageRef
    true_caption: str
    false_caption: str
    group: str  # relation name (VG-R) or "attr1_attr2" (VG-A), as the official code keys them


def load_vg(root: Path, task: str) -> tuple[list[VGItem], Counter]:
    """Items of ``root/visual_genome_{relation,attribution}.json`` with images in ``root/images``;
    items whose image file is missing or whose entry lacks a field are skipped and counted."""
    from benchmark.evaluate.zeroshot import ImageRef

    root = Path(root)
    entries = json.loads((root / VG_FILES[task]).read_text(encoding="utf-8"))
    items, skipped = [], Counter()
    for entry in entries:
        try:
            box = tuple(float(entry[k]) for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
            if task == "vg_relation":
                group = entry["relation_name"]
            else:
                group = f"{entry['attributes'][0]}_{entry['attributes'][1]}"
            item = VGItem(
                ImageRef(root / "images" / entry["image_path"], box),
                entry["true_caption"],
                entry["false_caption"],
                group,
            )
        except (KeyError, IndexError, TypeError, ValueError):
            skipped["malformed_item"] += 1
            continue
        if item.image.path.is_file():
            items.append(item)
        else:
            skipped["missing_image"] += 1
    return items, skipped


def macro_accuracy(
    correct: np.ndarray,
    groups: Sequence[str],
    *,
    exclude: frozenset[str] = frozenset(),
    min_count: int = 1,
) -> tuple[float, int]:
    """Mean of per-group accuracies over groups not excluded and with ``min_count`` items or more;
    returns (macro accuracy, number of groups averaged), NaN when no group qualifies."""
    correct = np.asarray(correct, dtype=bool)
    groups = np.asarray(groups)
    accs = [
        correct[groups == g].mean()
        for g in np.unique(groups)
        if g not in exclude and (groups == g).sum() >= min_count
    ]
    return (float(np.mean(accs)) if accs else float("nan")), len(accs)


def vg_metrics(task: str, correct: np.ndarray, groups: Sequence[str]) -> tuple[dict, int]:
    """Plain and macro accuracy the way the paper reports the task; also the groups averaged."""
    if task == "vg_relation":
        macro, n = macro_accuracy(correct, groups, exclude=SYMMETRIC_RELATIONS)
    else:
        macro, n = macro_accuracy(correct, groups, min_count=MIN_ATTRIBUTE_CASES)
    acc = float(np.mean(correct)) if len(correct) else float("nan")
    return {"acc": acc, "macro_acc": macro}, n


# --- COCO / Flickr30k order ------------------------------------------------------------------


def pre_caption(caption: str, max_words: int = 30) -> str:
    """BLIP's caption normalisation, which ARO applies to every option (lowercase, drop
    ``.!"()*#:;~``, squeeze spaces, keep ``max_words`` words)."""
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption).rstrip("\n").strip(" ")
    return " ".join(caption.split(" ")[:max_words])


@cache
def _spacy() -> Callable:
    try:
        import spacy

        return spacy.load("en_core_web_sm")
    except (ImportError, OSError) as err:
        raise ImportError(SPACY_HELP) from err


def tag(captions: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """spaCy tokens and Penn Treebank tags per caption, the tagging ARO's perturbations use."""
    return [([t.text for t in doc], [t.tag_ for t in doc]) for doc in _spacy().pipe(captions)]


@cache
def sentence_splitter() -> tuple[str, Callable[[str], list[str]]]:
    """The sentence splitter ``nltk.word_tokenize`` runs before splitting words, and its name.

    That is NLTK's English Punkt model (``punkt_tab``), a separate download offline machines lack;
    without it, Punkt with no trained parameters, which splits every caption of the sample packs
    the same way and differs on abbreviations and initials ("8th ave. and 22 3/4 st.": 2 of the
    9,060 COCO captions in SugarCrepe and NegCLIP's ARO file). Results name the one used."""
    try:
        import nltk
    except ImportError as err:
        raise ImportError("the ARO trigram perturbations need NLTK: pip install nltk") from err
    try:
        nltk.sent_tokenize("")  # loads the English model, or raises when it is not installed
    except LookupError:
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        return "punkt_untrained", PunktSentenceTokenizer().tokenize
    return "punkt_english", nltk.sent_tokenize


def word_tokenize(caption: str) -> list[str]:
    """``nltk.word_tokenize`` as the official trigram perturbations call it: sentences first, then
    NLTK's Treebank words in each (a full stop splits off as a word only at a sentence's end)."""
    import nltk

    _, split = sentence_splitter()
    return [w for s in split(caption) for w in nltk.word_tokenize(s, preserve_line=True)]


def _permute_at(tokens: list[str], positions: Sequence[int], rng: np.random.RandomState) -> None:
    """``tokens[positions] = rng.permutation(tokens[positions])``, the official draw: one
    ``permutation`` call even for fewer than two positions (it then draws nothing). Permuting the
    indices draws the same swaps as permuting the words."""
    values = [tokens[i] for i in positions]
    for i, k in zip(positions, rng.permutation(len(values)), strict=True):
        tokens[i] = values[k]


def shuffle_nouns_and_adj(
    tokens: Sequence[str], tags: Sequence[str], rng: np.random.RandomState
) -> str:
    """Permute the nouns among themselves, then the adjectives among themselves."""
    out = list(tokens)
    _permute_at(out, [i for i, t in enumerate(tags) if t in NOUN_TAGS], rng)
    _permute_at(out, [i for i, t in enumerate(tags) if t in ADJECTIVE_TAGS], rng)
    return " ".join(out)


def shuffle_allbut_nouns_and_adj(
    tokens: Sequence[str], tags: Sequence[str], rng: np.random.RandomState
) -> str:
    """Permute every token that is neither a noun nor an adjective; those stay in place."""
    out = list(tokens)
    keep = NOUN_TAGS | ADJECTIVE_TAGS
    _permute_at(out, [i for i, t in enumerate(tags) if t not in keep], rng)
    return " ".join(out)


def order_options(
    captions: Sequence[str],
    perturbations: Sequence[str] = PERTURBATIONS,
    seed: int = OFFICIAL_SEED,
    max_words: int = 30,
) -> list[list[str]]:
    """Per caption, in the order given: the normalised caption, then each perturbation of it
    (normalised after perturbing), as COCO_Order / Flickr30k_Order build their test cases.

    The official code seeds numpy's and Python's global generators (``seed_all(1)``) and draws the
    noun/adjective shuffles from ``np.random.permutation``, the trigram shuffles from
    ``random.shuffle``, caption after caption. A ``RandomState(seed)`` and a ``Random(seed)`` of
    our own replay those two streams without touching the process's global generators, so with
    the default seed and all four perturbations the options are the official ones; since the
    trigram shuffles have their own stream, leaving out the tagger perturbations keeps them so."""
    unknown = set(perturbations) - set(PERTURBATIONS)
    if unknown or not perturbations:
        raise ValueError(
            f"perturbations must be a non-empty subset of {PERTURBATIONS}; "
            f"got {list(perturbations)}"
        )
    tagged = tag(captions) if TAGGER_PERTURBATIONS & set(perturbations) else None
    needs_words = bool(set(perturbations) - TAGGER_PERTURBATIONS)
    tagger_rng = np.random.RandomState(seed)
    trigram_rng = random.Random(seed)
    out = []
    for i, caption in enumerate(captions):
        words = word_tokenize(caption) if needs_words else []
        options = [caption]
        for name in perturbations:
            if name == "shuffle_nouns_and_adj":
                options.append(shuffle_nouns_and_adj(*tagged[i], tagger_rng))
            elif name == "shuffle_allbut_nouns_and_adj":
                options.append(shuffle_allbut_nouns_and_adj(*tagged[i], tagger_rng))
            elif name == "shuffle_within_trigrams":
                options.append(shuffle_within_trigrams(words, trigram_rng))
            else:
                options.append(shuffle_trigrams(words, trigram_rng))
        out.append([pre_caption(o, max_words) for o in options])
    return out


# --- evaluation ----------------------------------------------------------------------------------


def _choice_scores(
    bundle: ClipBundle, image_features: torch.Tensor, options: list[list[str]]
) -> np.ndarray:
    """(items, options) cosine scores of each item's image against its caption options."""
    from benchmark.evaluate.zeroshot import encode_texts

    n, k = len(options), len(options[0])
    texts = encode_texts(bundle, [t for opts in options for t in opts]).view(n, k, -1)
    return (image_features[:, None, :] * texts).sum(-1).numpy()


def _evaluate_vg(
    bundle: ClipBundle, root: Path, task: str, batch_size: int, workers: int
) -> tuple[dict, Counter, dict]:
    from benchmark.evaluate.zeroshot import encode_image_files

    items, skipped = load_vg(root, task)
    images = encode_image_files(bundle, [it.image for it in items], batch_size, workers)
    skipped += images.skipped
    ok = images.ok
    good = [it for it, keep in zip(items, ok.tolist(), strict=True) if keep]
    if good:
        options = [[it.true_caption, it.false_caption] for it in good]
        correct = choice_correct(_choice_scores(bundle, images.features[ok], options))
    else:
        correct = np.zeros(0, dtype=bool)
    scores, groups = vg_metrics(task, correct, [it.group for it in good])
    return scores, skipped, {"items": len(good), "groups": groups}


def _evaluate_order(
    bundle: ClipBundle,
    root: Path,
    *,
    captions: Path | None,
    split_file: Path | None,
    perturbations: Sequence[str],
    captions_per_image: int | None,
    seed: int,
    max_words: int,
    batch_size: int,
    workers: int,
) -> tuple[dict, Counter, dict]:
    if TAGGER_PERTURBATIONS & set(perturbations):
        _spacy()  # fail before any image work when the tagger is missing
    from benchmark.evaluate import retrieval
    from benchmark.evaluate.zeroshot import ImageRef, encode_image_files

    data = retrieval.load(root, captions, split_file)
    images = encode_image_files(bundle, [ImageRef(p) for p in data.images], batch_size, workers)
    skipped = data.skipped + images.skipped
    rows, texts = [], []
    for i, image_captions in enumerate(data.captions):
        chosen = image_captions[:captions_per_image]
        rows += [i] * len(chosen)
        texts += chosen
    # Every caption draws, also those of images that fail to load: the draws run through the
    # captions in order, and the official code builds every test case before reading an image.
    options = order_options(texts, perturbations, seed, max_words)
    ok = images.ok.tolist()
    options = [o for o, i in zip(options, rows, strict=True) if ok[i]]
    rows = [i for i in rows if ok[i]]
    if rows:
        scores = _choice_scores(bundle, images.features[rows], options)
        acc = float(choice_correct(scores, ties="right").mean())
    else:
        acc = float("nan")
    return {"acc": acc}, skipped, {"items": len(rows), "images": len(set(rows))}


def evaluate(
    bundle: ClipBundle,
    root: Path,
    *,
    task: str,
    captions: Path | None = None,
    split_file: Path | None = None,
    perturbations: Sequence[str] = PERTURBATIONS,
    captions_per_image: int | None = None,
    seed: int = OFFICIAL_SEED,
    max_words: int = 30,
    batch_size: int = 256,
    num_workers: int = 2,
    model_name: str = "",
) -> dict:
    """One ARO task. ``acc`` is plain accuracy (for the order tasks, the paper's Precision@1).

    VG tasks: ``root`` is the official directory (JSON + ``images/``). Order tasks: ``root`` (and
    ``captions`` / ``split_file``) as in :func:`benchmark.evaluate.retrieval.load`; every caption
    of an image is an item, as in the official code, unless ``captions_per_image`` caps it.
    """
    if task in VG_FILES:
        scores, skipped, counts = _evaluate_vg(bundle, root, task, batch_size, num_workers)
        extra = {}
    elif task in ORDER_TASKS:
        scores, skipped, counts = _evaluate_order(
            bundle,
            root,
            captions=captions,
            split_file=split_file,
            perturbations=perturbations,
            captions_per_image=captions_per_image,
            seed=seed,
            max_words=max_words,
            batch_size=batch_size,
            workers=num_workers,
        )
        extra = {"perturbations": list(perturbations), "seed": seed}
        if set(perturbations) - TAGGER_PERTURBATIONS:
            extra["sentence_splitter"] = sentence_splitter()[0]
    else:
        raise ValueError(f"unknown ARO task '{task}'; choose from {TASKS}")
    return {
        "dataset": f"aro_{task}",
        "model": model_name,
        "task": "image_caption_selection",
        "metrics": scores,
        "skipped": dict(skipped),
        "counts": counts,
        **extra,
    }
