"""ARO (Yuksekgonul et al., ICLR 2023): relations, attributes and word order.

VG-Relation / VG-Attribution read the official JSONs and crop each image to its box; accuracy is
plain and macro as the paper reports it (VG-R: mean over relations, leaving out the authors'
symmetric-relation list; VG-A: mean over attribute pairs with at least 25 cases). COCO-Order /
Flickr30k-Order perturb every caption four ways, as the official code does, from any caption set
:mod:`benchmark.evaluate.retrieval` reads; the model must score the original above all four.
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

import numpy as np
import torch

from benchmark.evaluate import retrieval
from benchmark.evaluate.choice import choice_correct
from benchmark.evaluate.zeroshot import ImageRef, encode_image_files, encode_texts
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

NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
ADJECTIVE_TAGS = frozenset({"JJ", "JJR", "JJS"})
PERTURBATIONS = (
    "shuffle_nouns_and_adj",
    "shuffle_allbut_nouns_and_adj",
    "shuffle_within_trigrams",
    "shuffle_trigrams",
)
TAGGER_PERTURBATIONS = frozenset(PERTURBATIONS[:2])
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


def word_tokenize(caption: str) -> list[str]:
    """NLTK's word tokenizer, as the official trigram perturbations use; ``preserve_line`` skips
    the sentence splitter, which needs a punkt download (captions are one sentence)."""
    try:
        import nltk
    except ImportError as err:
        raise ImportError("the ARO trigram perturbations need NLTK: pip install nltk") from err
    return nltk.word_tokenize(caption, preserve_line=True)


def _shuffle_at(tokens: list[str], positions: Sequence[int], rng: random.Random) -> None:
    values = [tokens[i] for i in positions]
    rng.shuffle(values)
    for i, value in zip(positions, values, strict=True):
        tokens[i] = value


def shuffle_nouns_and_adj(tokens: Sequence[str], tags: Sequence[str], rng: random.Random) -> str:
    """Permute the nouns among themselves, then the adjectives among themselves."""
    out = list(tokens)
    _shuffle_at(out, [i for i, t in enumerate(tags) if t in NOUN_TAGS], rng)
    _shuffle_at(out, [i for i, t in enumerate(tags) if t in ADJECTIVE_TAGS], rng)
    return " ".join(out)


def shuffle_allbut_nouns_and_adj(
    tokens: Sequence[str], tags: Sequence[str], rng: random.Random
) -> str:
    """Permute every token that is neither a noun nor an adjective; those stay in place."""
    out = list(tokens)
    keep = NOUN_TAGS | ADJECTIVE_TAGS
    _shuffle_at(out, [i for i, t in enumerate(tags) if t not in keep], rng)
    return " ".join(out)


def _trigrams(tokens: Sequence[str]) -> list[list[str]]:
    return [list(tokens[i : i + 3]) for i in range(0, len(tokens), 3)]


def shuffle_within_trigrams(tokens: Sequence[str], rng: random.Random) -> str:
    """Permute the words inside each consecutive trigram."""
    trigrams = _trigrams(tokens)
    for trigram in trigrams:
        rng.shuffle(trigram)
    return " ".join(" ".join(t) for t in trigrams)


def shuffle_trigrams(tokens: Sequence[str], rng: random.Random) -> str:
    """Permute the order of the consecutive trigrams."""
    trigrams = _trigrams(tokens)
    rng.shuffle(trigrams)
    return " ".join(" ".join(t) for t in trigrams)


def order_options(
    captions: Sequence[str],
    perturbations: Sequence[str] = PERTURBATIONS,
    seed: int = 0,
    max_words: int = 30,
) -> list[list[str]]:
    """Per caption: the normalised caption, then each perturbation of it (normalised after
    perturbing, as the official code does). One seeded generator makes the set reproducible."""
    unknown = set(perturbations) - set(PERTURBATIONS)
    if unknown or not perturbations:
        raise ValueError(
            f"perturbations must be a non-empty subset of {PERTURBATIONS}; "
            f"got {list(perturbations)}"
        )
    tagged = tag(captions) if TAGGER_PERTURBATIONS & set(perturbations) else None
    needs_words = bool(set(perturbations) - TAGGER_PERTURBATIONS)
    rng = random.Random(seed)
    out = []
    for i, caption in enumerate(captions):
        words = word_tokenize(caption) if needs_words else []
        options = [caption]
        for name in perturbations:
            if name == "shuffle_nouns_and_adj":
                options.append(shuffle_nouns_and_adj(*tagged[i], rng))
            elif name == "shuffle_allbut_nouns_and_adj":
                options.append(shuffle_allbut_nouns_and_adj(*tagged[i], rng))
            elif name == "shuffle_within_trigrams":
                options.append(shuffle_within_trigrams(words, rng))
            else:
                options.append(shuffle_trigrams(words, rng))
        out.append([pre_caption(o, max_words) for o in options])
    return out


# --- evaluation ----------------------------------------------------------------------------------


def _choice_scores(
    bundle: ClipBundle, image_features: torch.Tensor, options: list[list[str]]
) -> np.ndarray:
    """(items, options) cosine scores of each item's image against its caption options."""
    n, k = len(options), len(options[0])
    texts = encode_texts(bundle, [t for opts in options for t in opts]).view(n, k, -1)
    return (image_features[:, None, :] * texts).sum(-1).numpy()


def _evaluate_vg(
    bundle: ClipBundle, root: Path, task: str, batch_size: int, workers: int
) -> tuple[dict, Counter, dict]:
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
    data = retrieval.load(root, captions, split_file)
    images = encode_image_files(bundle, [ImageRef(p) for p in data.images], batch_size, workers)
    skipped = data.skipped + images.skipped
    rows, texts = [], []
    for i, keep in enumerate(images.ok.tolist()):
        if keep:
            chosen = data.captions[i][:captions_per_image]
            rows += [i] * len(chosen)
            texts += chosen
    if rows:
        options = order_options(texts, perturbations, seed, max_words)
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
    seed: int = 0,
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
