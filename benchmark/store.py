"""Content-addressed run store: ``runs/<stage>/<hash of inputs>/``.

A stage is finished only when its directory exists under its final name; work happens in
``<hash>.partial/`` and is renamed into place at the end, so a stage that died never looks done
(training keeps its checkpoints in the partial directory and resumes from them).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import __version__

MANIFEST = "manifest.json"


def digest(inputs: Any) -> str:
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` in one step, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Stage:
    root: Path
    name: str
    key: str
    inputs: dict

    @property
    def path(self) -> Path:
        return self.root / self.name / self.key

    @property
    def partial(self) -> Path:
        return self.root / self.name / f"{self.key}.partial"

    @property
    def done(self) -> bool:
        return (self.path / MANIFEST).exists()

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    @contextmanager
    def build(self, *, resume: bool = False) -> Iterator[Path]:
        """Yield a work directory; on success it becomes ``path`` with a manifest.

        Without ``resume`` a leftover partial directory from a dead run is discarded.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root / self.name / f"{self.key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not resume and self.partial.exists():
                shutil.rmtree(self.partial)
            self.partial.mkdir(exist_ok=True)
            yield self.partial
            manifest = {
                "stage": self.name,
                "key": self.key,
                "inputs": self.inputs,
                "smallcomp": __version__,
            }
            write_atomic(self.partial / MANIFEST, json.dumps(manifest, indent=2, default=str))
            if self.path.exists():
                shutil.rmtree(self.path)
            os.replace(self.partial, self.path)


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def stage(self, name: str, inputs: dict) -> Stage:
        return Stage(self.root, name, digest({"inputs": inputs, "smallcomp": __version__}), inputs)
