"""Benchmark: the offline `keywords` backend on coco-mini captions against COCO's instance labels.

A caption's keywords are compared with the categories annotated on its image. Precision says how
often a keyword names an object that is really there; recall is bounded well below 1 because
five short captions never mention every annotated object (a fork on a far table, a car in the
background). Images without an instances entry are left out (their truth is unknown); an image
listed with no annotations has no objects. Run from the repository root:

    python -m benchmarks.keywords_coco [--show-errors 20]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from pathlib import Path

from benchmark.text.vocabulary import categories, coco

SAMPLES = Path(os.environ.get("SMALLCOMP_SAMPLES", Path(__file__).parents[1] / "../shared/data"))
SPLITS = ("train2017", "val2017")


def load(root: Path) -> list[tuple[str, set[str]]]:
    """(caption, categories annotated on its image) for every caption whose image has labels."""
    pairs = []
    for split in SPLITS:
        ann = root / "annotations"
        instances = json.loads((ann / f"instances_{split}.json").read_text())
        names = {c["id"]: c["name"] for c in instances["categories"]}
        truth: dict[int, set[str]] = {im["id"]: set() for im in instances["images"]}
        for a in instances["annotations"]:
            truth[a["image_id"]].add(names[a["category_id"]])
        captions = json.loads((ann / f"captions_{split}.json").read_text())
        pairs += [
            (c["caption"], truth[c["image_id"]])
            for c in captions["annotations"]
            if c["image_id"] in truth
        ]
    return pairs


def ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-errors", type=int, default=0, help="print N false positives")
    args = parser.parse_args()

    pairs = load(SAMPLES / "coco-mini")
    vocab = coco()
    t0 = time.perf_counter()
    found = [set(categories(caption, vocab)) for caption, _ in pairs]
    wall = time.perf_counter() - t0
    tp, fp, fn = Counter(), Counter(), Counter()
    errors = []
    for (caption, truth), got in zip(pairs, found, strict=True):
        for c in got & truth:
            tp[c] += 1
        for c in got - truth:
            fp[c] += 1
            errors.append((c, caption))
        for c in truth - got:
            fn[c] += 1

    print(f"{len(pairs)} captions of {len(SPLITS)} splits, {wall * 1e3:.0f} ms")
    print(f"{'category':<16}{'tp':>5}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>8}")
    for c in vocab.categories:
        if tp[c] + fp[c] + fn[c]:
            p, r = ratio(tp[c], tp[c] + fp[c]), ratio(tp[c], tp[c] + fn[c])
            print(f"{c:<16}{tp[c]:>5}{fp[c]:>5}{fn[c]:>5}{p:>11.3f}{r:>8.3f}")
    t, f, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    print(f"{'micro':<16}{t:>5}{f:>5}{n:>5}{ratio(t, t + f):>11.3f}{ratio(t, t + n):>8.3f}")
    for c, caption in errors[: args.show_errors]:
        print(f"false positive {c!r}: {caption.strip()}")


if __name__ == "__main__":
    main()
