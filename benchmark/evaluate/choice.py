"""The official rule of ARO and SugarCrepe: an item is right only if its positive caption scores
strictly higher than every negative (ties count as wrong)."""

from __future__ import annotations

import numpy as np


def choice_correct(scores: np.ndarray) -> np.ndarray:
    """``scores[i, 0]`` is item i's positive, ``scores[i, 1:]`` its negatives -> bool per item."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"need an (items, 1 + negatives) score matrix, got shape {scores.shape}")
    return scores[:, 0] > scores[:, 1:].max(axis=1)


def choice_accuracy(scores: np.ndarray) -> float:
    return float(choice_correct(scores).mean()) if len(scores) else float("nan")
