"""Recipes against a baseline, task by task: the difference in points with a 95% confidence
interval, ``*`` where it excludes zero (``smallcomp compare``).

Two intervals, both t-intervals at 95%. Welch's compares the two recipes' seeds as independent
samples. Where the two share seeds (a seed fixes the model's initialisation and the data order,
so the same seed pairs two runs that differ only in their data), the paired interval takes the
per-seed differences, which removes the spread both share; it is shown when at least two seeds
are shared (``--method auto``), else Welch's is. Results compare only within one eval suite
version, the track's current one: results of other versions are left out and counted.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.leaderboard import HEADLINE, headline_score, load_results
from benchmark.seed_blocks import CONFIDENCE, t_quantile

Method = Literal["auto", "paired", "welch"]
METHODS: tuple[Method, ...] = ("auto", "paired", "welch")
DEFAULT_BASELINE = "no_filter"


class CompareError(Exception):
    """What was asked cannot be compared; the CLI prints it as one line and exits 2."""


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95% Welch interval."""
    w = welch_interval(a, b)
    if w is None:
        raise ValueError("Welch's interval needs at least two values on each side")
    return w["diff"], w["half"]


def welch_interval(a: list[float], b: list[float]) -> dict | None:
    """Welch's t-interval for mean(a) - mean(b); None with fewer than two values a side."""
    if min(len(a), len(b)) < 2:
        return None
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    diff, se = float(np.mean(a) - np.mean(b)), math.sqrt(va + vb)
    if se == 0:
        return {"diff": diff, "half": 0.0, "df": None, "n": [len(a), len(b)]}
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(df) * se
    return {"diff": diff, "half": half, "df": float(df), "n": [len(a), len(b)]}


def paired_interval(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """The t-interval of the mean per-seed difference a[s] - b[s] over the seeds both have;
    None with fewer than two."""
    seeds = sorted(a.keys() & b.keys())
    if len(seeds) < 2:
        return None
    d = np.array([a[s] - b[s] for s in seeds])
    sd = float(d.std(ddof=1))
    half = t_quantile(len(d) - 1) * sd / math.sqrt(len(d))
    return {"diff": float(d.mean()), "half": half, "df": len(d) - 1, "seeds": seeds}


@dataclass
class Runs:
    """One recipe version's results: per seed, each task's headline and their average, in
    points."""

    label: str
    recipe: str
    recipe_hash: str
    by_seed: dict[int, dict[str, float]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(self.by_seed)

    def task(self, name: str) -> dict[int, float]:
        return {s: v[name] for s, v in self.by_seed.items() if name in v}


def _runs(label: str, results: list[dict]) -> Runs:
    first = results[0]
    runs = Runs(label, first["recipe"], first["recipe_hash"])
    for r in results:
        if r["seed"] in runs.by_seed:
            raise CompareError(f"{label}: two results for seed {r['seed']}")
        head = {t: 100 * float(v) for t, v in r["headline"].items()}
        runs.by_seed[r["seed"]] = head | {HEADLINE: 100 * headline_score(r)}
    return runs


def compare_pair(runs: Runs, base: Runs, tasks: list[str], method: Method) -> dict:
    """Each task's difference ``runs`` - ``base``: both intervals, and the one shown."""
    out = {}
    for t in tasks:
        a, b = runs.task(t), base.task(t)
        paired = paired_interval(a, b)
        w = welch_interval(list(a.values()), list(b.values()))
        if method == "auto":
            shown = "paired" if paired else "welch" if w else None
        else:
            shown = method if (paired if method == "paired" else w) else None
        pick = {"paired": paired, "welch": w}.get(shown or "")
        out[t] = {
            "mean": float(np.mean(list(a.values()))) if a else None,
            "baseline_mean": float(np.mean(list(b.values()))) if b else None,
            "shown": shown,
            "diff": pick["diff"] if pick else None,
            "half": pick["half"] if pick else None,
            "excludes_zero": bool(abs(pick["diff"]) > pick["half"]) if pick else None,
            "paired": paired,
            "welch": w,
        }
    return out


# -- which results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """A recipe as the command line names it: by name (``name@hash`` for one version), or by
    file, which fixes its hash."""

    text: str
    name: str
    hash_prefix: str = ""
    file: bool = False


def _is_file(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or Path(text).is_file()


def wanted(text: str, track: str | None) -> tuple[Wanted, str | None]:
    """What ``text`` names, and the track a recipe file says it runs on."""
    if _is_file(text):
        from benchmark.spec.load import load_recipe

        if not Path(text).is_file():
            raise CompareError(f"no such recipe file: {text}")
        spec = load_recipe(text, track)
        return Wanted(text, spec.recipe.name, spec.hash, True), spec.track.track.name
    name, _, prefix = text.partition("@")
    return Wanted(text, name, prefix), None


def pick(want: Wanted, groups: dict[tuple[str, str], list[dict]], other: Counter, where: str):
    """The one result group ``want`` names; a CompareError saying why there is none or more."""
    hashes = sorted(h for n, h in groups if n == want.name)
    found = [h for h in hashes if h.startswith(want.hash_prefix)]
    if len(found) == 1:
        return (want.name, found[0])
    if not hashes:
        if other[want.name]:
            raise CompareError(
                f"recipe '{want.name}': its {other[want.name]} result(s) in {where} are of "
                "another suite version; none of the current one"
            )
        known = ", ".join(sorted({n for n, _ in groups})) or "none"
        raise CompareError(
            f"unknown recipe '{want.text}': no results in {where} (recipes: {known})"
        )
    listed = ", ".join(h[:8] for h in hashes)
    if not found:
        edited = " (the file changed since they ran?)" if want.file else ""
        raise CompareError(
            f"recipe '{want.text}': no results of hash {want.hash_prefix[:8]} in {where}; "
            f"its results are under {listed}{edited}"
        )
    raise CompareError(
        f"recipe '{want.name}' has results under {len(found)} versions ({listed}): name one as "
        f"{want.name}@{found[0][:8]}, or give its recipe file"
    )


@dataclass(frozen=True)
class Suite:
    track: str
    suite: str
    version: str


def current_suite(track: str, near: Path) -> Suite:
    """The track's name and its eval suite's current version, from the track file."""
    from benchmark.spec.load import find_track, load_track

    try:
        spec = load_track(find_track(track, near))
    except FileNotFoundError:
        raise CompareError(
            f"no track '{track}' found: its eval suite's version decides which results compare; "
            "pass --track with the track's file"
        ) from None
    ev = spec.track.eval
    return Suite(spec.track.name, ev.suite, ev.version)


def compare(
    recipes: list[str],
    *,
    leaderboard: Path,
    track: str | None = None,
    scale: str = "tiny",
    baseline: str | None = None,
    method: Method = "auto",
) -> dict:
    """The comparison as data (what ``--json`` prints). The baseline is ``baseline``, else the
    first recipe named, else ``no_filter`` when every recipe with results is compared."""
    if method not in METHODS:
        raise CompareError(f"method must be one of {', '.join(METHODS)}, not '{method}'")
    asked = [wanted(t, track) for t in [*recipes, *([baseline] if baseline else [])]]
    tracks = {t for _, t in asked if t}
    named = [w for w, _ in asked[: len(recipes)]]
    base_want = asked[-1][0] if baseline else None
    if track is None and len(tracks) > 1:
        raise CompareError(f"the recipe files run on tracks {', '.join(sorted(tracks))}: pick one")
    track = track or next(iter(tracks), None)
    if track is None:
        have = sorted(p.name for p in (leaderboard / "results").glob("*") if p.is_dir())
        if len(have) != 1:
            raise CompareError(
                f"{len(have)} tracks have results in {leaderboard / 'results'}"
                + (f" ({', '.join(have)}): pass --track" if have else "")
            )
        track = have[0]
    suite = current_suite(track, leaderboard)
    where = str(leaderboard / "results" / suite.track / scale)
    results = [r for r in load_results(leaderboard, suite.track) if r.get("scale") == scale]
    if not results:
        raise CompareError(f"no results in {where}")
    current, other_version = [], []
    for r in results:
        now = r.get("suite") == suite.suite and str(r.get("suite_version")) == suite.version
        (current if now else other_version).append(r)
    left_out = Counter(f"{r.get('suite')} v{r.get('suite_version')}" for r in other_version)
    if not current:
        found = ", ".join(sorted(left_out))
        raise CompareError(
            f"no results of suite {suite.suite} v{suite.version} (the track's current version) "
            f"in {where}; found {found}"
        )
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in sorted(current, key=lambda r: r["seed"]):
        groups[(r["recipe"], r["recipe_hash"])].append(r)
    other = Counter(r["recipe"] for r in other_version)

    keys = [(w.text, pick(w, groups, other, where)) for w in named]
    if not named:  # every recipe with results; one with several versions shows each
        versions = Counter(n for n, _ in groups)
        keys = [(n if versions[n] == 1 else f"{n}@{h[:8]}", (n, h)) for n, h in sorted(groups)]
    if base_want:
        base_key = (base_want.text, pick(base_want, groups, other, where))
    elif named:
        base_key = keys[0]
    else:
        default = [k for k in keys if k[1][0] == DEFAULT_BASELINE]
        if len(default) != 1:
            why = "no results" if not default else f"results of {len(default)} versions"
            raise CompareError(
                f"{why} for {DEFAULT_BASELINE} in {where}: name a baseline with --baseline"
            )
        base_key = default[0]
    base = _runs(base_key[0], groups[base_key[1]])
    tasks = [*groups[base_key[1]][0]["headline"], HEADLINE]
    seen = {base_key[1]}
    comparisons = []
    for label, key in keys:
        if key in seen:
            continue
        seen.add(key)
        runs = _runs(label, groups[key])
        comparisons.append(
            {
                "label": label,
                "recipe": runs.recipe,
                "recipe_hash": runs.recipe_hash,
                "seeds": runs.seeds,
                "shared_seeds": sorted(set(runs.seeds) & set(base.seeds)),
                "tasks": compare_pair(runs, base, tasks, method),
            }
        )
    return {
        "track": suite.track,
        "scale": scale,
        "suite": suite.suite,
        "suite_version": suite.version,
        "left_out": dict(sorted(left_out.items())),
        "method": method,
        "confidence": CONFIDENCE,
        "unit": "points",
        "tasks": tasks,
        "baseline": {
            "label": base.label,
            "recipe": base.recipe,
            "recipe_hash": base.recipe_hash,
            "seeds": base.seeds,
            "means": {t: _mean(base.task(t)) for t in tasks},
        },
        "comparisons": comparisons,
    }


def _mean(values: dict[int, float]) -> float | None:
    return float(np.mean(list(values.values()))) if values else None


# -- the terminal table ----------------------------------------------------------------------


def _cell(c: dict, row_method: str | None) -> str:
    if c["shown"] is None:
        return "n/a"
    text = f"{c['diff']:+.1f} ± {c['half']:.1f}"
    if c["shown"] != row_method:
        text += f" ({c['shown'][0]})"
    return text + (" *" if c["excludes_zero"] else "  ")


def _how(comp: dict) -> tuple[str | None, str]:
    """The row's method (the average's) and how the row says it."""
    avg = comp["tasks"][HEADLINE]
    if avg["shown"] == "paired":
        return "paired", f"paired n={len(avg['paired']['seeds'])}"
    if avg["shown"] == "welch":
        return "welch", "welch {}/{}".format(*avg["welch"]["n"])
    return None, "n/a"


def render(report: dict) -> str:
    base = report["baseline"]
    left = report["left_out"]
    lines = [
        f"{report['track']}/{report['scale']}: suite {report['suite']} v{report['suite_version']}"
        " (the track's current version; only its results compare"
        + (f"; left out: {', '.join(f'{n} {k}' for k, n in left.items())}" if left else "")
        + ")",
        f"difference to {base['label']} `{base['recipe_hash'][:8]}` "
        f"({len(base['seeds'])} seeds) in points, 95% CI; * = the CI excludes 0",
        "paired: t-interval of the per-seed differences over shared seeds (same seed, same "
        "initialisation); welch: Welch's t-interval over the two recipes' seeds",
    ]
    if report["method"] != "auto":
        lines.append(f"method: {report['method']} (--method)")
    tasks = report["tasks"]
    rows = [["recipe", "CI", *tasks]]
    rows.append(["(baseline) " + base["label"], "mean", *(_num(base["means"][t]) for t in tasks)])
    for comp in report["comparisons"]:
        method, how = _how(comp)
        rows.append([comp["label"], how, *(_cell(comp["tasks"][t], method) for t in tasks)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines.append("")
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    if not report["comparisons"]:
        lines.append("(no other recipe to compare)")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}  "
