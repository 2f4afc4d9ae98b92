"""ImageNet-1k zero-shot classification from an ImageFolder ``val/<wnid>/``.

Labels come from the folder's wnid, never from its position among the folders present, so a
partial ImageFolder is still scored 1000-way against the standard class index. Class names and
prompt templates are open_clip's; the metrics are clip_benchmark's.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import open_clip
import torch
from timm.data import ImageNetInfo
from torchvision.datasets.folder import IMG_EXTENSIONS

from benchmark.evaluate.zeroshot import (
    ImageRef,
    classifier,
    encode_image_batches,
    image_batches,
    metrics,
)
from benchmark.models.clip import ClipBundle

TEMPLATES = {
    "openai": open_clip.OPENAI_IMAGENET_TEMPLATES,
    "simple": open_clip.SIMPLE_IMAGENET_TEMPLATES,
}


def wnids() -> list[str]:
    """The ImageNet-1k wnids in class-index order (0 = n01440764 tench), as timm ships them."""
    return list(ImageNetInfo("imagenet-1k").label_names())


def template_strings(name: str) -> list[str]:
    """open_clip's templates (callables) as the ``{c}`` format strings clip_benchmark takes."""
    if name not in TEMPLATES:
        raise ValueError(f"unknown templates '{name}'; choose from {sorted(TEMPLATES)}")
    return [template("{c}") for template in TEMPLATES[name]]


def find_images(root: Path) -> tuple[list[ImageRef], list[int], Counter]:
    """Image refs, their ImageNet-1k class indices, and files skipped as not images.

    ``root`` is the ImageFolder (or a directory holding ``val/``); class folders are named by wnid.
    """
    root = Path(root)
    folder = root / "val" if (root / "val").is_dir() else root
    index = {wnid: i for i, wnid in enumerate(wnids())}
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in classes if p.name not in index]
    if unknown:
        raise ValueError(f"{folder}: folders that are not ImageNet-1k wnids: {unknown[:5]}")
    if not classes:
        raise ValueError(f"{folder}: no class folders (expected val/<wnid>/<image>)")
    refs, labels, skipped = [], [], Counter()
    for class_dir in classes:
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if path.suffix.lower() in IMG_EXTENSIONS:
                refs.append(ImageRef(path))
                labels.append(index[class_dir.name])
            else:
                skipped["not_an_image_file"] += 1
    return refs, labels, skipped


def evaluate(
    bundle: ClipBundle,
    root: Path,
    *,
    templates: str = "openai",
    batch_size: int = 256,
    num_workers: int = 2,
    model_name: str = "",
) -> dict:
    """Zero-shot top-1, top-5 and mean per-class recall over the 1,000 ImageNet classes."""
    prompts = template_strings(templates)
    refs, labels, skipped = find_images(root)
    # Workers decode images while the 1,000-class text classifier is being encoded.
    batches = image_batches(refs, bundle.preprocess, batch_size, num_workers)
    weights = classifier(bundle, open_clip.IMAGENET_CLASSNAMES, prompts)
    images = encode_image_batches(bundle, batches, len(refs))
    skipped.update(images.skipped)
    targets = torch.tensor(labels, dtype=torch.long)[images.ok]
    if len(targets):
        scores = metrics(images.features[images.ok], targets, weights)
    else:
        scores = dict.fromkeys(("acc1", "acc5", "mean_per_class_recall"), float("nan"))
    return {
        "dataset": "imagenet1k",
        "model": model_name,
        "task": "zeroshot_classification",
        "metrics": scores,
        "skipped": dict(skipped),
        "counts": {"images": len(targets), "classes": len(set(targets.tolist()))},
        "templates": templates,
    }
