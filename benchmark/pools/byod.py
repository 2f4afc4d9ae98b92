"""Bring your own data: a pool from webdataset tars or from a parquet of (image path, caption).

Tars are streamed member by member, so a pool of any size passes through a few megabytes of
memory, and a damaged tar yields what precedes the damage. A parquet may name images by URL, but a
pool build never touches the network (builds must be reproducible offline): such rows are skipped
and counted, with a hint to fetch them with img2dataset first.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyarrow as pa
import pyarrow.parquet as pq
from braceexpand import braceexpand
from pydantic import Field
from tqdm import tqdm

from benchmark.pools import PoolBuild, PoolParams, register
from benchmark.pools.images import (
    PoolRows,
    Rejected,
    StoredImage,
    check_caption,
    read_image_file,
    sample_uid,
    store_image,
)
from benchmark.pools.shards import ShardWriter
from benchmark.spec.paths import DataPattern

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_MEMBER = re.compile(r"^((?:.*/)?[^./]+)\.([^/]*)$")  # webdataset's key/extension split
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


class ByodPool(PoolParams):
    kind: Literal["byod"] = "byod"
    path: DataPattern = Field(
        description="a directory of .tar shards, a glob or {a..b} pattern of them, or a .parquet"
    )
    url_col: str = Field("url", description="parquet column with an image path (or URL)")
    caption_col: str = "caption"
    source: str = "byod"
    shard_size: int = Field(10_000, ge=1)


class TarSamples:
    """The samples of one webdataset tar, in order, as ``(key, {ext: bytes})``.

    After iteration ``truncated`` says whether the tar ended early (a read error, or no
    end-of-archive block where the last header should have been) and ``partial`` counts the
    sample being read when it did: it may be missing members, so it is dropped, not guessed at.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.truncated = False
        self.partial = 0

    def __iter__(self) -> Iterator[tuple[str, dict[str, bytes]]]:
        key: str | None = None
        members: dict[str, bytes] = {}
        try:
            with open(self.path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tf:
                for m in tf:
                    match = _MEMBER.match(m.name)
                    if not m.isfile() or match is None:
                        continue
                    if match[1] != key:
                        if key is not None:
                            yield key, members
                        key, members = match[1], {}
                    members[match[2].lower()] = tf.extractfile(m).read()
                end = tf.offset
            self.truncated = not _end_of_archive(self.path, end)
        except (tarfile.TarError, EOFError, OSError):
            self.truncated = True
        if key is None:
            return
        if self.truncated:
            self.partial = 1
        else:
            yield key, members


def _end_of_archive(path: Path, offset: int) -> bool:
    # tarfile stops quietly when a tar ends on a member boundary; a whole tar has zeros there.
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(tarfile.BLOCKSIZE) == tarfile.NUL * tarfile.BLOCKSIZE


def image_member(members: dict[str, bytes]) -> bytes:
    for ext in IMAGE_EXTS:
        if ext in members:
            return members[ext]
    raise Rejected("missing_image")


def caption_member(members: dict[str, bytes]) -> str:
    if "txt" not in members:
        raise Rejected("missing_caption")
    return check_caption(members["txt"])


def tar_paths(pattern: str | Path) -> tuple[Path, list[Path]]:
    """``(root, tars)``: the tars a directory, glob or brace pattern names, sorted, and their
    common directory (sample ids are relative to it, so moving the dataset keeps its uids)."""
    path = Path(pattern)
    if path.is_dir():
        tars = sorted(path.glob("*.tar"))
    else:
        tars = sorted({Path(p) for part in braceexpand(str(pattern)) for p in glob.glob(part)})
    if not tars:
        raise FileNotFoundError(f"no .tar shards found at {pattern}")
    root = path if path.is_dir() else Path(os.path.commonpath([t.parent for t in tars]))
    return root, tars


def add_tar_sample(
    rows: PoolRows,
    writer: ShardWriter,
    n: int,
    members: dict[str, bytes],
    source: str,
    native: str,
) -> int:
    """Store one tar sample as pool row ``n``; 1 if it was added, 0 if skipped (and counted)."""
    uid = sample_uid(source, native, 0)
    try:
        if uid in rows:
            raise Rejected("duplicate_uid")
        caption = caption_member(members)
        image = store_image(writer, f"{n:09d}", image_member(members))
    except Rejected as r:
        rows.skip(r.reason)
        return 0
    rows.add(uid, caption, image, source, image_group=native)
    return 1


def _from_tars(p: ByodPool, rows: PoolRows, writer: ShardWriter) -> None:
    root, tars = tar_paths(p.path)
    n = 0
    for tar in tqdm(tars, desc=f"{p.source} pool", unit="tar"):
        samples = TarSamples(tar)
        for key, members in samples:
            native = f"{tar.relative_to(root).as_posix()}/{key}"
            n += add_tar_sample(rows, writer, n, members, p.source, native)
        if samples.truncated:
            rows.skip("truncated_tar")
            rows.skip("lost_in_truncated_tar", samples.partial)


def _local_path(value: str, base: Path) -> Path:
    if value.lower().startswith("file://"):
        return Path(url2pathname(urlparse(value).path))
    if _REMOTE.match(value):
        raise Rejected("remote_url_not_downloaded")
    return base / value


def _store(value: str, base: Path, writer: ShardWriter, key: str) -> StoredImage | str:
    try:
        return store_image(writer, key, read_image_file(_local_path(value, base)))
    except Rejected as r:
        return r.reason


def _from_parquet(p: ByodPool, rows: PoolRows, writer: ShardWriter) -> None:
    path = Path(p.path)
    pf = pq.ParquetFile(path)
    missing = {p.url_col, p.caption_col} - set(pf.schema_arrow.names)
    if missing:
        raise ValueError(
            f"{path}: column(s) {', '.join(sorted(missing))} not found "
            f"(columns: {', '.join(pf.schema_arrow.names)}); set url_col / caption_col"
        )
    # An image named by several rows is checked and stored once; its rows share the member.
    stored: dict[str, StoredImage | str] = {}  # a str is the reason the image was rejected
    uses: dict[str, int] = {}
    bar = tqdm(total=pf.metadata.num_rows, desc=f"{p.source} pool", unit="row")
    for batch in pf.iter_batches(batch_size=4096, columns=[p.url_col, p.caption_col]):
        for value, raw_caption in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            bar.update()
            try:
                if not value:
                    raise Rejected("missing_image")
                if not isinstance(value, str):
                    raise Rejected("image_path_not_text")
                caption = check_caption(raw_caption)
                if value not in stored:
                    stored[value] = _store(value, path.parent, writer, f"{len(stored):09d}")
                image = stored[value]
                if isinstance(image, str):
                    raise Rejected(image)
            except Rejected as r:
                rows.skip(r.reason)
                continue
            index = uses[value] = uses.get(value, -1) + 1
            rows.add(
                sample_uid(p.source, value, index), caption, image, p.source, image_group=value
            )
    bar.close()
    remote = rows.skipped.get("remote_url_not_downloaded", 0)
    if remote:
        log.warning(
            "%d rows of %s name remote URLs, and pool builds never download: fetch them first with "
            "`img2dataset --url_list %s --input_format parquet --url_col %s --caption_col %s "
            "--output_format webdataset --output_folder DIR`, then build a byod pool from DIR",
            remote,
            path,
            path,
            p.url_col,
            p.caption_col,
        )


@register("byod", ByodPool, columns=("image_group",))
def build(p: ByodPool, out_dir: Path) -> PoolBuild:
    """Copy images (JPEG/PNG/WebP bytes unchanged) into the pool's shards; one row per caption."""
    rows = PoolRows({"image_group": pa.string()})
    writer = ShardWriter(out_dir, prefix="byod", maxcount=p.shard_size)
    if p.path.endswith(".parquet"):
        _from_parquet(p, rows, writer)
    else:
        _from_tars(p, rows, writer)
    writer.close()
    return rows.build()
