"""Fetching the real pools: COCO 2017 from its official zips, CC3M through img2dataset.

This is the only place smallcomp touches the network, and only when a user runs
``smallcomp pool download``. The COCO train zip is 19 GB, so a broken connection resumes where it
stopped (HTTP Range into a ``.part`` file) and a finished file is never fetched again; sizes and
MD5s are checked before a zip counts as done. CC3M is millions of URLs on other people's servers,
which img2dataset already downloads well, so we only build its command line and read back its
per-shard ``*_stats.json`` to say how much of the list actually arrived.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

from tqdm import tqdm

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    url: str
    size: int | None = None  # bytes; None trusts the server's Content-Length
    md5: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(urlparse(self.url).path).name


COCO_FILES = (
    RemoteFile(
        "http://images.cocodataset.org/zips/train2017.zip",
        19_336_861_798,
        "cced6f7f71b7629ddf16f17bbcfab6b2",
    ),
    RemoteFile(
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
        252_907_541,
        "f4bbac642086de4f52a3fdda2de5fa2c",
    ),
)


@dataclass(frozen=True)
class Request:
    """The GET that fetching a file would send next: from byte 0, or a Range from a ``.part``."""

    url: str
    dest: Path
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def part(self) -> Path:
        return _part(self.dest)


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def plan_fetch(file: RemoteFile, to: Path) -> Request | None:
    """The next request for ``file`` into ``to``; None when it is already there, complete."""
    dest = to / file.name
    if dest.is_file() and (file.size is None or dest.stat().st_size == file.size):
        return None
    part = _part(dest)
    offset = part.stat().st_size if part.is_file() else 0
    return Request(file.url, dest, {"Range": f"bytes={offset}-"} if offset else {})


def coco_requests(to: Path, files: Sequence[RemoteFile] = COCO_FILES) -> list[Request]:
    """What ``download_coco`` would fetch now, without fetching it (for ``--dry-run``)."""
    return [r for f in files if (r := plan_fetch(f, to)) is not None and not _extracted(f, to)]


def _get(req: Request, timeout: float) -> int | None:
    """Append the response to ``req.part``; the file's full size if the server said it."""
    try:
        resp = urllib.request.urlopen(
            urllib.request.Request(req.url, headers=req.headers), timeout=timeout
        )
    except HTTPError as e:
        if e.code == 416:  # nothing past our offset: the .part already holds the whole file
            return None
        raise
    with resp:
        offset = req.part.stat().st_size if req.headers else 0
        if resp.status != 206:
            offset = 0  # the server ignored the Range: start over rather than append a duplicate
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(req.part, "ab" if offset else "wb") as f,
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=req.dest.name) as bar,
        ):
            while chunk := resp.read(_CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    return total


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    file: RemoteFile,
    to: Path,
    *,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 1.0,
    verify_md5: bool = True,
) -> Path:
    """Download ``file`` into ``to`` (resuming a ``.part`` left by an earlier try) and check it."""
    to.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        req = plan_fetch(file, to)
        if req is None:
            return to / file.name
        try:
            total = _get(req, timeout)
        except (URLError, OSError, HTTPException) as e:  # a dropped connection: resume
            if attempt == retries or (isinstance(e, HTTPError) and e.code < 500):
                raise
            log.warning("%s: %s; resuming (try %d of %d)", file.name, e, attempt + 2, retries + 1)
            time.sleep(backoff * 2**attempt)
            continue
        size, expected = req.part.stat().st_size, file.size or total
        if expected is not None and size < expected:  # the body ended early: resume
            log.warning("%s: %d of %d bytes; resuming", file.name, size, expected)
            continue
        if (expected is not None and size > expected) or (
            verify_md5 and file.md5 and _md5(req.part) != file.md5
        ):
            req.part.unlink()
            raise OSError(
                f"{file.url}: downloaded file is corrupt (size or MD5 differ); removed it"
            )
        req.part.replace(req.dest)
        return req.dest
    raise OSError(f"{file.url}: incomplete after {retries + 1} tries; run again to resume")


def _marker(file: RemoteFile, to: Path) -> Path:
    return to / f".{file.name}.extracted"


def _extracted(file: RemoteFile, to: Path) -> bool:
    return _marker(file, to).is_file()


def unzip(archive: Path, to: Path) -> int:
    """Extract ``archive`` into ``to``, skipping members already there whole; returns how many
    were written (an interrupted unzip resumes instead of starting over)."""
    written = 0
    with zipfile.ZipFile(archive) as z:
        for info in tqdm(z.infolist(), desc=f"unzip {archive.name}", unit="file", mininterval=1.0):
            target = to / info.filename
            if info.is_dir() or (target.is_file() and target.stat().st_size == info.file_size):
                continue
            z.extract(info, to)  # extract() strips absolute and '..' parts of member names
            written += 1
    return written


def download_coco(
    to: Path,
    *,
    files: Sequence[RemoteFile] = COCO_FILES,
    keep_zips: bool = True,
    retries: int = 5,
    timeout: float = 60,
    backoff: float = 1.0,
    verify_md5: bool = True,
) -> Path:
    """COCO 2017 train images and annotations in the official layout under ``to`` (the ``root``
    of a ``coco`` pool). Run it again after any interruption: done work is not redone."""
    for file in files:
        if _extracted(file, to):
            continue
        archive = fetch(
            file, to, retries=retries, timeout=timeout, backoff=backoff, verify_md5=verify_md5
        )
        unzip(archive, to)
        _marker(file, to).write_text(f"{file.url}\n", encoding="utf-8")
        if not keep_zips:
            archive.unlink()
    return to


def tsv_with_header(
    tsv: Path, to: Path, url_col: str = "url", caption_col: str = "caption"
) -> Path:
    """A TSV img2dataset can read: ``tsv`` itself if its header names the columns, else a copy
    with a header (the official CC3M file, ``<caption>\\t<url>``, has none)."""
    with open(tsv, encoding="utf-8", errors="replace") as f:
        first = f.readline().rstrip("\r\n").split("\t")
    if url_col in first and caption_col in first:
        return tsv
    is_url = [field.startswith(("http://", "https://")) for field in first]
    if len(first) != 2 or sum(is_url) != 1:
        raise ValueError(
            f"{tsv}: no header with columns {url_col!r} and {caption_col!r}, and the first line "
            "is not a headerless <caption>\\t<url> pair"
        )
    header = [url_col, caption_col] if is_url[0] else [caption_col, url_col]
    out = to / "_input" / tsv.name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(tsv, "rb") as src, open(out, "wb") as dst:
        dst.write(("\t".join(header) + "\n").encode())
        shutil.copyfileobj(src, dst)
    return out


def img2dataset_command(
    url_list: Path,
    to: Path,
    *,
    url_col: str = "url",
    caption_col: str = "caption",
    image_size: int = 256,
    resize_mode: str = "keep_ratio",
    resize_only_if_bigger: bool = True,
    encode_quality: int = 95,
    processes_count: int = os.cpu_count() or 1,
    thread_count: int = 64,
    number_sample_per_shard: int = 10_000,
    timeout: int = 10,
    retries: int = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    """The img2dataset invocation that writes a ``cc3m`` pool's input into ``to``.

    ``incremental`` mode makes a rerun skip shards that already have their stats file, which is
    img2dataset's own resume.
    """
    options = {
        "url_list": url_list,
        "input_format": "tsv",
        "url_col": url_col,
        "caption_col": caption_col,
        "output_format": "webdataset",
        "output_folder": to,
        "image_size": image_size,
        "resize_mode": resize_mode,
        "resize_only_if_bigger": resize_only_if_bigger,
        "encode_quality": encode_quality,
        "processes_count": processes_count,
        "thread_count": thread_count,
        "number_sample_per_shard": number_sample_per_shard,
        "timeout": timeout,
        "retries": retries,
        "incremental_mode": "incremental",
        "enable_wandb": False,
    }
    return ["img2dataset", *(f"--{k}={v}" for k, v in options.items()), *extra]


@dataclass
class SuccessReport:
    """How much of a URL list img2dataset turned into images, summed over its shards."""

    shards: int = 0
    count: int = 0
    successes: int = 0
    failed_to_download: int = 0
    failed_to_resize: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # the most frequent error messages
    unreadable: list[str] = field(default_factory=list)  # stats files that did not parse

    @property
    def success_rate(self) -> float:
        return self.successes / self.count if self.count else 0.0

    def summary(self) -> str:
        top = "; ".join(f"{n}x {msg}" for msg, n in list(self.errors.items())[:3])
        return (
            f"{self.successes:,} of {self.count:,} URLs downloaded ({self.success_rate:.1%}) "
            f"in {self.shards} shards; {self.failed_to_download:,} failed to download, "
            f"{self.failed_to_resize:,} to resize"
            + (f"; most frequent errors: {top}" if top else "")
        )


def success_report(folder: Path, top: int = 10) -> SuccessReport:
    """Sum img2dataset's ``*_stats.json`` files in ``folder``."""
    report, errors = SuccessReport(), Counter()
    for path in sorted(folder.glob("*_stats.json")):
        try:
            stats = json.loads(path.read_text(encoding="utf-8"))
            counts = [int(stats[k]) for k in ("count", "successes", "failed_to_download")]
            resize = int(stats.get("failed_to_resize", 0))
            status = {str(k): int(v) for k, v in stats.get("status_dict", {}).items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            report.unreadable.append(path.name)
            continue
        report.shards += 1
        report.count += counts[0]
        report.successes += counts[1]
        report.failed_to_download += counts[2]
        report.failed_to_resize += resize
        errors.update({k: v for k, v in status.items() if k != "success"})
    report.errors = dict(errors.most_common(top))
    return report


def download_cc3m(
    tsv: Path, to: Path, *, url_col: str = "url", caption_col: str = "caption", **options: Any
) -> SuccessReport:
    """Run img2dataset on the user's CC3M TSV into ``to`` and report its success rate.

    ``options`` go to ``img2dataset_command``. Rerunning resumes: finished shards are skipped.
    """
    if shutil.which("img2dataset") is None:
        raise RuntimeError("img2dataset is not installed; `pip install img2dataset` and rerun")
    to.mkdir(parents=True, exist_ok=True)
    url_list = tsv_with_header(tsv, to, url_col, caption_col)
    command = img2dataset_command(url_list, to, url_col=url_col, caption_col=caption_col, **options)
    subprocess.run(command, check=True)
    report = success_report(to)
    log.info("cc3m: %s", report.summary())
    return report
