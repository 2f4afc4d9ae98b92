"""The track's shared models as one curation's steps see them: the reference CLIP and the detector.

Each is built (or found in the run store) on first use, once per process, and timed: a step's
cost leaves out the seconds spent building models every recipe shares, so a recipe's record does
not depend on whether it ran first on an empty store. Each is named in the record by its weight
bytes (``weights_digest``), since two builds of one spec can differ across machines.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.store import file_sha256

if TYPE_CHECKING:
    from benchmark.models.clip import ClipBundle
    from benchmark.pipeline import Runner
    from benchmark.spec.load import TrackSpec

WEIGHT_SUFFIXES = {".safetensors", ".pt", ".bin"}  # what a track model's identity is read from


class TrackModels:
    """Lazily built, timed track models: ``reference()`` and ``detector()`` (None where the
    track has no such model), ``setup_s`` the seconds spent building them, ``weights`` the
    digests of those that were used."""

    def __init__(self, runner: Runner, track: TrackSpec) -> None:
        self.setup_s = 0.0
        self.weights: dict[str, str] = {}
        t = track.track
        self.reference: Callable[[], ClipBundle] | None = None
        self.detector: Callable[[], str] | None = None
        if t.reference is not None:
            self.reference = self._timed(
                "reference", lambda: runner.reference(track), lambda b: b.source
            )
        if t.detector is not None:
            self.detector = self._timed("detector", lambda: runner.detector(track), str)

    def _timed(self, name: str, build: Callable, source: Callable) -> Callable:
        def run():
            t = time.perf_counter()
            try:
                model = build()
                self.weights[name] = weights_digest(source(model))
                return model
            finally:
                self.setup_s += time.perf_counter() - t

        return cache(run)


def weights_digest(source: str) -> str:
    """A track model's identity in the record: a local model by its weight bytes, a model
    loaded by name by that name."""
    path = Path(source)
    files = [path] if path.is_file() else sorted(path.glob("*")) if path.is_dir() else []
    files = [f for f in files if f.suffix in WEIGHT_SUFFIXES]
    if not files:
        return source
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + bytes.fromhex(file_sha256(f)))
    return h.hexdigest()[:16]
