"""Zero-shot classification scored with clip_benchmark's own metric functions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from clip_benchmark.metrics.zeroshot_classification import (
    accuracy,
    balanced_accuracy_score,
    zero_shot_classifier,
)

from benchmark.models.clip import ClipBundle


def classifier(bundle: ClipBundle, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(dim, classes) class embeddings averaged over templates, exactly as clip_benchmark builds them."""
    bundle.model.eval()
    return zero_shot_classifier(
        bundle.model, bundle.tokenizer, list(classnames), list(templates), bundle.device, amp=False
    ).float().cpu()


def metrics(image_features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> dict:
    """top-1, top-5 and mean per-class recall from normalised image features."""
    logits = 100.0 * image_features.float() @ weights
    labels = labels.long()
    if weights.shape[1] >= 5:
        acc1, acc5 = accuracy(logits, labels, topk=(1, 5))
    else:
        (acc1,), acc5 = accuracy(logits, labels, topk=(1,)), float("nan")
    recall = balanced_accuracy_score(labels.numpy(), logits.argmax(dim=1).numpy())
    return {"acc1": float(acc1), "acc5": float(acc5), "mean_per_class_recall": float(recall)}
