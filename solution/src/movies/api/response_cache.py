"""The response cache: a worker's finished 200 responses by ETag, within a memory budget.

The budget counts what an entry really holds in the worker (`entry_cost`: key, body, header
strings, the tuples, list and record around them, and its slot in the dict), not only the body:
with small bodies the objects around them cost several times the body itself.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from movies.api.caching import DataVersion

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class KeptResponse:
    body: bytes
    headers: Headers  # Flask's own (Content-Type, Content-Length, Link...)
    cost: int  # bytes this entry holds in the worker, objects included


# What an entry costs beyond its objects' own sizes: its slot and links in the OrderedDict.
ENTRY_OVERHEAD_BYTES = 112


def entry_cost(etag: str, body: bytes, headers: Headers) -> int:
    """The memory an entry holds: key, body, header strings, tuples, list, record and slot."""
    strings = sum(sys.getsizeof(name) + sys.getsizeof(value) for name, value in headers)
    tuples = len(headers) * sys.getsizeof(("", ""))
    record = sys.getsizeof(KeptResponse(b"", [], 0))
    return (
        sys.getsizeof(etag)
        + sys.getsizeof(body)
        + strings
        + tuples
        + sys.getsizeof(headers)
        + record
        + ENTRY_OVERHEAD_BYTES
    )


class ResponseCache:
    """Finished 200 responses by ETag, within `max_bytes` of memory, for one data version."""

    # No single response may take more than this share of the budget.
    MAX_ENTRY_SHARE = 16

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, KeptResponse] = OrderedDict()
        self._bytes = 0
        self._version: bytes | None = None
        self._lock = threading.Lock()

    def get(self, version: DataVersion, etag: str) -> KeptResponse | None:
        """The response kept for `etag`, if it was made from `version`."""
        if version.tag != self._version:
            return None
        with self._lock:
            entry = self._entries.get(etag)
            if entry is not None:
                self._entries.move_to_end(etag)
        return entry

    def get_stats(self) -> tuple[int, int]:
        """(entries, bytes they cost)."""
        return len(self._entries), self._bytes

    def put(self, version: DataVersion, etag: str, body: bytes, headers: Headers) -> None:
        """Keep a response (an older version's entries are dropped first)."""
        cost = entry_cost(etag, body, headers)
        if cost * self.MAX_ENTRY_SHARE > self.max_bytes:
            return
        entry = KeptResponse(body, headers, cost)
        with self._lock:
            if version.tag != self._version:
                self._entries.clear()
                self._bytes, self._version = 0, version.tag
            old = self._entries.pop(etag, None)
            self._bytes += cost - (old.cost if old else 0)
            self._entries[etag] = entry
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.cost
