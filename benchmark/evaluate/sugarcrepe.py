"""SugarCrepe: does the model prefer an image's caption over a hard negative built from it?

Reads the 7 official JSONs (``{key: {filename, caption, negative_caption}}``) and COCO val2017
images. Scoring is the official ``main_eval.py`` rule, positive cosine strictly above the
negative's, per subset. The add / replace / swap groups are the accuracy over all items of
their subsets, as the paper's group columns are: in its NegCLIP re-evaluation (the repository's
assets/re_eval.png) pretrained ViT-B/32 has REPLACE 80.76, its three subsets of the main table
(90.92 / 80.08 / 69.20) weighted by their 1,652 / 788 / 1,406 items; their plain mean is 80.07.
The paper quotes no single number; three stand beside the groups, each named, since papers that
quote one differ in which: ``average`` (the mean of the three groups), ``subset_mean`` (the plain
mean of the seven subsets) and ``item_mean`` (every item counted once, so the big subsets weigh
most). Items whose image is missing or unreadable are skipped and counted per subset.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark.evaluate.choice import choice_correct

if TYPE_CHECKING:  # torch and open_clip load inside the evaluation: loading the JSONs stays cheap
    from benchmark.models.clip import ClipBundle

GROUPS = {
    "add": ("add_att", "add_obj"),
    "replace": ("replace_att", "replace_obj", "replace_rel"),
    "swap": ("swap_att", "swap_obj"),
}
SUBSETS = tuple(name for names in GROUPS.values() for name in names)


@dataclass(frozen=True)
class Item:
    key: str
    image: Path
    caption: str
    negative: str


@dataclass
class Subset:
    """One subset's evaluable items, out of ``total`` in its JSON."""

    name: str
    total: int
    items: list[Item] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def load(root: Path, image_root: Path, subsets: Sequence[str] = SUBSETS) -> list[Subset]:
    """The subsets' items whose image file exists; the others are counted as skipped."""
    out = []
    for name in subsets:
        if name not in SUBSETS:
            raise ValueError(f"unknown SugarCrepe subset '{name}'; choose from {SUBSETS}")
        data = json.loads((Path(root) / f"{name}.json").read_text(encoding="utf-8"))
        subset = Subset(name, total=len(data))
        for key, entry in data.items():
            try:
                item = Item(
                    key,
                    Path(image_root) / entry["filename"],
                    entry["caption"],
                    entry["negative_caption"],
                )
            except (KeyError, TypeError):
                subset.skipped["malformed_item"] += 1
                continue
            if item.image.is_file():
                subset.items.append(item)
            else:
                subset.skipped["missing_image"] += 1
        out.append(subset)
    return out


def _pooled(parts: Sequence[np.ndarray]) -> float:
    items = sum(len(c) for c in parts)
    return sum(int(c.sum()) for c in parts) / items if items else float("nan")


def subset_metrics(correct: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy per subset, per group (over the items of its subsets, for groups with any) and
    the three overall numbers (``average`` of the groups, ``subset_mean``, ``item_mean``); NaN
    where there are no items."""
    out = {name: _pooled([c]) for name, c in correct.items()}
    for group, names in GROUPS.items():
        parts = [correct[n] for n in names if n in correct and len(correct[n])]
        if parts:
            out[group] = _pooled(parts)
    groups = [out[g] for g in GROUPS if g in out]
    scored = [out[name] for name, c in correct.items() if len(c)]
    out["average"] = float(np.mean(groups)) if groups else float("nan")
    out["subset_mean"] = float(np.mean(scored)) if scored else float("nan")
    out["item_mean"] = _pooled(list(correct.values()))
    return out


def evaluate(
    bundle: ClipBundle,
    root: Path,
    *,
    image_root: Path | None = None,
    subsets: Sequence[str] = SUBSETS,
    batch_size: int = 256,
    num_workers: int = 2,
    model_name: str = "",
) -> dict:
    """Per-subset and per-group accuracy. ``root`` holds the JSONs; images default to
    ``root/val2017`` (clip_benchmark's layout)."""
    from benchmark.evaluate.zeroshot import ImageRef, encode_image_files, encode_texts

    image_root = Path(image_root) if image_root is not None else Path(root) / "val2017"
    loaded = load(root, image_root, subsets)
    paths = sorted({item.image for s in loaded for item in s.items})
    row = {path: i for i, path in enumerate(paths)}
    images = encode_image_files(bundle, [ImageRef(p) for p in paths], batch_size, num_workers)
    reason = {paths[i]: why for i, why in enumerate(images.reasons) if why}
    correct, report = {}, {}
    for s in loaded:
        good = [item for item in s.items if item.image not in reason]
        for item in s.items:
            if item.image in reason:
                s.skipped[reason[item.image]] += 1
        if good:
            texts = encode_texts(bundle, [t for it in good for t in (it.caption, it.negative)])
            feats = images.features[[row[it.image] for it in good]]
            scores = (feats[:, None, :] * texts.view(len(good), 2, -1)).sum(-1).numpy()
            correct[s.name] = choice_correct(scores)
        else:
            correct[s.name] = np.zeros(0, dtype=bool)
        report[s.name] = {"items": s.total, "evaluated": len(good), "skipped": dict(s.skipped)}
    return {
        "dataset": "sugar_crepe",
        "model": model_name,
        "task": "image_caption_selection",
        "metrics": subset_metrics(correct),
        "skipped": dict(sum((s.skipped for s in loaded), Counter())),
        "subsets": report,
    }
