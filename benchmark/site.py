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
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmark import leaderboard
from benchmark.compare import welch_interval
from benchmark.store import write_atomic

BASELINE = "no_filter"  # what every row is tested against
THUMB = 64  # px: the longest side of a thumbnail of a small (shapes) image
THUMB_PHOTO = 128  # px: ... of a larger image (saved as JPEG)
PER_STEP = 8  # samples shown per step of the gallery
REMOVED_SHOWN = 12  # samples shown of what the whole recipe removed
# What the gallery reads of a curated table (not its embeddings or boxes).
GALLERY_COLUMNS = (
    "uid", "caption", "image", "parent_uid", "parent_image", "parent_caption", "generator",
    "removed", "added",
)  # fmt: skip

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0 auto;max-width:1400px;padding:0 1.2em 3em;color:#1d2330;background:#fff}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.3em;margin:1.6em 0 .3em;
 border-bottom:1px solid #d8dce3;padding-bottom:.2em}h3{font-size:1.1em;margin:1.2em 0 .3em}
a{color:#1f5fbf}p.note,.note{color:#566074;font-size:.92em}
nav{margin:.4em 0 1em}nav a{margin-right:1em}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:.9em;margin:.4em 0 1em}
th,td{padding:.25em .45em;border-bottom:1px solid #e3e6eb;text-align:right;white-space:nowrap}
th{background:#f3f5f8;position:sticky;top:0;white-space:normal;vertical-align:bottom}
td.l,th.l{text-align:left}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e4e9f1}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:.75em}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:.75em}
tbody tr:hover{background:#f7f9fc}
.up{color:#0a7a32;font-weight:600}.down{color:#b3261e;font-weight:600}
.ci{color:#7a8294;font-size:.85em}td .ci{display:block;line-height:1.1}
td .up,td .down{margin-left:.15em;font-size:.85em}
.badge{display:inline-block;padding:0 .4em;border-radius:.6em;font-size:.8em;
 background:#e8f1ff;color:#1f4f99;margin-left:.3em}
figure{margin:.6em 0 1.4em}figure svg{max-width:100%;height:auto;display:block}
details summary{cursor:pointer}details pre{margin:.3em 0;white-space:pre-wrap}
td.wrap{white-space:normal;text-align:left;max-width:18em}
figcaption{color:#566074;font-size:.9em;max-width:70em}
pre{background:#f6f8fa;border:1px solid #e3e6eb;padding:.8em;overflow:auto;font-size:.85em}
.gallery{display:flex;flex-wrap:wrap;gap:.8em;margin:.4em 0 1em}
.card{width:12.5em;border:1px solid #e3e6eb;border-radius:4px;padding:.4em;font-size:.82em}
.card.pair{width:26em;display:flex;gap:.5em}.card.pair>div{flex:1}
.card img{width:96px;height:96px;object-fit:contain;image-rendering:pixelated;
 background:#eee;display:block;margin-bottom:.3em}
.card img.photo{image-rendering:auto;width:128px}
.tag{color:#8a5a00;font-weight:600}
"""

# Click (or Enter on) a header to sort by its column; again to reverse. A cell sorts by its
# data-sort value (the mean for a score), else its text; empty values stay last.
SORT_JS = """
(function(){
function key(td){var v=td.getAttribute('data-sort');if(v===null)v=td.textContent.trim();
 if(v==='')return null;var n=Number(v);return isNaN(n)?v.toLowerCase():n;}
function sort(table,col,th){
 var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
 var numeric=rows.some(function(r){return typeof key(r.cells[col])==='number';});
 var cur=th.getAttribute('aria-sort');
 var dir=cur?(cur==='ascending'?-1:1):(numeric&&!th.hasAttribute('data-asc')?-1:1);
 Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort');});
 th.setAttribute('aria-sort',dir===1?'ascending':'descending');
 rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);
  if(x===null||y===null)return x===null?(y===null?0:1):-1;
  return x<y?-dir:x>y?dir:0;});
 rows.forEach(function(r){body.appendChild(r);});}
Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(t){
 Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
  th.tabIndex=0;th.title=(th.title?th.title+' \\u2014 ':'')+'click to sort';
  th.addEventListener('click',function(){sort(t,i,th);});
  th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){
   e.preventDefault();sort(t,i,th);}});});});
})();
"""

CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


# -- statistics ------------------------------------------------------------------------------
def welch(a: list[float], b: list[float]) -> tuple[float, float] | None:
    """Mean of a - b and the half-width of its 95% Welch interval (``smallcomp compare``'s);
    None under two values a side."""
    w = welch_interval(a, b)
    return None if w is None else (w["diff"], w["half"])


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


# -- the data a page shows -------------------------------------------------------------------
def _average(result: dict) -> float:
    return float(np.mean(list(result["headline"].values())))


def _device_s(step: dict) -> dict[str, float]:
    """Seconds each device spent on a step (its ``device_s``; older records: ``wall_s`` on
    its ``device``)."""
    if step.get("device_s"):
        return {d.split(":")[0]: float(t) for d, t in step["device_s"].items()}
    return {step.get("device", "?"): float(step.get("wall_s") or 0.0)}


def _step_cost(result: dict) -> float:
    """Curation compute: device-seconds summed over the steps."""
    return float(sum(sum(_device_s(s).values()) for s in result["costs"]["steps"]))


def _cost_by_device(results: list[dict]) -> dict[str, float]:
    by: dict[str, float] = defaultdict(float)
    for r in results:
        for s in r["costs"]["steps"]:
            for d, t in _device_s(s).items():
                by[d] += t / len(results)
    return dict(by)


def _llm(results: list[dict]) -> tuple[int, float]:
    """Mean LLM tokens and US$ a seed's curation spent (0 without LLM steps)."""
    tokens, usd = 0, 0.0
    for r in results:
        for s in r["costs"]["steps"]:
            llm = s.get("llm") or {}
            tokens += int(llm.get("prompt_tokens") or 0) + int(llm.get("completion_tokens") or 0)
            usd += float(llm.get("cost_usd") or 0.0)
    n = max(1, len(results))
    return round(tokens / n), usd / n


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _version_key(v: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-]", str(v)))


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

    def scores(self, task: str | None) -> list[float]:
        if task is None:
            return [_average(r) for r in self.results]
        return [r["headline"][task] for r in self.results if task in r["headline"]]


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
        return _slug(f"{self.track}-{self.scale}-v{self.version}")

    def baseline(self) -> Entry | None:
        found = [e for e in self.entries if e.name == BASELINE]
        return max(found, key=lambda e: len(e.results)) if found else None


def recipe_page(track: str, recipe: str, recipe_hash: str) -> str:
    return f"recipes/{_slug(track)}/{_slug(recipe)}-{recipe_hash[:8]}.html"


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
    out.sort(key=lambda b: _version_key(b.version), reverse=True)
    return sorted(out, key=lambda b: b.track)


def current(all_boards: list[Board]) -> set[tuple[str, str, str]]:
    """(track, scale, version) of the newest suite version of each track and scale."""
    newest: dict[tuple[str, str], str] = {}
    for b in all_boards:
        key = (b.track, b.scale)
        if key not in newest or _version_key(b.version) > _version_key(newest[key]):
            newest[key] = b.version
    return {(t, s, v) for (t, s), v in newest.items()}


# -- plots -----------------------------------------------------------------------------------
def _colours(names: list[str]) -> dict[str, tuple]:
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
        costs = [_step_cost(r) for r in e.results]
        ys = [100 * v for v in e.scores(None)]
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
    panels = ["average", *board.tasks]
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    n = len(board.entries)
    fig = _figure(3.4 * ncols, (0.2 * n + 0.9) * nrows + 0.3)
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    base = board.baseline()
    ys = np.arange(n)
    for ax, task in zip(axes, panels, strict=False):
        key = None if task == "average" else task
        if base is not None:
            ax.axvline(100 * np.mean(base.scores(key)), color="#999", lw=0.8, ls="--")
        for y, e in zip(ys, board.entries, strict=True):
            c = colours[e.label]
            vals = [100 * v for v in e.scores(key)]
            if not vals:
                continue
            ax.scatter(vals, y + _jitter(len(vals)), s=9, color=c, alpha=0.5, linewidths=0)
            m, h = (e.row["average"] if key is None else e.row["tasks"].get(task)) or (
                math.nan,
            ) * 2
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
        ys = [100 * v for v in e.scores(None)]
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


# -- HTML ------------------------------------------------------------------------------------
def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def page(title: str, body: str, depth: int = 0) -> str:
    home = "../" * depth + "index.html"
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<nav><a href="{home}">smallcomp leaderboard</a></nav>{body}'
        f"<script>{SORT_JS}</script></body></html>\n"
    )


def _signif(board: Board) -> dict[tuple, tuple[float, float]]:
    """(recipe, hash, task or 'average') -> Welch (diff, half) where the 95% CI of the
    difference to the baseline excludes 0."""
    base = board.baseline()
    out: dict[tuple, tuple[float, float]] = {}
    if base is None:
        return out
    for e in board.entries:
        if e is base:
            continue
        for task in ["average", *board.tasks]:
            key = None if task == "average" else task
            w = welch(e.scores(key), base.scores(key))
            if w is not None and abs(w[0]) > w[1]:
                out[(e.name, e.row["recipe_hash"], task)] = w
    return out


def _compare_title(e: Entry, base: Entry | None, task: str) -> str:
    if base is None or e is base:
        return ""
    key = None if task == "average" else task
    w = welch(e.scores(key), base.scores(key))
    if w is None:
        return f"vs {BASELINE}: needs 2+ seeds each"
    return f"vs {BASELINE}: {100 * w[0]:+.1f} ± {100 * w[1]:.1f} points (Welch 95% CI)"


def _score_cell(e: Entry, board: Board, task: str, sig: dict) -> str:
    m, h = e.row["average"] if task == "average" else e.row["tasks"].get(task, (math.nan,) * 2)
    mark, cls = "", ""
    w = sig.get((e.name, e.row["recipe_hash"], task))
    if w is not None:
        mark, cls = ("▲", "up") if w[0] > 0 else ("▼", "down")
    title = esc(_compare_title(e, board.baseline(), task))
    sort = "" if math.isnan(m) else f"{m:.6f}"
    inner = "" if math.isnan(m) else f"{100 * m:.1f}"
    inner += f'<span class="{cls}">{mark}</span>' if mark else ""
    inner += "" if math.isnan(h) else f'<span class="ci">± {100 * h:.1f}</span>'
    return f'<td data-sort="{sort}" title="{title}">{inner}</td>'


def _verified_cell(e: Entry) -> str:
    """✓ where every seed's result was verified (``smallcomp leaderboard --add``); the title
    shows a stamp."""
    if not e.row.get("verified"):
        return '<td data-sort="0" title="not verified">—</td>'
    stamp = e.results[0].get("verified")
    detail = json.dumps(stamp, sort_keys=True) if isinstance(stamp, dict) else "verified"
    return f'<td data-sort="1" title="{esc(detail)}"><span class="up">✓</span></td>'


def _breakable(name: str) -> str:
    """A column name that may wrap after its underscores, so narrow numbers keep narrow
    columns."""
    return esc(name).replace("_", "_<wbr>")


def table(board: Board, sig: dict) -> str:
    head = (
        "<tr><th data-asc>#</th><th class=l data-asc>recipe</th><th>seeds</th>"
        "<th class=l data-asc>device</th><th title='re-derived by smallcomp verify'>verified</th>"
        "<th>average</th>"
        + "".join(f"<th>{_breakable(t)}</th>" for t in board.tasks)
        + "<th>curated</th><th data-asc title='device-seconds of the curation steps'>"
        "curation s</th></tr>"
    )
    body = []
    for i, e in enumerate(board.entries, 1):
        r = e.row
        sizes = r["curated_sizes"]
        dagger = " †" if len(sizes) > 1 else ""
        cost = float(np.mean([_step_cost(x) for x in e.results]))
        by_dev = ", ".join(f"{d} {s:.1f} s" for d, s in _cost_by_device(e.results).items())
        tokens, usd = _llm(e.results)
        llm = f"{tokens:,} LLM tokens" + (f" (${usd:,.2f})" if usd else "") if tokens else ""
        cost_title = by_dev + (f"; {llm}" if llm else "")
        cells = [
            f'<td data-sort="{i}">{i}</td>',
            f'<td class=l data-sort="{esc(e.name)}"><a href="{esc(e.page)}">{esc(e.name)}</a> '
            f'<code class="ci">{esc(r["recipe_hash"][:8])}</code></td>',
            f'<td data-sort="{len(r["seeds"])}">{len(r["seeds"])}</td>',
            f"<td class=l>{esc(r['device'])}</td>",
            _verified_cell(e),
            _score_cell(e, board, "average", sig),
            *(_score_cell(e, board, t, sig) for t in board.tasks),
            f'<td data-sort="{float(np.mean(sizes))}">'
            + " / ".join(f"{n:,}" for n in sizes)
            + f"{dagger}</td>",
            f'<td data-sort="{cost:.4f}" title="{esc(cost_title)}">{cost:,.1f}'
            + (f'<span class="ci">+ {tokens:,} tok</span>' if tokens else "")
            + "</td>",
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class=wrap><table class=sortable id="table-{board.anchor}"><thead>{head}</thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def board_section(board: Board, old: bool) -> str:
    colours = _colours([e.label for e in board.entries])
    sig = _signif(board)
    base = board.baseline()
    mixed = any(len(e.row["curated_sizes"]) > 1 for e in board.entries)
    title = f"{board.track} / {board.scale}"
    h = 3 if old else 2
    parts = [
        f'<h{h} id="{board.anchor}">{esc(title)} '
        f"<span class=badge>suite {esc(board.suite)} v{esc(board.version)}</span></h{h}>",
        "<p class=note>Mean over seeds with the 95% t-interval half-width, in %; ranked by the "
        "average of the task scores. "
        + (
            f"▲/▼: the Welch 95% CI of the difference to <code>{BASELINE}</code> excludes 0 "
            "(hover a cell for the difference). "
            if base is not None
            else f"No <code>{BASELINE}</code> row here, so nothing is tested against it. "
        )
        + "Curation s: device-seconds of the curation steps (hover for devices). "
        "Click a column header to sort.</p>",
        table(board, sig),
    ]
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
        f"<code>{BASELINE}</code> (dashed line) beyond the Welch 95% CI; hollow ones do "
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
        body.append(f'<h1 id="track-{_slug(track)}">Track <code>{esc(track)}</code></h1>')
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


# -- the run store ---------------------------------------------------------------------------
class RunStore:
    """What the gallery reads from ``runs/``: curate stages, pools, images."""

    def __init__(self, root: Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._reports: list[tuple[Path, dict]] | None = None
        self._reader = None
        self._pool: tuple[Path, dict] | None = None  # the last pool read (pages share it)

    @property
    def exists(self) -> bool:
        return self.root is not None and (self.root / "curate").is_dir()

    def reports(self) -> list[tuple[Path, dict]]:
        if self._reports is None:
            self._reports = []
            if self.exists:
                for p in sorted((self.root / "curate").glob("*/report.json")):
                    if p.parent.name.endswith(".partial"):
                        continue
                    try:
                        self._reports.append((p.parent, json.loads(p.read_text())))
                    except (OSError, ValueError):
                        continue
        return self._reports

    def curate_stage(self, result: dict) -> tuple[Path, dict] | None:
        """The stage that made the result's curated set: same uid hash and same steps (two
        recipes can keep the same rows), else only the same uid hash."""
        want = result["curated"].get("uid_hash")
        steps = [(s["op"], s.get("params")) for s in result["costs"]["steps"]]
        same = [(d, r) for d, r in self.reports() if r.get("uid_hash") == want]
        for d, r in same:
            if [(s["op"], s.get("params")) for s in r.get("steps", [])] == steps:
                return d, r
        return same[0] if same else None

    def pool(self, curated, report: dict):
        """The pool table the stage curated (uid, caption, image, gt_defect), or None."""
        if self.root is None:
            return None
        originals = set(curated["uid"])
        if "parent_uid" in curated:
            originals = {
                u for u, p in zip(curated["uid"], curated["parent_uid"], strict=True) if p is None
            }
        for p in sorted((self.root / "pool").glob("*/pool.parquet")):
            if p.parent.name.endswith(".partial"):
                continue
            names = pq.read_schema(p).names
            cols = [c for c in ("uid", "caption", "image", "gt_defect") if c in names]
            if pq.read_metadata(p).num_rows != report.get("pool_rows"):
                continue
            if self._pool is None or self._pool[0] != p:
                self._pool = p, pq.read_table(p, columns=cols).to_pydict()
            table = self._pool[1]
            if originals <= set(table["uid"]):
                return table
        return None

    def image(self, ref: str):
        from benchmark.pools.shards import ShardReader

        if self._reader is None:
            self._reader = ShardReader(self.root)
        return self._reader.read_image(ref)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


class Thumbs:
    """Thumbnails written once under ``<site>/img/``."""

    def __init__(self, site: Path, store: RunStore) -> None:
        self.dir = site / "img"
        self.store = store

    def get(self, uid: str, ref: str | None) -> tuple[str, bool] | None:
        """(path relative to the site root, is it a photo), or None if unreadable."""
        if not ref:
            return None
        for ext, photo in ((".png", False), (".jpg", True)):
            p = self.dir / f"{_slug(uid)}{ext}"
            if p.exists():
                return f"img/{p.name}", photo
        try:
            im = self.store.image(ref)
        except (OSError, ValueError, KeyError):
            return None
        self.dir.mkdir(parents=True, exist_ok=True)
        photo = max(im.size) > 2 * THUMB
        im.thumbnail((THUMB_PHOTO, THUMB_PHOTO) if photo else (THUMB, THUMB))
        buf = io.BytesIO()
        if photo:
            im.save(buf, "JPEG", quality=80, optimize=True)
        else:
            im.save(buf, "PNG", optimize=True)
        name = f"{_slug(uid)}{'.jpg' if photo else '.png'}"
        write_atomic(self.dir / name, buf.getvalue())
        return f"img/{name}", photo


def _img(thumbs: Thumbs, uid: str, ref: str | None, depth: int, alt: str) -> str:
    t = thumbs.get(uid, ref)
    if t is None:
        return "<div class=note>(image unreadable)</div>"
    path, photo = t
    cls = ' class="photo"' if photo else ""
    return f'<img src="{"../" * depth}{esc(path)}"{cls} alt="{esc(alt)}">'


def _pick(rows: list[dict], n: int) -> list[dict]:
    """Up to n rows, spread over defect kinds where the pool has them (uids are hashes, so
    sorting by uid is a fixed pseudo-random order)."""
    rows = sorted(rows, key=lambda r: r["uid"])
    by_kind: dict[object, list[dict]] = defaultdict(list)
    for r in rows:
        by_kind[r.get("gt_defect")].append(r)
    out: list[dict] = []
    while len(out) < n and any(by_kind.values()):
        for k in sorted(by_kind, key=str):
            if by_kind[k] and len(out) < n:
                out.append(by_kind[k].pop(0))
    return out


def _sample_card(thumbs: Thumbs, r: dict, depth: int) -> str:
    defect = r.get("gt_defect")
    tag = (
        f"<div class=tag>defect: {esc(defect)}</div>"
        if defect
        else ("<div class=note>no defect</div>" if "gt_defect" in r else "")
    )
    return (
        f"<div class=card>{_img(thumbs, r['uid'], r.get('image'), depth, r.get('caption', ''))}"
        f"<div>{esc(r.get('caption', ''))}</div>{tag}</div>"
    )


def _pair_card(thumbs: Thumbs, e: dict, parent: dict, depth: int) -> str:
    change = []
    if e.get("removed"):
        change.append(f"removed: {e['removed']}")
    if e.get("added"):
        change.append(f"added: {e['added']}")
    return (
        "<div class='card pair'><div><b>before</b>"
        f"{_img(thumbs, parent['uid'], parent.get('image'), depth, parent.get('caption', ''))}"
        f"<div>{esc(parent.get('caption', ''))}</div></div><div><b>after</b>"
        f"{_img(thumbs, e['uid'], e.get('image'), depth, e.get('caption', ''))}"
        f"<div>{esc(e.get('caption', ''))}</div>"
        + (f"<div class=tag>{esc('; '.join(change))}</div>" if change else "")
        + "</div></div>"
    )


def gallery(result: dict, store: RunStore, thumbs: Thumbs, depth: int) -> str:
    """Samples of what the recipe did, from its curate stage in the run store."""
    if store.root is None or not store.exists:
        return (
            f"<p class=note>No run store at <code>{esc(store.root)}</code>: the gallery needs "
            "the curate stage (<code>smallcomp curate RECIPE</code>, or copy <code>runs/</code>; "
            "<code>--runs DIR</code> names another store).</p>"
        )
    found = store.curate_stage(result)
    if found is None:
        return (
            "<p class=note>The run store has no curate stage with this result's curated uid "
            f"hash (<code>{esc(result['curated'].get('uid_hash', '')[:16])}</code>): run "
            "<code>smallcomp curate</code> on the recipe here to see its samples.</p>"
        )
    stage, report = found
    try:
        path = stage / "curated.parquet"
        cols = [c for c in GALLERY_COLUMNS if c in pq.read_schema(path).names]
        curated = pq.read_table(path, columns=cols).to_pydict()
    except OSError as e:
        return f"<p class=note>The curate stage's table cannot be read: {esc(e)}</p>"
    rows = [dict(zip(curated, vals, strict=True)) for vals in zip(*curated.values(), strict=True)]
    by_uid = {r["uid"]: r for r in rows}
    pool = store.pool(curated, report)
    pool_rows = (
        [dict(zip(pool, vals, strict=True)) for vals in zip(*pool.values(), strict=True)]
        if pool is not None
        else []
    )
    pool_by_uid = {r["uid"]: r for r in pool_rows}
    steps = report.get("steps", [])
    # Each filter step's record names a few of the uids it removed (``removed_sample``); a
    # stage curated before records had them shows what the whole recipe removed instead.
    per_step = any("removed_sample" in s for s in steps if s.get("kind") == "filter")
    out = [
        f"<p class=note>From the curate stage <code>{esc(stage.name)}</code> "
        f"({report.get('curated_rows', len(rows)):,} of {report.get('pool_rows', 0):,} rows). "
    ]
    if per_step:
        out.append("Each filter step shows samples from the uids its record names.</p>")
    else:
        out.append(
            "This stage's records do not name what each filter step removed, so shown are "
            "samples the whole recipe removed (pool rows not in the curated set) and, for each "
            "generate step, its edits beside their originals.</p>"
        )
    for i, s in enumerate(steps):
        kind, op = s.get("kind"), s.get("op")
        head = f"<h3>Step {i}: <code>{esc(op)}</code> ({esc(kind)})</h3>"
        if kind == "filter" and per_step and pool is None:
            out.append(
                head + "<p class=note>The pool this stage curated is not in the run store, "
                "so what this step removed cannot be shown.</p>"
            )
        elif kind == "filter" and per_step:
            sample = s.get("removed_sample", [])
            shown = [pool_by_uid[u] for u in sample if u in pool_by_uid][:PER_STEP]
            removed = s.get("rows_in", 0) - s.get("rows_out", 0)
            note = f"{removed:,} removed; {len(shown)} shown"
            if len(shown) < min(len(sample), PER_STEP):
                note += " (the others are generated rows)"
            out.append(head + f"<p class=note>{note}.</p>")
            out.append(
                "<div class=gallery>"
                + "".join(_sample_card(thumbs, r, depth) for r in shown)
                + "</div>"
            )
        elif kind == "generate":
            prefix = f"{op}/"
            edits = sorted(
                (r for r in rows if str(r.get("generator") or "").startswith(prefix)),
                key=lambda r: r["uid"],
            )
            pairs, seen = [], set()
            for e in edits:
                if e["parent_uid"] in seen:
                    continue
                parent = dict(by_uid.get(e["parent_uid"]) or pool_by_uid.get(e["parent_uid"]) or {})
                parent.setdefault("uid", e["parent_uid"])
                if e.get("parent_image"):
                    parent["image"] = e["parent_image"]
                if e.get("parent_caption"):
                    parent["caption"] = e["parent_caption"]
                if not parent.get("image"):
                    continue
                seen.add(e["parent_uid"])
                pairs.append((e, parent))
                if len(pairs) == PER_STEP:
                    break
            out.append(
                head + f"<p class=note>{len(edits):,} of its edits are in the curated set; "
                f"{len(pairs)} shown (before → after, with both captions).</p>"
            )
            out.append(
                "<div class=gallery>"
                + "".join(_pair_card(thumbs, e, p, depth) for e, p in pairs)
                + "</div>"
            )
    if not per_step:
        if pool is None:
            out.append(
                "<p class=note>The pool this stage curated is not in the run store, so what "
                "the recipe removed cannot be shown.</p>"
            )
        else:
            removed = [r for r in pool_rows if r["uid"] not in by_uid]
            shown = _pick(removed, REMOVED_SHOWN)
            out.append(
                "<h3>Removed by the whole recipe</h3>"
                f"<p class=note>{len(removed):,} pool rows are not in the curated set; "
                f"{len(shown)} shown"
                + (", spread over the pool's hidden defect kinds" if "gt_defect" in pool else "")
                + ".</p><div class=gallery>"
                + "".join(_sample_card(thumbs, r, depth) for r in shown)
                + "</div>"
            )
    return "\n".join(out)


# -- recipe pages ----------------------------------------------------------------------------
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


def _quality(q: dict | None) -> tuple[str, str, str]:
    if not q:
        return "", "", ""

    def f(v):
        return "n/a" if v is None else f"{v:.3f}"

    by = ", ".join(f"{k} {v:.2f}" for k, v in (q.get("recall_by_defect") or {}).items())
    return f(q.get("precision")), f(q.get("recall")), by


def _details(s: dict) -> str:
    skip = {
        "step", "op", "kind", "params", "rows_in", "rows_out", "wall_s", "device",
        "samples_processed", "samples_per_s", "unreadable_images", "quality", "setup_s",
        "device_s",
    }  # fmt: skip
    return "\n".join(f"{k}: {v}" for k, v in _flat({k: v for k, v in s.items() if k not in skip}))


def _flat(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    """Nested cost records as (dotted key, value) pairs, empty values left out."""
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        elif v not in (None, "", [], 0):
            out.append((f"{prefix}{k}", v))
    return out


def _set_params(op: str, params: dict) -> dict:
    """The params that differ from the op's defaults (what the recipe chose)."""
    from benchmark.ops import registry

    try:
        fields = registry.get(op).params.model_fields
    except KeyError:
        return params
    out = {}
    for name, value in params.items():
        f = fields.get(name)
        if f is None or f.is_required():
            out[name] = value
            continue
        default = f.get_default(call_default_factory=True)
        if json.dumps(value, sort_keys=True, default=str) != json.dumps(
            default, sort_keys=True, default=str
        ):
            out[name] = value
    return out


def _first_lines(text: str, n: int = 2) -> str:
    lines = text.splitlines()
    return "; ".join(lines[:n]) + (" …" if len(lines) > n else "")


def _folded(short: str, full: str) -> str:
    """``short``, unfolding to ``full`` on a click (no script)."""
    if not full or full == short:
        return f"<code>{esc(short)}</code>"
    return f"<details><summary><code>{esc(short)}</code></summary><pre>{esc(full)}</pre></details>"


def steps_table(steps: list[dict]) -> str:
    head = (
        "<tr><th>#</th><th class=l>op</th><th class=l>kind</th><th class=l>params</th>"
        "<th>rows in</th><th>rows out</th><th>Δ</th><th>device s</th><th class=l>device</th>"
        "<th>samples/s</th><th>precision</th><th>recall</th><th class=l>recall by defect</th>"
        "<th class=l>details</th></tr>"
    )
    body = []
    for s in steps:
        p, r, by = _quality(s.get("quality"))
        delta = s["rows_out"] - s["rows_in"]
        params = s.get("params") or {}
        chosen = ", ".join(f"{k}: {json.dumps(v)}" for k, v in _set_params(s["op"], params).items())
        details = _details(s)
        body.append(
            "<tr>"
            f"<td>{s['step']}</td><td class=l><code>{esc(s['op'])}</code></td>"
            f"<td class=l>{esc(s['kind'])}</td>"
            f"<td class=wrap>{_folded(chosen or '(defaults)', json.dumps(params, indent=1))}</td>"
            f"<td>{s['rows_in']:,}</td><td>{s['rows_out']:,}</td><td>{delta:+,}</td>"
            f"<td>{sum(_device_s(s).values()):.2f}</td><td class=l>{esc(s.get('device', ''))}</td>"
            f"<td>{esc(s.get('samples_per_s') or '')}</td><td>{p}</td><td>{r}</td>"
            f"<td class=wrap>{esc(by)}</td>"
            f"<td class=wrap>{_folded(_first_lines(details), details)}</td></tr>"
        )
    return (
        f"<div class=wrap><table class=sortable><thead>{head}</thead><tbody>{''.join(body)}"
        "</tbody></table></div>"
    )


def seeds_table(results: list[dict]) -> str:
    tasks = list(dict.fromkeys(t for r in results for t in r["headline"]))
    head = (
        "<tr><th class=l data-asc>scale</th><th class=l data-asc>suite</th><th>seed</th>"
        "<th class=l>device</th><th>average</th>"
        + "".join(f"<th>{_breakable(t)}</th>" for t in tasks)
        + "<th>curated</th><th class=l>uid hash</th><th>train s</th><th class=l>created</th></tr>"
    )
    body = []
    for r in sorted(results, key=lambda r: (r["scale"], str(r.get("suite_version")), r["seed"])):
        avg = _average(r)
        cells = [
            f"<td class=l>{esc(r['scale'])}</td>",
            f"<td class=l>{esc(r.get('suite', ''))} v{esc(r.get('suite_version', '?'))}</td>",
            f"<td>{r['seed']}</td><td class=l>{esc(r.get('device', '?'))}</td>",
            f'<td data-sort="{avg:.6f}">{100 * avg:.1f}</td>',
            *(
                f'<td data-sort="{r["headline"][t]:.6f}">{100 * r["headline"][t]:.1f}</td>'
                if t in r["headline"]
                else '<td data-sort=""></td>'
                for t in tasks
            ),
            f"<td>{r['curated']['size']:,}</td>",
            f"<td class=l><code>{esc(r['curated'].get('uid_hash', '')[:12])}</code></td>",
            f"<td>{(r.get('train') or {}).get('wall_s', 0):,.0f}</td>",
            f"<td class=l>{esc(str(r.get('created', ''))[:10])}</td>",
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<div class=wrap><table class=sortable><thead>{head}</thead><tbody>{''.join(body)}"
        "</tbody></table></div>"
    )


def recipe_html(results: list[dict], store: RunStore, thumbs: Thumbs, roots: list[Path]) -> str:
    first = results[0]
    name, rhash, track = first["recipe"], first["recipe_hash"], first["track"]
    depth = 2
    body = [
        f"<h1>{esc(name)} <code class=ci>{esc(rhash)}</code></h1>",
        f"<p class=note>Track <code>{esc(track)}</code> · {len(results)} result(s) · "
        f'<a href="{"../" * depth}index.html#track-{_slug(track)}">back to the tables</a></p>',
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
            f"{r['curated']['size']:,} curated; curation {_step_cost(r):,.1f} device-seconds "
            f"(results {esc(seeds)}). Precision/recall: of a filter's removals against the "
            "pool's hidden defect labels, where the pool has them.</p>",
            steps_table(r["costs"]["steps"]),
            f"<h2>Samples{label}</h2>",
            gallery(r, store, thumbs, depth),
        ]
    return page(f"{name} — smallcomp", "\n".join(body), depth)


# -- the whole site --------------------------------------------------------------------------
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
