"""Read an IMDb TSV file (gzip or plain) as a stream of pandas DataFrames of raw fields.

Parsing is pyarrow's CSV reader (pandas' own readers cannot turn quoting off with the Arrow
engine): IMDb's format has no quoting and no escapes: a tab separates fields, a newline ends a
row, `\\N` is NULL and nothing else is. So the parser runs with quoting and escaping off, every
column read as bytes, and only `\\N` as a null value ("NA", "null", "None", "NaN" and "" stay).
Every few parsed blocks become one DataFrame of Arrow-backed columns, without a copy.
A row with the wrong number of fields is skipped and counted, never joined with its neighbours.

Decompression runs in a background thread (ISA-L, which releases the GIL) so it overlaps with
parsing; the parser streams fixed-size blocks, so memory stays flat whatever the file size.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
from isal import isal_zlib

from movies.loader.errors import FormatError

log = logging.getLogger(__name__)

BASICS_COLUMNS = (
    "tconst",
    "titleType",
    "primaryTitle",
    "originalTitle",
    "isAdult",
    "startYear",
    "endYear",
    "runtimeMinutes",
    "genres",
)
RATINGS_COLUMNS = ("tconst", "averageRating", "numVotes")
GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 4 << 20  # the parser reads blocks ahead: their size bounds its memory
FRAME_BLOCKS = 4  # blocks per DataFrame: pandas costs a little per call, whatever the rows
MAX_HEADER_BYTES = 64 << 10
LOGGED_BAD_ROWS = 5


class TsvReader:
    """Iterate over the rows of one IMDb file in DataFrames; count what was skipped.

    `rows_read` counts every data line (good or bad); `bad_rows` those with the wrong number of
    fields. Both are final once iteration ends.
    """

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        *,
        include: tuple[str, ...] | None = None,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self.path = path
        self.columns = columns
        self.include = include or columns
        self.block_bytes = block_bytes
        self.rows_read = 0
        self.bad_rows = 0

    def frames(self) -> Iterator[pd.DataFrame]:
        """Yield the included columns of every FRAME_BLOCKS parsed blocks as a DataFrame of raw
        bytes.

        The columns are Arrow-backed (`pd.ArrowDtype(pa.binary())`, the parser's buffers, not a
        copy); `\\N` is NULL. Bytes, not text: rows the loader drops cost no decoding, and a bad
        byte is a row to skip (`transform.decode_text`), not a file to refuse.

        :raise FormatError: if the file is empty, not gzip though named .gz, truncated, or its
            header is not IMDb's.
        """
        group: list[pa.RecordBatch] = []
        for batch in self.batches():
            group.append(batch)
            if len(group) == FRAME_BLOCKS:
                yield _frame(group)
                group = []
        if group:
            yield _frame(group)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the parsed record batches, every field bytes (`frames` wraps them).

        :raise FormatError: as `frames`.
        """
        stream = open_stream(self.path)
        try:
            check_header(self.path, stream.readline(MAX_HEADER_BYTES), self.columns)
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    column_names=list(self.columns), block_size=self.block_bytes
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter="\t",
                    quote_char=False,
                    escape_char=False,
                    newlines_in_values=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=self._skip_row,
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.binary() for name in self.columns},
                    include_columns=list(self.include),
                    null_values=["\\N"],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            for batch in reader:
                self.rows_read += batch.num_rows
                yield batch
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return  # header only: no rows
            raise FormatError(f"{self.path}: cannot parse: {exc}") from exc
        except (OSError, EOFError, ValueError, isal_zlib.error) as exc:
            raise FormatError(f"{self.path}: cannot read: {exc}") from exc
        finally:
            stream.close()

    def _skip_row(self, row: pcsv.InvalidRow) -> str:
        self.bad_rows += 1
        self.rows_read += 1
        if self.bad_rows <= LOGGED_BAD_ROWS:
            log.warning(
                "%s: skipping a row with %d fields instead of %d: %.200r",
                self.path.name,
                row.actual_columns,
                row.expected_columns,
                row.text,
            )
        return "skip"


def _frame(batches: list[pa.RecordBatch]) -> pd.DataFrame:
    """One DataFrame over `batches` (their buffers, not a copy: each column is chunked)."""
    return pa.Table.from_batches(batches).to_pandas(types_mapper=pd.ArrowDtype)


def open_stream(path: Path) -> BinaryIO:
    """Open `path` for reading decompressed bytes (gzip is detected by its magic number).

    :raise FormatError: if the file cannot be opened, or a file named .gz is not gzip.
    """
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise FormatError(f"{path}: cannot open: {exc}") from exc
    magic = raw.read(2)
    raw.seek(0)
    if magic == GZIP_MAGIC:
        from isal import igzip_threaded

        raw.close()  # the gzip reader opens the file itself (and closes it)
        return igzip_threaded.open(path, "rb", threads=1)
    if path.suffix == ".gz":
        raw.close()
        raise FormatError(f"{path}: not a gzip file (it is named .gz)")
    return io.BufferedReader(raw, buffer_size=1 << 20)


def check_header(path: Path, line: bytes, columns: tuple[str, ...]) -> None:
    """Check that `line` is exactly IMDb's header for this file.

    :raise FormatError: naming the file and what differs.
    """
    expected = "\t".join(columns)
    if not line:
        raise FormatError(f"{path}: file is empty (expected the header line {expected!r})")
    text = line.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
    if text == expected:
        return
    if not line.endswith(b"\n") and len(line) >= MAX_HEADER_BYTES:
        raise FormatError(f"{path}: line 1 is not a header (no line end in the first 64 KiB)")
    got = text.split("\t")
    missing = [name for name in columns if name not in got]
    extra = [name for name in got if name not in columns]
    if missing or extra:
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(repr(e[:40]) for e in extra[:5])}" if extra else "",
            )
            if part
        )
    else:
        detail = "columns in the wrong order"
    raise FormatError(f"{path}: line 1: header is not IMDb's ({detail}); expected {expected!r}")
