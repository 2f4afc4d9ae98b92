"""`smallcomp compare` on synthetic results: paired and Welch intervals against scipy's own, the
`*` marking, the JSON, which results compare, and one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_TRACK
from scipy import stats

from benchmark import leaderboard
from benchmark.cli import main
from benchmark.spec.load import load_recipe

TASKS = ("zeroshot", "relation", "swap_att")  # the test track's suite, version "1"
TRACK = ["--track", str(TEST_TRACK)]


def result(recipe: str, seed: int, scores: tuple[float, ...], **kw) -> dict:
    return {
        "recipe": recipe,
        "recipe_hash": kw.get("recipe_hash", hashlib.sha256(recipe.encode()).hexdigest()[:16]),
        "track": "shapes-test",
        "scale": kw.get("scale", "tiny"),
        "seed": seed,
        "suite": "shapes",
        "suite_version": kw.get("version", "1"),
        "headline": dict(zip(TASKS, scores, strict=True)),
    }


def save(root: Path, recipe: str, per_seed: dict[int, tuple[float, ...]], **kw) -> None:
    for seed, scores in per_seed.items():
        leaderboard.save_result(root, result(recipe, seed, scores, **kw))


rng = np.random.default_rng(0)
BASE = {s: tuple(rng.uniform(0.3, 0.6, 3)) for s in range(5)}
# same seeds as the baseline, a clear gain on zeroshot, noise elsewhere
GAIN = {
    s: (v[0] + 0.1 + rng.normal(0, 0.01), v[1] + rng.normal(0, 0.05), v[2]) for s, v in BASE.items()
}
OTHER_SEEDS = {s: tuple(rng.uniform(0.3, 0.6, 3)) for s in (10, 11, 12)}
ONE_SHARED = {s: tuple(rng.uniform(0.3, 0.6, 3)) for s in (0, 20, 21)}


@pytest.fixture
def board(tmp_path: Path) -> Path:
    save(tmp_path, "no_filter", BASE)
    save(tmp_path, "gain", GAIN)
    save(tmp_path, "apart", OTHER_SEEDS)
    save(tmp_path, "one_shared", ONE_SHARED)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys, board: Path, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--leaderboard", str(board), *TRACK, "--json")
    assert code == 0, err
    return json.loads(out)


def points(per_seed: dict, task: str) -> dict[int, float]:
    i = TASKS.index(task) if task != leaderboard.HEADLINE else None
    return {s: 100 * (np.mean(v) if i is None else v[i]) for s, v in per_seed.items()}


def _ci(test) -> tuple[float, float]:
    low, high = test.confidence_interval(0.95)
    return (low + high) / 2, (high - low) / 2


@pytest.mark.parametrize("task", [*TASKS, leaderboard.HEADLINE])
def test_paired_and_welch_match_scipy(capsys, board, task):
    rep = report(capsys, board, "no_filter", "gain", "apart", "one_shared")
    by = {c["recipe"]: c["tasks"][task] for c in rep["comparisons"]}
    base = points(BASE, task)

    gain = points(GAIN, task)
    seeds = sorted(base)
    paired = _ci(stats.ttest_rel([gain[s] for s in seeds], [base[s] for s in seeds]))
    welch = _ci(stats.ttest_ind(list(gain.values()), list(base.values()), equal_var=False))
    c = by["gain"]
    assert c["shown"] == "paired"  # 5 shared seeds
    assert (c["paired"]["diff"], c["paired"]["half"]) == pytest.approx(paired, rel=1e-9)
    assert (c["welch"]["diff"], c["welch"]["half"]) == pytest.approx(welch, rel=1e-9)
    assert (c["diff"], c["half"]) == pytest.approx(paired, rel=1e-9)
    assert c["paired"]["seeds"] == seeds and c["welch"]["n"] == [5, 5]

    for name, data in (("apart", OTHER_SEEDS), ("one_shared", ONE_SHARED)):
        values = list(points(data, task).values())
        welch = _ci(stats.ttest_ind(values, list(base.values()), equal_var=False))
        c = by[name]
        assert c["shown"] == "welch" and c["paired"] is None  # fewer than 2 shared seeds
        assert (c["diff"], c["half"]) == pytest.approx(welch, rel=1e-9)
        assert c["excludes_zero"] == (abs(c["diff"]) > c["half"])


def test_method_option_picks_the_interval_and_never_falls_back(capsys, board):
    welch = report(capsys, board, "no_filter", "gain", "one_shared", "--method", "welch")
    paired = report(capsys, board, "no_filter", "gain", "one_shared", "--method", "paired")
    assert welch["method"] == "welch" and paired["method"] == "paired"
    g_w, o_w = (c["tasks"]["zeroshot"] for c in welch["comparisons"])
    g_p, o_p = (c["tasks"]["zeroshot"] for c in paired["comparisons"])
    assert g_w["shown"] == "welch" and g_w["diff"] == g_w["welch"]["diff"]
    assert g_p["shown"] == "paired" and g_p["half"] == g_p["paired"]["half"]
    assert o_p["shown"] is None and o_p["diff"] is None  # one shared seed: no paired interval
    assert o_w["shown"] == "welch"
    code, out, _ = run(
        capsys, "no_filter", "one_shared", "--method", "paired", "--leaderboard", str(board), *TRACK
    )
    assert code == 0 and "method: paired" in out
    assert out.splitlines()[-1].split()[1:3] == ["n/a", "n/a"]


def test_star_marks_intervals_that_exclude_zero(capsys, board):
    rep = report(capsys, board, "no_filter", "gain")
    cells = rep["comparisons"][0]["tasks"]
    assert cells["zeroshot"]["excludes_zero"] is True  # +10 points on every seed
    assert cells["swap_att"]["excludes_zero"] is False  # identical on every seed
    assert cells["swap_att"]["diff"] == 0 and cells["swap_att"]["half"] == 0
    for c in cells.values():
        assert c["excludes_zero"] == (c["diff"] - c["half"] > 0 or c["diff"] + c["half"] < 0)

    code, out, _ = run(capsys, "no_filter", "gain", "--leaderboard", str(board), *TRACK)
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("recipe"))
    assert header.split() == ["recipe", "CI", *TASKS, leaderboard.HEADLINE]
    row = next(line for line in lines if line.startswith("gain"))
    assert row.split()[:3] == ["gain", "paired", "n=5"]
    z, rel, swap = (cells[t] for t in TASKS)
    assert f"{z['diff']:+.1f} ± {z['half']:.1f} *" in row
    assert f"{rel['diff']:+.1f} ± {rel['half']:.1f}" in row
    assert "+0.0 ± 0.0" in row and "+0.0 ± 0.0 *" not in row
    assert row.count("*") == sum(c["excludes_zero"] for c in cells.values())
    assert "suite shapes v1 (the track's current version" in out
    assert "difference to no_filter" in out


def test_json_shape(capsys, board):
    rep = report(capsys, board)  # no recipe named: every recipe against no_filter
    assert set(rep) == {
        "track",
        "scale",
        "suite",
        "suite_version",
        "left_out",
        "method",
        "confidence",
        "unit",
        "tasks",
        "baseline",
        "comparisons",
    }
    assert (rep["track"], rep["scale"], rep["suite_version"]) == ("shapes-test", "tiny", "1")
    assert rep["tasks"] == [*TASKS, leaderboard.HEADLINE] and rep["unit"] == "points"
    assert rep["baseline"]["recipe"] == "no_filter" and rep["baseline"]["seeds"] == list(range(5))
    assert rep["baseline"]["means"]["zeroshot"] == pytest.approx(
        np.mean(list(points(BASE, "zeroshot").values()))
    )
    assert [c["recipe"] for c in rep["comparisons"]] == ["apart", "gain", "one_shared"]
    for c in rep["comparisons"]:
        assert set(c) == {"label", "recipe", "recipe_hash", "seeds", "shared_seeds", "tasks"}
        assert list(c["tasks"]) == rep["tasks"]
        for cell in c["tasks"].values():
            assert set(cell) == {
                "mean",
                "baseline_mean",
                "shown",
                "diff",
                "half",
                "excludes_zero",
                "paired",
                "welch",
            }
    assert report(capsys, board, "--baseline", "gain")["baseline"]["recipe"] == "gain"
    # the first recipe named is the baseline
    assert report(capsys, board, "apart", "gain")["baseline"]["recipe"] == "apart"


def test_only_the_current_suite_version_compares(capsys, board):
    save(board, "gain", {s: (0.99, 0.99, 0.99) for s in range(5, 8)}, version="0")
    save(board, "stale", {0: (0.5, 0.5, 0.5), 1: (0.4, 0.4, 0.4)}, version="0")
    rep = report(capsys, board, "no_filter", "gain")
    assert rep["left_out"] == {"shapes v0": 5}
    assert rep["comparisons"][0]["seeds"] == list(range(5))
    code, out, _ = run(capsys, "no_filter", "gain", "--leaderboard", str(board), *TRACK)
    assert "left out: 5 shapes v0" in out
    code, _, err = run(capsys, "no_filter", "stale", "--leaderboard", str(board), *TRACK)
    assert code == 2 and err.count("\n") == 1
    assert "recipe 'stale'" in err and "another suite version" in err


def test_recipe_files_and_versions(capsys, board, recipe):
    r = recipe("steps:\n  - op: no_filter\n", name="filed")
    h = load_recipe(r).hash
    save(board, "filed", GAIN, recipe_hash=h)
    rep = report(capsys, board, "no_filter", str(r))
    assert rep["comparisons"][0]["recipe_hash"] == h
    # edited after it ran: results under another hash
    save(board, "filed", BASE, recipe_hash="f" * 16)
    code, _, err = run(capsys, "no_filter", "filed", "--leaderboard", str(board), *TRACK)
    assert code == 2 and err.count("\n") == 1 and "has results under 2 versions" in err
    rep = report(capsys, board, "no_filter", "filed@ffff")
    assert rep["comparisons"][0]["recipe_hash"] == "f" * 16
    r.write_text(r.read_text().replace("no_filter", "dedup"))
    code, _, err = run(capsys, "no_filter", str(r), "--leaderboard", str(board), *TRACK)
    assert code == 2 and err.count("\n") == 1 and "the file changed since they ran?" in err


def test_one_line_errors(capsys, board, tmp_path):
    code, _, err = run(capsys, "no_filter", "nope", "--leaderboard", str(board), *TRACK)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("smallcomp: error: unknown recipe 'nope': no results in ")
    assert "(recipes: apart, gain, no_filter, one_shared)" in err

    empty = tmp_path / "empty"
    code, _, err = run(capsys, "no_filter", "--leaderboard", str(empty), *TRACK)
    assert code == 2 and err.count("\n") == 1
    assert f"no results in {empty / 'results' / 'shapes-test' / 'tiny'}" in err

    code, _, err = run(capsys, "--leaderboard", str(board), *TRACK, "--scale", "micro")
    assert code == 2 and "no results in " in err and err.count("\n") == 1

    code, _, err = run(capsys, "no_filter", "--leaderboard", str(board), "--track", "nowhere")
    assert code == 2 and err.count("\n") == 1 and "no track 'nowhere' found" in err

    save(board, "x", {0: (0.1, 0.1, 0.1)}, version="1")
    (board / "results" / "other").mkdir()
    code, _, err = run(capsys, "--leaderboard", str(board))
    assert code == 2 and err.count("\n") == 1 and "2 tracks have results" in err
