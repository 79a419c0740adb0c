"""The loader's error family: every failure the CLI reports as one line and a non-zero exit."""

from __future__ import annotations


class LoadError(Exception):
    """A load failed; the message says what failed and where. The previous data is untouched."""


class SourceError(LoadError):
    """The source (URL or folder) or one of its files cannot be reached or is missing."""


class FormatError(LoadError):
    """A file is not an IMDb TSV file: wrong header, not gzip, truncated, not UTF-8, ..."""


class ShrinkError(LoadError):
    """The new data would shrink the movie table drastically; `--force` overrides."""


class LoadInProgressError(LoadError):
    """Another load holds the load lock."""
