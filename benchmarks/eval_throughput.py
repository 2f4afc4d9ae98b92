"""ImageNet zero-shot throughput: smallcomp's evaluator vs clip_benchmark's, side by side.

Both run in this process on the same random-init model, the same images and the same templates,
with the same batch size and loader workers; each run is timed end to end (class-name classifier
included, as clip_benchmark's ``evaluate`` builds it). Runs alternate so machine load hits both.

    python benchmarks/eval_throughput.py [--rounds 2] [--templates openai]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # clip_benchmark's progress bars would swamp the output

import open_clip  # noqa: E402
import torch  # noqa: E402
from clip_benchmark.metrics import zeroshot_classification  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torchvision.datasets import ImageFolder  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.evaluate import imagenet  # noqa: E402
from benchmark.models.clip import create  # noqa: E402

SAMPLES = Path(os.environ.get("SMALLCOMP_SAMPLES", Path(__file__).parents[1] / "../shared/data"))


def run_ours(bundle, root: Path, args: argparse.Namespace) -> dict:
    return imagenet.evaluate(
        bundle,
        root,
        templates=args.templates,
        batch_size=args.batch_size,
        num_workers=args.workers,
    )["metrics"]


def run_clip_benchmark(bundle, root: Path, args: argparse.Namespace) -> dict:
    dataset = ImageFolder(str(root / "val"), transform=bundle.preprocess)
    dataset.classes = list(open_clip.IMAGENET_CLASSNAMES)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    return zeroshot_classification.evaluate(
        bundle.model,
        loader,
        bundle.tokenizer,
        dataset.classes,
        imagenet.template_strings(args.templates),
        bundle.device,
        amp=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SAMPLES / "imagenet-samples")
    parser.add_argument("--model", default="shapes-vit-small")
    parser.add_argument("--templates", default="openai", choices=sorted(imagenet.TEMPLATES))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    bundle = create(args.model)
    n = len(ImageFolder(str(args.data / "val")))
    runners = {"smallcomp": run_ours, "clip_benchmark": run_clip_benchmark}
    times: dict[str, list[float]] = {name: [] for name in runners}
    print(
        f"{args.model}, {n} images, {args.templates} templates, torch threads "
        f"{torch.get_num_threads()}, batch {args.batch_size}, workers {args.workers}"
    )
    for r in range(args.rounds):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            start = time.perf_counter()
            scores = runners[name](bundle, args.data, args)
            times[name].append(time.perf_counter() - start)
            print(
                f"round {r} {name:>14}: {times[name][-1]:7.1f} s  "
                f"acc1={scores['acc1']:.4f} acc5={scores['acc5']:.4f}"
            )
    rate = {name: n / statistics.median(t) for name, t in times.items()}
    for name, value in rate.items():
        print(f"{name:>14}: {value:8.1f} images/s (median of {args.rounds})")
    print(f"ratio smallcomp / clip_benchmark: {rate['smallcomp'] / rate['clip_benchmark']:.2f}x")


if __name__ == "__main__":
    main()
