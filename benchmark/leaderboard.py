"""Results -> ranked tables: one row per recipe and scale, mean ± 95% CI over seeds per task."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from benchmark.store import write_atomic


def result_path(root: Path, result: dict) -> Path:
    name = f"{result['recipe']}-{result['recipe_hash'][:8]}-seed{result['seed']}.json"
    return root / "results" / result["track"] / result["scale"] / name


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
    """Aggregate seeds of the same (track, scale, recipe, recipe hash)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[(r["track"], r["scale"], r["recipe"], r["recipe_hash"])].append(r)
    out = []
    for (track, scale, recipe, rhash), rs in groups.items():
        tasks = list(rs[0]["headline"])
        out.append(
            {
                "track": track,
                "scale": scale,
                "recipe": recipe,
                "recipe_hash": rhash,
                "seeds": sorted(r["seed"] for r in rs),
                "device": "/".join(sorted({r.get("device", "?") for r in rs})),
                "tasks": {
                    t: mean_ci([r["headline"][t] for r in rs if t in r["headline"]]) for t in tasks
                },
                "average": mean_ci([float(np.mean(list(r["headline"].values()))) for r in rs]),
                # one size per distinct curated set, so seeds trained on different data show
                "curated_sizes": sorted(
                    {r["curated"].get("uid_hash", ""): r["curated"]["size"] for r in rs}.values()
                ),
                "curation_s": float(np.mean([r["costs"]["curation_wall_s"] for r in rs])),
                # every seed's result came from a bundle `smallcomp verify` re-derived
                "verified": all(bool(r.get("verified")) for r in rs),
            }
        )
    return sorted(out, key=lambda r: (r["track"], r["scale"], -r["average"][0]))


def _cell(m: float, h: float) -> str:
    return f"{100 * m:.1f}" if math.isnan(h) else f"{100 * m:.1f} ± {100 * h:.1f}"


def render(track: str, results: list[dict]) -> str:
    lines = [
        f"# Leaderboard: `{track}`",
        "",
        "Mean over seeds ± 95% confidence half-width (t-interval), in %. Ranked by the average",
        "of all task scores. Curation cost is wall-clock seconds of the curate stage; device is",
        "where the runs trained (results agree across devices up to numerics, not bit for bit).",
        "",
    ]
    mixed = False
    table_rows = rows(results)
    for scale in sorted({r["scale"] for r in table_rows}):
        rs = [r for r in table_rows if r["scale"] == scale]
        tasks = list(rs[0]["tasks"])
        lines += [
            f"## Scale `{scale}`",
            "",
            "| # | recipe | verified | seeds | device | average | "
            + " | ".join(tasks)
            + " | curated | curation s |",
            "|---|---|---|---|---|---|" + "---|" * len(tasks) + "---|---|",
        ]
        for i, r in enumerate(rs, 1):
            cells = [_cell(*r["tasks"].get(t, (float("nan"), float("nan")))) for t in tasks]
            curated = " / ".join(f"{n:,}" for n in r["curated_sizes"])
            if len(r["curated_sizes"]) > 1:
                curated, mixed = f"{curated} †", True
            lines.append(
                f"| {i} | {r['recipe']} `{r['recipe_hash'][:8]}` | "
                f"{'✓' if r.get('verified') else ''} | {len(r['seeds'])} | "
                f"{r['device']} | {_cell(*r['average'])} | "
                + " | ".join(cells)
                + f" | {curated} | {r['curation_s']:.1f} |"
            )
        lines.append("")
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
