"""The pages: the index (every board's table and plots, current suite versions first) and a
page per recipe (its YAML, results by seed, its steps, the sample gallery)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from benchmark import leaderboard
from benchmark.site.board import BASELINE, Board, current, slug, step_cost
from benchmark.site.gallery import RunStore, Thumbs, gallery
from benchmark.site.plots import colour_map, plot_pareto, plot_size, plot_tasks
from benchmark.site.shell import esc, page
from benchmark.site.tables import seeds_table, significant, steps_table, table


def board_section(board: Board, old: bool) -> str:
    colours = colour_map([e.label for e in board.entries])
    sig = significant(board)
    base = board.baseline()
    mixed = any(len(e.row["curated_sizes"]) > 1 for e in board.entries)
    title = f"{board.track} / {board.scale}"
    h = 3 if old else 2
    parts = [
        f'<h{h} id="{board.anchor}">{esc(title)} '
        f"<span class=badge>suite {esc(board.suite)} v{esc(board.version)}</span></h{h}>",
        "<p class=note>Mean with the 95% half-width, in %, the board's seeds as blocks (a seed "
        "fixes the initialisation and data order for every recipe; its shared effect is "
        "fitted, as on the markdown leaderboard); ranked by the headline. "
        + (
            f"▲/▼: the 95% CI of the difference to <code>{BASELINE}</code> excludes 0 "
            "(hover a cell for the difference). "
            if base is not None
            else f"No <code>{BASELINE}</code> row here, so nothing is tested against it. "
        )
        + "Curation s: device-seconds of the curation steps (hover for devices). "
        "Click a column header to sort.</p>",
        table(board, sig),
    ]
    notes = leaderboard.fit_notes(board.rows, lambda n: f"<code>{esc(n)}</code>")
    parts += [f"<p class=note>{note}</p>" for note in notes]
    if mixed:
        parts.append(
            "<p class=note>† The row's seeds trained on different curated sets (the track's "
            "models were built apart and differ in their numerics; each result's "
            "<code>curated.weights</code> names the builds).</p>"
        )
    parts += [
        '<figure class=plot data-plot="pareto">',
        plot_pareto(board, colours),
        "<figcaption>Average score against curation compute. Faint dots are seeds, circles the "
        "mean ± 95% CI; the dashed line joins the recipes no other recipe beats on both "
        "score and compute.</figcaption></figure>",
        '<figure class=plot data-plot="tasks">',
        plot_tasks(board, colours, sig),
        "<figcaption>Per task, by recipe (ranked as in the table). Filled circles differ from "
        f"<code>{BASELINE}</code> (dashed line) beyond the 95% CI; hollow ones do "
        "not.</figcaption></figure>",
        '<figure class=plot data-plot="size">',
        plot_size(board, colours),
        "<figcaption>Curated set size against the average score; dots are seeds.</figcaption>"
        "</figure>",
    ]
    return "\n".join(parts)


def index(all_boards: list[Board]) -> str:
    newest = current(all_boards)
    tracks = list(dict.fromkeys(b.track for b in all_boards))
    body = ["<h1>smallcomp leaderboard</h1>"]
    if not all_boards:
        body.append("<p>No results yet: <code>smallcomp run RECIPE</code> adds some.</p>")
        return page("smallcomp leaderboard", "\n".join(body))
    body.append(
        "<p class=note>CLIP training-data curation at equal training compute: each row is a "
        "recipe trained at the track's fixed settings, over its seeds. Results of different "
        "eval-suite versions are never mixed; older versions are listed after the current "
        "ones. Tables: "
        + " · ".join(
            f'<a href="#{b.anchor}">{esc(b.track)}/{esc(b.scale)}</a>'
            for b in all_boards
            if (b.track, b.scale, b.version) in newest
        )
        + "</p>"
    )
    for track in tracks:
        mine = [b for b in all_boards if b.track == track]
        body.append(f'<h1 id="track-{slug(track)}">Track <code>{esc(track)}</code></h1>')
        for b in mine:
            if (b.track, b.scale, b.version) in newest:
                body.append(board_section(b, old=False))
        older = [b for b in mine if (b.track, b.scale, b.version) not in newest]
        if older:
            body.append(
                "<h2>Older suite versions</h2><p class=note>Scored with an earlier version of "
                "the eval suite: not comparable with the tables above.</p>"
            )
            body += [board_section(b, old=True) for b in older]
    return page("smallcomp leaderboard", "\n".join(body))


def _recipe_yaml(result: dict, roots: list[Path]) -> tuple[str, str] | None:
    name = result.get("recipe_file")
    if not name:
        return None
    p = Path(name)
    for candidate in [p] if p.is_absolute() else [root / p for root in roots]:
        if candidate.is_file():
            try:
                return str(name), candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
    return None


def recipe_html(results: list[dict], store: RunStore, thumbs: Thumbs, roots: list[Path]) -> str:
    first = results[0]
    name, rhash, track = first["recipe"], first["recipe_hash"], first["track"]
    depth = 2
    body = [
        f"<h1>{esc(name)} <code class=ci>{esc(rhash)}</code></h1>",
        f"<p class=note>Track <code>{esc(track)}</code> · {len(results)} result(s) · "
        f'<a href="{"../" * depth}index.html#track-{slug(track)}">back to the tables</a></p>',
        "<h2>Recipe</h2>",
    ]
    found = _recipe_yaml(first, roots)
    if found is None:
        body.append(
            f"<p class=note>The recipe file <code>{esc(first.get('recipe_file', '?'))}</code> "
            "is not in this checkout.</p>"
        )
    else:
        body.append(
            f"<p class=note><code>{esc(found[0])}</code> as it is in this checkout now (the "
            f"results ran the recipe with hash <code>{esc(rhash[:16])}</code>).</p>"
            f"<pre>{esc(found[1])}</pre>"
        )
    body += ["<h2>Results by seed</h2>", seeds_table(results)]
    curations: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        curations[r["curated"].get("uid_hash", "")].append(r)
    for uid_hash, rs in curations.items():
        r = rs[0]
        seeds = ", ".join(f"{x['scale']}/{x['seed']}" for x in rs)
        label = f" <code class=ci>{esc(uid_hash[:12])}</code>" if len(curations) > 1 else ""
        body += [
            f"<h2>Steps{label}</h2>",
            f"<p class=note>{r['curated'].get('pool_size', '?'):,} pool rows → "
            f"{r['curated']['size']:,} curated; curation {step_cost(r):,.1f} device-seconds "
            f"(results {esc(seeds)}). Precision/recall: of a filter's removals against the "
            "pool's hidden defect labels, where the pool has them.</p>",
            steps_table(r["costs"]["steps"]),
            f"<h2>Samples{label}</h2>",
            gallery(r, store, thumbs, depth),
        ]
    return page(f"{name} — smallcomp", "\n".join(body), depth)
