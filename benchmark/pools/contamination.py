"""Keeping eval images out of a pool: by native id where known, by perceptual hash always.

Ids catch what the pool's own dataset labels (a COCO image id, a Flickr file name) even after any
edit of the pixels; hashes catch the same picture arriving under another name, e.g. a val2017 photo
re-encoded and resized inside a web-scraped pool. A pool image matches an eval image when both its
pHash and its dHash are within the thresholds: requiring both keeps false positives away while
re-encoding and resizing move either hash by only a few bits. Measured on coco-mini (full decode):
val2017 images re-encoded at 160-384 px and JPEG quality 50-95 stay within pHash 4 / dHash 5 of
the originals; no unrelated pair among coco-mini train, flickr8k-1k and imagenet-samples against
val2017 comes closer than pHash 14, and none has both hashes within 15. Crops are not caught
beyond about 2% per side (pHash moves ~10 bits at 2%, ~20 at 5%).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import imagehash
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image
from tqdm import tqdm

from benchmark.pools.shards import ShardReader

MAX_PHASH = 10
MAX_DHASH = 10
_COCO_NAME = re.compile(r"(?:COCO_[a-z]+\d{4}_)?(\d+)")  # 000000431848, COCO_val2014_000000431848


@dataclass(frozen=True)
class EvalSet:
    """Images a track evaluates on. ``files`` are hashed and their names give native ids; ``ids``
    name eval images not on disk. Ids are compared with the ``image_group`` of pool rows whose
    ``source`` is ``dataset`` (coco, flickr8k, ...); without a dataset only hashes are used."""

    name: str
    files: Sequence[Path] = ()
    ids: Sequence[str | int] = ()
    dataset: str | None = None


@dataclass
class ContaminationReport:
    rows_checked: int
    images_checked: int
    removed_rows: int
    by_set: dict[str, dict[str, int]]  # eval set -> {"id": rows, "hash": rows} (may overlap)
    unreadable: int  # pool images that could not be decoded for hashing; kept, and counted here
    matches: list[dict] = field(default_factory=list)  # one per pool image matched by hash


def native_id(name: str | int | Path) -> str:
    """The id a dataset knows an image by: COCO file names of any year become the bare image id
    (``COCO_val2014_000000431848.jpg`` and ``000000431848.jpg`` are both ``431848``); other names
    are the file name."""
    base = Path(str(name)).name
    match = _COCO_NAME.fullmatch(base.rsplit(".", 1)[0] if "." in base else base)
    return str(int(match[1])) if match else base


def image_hashes(im: Image.Image) -> tuple[int, int]:
    """``(pHash, dHash)`` of an image as 64-bit integers."""
    gray = im.convert("L")
    return _bits(imagehash.phash(gray)), _bits(imagehash.dhash(gray))


def _bits(h: imagehash.ImageHash) -> int:
    return int(np.packbits(h.hash.ravel()).view(">u8")[0])


def _bytes_hashes(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return image_hashes(im)


def _id_matches(table: pa.Table, eval_set: EvalSet) -> pa.Array:
    """Row mask: rows of ``eval_set.dataset`` whose image_group is one of the set's images."""
    wanted = {native_id(i) for i in eval_set.ids} | {native_id(f) for f in eval_set.files}
    ours = pc.equal(table["source"], eval_set.dataset)
    groups = pc.unique(pc.filter(table["image_group"], ours)).to_pylist()
    hit = pa.array([g for g in groups if native_id(g) in wanted], pa.string())
    return pc.and_(ours, pc.is_in(table["image_group"], value_set=hit))


def _eval_hashes(eval_sets: Sequence[EvalSet]) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    owners, hashes = [], []
    for s in eval_sets:
        for f in s.files:
            with Image.open(f) as im:  # an unreadable eval file is a broken track: let it raise
                hashes.append(image_hashes(im))
            owners.append((s.name, str(f)))
    arr = np.array(hashes, dtype=np.uint64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1], owners


def remove_contaminated(
    table: pa.Table,
    reader: ShardReader,
    eval_sets: Sequence[EvalSet],
    *,
    max_phash: int = MAX_PHASH,
    max_dhash: int = MAX_DHASH,
    chunk: int = 1024,
) -> tuple[pa.Table, ContaminationReport]:
    """The pool without rows showing an eval image, and what was removed and why.

    Every row sharing a matched image (the five captions of a COCO photo) goes with it. Pool
    images are hashed once each, ``chunk`` at a time, so memory does not grow with the pool.
    """
    by_set = {s.name: {"id": 0, "hash": 0} for s in eval_sets}
    remove = pa.array(np.zeros(table.num_rows, dtype=bool))
    for s in eval_sets:
        if s.dataset is not None and "image_group" in table.column_names:
            hit = _id_matches(table, s)
            by_set[s.name]["id"] = pc.sum(hit).as_py() or 0
            remove = pc.or_(remove, hit)

    e_phash, e_dhash, owners = _eval_hashes(eval_sets)
    refs = pc.unique(table["image"])
    matched: dict[str, list[int]] = {}  # pool image ref -> indices of the eval images it matches
    matches, unreadable = [], 0
    bar = tqdm(total=len(refs), desc="contamination", unit="img", mininterval=1.0)
    for start in range(0, len(refs) if len(owners) else 0, chunk):
        names, hashes = [], []
        for ref in refs.slice(start, chunk).to_pylist():
            bar.update()
            try:
                hashes.append(_bytes_hashes(reader.read_bytes(ref)))
                names.append(ref)
            except Exception:  # any undecodable image is counted, never fatal
                unreadable += 1
        if not names:
            continue
        h = np.array(hashes, dtype=np.uint64)
        dp = np.bitwise_count(h[:, :1] ^ e_phash[None, :])
        dd = np.bitwise_count(h[:, 1:] ^ e_dhash[None, :])
        hits = (dp <= max_phash) & (dd <= max_dhash)
        for i in np.flatnonzero(hits.any(axis=1)):
            js = np.flatnonzero(hits[i])
            best = js[np.argmin(dp[i, js].astype(int) + dd[i, js])]
            matched[names[i]] = js.tolist()
            eval_set, eval_image = owners[best]
            matches.append(
                {
                    "image": names[i],
                    "eval_set": eval_set,
                    "eval_image": eval_image,
                    "phash_distance": int(dp[i, best]),
                    "dhash_distance": int(dd[i, best]),
                }
            )
    bar.close()

    images = table["image"]
    for s in eval_sets:
        ours = [r for r, js in matched.items() if any(owners[j][0] == s.name for j in js)]
        by_set[s.name]["hash"] = pc.sum(pc.is_in(images, pa.array(ours, pa.string()))).as_py() or 0
    remove = pc.or_(remove, pc.is_in(images, value_set=pa.array(list(matched), pa.string())))
    kept = table.filter(pc.invert(remove))
    report = ContaminationReport(
        rows_checked=table.num_rows,
        images_checked=len(refs) - unreadable if len(owners) else 0,
        removed_rows=table.num_rows - kept.num_rows,
        by_set=by_set,
        unreadable=unreadable,
        matches=matches,
    )
    return kept, report
