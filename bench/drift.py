"""Drift benchmark: PSI (binning + PSI) and KS/Wasserstein on wide, large data, against a reference.

Generates seeded data (default 1,000,000 rows x 20 features, half of them shifted), times
``monitoring.drift`` and a well-known drift library on the same data (Evidently's PSI, KS and
normed Wasserstein stat tests, or SciPy's ``ks_2samp``/``wasserstein_distance`` when Evidently
is not installed), prints the times and the ratio, and checks that the numbers agree. PSI is
compared on the *same bins* (Evidently's own Sturges bins over both samples). It is a benchmark
that prints figures, not a test; it never downloads anything.

Run: .venv/bin/python bench/drift.py [--rows 1000000] [--features 20] [--seed 42]
                                     [--reference auto|evidently|scipy] [--workers N]
     .venv/bin/python bench/drift.py --histograms   # drift_report from live histograms

Evidently lives in its own virtual environment (same numpy and scipy as the project), and the
benchmark runs under that interpreter so both sides are timed in the same run:
  python3 -m venv /work/bench-venvs/evidently
  /work/bench-venvs/evidently/bin/pip install "evidently>=0.7" "pandas<3" django==<the project's> \
      numpy==<the project's> scipy==<the project's>
  flock /work/brief/bench.lock /work/bench-venvs/evidently/bin/python bench/drift.py
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

try:
    from monitoring import drift
except ModuleNotFoundError:  # run as a script from a checkout: the repo root is not on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from monitoring import drift

# Our PSI smooths every bin (eps=1e-4 added, renormalised); Evidently floors empty bins only, at
# 1e-4 or (when some bin holds <= 0.01%) at 1e-6 of the smallest share, without renormalising.
# Where no bin is empty the two differ by the eps renormalisation only (~0.1%).
PSI_ABS_TOLERANCE = 5e-3
PSI_REL_TOLERANCE = 0.02


def make_data(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Reference and current matrices (column-major), and which features were shifted."""
    rng = np.random.default_rng(seed)
    ref = np.empty((rows, features), order="F")
    cur = np.empty((rows, features), order="F")
    shifted = [i % 2 == 1 for i in range(features)]
    for j in range(features):
        # Mix of shapes: normal, lognormal (skewed), uniform; shifts in mean and in scale.
        kind = j % 3
        if kind == 0:
            ref[:, j] = rng.normal(0.0, 1.0, rows)
            cur[:, j] = rng.normal(0.5 if shifted[j] else 0.0, 1.0, rows)
        elif kind == 1:
            ref[:, j] = rng.lognormal(0.0, 0.5, rows)
            cur[:, j] = rng.lognormal(0.0, 0.7 if shifted[j] else 0.5, rows)
        else:
            ref[:, j] = rng.uniform(0.0, 10.0, rows)
            cur[:, j] = rng.uniform(1.0 if shifted[j] else 0.0, 10.0, rows)
    return ref, cur, shifted


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def ours(ref: np.ndarray, cur: np.ndarray, bins: int, workers: int | None) -> dict[str, np.ndarray]:
    """What CI evaluation does: baseline quantile bins, live binning, PSI, KS and Wasserstein."""
    result = drift.compare_sample_columns(ref, cur, bins, max_workers=workers)
    return {
        "psi": result.psi,
        "ks": result.ks_statistic,
        "ks_p": result.ks_pvalue,
        "wasserstein": result.wasserstein,
    }


def histograms(features: int, bins: int, seed: int, iterations: int) -> int:
    """Time the canary/tile drift evaluation from live histograms: `live_counts_of` (a source's
    per-bucket counts back to cumulative `le` buckets) + `drift_report` (+ `as_dict`, which the
    canary analysis stores as evidence), for `features` numeric features of `bins` bins."""
    from monitoring.sources.base import FeatureCounts, NumericFeatureCounts, VersionKey

    rng = np.random.default_rng(seed)
    profile = drift.profile_from_samples(rng.normal(size=(20_000, features)), bins)
    live = rng.normal(0.2, 1.0, size=(5_000, features))
    numeric = {}
    for j in range(features):
        edges = np.asarray(profile["features"][f"f{j}"]["bin_edges"])
        counts = drift.bin_counts(live[:, j], edges).astype(float).tolist()
        bounds = (*edges[1:-1].tolist(), float("inf"))
        numeric[f"f{j}"] = NumericFeatureCounts(upper_bounds=bounds, counts=tuple(counts))
    found = FeatureCounts(key=VersionKey("m", 1), window_seconds=300.0, end=0.0, numeric=numeric)
    thresholds = drift.DriftThresholds()
    ref_counts = np.array([profile["features"][f"f{j}"]["counts"] for j in range(features)])
    cur_counts = np.array([numeric[f"f{j}"].counts for j in range(features)])
    cases = {
        "tile: live_counts_of + drift_report": lambda: drift.drift_report(
            profile, drift.live_counts_of(found), thresholds
        ),
        "canary: the same + report.as_dict()": lambda: drift.drift_report(
            profile, drift.live_counts_of(found), thresholds
        ).as_dict(),
        "arithmetic only: psi_many on the counts": lambda: drift.psi_many(ref_counts, cur_counts),
    }
    print(f"{features} numeric features x {bins} bins, {iterations:,} evaluations each")
    for label, fn in cases.items():
        for _ in range(50):
            fn()
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        times.sort()
        median, p99 = times[len(times) // 2], times[int(len(times) * 0.99)]
        print(f"  {label:42s} median {median * 1e3:6.3f} ms  p99 {p99 * 1e3:6.3f} ms")
    return 0


def evidently_reference(ref: np.ndarray, cur: np.ndarray) -> dict[str, np.ndarray]:
    import pandas as pd
    from evidently.legacy.calculations.stattests import (
        ks_stat_test,
        psi_stat_test,
        wasserstein_stat_test,
    )
    from evidently.legacy.core import ColumnType

    n = ref.shape[1]
    psi, ks_p, w_norm = np.empty(n), np.empty(n), np.empty(n)
    for j in range(n):
        r, c = pd.Series(ref[:, j]), pd.Series(cur[:, j])
        psi[j] = psi_stat_test(r, c, ColumnType.Numerical, None).drift_score
        ks_p[j] = ks_stat_test(r, c, ColumnType.Numerical, None).drift_score
        w_norm[j] = wasserstein_stat_test(r, c, ColumnType.Numerical, None).drift_score
    return {"psi": psi, "ks_p": ks_p, "wasserstein_norm": w_norm}


def scipy_reference(ref: np.ndarray, cur: np.ndarray) -> dict[str, np.ndarray]:
    n = ref.shape[1]
    ks, ks_p, w = np.empty(n), np.empty(n), np.empty(n)
    for j in range(n):
        result = stats.ks_2samp(ref[:, j], cur[:, j], method="asymp")
        ks[j], ks_p[j] = result.statistic, result.pvalue
        w[j] = stats.wasserstein_distance(ref[:, j], cur[:, j])
    return {"ks": ks, "ks_p": ks_p, "wasserstein": w}


def counts_on_evidently_bins(ref: np.ndarray, cur: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Our binning on the bins Evidently uses (Sturges, equal width, over both samples)."""
    out = []
    for j in range(ref.shape[1]):
        edges = np.histogram_bin_edges(np.concatenate([ref[:, j], cur[:, j]]), bins="sturges")
        out.append((drift.bin_counts(ref[:, j], edges), drift.bin_counts(cur[:, j], edges)))
    return out


def evidently_proportions(ref: np.ndarray, cur: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Evidently's binned proportions before it floors empty bins."""
    import pandas as pd
    from evidently.legacy.calculations.stattests.utils import get_binned_data
    from evidently.legacy.core import ColumnType

    return [
        get_binned_data(pd.Series(ref[:, j]), pd.Series(cur[:, j]), ColumnType.Numerical, 30, False)
        for j in range(ref.shape[1])
    ]


def agree(a: np.ndarray, b: np.ndarray, rel: float, abs_: float) -> tuple[bool, float]:
    diff = np.abs(a - b)
    return bool(np.all(diff <= abs_ + rel * np.abs(b))), float(diff.max())


def pick_reference(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import evidently  # noqa: F401
    except ImportError:
        return "scipy"
    return "evidently"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reference", choices=["auto", "evidently", "scipy"], default="auto")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: CPUs)")
    parser.add_argument("--histograms", action="store_true", help="time drift_report instead")
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    if args.histograms:
        return histograms(args.features, args.bins, args.seed, args.iterations)

    reference = pick_reference(args.reference)
    gen_s, (ref, cur, shifted) = timed(lambda: make_data(args.rows, args.features, args.seed))
    print(
        f"data: {args.rows:,} rows x {args.features} features per side, "
        f"{sum(shifted)} shifted, seed {args.seed} (generated in {gen_s:.1f}s)"
    )

    ours_s, mine = timed(lambda: ours(ref, cur, args.bins, args.workers))
    print(f"monitoring.drift  PSI (quantile bins) + KS + Wasserstein: {ours_s:6.2f}s")
    scipy_s, sp = timed(lambda: scipy_reference(ref, cur))
    print(f"scipy             ks_2samp + wasserstein_distance:        {scipy_s:6.2f}s")

    ok = True
    ks_ok, ks_diff = agree(mine["ks"], sp["ks"], rel=1e-12, abs_=1e-12)
    w_ok, w_diff = agree(mine["wasserstein"], sp["wasserstein"], rel=1e-9, abs_=1e-12)
    print(
        f"  vs scipy: KS agree={ks_ok} (max |diff| {ks_diff:.2e}), "
        f"Wasserstein agree={w_ok} (max |diff| {w_diff:.2e}), "
        f"speed-up x{scipy_s / ours_s:.2f}"
    )
    ok &= ks_ok and w_ok

    if reference == "evidently":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev_s, ev = timed(lambda: evidently_reference(ref, cur))
        print(f"evidently         psi + ks + wasserstein_norm stat tests:  {ev_s:6.2f}s")
        shared = counts_on_evidently_bins(ref, cur)
        same_bins = np.array([drift.psi(r, c) for r, c in shared])
        # Same bins, same counts: our binning must reproduce Evidently's proportions exactly.
        theirs = evidently_proportions(ref, cur)
        bins_diff = max(
            float(np.abs(r / r.sum() - p).max() + np.abs(c / c.sum() - q).max())
            for (r, c), (p, q) in zip(shared, theirs, strict=True)
        )
        # PSI must agree where no bin is empty; elsewhere the smoothing differs (see top).
        full = np.array([bool(np.all(r > 0) and np.all(c > 0)) for r, c in shared])
        psi_ok, psi_diff = agree(
            same_bins[full], ev["psi"][full], PSI_REL_TOLERANCE, PSI_ABS_TOLERANCE
        )
        smoothing_diff = float(np.abs(same_bins - ev["psi"])[~full].max(initial=0.0))
        ksp_ok, ksp_diff = agree(mine["ks_p"], ev["ks_p"], rel=1e-6, abs_=1e-12)
        w_norm = mine["wasserstein"] / ref.std(axis=0)
        wn_ok, wn_diff = agree(w_norm, ev["wasserstein_norm"], rel=1e-9, abs_=1e-12)
        print(
            f"  vs evidently: same bin proportions={bins_diff <= 1e-12} "
            f"(max |diff| {bins_diff:.1e}); PSI on the same bins, {int(full.sum())} features "
            f"with no empty bin: agree={psi_ok} (max |diff| {psi_diff:.1e}); "
            f"{int((~full).sum())} with empty bins differ by <= {smoothing_diff:.1e} "
            "(smoothing); "
            f"KS p-value agree={ksp_ok} (max |diff| {ksp_diff:.1e}); "
            f"normed Wasserstein agree={wn_ok} (max |diff| {wn_diff:.1e})"
        )
        print(f"  speed-up vs evidently: x{ev_s / ours_s:.2f}")
        ok &= bins_diff <= 1e-12 and psi_ok and ksp_ok and wn_ok
        ev_psi: np.ndarray | None = ev["psi"]
    else:
        print("evidently not installed: scipy is the reference (install the 'bench' extra)")
        ev_psi = same_bins = None

    print(
        "\nfeature  shifted  PSI(ours,quantile)  PSI(ours,sturges)  PSI(evidently)      KS  "
        "Wasserstein"
    )
    for j in range(args.features):
        same = same_bins[j] if same_bins is not None else np.nan
        print(
            f"f{j:<7d} {'yes' if shifted[j] else 'no':7s}  {mine['psi'][j]:18.4f}  {same:17.4f}  "
            f"{(ev_psi[j] if ev_psi is not None else np.nan):14.4f}  {mine['ks'][j]:6.4f}  "
            f"{mine['wasserstein'][j]:11.4f}"
        )
    flagged = [bool(v >= 0.1) for v in mine["psi"]]
    print(f"\nPSI >= 0.1 flags exactly the shifted features: {flagged == shifted}")
    print(f"numbers agree with the reference: {ok}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
