"""Images on disk in webdataset tar shards, written in order and read back by reference.

A table row names its image as ``<shard path>#<member name>``. Reading one image seeks straight
to its member: the per-shard index of member offsets is built by scanning tar headers once, so
memory holds offsets, never pixels, whatever the pool size.
"""

from __future__ import annotations

import io
import tarfile
from collections import OrderedDict
from pathlib import Path

from PIL import Image

Image.MAX_IMAGE_PIXELS = 64_000_000  # larger images are refused as decompression bombs


def ref(shard: str | Path, member: str) -> str:
    return f"{shard}#{member}"


def split_ref(reference: str) -> tuple[str, str]:
    shard, sep, member = reference.rpartition("#")
    if not sep:
        raise ValueError(f"not a shard reference: {reference!r}")
    return shard, member


class ShardWriter:
    """Writes samples into ``<prefix>-NNNNNN.tar`` shards and returns each sample's reference."""

    def __init__(self, out_dir: Path, prefix: str = "shard", maxcount: int = 10_000) -> None:
        import webdataset as wds  # it imports torch: loaded only by what writes shards

        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        pattern = str(out_dir / f"{prefix}-%06d.tar")
        self._writer = wds.ShardWriter(pattern, maxcount=maxcount, verbose=0)

    def write(self, key: str, ext: str, data: bytes, **extra: bytes | str) -> str:
        """Add one sample; ``ext`` names the image member (png, jpg)."""
        self._writer.write({"__key__": key, ext: data, **extra})
        return ref(Path(self._writer.fname).name, f"{key}.{ext}")

    def close(self) -> None:
        self._writer.close()


def _scan(path: Path) -> tuple[dict[str, tuple[int, int]], str | None]:
    """Each file member's (data offset, size), and what is wrong with the shard, or None.

    A whole tar ends with two zero blocks after its last member; a truncated or overwritten
    shard keeps the members before the damage readable, and the damage is named, not hidden.
    """
    members: dict[str, tuple[int, int]] = {}
    size = path.stat().st_size
    with path.open("rb") as f:
        try:
            with tarfile.open(fileobj=f, mode="r:") as tf:
                for m in tf:
                    if m.isfile():
                        members[m.name] = (m.offset_data, m.size)
                end = tf.offset
        except tarfile.ReadError as e:
            problem: str | None = str(e)
        else:
            f.seek(end)
            marker = f.read(2 * tarfile.BLOCKSIZE) == bytes(2 * tarfile.BLOCKSIZE)
            problem = None if marker else f"no end-of-archive marker at byte {end:,}"
    whole = {name: at for name, at in members.items() if at[0] + at[1] <= size}
    if problem is None:
        return whole, None
    return whole, f"{problem}; {len(whole)} members readable, {size:,} bytes"


class ShardReader:
    """Random access to members of tar shards; references resolve against ``root``.

    A member lost (to a truncated or corrupt shard, or a missing one) raises OSError saying so,
    and ``damaged`` names each shard that lost a read (shard -> what is wrong with it), so a
    caller can refuse to keep what it built from them. An image that is there but does not
    decode is the image's fault, not the shard's: it is not damage.
    """

    def __init__(self, root: Path, max_open: int = 16) -> None:
        self.root = Path(root)
        self.damaged: dict[str, str] = {}
        self._problems: dict[str, str] = {}  # what scanning found wrong, by shard
        self._index: OrderedDict[str, dict[str, tuple[int, int]]] = OrderedDict()
        self._files: OrderedDict[str, io.BufferedReader] = OrderedDict()
        self._max_open = max_open

    def _members(self, shard: str) -> dict[str, tuple[int, int]]:
        if shard not in self._index:
            members, problem = _scan(self.root / shard)
            if problem:
                self._problems[shard] = problem
            self._index[shard] = members
            if len(self._index) > self._max_open * 4:
                self._index.popitem(last=False)
        return self._index[shard]

    def _file(self, shard: str) -> io.BufferedReader:
        f = self._files.get(shard)
        if f is None:
            f = open(self.root / shard, "rb")  # noqa: SIM115 - kept open in an LRU
            self._files[shard] = f
            if len(self._files) > self._max_open:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(shard)
        return f

    def read_bytes(self, reference: str) -> bytes:
        shard, member = split_ref(reference)
        try:
            offset, size = self._members(shard)[member]
        except FileNotFoundError:
            self.damaged[shard] = "the shard is missing"
            raise
        except KeyError:  # a table names only members it wrote: a missing one was lost
            problem = self.damaged[shard] = self._problems.get(shard, f"no member {member}")
            raise OSError(f"{member} lost: {shard} is damaged ({problem})") from None
        f = self._file(shard)
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:  # cut short since it was scanned
            self.damaged[shard] = f"{member} truncated to {len(data):,} of {size:,} bytes"
            raise OSError(f"{member} in {shard} is truncated")
        return data

    def read_image(self, reference: str) -> Image.Image:
        """The decoded RGB image; raises OSError/ValueError for missing or corrupt data."""
        with Image.open(io.BytesIO(self.read_bytes(reference))) as im:
            return im.convert("RGB")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __getstate__(self) -> dict:
        # DataLoader workers get a fresh reader: open files do not cross process boundaries.
        return {"root": self.root, "max_open": self._max_open}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"], state["max_open"])
