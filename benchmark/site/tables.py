"""The sortable tables: a board's ranked table with its significance marks against the
baseline, and a recipe page's tables of results by seed and of its steps."""

from __future__ import annotations

import json
import math

import numpy as np

from benchmark import leaderboard
from benchmark.site.board import (
    BASELINE,
    Board,
    Entry,
    cost_by_device,
    device_s,
    llm_spend,
    step_cost,
)
from benchmark.site.shell import esc


def significant(board: Board) -> dict[tuple, tuple[float, float, str]]:
    """(recipe, hash, task or the headline) -> (diff, half, method) where the 95% CI of the
    difference to the baseline excludes 0 (``leaderboard.difference``)."""
    base = board.baseline()
    out: dict[tuple, tuple[float, float, str]] = {}
    if base is None:
        return out
    for e in board.entries:
        if e is base:
            continue
        for task in [leaderboard.HEADLINE, *board.tasks]:
            d = leaderboard.difference(e.row, base.row, task)
            if d is not None and abs(d[0]) > d[1]:
                out[(e.name, e.row["recipe_hash"], task)] = d
    return out


def _compare_title(e: Entry, base: Entry | None, task: str) -> str:
    if base is None or e is base:
        return ""
    d = leaderboard.difference(e.row, base.row, task)
    if d is None:
        return f"vs {BASELINE}: needs 2+ seeds each"
    return f"vs {BASELINE}: {100 * d[0]:+.1f} ± {100 * d[1]:.1f} points ({d[2]}, 95% CI)"


def _score_cell(e: Entry, board: Board, task: str, sig: dict) -> str:
    m, h = leaderboard.interval(e.row, task)
    mark, cls = "", ""
    w = sig.get((e.name, e.row["recipe_hash"], task))
    if w is not None:
        mark, cls = ("▲", "up") if w[0] > 0 else ("▼", "down")
    title = esc(_compare_title(e, board.baseline(), task))
    sort = "" if math.isnan(m) else f"{m:.6f}"
    inner = "" if math.isnan(m) else f"{100 * m:.1f}"
    inner += f'<span class="{cls}">{mark}</span>' if mark else ""
    inner += "" if math.isnan(h) else f'<span class="ci">± {100 * h:.1f}</span>'
    if task != leaderboard.HEADLINE and leaderboard.own_seeds(e.row, board.rows, task):
        inner += f'<span class=ci title="{esc(leaderboard.OWN_SEEDS_NOTE)}">'
        inner += f"{leaderboard.OWN_SEEDS}</span>"
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
        cost = float(np.mean([step_cost(x) for x in e.results]))
        by_dev = ", ".join(f"{d} {s:.1f} s" for d, s in cost_by_device(e.results).items())
        tokens, usd = llm_spend(e.results)
        llm = f"{tokens:,} LLM tokens" + (f" (${usd:,.2f})" if usd else "") if tokens else ""
        cost_title = by_dev + (f"; {llm}" if llm else "")
        cells = [
            f'<td data-sort="{i}">{i}</td>',
            f'<td class=l data-sort="{esc(e.name)}"><a href="{esc(e.page)}">{esc(e.name)}</a> '
            f'<code class="ci">{esc(r["recipe_hash"][:8])}</code></td>',
            f'<td data-sort="{len(r["seeds"])}">{len(r["seeds"])}</td>',
            f"<td class=l>{esc(r['device'])}</td>",
            _verified_cell(e),
            _score_cell(e, board, leaderboard.HEADLINE, sig),
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


# -- a recipe page's tables -----------------------------------------------------------------
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
            f"<td>{sum(device_s(s).values()):.2f}</td><td class=l>{esc(s.get('device', ''))}</td>"
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
        avg = leaderboard.headline_score(r)
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
