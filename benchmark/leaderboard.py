"""Results -> ranked tables: one row per recipe and scale, mean ± 95% CI over seeds per task."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from benchmark.store import write_atomic


def result_path(root: Path, result: dict) -> Path:
    """``results/<track>/<scale>/v<suite version>/<recipe>-<hash>-seed<n>.json``: a recipe
    scored by two suite versions keeps both results."""
    name = f"{result['recipe']}-{result['recipe_hash'][:8]}-seed{result['seed']}.json"
    version = f"v{result.get('suite_version', '1')}"
    return root / "results" / result["track"] / result["scale"] / version / name


def headline_score(result: dict) -> float:
    """The one number a result ranks by: the plain mean of the tasks its track's headline
    names (``headline_tasks``; every task, for results of suites that named none)."""
    names = result.get("headline_tasks") or list(result["headline"])
    return float(np.mean([result["headline"][t] for t in names]))


def save_result(root: Path, result: dict) -> Path:
    path = result_path(root, result)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=2))
    return path


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan with a single seed)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return float(a.mean()), float("nan")
    half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
    return float(a.mean()), float(half)


def load_results(root: Path, track: str | None = None) -> list[dict]:
    base = root / "results" / (track or "")
    return [json.loads(p.read_text()) for p in sorted(base.rglob("*.json"))]


def rows(results: list[dict]) -> list[dict]:
    """Aggregate seeds of the same (track, scale, suite version, recipe, recipe hash)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        version = str(r.get("suite_version", "1"))
        groups[(r["track"], r["scale"], version, r["recipe"], r["recipe_hash"])].append(r)
    out = []
    for (track, scale, version, recipe, rhash), rs in groups.items():
        tasks = list(rs[0]["headline"])
        out.append(
            {
                "track": track,
                "scale": scale,
                "suite_version": version,
                "recipe": recipe,
                "recipe_hash": rhash,
                "seeds": sorted(r["seed"] for r in rs),
                "device": "/".join(sorted({r.get("device", "?") for r in rs})),
                "tasks": {
                    t: mean_ci([r["headline"][t] for r in rs if t in r["headline"]]) for t in tasks
                },
                "average": mean_ci([headline_score(r) for r in rs]),
                "headline_tasks": rs[0].get("headline_tasks") or tasks,
                "scores": {r["seed"]: headline_score(r) for r in rs},
                "task_sd": {
                    t: float(np.std([r["headline"][t] for r in rs], ddof=1))
                    if len(rs) > 1
                    else float("nan")
                    for t in tasks
                },
                # one size per distinct curated set, so seeds trained on different data show
                "curated_sizes": sorted(
                    {r["curated"].get("uid_hash", ""): r["curated"]["size"] for r in rs}.values()
                ),
                "curation_s": float(np.mean([r["costs"]["curation_wall_s"] for r in rs])),
                # every seed's result came from a bundle `smallcomp verify` re-derived
                "verified": all(bool(r.get("verified")) for r in rs),
            }
        )
    out.sort(key=lambda r: -r["average"][0])
    out.sort(key=lambda r: version_key(r["suite_version"]), reverse=True)  # stable: keeps ranks
    return sorted(out, key=lambda r: (r["track"], r["scale"]))


def version_key(version: str) -> tuple:
    """Suite versions in release order ("2" after "1", "1.10" after "1.9")."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", str(version)))


def _cell(m: float, h: float) -> str:
    return f"{100 * m:.1f}" if math.isnan(h) else f"{100 * m:.1f} ± {100 * h:.1f}"


def min_detectable(rs: list[dict], task: str | None) -> float:
    """The smallest difference two recipes at the shown seeds can tell apart: the 95% Welch
    half-width for two recipes with the median seed count and the median seed spread."""
    sds = [r["task_sd"][task] if task else _sd(r) for r in rs if len(r["seeds"]) > 1]
    sds = [v for v in sds if not math.isnan(v)]
    if not sds:
        return float("nan")
    n = int(np.median([len(r["seeds"]) for r in rs]))
    typical = float(np.median(sds))  # a recipe whose sampler is unstable does not set it
    return float(stats.t.ppf(0.975, 2 * n - 2) * typical * math.sqrt(2 / n))


def _sd(row: dict) -> float:
    return float(np.std(list(row["scores"].values()), ddof=1))


def seed_halves_tau(rs: list[dict]) -> tuple[float, int]:
    """Kendall's tau between the rankings two disjoint halves of the seeds give (each recipe's
    seeds alternately to one half or the other), over the recipes with two seeds or more."""
    a, b = [], []
    for r in rs:
        seeds = sorted(r["scores"])
        if len(seeds) > 1:
            a.append(np.mean([r["scores"][s] for s in seeds[::2]]))
            b.append(np.mean([r["scores"][s] for s in seeds[1::2]]))
    if len(a) < 3:
        return float("nan"), len(a)
    return float(stats.kendalltau(a, b).statistic), len(a)


def differs(a: dict, b: dict) -> bool:
    """Whether two rows' headlines differ: their Welch 95% interval excludes zero."""
    from benchmark.compare import welch_interval  # compare reads results through this module

    w = welch_interval(list(a["scores"].values()), list(b["scores"].values()))
    return w is not None and abs(w["diff"]) > w["half"]


def render(track: str, results: list[dict]) -> str:
    lines = [
        f"# Leaderboard: `{track}`",
        "",
        "Mean over seeds ± 95% confidence half-width (t-interval), in %. Ranked by the headline,",
        "the plain mean of the tasks the track's suite names for it. One table per scale and",
        "eval-suite version (never mixed); the newest version comes first. `>` marks a row whose",
        "headline is above the next row's beyond both CIs (Welch, 95%). Curation cost is",
        "wall-clock seconds of the curate stage; device is where the runs trained (results agree",
        "across devices up to numerics, not bit for bit).",
        "",
    ]
    mixed = False
    table_rows = rows(results)
    boards: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in table_rows:
        boards[(r["scale"], r["suite_version"])].append(r)
    newest = {}
    for scale, version in boards:
        newest.setdefault(scale, version)
    for (scale, version), rs in boards.items():
        tasks = list(rs[0]["tasks"])
        old = "" if newest[scale] == version else " (superseded)"
        lines += [
            f"## Scale `{scale}`, suite v{version}{old}",
            "",
            "| # | recipe | verified | seeds | device | headline | | "
            + " | ".join(tasks)
            + " | curated | curation s |",
            "|---|---|---|---|---|---|---|" + "---|" * len(tasks) + "---|---|",
        ]
        for i, r in enumerate(rs, 1):
            cells = [_cell(*r["tasks"].get(t, (float("nan"), float("nan")))) for t in tasks]
            curated = " / ".join(f"{n:,}" for n in r["curated_sizes"])
            if len(r["curated_sizes"]) > 1:
                curated, mixed = f"{curated} †", True
            above = ">" if i < len(rs) and differs(r, rs[i]) else ""
            lines.append(
                f"| {i} | {r['recipe']} `{r['recipe_hash'][:8]}` | "
                f"{'✓' if r.get('verified') else ''} | {len(r['seeds'])} | "
                f"{r['device']} | {_cell(*r['average'])} | {above} | "
                + " | ".join(cells)
                + f" | {curated} | {r['curation_s']:.1f} |"
            )
        lines.append("")
        heads = rs[0]["headline_tasks"]
        if heads != tasks:
            lines += [f"Headline: the mean of {', '.join(heads)}.", ""]
        mdd = [f"headline {100 * min_detectable(rs, None):.1f}"] + [
            f"{t} {100 * min_detectable(rs, t):.1f}" for t in tasks
        ]
        tau, n = seed_halves_tau(rs)
        seeds = int(np.median([len(r["seeds"]) for r in rs]))
        lines += [
            f"Minimum detectable difference at {seeds} seeds (points; the 95% Welch half-width "
            f"for two recipes with the median seed spread): {'; '.join(mdd)}.",
            "",
            f"Ranking agreement of two disjoint seed halves: Kendall τ = {tau:.2f} over {n} "
            "recipes.",
            "",
        ]
    if any(r.get("verified") for r in table_rows):
        lines += [
            "✓ Verified: submitted as a bundle (`smallcomp submit`) whose manifest, recipe hash,",
            "curated uid list and numbers `smallcomp verify` re-derived before",
            "`smallcomp leaderboard --add` took it in; each result's `verified` field names the",
            "bundle's sha256 and the checks that ran.",
            "",
        ]
    if mixed:
        lines += [
            "† The row's seeds trained on different curated sets: the recipe was curated where",
            "the track's models (reference CLIP, detector) were built apart and differ in their",
            "numerics (each result's `curated.weights` names the builds it used). Copy",
            "`runs/reference/` and `runs/detector/` between machines to curate alike.",
            "",
        ]
    return "\n".join(lines)


def add_verified(root: Path, results: list[dict], stamp: dict) -> list[Path]:
    """Save ``results`` (a verified bundle's) with ``stamp`` as their ``verified`` field,
    replacing the same recipe hash and seed's unverified result."""
    return [save_result(root, r | {"verified": stamp}) for r in results]


def build(root: Path) -> list[Path]:
    """Write ``<root>/<track>.md`` for every track with results."""
    results = load_results(root)
    written = []
    for track in sorted({r["track"] for r in results}):
        path = root / f"{track}.md"
        write_atomic(path, render(track, [r for r in results if r["track"] == track]))
        written.append(path)
    return written
