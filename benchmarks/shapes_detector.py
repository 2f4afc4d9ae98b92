"""Shapes detector: train YOLOv8n on shapes scenes, score it on held-out scenes, time detection.

The counterfactual generator removes the objects a caption names; on the shapes track it finds
them with a YOLOv8n trained here. Defaults are the shapes track's ``detector.train`` block (the
settings the harness trains with: the cheapest found to reach mAP50 >= 0.9 on held-out scenes on
CPU; small objects on a flat background need neither mosaic nor scale jitter):

    python benchmarks/shapes_detector.py                  # export, train, evaluate, time
    python benchmarks/shapes_detector.py --epochs 20 --train-size 3000 --out /tmp/det

Prints the export, training and evaluation wall seconds (and the training process's CPU seconds:
ultralytics trains on cpu_count - 1 threads), box mAP50 and mAP50-95 on the validation scenes
(another seed than the training ones), and detection throughput in images/s at batch 64 through
``Detector.detect``, with images decoded before timing and one untimed warm-up batch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.models.detector import Detector, evaluate_detector, train_detector  # noqa: E402
from benchmark.pools.shapes_detection import export  # noqa: E402
from benchmark.spec.load import load_track  # noqa: E402

SETTINGS = load_track(
    Path(__file__).resolve().parents[1] / "tracks" / "shapes.yaml"
).track.detector.train


def throughput(weights: Path, images: list[Image.Image], imgsz: int, batch: int, device: str):
    detector = Detector(weights, device=device, imgsz=imgsz, allow=[weights])  # trained here
    detector.detect(images[:batch], batch_size=batch)
    start = time.perf_counter()
    detections = detector.detect(images, batch_size=batch)
    seconds = time.perf_counter() - start
    return len(images) / seconds, sum(map(len, detections)) / len(images)


def run(args: argparse.Namespace, out: Path) -> None:
    start = time.perf_counter()
    data = export(out / "data", args.train_size, args.val_size, args.seed, SETTINGS.image_size)
    print(
        f"export      {args.train_size} train + {args.val_size} val scenes: "
        f"{time.perf_counter() - start:.1f} s"
    )

    start, cpu = time.perf_counter(), time.process_time()
    weights = train_detector(
        data,
        out / "model",
        model=SETTINGS.model,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        device=args.device,
        val=False,
        **SETTINGS.overrides,
    )
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"train       {args.epochs} epochs, batch {args.batch}, imgsz {args.imgsz}: "
        f"{train_s:.1f} s wall, {train_cpu:.1f} s CPU ({train_cpu / 60:.1f} CPU-minutes)"
    )

    start = time.perf_counter()
    metrics = evaluate_detector(weights, data, imgsz=args.imgsz, device=args.device)
    print(f"evaluate    {time.perf_counter() - start:.1f} s")
    print(f"mAP50       {metrics['mAP50']:.4f}")
    print(f"mAP50-95    {metrics['mAP50-95']:.4f}")

    images = []
    for path in sorted((out / "data" / "images" / "val").glob("*.png")):
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    rate, per_image = throughput(weights, images, args.imgsz, args.detect_batch, args.device)
    print(
        f"detect      {rate:.0f} images/s at batch {args.detect_batch} on {args.device} "
        f"({torch.get_num_threads()} threads), {per_image:.2f} detections/image at conf 0.25"
    )
    print(f"weights     {weights}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep dataset and weights here (default: temp)")
    parser.add_argument("--train-size", type=int, default=SETTINGS.train_size)
    parser.add_argument("--val-size", type=int, default=SETTINGS.val_size)
    parser.add_argument("--epochs", type=int, default=SETTINGS.epochs)
    parser.add_argument("--batch", type=int, default=SETTINGS.batch)
    parser.add_argument("--imgsz", type=int, default=SETTINGS.imgsz)
    parser.add_argument("--seed", type=int, default=SETTINGS.seed)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--detect-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads for detection")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}")
    if args.out:
        run(args, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="shapes-detector-") as tmp:
            run(args, Path(tmp))


if __name__ == "__main__":
    main()
