"""Seeds as blocks: the additive recipe + seed fit against the two-way ANOVA written out by hand,
and what the leaderboard draws from it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmark import leaderboard, seed_blocks
from benchmark.compare import welch_interval


def _table(rng: np.random.Generator, recipes: int, seeds: int, seed_sd: float, noise: float):
    effect = rng.normal(0, 5, recipes)
    shared = rng.normal(0, seed_sd, seeds)
    y = effect[:, None] + shared[None, :] + rng.normal(0, noise, (recipes, seeds))
    return {f"r{i}": {s: float(y[i, s]) for s in range(seeds)} for i in range(recipes)}, y


def test_balanced_fit_is_the_two_way_anova():
    scores, y = _table(np.random.default_rng(0), 5, 3, 3.0, 0.3)
    fit = seed_blocks.fit(scores)
    r, s = y.shape
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    df = (r - 1) * (s - 1)
    mse = float((resid**2).sum()) / df
    t = stats.t.ppf(0.975, df)
    assert fit.df == df
    mean, half = fit.interval("r2")
    assert mean == pytest.approx(y[2].mean())
    assert half == pytest.approx(t * math.sqrt(mse / s))
    diff, dhalf = fit.difference("r0", "r3")
    assert diff == pytest.approx(y[0].mean() - y[3].mean())
    assert dhalf == pytest.approx(t * math.sqrt(2 * mse / s))
    assert fit.typical_difference() == pytest.approx(dhalf)


def test_shared_seed_effect_leaves_the_interval():
    """A seed that lifts every recipe alike widens each recipe's own t-interval but not the
    blocked one: the blocked half-width follows the interaction noise only."""
    scores, y = _table(np.random.default_rng(1), 8, 3, 4.0, 0.2)
    fit = seed_blocks.fit(scores)
    plain = [leaderboard.mean_ci(list(v.values()))[1] for v in scores.values()]
    blocked = [fit.interval(k)[1] for k in scores]
    assert max(blocked) < 0.6 < min(plain)


def test_fewer_seeds_are_set_to_the_average_seed():
    """Without noise the additive model is exact: a recipe seen at 3 of 5 seeds gets the mean
    it would have had at all 5, not its mean over the 3 it has."""
    shared = {0: 2.0, 1: -1.0, 2: 4.0, 3: -3.0, 4: 0.5}
    scores = {
        "full": {s: 10 + b for s, b in shared.items()},
        "also": {s: 7 + b for s, b in shared.items()},
        "part": {s: 12 + shared[s] for s in (0, 1, 2)},
    }
    scores["also"][4] += 0.01  # a residual, so the fit has a spread to report
    fit = seed_blocks.fit(scores)
    avg = np.mean(list(shared.values()))
    assert fit.interval("part")[0] == pytest.approx(12 + avg, abs=0.02)
    assert np.mean(list(scores["part"].values())) == pytest.approx(12 + 5 / 3)


def test_unbalanced_fit_is_least_squares_on_the_full_design():
    """Recipes on 5, 3 and 2 seeds, one seed only one recipe has: means and covariances are
    those of ordinary least squares on recipe and seed indicators (solved here by pinv on the
    over-parametrised design, contrasts at the average seed)."""
    rng = np.random.default_rng(4)
    seeds_of = {"a": range(5), "b": range(5), "c": (0, 1, 2), "d": (1, 3), "e": (0, 2, 4, 5)}
    scores = {
        k: {s: float(rng.normal(k.encode()[0] % 7, 1)) for s in v} for k, v in seeds_of.items()
    }
    fit = seed_blocks.fit(scores)
    keys, seeds = list(scores), sorted({s for v in scores.values() for s in v})
    cells = [(k, s, y) for k, v in scores.items() for s, y in v.items()]
    x = np.zeros((len(cells), len(keys) + len(seeds)))
    for row, (k, s, _) in enumerate(cells):
        x[row, keys.index(k)] = x[row, len(keys) + seeds.index(s)] = 1.0
    y = np.array([c[2] for c in cells])
    beta = np.linalg.pinv(x) @ y
    df = len(cells) - np.linalg.matrix_rank(x)
    sigma2 = float(((y - x @ beta) ** 2).sum()) / df
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    t = stats.t.ppf(0.975, df)

    def contrast(weights: dict) -> np.ndarray:
        c = np.zeros(x.shape[1])
        for k, w in weights.items():
            c[keys.index(k)] = w
        c[len(keys) :] = sum(weights.values()) / len(seeds)
        return c

    assert fit.df == df
    for k in keys:
        c = contrast({k: 1})
        assert fit.interval(k) == pytest.approx((c @ beta, t * math.sqrt(c @ cov @ c)))
    c = contrast({"c": 1, "d": -1})
    assert fit.difference("c", "d") == pytest.approx((c @ beta, t * math.sqrt(c @ cov @ c)))


def test_the_largest_linked_group_is_fitted_and_the_rest_left_out():
    """A recipe on seeds nobody else has, one with a single seed and one whose score is NaN
    on a seed stay out of (or are trimmed from) the fit instead of turning it off."""
    scores = {
        "a": {0: 1.0, 1: 2.0, 2: 3.1},
        "b": {0: 1.5, 1: 2.6, 2: 3.4, 3: math.nan},
        "c": {7: 3.0, 8: 3.5},  # unlinked
        "d": {0: 9.0},  # one seed
    }
    fit = seed_blocks.fit(scores)
    assert fit.keys == ["a", "b"] and fit.df == 2
    assert math.isfinite(fit.interval("b")[1])


@pytest.mark.parametrize(
    "scores",
    [
        {"only": {0: 1.0, 1: 2.0, 2: 3.0}},  # one recipe: nothing shared to fit
        {"a": {0: 1.0, 1: 2.0}, "b": {1: 2.0, 2: 2.5}},  # one shared seed: no residual df
        {"a": {0: 1.0, 5: 2.0}, "b": {1: 2.0, 2: 2.5}},  # no seed in common
        {"a": {0: 1.0, 1: 2.0}, "b": {0: 1.5}},  # b has one seed: a stands alone
        {"a": {0: 1.0, 1: 2.0, 2: 2.5}, "b": {0: 1.5, 1: 2.5, 2: 3.0}},  # exactly additive
    ],
)
def test_no_fit_without_linked_seeds_or_residual_noise(scores):
    assert seed_blocks.fit(scores) is None


def _result(recipe: str, seed: int, score: float, other: float = 0.5) -> dict:
    return {
        "recipe": recipe,
        "recipe_hash": recipe * 4,
        "track": "t",
        "scale": "s",
        "suite_version": "2",
        "seed": seed,
        "headline": {"zeroshot": score, "order": other},
        "headline_tasks": ["zeroshot"],
        "curated": {"size": 10, "uid_hash": "u"},
        "costs": {"curation_wall_s": 1.0},
    }


def test_leaderboard_tells_apart_recipes_a_seed_moves_together(tmp_path: Path):
    """Three recipes 1 point apart under a 4-point seed effect: each one's own seeds cannot
    rank them, the blocked intervals do, and the page shows both."""
    shared = [0.0, 0.04, -0.03, 0.02]
    wobble = [[0.001, -0.002, 0.0, 0.001], [0.0, 0.001, -0.001, 0.0], [-0.001, 0.0, 0.002, 0.0]]
    for i, name in enumerate(["aaaa", "bbbb", "cccc"]):
        for seed, b in enumerate(shared):
            score = 0.50 + 0.01 * i + b + wobble[i][seed]
            leaderboard.save_result(tmp_path, _result(name, seed, score))
    rows = leaderboard.rows(leaderboard.load_results(tmp_path))
    assert [r["recipe"] for r in rows] == ["cccc", "bbbb", "aaaa"]
    assert all(leaderboard.differs(a, b) for a, b in zip(rows, rows[1:], strict=False))
    plain = welch_interval(list(rows[0]["scores"].values()), list(rows[1]["scores"].values()))
    assert abs(plain["diff"]) < plain["half"]  # unpaired, the shared effect hides the gap
    for r in rows:
        assert r["average"][1] < 0.005 < r["seed_ci"][leaderboard.HEADLINE][1]
    (page,) = leaderboard.build(tmp_path)
    lines = [ln for ln in page.read_text().splitlines() if ln.startswith("| 1 ")]
    cells = [c.strip() for c in lines[0].split("|")]
    assert (
        cells[6].startswith("52.8 ± 0.")
        and cells[7] == ">"
        and float(cells[8].removeprefix("± ")) > 2
    )
    assert "Kendall τ = 1.00 over 3 recipes" in page.read_text()


def test_seed_halves_use_the_shared_seeds():
    """A recipe with extra seeds splits like the others: halves over the seeds all share."""
    rows = [
        {"scores": {0: 0.1, 1: 0.3, 2: 0.2, 3: 0.0, 4: 0.9}},  # its own halves: 0.4, 0.15
        {"scores": {0: 0.2, 1: 0.4, 2: 0.3}},
        {"scores": {0: 0.3, 1: 0.5, 2: 0.4}},
    ]
    assert leaderboard.seed_halves_tau(rows) == (pytest.approx(1.0), 3)


def test_a_recipe_outside_the_fit_keeps_its_own_interval_and_is_named(tmp_path: Path):
    """Three recipes on seeds 0-2 are fitted; a fourth trained only on seeds 7 and 8 shares no
    seed with them: it keeps its own t-interval, its differences are Welch's, and the page
    names it instead of dropping the fit for everyone."""
    for i, name in enumerate(["aaaa", "bbbb", "cccc"]):
        for seed, b in enumerate([0.0, 0.04, -0.03]):
            score = 0.50 + 0.01 * i + b + 0.001 * ((i + 2 * seed) % 3 - 1)
            leaderboard.save_result(tmp_path, _result(name, seed, score))
    for seed, score in [(7, 0.40), (8, 0.43)]:
        leaderboard.save_result(tmp_path, _result("dddd", seed, score))
    rows = {r["recipe"]: r for r in leaderboard.rows(leaderboard.load_results(tmp_path))}
    assert rows["dddd"]["average"] == rows["dddd"]["seed_ci"][leaderboard.HEADLINE]
    assert leaderboard.difference(rows["cccc"], rows["aaaa"])[2] == "seeds as blocks"
    assert leaderboard.difference(rows["cccc"], rows["dddd"])[2] == "Welch"
    assert leaderboard.seed_halves_tau(list(rows.values())) == (pytest.approx(1.0), 3)
    text = leaderboard.build(tmp_path)[0].read_text()
    assert "none shared with the rest): `dddd`." in text


def test_a_recipe_whose_seeds_scatter_is_tested_out_of_the_pooled_noise():
    """Seven recipes with 0.2-point interaction noise and one with 3 points: the F test on
    residual variance sets that one apart (it would widen everyone's interval and borrow
    their narrow one), the rest are refitted; with like noise nothing is set apart."""
    scores, _ = _table(np.random.default_rng(5), 8, 5, 3.0, 0.2)
    assert seed_blocks.fit(scores).scattered == ()
    noisy = np.random.default_rng(6).normal(0, 3.0, 5)
    scores["r7"] = {s: v + float(noisy[s]) for s, v in scores["r7"].items()}
    fit = seed_blocks.fit(scores)
    assert fit.scattered == ("r7",) and "r7" not in fit.keys and len(fit.keys) == 7
    assert max(fit.interval(k)[1] for k in fit.keys) < 0.5


def test_the_first_fit_stands_where_the_rest_alone_cannot_be_fitted():
    """Five recipes exactly additive and one noisy: set apart, the rest leave no noise to
    measure, so the first fit (its noise all the noisy recipe's) is kept, everyone in it."""
    shared = [0.0, 2.0, -1.0, 3.0]
    scores = {f"r{i}": {s: i + b for s, b in enumerate(shared)} for i in range(5)}
    scores["noisy"] = {s: 9 + b + (-1) ** s * 2.0 for s, b in enumerate(shared)}
    fit = seed_blocks.fit(scores)
    assert fit is not None and "noisy" in fit.keys and fit.scattered == ()
    assert fit.interval("r0")[1] > 0.5


def test_a_cell_outside_its_tasks_fit_is_marked_and_explained(tmp_path: Path):
    """Eight recipes alike on both tasks, but one scatters on ``order`` alone: its ``order``
    cell is marked and the table says what the mark means; its headline, fitted with the
    rest, is not."""
    head, _ = _table(np.random.default_rng(7), 8, 5, 3.0, 0.2)
    order, _ = _table(np.random.default_rng(8), 8, 5, 3.0, 0.2)
    noisy = np.random.default_rng(9).normal(0, 4.0, 5)
    for k in head:
        for s in head[k]:
            extra = float(noisy[s]) if k == "r3" else 0.0
            r = _result(k * 4, s, 0.5 + head[k][s] / 100, 0.5 + (order[k][s] + extra) / 100)
            r["costs"]["steps"], r["curated"]["pool_size"] = [], 20  # what the site reads
            leaderboard.save_result(tmp_path, r)
    rows = {r["recipe"]: r for r in leaderboard.rows(leaderboard.load_results(tmp_path))}
    board = list(rows.values())
    assert leaderboard.own_seeds(rows["r3r3r3r3"], board, "order")
    assert not leaderboard.own_seeds(rows["r3r3r3r3"], board, "zeroshot")
    assert not any(
        leaderboard.own_seeds(r, board, "order") for k, r in rows.items() if k != "r3r3r3r3"
    )
    text = leaderboard.build(tmp_path)[0].read_text()
    marked = [line for line in text.splitlines() if f" {leaderboard.OWN_SEEDS} |" in line]
    assert len(marked) == 1 and "r3r3r3r3" in marked[0]
    assert f"{leaderboard.OWN_SEEDS} {leaderboard.OWN_SEEDS_NOTE}" in text
    assert not leaderboard.fit_notes(board)  # every headline is in the headline's fit
    from benchmark import site

    page = site.build(tmp_path, tmp_path / "site", runs=tmp_path / "no-store").read_text()
    assert page.count(f">{leaderboard.OWN_SEEDS}</span>") == 1
