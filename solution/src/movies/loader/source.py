"""Where the two IMDb files come from: a base URL (downloaded, cached) or a local folder.

Downloads stream to a temporary file in the downloads folder and are renamed into place only
when complete, so a cached file is always whole. The response's ETag and Last-Modified are kept
in a small JSON file beside it; the next run sends them back (If-None-Match / If-Modified-Since)
and reuses the cached file on 304 Not Modified.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from movies.loader.errors import SourceError

log = logging.getLogger(__name__)

BASICS = "title.basics.tsv"
RATINGS = "title.ratings.tsv"
CHUNK_BYTES = 1 << 20
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class SourceFile:
    """A local copy of one IMDb file and the date its publisher gave it."""

    path: Path
    last_modified: datetime | None
    downloaded: bool = False


@dataclass(frozen=True)
class SourceFiles:
    basics: SourceFile
    ratings: SourceFile


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch_source(
    source: str,
    downloads: Path,
    *,
    progress: bool = False,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> SourceFiles:
    """Resolve `source` (base URL or folder) to local copies of the basics and ratings files.

    :raise SourceError: if the folder or a file is missing, or a download fails for good.
    """
    if is_url(source):
        session = _session(retries, backoff)
        base = source if source.endswith("/") else source + "/"
        try:
            return SourceFiles(
                *(
                    download(
                        base + name + ".gz",
                        downloads / (name + ".gz"),
                        session=session,
                        progress=progress,
                        attempts=retries + 1,
                        backoff=backoff,
                        timeout=timeout,
                    )
                    for name in (BASICS, RATINGS)
                )
            )
        finally:
            session.close()
    if "://" in source:
        raise SourceError(f"unsupported source {source!r}: give an http(s) URL or a folder")
    return SourceFiles(*(local_file(Path(source), name) for name in (BASICS, RATINGS)))


def local_file(folder: Path, name: str) -> SourceFile:
    """`name`.gz (or plain `name`) in `folder`, dated by its modification time.

    :raise SourceError: if the folder or both variants of the file are missing.
    """
    folder = folder.expanduser()
    if not folder.is_dir():
        raise SourceError(f"source folder {folder} does not exist (or is not a folder)")
    for candidate in (folder / (name + ".gz"), folder / name):
        if candidate.is_file():
            mtime = datetime.fromtimestamp(candidate.stat().st_mtime, tz=UTC)
            return SourceFile(candidate, mtime)
    raise SourceError(f"{folder}: missing {name}.gz (or uncompressed {name})")


def _session(retries: int, backoff: float) -> requests.Session:
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=TRANSIENT_STATUSES,
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def download(
    url: str,
    dest: Path,
    *,
    session: requests.Session,
    progress: bool = False,
    attempts: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> SourceFile:
    """Download `url` to `dest` unless the cached copy is still current.

    Connection errors and 5xx answers are retried by the session (urllib3 Retry); a transfer
    that breaks off mid-body is started again, up to `attempts` times.

    :raise SourceError: if the server answers with an error or the transfer keeps failing.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    sidecar = dest.with_name(dest.name + ".json")
    cached = _read_sidecar(sidecar) if dest.is_file() else {}
    if cached.get("url") != url:
        cached = {}
    headers = {}
    if cached.get("etag"):
        headers["If-None-Match"] = cached["etag"]
    if cached.get("last_modified"):
        headers["If-Modified-Since"] = cached["last_modified"]
    for attempt in range(1, attempts + 1):
        try:
            with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
                if response.status_code == 304 and cached:
                    log.info("%s unchanged (304); reusing %s", url, dest)
                    return SourceFile(dest, _http_date(cached.get("last_modified")))
                if response.status_code != 200:
                    raise SourceError(
                        f"{url}: HTTP {response.status_code} {response.reason}".rstrip()
                    )
                _stream_to(response, dest, progress=progress)
                meta = {
                    "url": url,
                    "etag": response.headers.get("ETag"),
                    "last_modified": response.headers.get("Last-Modified"),
                }
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            if attempt == attempts:
                raise SourceError(
                    f"{url}: download failed after {attempts} attempts: {exc}"
                ) from exc
            log.warning("%s: download attempt %d failed (%s); retrying", url, attempt, exc)
            time.sleep(backoff * attempt)
            continue
        except requests.RequestException as exc:
            raise SourceError(f"{url}: download failed: {exc}") from exc
        _write_sidecar(sidecar, meta)
        log.info("downloaded %s to %s", url, dest)
        return SourceFile(dest, _http_date(meta["last_modified"]), downloaded=True)
    raise AssertionError("unreachable")  # pragma: no cover


def _stream_to(response: requests.Response, dest: Path, *, progress: bool) -> None:
    """Write the body to a temporary file beside `dest`, then rename it into place."""
    total = int(response.headers.get("Content-Length") or 0) or None
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False)
            try:
                for chunk in response.iter_content(CHUNK_BYTES):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _read_sidecar(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_sidecar(path: Path, meta: dict) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, path)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
