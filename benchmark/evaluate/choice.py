"""The official rules of ARO and SugarCrepe for choosing the true caption among negatives.

SugarCrepe (``pos_score > neg_score``) and ARO's VG-Relation / VG-Attribution (``argmax`` over
``[false, true]``) count an item right only if its positive scores strictly higher than every
negative: ties count as wrong. ARO's COCO-Order / Flickr30k-Order take ``argmax`` over
``[true, perturbed...]``, which resolves a tie to the first option, the true caption: there ties
count as right (a perturbation that leaves a caption unchanged is not held against the model).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def choice_correct(scores: np.ndarray, *, ties: Literal["wrong", "right"] = "wrong") -> np.ndarray:
    """``scores[i, 0]`` is item i's positive, ``scores[i, 1:]`` its negatives -> bool per item."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"need an (items, 1 + negatives) score matrix, got shape {scores.shape}")
    if ties not in ("wrong", "right"):
        raise ValueError(f"ties must be 'wrong' or 'right', got {ties!r}")
    best_negative = scores[:, 1:].max(axis=1)
    return scores[:, 0] > best_negative if ties == "wrong" else scores[:, 0] >= best_negative


def choice_accuracy(scores: np.ndarray, *, ties: Literal["wrong", "right"] = "wrong") -> float:
    """Mean of :func:`choice_correct`; NaN when there are no items."""
    return float(choice_correct(scores, ties=ties).mean()) if len(scores) else float("nan")


def item_se(correct: np.ndarray, resamples: int = 2000, seed: int = 0) -> float:
    """How far drawing another eval set of the same size moves the score: the standard
    deviation of the accuracy over bootstrap resamples of the items. Resampling n items with
    replacement counts Binomial(n, accuracy) of them right, so that is what is drawn."""
    c = np.asarray(correct, dtype=bool)
    if not len(c):
        return float("nan")
    draws = np.random.default_rng(seed).binomial(len(c), c.mean(), resamples)
    return float(draws.std() / len(c))
