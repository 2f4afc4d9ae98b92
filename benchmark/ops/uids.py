"""Keep the rows a uid list names: DataComp's ``.npy`` of ``u8,u8``, a Parquet ``uid`` column, or
a text file of hex uids. The list is part of the recipe: it lies beside it, and its content (its
sha256, recorded when the recipe loads) is part of the recipe's hash."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, ValidationInfo, field_validator

from benchmark import columns
from benchmark.ops.context import StepContext
from benchmark.ops.registry import Params, register
from benchmark.spec.paths import recipe_dir

HEX_UID = re.compile(r"[0-9a-fA-F]{32}")
PARQUET = (".parquet", ".pq")


class UidFileError(ValueError):
    """A uid file that cannot be read as a uid list; the message says where in it."""


class Uids(Params):
    path: str = Field(
        min_length=1,
        description="the uid list, relative to the recipe: .npy (DataComp's u8,u8), .parquet "
        "(a 'uid' column) or text (one 32-digit hex uid a line)",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        validate_default=True,
        description="the file's sha256; recorded when the recipe loads, an error if pinned and "
        "the file differs",
    )

    @field_validator("path")
    @classmethod
    def _readable(cls, v: str, info: ValidationInfo) -> str:
        base = recipe_dir(info)
        if base is not None:  # the recipe is loading: the file must be a uid list
            file = base / v
            read_uids(file, _read_bytes(file))
        return v

    @field_validator("sha256")
    @classmethod
    def _content(cls, v: str | None, info: ValidationInfo) -> str | None:
        base = recipe_dir(info)
        if base is None or "path" not in info.data:  # later validations, or a bad path
            return v.lower() if v else v
        found = hashlib.sha256(_read_bytes(base / info.data["path"])).hexdigest()
        if v is not None and v.lower() != found:
            raise ValueError(f"{base / info.data['path']} has sha256 {found}, not the pinned {v}")
        return found


def _read_bytes(file: Path) -> bytes:
    # is_file: a device or FIFO (/dev/zero) would never end
    if not file.is_file():
        raise UidFileError(f"no such file: {file}")
    try:
        return file.read_bytes()
    except OSError as e:
        raise UidFileError(f"cannot read {file}: {e.strerror or e}") from None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 42 else text[:40] + "…"


def read_uids(file: Path, data: bytes) -> pa.Array:
    """The uids ``data`` (the bytes of ``file``) lists, as lowercase 32-digit hex strings in file
    order; UidFileError for anything that is not a uid list of the format its suffix names."""
    suffix = file.suffix.lower()
    if suffix == ".npy":
        uids = _npy(file, data)
    elif suffix in PARQUET:
        uids = _parquet(file, data)
    else:
        uids = _text(file, data)
    if len(uids) == 0:
        raise UidFileError(f"{file} lists no uids")
    return uids


def _npy(file: Path, data: bytes) -> pa.Array:
    if not data.startswith(b"\x93NUMPY"):
        raise UidFileError(f"{file} is not a .npy array (DataComp's u8,u8 uid format)")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        if "allow_pickle" in str(e):  # an object array: loading it would unpickle
            raise UidFileError(f"{file}: refused, it holds pickled objects") from None
        raise UidFileError(f"{file} is not a readable .npy array: {e}") from None
    names = arr.dtype.names or ()
    pairs = len(names) == 2 and all(
        arr.dtype[n].kind == "u" and arr.dtype[n].itemsize == 8 and arr.dtype[n].shape == ()
        for n in names
    )
    if not pairs or arr.ndim != 1:
        raise UidFileError(
            f"{file} has dtype {arr.dtype} and shape {arr.shape}; a uid list is DataComp's "
            "1-d array of u8,u8 (each 128-bit uid as two uint64)"
        )
    both = np.empty((len(arr), 2), dtype=">u8")  # big-endian: the hex digits in uid order
    both[:, 0], both[:, 1] = arr[names[0]], arr[names[1]]
    text = both.tobytes().hex()
    return pa.array([text[i : i + 32] for i in range(0, len(text), 32)], pa.string())


def _parquet(file: Path, data: bytes) -> pa.Array:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        names = pf.schema_arrow.names
        if columns.UID not in names:
            raise UidFileError(
                f"{file} has no '{columns.UID}' column (columns: {', '.join(names) or 'none'})"
            )
        col = pf.read(columns=[columns.UID]).column(columns.UID).combine_chunks()
    except (pa.ArrowException, OSError) as e:
        raise UidFileError(f"{file} is not a readable Parquet file: {e}") from None
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise UidFileError(f"{file}: column '{columns.UID}' is {col.type}; want hex strings")
    ok = pc.fill_null(pc.match_substring_regex(col, f"^{HEX_UID.pattern}$"), False)
    if not pc.all(ok).as_py():
        row = pc.index(ok, False).as_py()
        raise UidFileError(
            f"{file} row {row}: {_shown(col[row].as_py())} is not a uid (32 hex digits)"
        )
    return pc.utf8_lower(col).cast(pa.string())


def _text(file: Path, data: bytes) -> pa.Array:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UidFileError(f"{file} line {line}: not UTF-8 text") from None
    uids = []
    for n, line in enumerate(text.splitlines(), 1):
        uid = line.strip()
        if not uid:
            continue
        if not HEX_UID.fullmatch(uid):
            raise UidFileError(f"{file} line {n}: {_shown(uid)} is not a uid (32 hex digits)")
        uids.append(uid.lower())
    return pa.array(uids, pa.string())


def _file(p: Uids, ctx: StepContext) -> Path:
    path = Path(p.path)
    if path.is_absolute():
        return path
    if ctx.recipe_dir is None:
        raise ctx.fail(
            f"'{p.path}' is relative to the recipe, and the step was not told where it is"
        )
    return ctx.recipe_dir / path


@register("uids", "filter", Uids, reads=(columns.UID,), scope="table")
def uids(table: pa.Table, p: Uids, ctx: StepContext) -> pa.Table:
    """Keep the rows whose uid a file lists (a submission's list, another tool's curation):
    DataComp's .npy of u8,u8, a Parquet 'uid' column, or text with one hex uid a line, relative
    to the recipe. Rows stay in table order. The step's record counts the uids listed, repeated
    and not in the table it filters (the pool, as the first step); the file's sha256 is part of
    the recipe's hash."""
    ctx.require(table, columns.UID)
    if p.sha256 is None:
        raise ctx.fail("no sha256 for the uid file: load the step from its recipe")
    file = _file(p, ctx)
    try:
        data = _read_bytes(file)
        if hashlib.sha256(data).hexdigest() != p.sha256:
            raise UidFileError(f"{file} changed since the recipe was loaded (sha256 differs)")
        listed = read_uids(file, data)
    except UidFileError as e:
        raise ctx.fail(str(e)) from None
    distinct = pc.unique(listed)
    have = pc.utf8_lower(table.column(columns.UID))
    found = pc.is_in(distinct, value_set=have)
    ctx.samples_processed += table.num_rows
    ctx.extra_costs["uids"] = {
        "listed": len(listed),
        "repeated": len(listed) - len(distinct),
        "not_in_pool": len(distinct) - int(pc.sum(found).as_py() or 0),
    }
    return table.filter(pc.is_in(have, value_set=distinct))
