"""A submission bundle: what a recipe's leaderboard entry rests on, sealed by a manifest.

``smallcomp submit`` writes it as a directory and a .tar.gz of that directory
(``<recipe>-<hash8>-<track>-<scale>/``)::

    bundle.json            what is submitted: recipe name and hash, track, scale, eval suite and
                           its version, seeds, the curated set's size and uid hash, the
                           leaderboard row the results make
    recipe.yaml            the recipe file as written (one that includes others: expanded)
    recipe.resolved.json   the recipe as validated: every step with all its params, the sampler,
                           the loss (what the hash is taken over)
    uids.npy               the curated uids in DataComp's interchange format: a sorted 1-D array
                           of structured ``u8,u8`` (each 128-bit hex uid as two uint64)
    curation.json          the curate report: the per-step cost records (wall s on which device,
                           samples in and out, tokens), pool and curated sizes, track model builds
    environment.json       library versions and device of each seed's run, and the submitter's
    results/seed<N>.json   each seed's result, as the leaderboard holds it
    train/seed<N>.json     each seed's train record
    models/seed<N>/        with --with-models: the trained model (open_clip config, safetensors)
    manifest.json          size and sha256 of every other file

The bundle's identity (``bundle_sha256``) is the sha256 of its manifest.json, which pins every
file: the directory and the archive have the same one. Submitting reads results, never makes
them: a missing or stale result is refused with the ``smallcomp run`` command that makes it.

Reading a bundle trusts nothing in it. An archive is checked member by member before anything is
extracted, into a temporary directory only: absolute paths, ``..``, links and devices are
refused. A directory with a symlink, a hard link or a manifest path leading out of it is refused.
Every refusal is one line naming the path (``BundleError``).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import platform
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from benchmark import __version__, leaderboard
from benchmark.curate import uid_array
from benchmark.store import Stage, file_sha256, write_atomic

FORMAT = "smallcomp-bundle/1"
MANIFEST = "manifest.json"
INFO = "bundle.json"
RECIPE = "recipe.yaml"
RESOLVED = "recipe.resolved.json"
UIDS = "uids.npy"
CURATION = "curation.json"
ENVIRONMENT = "environment.json"
MAX_ARCHIVE_BYTES = 64 << 30  # members' total size: an archive that unpacks past it is refused
MAX_MEMBERS = 100_000
ROW_KEYS = ("seeds", "tasks", "average", "curated_sizes")  # the leaderboard row's numbers


class BundleError(Exception):
    """A bundle that cannot be read safely or is not in the format: one line naming the path
    (``verify`` exit 2)."""


class Refused(Exception):
    """``submit`` cannot bundle what was asked: one line saying what is missing and the command
    that would make it (exit 2)."""


def result_file(seed: int) -> str:
    return f"results/seed{seed}.json"


def train_file(seed: int) -> str:
    return f"train/seed{seed}.json"


def model_dir(seed: int) -> str:
    return f"models/seed{seed}"


def sorted_uids(uids: list[str]) -> np.ndarray:
    """DataComp's uid list: ``u8,u8`` pairs sorted (by the high word, then the low word)."""
    return np.sort(uid_array(uids))


def leaderboard_row(results: list[dict]) -> dict:
    """The numbers of the leaderboard row ``results`` make, as JSON (nan half-widths as null)."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, float) and math.isnan(v):
            return None
        return v

    (row,) = leaderboard.rows(results)
    return plain({k: row[k] for k in ROW_KEYS})


# -- writing -------------------------------------------------------------------------------------


def _run_command(recipe: str, track: str | None, scale: str, seeds: list[int], runs, board) -> str:
    track_arg = f" --track {track}" if track else ""
    listed = ",".join(map(str, seeds))
    return (
        f"smallcomp --runs {runs} run {recipe}{track_arg} --scale {scale} --seeds {listed} "
        f"--leaderboard {board}"
    )


def _environment(results: dict[int, dict]) -> dict:
    from benchmark.pipeline import LIBRARIES

    return {
        "runs": {
            str(s): {"device": r.get("device"), "versions": r.get("versions", {})}
            for s, r in results.items()
        },
        "submitted_with": {
            "versions": {lib: version(lib) for lib in LIBRARIES},
            "python": platform.python_version(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
    }


def _results(spec, scale: str, seeds: list[int] | None, board: Path, rerun) -> dict[int, dict]:
    """Each seed's result from the leaderboard directory, refused unless it is this recipe's
    (full hash) scored with the local track's suite and version."""
    track = spec.track.track
    name, rhash = spec.recipe.name, spec.hash
    ev = track.eval
    keys = {
        "recipe": name,
        "recipe_hash": rhash,
        "track": track.name,
        "scale": scale,
        "suite_version": ev.version,
    }
    where = leaderboard.result_path(board, keys | {"seed": 0}).parent
    if seeds is None:
        seeds = sorted(
            int(p.stem.rpartition("seed")[2])
            for p in where.glob(f"{name}-{rhash[:8]}-seed*.json")
            if p.stem.rpartition("seed")[2].isdigit()
        )
        seeds = seeds or spec.track.scale(scale).seeds[:1]  # none: say what the first needs
    out = {}
    for seed in seeds:
        path = leaderboard.result_path(board, keys | {"seed": seed})
        if not path.is_file():
            others = sorted(where.glob(f"{name}-*-seed{seed}.json"))
            if others:
                hashes = ", ".join(p.stem.split("-")[-2] for p in others)
                raise Refused(
                    f"results for seed {seed} of recipe '{name}' in {where} are from recipe hash "
                    f"{hashes}, not this recipe's {rhash[:8]} (it changed since); "
                    f"rerun: {rerun([seed])}"
                )
            raise Refused(
                f"no result for seed {seed} of recipe '{name}' (hash {rhash[:8]}) in {where}; "
                f"make it with: {rerun([seed])}"
            )
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise Refused(f"{path}: unreadable result ({e})") from None
        if result.get("recipe_hash") != rhash:
            raise Refused(
                f"{path} was produced by recipe hash {result.get('recipe_hash')}, not this "
                f"recipe's {rhash}; rerun: {rerun([seed])}"
            )
        got = (result.get("suite"), result.get("suite_version"))
        if got != (ev.suite, ev.version):
            raise Refused(
                f"{path} was scored with suite {got[0]} version {got[1]}, the track "
                f"{track.name} now has {ev.suite} version {ev.version}; rerun: {rerun([seed])}"
            )
        if (result.get("track"), result.get("scale"), result.get("seed")) != (
            track.name,
            scale,
            seed,
        ):
            raise Refused(f"{path} is not {track.name}/{scale} seed {seed}")
        lacking = [k for k in ("tasks", "headline", "curated", "train", "costs") if k not in result]
        if lacking:
            raise Refused(f"{path} lacks {', '.join(lacking)}; rerun: {rerun([seed])}")
        result.pop("verified", None)  # a leaderboard's stamp is its own, not the submission's
        out[seed] = result
    return out


def _train_stage(runs: Path, result: dict) -> Stage:
    """The run store's train stage a result's model came from (named in its eval records)."""
    models = {Path(str(t.get("model"))).name for t in result.get("tasks", {}).values()}
    if len(models) != 1:
        raise Refused(f"seed {result['seed']}'s tasks name several models: {sorted(models)}")
    return Stage(runs, "train", models.pop(), {})


def submit(
    spec,
    scale: str,
    seeds: list[int] | None,
    runner,
    board: Path,
    out: Path,
    with_models: bool = False,
    track_arg: str | None = None,
) -> tuple[Path, Path]:
    """Write the bundle for ``spec``'s results at ``scale`` (every seed the leaderboard has when
    ``seeds`` is None); returns (directory, archive). Reads the leaderboard directory and the run
    store; runs nothing."""
    runs = runner.store.root

    def rerun(s: list[int]) -> str:
        return _run_command(spec.file, track_arg, scale, s, runs, board)

    spec.track.scale(scale)  # a located error for a scale the track lacks
    results = _results(spec, scale, seeds, board, rerun)
    every = sorted(results)
    stage = runner.curation_stage(spec)
    if not stage.done:
        raise Refused(
            f"the run store {runs} has no finished curation of recipe '{spec.recipe.name}' "
            f"({stage.path}); make it with: {rerun(every)}"
        )
    report = json.loads((stage.path / "report.json").read_text())
    uids = pq.read_table(stage.path / "curated.parquet", columns=["uid"]).column("uid")
    uids = uids.to_pylist()
    for seed, r in results.items():
        if r["curated"].get("uid_hash") != report["uid_hash"]:
            raise Refused(
                f"seed {seed}'s result trained on curated set {r['curated'].get('uid_hash')}, "
                f"the run store's curation ({stage.path}) is {report['uid_hash']}; "
                f"rerun: {rerun([seed])}"
            )
    trained = {s: _train_stage(runs, r) for s, r in results.items()} if with_models else {}
    if with_models:
        for seed, t in trained.items():
            if not t.done or t.manifest().get("inputs", {}).get("seed") != seed:
                raise Refused(
                    f"--with-models: no finished model for seed {seed} in the run store "
                    f"({t.path}); make it with: {rerun([seed])}"
                )
            if json.loads((t.path / "train.json").read_text()) != results[seed]["train"]:
                raise Refused(
                    f"--with-models: the run store's model for seed {seed} ({t.path}) was "
                    f"trained again since its result; rerun: {rerun([seed])}"
                )

    track = spec.track.track
    name = f"{spec.recipe.name}-{spec.hash[:8]}-{track.name}-{scale}"
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".{name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        (work / RECIPE).write_bytes(spec.source())
        _json(work / RESOLVED, spec.recipe.model_dump(mode="json"))
        with (work / UIDS).open("wb") as f:
            np.save(f, sorted_uids(uids), allow_pickle=False)
        _json(work / CURATION, report)
        _json(work / ENVIRONMENT, _environment(results))
        for seed, r in results.items():
            (work / "results").mkdir(exist_ok=True)
            (work / "train").mkdir(exist_ok=True)
            _json(work / result_file(seed), r)
            _json(work / train_file(seed), r["train"])
            if with_models:
                dest = work / model_dir(seed)
                dest.mkdir(parents=True)
                for rel in trained[seed].manifest()["files"]:
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(trained[seed].path / rel, dest / rel)
        ev = track.eval
        info = {
            "format": FORMAT,
            "recipe": spec.recipe.name,
            "recipe_hash": spec.hash,
            "track": track.name,
            "scale": scale,
            "suite": ev.suite,
            "suite_version": ev.version,
            "seeds": every,
            "curated": {
                "size": report["curated_rows"],
                "pool_size": report["pool_rows"],
                "uid_hash": report["uid_hash"],
            },
            "leaderboard": leaderboard_row(list(results.values())),
            "models": with_models,
            "smallcomp": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        _json(work / INFO, info)
        seal(work)
        final = out / name
        if final.exists():
            if not (final / MANIFEST).is_file() or final.is_symlink():
                raise Refused(f"{final} exists and is not a bundle; remove it or choose --out")
            shutil.rmtree(final)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    archive = out / f"{name}.tar.gz"
    write_archive(final, archive)
    return final, archive


def _json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def manifest_of(root: Path) -> dict:
    files = sorted(
        p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST
    )
    return {
        "format": FORMAT,
        "files": {
            p.relative_to(root).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for p in files
        },
    }


def seal(root: Path) -> None:
    """(Re)write ``root``'s manifest over every other file in it."""
    write_atomic(root / MANIFEST, json.dumps(manifest_of(root), indent=2) + "\n")


def write_archive(src: Path, dest: Path) -> None:
    """``src`` as ``dest`` (.tar.gz) under its own name, byte-identical for identical contents:
    members sorted, times, owners and modes fixed."""

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
    try:
        with (
            tmp.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
        ):
            for p in [src, *sorted(src.rglob("*"))]:
                tf.add(p, p.relative_to(src.parent).as_posix(), recursive=False, filter=plain)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- reading -------------------------------------------------------------------------------------


def _inside(name: str, what: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside the bundle, or a BundleError naming it."""
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
        raise BundleError(f"{what} {name!r} is not a plain relative path")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise BundleError(f"{what} {name!r} escapes the bundle")
    if any(part in ("", ".") for part in name.split("/")):
        raise BundleError(f"{what} {name!r} is not a plain relative path")
    return p


def _walk(root: Path) -> dict[str, Path]:
    """Every regular file under ``root`` by its relative path; a link or device is refused."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for entry in sorted(dirnames + filenames):
            p = Path(dirpath) / entry
            rel = p.relative_to(root).as_posix()
            mode = p.lstat()
            if stat.S_ISLNK(mode.st_mode):
                raise BundleError(f"bundle path '{rel}' is a symlink; a bundle holds only files")
            if stat.S_ISDIR(mode.st_mode):
                continue
            if not stat.S_ISREG(mode.st_mode):
                raise BundleError(f"bundle path '{rel}' is not a regular file")
            if mode.st_nlink > 1:
                raise BundleError(f"bundle path '{rel}' is a hard link; a bundle holds only files")
            files[rel] = p
    return files


def _extract(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into ``into`` after checking every member; returns the bundle root."""
    try:
        tf = tarfile.open(archive, "r:gz")  # noqa: SIM115 - closed by the with below
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"{archive}: not a readable .tar.gz ({e})") from None
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"{archive}: damaged archive ({e})") from None
        if len(members) > MAX_MEMBERS:
            raise BundleError(f"{archive}: {len(members):,} members, more than {MAX_MEMBERS:,}")
        seen: set[str] = set()
        total = 0
        for m in members:
            name = m.name.rstrip("/") if m.isdir() else m.name
            while name.startswith("./"):  # ``tar -C bundle .`` names members ./<path>
                name = name[2:]
            if name in ("", ".") and m.isdir():
                continue
            _inside(name, "archive member")
            kind = (
                "a symlink"
                if m.issym()
                else "a hard link"
                if m.islnk()
                else None
                if m.isfile() or m.isdir()
                else "a device or special file"
            )
            if kind:
                raise BundleError(f"archive member '{m.name}' is {kind}; a bundle holds only files")
            key = name
            if key in seen:
                raise BundleError(f"archive member '{m.name}' appears twice")
            seen.add(key)
            total += m.size
        if total > MAX_ARCHIVE_BYTES:
            raise BundleError(f"{archive}: unpacks to {total:,} bytes, more than allowed")
        try:
            tf.extractall(into, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError(f"{archive}: cannot unpack ({e})") from None
    if (into / MANIFEST).exists():
        return into
    entries = list(into.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    raise BundleError(f"{archive}: no {MANIFEST} at its top or in one top-level directory")


@dataclass
class Bundle:
    source: Path  # what the user named: the directory or the archive
    root: Path  # the bundle directory (a temporary one for an archive)
    files: dict[str, Path]  # every regular file, by relative path

    @property
    def is_archive(self) -> bool:
        return self.source.is_file()

    def path(self, rel: str) -> Path:
        if rel not in self.files:
            raise BundleError(f"{rel} is missing from the bundle")
        return self.files[rel]

    def read_json(self, rel: str) -> Any:
        try:
            return json.loads(self.path(rel).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise BundleError(f"{rel}: not valid JSON ({e})") from None

    @property
    def info(self) -> dict:
        info = self.read_json(INFO)
        need = {
            "recipe": str,
            "recipe_hash": str,
            "track": str,
            "scale": str,
            "suite": str,
            "suite_version": str,
            "seeds": list,
            "curated": dict,
            "leaderboard": dict,
        }
        if not isinstance(info, dict):
            raise BundleError(f"{INFO}: not a JSON object")
        for key, kind in need.items():
            if not isinstance(info.get(key), kind):
                raise BundleError(f"{INFO}: field '{key}' missing or not a {kind.__name__}")
        if info.get("format") != FORMAT:
            raise BundleError(f"{INFO}: format {info.get('format')!r}, not {FORMAT}")
        if not all(isinstance(s, int) and s >= 0 for s in info["seeds"]) or not info["seeds"]:
            raise BundleError(f"{INFO}: field 'seeds' must list non-negative integers")
        if not isinstance(info["curated"].get("uid_hash"), str):
            raise BundleError(f"{INFO}: field 'curated.uid_hash' missing")
        return info

    def uids(self) -> np.ndarray:
        try:
            arr = np.load(self.path(UIDS), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise BundleError(f"{UIDS}: not a .npy array ({e})") from None
        if arr.dtype != np.dtype("u8,u8") or arr.ndim != 1:
            raise BundleError(f"{UIDS}: dtype {arr.dtype} shape {arr.shape}, not 1-D u8,u8")
        return arr

    def results(self) -> dict[int, dict]:
        out = {}
        for seed in self.info["seeds"]:
            r = self.read_json(result_file(seed))
            if not isinstance(r, dict):
                raise BundleError(f"{result_file(seed)}: not a JSON object")
            out[seed] = r
        return out

    def manifest(self) -> dict[str, dict]:
        """The manifest's entries, every path checked to stay inside the bundle."""
        m = self.read_json(MANIFEST)
        files = m.get("files") if isinstance(m, dict) else None
        if not isinstance(files, dict):
            raise BundleError(f"{MANIFEST}: no 'files' mapping")
        for rel, entry in files.items():
            _inside(rel, "manifest path")
            ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
            if not ok or not isinstance(entry.get("bytes"), int):
                raise BundleError(f"{MANIFEST}: entry {rel!r} needs 'bytes' and 'sha256'")
        return files

    def manifest_problems(self) -> list[str]:
        """What differs from the manifest: files listed but missing, files not listed, files
        whose size or sha256 changed. Empty when the bundle is as it was sealed."""
        listed = self.manifest()
        problems = [
            f"{rel} is listed in the manifest but missing"
            for rel in listed
            if rel not in self.files
        ]
        for rel in self.files:
            if rel != MANIFEST and rel not in listed:
                problems.append(f"{rel} is not in the manifest")
        for rel, want in listed.items():
            f = self.files.get(rel)
            if f is None:
                continue
            if f.stat().st_size != want["bytes"] or file_sha256(f) != want["sha256"]:
                problems.append(f"{rel} does not match its sha256 in the manifest")
        return problems

    @property
    def sha256(self) -> str:
        """The bundle's identity: its manifest's sha256 (the same for directory and archive)."""
        return file_sha256(self.path(MANIFEST))


@contextmanager
def open_bundle(path: str | Path) -> Iterator[Bundle]:
    """The bundle at ``path`` (a directory, or a .tar.gz unpacked into a temporary directory
    that is removed afterwards)."""
    source = Path(path)
    if source.is_dir():
        yield Bundle(source, source, _walk(source))
        return
    if not source.is_file():
        raise BundleError(f"{source}: no such bundle (a directory or a .tar.gz)")
    with tempfile.TemporaryDirectory(prefix="smallcomp-bundle-") as tmp:
        root = _extract(source, Path(tmp))
        yield Bundle(source, root, _walk(root))
