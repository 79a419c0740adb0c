"""Client traffic for `make reliability`: N threads, one `requests.Session` each, a mixed query set.

Every response is recorded (start offset, latency, status, content type), so a scenario can cut
the run into windows (before / during / after an event) and compute its figures per window.
A status of 0 means the request never got an HTTP response (connection error or timeout).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

PROBLEM_JSON = "application/problem+json"

# One entry per list query shape the API serves: sorts on each key and direction, each filter,
# combinations, genres. Parameter names follow the API (`sort=-rating,title`, `genre=`, ...).
LIST_QUERIES: tuple[dict[str, str], ...] = (
    {},
    {"sort": "title"},
    {"sort": "-title"},
    {"sort": "-rating"},
    {"sort": "rating"},
    {"sort": "-votes"},
    {"sort": "year"},
    {"sort": "-year"},
    {"sort": "runtime"},
    {"sort": "-rating,title"},
    {"rating_gte": "8", "sort": "-votes"},
    {"year_gte": "1990", "year_lte": "1999", "sort": "-rating"},
    {"year": "2001"},
    {"genre": "Drama", "sort": "-rating"},
    {"genre": "Comedy", "rating_gte": "7", "limit": "50"},
    {"votes_gte": "1000", "sort": "-year"},
    {"runtime_gte": "90", "runtime_lte": "120", "sort": "runtime"},
    {"limit": "100", "sort": "-votes"},
)


@dataclass(frozen=True)
class Sample:
    started: float  # seconds since the traffic started
    seconds: float
    status: int  # 0: no HTTP response
    content_type: str
    kind: str  # "list", "page" (followed cursor), "get"
    error: str = ""
    path: str = ""
    items: int = -1  # movies in a 200 list response (-1: not a list or not 200)

    @property
    def empty_page(self) -> bool:
        """A 200 list page without movies: every query of the mix matches thousands, so this
        is a wrong answer (a page read from a snapshot that cannot see the data)."""
        return self.kind != "get" and self.status == 200 and self.items == 0


class RequestMix:
    """Half list queries (some followed for a page or two), half GETs of known ids."""

    def __init__(self, get_ids: Sequence[str], list_queries: Iterable[dict[str, str]] = ()) -> None:
        self.get_ids = list(get_ids)
        self.list_queries = [urlencode(q) for q in (list_queries or LIST_QUERIES)]

    def pick(self, rng: random.Random) -> tuple[str, str]:
        if self.get_ids and rng.random() < 0.5:
            return "get", f"/movies/{rng.choice(self.get_ids)}"
        query = rng.choice(self.list_queries)
        return "list", f"/movies?{query}" if query else "/movies"


class Traffic:
    """Background clients; `start()`, then `stop()` returns every sample in start order."""

    def __init__(
        self,
        base_url: str,
        mix: RequestMix,
        clients: int,
        *,
        timeout: float = 30.0,
        seed: int = 1,
        follow_cursor: float = 0.3,
    ) -> None:
        self.base_url = base_url
        self.mix = mix
        self.clients = clients
        self.timeout = timeout
        self.seed = seed
        self.follow_cursor = follow_cursor
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._samples: list[list[Sample]] = [[] for _ in range(clients)]
        self.t0 = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> Traffic:
        self.t0 = time.monotonic()
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)
        return sorted((s for per in self._samples for s in per), key=lambda s: s.started)

    def recent(self, seconds: float) -> list[Sample]:
        """Samples of the last `seconds` (read while the clients run)."""
        since = self.now() - seconds
        return [s for per in self._samples for s in per[-500:] if s.started >= since]

    def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        out = self._samples[index]
        with requests.Session() as session:
            next_url = ""
            while not self._stop.is_set():
                if next_url:
                    kind, path = "page", next_url
                else:
                    kind, path = self.mix.pick(rng)
                next_url = ""
                started = time.monotonic()
                try:
                    response = session.get(self.base_url + path, timeout=self.timeout)
                    status = response.status_code
                    content_type = response.headers.get("Content-Type", "")
                    error = ""
                    items = -1
                    if kind != "get" and status == 200:
                        body = response.json()
                        items = len(body.get("items") or [])
                        cursor = body.get("next_cursor")
                        if cursor and rng.random() < self.follow_cursor:
                            next_url = with_cursor(path, cursor)
                except (requests.RequestException, ValueError) as exc:
                    status, content_type, error, items = 0, "", type(exc).__name__, -1
                    if isinstance(exc, requests.ConnectionError):
                        time.sleep(0.01)  # no busy loop while the server is down
                out.append(
                    Sample(
                        started - self.t0,
                        time.monotonic() - started,
                        status,
                        content_type.split(";")[0].strip(),
                        kind,
                        error,
                        path,
                        items,
                    )
                )


def with_cursor(path: str, cursor: str) -> str:
    """`path` asking for the page after `cursor` (any previous cursor replaced)."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "cursor"]
    query.append(("cursor", cursor))
    return f"{parts.path}?{urlencode(query)}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Window:
    """Figures for the samples that started within [start, end)."""

    requests: int
    failures: int  # a status not in `ok`, no response, or a 200 list page without movies
    empty_pages: int
    statuses: dict[int, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    rps: float


def window(samples: Sequence[Sample], start: float, end: float, ok=(200,)) -> Window:
    inside = [s for s in samples if start <= s.started < end]
    latencies = [s.seconds * 1000 for s in inside]
    failures = sum(1 for s in inside if s.status not in ok or s.empty_page)
    duration = max(end - start, 1e-9)
    return Window(
        requests=len(inside),
        failures=failures,
        empty_pages=sum(1 for s in inside if s.empty_page),
        statuses=dict(Counter(s.status for s in inside)),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=float("nan")),
        rps=len(inside) / duration,
    )
