"""The weighted rating (`score`, `sort=-score`): IMDb's published Bayesian average.

    score = v / (v + m) · R  +  m / (v + m) · C  =  (v·R + m·C) / (v + m)

    R  the movie's average rating
    v  its number of votes (a rated movie without a vote count counts as 0 votes)
    m  MIN_VOTES: 25,000, the constant IMDb uses for its Top 250
    C  the mean rating of the rated IMDb movies of the loaded dataset (dataset_load.mean_rating)

A movie with few votes is pulled towards C, one with many keeps about its own rating: a 10.0 from
5 votes scores about C, far below a 9.3 from 2.9 million votes. Unrated movies have no score
(NULL, sorted last). Before any load C is unknown, so user movies created then have no score
until the next load rescores them.

The loader computes the score of every IMDb movie (vectorised, `loader.transform`) and rescores
the user movies with the new C; POST /movies scores a new movie with the current C (this module).
Scores are stored rounded to SCALE decimals (`numeric(6, 4)`), so a cursor carries them exactly.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

MIN_VOTES = 25_000
SCALE = 4
_QUANTUM = Decimal(1).scaleb(-SCALE)


def weighted_rating(
    rating: Decimal | float | None, votes: int | None, mean_rating: float | None
) -> Decimal | None:
    """The score of one movie, rounded to SCALE decimals; None when unrated or C is unknown."""
    if rating is None or mean_rating is None:
        return None
    v = float(votes or 0)
    value = (v * float(rating) + MIN_VOTES * mean_rating) / (v + MIN_VOTES)
    return Decimal(repr(value)).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
