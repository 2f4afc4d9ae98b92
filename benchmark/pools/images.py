"""Admitting samples into a pool: what every adapter checks before a row exists.

A pool must never hold a sample that training or evaluation would choke on later, so each image is
decoded once here (a header that parses says nothing about the pixels behind it) and each caption
must be non-empty UTF-8. Failures are not errors: the adapter counts them per reason in
``PoolBuild.skipped`` and goes on, because one bad file in three million must not stop a build.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from PIL import Image

from benchmark.pools import PoolBuild
from benchmark.pools.shards import ShardWriter

# Formats whose bytes go into shards unchanged; anything else PIL decodes is stored as PNG, which
# every webdataset decoder reads and which loses no pixels.
_STORED_AS_IS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


class Rejected(Exception):
    """A sample that cannot enter the pool; ``reason`` is its key in ``PoolBuild.skipped``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StoredImage:
    ref: str
    width: int
    height: int


def check_image(data: bytes) -> tuple[bytes, str, int, int]:
    """``(bytes to store, extension, width, height)`` after a full decode.

    Raises ``Rejected('image_too_large')`` above ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb
    would take gigabytes to decode in a training worker) and ``Rejected('corrupt_image')`` for
    anything PIL cannot decode to the last row.
    """
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that; both are bombs here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                ext = _STORED_AS_IS.get(im.format or "")
                if ext is None:
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
                    data, ext = buf.getvalue(), "png"
                return data, ext, im.width, im.height
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Rejected("image_too_large") from None
    except Exception:  # PIL reports broken data as OSError, SyntaxError, struct.error, ...
        raise Rejected("corrupt_image") from None


def store_image(writer: ShardWriter, key: str, data: bytes) -> StoredImage:
    """Check ``data`` and write it to the pool's shards under ``key``."""
    data, ext, width, height = check_image(data)
    return StoredImage(writer.write(key, ext, data), width, height)


def read_image_file(path: Path) -> bytes:
    """The file's bytes; a missing or unreadable file is a skipped sample, not a failed build."""
    try:
        return path.read_bytes()
    except OSError:
        raise Rejected("missing_image") from None


def check_caption(raw: object) -> str:
    """The caption with surrounding whitespace removed.

    Sources hold whatever their writers put there (JSON numbers, nulls and lists, bytes in any
    encoding), so anything but non-empty UTF-8 text is rejected: ``caption_not_text`` for a value
    that is no string, ``non_utf8_caption`` for bytes that do not decode and for text with lone
    surrogates (what a ``surrogateescape`` decode makes of bad bytes, and what Parquet could
    never store), ``empty_caption`` for null or whitespace.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("non_utf8_caption") from None
    if raw is None:
        raise Rejected("empty_caption")
    if not isinstance(raw, str):
        raise Rejected("caption_not_text")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("non_utf8_caption") from None
    text = raw.strip()
    if not text:
        raise Rejected("empty_caption")
    return text


def sample_uid(source: str, native_id: str, index: str | int) -> str:
    """DataComp-style 128-bit uid (32 hex chars): a sample gets the same uid on every build."""
    return hashlib.md5(f"{source}:{native_id}:{index}".encode()).hexdigest()


class PoolRows:
    """The pool table being built, column by column, with the skip counts beside it.

    Rows arrive in input order and the table keeps it, so two builds of the same source give
    identical tables. A repeated uid is a duplicate line in the source and is skipped, since
    downstream steps key everything on uid.
    """

    def __init__(self, extra: dict[str, pa.DataType] | None = None) -> None:
        self._schema = pa.schema(
            [
                ("uid", pa.string()),
                ("caption", pa.string()),
                ("image", pa.string()),
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("source", pa.string()),
                *(extra or {}).items(),
            ]
        )
        self._columns: dict[str, list] = {name: [] for name in self._schema.names}
        self._uids: set[str] = set()
        self.skipped: dict[str, int] = {}

    def add(self, uid: str, caption: str, image: StoredImage, source: str, **extra: object) -> None:
        if uid in self._uids:
            self.skip("duplicate_uid")
            return
        self._uids.add(uid)
        row = {
            "uid": uid,
            "caption": caption,
            "image": image.ref,
            "width": image.width,
            "height": image.height,
            "source": source,
            **extra,
        }
        for name, column in self._columns.items():
            column.append(row[name])

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count

    def __contains__(self, uid: str) -> bool:
        return uid in self._uids

    def __len__(self) -> int:
        return len(self._uids)

    def build(self) -> PoolBuild:
        table = pa.Table.from_pydict(self._columns, schema=self._schema)
        return PoolBuild(table, dict(sorted(self.skipped.items())))
