"""Prometheus's counter and histogram semantics as the local scrape source reimplements them."""

from __future__ import annotations

import math

import pytest

from monitoring.sources.semantics import counter_increase, decumulate, histogram_quantile

BUCKETS = [(0.1, 50.0), (0.25, 80.0), (0.5, 95.0), (1.0, 100.0), (math.inf, 100.0)]


def test_it_interpolates_linearly_inside_the_bucket():
    # Rank 50 is the top of the first bucket; rank 65 is half-way through (0.1, 0.25].
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(0.1)
    assert histogram_quantile(0.65, BUCKETS) == pytest.approx(0.175)
    assert histogram_quantile(0.25, BUCKETS) == pytest.approx(0.05)


def test_a_rank_in_the_inf_bucket_answers_the_highest_finite_bound():
    buckets = [(0.1, 10.0), (0.5, 20.0), (math.inf, 40.0)]
    assert histogram_quantile(0.99, buckets) == 0.5


def test_it_has_no_answer_without_observations_or_an_inf_bucket():
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))
    assert math.isnan(histogram_quantile(0.5, [(0.1, 3.0), (0.5, 4.0)]))
    assert math.isnan(histogram_quantile(0.5, []))


def test_quantiles_outside_zero_to_one_are_infinite():
    assert histogram_quantile(-0.1, BUCKETS) == -math.inf
    assert histogram_quantile(1.5, BUCKETS) == math.inf


def test_it_repairs_counts_that_went_down_like_prometheus():
    # A bucket below its predecessor (a scrape racing an observation) is raised to it.
    buckets = [(0.1, 10.0), (0.25, 8.0), (0.5, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)


def test_a_counter_reset_counts_the_new_value_as_increase():
    assert counter_increase([10, 25, 4, 9]) == 15 + 4 + 5
    assert counter_increase([3]) == 0


def test_decumulate_turns_cumulative_buckets_into_per_bucket_counts():
    bounds, counts = decumulate([(math.inf, 10.0), (1.0, 7.0), (0.5, 2.0)])
    assert bounds == (0.5, 1.0, math.inf)
    assert counts == (2.0, 5.0, 3.0)
