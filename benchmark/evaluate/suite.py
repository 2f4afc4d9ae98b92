"""Real-data eval tasks as a track names them: each wraps one task family's ``evaluate`` and adds
the single headline number the leaderboard shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.evaluate import aro, imagenet, retrieval, sugarcrepe
from benchmark.evaluate.registry import register
from benchmark.models.clip import ClipBundle

PATH_OPTIONS = ("root", "captions", "split_file", "image_root")


def _paths(options: dict) -> dict:
    return {k: Path(v) if k in PATH_OPTIONS and v is not None else v for k, v in options.items()}


@register("imagenet", "acc1")
def imagenet_task(bundle: ClipBundle, options: dict) -> dict:
    """ImageNet-1k zero-shot (ImageFolder ``val/<wnid>/``)."""
    return imagenet.evaluate(bundle, **_paths(options))


@register("sugarcrepe", "average")
def sugarcrepe_task(bundle: ClipBundle, options: dict) -> dict:
    """SugarCrepe's 7 subsets; the headline is the mean of the replace/swap/add group means."""
    out = sugarcrepe.evaluate(bundle, **_paths(options))
    groups = [out["metrics"][g] for g in sugarcrepe.GROUPS if g in out["metrics"]]
    out["metrics"]["average"] = float(np.mean(groups)) if groups else float("nan")
    return out


def _aro(task: str, headline: str) -> None:
    def run(bundle: ClipBundle, options: dict) -> dict:
        return aro.evaluate(bundle, task=task, **_paths(options))

    run.__doc__ = f"ARO {task} (official scoring)."
    register(task, headline)(run)


for _task in aro.VG_FILES:
    _aro(_task, "macro_acc")
for _task in aro.ORDER_TASKS:
    _aro(_task, "acc")


def _retrieval(name: str) -> None:
    def run(bundle: ClipBundle, options: dict) -> dict:
        out = retrieval.evaluate(bundle, **_paths(options))
        m = out["metrics"]
        m["mean_recall@1"] = (m["image_retrieval_recall@1"] + m["text_retrieval_recall@1"]) / 2
        return out

    run.__doc__ = f"{name}: image<->text recall@1/5/10; headline mean recall@1."
    register(name, "mean_recall@1")(run)


_retrieval("retrieval_coco")
_retrieval("retrieval_flickr")
