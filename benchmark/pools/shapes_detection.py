"""Shapes-world scenes as a YOLO detection dataset, to train the counterfactual detector.

The scenes are the pool's own (``shapes.scene_of``, rendered by ``world.render``), so a
detector trained here sees exactly the images it will be asked about; validation scenes come from
another seed, so its mAP is measured on scenes it never saw. Labels are the world's boxes, in the
world's pixel convention, so a trained detector's boxes compare directly with ``Obj.box`` and feed
``inpainter.mask_from_boxes`` unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from benchmark.pools.shapes import scene_of
from benchmark.store import write_atomic
from benchmark.world import CANVAS, SHAPES, Obj, Scene, render

if TYPE_CHECKING:
    from benchmark.spec.track import DetectorTraining


def label_line(obj: Obj) -> str:
    """One YOLO label row: class index and the box as centre/size fractions of the canvas."""
    x0, y0, x1, y1 = obj.box
    cx, cy = (x0 + x1) / 2 / CANVAS, (y0 + y1) / 2 / CANVAS
    w, h = (x1 - x0) / CANVAS, (y1 - y0) / CANVAS
    return f"{SHAPES.index(obj.shape)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def _write_split(
    root: Path, split: str, n: int, seed: int, image_size: int, max_objects: int
) -> None:
    images, labels = root / "images" / split, root / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        objs, _ = scene_of(seed, i, max_objects)
        # Its own stream: the noise must not shift when scene_of's draws change, nor vice versa.
        noise_seed = int(np.random.default_rng([seed, i, 2]).integers(2**31))
        render(Scene(objs, noise_seed), image_size).save(images / f"{i:07d}.png")
        (labels / f"{i:07d}.txt").write_text("".join(label_line(o) + "\n" for o in objs))


def export(
    out: Path,
    train_size: int,
    val_size: int,
    seed: int = 0,
    image_size: int = CANVAS,
    val_seed: int | None = None,
    max_objects: int = 3,
) -> Path:
    """Write ``images/{train,val}``, ``labels/{train,val}`` and ``data.yaml`` under ``out``.

    Validation scenes come from ``val_seed`` (default ``seed + 1``), never from ``seed``, so a
    train/val overlap cannot happen by construction. Returns the path of ``data.yaml``, with an
    absolute ``path`` so ultralytics never resolves it against its own datasets directory.
    """
    val_seed = seed + 1 if val_seed is None else val_seed
    if val_seed == seed:
        raise ValueError("val_seed must differ from seed: validation scenes would be training ones")
    out = Path(out).resolve()
    _write_split(out, "train", train_size, seed, image_size, max_objects)
    _write_split(out, "val", val_size, val_seed, image_size, max_objects)
    data = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(SHAPES)),
    }
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def build_detector(work: Path, t: DetectorTraining, device: str) -> None:
    """The detector stage's build: scenes exported, a detector trained on them and scored on
    the held-out ones, into ``work`` (``detector.pt``; ``report.json`` with its training time
    and mAP). The scenes and ultralytics' run directory are removed once used."""
    from benchmark.models.detector import evaluate_detector, train_detector

    data = export(work / "data", t.train_size, t.val_size, t.seed, t.image_size)
    t0 = time.perf_counter()
    weights = train_detector(
        data,
        work / "yolo",
        model=t.model,
        epochs=t.epochs,
        imgsz=t.imgsz,
        batch=t.batch,
        seed=t.seed,
        device=device,
        **t.overrides,
    )
    wall = time.perf_counter() - t0
    os.replace(weights, work / "detector.pt")
    shutil.rmtree(work / "yolo", ignore_errors=True)
    metrics = evaluate_detector(work / "detector.pt", data, t.imgsz, "val", device)
    shutil.rmtree(work / "data", ignore_errors=True)
    report = {"train_wall_s": round(wall, 1), "device": device, **metrics}
    write_atomic(work / "report.json", json.dumps(report, indent=2))
