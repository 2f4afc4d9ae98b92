"""Inpainting throughput: seconds per sample for object removal, and what 3M samples would cost.

Classical (OpenCV Telea and Navier-Stokes) on 64 px shapes scenes and on coco-mini photos, and a
diffusion pipeline on the same photos. Without ``--model`` the diffusion pipeline is the
random-weight tiny one (``inpainter.tiny_pipeline``), which measures the wrapper's overhead and
checks the stack, not a real model's cost; with ``--model`` any diffusers inpainting pipeline
directory (or cached hub id) is timed, e.g. on a GPU:

    python benchmarks/inpaint_throughput.py                   # CPU: classical + tiny at 64, 256 px
    python benchmarks/inpaint_throughput.py --model PATH --device cuda --dtype bf16 \\
        --resolution 512 --steps 30 --batch-size 8

Each removal masks one object: the shapes world's true box, or one seeded-random non-crowd COCO
instance box per photo, dilated. Images are decoded before timing: the numbers are the
inpainter's alone. Diffusion is warmed up with one untimed batch; pipeline load time is printed
on its own line. A projection line gives hours for CC3M's ~3M images in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a model is named by path; nothing downloads

import diffusers  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.models.inpainter import (  # noqa: E402
    ClassicalInpainter,
    DiffusionInpainter,
    Inpainter,
    mask_from_boxes,
    tiny_pipeline,
)
from benchmark.world import Scene, render, sample_objects  # noqa: E402

SAMPLES = Path(os.environ.get("SMALLCOMP_SAMPLES", Path(__file__).parents[1] / "../shared/data"))
CC3M = 3_000_000

Samples = tuple[list[Image.Image], list[np.ndarray]]


def shapes_samples(n: int, dilate: int) -> Samples:
    images, masks = [], []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        scene = Scene(sample_objects(rng, int(rng.integers(1, 4))), noise_seed=seed)
        images.append(render(scene))
        masks.append(mask_from_boxes(images[-1].size, [scene.objects[0].box], dilate))
    return images, masks


def coco_samples(root: Path, n: int, dilate: int, side: int | None = None) -> Samples:
    """One photo per image with instances, masking one seeded-random non-crowd instance box.

    coco-mini's photos are downscaled to 384 px on the long side; ``side`` rescales them (and the
    boxes) to another long side, as a stand-in for full-size web images."""
    rng = np.random.default_rng(0)
    images, masks = [], []
    for ann_file in sorted((root / "annotations").glob("instances_*.json")):
        data = json.loads(ann_file.read_text())
        split = ann_file.stem.removeprefix("instances_")
        boxes: dict[int, list[list[float]]] = {}
        for a in data["annotations"]:
            if not a["iscrowd"]:
                boxes.setdefault(a["image_id"], []).append(a["bbox"])
        for info in data["images"]:
            path = root / split / info["file_name"]
            if info["id"] not in boxes or not path.is_file():
                continue
            x, y, w, h = boxes[info["id"]][rng.integers(len(boxes[info["id"]]))]
            with Image.open(path) as im:
                image = im.convert("RGB")
            scale = side / max(image.size) if side else 1.0
            if scale != 1.0:
                size = (round(image.width * scale), round(image.height * scale))
                image = image.resize(size, Image.BICUBIC)
            box = (x * scale, y * scale, (x + w) * scale, (y + h) * scale)
            images.append(image)
            masks.append(mask_from_boxes(image.size, [box], dilate))
    return images[:n], masks[:n]


def report(name: str, seconds: float, samples: Samples) -> None:
    images, masks = samples
    n = len(images)
    per = seconds / n
    (common, count), *_ = Counter(im.size for im in images).most_common(1)
    size = f"{common[0]}x{common[1]}" + (f" ({count} of {n})" if count < n else "")
    fraction = np.mean([m.mean() for m in masks])
    print(
        f"{name:<44} {n:4d} samples {size:<24} mask {fraction:5.1%}  "
        f"{n / seconds:9.2f} samples/s  {per:.5f} s/sample  "
        f"CC3M: {per * CC3M / 3600:8.1f} h"
    )


def timed(inpainter: Inpainter, samples: Samples) -> float:
    start = time.perf_counter()
    out = inpainter.inpaint(*samples)
    seconds = time.perf_counter() - start
    assert [o.size for o in out] == [im.size for im in samples[0]]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLES / "coco-mini")
    parser.add_argument("--model", help="inpainting pipeline dir or cached hub id (default: tiny)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument(
        "--resolution", type=int, nargs="+", help="diffusion side in px (default 64 256 for tiny)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--n-shapes", type=int, default=500)
    parser.add_argument("--n-coco", type=int, default=1000, help="at most this many photos")
    parser.add_argument("--n-diffusion", type=int, default=16, help="photos for diffusion timing")
    parser.add_argument("--dilate", type=int, default=4, help="mask dilation on photos (px)")
    parser.add_argument("--radius", type=int, default=3, help="classical inpainting radius")
    parser.add_argument(
        "--photo-side", type=int, default=640, help="long side of the upscaled photo run (px)"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-classical", action="store_true")
    args = parser.parse_args()

    diffusers.utils.logging.disable_progress_bar()  # loading and saving bars, once per model
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {args.device}"
        + (
            f" ({torch.cuda.get_device_name(args.device)})"
            if args.device.startswith("cuda")
            else ""
        )
    )
    photos = coco_samples(args.data, args.n_coco, args.dilate)
    if not args.no_classical:
        shapes = shapes_samples(args.n_shapes, dilate=2)
        big = coco_samples(args.data, args.n_coco, args.dilate, side=args.photo_side)
        for method in ("telea", "ns"):
            inpainter = ClassicalInpainter(method=method, radius=args.radius)
            report(f"classical {method} shapes", timed(inpainter, shapes), shapes)
            report(f"classical {method} coco-mini", timed(inpainter, photos), photos)
            report(f"classical {method} coco-mini @{args.photo_side}", timed(inpainter, big), big)

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(tiny_pipeline(Path(tmp) / "tiny"))
        label = Path(args.model).name if args.model else "tiny"
        subset = (photos[0][: args.n_diffusion], photos[1][: args.n_diffusion])
        for resolution in args.resolution or ([512] if args.model else [64, 256]):
            inpainter = DiffusionInpainter(
                model,
                steps=args.steps,
                guidance=args.guidance,
                resolution=resolution,
                dtype=args.dtype,
                device=args.device,
                batch_size=args.batch_size,
            )
            start = time.perf_counter()
            _ = inpainter.pipeline
            load = time.perf_counter() - start
            warm = (subset[0][: args.batch_size], subset[1][: args.batch_size])
            inpainter.inpaint(*warm)
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats(args.device)
            seconds = timed(inpainter, subset)
            name = (
                f"diffusion {label} {resolution}px {args.dtype} {args.steps} steps "
                f"bs{args.batch_size}"
            )
            report(name, seconds, subset)
            memory = (
                f", peak {torch.cuda.max_memory_allocated(args.device) / 2**30:.1f} GiB"
                if args.device.startswith("cuda")
                else ""
            )
            print(f"{'':<44} pipeline load {load:.1f} s{memory}")


if __name__ == "__main__":
    main()
