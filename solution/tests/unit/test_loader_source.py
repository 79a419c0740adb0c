"""Fetching the IMDb files: a local http.server in a thread (no internet), and folders."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from movies.loader import SourceError
from movies.loader.source import fetch_source

LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"
FILES = {
    "/imdb/title.basics.tsv.gz": gzip.compress(b"basics body\n" * 1000),
    "/imdb/title.ratings.tsv.gz": gzip.compress(b"ratings body\n" * 100),
}


class FakeImdb(BaseHTTPRequestHandler):
    """Serves FILES with ETag/Last-Modified, answers 304 when asked, fails on demand."""

    failures: dict[str, int] = {}
    requests: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append((self.path, dict(self.headers)))
        if type(self).failures.get(self.path, 0) > 0:
            type(self).failures[self.path] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = FILES.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        etag = f'"{len(body)}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def imdb_url() -> Iterator[str]:
    FakeImdb.failures = {}
    FakeImdb.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeImdb)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/imdb"
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_writes_both_files_and_records_last_modified(imdb_url: str, tmp_path: Path):
    files = fetch_source(imdb_url, tmp_path, backoff=0)
    assert files.basics.path.read_bytes() == FILES["/imdb/title.basics.tsv.gz"]
    assert files.ratings.path.read_bytes() == FILES["/imdb/title.ratings.tsv.gz"]
    assert files.basics.downloaded
    assert files.basics.last_modified.isoformat() == "2026-10-21T07:28:00+00:00"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "title.basics.tsv.gz",
        "title.basics.tsv.gz.json",
        "title.ratings.tsv.gz",
        "title.ratings.tsv.gz.json",
    ]


def test_unchanged_remote_file_is_reused_after_304(imdb_url: str, tmp_path: Path):
    fetch_source(imdb_url + "/", tmp_path, backoff=0)
    FakeImdb.requests.clear()
    files = fetch_source(imdb_url + "/", tmp_path, backoff=0)
    assert not files.basics.downloaded and not files.ratings.downloaded
    assert files.basics.last_modified.isoformat() == "2026-10-21T07:28:00+00:00"
    assert [headers.get("If-None-Match") for _, headers in FakeImdb.requests] == [
        f'"{len(FILES["/imdb/title.basics.tsv.gz"])}"',
        f'"{len(FILES["/imdb/title.ratings.tsv.gz"])}"',
    ]
    assert FakeImdb.requests[0][1].get("If-Modified-Since") == LAST_MODIFIED
    assert files.basics.path.read_bytes() == FILES["/imdb/title.basics.tsv.gz"]


def test_transient_503_is_retried(imdb_url: str, tmp_path: Path):
    FakeImdb.failures = {"/imdb/title.basics.tsv.gz": 2}
    files = fetch_source(imdb_url, tmp_path, backoff=0)
    assert files.basics.path.read_bytes() == FILES["/imdb/title.basics.tsv.gz"]
    paths = [path for path, _ in FakeImdb.requests]
    assert paths.count("/imdb/title.basics.tsv.gz") == 3


def test_persistent_503_fails_with_the_url_and_keeps_no_partial_file(imdb_url, tmp_path: Path):
    FakeImdb.failures = {"/imdb/title.ratings.tsv.gz": 100}
    with pytest.raises(SourceError, match=r"title.ratings.tsv.gz: HTTP 503"):
        fetch_source(imdb_url, tmp_path, retries=2, backoff=0)
    assert not (tmp_path / "title.ratings.tsv.gz").exists()
    assert not list(tmp_path.glob("*.part"))


def test_missing_remote_file_is_a_clear_error(imdb_url: str, tmp_path: Path):
    with pytest.raises(SourceError, match=r"/nothing-here/title.basics.tsv.gz: HTTP 404"):
        fetch_source(imdb_url.replace("/imdb", "/nothing-here"), tmp_path, backoff=0)


def test_unreachable_server_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceError, match="download failed"):
        fetch_source("http://127.0.0.1:9/", tmp_path, retries=1, backoff=0, timeout=2)


def test_folder_prefers_gzip_and_accepts_plain_text(tmp_path: Path):
    (tmp_path / "title.basics.tsv.gz").write_bytes(b"x")
    (tmp_path / "title.basics.tsv").write_bytes(b"y")
    (tmp_path / "title.ratings.tsv").write_bytes(b"z")
    files = fetch_source(str(tmp_path), tmp_path / "downloads")
    assert files.basics.path.name == "title.basics.tsv.gz"
    assert files.ratings.path.name == "title.ratings.tsv"
    assert files.ratings.last_modified is not None


def test_missing_folder_or_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(SourceError, match="does not exist"):
        fetch_source(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "title.basics.tsv.gz").write_bytes(b"x")
    with pytest.raises(SourceError, match=r"missing title.ratings.tsv.gz \(or uncompressed"):
        fetch_source(str(tmp_path), tmp_path)
