"""The plots of a board, as matplotlib SVG to inline in the page: score against curation
compute (with its Pareto front), per-task scores, and score against curated set size."""

from __future__ import annotations

import io
import math

import numpy as np

from benchmark import leaderboard
from benchmark.site.board import Board, step_cost


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, score) points no other point beats on both (cost lower or equal,
    score higher or equal, one strictly), by rising cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def colour_map(names: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return {n: cmap(i % 20) for i, n in enumerate(sorted(set(names)))}


def _svg(fig, salt: str) -> str:
    """The figure as an SVG element to inline: text stays text (smaller, selectable), ids are
    salted per plot so several plots in one page do not share ids, no timestamp."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    head, rest = text.split(">", 1)
    return f'{head} role="img">{rest}'


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _label(fig, ax, points: list[tuple[float, float]], names: list[str], size: float = 7.5):
    """Name each point, moving a label up or down (with a leader line) where it would cover
    one already placed: recipes often cluster."""
    fig.draw_without_rendering()  # the final layout, so data -> pixel transforms hold
    px = size * fig.dpi / 72
    boxes: list[tuple[float, float, float, float]] = []
    order = sorted(range(len(points)), key=lambda i: -points[i][1])
    right = ax.get_window_extent().x1
    for i in order:
        x, y = ax.transData.transform(points[i])
        w, h = 0.66 * px * len(names[i]) + 4, 1.35 * px
        dx = 5 if x + 5 + w < right else -5 - w  # names near the right edge go to the left
        for k in range(0, 24):
            dy = (k + 1) // 2 * h * (1 if k % 2 else -1)
            box = (x + dx, y + 2 + dy, x + dx + w, y + 2 + dy + h)
            if not any(
                box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes
            ):
                break
        boxes.append(box)
        scale = 72 / fig.dpi
        ann = ax.annotate(
            names[i],
            points[i],
            xytext=((5 if dx > 0 else -5) * scale, (2 + dy) * scale),
            textcoords="offset points",
            fontsize=size,
            va="bottom",
            bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.75),
            ha="left" if dx > 0 else "right",
            arrowprops=dict(arrowstyle="-", lw=0.4, color="#888", shrinkA=0, shrinkB=2)
            if dy
            else None,
        )
        ann.set_in_layout(False)


def _jitter(n: int) -> np.ndarray:
    return np.linspace(-0.18, 0.18, n) if n > 1 else np.zeros(1)


def plot_pareto(board: Board, colours: dict) -> str:
    fig = _figure(8.5, 5.0)
    ax = fig.add_subplot()
    means = []
    for e in board.entries:
        c = colours[e.label]
        costs = [step_cost(r) for r in e.results]
        ys = [100 * v for v in e.scores(leaderboard.HEADLINE)]
        ax.scatter(costs, ys, s=14, color=c, alpha=0.45, linewidths=0)
        m, h = e.row["average"]
        x = float(np.mean(costs))
        ax.errorbar(
            x, 100 * m, yerr=None if math.isnan(h) else 100 * h, fmt="o", color=c, ms=6, capsize=3
        )
        means.append((x, 100 * m))
    front = pareto(means)
    if front:
        xs = [means[i][0] for i in front]
        ys = [means[i][1] for i in front]
        ax.step(xs, ys, where="post", color="#333", lw=1, ls="--", label="Pareto front (means)")
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("curation compute: device-seconds (sum of step wall time; symlog axis)")
    ax.set_ylabel("average score (%)")
    ax.grid(alpha=0.25)
    _label(fig, ax, means, [e.label for e in board.entries])
    return _svg(fig, f"pareto-{board.anchor}")


def plot_tasks(board: Board, colours: dict, sig: dict) -> str:
    panels = [leaderboard.HEADLINE, *board.tasks]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    n = len(board.entries)
    fig = _figure(3.4 * ncols, (0.2 * n + 0.9) * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    base = board.baseline()
    ys = np.arange(n)
    for ax, task in zip(axes, panels, strict=False):
        if base is not None:
            ax.axvline(100 * leaderboard.interval(base.row, task)[0], color="#999", lw=0.8, ls="--")
        for y, e in zip(ys, board.entries, strict=True):
            c = colours[e.label]
            vals = [100 * v for v in e.scores(task)]
            if not vals:
                continue
            ax.scatter(vals, y + _jitter(len(vals)), s=9, color=c, alpha=0.5, linewidths=0)
            m, h = leaderboard.interval(e.row, task)
            marked = sig.get((e.name, e.row["recipe_hash"], task)) is not None
            ax.errorbar(
                100 * m,
                y,
                xerr=None if math.isnan(h) else 100 * h,
                fmt="o",
                ms=5,
                color=c,
                mfc=c if marked else "white",
                capsize=2,
            )
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.25)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    axes[0].set_yticks(ys, [e.label for e in board.entries])
    axes[0].invert_yaxis()
    for ax in axes[::ncols]:
        ax.tick_params(axis="y", labelsize=7.5)
    fig.supxlabel("score (%): dots are seeds, circles the mean ± 95% CI", fontsize=9)
    return _svg(fig, f"tasks-{board.anchor}")


def plot_size(board: Board, colours: dict) -> str:
    fig = _figure(8.5, 4.6)
    ax = fig.add_subplot()
    means = []
    for e in board.entries:
        c = colours[e.label]
        sizes = [r["curated"]["size"] for r in e.results]
        ys = [100 * v for v in e.scores(leaderboard.HEADLINE)]
        ax.scatter(sizes, ys, s=14, color=c, alpha=0.45, linewidths=0)
        m, h = e.row["average"]
        x = float(np.mean(sizes))
        ax.errorbar(
            x, 100 * m, yerr=None if math.isnan(h) else 100 * h, fmt="o", color=c, ms=6, capsize=3
        )
        means.append((x, 100 * m))
    ax.set_xlabel("curated set size (samples)")
    ax.set_ylabel("average score (%)")
    ax.grid(alpha=0.25)
    _label(fig, ax, means, [e.label for e in board.entries])
    return _svg(fig, f"size-{board.anchor}")
