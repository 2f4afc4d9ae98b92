"""Download logic against a local HTTP server on 127.0.0.1; nothing else is contacted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmark.pools import download as dl
from benchmark.pools.download import RemoteFile


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("train2017/000000000009.jpg", os.urandom(40_000))
        z.writestr("annotations/captions_train2017.json", json.dumps({"images": []}))
    return buf.getvalue()


class Server:
    """Serves one file; ``mode`` picks the behaviour: Range support, no Range, or a first
    response cut short."""

    def __init__(self, data: bytes) -> None:
        self.data, self.mode, self.log = data, "range", []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                rng = self.headers.get("Range")
                server.log.append(rng)
                data, start = server.data, 0
                if rng and server.mode != "no-range":
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "drop-first":
                    server.mode = "range"
                    body = body[: len(body) // 3]  # the connection dies mid-body
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/zips/small.zip"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


ZIP = make_zip()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(ZIP)
    yield s
    s.close()


def remote(server: Server) -> RemoteFile:
    return RemoteFile(server.url, len(ZIP), hashlib.md5(ZIP).hexdigest())


def test_requests_are_planned_without_network(tmp_path: Path) -> None:
    reqs = dl.coco_requests(tmp_path)
    assert [r.url for r in reqs] == [
        "http://images.cocodataset.org/zips/train2017.zip",
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    ]
    assert all(r.headers == {} for r in reqs)
    (tmp_path / "train2017.zip.part").write_bytes(b"x" * 1000)
    assert dl.coco_requests(tmp_path)[0].headers == {"Range": "bytes=1000-"}
    (tmp_path / ".annotations_trainval2017.zip.extracted").write_text("done")
    assert len(dl.coco_requests(tmp_path)) == 1
    small = RemoteFile("http://127.0.0.1:1/a.zip", size=3)
    (tmp_path / "a.zip").write_bytes(b"abc")
    assert dl.plan_fetch(small, tmp_path) is None  # complete files are never fetched again


def test_download_coco_fetches_unzips_and_skips_done_work(server: Server, tmp_path: Path) -> None:
    root = dl.download_coco(tmp_path, files=[remote(server)], backoff=0)
    assert (root / "train2017" / "000000000009.jpg").stat().st_size == 40_000
    assert (root / "annotations" / "captions_train2017.json").is_file()
    assert server.log == [None]
    dl.download_coco(tmp_path, files=[remote(server)], backoff=0)
    assert server.log == [None]  # extracted before: no request at all


def test_resume_sends_range_and_appends(server: Server, tmp_path: Path) -> None:
    (tmp_path / "small.zip.part").write_bytes(ZIP[:10_000])
    path = dl.fetch(remote(server), tmp_path, backoff=0)
    assert server.log == ["bytes=10000-"]
    assert path.read_bytes() == ZIP
    assert not (tmp_path / "small.zip.part").exists()


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.mode = "no-range"
    (tmp_path / "small.zip.part").write_bytes(b"stale bytes")
    assert dl.fetch(remote(server), tmp_path, backoff=0).read_bytes() == ZIP


def test_dropped_connection_resumes(server: Server, tmp_path: Path) -> None:
    server.mode = "drop-first"
    assert dl.fetch(remote(server), tmp_path, backoff=0).read_bytes() == ZIP
    assert server.log[0] is None and server.log[1].startswith("bytes=")
    assert len(server.log) == 2


def test_complete_part_file_is_accepted_after_416(server: Server, tmp_path: Path) -> None:
    (tmp_path / "small.zip.part").write_bytes(ZIP)
    assert dl.fetch(remote(server), tmp_path, backoff=0).read_bytes() == ZIP
    assert server.log == [f"bytes={len(ZIP)}-"]


def test_md5_mismatch_removes_the_file(server: Server, tmp_path: Path) -> None:
    bad = RemoteFile(server.url, len(ZIP), "0" * 32)
    with pytest.raises(OSError, match="corrupt"):
        dl.fetch(bad, tmp_path, backoff=0)
    assert not list(tmp_path.iterdir())


def test_unzip_resumes(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(ZIP)
    assert dl.unzip(tmp_path / "a.zip", tmp_path / "out") == 2
    (tmp_path / "out" / "train2017" / "000000000009.jpg").write_bytes(b"half")
    assert dl.unzip(tmp_path / "a.zip", tmp_path / "out") == 1


def test_img2dataset_command(tmp_path: Path) -> None:
    cmd = dl.img2dataset_command(tmp_path / "cc3m.tsv", tmp_path / "out", processes_count=4)
    assert cmd[0] == "img2dataset"
    for arg in (
        f"--url_list={tmp_path / 'cc3m.tsv'}",
        "--input_format=tsv",
        "--url_col=url",
        "--caption_col=caption",
        "--output_format=webdataset",
        f"--output_folder={tmp_path / 'out'}",
        "--image_size=256",
        "--resize_mode=keep_ratio",
        "--resize_only_if_bigger=True",
        "--processes_count=4",
        "--incremental_mode=incremental",
        "--enable_wandb=False",
    ):
        assert arg in cmd


def test_tsv_header(tmp_path: Path) -> None:
    official = tmp_path / "Train_GCC-training.tsv"
    official.write_text("a dog on grass\thttps://e.com/1.jpg\na cat\thttps://e.com/2.jpg\n")
    fixed = dl.tsv_with_header(official, tmp_path / "out")
    assert fixed.read_text().splitlines() == ["caption\turl", *official.read_text().splitlines()]
    headed = tmp_path / "h.tsv"
    headed.write_text("url\tcaption\nhttps://e.com/1.jpg\ta dog\n")
    assert dl.tsv_with_header(headed, tmp_path / "out") == headed
    junk = tmp_path / "junk.tsv"
    junk.write_text("just some text\n")
    with pytest.raises(ValueError, match="no header"):
        dl.tsv_with_header(junk, tmp_path / "out")


def write_stats(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for shard, (count, ok, dl_fail, rs_fail) in enumerate(((100, 70, 25, 5), (50, 40, 10, 0))):
        status = {
            "success": ok,
            "Connection refused": dl_fail // 2,
            "HTTP 404": dl_fail - dl_fail // 2,
        }
        stats = {
            "count": count,
            "successes": ok,
            "failed_to_download": dl_fail,
            "failed_to_resize": rs_fail,
            "duration": 1.5,
            "status_dict": status,
        }
        (folder / f"{shard:05d}_stats.json").write_text(json.dumps(stats))
    (folder / "00002_stats.json").write_text("{not json")


def test_success_report(tmp_path: Path) -> None:
    write_stats(tmp_path)
    r = dl.success_report(tmp_path)
    assert (r.shards, r.count, r.successes, r.failed_to_download, r.failed_to_resize) == (
        2,
        150,
        110,
        35,
        5,
    )
    assert r.success_rate == pytest.approx(110 / 150)
    assert r.errors == {"HTTP 404": 18, "Connection refused": 17}
    assert r.unreadable == ["00002_stats.json"]
    assert "110 of 150 URLs downloaded (73.3%)" in r.summary()


def test_download_cc3m_runs_img2dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in img2dataset on PATH records its arguments and writes stats files."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "img2dataset"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, pathlib\n"
        "args = dict(a[2:].split('=', 1) for a in sys.argv[1:])\n"
        "out = pathlib.Path(args['output_folder'])\n"
        "(out / 'argv.json').write_text(json.dumps(args))\n"
        "stats = dict(count=4, successes=3, failed_to_download=1, failed_to_resize=0,\n"
        "             status_dict={'success': 3, 'timeout': 1})\n"
        "(out / '00000_stats.json').write_text(json.dumps(stats))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    tsv = tmp_path / "cc3m.tsv"
    tsv.write_text("a dog\thttps://e.com/1.jpg\n")
    out = tmp_path / "cc3m"
    report = dl.download_cc3m(tsv, out, image_size=224, processes_count=1)
    assert (report.count, report.successes, report.errors) == (4, 3, {"timeout": 1})
    args = json.loads((out / "argv.json").read_text())
    assert args["image_size"] == "224"
    assert args["url_list"] == str(out / "_input" / "cc3m.tsv")  # the copy with a header


def test_download_cc3m_without_img2dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="pip install img2dataset"):
        dl.download_cc3m(tmp_path / "x.tsv", tmp_path / "out")
