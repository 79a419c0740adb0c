"""What a load did, as numbers and as one screen of text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

PHASES = ("download", "parse", "copy", "index", "swap")


@dataclass
class LoadReport:
    """Counts and timings of one load. `skipped` maps a reason to the number of rows skipped."""

    source: str
    basics_last_modified: datetime | None = None
    ratings_last_modified: datetime | None = None
    rows_read: int = 0
    ratings_rows_read: int = 0
    movies: int = 0
    rated_movies: int = 0
    genre_links: int = 0
    ratings_without_movie: int = 0
    previous_movies: int = 0
    mean_rating: float | None = None  # C of the weighted rating (movies.score)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def skipped_rows(self) -> int:
        """All rows skipped, over both files and every reason."""
        return sum(self.skipped.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.get(phase, 0.0) for phase in PHASES)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count `count` rows skipped for `reason` (zero counts are not recorded)."""
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count

    def render(self) -> str:
        """The report as a few aligned lines for a terminal."""

        def date(value: datetime | None) -> str:
            return value.isoformat(timespec="seconds") if value else "unknown"

        lines = [
            f"loaded IMDb movies from {self.source}",
            f"  files modified           basics {date(self.basics_last_modified)}, "
            f"ratings {date(self.ratings_last_modified)}",
            f"  rows read                {self.rows_read:,} basics, "
            f"{self.ratings_rows_read:,} ratings",
            f"  movies                   {self.movies:,} (previously {self.previous_movies:,})",
            f"  rated movies             {self.rated_movies:,}",
            f"  genre links              {self.genre_links:,}",
            f"  skipped rows             {self.skipped_rows:,}",
        ]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"    {reason:<34} {count:,}")
        lines.append(f"  ratings without a movie  {self.ratings_without_movie:,}")
        timings = ", ".join(f"{phase} {self.seconds.get(phase, 0.0):.2f}" for phase in PHASES)
        lines.append(f"  seconds                  {timings}, total {self.total_seconds:.2f}")
        return "\n".join(lines)
