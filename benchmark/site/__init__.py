"""The leaderboard as a static site: ranked tables, plots and a page per recipe with samples.

``smallcomp leaderboard --site DIR`` writes ``DIR/index.html`` (every track, scale and eval-suite
version: a table sortable by any column, significance against ``no_filter``, plots), a page per
recipe under ``DIR/recipes/<track>/`` (its YAML, per-seed results, each step's effect and cost,
filter precision/recall by defect kind, a sample gallery) and thumbnails under ``DIR/img/``.

Everything a page needs is in the page or next to it: plots are matplotlib SVG inlined in the
HTML, CSS and the sorting script are inline, images are small local files. It works from
``file://`` with no network; nothing is fetched from a CDN.

The gallery reads the run store (``--runs``): the curate stage whose report matches the result's
curated uid hash and steps, its pool, and the images by their shard references. Without the run
store, or without the stage, a page says so instead.

``board`` groups the results into ranked boards, ``tables`` and ``plots`` render a board,
``gallery`` reads the run store and writes thumbnails, ``pages`` assembles the index and the
recipe pages in the ``shell`` (CSS, sorting script) every page shares.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from benchmark import leaderboard
from benchmark.site.board import boards, recipe_page
from benchmark.site.gallery import PER_STEP, RunStore, Thumbs
from benchmark.site.pages import index, recipe_html
from benchmark.site.plots import pareto
from benchmark.store import write_atomic

# build() is the entry point (``smallcomp leaderboard --site``); the others are what the tests
# check of the statistics and the gallery.
__all__ = ["PER_STEP", "build", "pareto"]


def build(board_root: Path, out: Path, runs: Path | None = None, repo: Path | None = None) -> Path:
    """Write the site for ``board_root``'s results into ``out``; returns ``out/index.html``.

    ``runs`` is the run store the galleries read; ``repo`` (default: the working directory,
    then the leaderboard directory's parent) is where recipe files are found."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = leaderboard.load_results(Path(board_root))
    all_boards = boards(results)
    write_atomic(out / "index.html", index(all_boards))
    roots = [Path(repo)] if repo is not None else [Path.cwd(), Path(board_root).resolve().parent]
    store = RunStore(runs)
    thumbs = Thumbs(out, store)
    pages: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        pages[recipe_page(r["track"], r["recipe"], r["recipe_hash"])].append(r)
    try:
        for rel, rs in pages.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, recipe_html(rs, store, thumbs, roots))
    finally:
        store.close()
    return out / "index.html"
