"""Results -> ranked tables: one row per recipe and scale, each task's mean ± 95% CI with the
board's seeds as blocks (``seed_blocks``)."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats

from benchmark import seed_blocks
from benchmark.store import write_atomic

HEADLINE = "average"  # the key rows give the headline under, beside the task names


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
    half = seed_blocks.t_quantile(len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))
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
                "seed_tasks": {
                    t: {r["seed"]: r["headline"][t] for r in rs if t in r["headline"]}
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
    boards: dict[tuple, list[dict]] = defaultdict(list)
    for row in out:
        boards[(row["track"], row["scale"], row["suite_version"])].append(row)
    for board in boards.values():
        _block(board)
    out.sort(key=lambda r: -r["average"][0])
    out.sort(key=lambda r: version_key(r["suite_version"]), reverse=True)  # stable: keeps ranks
    return sorted(out, key=lambda r: (r["track"], r["scale"]))


def _key(row: dict) -> tuple[str, str]:
    return (row["recipe"], row["recipe_hash"])


def _block(board: list[dict]) -> None:
    """Replace each row's seed intervals by the board's seed-block ones where the fit exists,
    keeping the plain ones as ``seed_ci``; ``blocks`` holds the fits ``difference`` uses."""
    tasks = list(dict.fromkeys(t for row in board for t in row["tasks"]))
    for name in [HEADLINE, *tasks]:
        scores = {_key(r): seed_scores(r, name) for r in board}
        fit = seed_blocks.fit({k: v for k, v in scores.items() if v})
        for row in board:
            plain = row["average"] if name == HEADLINE else row["tasks"].get(name)
            row.setdefault("seed_ci", {})[name] = plain
            if fit is None or _key(row) not in fit.keys:
                continue
            row.setdefault("blocks", {})[name] = fit
            if name == HEADLINE:
                row["average"] = fit.interval(_key(row))
            else:
                row["tasks"][name] = fit.interval(_key(row))


def seed_scores(row: dict, name: str) -> dict[int, float]:
    """Seed -> the row's score on a task, or on the headline (``HEADLINE``)."""
    return row["scores"] if name == HEADLINE else row["seed_tasks"].get(name, {})


def difference(a: dict, b: dict, name: str = HEADLINE) -> tuple[float, float, str] | None:
    """Row a's score minus row b's on a task (or the headline), its 95% half-width and the
    method: their board's seed-block fit, or Welch's interval over their seeds where no fit
    holds both; None where neither can be had."""
    fit = a.get("blocks", {}).get(name)
    if fit is not None and fit is b.get("blocks", {}).get(name):
        return (*fit.difference(_key(a), _key(b)), "seeds as blocks")
    from benchmark.compare import welch_interval  # compare reads results through this module

    w = welch_interval(list(seed_scores(a, name).values()), list(seed_scores(b, name).values()))
    return None if w is None else (w["diff"], w["half"], "Welch")


def version_key(version: str) -> tuple:
    """Suite versions in release order ("2" after "1", "1.10" after "1.9")."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", str(version)))


def _board_fit(rs: list[dict], name: str) -> seed_blocks.Fit | None:
    """The seed-block fit the board's rows share on a task or the headline, if any."""
    return next((r["blocks"][name] for r in rs if name in r.get("blocks", {})), None)


def interval(row: dict, name: str) -> tuple[float, float]:
    """The row's mean and 95% half-width on a task or the headline (nan where it lacks it)."""
    return row["average"] if name == HEADLINE else row["tasks"].get(name, (math.nan, math.nan))


def own_seeds(row: dict, rs: list[dict], name: str) -> bool:
    """Whether the row's interval on a task is over its own 2+ seeds while other rows of its
    board share that task's seed-block fit (its seeds scatter there, or too few are shared):
    the task cells both boards mark with ``OWN_SEEDS``. The headline's such rows are named in
    ``fit_notes`` instead."""
    if name in row.get("blocks", {}) or len(seed_scores(row, name)) < 2:
        return False
    return _board_fit(rs, name) is not None


OWN_SEEDS = "°"
OWN_SEEDS_NOTE = (
    "The interval is over the recipe's own seeds: on that task they scatter beyond the other "
    "recipes' (the pooled noise's F test, family-wise 5%) or too few are shared, so the task's "
    "seed-block fit leaves the recipe out."
)


def fit_notes(rs: list[dict], code: Callable[[str], str] = "`{}`".format) -> list[str]:
    """What the headline's intervals rest on where not every row is in the seed-block fit:
    rows left out for their seeds, or for seeds scattering beyond the others' (``code``
    formats a recipe name, for markdown or HTML)."""
    apart = [r for r in rs if HEADLINE not in r.get("blocks", {})]
    if len(apart) == len(rs):
        return [
            "Intervals here are over each recipe's own seeds: no two recipes with 2+ seeds share "
            "seeds and leave residual noise, so there is no shared seed effect to fit."
        ]
    if not apart:
        return []
    fit = _board_fit(rs, HEADLINE)
    scattered = [code(r["recipe"]) for r in apart if _key(r) in fit.scattered]
    alone = [code(r["recipe"]) for r in apart if _key(r) not in fit.scattered]
    notes = []
    if scattered:
        notes.append(
            "Over their own seeds, which scatter beyond the other recipes' (the pooled noise's "
            f"F test, family-wise 5%): {', '.join(scattered)}."
        )
    if alone:
        notes.append(
            "Over their own seeds (fewer than 2, or none shared with the rest): "
            f"{', '.join(alone)}."
        )
    return notes


def _cell(m: float, h: float) -> str:
    return f"{100 * m:.1f}" if math.isnan(h) else f"{100 * m:.1f} ± {100 * h:.1f}"


def _plain(row: dict) -> str:
    _, half = row["seed_ci"][HEADLINE]
    return "" if math.isnan(half) else f"± {100 * half:.1f}"


def min_detectable(rs: list[dict], name: str = HEADLINE) -> float:
    """The smallest difference two recipes of the board can tell apart at the seeds shown:
    the seed-block fit's median pair half-width, else the Welch half-width for two recipes
    with the median seed count and spread."""
    fit = _board_fit(rs, name)
    if fit is not None:
        return fit.typical_difference()
    sds = [np.std(list(v.values()), ddof=1) for r in rs if len(v := seed_scores(r, name)) > 1]
    if not sds:
        return float("nan")
    n = int(np.median([len(r["seeds"]) for r in rs]))
    typical = float(np.median(sds))  # a recipe whose sampler is unstable does not set it
    return seed_blocks.t_quantile(2 * n - 2) * typical * math.sqrt(2 / n)


def seed_halves_tau(rs: list[dict]) -> tuple[float, int]:
    """Kendall's tau between the rankings two disjoint halves of the seeds give, over the
    recipes the headline's seed-block fit holds (else every row with two seeds), on the seeds
    they all share (alternate shared seeds to each half, so within a half every recipe stands
    on the same seeds)."""
    fitted = [r for r in rs if HEADLINE in r.get("blocks", {})]
    shown = fitted or [r for r in rs if len(r["scores"]) > 1]
    shared = sorted(set.intersection(*(set(r["scores"]) for r in shown))) if shown else []
    if len(shown) < 3 or len(shared) < 2:
        return float("nan"), len(shown)
    a = [np.mean([r["scores"][s] for s in shared[::2]]) for r in shown]
    b = [np.mean([r["scores"][s] for s in shared[1::2]]) for r in shown]
    return float(stats.kendalltau(a, b).statistic), len(shown)


def differs(a: dict, b: dict) -> bool:
    """Whether two rows' headlines differ: the 95% interval of their difference excludes 0."""
    d = difference(a, b)
    return d is not None and abs(d[0]) > d[1]


def render(track: str, results: list[dict]) -> str:
    lines = [
        f"# Leaderboard: `{track}`",
        "",
        "Mean ± 95% confidence half-width, in %, with the table's seeds as blocks: a seed fixes",
        "the initialisation and data order for every recipe, so its shared effect is fitted",
        "(score = recipe + seed + noise) and the interval says how well a recipe's place among",
        "the others is known; recipes with fewer seeds are set to the table's average seed.",
        "`plain CI` is the headline's t-interval over the recipe's own seeds, the shared effect",
        "included. Ranked by the headline, the plain mean of the tasks the track's suite names",
        "for it. One table per scale and eval-suite version (never mixed); the newest version",
        "comes first. `>` marks a row whose headline is above the next row's: the 95% interval",
        "of their difference excludes 0 (`smallcomp compare` tests one pair on its shared seeds",
        "alone). Curation cost is wall-clock seconds of the curate stage; device is where the",
        "runs trained (results agree across devices up to numerics, not bit for bit).",
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
            "| # | recipe | verified | seeds | device | headline | | plain CI | "
            + " | ".join(tasks)
            + " | curated | curation s |",
            "|---|---|---|---|---|---|---|---|" + "---|" * len(tasks) + "---|---|",
        ]
        marked = False
        for i, r in enumerate(rs, 1):
            cells = []
            for t in tasks:
                own = own_seeds(r, rs, t)
                cells.append(_cell(*interval(r, t)) + (f" {OWN_SEEDS}" if own else ""))
                marked |= own
            curated = " / ".join(f"{n:,}" for n in r["curated_sizes"])
            if len(r["curated_sizes"]) > 1:
                curated, mixed = f"{curated} †", True
            above = ">" if i < len(rs) and differs(r, rs[i]) else ""
            lines.append(
                f"| {i} | {r['recipe']} `{r['recipe_hash'][:8]}` | "
                f"{'✓' if r.get('verified') else ''} | {len(r['seeds'])} | "
                f"{r['device']} | {_cell(*r['average'])} | {above} | {_plain(r)} | "
                + " | ".join(cells)
                + f" | {curated} | {r['curation_s']:.1f} |"
            )
        lines.append("")
        lines += [line for line in fit_notes(rs) for line in (line, "")]
        if marked:
            lines += [f"{OWN_SEEDS} {OWN_SEEDS_NOTE}", ""]
        heads = rs[0]["headline_tasks"]
        if heads != tasks:
            lines += [f"Headline: the mean of {', '.join(heads)}.", ""]
        mdd = [f"headline {100 * min_detectable(rs):.1f}"] + [
            f"{t} {100 * min_detectable(rs, t):.1f}" for t in tasks
        ]
        tau, n = seed_halves_tau(rs)
        seeds = int(np.median([len(r["seeds"]) for r in rs]))
        lines += [
            f"Minimum detectable difference at {seeds} seeds (points; the median 95% half-width "
            f"of a difference between two recipes of the table): {'; '.join(mdd)}.",
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
