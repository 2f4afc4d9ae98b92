"""Image-text retrieval recall@k on COCO-format captions or the Flickr token format.

Recall is clip_benchmark's (``recall_at_k``: an image or caption counts as found if any of its
positives is in the top k), so numbers match its ``zeroshot_retrieval``. A Karpathy split file
(``dataset_coco.json``, ``dataset_flickr30k.json``) gives the ``test`` images with their own
captions; without one every captioned image present in the directory is used. A split file
whose test images the directory lacks by more than a handful is an error, not a smaller test set.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

from benchmark.evaluate.zeroshot import ImageRef, encode_image_files, encode_texts
from benchmark.models.clip import ClipBundle

# Test images a split file may list that the image directory lacks (a few corrupt downloads);
# more means the wrong directory or captions file: val2017 alone holds about one in eight of
# COCO's Karpathy test images (val2014), and a smaller test set would pass for the real one.
HANDFUL = 5
# Where a Karpathy COCO image may be, by its cocoid: the 2014 layout the split file names
# (<filepath>/<filename>), the image directory itself, or the 2017 re-split under 2017 names.
COCO_2017_DIRS = ("val2017", "train2017", "")
FLICKR_DIRS = ("flickr30k-images", "Images")


@dataclass
class CaptionSet:
    """Images with their captions; ``keys`` identify images in a Karpathy split file."""

    images: list[Path] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def _collect(rows: Sequence[tuple[str, str | Path, list[str]]], images_dir: Path) -> CaptionSet:
    """A CaptionSet from (key, file name, captions) rows; empty captions are dropped and counted."""
    out = CaptionSet()
    for key, name, captions in rows:
        kept = [c.strip() for c in captions if c and c.strip()]
        if len(kept) < len(captions):
            out.skipped["empty_caption"] += len(captions) - len(kept)
        out.images.append(images_dir / name)
        out.keys.append(key)
        out.captions.append(kept)
    return out


def load_coco(annotations: Path, images_dir: Path) -> CaptionSet:
    """COCO captions JSON (``images`` + ``annotations``), images by id; keys are COCO image ids."""
    data = json.loads(Path(annotations).read_text(encoding="utf-8"))
    captions: dict[int, list[str]] = defaultdict(list)
    for ann in data["annotations"]:
        captions[ann["image_id"]].append(ann.get("caption") or "")
    images = sorted(data["images"], key=lambda im: im["id"])
    rows = [(str(im["id"]), im["file_name"], captions.pop(im["id"], [])) for im in images]
    out = _collect(rows, Path(images_dir))
    if captions:
        out.skipped["caption_of_unknown_image"] += sum(len(c) for c in captions.values())
    return out


def load_flickr(token_file: Path, images_dir: Path) -> CaptionSet:
    """Flickr token file (``<name>.jpg#k<TAB>caption``); keys are image file names."""
    captions: dict[str, list[str]] = defaultdict(list)
    malformed = 0
    for line in Path(token_file).read_text(encoding="utf-8").splitlines():
        key, tab, caption = line.partition("\t")
        name = key.rsplit("#", 1)[0]
        if tab and name:
            captions[name].append(caption)
        elif line.strip():
            malformed += 1
    out = _collect([(name, name, caps) for name, caps in captions.items()], Path(images_dir))
    if malformed:
        out.skipped["malformed_line"] += malformed
    return out


def _karpathy_test(split_file: Path) -> list[dict]:
    data = json.loads(Path(split_file).read_text(encoding="utf-8"))
    test = [im for im in data["images"] if im.get("split") == "test"]
    if not test:
        raise ValueError(f"{split_file}: no image has split 'test'")
    return test


def _karpathy_key(image: dict) -> str:
    return str(image["cocoid"]) if "cocoid" in image else image["filename"]


def karpathy_test_keys(split_file: Path) -> list[str]:
    """Keys of the ``test`` images in a Karpathy split (dataset_coco.json / dataset_flickr30k.json):
    the COCO id where the file has one, otherwise the file name."""
    return [_karpathy_key(im) for im in _karpathy_test(split_file)]


def _karpathy_image(image: dict, root: Path) -> Path:
    """The file of a Karpathy entry, relative to ``root``: a COCO image by its cocoid under
    either year's name (val2014 images are in val2017 or train2017 since the 2017 re-split), a
    Flickr image by file name; the split file's own path when none exists (then counted missing)."""
    named = Path(image.get("filepath", "")) / image["filename"]
    candidates = [named, Path(image["filename"])]
    if "cocoid" in image:
        candidates += [Path(d) / f"{int(image['cocoid']):012d}.jpg" for d in COCO_2017_DIRS]
    else:
        candidates += [Path(d) / image["filename"] for d in FLICKR_DIRS]
    return next((c for c in candidates if (root / c).is_file()), named)


def load_karpathy(test: Sequence[dict], root: Path) -> CaptionSet:
    """Karpathy test entries with the captions the split file carries (``sentences[].raw``), as
    COCO-Order and Karpathy-split retrieval use them; images are found under ``root``."""
    rows = [
        (_karpathy_key(im), _karpathy_image(im, root), [s.get("raw") for s in im["sentences"]])
        for im in test
    ]
    return _collect(rows, Path(root))


def _check_agrees(split_file: Path, root: Path, missing: list[str], total: int) -> None:
    """More than ``HANDFUL`` listed test images not found is a wrong directory, not a test set."""
    if len(missing) > HANDFUL:
        raise ValueError(
            f"{split_file}: {len(missing)} of its {total} test images are not found under {root} "
            f"(e.g. {', '.join(missing[:5])}); COCO images are looked up by cocoid as "
            f"<filepath>/<filename> and as val2017/ or train2017/<12-digit id>.jpg, Flickr ones "
            f"by file name"
        )


def load(root: Path, captions: Path | None = None, split_file: Path | None = None) -> CaptionSet:
    """The evaluable images of a retrieval set, with what was dropped counted.

    ``root`` is a dataset in its official layout (Flickr: ``Images/`` + ``captions.txt``; COCO:
    ``val2017/`` + ``annotations/captions_val2017.json``), or, with ``captions`` given, the
    directory holding the images (a ``.json`` captions file is COCO format, others Flickr tokens).
    A ``split_file`` whose test entries carry ``sentences`` (Karpathy's own files do) supplies the
    captions itself unless ``captions`` is given; either way only its test images are kept, and
    more than ``HANDFUL`` of them missing (no captions, no file) is a ``ValueError``.
    """
    root = Path(root)
    test = _karpathy_test(split_file) if split_file is not None else None
    if test is not None and captions is None and all("sentences" in im for im in test):
        out, missing = _present(load_karpathy(test, root), range(len(test)))
        _check_agrees(split_file, root, missing, len(test))
        return out
    if captions is not None:
        images_dir = root
    elif (root / "captions.txt").is_file() and (root / "Images").is_dir():
        captions, images_dir = root / "captions.txt", root / "Images"
    elif (root / "annotations" / "captions_val2017.json").is_file():
        captions, images_dir = root / "annotations" / "captions_val2017.json", root / "val2017"
    else:
        raise ValueError(f"{root}: no Flickr or COCO layout found; pass captions=<file>")
    captions = Path(captions)
    data = (
        load_coco(captions, images_dir)
        if captions.suffix == ".json"
        else load_flickr(captions, images_dir)
    )
    if test is None:
        return _present(data, range(len(data.images)))[0]
    where = {key: i for i, key in enumerate(data.keys)}
    keys = [_karpathy_key(im) for im in test]
    keep = [where[k] for k in keys if k in where]
    absent = [k for k in keys if k not in where]
    if absent:
        data.skipped["not_in_captions"] += len(absent)
    out, missing = _present(data, keep)
    _check_agrees(split_file, root, absent + missing, len(test))
    return out


def _present(data: CaptionSet, keep: Sequence[int]) -> tuple[CaptionSet, list[str]]:
    """Rows ``keep`` of ``data`` whose image file exists and that have captions, and the keys of
    the rows whose file does not exist."""
    out = CaptionSet(skipped=data.skipped)
    missing = []
    for i in keep:
        if not data.images[i].is_file():
            out.skipped["missing_image"] += 1
            missing.append(data.keys[i])
        elif not data.captions[i]:
            out.skipped["no_captions"] += 1
        else:
            out.images.append(data.images[i])
            out.keys.append(data.keys[i])
            out.captions.append(data.captions[i])
    return out, missing


def recalls(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_image: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict:
    """clip_benchmark's retrieval recall@k; ``text_image[t]`` is the image row of caption t."""
    scores = text_features @ image_features.T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(scores)), text_image] = True
    out = {}
    for k in ks:
        # recall_at_k needs k <= candidates; at k >= candidates every query is found anyway.
        found_image = batchify(recall_at_k, scores, positive, 256, "cpu", k=min(k, scores.shape[1]))
        found_text = batchify(
            recall_at_k, scores.T, positive.T, 256, "cpu", k=min(k, scores.shape[0])
        )
        out[f"image_retrieval_recall@{k}"] = (found_image > 0).float().mean().item()
        out[f"text_retrieval_recall@{k}"] = (found_text > 0).float().mean().item()
    return out


def evaluate(
    bundle: ClipBundle,
    root: Path,
    *,
    captions: Path | None = None,
    split_file: Path | None = None,
    ks: Sequence[int] = (1, 5, 10),
    batch_size: int = 256,
    num_workers: int = 2,
    model_name: str = "",
) -> dict:
    """Image->text and text->image recall@k; see :func:`load` for what ``root`` may be."""
    data = load(root, captions, split_file)
    images = encode_image_files(bundle, [ImageRef(p) for p in data.images], batch_size, num_workers)
    skipped = data.skipped + images.skipped
    kept = images.ok.nonzero().flatten().tolist()
    texts = [c for i in kept for c in data.captions[i]]
    text_image = torch.tensor([row for row, i in enumerate(kept) for _ in data.captions[i]])
    if kept:
        scores = recalls(images.features[kept], encode_texts(bundle, texts), text_image, ks)
    else:
        scores = {
            f"{side}_retrieval_recall@{k}": float("nan") for k in ks for side in ("image", "text")
        }
    return {
        "dataset": Path(root).name,
        "model": model_name,
        "task": "zeroshot_retrieval",
        "metrics": scores,
        "skipped": dict(skipped),
        "counts": {"images": len(kept), "captions": len(texts)},
    }
