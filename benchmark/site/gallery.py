"""The sample gallery of a recipe page: what it reads from the run store (``--runs``: the
curate stage whose report matches the result's curated uid hash and steps, its pool, the
images by their shard references), the thumbnails it writes under ``<site>/img/``, and the
sample cards. Without the run store, or without the stage, the page says so instead."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from benchmark.site.board import slug
from benchmark.site.shell import esc
from benchmark.store import write_atomic

THUMB = 64  # px: the longest side of a thumbnail of a small (shapes) image
THUMB_PHOTO = 128  # px: ... of a larger image (saved as JPEG)
PER_STEP = 8  # samples shown per step of the gallery
REMOVED_SHOWN = 12  # samples shown of what the whole recipe removed
# What the gallery reads of a curated table (not its embeddings or boxes).
GALLERY_COLUMNS = (
    "uid", "caption", "image", "parent_uid", "parent_image", "parent_caption", "generator",
    "removed", "added",
)  # fmt: skip


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
            p = self.dir / f"{slug(uid)}{ext}"
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
        name = f"{slug(uid)}{'.jpg' if photo else '.png'}"
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
