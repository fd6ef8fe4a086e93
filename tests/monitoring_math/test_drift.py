"""Drift maths on known distributions: PSI, JS distance, KS/Wasserstein, profiles, reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitoring import drift
from monitoring.drift import DriftStatus, DriftThresholds
from monitoring.sources.base import FeatureCounts, NumericFeatureCounts, VersionKey

N = 20_000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def reference(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(0.0, 1.0, N)


def _psi_from_samples(ref: np.ndarray, cur: np.ndarray) -> float:
    edges = drift.quantile_bin_edges(ref, bins=10)
    return drift.psi(drift.bin_counts(ref, edges), drift.bin_counts(cur, edges))


# PSI -----------------------------------------------------------------------------------------


def test_identical_counts_have_zero_psi() -> None:
    assert drift.psi([10, 20, 30, 0], [10, 20, 30, 0]) == pytest.approx(0.0, abs=1e-15)


def test_psi_does_not_depend_on_sample_size_only_on_proportions() -> None:
    assert drift.psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-15)


def test_no_shift_gives_psi_below_warn(rng: np.random.Generator, reference: np.ndarray) -> None:
    value = _psi_from_samples(reference, rng.normal(0.0, 1.0, N))
    assert 0 <= value < 0.1


def test_small_shift_lands_between_warn_and_alert(
    rng: np.random.Generator, reference: np.ndarray
) -> None:
    # A 0.4 sd mean shift: PSI ~ 0.4^2 = 0.16 for fine bins of a normal.
    value = _psi_from_samples(reference, rng.normal(0.4, 1.0, N))
    assert 0.1 < value < 0.25


def test_large_shift_gives_psi_above_alert(rng: np.random.Generator, reference: np.ndarray) -> None:
    assert _psi_from_samples(reference, rng.normal(1.0, 1.0, N)) > 0.25


def test_empty_bins_give_a_finite_psi() -> None:
    value = drift.psi([100, 0, 50, 0], [0, 80, 0, 20])
    assert math.isfinite(value) and value > 0.25


def test_psi_matches_the_hand_computed_formula_without_empty_bins() -> None:
    ref, cur = np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])
    expected = float(np.sum((ref - cur) * np.log(ref / cur)))
    assert drift.psi(ref * 1000, cur * 1000, eps=1e-12) == pytest.approx(expected, rel=1e-9)


def test_psi_many_equals_psi_row_by_row(rng: np.random.Generator) -> None:
    ref = rng.integers(0, 500, size=(20, 10))
    cur = rng.integers(0, 500, size=(20, 10))
    batched = drift.psi_many(ref, cur)
    assert batched.shape == (20,)
    assert batched == pytest.approx([drift.psi(r, c) for r, c in zip(ref, cur, strict=True)])


def test_psi_rejects_mismatched_bins_and_negative_counts() -> None:
    with pytest.raises(ValueError, match="shape"):
        drift.psi([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="negative"):
        drift.psi([1, -2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="no observations"):
        drift.psi([0, 0], [1, 2])


# Jensen-Shannon --------------------------------------------------------------------------------


def test_identical_categories_have_zero_js_distance() -> None:
    assert drift.js_distance({"a": 5, "b": 10}, {"b": 20, "a": 10}) == pytest.approx(0.0, abs=1e-7)


def test_small_categorical_wobble_is_below_js_warn() -> None:
    assert drift.js_distance({"a": 500, "b": 300, "c": 200}, {"a": 480, "b": 310, "c": 210}) < 0.1


def test_large_categorical_shift_is_above_js_alert() -> None:
    value = drift.js_distance({"a": 800, "b": 150, "c": 50}, {"a": 100, "b": 200, "c": 700})
    assert value > 0.2


def test_unseen_categories_count_as_drift_and_stay_bounded() -> None:
    assert drift.js_distance({"a": 10}, {"__other__": 10}) == pytest.approx(1.0)
    value = drift.js_distance({"a": 90, "b": 10}, {"a": 90, "b": 5, "__other__": 5})
    assert 0 < value < 1


# Raw samples -----------------------------------------------------------------------------------


def test_ks_and_wasserstein_agree_with_scipy(rng: np.random.Generator) -> None:
    ref = rng.lognormal(0.0, 0.7, 5_000)
    cur = rng.lognormal(0.1, 0.8, 3_000)
    result = drift.compare_samples(ref, cur)
    expected_ks = stats.ks_2samp(ref, cur, method="asymp")
    assert result.ks_statistic == pytest.approx(expected_ks.statistic, rel=1e-12)
    assert result.ks_pvalue == pytest.approx(expected_ks.pvalue, rel=1e-6)
    assert result.wasserstein == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9)
    assert drift.ks_statistic(ref, cur) == result.ks_statistic
    assert drift.wasserstein(ref, cur) == result.wasserstein


def test_ks_and_wasserstein_handle_ties_like_scipy() -> None:
    ref = np.array([1, 1, 2, 2, 2, 3, 5], dtype=float)
    cur = np.array([1, 2, 2, 3, 3, 3, 4, 5, 5], dtype=float)
    assert drift.ks_statistic(ref, cur) == pytest.approx(stats.ks_2samp(ref, cur).statistic)
    assert drift.wasserstein(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur))


def test_identical_samples_have_zero_ks_and_wasserstein(rng: np.random.Generator) -> None:
    x = rng.normal(size=1_000)
    assert drift.ks_statistic(x, x.copy()) == 0.0
    assert drift.wasserstein(x, x[::-1]) == 0.0


def test_raw_sample_metrics_reject_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        drift.ks_statistic([1.0, float("nan")], [1.0, 2.0])


# Binning and profiles --------------------------------------------------------------------------


def test_bin_counts_follow_prometheus_le_buckets() -> None:
    edges = [0.0, 1.0, 2.0, 3.0]  # le buckets 1.0, 2.0, +Inf
    counts = drift.bin_counts([-5.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 99.0], edges)
    # x == le belongs to that bucket; outside values go to the end bins.
    assert counts.tolist() == [3, 2, 3]


def test_bin_counts_match_counts_from_cumulative_buckets(rng: np.random.Generator) -> None:
    x = rng.normal(size=1_000)
    edges = drift.quantile_bin_edges(x, bins=5)
    cumulative = {le: float(np.sum(x <= le)) for le in edges[1:-1]}
    cumulative["+Inf"] = float(x.size)
    assert drift.counts_from_cumulative(cumulative, edges).tolist() == (
        drift.bin_counts(x, edges).tolist()
    )


def test_quantile_edges_give_equal_bins_on_continuous_data(reference: np.ndarray) -> None:
    edges = drift.quantile_bin_edges(reference, bins=10)
    counts = drift.bin_counts(reference, edges)
    assert len(edges) == 11 and edges[0] == reference.min() and edges[-1] == reference.max()
    assert counts.min() >= N / 10 - 2 and counts.max() <= N / 10 + 2


def test_quantile_edges_are_deduplicated_on_tied_data() -> None:
    binary = np.array([0.0] * 70 + [1.0] * 30)
    edges = drift.quantile_bin_edges(binary, bins=10)
    assert edges.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert drift.bin_counts(binary, edges).tolist() == [70, 30, 0]


def test_profile_from_samples_has_the_stored_shape(rng: np.random.Generator) -> None:
    X = {
        "amount": rng.exponential(50.0, 500),
        "country": np.array(["fr", "de", "fr", "es"] * 125),
    }
    profile = drift.profile_from_samples(X, bins=4, predictions=np.array([0, 1] * 250))
    amount = profile["features"]["amount"]
    assert profile["rows"] == 500
    assert amount["type"] == "numeric"
    assert len(amount["counts"]) == len(amount["bin_edges"]) - 1
    assert sum(amount["counts"]) == 500
    assert profile["features"]["country"] == {
        "type": "categorical",
        "frequencies": {"fr": 250, "de": 125, "es": 125},
    }
    assert profile["prediction"]["type"] == "numeric"


def test_profile_from_a_matrix_names_columns() -> None:
    X = np.arange(20, dtype=float).reshape(10, 2)
    profile = drift.profile_from_samples(X, bins=2, feature_names=["a", "b"])
    assert set(profile["features"]) == {"a", "b"}


# Prometheus buckets ----------------------------------------------------------------------------


def test_counts_from_cumulative_rejects_buckets_that_do_not_match_the_profile() -> None:
    with pytest.raises(ValueError, match="do not match"):
        drift.counts_from_cumulative({"1": 3, "+Inf": 5}, [0.0, 1.0, 2.0, 3.0])


def test_counts_from_cumulative_requires_an_inf_bucket() -> None:
    with pytest.raises(ValueError, match="Inf"):
        drift.counts_from_cumulative({"1": 3, "2": 5})


def test_counts_from_increase_subtracts_scrapes_and_survives_a_reset() -> None:
    start = {"1": 10, "2": 15, "+Inf": 20}
    end = {"1": 14, "2": 25, "+Inf": 31}
    assert drift.counts_from_increase(start, end).tolist() == [4, 6, 1]
    after_restart = {"1": 2, "2": 3, "+Inf": 3}
    assert drift.counts_from_increase(start, after_restart).tolist() == [2, 1, 0]


# Reports ---------------------------------------------------------------------------------------


def _profile(rng: np.random.Generator) -> dict:
    X = {"x": rng.normal(0, 1, N), "y": rng.normal(5, 2, N), "c": np.array(["a", "b"] * (N // 2))}
    return drift.profile_from_samples(X, bins=10, predictions=np.array([0, 1, 1, 1] * (N // 4)))


def _live(profile: dict, samples: dict, prediction: dict) -> dict:
    features = {}
    for name, values in samples.items():
        spec = profile["features"][name]
        if spec["type"] == "numeric":
            features[name] = drift.bin_counts(values, spec["bin_edges"]).tolist()
        else:
            uniques, counts = np.unique(values, return_counts=True)
            features[name] = dict(zip(uniques.tolist(), counts.tolist(), strict=True))
    return {"features": features, "prediction": prediction}


def test_report_is_ok_without_drift_and_alerts_on_the_shifted_feature(
    rng: np.random.Generator,
) -> None:
    profile = _profile(rng)
    pred_edges = profile["prediction"]["bin_edges"]
    prediction = drift.bin_counts(np.array([0, 1, 1, 1] * 500), pred_edges).tolist()
    same = {"x": rng.normal(0, 1, 5_000), "y": rng.normal(5, 2, 5_000), "c": ["a", "b"] * 2_500}
    report = drift.drift_report(profile, _live(profile, same, prediction))
    assert report.status is DriftStatus.OK
    assert report.drifted_features == []

    shifted = dict(same, y=rng.normal(7, 2, 5_000))
    report = drift.drift_report(profile, _live(profile, shifted, prediction))
    assert report.status is DriftStatus.ALERT
    assert report.features["y"].status is DriftStatus.ALERT
    assert report.features["x"].status is DriftStatus.OK
    assert report.drifted_features == ["y"]
    stored = report.as_dict()
    assert stored["features"]["y"]["metric"] == "psi"
    assert stored["features"]["c"]["metric"] == "js_distance"
    assert sum(stored["features"]["y"]["cur_proportions"]) == pytest.approx(1.0)


def test_report_flags_prediction_drift(rng: np.random.Generator) -> None:
    profile = _profile(rng)
    same = {"x": rng.normal(0, 1, 5_000), "y": rng.normal(5, 2, 5_000), "c": ["a", "b"] * 2_500}
    edges = profile["prediction"]["bin_edges"]
    flipped = drift.bin_counts(np.array([0, 0, 0, 1] * 500), edges).tolist()
    report = drift.drift_report(profile, _live(profile, same, flipped))
    assert report.prediction is not None
    assert report.prediction.status is DriftStatus.ALERT
    assert report.status is DriftStatus.ALERT


def test_report_with_too_little_live_data_is_insufficient_never_ok(
    rng: np.random.Generator,
) -> None:
    profile = _profile(rng)
    few = {"x": rng.normal(0, 1, 50), "y": rng.normal(5, 2, 50), "c": ["a", "b"] * 25}
    report = drift.drift_report(profile, _live(profile, few, {}))
    assert report.status is DriftStatus.INSUFFICIENT_DATA
    assert all(f.value is None for f in report.features.values())
    lenient = drift.drift_report(profile, _live(profile, few, {}), DriftThresholds(min_count=10))
    assert lenient.features["x"].status is not DriftStatus.INSUFFICIENT_DATA


def test_report_treats_a_missing_live_feature_as_insufficient(rng: np.random.Generator) -> None:
    profile = _profile(rng)
    report = drift.drift_report(profile, {"features": {}})
    assert report.features["x"].status is DriftStatus.INSUFFICIENT_DATA
    assert report.status is DriftStatus.INSUFFICIENT_DATA


def test_report_accepts_cumulative_le_buckets() -> None:
    profile = {
        "features": {"x": {"type": "numeric", "bin_edges": [0, 1, 2, 3], "counts": [50, 30, 20]}},
        "rows": 100,
    }
    live = {"features": {"x": {"1": 500, "2": 800, "+Inf": 1000}}}
    report = drift.drift_report(profile, live)
    assert report.features["x"].value == pytest.approx(0.0, abs=1e-12)
    assert report.status is DriftStatus.OK


def _source_counts(**kwargs) -> FeatureCounts:
    return FeatureCounts(key=VersionKey("m", 2), window_seconds=60.0, end=0.0, **kwargs)


def test_a_source_s_feature_counts_become_the_report_s_live_counts() -> None:
    counts = _source_counts(
        numeric={"x": NumericFeatureCounts(upper_bounds=(1.0, 2.0, math.inf), counts=(5, 3, 2))},
        categorical={"colour": {"red": 7.0, "blue": 3.0}},
        prediction_classes={"0": 6.0, "1": 4.0},
    )
    assert drift.live_counts_of(counts) == {
        "features": {
            "x": {1.0: 5.0, 2.0: 8.0, math.inf: 10.0},
            "colour": {"red": 7.0, "blue": 3.0},
        },
        "prediction": {"0": 6.0, "1": 4.0},
    }
    assert drift.live_counts_of(_source_counts())["prediction"] is None


def test_live_counts_are_checked_against_the_profile_s_bins() -> None:
    profile = {
        "features": {"x": {"type": "numeric", "bin_edges": [0, 1, 2, 3], "counts": [50, 30, 20]}},
        "rows": 100,
    }
    same = NumericFeatureCounts(upper_bounds=(1.0, 2.0, math.inf), counts=(500, 300, 200))
    report = drift.drift_report(profile, drift.live_counts_of(_source_counts(numeric={"x": same})))
    assert report.features["x"].value == pytest.approx(0.0, abs=1e-12)
    other = NumericFeatureCounts(upper_bounds=(1.5, math.inf), counts=(500, 500))
    with pytest.raises(ValueError, match="do not match the baseline"):
        drift.drift_report(profile, drift.live_counts_of(_source_counts(numeric={"x": other})))


def test_worst_status_ranks_insufficient_data_above_warn() -> None:
    assert drift.worst_status([DriftStatus.OK, DriftStatus.WARN]) is DriftStatus.WARN
    assert (
        drift.worst_status([DriftStatus.WARN, DriftStatus.INSUFFICIENT_DATA])
        is DriftStatus.INSUFFICIENT_DATA
    )
    assert drift.worst_status([DriftStatus.INSUFFICIENT_DATA, DriftStatus.ALERT]) is (
        DriftStatus.ALERT
    )


# The batched report (numeric features compared together) ------------------------------------


def _random_report_inputs(rng: np.random.Generator) -> tuple[dict, dict]:
    """Profiles and live counts of every shape the report takes: continuous and tied data
    (fewer bins), several bin counts, empty baselines, cumulative buckets with the small negative
    bins `increase` gives, per-bin lists, missing and empty live histograms, categories."""
    features, live = {}, {}
    for j in range(int(rng.integers(1, 25))):
        name = f"f{j}"
        shape = rng.choice(["normal", "tied", "categorical", "empty"])
        if shape == "categorical":
            features[name] = {
                "type": "categorical",
                "frequencies": {c: int(rng.integers(0, 100)) for c in "abc"},
            }
            live[name] = {c: float(rng.integers(0, 200)) for c in "abcd"[: rng.integers(1, 5)]}
            continue
        x = rng.normal(size=int(rng.integers(5, 2_000))) * 10 ** rng.uniform(-5, 5)
        if shape == "tied":
            x = np.round(x)
        spec = drift.column_profile(x, int(rng.integers(1, 15)))
        if shape == "empty":
            spec["counts"] = [0] * len(spec["counts"])
        features[name] = spec
        edges = np.asarray(spec["bin_edges"])
        y = rng.normal(rng.uniform(-1, 1), 1, size=int(rng.integers(1, 3_000))) * (x.std() or 1)
        counts = drift.bin_counts(y, edges)
        form = rng.choice(["cumulative", "list", "missing", "no series"])
        if form == "cumulative":
            noisy = counts + rng.normal(0, 0.3, size=counts.size) * rng.integers(0, 2)
            les = [str(e) for e in edges[1:-1].tolist()] + ["+Inf"]
            live[name] = dict(zip(les, np.cumsum(noisy).tolist(), strict=True))
        elif form == "list":
            live[name] = counts.tolist()
        elif form == "no series":
            live[name] = {}
    profile = {"features": features, "prediction": {"type": "categorical", "frequencies": {"0": 5}}}
    return profile, {"features": live, "prediction": {"0": 50.0, "1": 90.0}}


def test_the_batched_report_gives_exactly_the_per_feature_numbers(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    compare_one = drift._compare_distribution
    for _ in range(300):
        profile, live = _random_report_inputs(rng)
        thresholds = DriftThresholds(min_count=int(rng.choice([1, 100])))
        expected = {
            name: compare_one(name, spec, live["features"].get(name), thresholds).as_dict()
            for name, spec in profile["features"].items()
        }

        def categorical_only(name, spec, live_counts, thresholds, compare_one=compare_one):
            assert spec["type"] == "categorical", f"{name} left the batched path"
            return compare_one(name, spec, live_counts, thresholds)

        monkeypatch.setattr(drift, "_compare_distribution", categorical_only)
        got = drift.drift_report(profile, live, thresholds).as_dict()["features"]
        monkeypatch.undo()
        # repr: equal to the last bit, and -0.0 is not 0.0.
        assert repr(got) == repr(expected)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, live: live.update(x={"1": 1, "2.5": 2, "+Inf": 3}), "do not match"),
        (lambda p, live: live.update(x={"1": 1, "2": 2}), "le=\\+Inf"),
        (lambda p, live: live.update(y=[1, 2]), "y: live has 2 bins"),
        (lambda p, live: live.update(y=[1, -2, 3]), "y live counts: counts must not be negative"),
        (lambda p, live: live.update(y=[1, math.nan, 3]), "y live counts: counts must be finite"),
        (lambda p, live: live.update(x={"1": 1, "2": math.inf, "+Inf": 3}), "must be finite"),
        (lambda p, live: p["y"].update(counts=[1, 2]), "y: baseline has 2 counts for 3 bins"),
        (lambda p, live: p["y"].update(counts=[1, -2, 3]), "y.counts: counts must not be neg"),
        (lambda p, live: p["x"].update(bin_edges=[0, 2, 1, 3]), "non-decreasing"),
        (lambda p, live: p["x"].update(bin_edges=[0, 1, 2, math.nan]), "must be finite"),
        (lambda p, live: p["x"].update(type="weird"), "x: unknown profile type"),
        # The first bad feature in the profile's order is the one reported.
        (
            lambda p, live: (live.update(y=[1, -2, 3]), p["x"].update(type="weird")),
            "x: unknown profile type",
        ),
    ],
)
def test_the_batched_report_rejects_what_the_per_feature_path_rejects(change, message) -> None:
    spec = {"type": "numeric", "bin_edges": [0, 1, 2, 3], "counts": [5, 3, 2]}
    profile = {"features": {"x": dict(spec), "y": dict(spec)}}
    live = {"x": {"1": 100, "2": 200, "+Inf": 300}, "y": [100, 100, 100]}
    change(profile["features"], live)
    with pytest.raises(ValueError, match=message):
        drift.drift_report(profile, {"features": live})


def test_feature_drift_as_dict_is_the_dataclass_fields_with_the_status_as_text() -> None:
    from dataclasses import asdict

    feature = drift.FeatureDrift(
        name="x",
        kind="numeric",
        metric="psi",
        value=0.2,
        status=DriftStatus.WARN,
        labels=["(-inf, 1]", "(1, +inf)"],
        ref_proportions=[0.5, 0.5],
        cur_proportions=[0.25, 0.75],
        ref_count=10.0,
        cur_count=200.0,
        reason="",
    )
    assert feature.as_dict() == {**asdict(feature), "status": "warn"}
    assert feature.as_dict()["labels"] is not feature.labels


# Raw samples: one sort per side, one merge ------------------------------------------------------


def _searchsorted_ks_and_wasserstein(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """The previous implementation: both ECDFs by binary search at every pooled value."""
    a, b = np.sort(ref), np.sort(cur)
    pooled = np.sort(np.concatenate([a, b]), kind="stable")
    gaps = np.abs(
        np.searchsorted(a, pooled, side="right") / a.size
        - np.searchsorted(b, pooled, side="right") / b.size
    )
    return float(gaps.max()), float(np.sum(gaps[:-1] * np.diff(pooled)))


@pytest.mark.parametrize("ties", ["continuous", "rounded", "few values", "constant"])
def test_merged_ks_and_wasserstein_equal_the_binary_search_ones_to_the_bit(
    rng: np.random.Generator, ties: str
) -> None:
    for _ in range(40):
        n, m = (int(v) for v in rng.integers(1, 3_000, size=2))
        ref, cur = rng.normal(size=n), rng.normal(rng.uniform(-1, 1), size=m)
        if ties == "rounded":
            ref, cur = np.round(ref, 1), np.round(cur, 1)
        elif ties == "few values":
            ref, cur = np.round(ref * 2), np.round(cur * 2)
        elif ties == "constant":
            ref, cur = np.full(n, 1.0), rng.choice([0.0, 1.0, 2.0], m)
        result = drift.compare_samples(ref, cur)
        expected = _searchsorted_ks_and_wasserstein(ref, cur)
        assert (result.ks_statistic, result.wasserstein) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_sample_columns_give_the_per_column_numbers(rng: np.random.Generator, workers: int) -> None:
    ref = np.asfortranarray(
        np.column_stack([rng.normal(size=4_000), np.round(rng.normal(size=4_000))])
    )
    cur = np.column_stack([rng.normal(0.3, 1, 3_000), np.round(rng.normal(0.5, 1, 3_000))])
    result = drift.compare_sample_columns(ref, cur, bins=10, max_workers=workers)
    for j in range(2):
        edges = drift.quantile_bin_edges(ref[:, j], 10)
        assert np.array_equal(result.bin_edges[j], edges)
        ref_counts, cur_counts = (
            drift.bin_counts(ref[:, j], edges),
            drift.bin_counts(cur[:, j], edges),
        )
        assert np.array_equal(result.ref_counts[j], ref_counts)
        assert np.array_equal(result.cur_counts[j], cur_counts)
        assert result.psi[j] == drift.psi(ref_counts, cur_counts)
        one = drift.compare_samples(ref[:, j], cur[:, j])
        assert (result.ks_statistic[j], result.ks_pvalue[j], result.wasserstein[j]) == (
            one.ks_statistic,
            one.ks_pvalue,
            one.wasserstein,
        )
    assert result.bin_edges[1].size < 11  # tied data: fewer bins, PSI still computed


def test_sample_columns_refuse_missing_values(rng: np.random.Generator) -> None:
    ref = rng.normal(size=(100, 2))
    ref[5, 1] = np.nan
    with pytest.raises(ValueError, match=r"column 1 .*NaN"):
        drift.compare_sample_columns(ref, rng.normal(size=(50, 2)))
