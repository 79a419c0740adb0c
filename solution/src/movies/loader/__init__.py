"""The IMDb loader: source (download or folder), read (TSV to Arrow), transform, write (COPY, swap).

Never imports Flask or the API: it runs as its own process (`movies load`).
"""

from movies.loader.errors import (
    FormatError,
    LoadError,
    LoadInProgressError,
    ShrinkError,
    SourceError,
)
from movies.loader.pipeline import run_load
from movies.loader.report import LoadReport
from movies.loader.write import LOAD_LOCK

__all__ = [
    "LOAD_LOCK",
    "FormatError",
    "LoadError",
    "LoadInProgressError",
    "LoadReport",
    "ShrinkError",
    "SourceError",
    "run_load",
]
