"""Detection throughput: images per second through the `detect` op's ``Detector`` on photos,
and what CC3M's 3M images would cost.

The model is a YOLO yaml (random init: the same compute as trained weights, from a config, no
download) or a weights path. Photos are coco-mini's, resized to ``--side`` on the long side as a
stand-in for web images, and decoded before timing; one untimed batch warms the predictor up.
The time covers what the op pays per batch: ultralytics' letterbox preprocessing, the forward
pass and NMS. Random weights find boxes at random, so NMS cost is printed next to the rate as
detections per image (a trained COCO model finds a handful).

    python benchmarks/detect_throughput.py                           # CPU, 640 and 320 px
    python benchmarks/detect_throughput.py --device cuda --batch-size 64 --n 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.models.detector import Detector  # noqa: E402

SAMPLES = Path(os.environ.get("SMALLCOMP_SAMPLES", Path(__file__).parents[1] / "../shared/data"))
CC3M = 3_000_000


def photos(root: Path, n: int, side: int) -> list[Image.Image]:
    """Up to ``n`` coco-mini photos, cycled when it holds fewer, resized to long side ``side``."""
    paths = sorted(p for split in ("train2017", "val2017") for p in (root / split).glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no photos under {root}/train2017 or {root}/val2017")
    images = []
    for path in paths[: min(n, len(paths))]:
        with Image.open(path) as im:
            image = im.convert("RGB")
        scale = side / max(image.size)
        images.append(image.resize((round(image.width * scale), round(image.height * scale))))
    return [images[i % len(images)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLES / "coco-mini")
    parser.add_argument("--model", default="yolov8n.yaml", help="YOLO yaml or weights path")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640, 320])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n", type=int, default=200, help="photos timed per size")
    parser.add_argument("--side", type=int, default=640, help="long side of the photos (px)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {args.device} {name}")
    images = photos(args.data, args.n, args.side)
    print(f"{len(images)} coco-mini photos, long side {args.side} px, model {args.model}")
    for imgsz in args.imgsz:
        # The user named the model on the command line: theirs to trust.
        detector = Detector(args.model, device=args.device, imgsz=imgsz, allow=[args.model])
        detector.detect(images[: args.batch_size], args.conf, args.batch_size)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        found = detector.detect(images, args.conf, args.batch_size)
        seconds = time.perf_counter() - start
        rate = len(images) / seconds
        print(
            f"imgsz {imgsz:4d}  batch {args.batch_size:3d}  {rate:8.1f} images/s  "
            f"{seconds / len(images) * 1000:7.2f} ms/image  "
            f"{sum(map(len, found)) / len(images):6.1f} detections/image  "
            f"CC3M: {CC3M / rate / 3600:7.2f} h"
        )


if __name__ == "__main__":
    main()
