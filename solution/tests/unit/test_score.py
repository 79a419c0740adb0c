"""The weighted rating: the loader's vectorised form and the API's scalar form agree."""

from __future__ import annotations

import random
from decimal import Decimal

import pandas as pd
import pyarrow as pa

from movies.loader.transform import mean_rating, weighted_ratings
from movies.score import MIN_VOTES, weighted_rating


def test_few_votes_pull_towards_the_mean_many_votes_keep_the_rating() -> None:
    mean = 6.9
    assert weighted_rating(Decimal("10.0"), 5, mean) == Decimal("6.9006")
    assert weighted_rating(Decimal("9.3"), 2_900_000, mean) == Decimal("9.2795")
    assert weighted_rating(Decimal("8.0"), MIN_VOTES, mean) == Decimal("7.4500")


def test_no_rating_or_no_mean_means_no_score_and_no_votes_means_the_mean() -> None:
    assert weighted_rating(None, 1000, 6.9) is None
    assert weighted_rating(Decimal("7.0"), 1000, None) is None
    assert weighted_rating(Decimal("9.9"), None, 6.25) == Decimal("6.2500")
    assert weighted_rating(Decimal("9.9"), 0, 6.25) == Decimal("6.2500")


def test_loader_and_api_compute_the_same_scores() -> None:
    rng = random.Random(3)
    ratings = [rng.choice([None, f"{rng.randint(10, 100) / 10:.1f}"]) for _ in range(5000)]
    votes = [
        None if r is None else str(rng.choice([0, 5, rng.randint(0, 3_000_000)])) for r in ratings
    ]
    table = pa.table({"averageRating": pa.array(ratings), "numVotes": pa.array(votes)})
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    mean = mean_rating(frame)
    rated = [Decimal(r) for r in ratings if r is not None]
    assert abs(mean - float(sum(rated) / len(rated))) < 1e-9
    loader = pa.array(weighted_ratings(frame, mean)).to_pylist()
    for rating, vote, text in zip(ratings, votes, loader, strict=True):
        api = weighted_rating(rating and Decimal(rating), vote and int(vote), mean)
        assert (None if text is None else Decimal(text)) == api


def test_no_rated_movie_means_no_scores() -> None:
    table = pa.table(
        {"averageRating": pa.array([None], pa.string()), "numVotes": pa.array([None], pa.string())}
    )
    frame = table.to_pandas(types_mapper=pd.ArrowDtype)
    assert mean_rating(frame) is None
    assert pa.array(weighted_ratings(frame, None)).to_pylist() == [None]
