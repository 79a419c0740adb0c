"""The `export` scenario's tools: a download of GET /movies/export read at a throttled rate, and
one wrk run of a URL (with its slowest request, which bench_api does not keep).

A slow client is an HTTP/1.1 download whose body is read `CHUNK_BYTES` at a time, pausing so
that it never runs ahead of `rate` bytes per second: the socket buffers fill and TCP holds the
server's sends back, as a client on a slow line does. The download is complete when the chunked
body ended with its terminating chunk (a connection closed before it is an `IncompleteRead`).
"""

from __future__ import annotations

import http.client
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench_api import parse_wrk, wrk_argv

CHUNK_BYTES = 16 * 1024
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Download:
    """One throttled download: what arrived and how it ended."""

    export_format: str
    status: int = 0
    body_bytes: int = 0
    lines: int = 0
    complete: bool = False
    error: str = ""
    seconds: float = 0.0


def slow_download(base_url: str, export_format: str, rate: float) -> Download:
    """GET /movies/export?format=`export_format`, read at `rate` bytes per second."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    download = Download(export_format)
    started = time.monotonic()
    try:
        connection.request("GET", f"/movies/export?format={export_format}")
        response = connection.getresponse()
        download.status = response.status
        while chunk := response.read(CHUNK_BYTES):
            download.body_bytes += len(chunk)
            download.lines += chunk.count(b"\n")
            ahead = download.body_bytes / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        download.complete = response.status == 200
    except (OSError, http.client.HTTPException) as exc:
        download.error = f"{type(exc).__name__}: {exc}"[:200]
    finally:
        connection.close()
        download.seconds = time.monotonic() - started
    return download


class Background:
    """A call run in a thread; `result()` waits for and returns its value (or raises its error)."""

    def __init__(self, call) -> None:
        self._call = call
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self, timeout: float | None = None):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"still running after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(frozen=True)
class ListRun:
    """One wrk run: bench_api's figures and the slowest request."""

    requests_per_s: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def wrk(url: str, seconds: int, connections: int) -> ListRun:
    """One `wrk --latency` run (2 threads) of `url`."""
    argv = wrk_argv(url, seconds, connections, 2)
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    figures = parse_wrk(output)
    latency = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    if latency is None:
        raise RuntimeError(f"no latency line in wrk's output:\n{output}")
    return ListRun(
        requests_per_s=figures.requests_per_s,
        p99_ms=figures.p99_ms,
        max_ms=float(latency.group(1)) * UNIT_MS[latency.group(2)],
        requests=figures.requests,
        non_2xx=figures.non_2xx,
        socket_errors=figures.socket_errors,
    )
