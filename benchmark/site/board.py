"""The data a page shows: results grouped into boards (a track, a scale, an eval-suite
version) of ranked entries, and the costs a row reports."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from benchmark import leaderboard

BASELINE = "no_filter"  # what every row is tested against


def device_s(step: dict) -> dict[str, float]:
    """Seconds each device spent on a step (its ``device_s``; older records: ``wall_s`` on
    its ``device``)."""
    if step.get("device_s"):
        return {d.split(":")[0]: float(t) for d, t in step["device_s"].items()}
    return {step.get("device", "?"): float(step.get("wall_s") or 0.0)}


def step_cost(result: dict) -> float:
    """Curation compute: device-seconds summed over the steps."""
    return float(sum(sum(device_s(s).values()) for s in result["costs"]["steps"]))


def cost_by_device(results: list[dict]) -> dict[str, float]:
    by: dict[str, float] = defaultdict(float)
    for r in results:
        for s in r["costs"]["steps"]:
            for d, t in device_s(s).items():
                by[d] += t / len(results)
    return dict(by)


def llm_spend(results: list[dict]) -> tuple[int, float]:
    """Mean LLM tokens and US$ a seed's curation spent (0 without LLM steps)."""
    tokens, usd = 0, 0.0
    for r in results:
        for s in r["costs"]["steps"]:
            llm = s.get("llm") or {}
            tokens += int(llm.get("prompt_tokens") or 0) + int(llm.get("completion_tokens") or 0)
            usd += float(llm.get("cost_usd") or 0.0)
    n = max(1, len(results))
    return round(tokens / n), usd / n


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


@dataclass
class Entry:
    """One ranked row (a recipe version at one scale and suite version) and its seeds."""

    row: dict
    results: list[dict]
    page: str  # the recipe page, relative to the site root
    label: str = ""  # the name, with its hash where the table has two versions of it

    @property
    def name(self) -> str:
        return self.row["recipe"]

    def scores(self, task: str) -> list[float]:
        """Each seed's score on a task or the headline (``leaderboard.HEADLINE``), in seed
        order like ``results``."""
        return [v for _, v in sorted(leaderboard.seed_scores(self.row, task).items())]


@dataclass
class Board:
    """The rows of one table: a track, a scale and an eval-suite version."""

    track: str
    scale: str
    suite: str
    version: str
    entries: list[Entry]
    tasks: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return slug(f"{self.track}-{self.scale}-v{self.version}")

    @property
    def rows(self) -> list[dict]:
        """The entries' leaderboard rows, for what ``benchmark.leaderboard`` reads off a board."""
        return [e.row for e in self.entries]

    def baseline(self) -> Entry | None:
        found = [e for e in self.entries if e.name == BASELINE]
        return max(found, key=lambda e: len(e.results)) if found else None


def recipe_page(track: str, recipe: str, recipe_hash: str) -> str:
    return f"recipes/{slug(track)}/{slug(recipe)}-{recipe_hash[:8]}.html"


def boards(results: list[dict]) -> list[Board]:
    """Tables by track, then scale, then suite version (newest first): versions never mix."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        key = (r["track"], r["scale"], r.get("suite", "?"), str(r.get("suite_version", "?")))
        groups[key].append(r)
    out = []
    for (track, scale, suite, version), rs in groups.items():
        by_row: dict[tuple, list[dict]] = defaultdict(list)
        for r in rs:
            by_row[(r["recipe"], r["recipe_hash"])].append(r)
        entries = [
            Entry(
                row,
                sorted(by_row[(row["recipe"], row["recipe_hash"])], key=lambda r: r["seed"]),
                recipe_page(track, row["recipe"], row["recipe_hash"]),
            )
            for row in leaderboard.rows(rs)
        ]
        names = Counter(e.name for e in entries)
        for e in entries:
            twice = names[e.name] > 1
            e.label = f"{e.name}@{e.row['recipe_hash'][:8]}" if twice else e.name
        tasks = list(dict.fromkeys(t for e in entries for t in e.row["tasks"]))
        out.append(Board(track, scale, suite, version, entries, tasks))
    out.sort(key=lambda b: (b.track, b.scale))
    out.sort(key=lambda b: leaderboard.version_key(b.version), reverse=True)
    return sorted(out, key=lambda b: b.track)


def current(all_boards: list[Board]) -> set[tuple[str, str, str]]:
    """(track, scale, version) of the newest suite version of each track and scale."""
    newest: dict[tuple[str, str], str] = {}
    for b in all_boards:
        key = (b.track, b.scale)
        if key not in newest or leaderboard.version_key(b.version) > leaderboard.version_key(
            newest[key]
        ):
            newest[key] = b.version
    return {(t, s, v) for (t, s), v in newest.items()}
