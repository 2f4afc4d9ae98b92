"""Re-derive a submission bundle's claims instead of trusting them.

Curation is deterministic and CPU training is too, so a verifier reruns what a bundle claims:

- ``manifest``: every file is listed, every listed file is there, every sha256 matches;
- ``track``: the bundle's track is the local one (name, suite and suite version, scale);
- ``recipe``: the bundled recipe validates against the local track, resolves to the bundled
  steps and hashes to the bundled hash;
- ``curation``: curating the recipe in the local run store gives the bundled uid hash and the
  bundled uid list (``uids.npy``);
- ``budget``: the track's curation budget holds on every device the curation ran on;
- ``numbers``: each result is this recipe's on this track, its headline per task is the task's
  metric, its train record is the bundled one, and the leaderboard row recomputes;
- ``reevaluate`` (asked for): the bundled models score the same metrics again;
- ``retrain seed N`` (asked for): the seed trains again, in a fresh temporary run store on the
  local curation, to the same metrics: exactly where both trainings ran on the CPU, within
  ``TOLERANCE`` where one ran on a GPU (whose kernels are not bit-reproducible).

A check that fails says which file or field, in one line. Exit status: 0 verified, 1 a check
failed, 2 a malformed bundle (unreadable, not in the format, or unsafe to read).
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark import __version__
from benchmark.bundle import (
    CURATION,
    RESOLVED,
    BundleError,
    leaderboard_row,
    model_dir,
    open_bundle,
    result_file,
    sorted_uids,
    train_file,
)
from benchmark.evaluate import registry as tasks
from benchmark.ops.context import OpError
from benchmark.spec.errors import SpecError
from benchmark.spec.load import TrackSpec, find_track, load_recipe, load_track
from benchmark.store import Store, StoreError

TOLERANCE = 0.005  # 0.5 points: how far a metric may move between trainings not both on the CPU
FRESH = ("train", "evaluate")  # stages a retrain recomputes; the rest come from the local store

OK, MISMATCH, SKIPPED = "ok", "MISMATCH", "skipped"


@dataclass
class Check:
    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<8} {self.name}: {self.detail}"


@dataclass
class Report:
    bundle: str
    checks: list[Check] = field(default_factory=list)
    malformed: str | None = None
    sha256: str | None = None  # the bundle's manifest sha256
    archive_sha256: str | None = None
    results: list[dict] = field(default_factory=list)  # the bundled results, once read

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == MISMATCH]

    @property
    def verified(self) -> bool:
        return self.malformed is None and not self.failed and bool(self.checks)

    @property
    def exit_code(self) -> int:
        return 2 if self.malformed else 1 if self.failed else 0

    def verdict(self) -> str:
        if self.malformed:
            return f"MALFORMED: {self.bundle}: {self.malformed.removeprefix(f'{self.bundle}: ')}"
        if self.failed:
            names = ", ".join(c.name for c in self.failed)
            return f"NOT VERIFIED: {self.bundle}: {len(self.failed)} check(s) failed ({names})"
        ran = [c.name for c in self.checks if c.status == OK]
        return f"VERIFIED: {self.bundle} (bundle sha256 {self.sha256[:16]}; {', '.join(ran)})"

    def stamp(self) -> dict:
        """The ``verified`` record a leaderboard result carries."""
        stamp = {
            "bundle_sha256": self.sha256,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "checks": [c.name for c in self.checks if c.status == OK],
            "smallcomp": __version__,
        }
        if self.archive_sha256:
            stamp["archive_sha256"] = self.archive_sha256
        return stamp


def local_track(name: str, given: str | None) -> Path:
    """The local track file to verify against: ``given`` (a name or a file), else
    ``tracks/<name>.yaml`` in the working directory or a parent. Never a path from a bundle."""
    plain = name and not name.endswith((".yaml", ".yml")) and "/" not in name
    if given is None and not (plain and not name.startswith(".")):
        raise BundleError(f"bundle.json: track {name!r} is not a track name")
    try:
        found = find_track(given or name, Path.cwd())
    except FileNotFoundError:
        found = None
    if found is None or not found.is_file():
        raise SpecError(given or name, 1, 1, "no such local track (give --track NAME or FILE)")
    return found.resolve()


def _differences(want: dict, got: dict, exact: bool) -> list[str]:
    """Metrics per task that differ between two results' ``tasks``."""
    out = []
    for task in sorted(set(want) | set(got)):
        a = (want.get(task) or {}).get("metrics", {})
        b = (got.get(task) or {}).get("metrics", {})
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            same = x == y
            if not same and not exact and isinstance(x, float | int) and isinstance(y, float | int):
                same = abs(x - y) <= TOLERANCE
            if not same:
                out.append(f"{task}.{key} {x} in the bundle, {y} here")
    return out


def _tolerance(bundled_device: str | None, device: str) -> tuple[bool, str]:
    exact = bundled_device == "cpu" and device == "cpu"
    rule = "bit-identical (CPU)" if exact else f"within {100 * TOLERANCE:g} points (not both CPU)"
    return exact, rule


def _summary(problems: list[str], limit: int = 3) -> str:
    more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(problems[:limit]) + more


class _Verification:
    def __init__(self, bundle, runner, track_file: Path, allow_weights, say) -> None:
        self.b, self.runner, self.track_file = bundle, runner, track_file
        self.allow = tuple(allow_weights)
        self.say = say
        self.report = Report(str(bundle.source))
        self.info = bundle.info
        self.spec = None
        self.track: TrackSpec = load_track(track_file)
        self.pool_rows: int | None = None

    def add(self, name: str, status: str, detail: str) -> None:
        check = Check(name, status, detail)
        self.report.checks.append(check)
        self.say(check.line())

    def manifest(self) -> None:
        problems = self.b.manifest_problems()
        if problems:
            self.add("manifest", MISMATCH, _summary(problems))
        else:
            n = len(self.b.manifest())
            self.add("manifest", OK, f"{n} files, every one listed and matching its sha256")

    def track_check(self) -> None:
        t, info = self.track.track, self.info
        problems = []
        if info["track"] != t.name:
            problems.append(f"bundle is for track {info['track']}, {self.track_file} is {t.name}")
        if info["suite"] != t.eval.suite:
            problems.append(f"suite {info['suite']} in the bundle, {t.eval.suite} here")
        if info["suite_version"] != t.eval.version:
            problems.append(
                f"suite version {info['suite_version']} in the bundle, the local track "
                f"{t.name} has version {t.eval.version}"
            )
        if info["scale"] not in t.scales:
            problems.append(f"the local track has no scale {info['scale']}")
        if problems:
            self.add("track", MISMATCH, _summary(problems))
        else:
            self.add(
                "track",
                OK,
                f"{t.name}/{info['scale']}, suite {t.eval.suite} version {t.eval.version}",
            )

    def recipe(self) -> None:
        info = self.info
        try:
            spec = load_recipe(
                self.b.path("recipe.yaml"), str(self.track_file), self.runner.device, self.allow
            )
        except SpecError as e:
            where = str(e).replace(f"{self.b.root}/", "")
            self.add("recipe", MISMATCH, f"does not validate against {self.track_file}: {where}")
            return
        resolved = self.b.read_json(RESOLVED)
        mine = spec.recipe.model_dump(mode="json")
        problems = []
        if spec.recipe.name != info["recipe"]:
            problems.append(
                f"recipe.yaml names '{spec.recipe.name}', bundle.json '{info['recipe']}'"
            )
        if spec.hash != info["recipe_hash"]:
            problems.append(
                f"recipe.yaml hashes to {spec.hash} here, the bundle says {info['recipe_hash']}"
            )
        for key in ("steps", "sampler", "loss"):
            if not isinstance(resolved, dict) or resolved.get(key) != mine[key]:
                got = resolved.get(key) if isinstance(resolved, dict) else None
                if key == "steps" and isinstance(got, list):
                    diff = [
                        i
                        for i in range(max(len(got), len(mine[key])))
                        if i >= len(got) or i >= len(mine[key]) or got[i] != mine[key][i]
                    ]
                    problems.append(f"{RESOLVED}: steps {diff} resolve differently here")
                else:
                    problems.append(f"{RESOLVED}: '{key}' resolves differently here")
        if problems:
            self.add("recipe", MISMATCH, _summary(problems))
            return
        self.spec = spec
        self.add("recipe", OK, f"{spec.recipe.name} validates here, hash {spec.hash}")

    def curation(self) -> None:
        if self.spec is None:
            self.add("curation", SKIPPED, "the recipe does not load here")
            return
        try:
            table, report = self.runner.curate(self.spec)
        except (SpecError, OpError, StoreError) as e:
            self.add("curation", MISMATCH, f"curating here failed: {e}")
            return
        self.pool_rows = report["pool_rows"]
        want = self.info["curated"]["uid_hash"]
        problems = []
        if report["uid_hash"] != want:
            problems.append(f"uid hash {report['uid_hash'][:16]} here, {want[:16]} in the bundle")
        bundled = self.b.uids()
        local = sorted_uids(table.column("uid").to_pylist())
        if not np.array_equal(bundled, local):
            ours = set(map(tuple, local.tolist()))
            theirs = set(map(tuple, bundled.tolist()))
            extra, lost = len(theirs - ours), len(ours - theirs)
            if not (extra or lost) and len(bundled) == len(local):
                problems.append("uids.npy is not sorted (DataComp's format is)")
            else:
                problems.append(
                    f"uids.npy differs from the curation here: {extra} bundled uid(s) not "
                    f"curated here, {lost} curated uid(s) not in it ({len(bundled):,} vs "
                    f"{len(local):,})"
                )
        if problems:
            self.add("curation", MISMATCH, _summary(problems))
        else:
            self.add(
                "curation",
                OK,
                f"{report['curated_rows']:,} of {report['pool_rows']:,} rows, uid hash "
                f"{want[:16]}, uids.npy identical",
            )

    def budget(self) -> None:
        from benchmark.spec import budget

        cap = self.track.track.rules.curation_budget
        if cap is None:
            self.add("budget", OK, f"track {self.track.track.name} sets no curation budget")
            return
        if self.spec is None:
            self.add("budget", SKIPPED, "the recipe does not load here")
            return
        rows = self.pool_rows or getattr(self.track.pool, "size", None)
        if not isinstance(rows, int):
            self.add("budget", SKIPPED, "the pool size is unknown (curation failed)")
            return
        record = self.b.read_json(CURATION)
        steps = record.get("steps", []) if isinstance(record, dict) else []
        devices = {s.get("device") for s in steps if isinstance(s, dict)} | {self.runner.device}
        devices = sorted(d for d in devices if isinstance(d, str))
        problems = []
        for device in devices:
            try:
                budget.check(self.spec, rows, device)
            except SpecError as e:
                problems.append(e.message)
        measured = sum(s.get("wall_s") or 0 for s in steps if isinstance(s, dict))
        if problems:
            self.add("budget", MISMATCH, _summary(problems))
        else:
            self.add(
                "budget",
                OK,
                f"estimate within {cap.device_s_per_1k:g} device-s per 1,000 samples on "
                f"{', '.join(devices)} (measured {measured:.1f} s)",
            )

    def numbers(self) -> None:
        info, t = self.info, self.track.track
        results = self.b.results()
        self.report.results = list(results.values())
        problems = []
        for seed, r in results.items():
            where = result_file(seed)
            try:
                claims = {
                    "seed": (r["seed"], seed),
                    "recipe_hash": (r["recipe_hash"], info["recipe_hash"]),
                    "track": (r["track"], info["track"]),
                    "scale": (r["scale"], info["scale"]),
                    "suite_version": (r["suite_version"], info["suite_version"]),
                    "curated.uid_hash": (r["curated"]["uid_hash"], info["curated"]["uid_hash"]),
                }
                for key, (got, want) in claims.items():
                    if got != want:
                        problems.append(f"{where}: {key} {got}, the bundle's is {want}")
                if set(r["headline"]) != set(t.eval.tasks):
                    problems.append(
                        f"{where}: headline tasks {sorted(r['headline'])}, the suite's are "
                        f"{sorted(t.eval.tasks)}"
                    )
                for name, value in r["headline"].items():
                    key = tasks.get(name).headline if name in t.eval.tasks else None
                    metric = r["tasks"][name]["metrics"].get(key) if key else None
                    if metric != value:
                        problems.append(
                            f"{where}: headline.{name} {value} but tasks.{name}.metrics.{key} "
                            f"{metric}"
                        )
                if self.b.read_json(train_file(seed)) != r["train"]:
                    problems.append(f"{train_file(seed)} differs from {where}'s train record")
            except (KeyError, TypeError, AttributeError) as e:
                raise BundleError(f"{where}: missing or malformed field {e}") from None
        if not problems:
            try:
                row = leaderboard_row(list(results.values()))
            except (KeyError, TypeError, ValueError) as e:
                raise BundleError(f"results: cannot aggregate ({e})") from None
            claimed = info["leaderboard"]
            for key, value in row.items():
                if not _close(claimed.get(key), value):
                    problems.append(
                        f"bundle.json: leaderboard.{key} {claimed.get(key)}, the results "
                        f"give {value}"
                    )
        if problems:
            self.add("numbers", MISMATCH, _summary(problems))
        else:
            avg = leaderboard_row(list(results.values()))["average"][0]
            self.add(
                "numbers",
                OK,
                f"{len(results)} seed(s): headlines are their tasks' metrics, leaderboard row "
                f"recomputes (average {100 * avg:.1f})",
            )

    def reevaluate(self) -> None:
        from benchmark.models.trust import UnsafeModel
        from benchmark.pipeline import Runner

        results = self.b.results()
        missing = [
            s for s in results if f"{model_dir(s)}/open_clip_config.json" not in self.b.files
        ]
        if missing:
            self.add(
                "reevaluate",
                MISMATCH,
                f"no bundled model for seed(s) {missing} (submit with --with-models)",
            )
            return
        problems, rules = [], set()
        with tempfile.TemporaryDirectory(prefix="smallcomp-verify-") as tmp:
            runner = Runner(Store(tmp), self.runner.device, self.allow)
            for seed, r in results.items():
                exact, rule = _tolerance(r.get("device"), runner.device)
                rules.add(rule)
                try:
                    got = runner.evaluate(self.b.root / model_dir(seed), self.track)
                except (UnsafeModel, OSError, RuntimeError, ValueError) as e:
                    problems.append(f"{model_dir(seed)} does not load: {e}")
                    continue
                problems += [f"seed {seed}: {d}" for d in _differences(r["tasks"], got, exact)]
        if problems:
            self.add("reevaluate", MISMATCH, _summary(problems))
        else:
            self.add("reevaluate", OK, f"{len(results)} model(s) rescore {', '.join(rules)}")

    def retrain(self, seed: int) -> None:
        from benchmark.pipeline import Runner

        name = f"retrain seed {seed}"
        results = self.b.results()
        if seed not in results:
            self.add(name, MISMATCH, f"the bundle has no result for seed {seed}")
            return
        if self.spec is None:
            self.add(name, SKIPPED, "the recipe does not load here")
            return
        local = self.runner.store.root
        with tempfile.TemporaryDirectory(prefix="smallcomp-retrain-") as tmp:
            # the local store's pool, track models and curation, seen from a fresh store
            for entry in sorted(local.iterdir()) if local.is_dir() else []:
                if entry.is_dir() and entry.name not in FRESH:
                    (Path(tmp) / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
            runner = Runner(Store(tmp), self.runner.device, self.allow)
            try:
                got = runner.run(self.spec, self.info["scale"], seed)
            except (SpecError, OpError, StoreError) as e:
                self.add(name, MISMATCH, f"training here failed: {e}")
                return
        want = results[seed]
        exact, rule = _tolerance(want.get("device"), runner.device)
        problems = _differences(want["tasks"], got["tasks"], exact)
        if exact and want["train"].get("final_loss") != got["train"]["final_loss"]:
            problems.append(
                f"final loss {want['train'].get('final_loss')} in the bundle, "
                f"{got['train']['final_loss']} here"
            )
        if problems:
            self.add(name, MISMATCH, f"{_summary(problems)} (wanted {rule})")
        else:
            self.add(name, OK, f"retrained to the bundled metrics, {rule}")


def _close(a, b) -> bool:
    """JSON numbers equal up to float printing; lists and dicts elementwise; null for nan."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def verify(
    path: str | Path,
    runner,
    track: str | None = None,
    retrain: int | None = None,
    reevaluate: bool = False,
    allow_weights: Collection[str] = (),
    say: Callable[[str], None] = print,
) -> Report:
    """Run the checks on the bundle at ``path`` against the local ``track`` (default: the
    bundle's track, from ``tracks/``), printing one line per check through ``say``."""
    report = Report(str(path))
    try:
        with open_bundle(path) as b:
            v = _Verification(b, runner, local_track(b.info["track"], track), allow_weights, say)
            report = v.report
            report.sha256 = b.sha256
            if b.is_archive:
                from benchmark.store import file_sha256

                report.archive_sha256 = file_sha256(b.source)
            v.manifest()
            v.track_check()
            v.recipe()
            v.curation()
            v.budget()
            v.numbers()
            expensive = [("reevaluate", v.reevaluate)] if reevaluate else []
            if retrain is not None:
                expensive.append((f"retrain seed {retrain}", lambda: v.retrain(retrain)))
            for name, run in expensive:
                if report.failed:
                    v.add(name, SKIPPED, "an earlier check failed")
                else:
                    run()
    except BundleError as e:
        report.malformed = str(e)
    return report
