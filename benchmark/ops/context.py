"""What a curation step is given besides the table: images, reference model, seed, budget meter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image
from tqdm import tqdm

from benchmark.pools.shards import ShardReader


class OpError(Exception):
    """A step cannot run on this table; the message names the step (CLI exit 2). Samplers and
    the trainer, which get no StepContext, name their part (``sampler (paired): ...``) and the
    runner prefixes the recipe's file."""


@dataclass
class StepContext:
    """Everything an op may use. Ops never see the pool's hidden ``gt_`` columns."""

    name: str  # how errors name the step, e.g. "steps[2] (clip_score)"
    reader: ShardReader
    seed: int
    work_dir: Path
    device: str = "cpu"
    reference: Callable[[], object] | None = None  # lazily builds the track's reference CLIP
    detector: Callable[[], str] | None = None  # lazily trains/finds the track's detector weights
    store_root: Path | None = None  # where generate steps keep their shards (``generated/``)
    allow_weights: tuple[str, ...] = ()  # pickled weights the user allowed (``--allow-weights``)
    recipe_dir: Path | None = None  # what files a step names are relative to (``uids``)
    samples_processed: int = 0
    unreadable: int = 0  # images iter_images could not read, reported with the step
    extra_costs: dict = field(default_factory=dict)

    def fail(self, message: str) -> OpError:
        return OpError(f"{self.name}: {message}")

    def require(self, table: pa.Table, *columns: str) -> None:
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise self.fail(
                f"needs column(s) {', '.join(missing)}; add the step that produces them earlier"
            )

    def iter_images(
        self, table: pa.Table, batch_size: int = 256
    ) -> Iterator[tuple[np.ndarray, list[Image.Image | None]]]:
        """Row indices and decoded images, batch by batch; unreadable images come back as None."""
        refs = table.column("image").to_pylist()
        bar = tqdm(total=len(refs), desc=self.name, unit="img", leave=False, mininterval=1.0)
        for start in range(0, len(refs), batch_size):
            chunk = refs[start : start + batch_size]
            images: list[Image.Image | None] = []
            for r in chunk:
                try:
                    images.append(self.reader.read_image(r))
                except (OSError, ValueError, Image.DecompressionBombError):
                    images.append(None)
                    self.unreadable += 1
            self.samples_processed += len(chunk)
            bar.update(len(chunk))
            yield np.arange(start, start + len(chunk)), images
        bar.close()
