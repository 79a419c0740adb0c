"""Read an IMDb TSV file (gzip or plain) as a stream of Arrow record batches of strings.

IMDb's format has no quoting and no escapes: a tab separates fields, a newline ends a row, `\\N`
is NULL and nothing else is. So the parser runs with quoting and escaping off, every column read
as a string, and only `\\N` as a null value ("NA", "null", "None", "NaN" and "" stay strings).
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

import pyarrow as pa
import pyarrow.compute as pc
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
BLOCK_BYTES = 4 << 20
MAX_HEADER_BYTES = 64 << 10
LOGGED_BAD_ROWS = 5


class TsvReader:
    """Iterate over the rows of one IMDb file in Arrow batches; count what was skipped.

    `rows_read` counts every data line (good or bad); `bad_rows` those with the wrong number of
    fields. Both are final once iteration ends.
    """

    def __init__(
        self,
        path: Path,
        columns: tuple[str, ...],
        *,
        include: tuple[str, ...] | None = None,
        keep: tuple[str, str] | None = None,
        block_bytes: int = BLOCK_BYTES,
    ) -> None:
        self.path = path
        self.columns = columns
        self.include = include or columns
        self.keep = keep
        self.block_bytes = block_bytes
        self.rows_read = 0
        self.bad_rows = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yield record batches of the included columns, all strings.

        With `keep=(column, value)` only the rows whose `column` equals `value` are yielded (and
        checked for UTF-8); fields are read as bytes first so the dropped rows cost no decoding.

        :raise FormatError: if the file is empty, not gzip though named .gz, truncated, not UTF-8,
            or its header is not IMDb's.
        """
        for batch in self.parsed_batches():
            yield self.kept(batch)

    def parsed_batches(self) -> Iterator[pa.RecordBatch]:
        """Yield the parsed batches as they come, every field still bytes; `kept` finishes each.

        Parsing is the serial part; a caller may run `kept` (and its own work) on another thread.

        :raise FormatError: as `batches`, except for UTF-8 (which `kept` checks).
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

    def kept(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The rows of a parsed batch that `keep` selects, decoded to UTF-8 strings.

        :raise FormatError: naming the file and the first value that is not UTF-8.
        """
        if self.keep is not None:
            column, value = self.keep
            wanted = pc.equal(batch.column(column), pa.scalar(value.encode(), pa.binary()))
            batch = batch.filter(wanted, null_selection_behavior="drop")
        schema = pa.schema([(name, pa.string()) for name in self.include])
        return _decoded(self.path, batch, schema)

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


def _decoded(path: Path, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with its byte columns checked and cast to UTF-8 strings.

    :raise FormatError: naming the file and the first offending value.
    """
    try:
        return batch.cast(schema)
    except pa.ArrowInvalid as exc:
        error = exc
        for name in batch.schema.names:
            for value in batch.column(name).to_pylist():
                try:
                    (value or b"").decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise FormatError(
                        f"{path}: {name} is not valid UTF-8: {value[:120]!r} ({exc.reason})"
                    ) from None
        raise FormatError(f"{path}: cannot parse: {error}") from error


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
