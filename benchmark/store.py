"""Content-addressed run store: ``runs/<stage>/<hash of inputs>/``.

A stage is finished only when its directory exists under its final name; work happens in
``<hash>.partial/`` and is renamed into place at the end, so a stage that died never looks done
(training keeps its checkpoints in the partial directory and resumes from them). The manifest
records each file's size and sha256, so a finished stage whose files were truncated or changed
since is rebuilt rather than reused.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import hashlib
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark import __version__

MANIFEST = "manifest.json"
# Reuse checks every file's size, and the sha256 of files up to this size: hashing a large pool's
# shards on every run would cost more than the check is worth; truncation changes the size.
HASH_ON_REUSE = 1 << 20
# An error raised while less than this is free is taken for the disk filling up: numpy, torch and
# safetensors report a full disk without an errno ("enforce fail at inline_container.cc").
NEARLY_FULL = 1 << 20


class StoreError(Exception):
    """A stage cannot be written or kept (disk full, damaged shards): one line naming the stage
    (CLI exit 2)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(stage, message)  # both in args, so the error crosses process boundaries
        self.stage, self.message = stage, message

    def __str__(self) -> str:
        return f"[{self.stage}] {self.message}"


def digest(inputs: Any) -> str:
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_atomic(path: Path, data: bytes | str) -> None:
    """Replace ``path`` in one step, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """A file's hex sha256, as manifests record it."""
    h = hashlib.sha256()
    with path.open("rb") as f:  # streamed: shards and weights can be gigabytes
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _disk_full(error: Exception, free: int) -> bool:
    """ENOSPC by errno, or any failure while the disk is all but full (the writers that report
    no errno); the error's own text goes into the message, so a misreading shows."""
    return (isinstance(error, OSError) and error.errno == errno.ENOSPC) or free < NEARLY_FULL


def _release(error: Exception) -> None:
    """Drop what the failed build's frames still hold: an open shard writer keeps a deleted
    file's space in use, and, collected later, flushes again and prints a second error."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None  # the flush fails on the full disk; the error is ours
    try:
        traceback.clear_frames(error.__traceback__)
        gc.collect()
    finally:
        sys.unraisablehook = hook


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
        """Finished, with every file as its manifest records it."""
        return self.path.exists() and self.damage() is None

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())

    def damage(self) -> str | None:
        """Why the finished directory cannot be reused (a file missing, or not the size or, up to
        HASH_ON_REUSE, the sha256 its manifest records), or None. A manifest written before
        manifests listed files has nothing to check against."""
        try:
            files = self.manifest().get("files", {})
        except (OSError, ValueError):
            return "its manifest is missing or unreadable"
        for name, want in files.items():
            f = self.path / name
            try:
                size = f.stat().st_size
            except FileNotFoundError:
                return f"{name} is missing"
            if size != want["bytes"]:
                return f"{name} is {size:,} bytes, its manifest says {want['bytes']:,}"
            if size <= HASH_ON_REUSE and file_sha256(f) != want["sha256"]:
                return f"{name} does not match its manifest's sha256"
        return None

    def ensure(self, build: Callable[[Path], None], *, resume: bool = False) -> Path:
        """The finished stage's directory, running ``build(work)`` first unless it is done.

        ``build`` fills a work directory that becomes ``path`` with a manifest. Whether the stage
        is done is asked again under the stage's lock, so of two runs that reach a stage together
        the second waits and reuses the first's work. A finished stage that fails its manifest is
        rebuilt, with a notice. Without ``resume`` a leftover partial directory from a dead run
        is discarded; with it, a disk-full failure keeps the partial directory (its checkpoints).
        """
        if self.done:
            self._say("cached")
            return self.path
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                if self.path.exists():
                    problem = self.damage()
                    if problem is None:
                        self._say("cached (built by another run meanwhile)")
                        return self.path
                    self._say(f"rebuilding: {problem}")
                    shutil.rmtree(self.path)
                else:
                    self._say("running")
                if not resume and self.partial.exists():
                    shutil.rmtree(self.partial)
                self.partial.mkdir(exist_ok=True)
                build(self.partial)
                self._write_manifest()
                os.replace(self.partial, self.path)
        except StoreError:  # a stage this one needed (the reference) already said what failed
            raise
        except Exception as e:
            existing = next(p for p in (self.root, *self.root.absolute().parents) if p.exists())
            free = shutil.disk_usage(existing).free
            if not _disk_full(e, free):
                raise
            _release(e)
            if not resume:
                shutil.rmtree(self.partial, ignore_errors=True)
            where = getattr(e, "filename", None) or self.partial
            kept = "checkpoints kept for resuming" if resume else "partial output removed"
            cause = next(iter(str(e).splitlines()), "")
            raise StoreError(
                self.name,
                f"disk full writing {where}: {free / 2**20:.1f} MiB free; {kept} "
                f"({type(e).__name__}: {cause})",
            ) from e
        return self.path

    def _say(self, state: str) -> None:
        """One line per stage, so a user sees what is reused and what is being computed."""
        print(f"[{self.name}] {state}  ({self.path})", file=sys.stderr, flush=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / self.name / f"{self.key}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._say("waiting: another run is building it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write_manifest(self) -> None:
        own = self.partial / MANIFEST
        files = sorted(p for p in self.partial.rglob("*") if p.is_file() and p != own)
        manifest = {
            "stage": self.name,
            "key": self.key,
            "inputs": self.inputs,
            "smallcomp": __version__,
            "files": {
                p.relative_to(self.partial).as_posix(): {
                    "bytes": p.stat().st_size,
                    "sha256": file_sha256(p),
                }
                for p in files
            },
        }
        write_atomic(self.partial / MANIFEST, json.dumps(manifest, indent=2, default=str))


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def stage(self, name: str, inputs: dict) -> Stage:
        return Stage(self.root, name, digest({"inputs": inputs, "smallcomp": __version__}), inputs)
