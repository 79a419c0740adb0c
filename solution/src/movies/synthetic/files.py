"""The synthetic data set on disk: IMDb's two gzip files and synthetic.json, written whole or
not at all."""

from __future__ import annotations

import json
import os
import queue
import threading
import zlib
from pathlib import Path

from movies.synthetic.rows import Counts, row_chunks
from movies.synthetic.vocabulary import TYPE_NAMES

BASICS = "title.basics.tsv.gz"
RATINGS = "title.ratings.tsv.gz"
MANIFEST = "synthetic.json"
BASICS_HEADER = (
    "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\t"
    "runtimeMinutes\tgenres\n"
)
RATINGS_HEADER = "tconst\taverageRating\tnumVotes\n"

FULL_BASICS_ROWS = 11_500_000
GZIP_LEVEL = 1


def format_tconst(number: int) -> str:
    """IMDb's id for a number: 'tt' and at least 7 digits (tt0000001 ... tt9999999, tt10000000)."""
    if number < 1:
        raise ValueError(f"tconst numbers start at 1, got {number}")
    return f"tt{number:07d}"


def basics_rows_for(scale: float) -> int:
    """Number of title.basics data rows at `scale` (1.0: 11.5 M)."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return max(1, round(FULL_BASICS_ROWS * scale))


def generate(
    out_dir: Path, *, scale: float = 1.0, seed: int = 42, malformed_every: int = 1_000_000
) -> None:
    """Write title.basics.tsv.gz, title.ratings.tsv.gz and synthetic.json into `out_dir`.

    Files are written under temporary names and renamed when complete; synthetic.json last.

    :raise ValueError: if scale is not positive or malformed_every is negative.
    :raise OSError: if out_dir cannot be created or written.
    """
    total = basics_rows_for(scale)
    if malformed_every < 0:
        raise ValueError(f"malformed_every must be 0 or more, got {malformed_every}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST
    manifest_path.unlink(missing_ok=True)
    tmp_suffix = f".tmp-{os.getpid()}"
    basics_tmp = out_dir / (BASICS + tmp_suffix)
    ratings_tmp = out_dir / (RATINGS + tmp_suffix)
    counts = Counts(
        by_type={str(t): 0 for t in TYPE_NAMES}, rated_by_type={str(t): 0 for t in TYPE_NAMES}
    )
    try:
        with _GzipWriter(basics_tmp) as basics, _GzipWriter(ratings_tmp) as ratings:
            basics.write(BASICS_HEADER.encode())
            ratings.write(RATINGS_HEADER.encode())
            for basics_text, ratings_text in row_chunks(total, seed, malformed_every, counts):
                basics.write(basics_text.encode())
                ratings.write(ratings_text.encode())
        os.replace(ratings_tmp, out_dir / RATINGS)
        os.replace(basics_tmp, out_dir / BASICS)
    finally:
        basics_tmp.unlink(missing_ok=True)
        ratings_tmp.unlink(missing_ok=True)
    manifest = {
        "seed": seed,
        "scale": scale,
        "malformed_every": malformed_every,
        "basics_rows": counts.basics_rows,
        "ratings_rows": counts.ratings_rows,
        "movies": counts.movies,
        "loadable_movies": counts.movies - len(counts.malformed_tconsts),
        "rated_movies": counts.rated_movies,
        "loadable_rated_movies": counts.rated_movies - counts.malformed_rated,
        "by_type": counts.by_type,
        "rated_by_type": counts.rated_by_type,
        "malformed_tconsts": counts.malformed_tconsts,
    }
    tmp_manifest = out_dir / (MANIFEST + tmp_suffix)
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_manifest, manifest_path)


def read_manifest(out_dir: Path) -> dict | None:
    """The synthetic.json of a complete data set in `out_dir`, or None if there is none."""
    try:
        return json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class _GzipWriter:
    """A single-member gzip file (no name, mtime 0) compressed on a background thread.

    zlib releases the GIL, so compression overlaps with building the next chunk of text.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=3)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                self._file.write(self._compressor.compress(data))
            self._file.write(self._compressor.flush())
        except BaseException as exc:  # re-raised in the writing thread
            self._error = exc
            while self._queue.get() is not None:
                pass

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(data)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._file.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> _GzipWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
