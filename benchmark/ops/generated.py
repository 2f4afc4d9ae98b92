"""Generated samples in shards of their own, keyed by (parent uid, step hash).

A generate step derives new rows (edited images) from existing ones. A derived row depends only
on its parent's inputs and the step's params, so it is stored under
``<store>/generated/<step hash>/`` and found again by its key: a rerun, a resumed run, or another
recipe asking for the same derivation reads it back instead of generating it again. Chunks are
written whole (tar first, then its row table, renamed into place last), so a killed run loses at
most the chunk in progress, and processes or machines that split the parents between them can
write into the same directory and merge by copying files. A chunk is named by a digest of its
contents, so an image reference changes when its pixels do: the train stage, keyed by the
references it reads, then retrains instead of reusing a model of other pixels.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmark.pools.shards import ShardWriter

ROWS = pa.schema(
    [
        ("key", pa.string()),
        ("image", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("meta", pa.string()),
    ]
)


def row_key(step_hash: str, parent_uid: str, inputs: str) -> str:
    """A generated row's uid: 32 hex digits, like pool uids, so DataComp's uid lists hold it."""
    return hashlib.sha256(f"{step_hash}\n{parent_uid}\n{inputs}".encode()).hexdigest()[:32]


class GeneratedStore:
    """The chunks one generate step (one step hash) has written so far."""

    def __init__(self, store_root: Path, step_hash: str) -> None:
        self.root = Path(store_root)
        self.rel = Path("generated") / step_hash
        self.dir = self.root / self.rel
        self.dir.mkdir(parents=True, exist_ok=True)

    def done(self) -> dict[str, dict]:
        """Every finished row by key: image reference (relative to the store root), size, meta."""
        out: dict[str, dict] = {}
        for f in sorted(self.dir.glob("chunk-*.parquet")):
            for row in pq.read_table(f).to_pylist():
                out[row["key"]] = row
        return out

    def write(self, rows: list[tuple[str, bytes, int, int, str]]) -> list[dict]:
        """Write one chunk of (key, png bytes, width, height, meta json) and return its rows."""
        content = hashlib.sha256()
        for key, data, _, _, meta in rows:
            content.update(f"{key}\n{meta}\n".encode() + hashlib.sha256(data).digest())
        name = f"chunk-{content.hexdigest()[:16]}"
        # Temporaries unique to this write: workers on other machines may share a pid. Two that
        # made the same chunk each rename a whole copy over the other (the same members at the
        # same offsets), and the row table goes last, so no reader sees a chunk half written.
        tmp_prefix = f".{name}.{uuid.uuid4().hex}"
        writer = ShardWriter(self.dir, prefix=tmp_prefix, maxcount=len(rows) + 1)
        refs = [writer.write(key, "png", data) for key, data, _, _, _ in rows]
        writer.close()
        tar = self.dir / f"{name}.tar"
        os.replace(self.dir / refs[0].split("#")[0], tar)
        out = [
            {
                "key": key,
                "image": f"{self.rel / tar.name}#{ref.split('#')[1]}",
                "width": w,
                "height": h,
                "meta": meta,
            }
            for (key, _, w, h, meta), ref in zip(rows, refs, strict=True)
        ]
        tmp = self.dir / f"{tmp_prefix}.parquet"
        pq.write_table(pa.Table.from_pylist(out, ROWS), tmp)
        os.replace(tmp, self.dir / f"{name}.parquet")
        return out
