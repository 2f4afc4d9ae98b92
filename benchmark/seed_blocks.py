"""Recipes scored with seeds as blocks: the additive model score = recipe + seed + noise.

A seed fixes the model's initialisation and the data order, the same for every recipe, and at
`shapes/tiny` that shared part is most of a run's spread: one seed lifts every recipe's
zero-shot by 3-6 points at once, while two recipes' difference at equal seeds moves by a
fraction of a point. Fitting each seed's shared effect (a randomized block design, one block per
seed) leaves the interaction as the noise, so a recipe's interval says how well its place among
the other recipes is known, and the difference of two recipes is tested with every recipe's
residuals pooled. Recipes seen at fewer seeds are set to the board's average seed through the
seed effects the others measured; a recipe with one seed, or none shared with the rest, is
left out and keeps its own interval. The model assumes the noise is alike for every recipe;
``smallcomp compare`` tests one pair on its own seeds without that assumption.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def t_quantile(df: float) -> float:
    """Student's t at ``CONFIDENCE`` (two-sided): a 95% half-width is this times the SE."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


@dataclass(frozen=True)
class Fit:
    """Each recipe's mean at the average seed, with the covariance of those means."""

    keys: list[Hashable]
    means: np.ndarray
    cov: np.ndarray
    df: int
    scattered: tuple = ()  # recipes left out because their seeds scatter beyond the others'

    def interval(self, key: Hashable) -> tuple[float, float]:
        """The recipe's mean and the half-width of its 95% t-interval."""
        i = self.keys.index(key)
        return float(self.means[i]), t_quantile(self.df) * math.sqrt(max(self.cov[i, i], 0.0))

    def difference(self, a: Hashable, b: Hashable) -> tuple[float, float]:
        """mean(a) - mean(b) and the half-width of its 95% t-interval."""
        i, j = self.keys.index(a), self.keys.index(b)
        var = self.cov[i, i] + self.cov[j, j] - 2 * self.cov[i, j]
        return float(self.means[i] - self.means[j]), t_quantile(self.df) * math.sqrt(max(var, 0.0))

    def typical_difference(self) -> float:
        """The median half-width over every pair of recipes: the difference the board can
        tell apart at the seeds it shows."""
        c, n = self.cov, len(self.keys)
        pairs = [c[i, i] + c[j, j] - 2 * c[i, j] for i in range(n) for j in range(i + 1, n)]
        return t_quantile(self.df) * math.sqrt(max(float(np.median(pairs)), 0.0))


def fit(scores: Mapping[Hashable, Mapping[int, float]]) -> Fit | None:
    """Least squares on recipe indicators and sum-to-zero seed effects, over the largest group
    of recipes the seeds link (recipes sharing a seed, directly or through others) among those
    with at least two finite scores. A recipe left out (one seed, or none shared with the
    group) keeps its own interval: it has no seed effect measured on it, or none to spare.
    The pooled noise is then tested recipe by recipe (``_scattered``); recipes whose seeds
    scatter beyond the others' are left out too, named in ``scattered``, and the rest refitted
    once (kept in where the rest alone cannot be fitted). None where no group of two recipes
    exists, the residuals have no degree of freedom, or they are all zero (an exactly additive
    table: no noise measured, no interval to claim)."""
    finite = {k: {s: float(y) for s, y in v.items() if math.isfinite(y)} for k, v in scores.items()}
    keys = _linked([k for k, v in finite.items() if len(v) >= 2], finite)
    first = _solve(keys, finite)
    if first is None:
        return None
    fitted, x, xtx_inv, resid = first
    scattered = _scattered(fitted, finite, x, xtx_inv, resid)
    if not scattered:
        return fitted
    second = _solve(_linked([k for k in keys if k not in scattered], finite), finite)
    # the rest exactly additive or too few: the first fit, its noise widened by the scattered
    return fitted if second is None else replace(second[0], scattered=scattered)


def _solve(keys: list, scores: Mapping[Hashable, Mapping[int, float]]) -> tuple | None:
    """The fit over ``keys`` with its design, (X'X)^-1 and residuals (None: see ``fit``)."""
    seeds = sorted({s for k in keys for s in scores[k]})
    cells = [(i, s, y) for i, k in enumerate(keys) for s, y in scores[k].items()]
    cols = len(keys) + len(seeds) - 1
    df = len(cells) - cols
    if len(keys) < 2 or df < 1:
        return None
    x = np.zeros((len(cells), cols))
    y = np.array([c[2] for c in cells])
    last = len(seeds) - 1
    for row, (i, s, _) in enumerate(cells):
        x[row, i] = 1.0
        j = seeds.index(s)
        if j < last:
            x[row, len(keys) + j] = 1.0
        else:
            x[row, len(keys) :] = -1.0
    xtx_inv = np.linalg.inv(x.T @ x)  # full rank: the group is linked
    beta = xtx_inv @ x.T @ y
    resid = y - x @ beta
    if float(resid @ resid) <= 1e-12 * max(float(((y - y.mean()) ** 2).sum()), 1e-300):
        return None
    sigma2 = float(resid @ resid) / df
    n = len(keys)
    return Fit(keys, beta[:n], sigma2 * xtx_inv[:n, :n], df), x, xtx_inv, resid


def _scattered(
    fitted: Fit, scores: Mapping[Hashable, Mapping[int, float]], x, xtx_inv, resid
) -> tuple:
    """Recipes whose residual variance exceeds the rest's: F = (RSS_i / df_i) / (RSS_rest /
    df_rest), df_i the recipe's cells less their leverage, tested at a family-wise 5% over the
    recipes (Bonferroni). Such a recipe breaks the pooled-noise assumption: its own seeds, not
    the table's noise, say how well it is known."""
    keys, df = fitted.keys, fitted.df
    leverage = np.einsum("ij,jk,ik->i", x, xtx_inv, x)
    owner = np.repeat(np.arange(len(keys)), [len(scores[k]) for k in keys])
    rss = float(resid @ resid)
    out = []
    for i, k in enumerate(keys):
        mine = owner == i
        df_i, rss_i = float((1 - leverage[mine]).sum()), float((resid[mine] ** 2).sum())
        if df_i <= 0 or df - df_i <= 0 or rss - rss_i <= 0:
            continue
        f = (rss_i / df_i) / ((rss - rss_i) / (df - df_i))
        if stats.f.sf(f, df_i, df - df_i) < (1 - CONFIDENCE) / len(keys):
            out.append(k)
    return tuple(out)


def _linked(keys: list[Hashable], scores: Mapping[Hashable, Mapping[int, float]]) -> list:
    """The largest set of recipes connected through shared seeds, in the order given (ties:
    the set holding the earliest recipe)."""
    group_of: dict[Hashable, int] = {}
    groups: list[list[Hashable]] = []
    for k in keys:
        if k in group_of:
            continue
        group, frontier = [k], [k]
        group_of[k] = len(groups)
        while frontier:
            seeds = set(scores[frontier.pop()])
            for other in keys:
                if other not in group_of and seeds & set(scores[other]):
                    group_of[other] = len(groups)
                    group.append(other)
                    frontier.append(other)
        groups.append(group)
    if not groups:
        return []
    best = max(groups, key=len)
    return [k for k in keys if k in best]
