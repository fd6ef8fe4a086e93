"""Serving cost maths: resource rates, allocation cost over time, cost per prediction, budgets.

Pure functions over numbers and Kubernetes quantity strings (read by the runtime's grammar); it
must never import Django, read metrics or call a cloud billing API. Allocation follows OpenCost:
each replica is charged for max(request, usage) of CPU and memory (what it reserved, or more if
it used more) plus its GPUs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from deployments.runtime.k8s_objects import quantity_value

GIB = 2**30

Quantity = str | int | float


def parse_quantity(quantity: Quantity) -> float:
    """A Kubernetes quantity as a plain number: ``"250m"`` -> 0.25, ``"512Mi"`` -> 536870912.

    Strings follow the API server's own grammar (the runtime's `quantity_value`: one rule for
    what a quantity means); plain numbers are taken as they are. Negative, empty or malformed
    quantities raise ``ValueError``.
    """
    if isinstance(quantity, bool):
        raise ValueError("a quantity cannot be a boolean")
    if isinstance(quantity, int | float):
        value = float(quantity)
    else:
        value = _quantity_text_value(str(quantity).strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid quantity {quantity!r}")
    return value


@functools.lru_cache(maxsize=256)
def _quantity_text_value(text: str) -> float:
    # Configs repeat a handful of quantities ("250m", "512Mi"), and the monitoring overview
    # prices every visible deployment on each refresh: parse each distinct text once.
    return float(quantity_value(text))


def parse_cpu(quantity: Quantity) -> float:
    """CPU quantity in cores (vCPU): ``"250m"`` -> 0.25, ``"2"`` -> 2.0."""
    return parse_quantity(quantity)


def parse_memory_gib(quantity: Quantity) -> float:
    """Memory quantity in GiB: ``"512Mi"`` -> 0.5, ``"1G"`` -> 0.931. Plain numbers are bytes."""
    return parse_quantity(quantity) / GIB


@dataclass(frozen=True)
class CostRates:
    """Prices per hour of one vCPU, one GiB of memory and one GPU (any single currency)."""

    vcpu_hour: float
    gib_hour: float
    gpu_hour: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vcpu_hour", "gib_hour", "gpu_hour"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite, non-negative price")


def _cores(value: Quantity) -> float:
    return parse_cpu(value) if isinstance(value, str) else _non_negative(value, "cpu")


def _gib(value: Quantity) -> float:
    # Strings are Kubernetes quantities ("512Mi"); numbers are already GiB.
    return parse_memory_gib(value) if isinstance(value, str) else _non_negative(value, "memory")


def _non_negative(value: float, name: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite, non-negative number, got {value!r}")
    return number


def hourly_cost(
    cpu_request: Quantity,
    cpu_usage: Quantity,
    mem_request_gib: Quantity,
    mem_usage_gib: Quantity,
    gpus: float,
    replicas: float,
    rates: CostRates,
) -> float:
    """Cost per hour of a deployment: replicas x (max(cpu req, use) x vCPU rate +
    max(mem req, use) x GiB rate + GPUs x GPU rate).

    CPU is cores (or a quantity string such as ``"250m"``), memory GiB (or ``"512Mi"``); requests
    and usage are per replica.
    """
    cpu = max(_cores(cpu_request), _cores(cpu_usage))
    mem = max(_gib(mem_request_gib), _gib(mem_usage_gib))
    gpu = _non_negative(gpus, "gpus")
    n = _non_negative(replicas, "replicas")
    return n * (cpu * rates.vcpu_hour + mem * rates.gib_hour + gpu * rates.gpu_hour)


@dataclass(frozen=True)
class UsageSample:
    """One observation of a deployment at time ``t`` (seconds since epoch, or a datetime).

    Per-replica CPU in cores and memory in GiB; the sample holds until the next one.
    """

    t: float | datetime
    replicas: float
    cpu_request: float
    cpu_usage: float
    mem_request_gib: float
    mem_usage_gib: float
    gpus: float = 0.0


def _seconds(t: float | datetime) -> float:
    return t.timestamp() if isinstance(t, datetime) else float(t)


def window_cost(
    samples: Sequence[UsageSample],
    rates: CostRates,
    end: float | datetime | None = None,
) -> float:
    """Cost over a window from a time series of usage samples (step integration).

    Each sample's hourly cost holds from its time until the next sample (replica counts and
    requests change in steps, and a scrape describes the interval that follows it); the last
    sample holds until ``end`` (or contributes nothing without one). Samples must be in time
    order.
    """
    if not samples:
        return 0.0
    t = np.array([_seconds(s.t) for s in samples], dtype=np.float64)
    if np.any(np.diff(t) < 0):
        raise ValueError("samples must be in time order")
    end_s = _seconds(end) if end is not None else t[-1]
    if end_s < t[-1]:
        raise ValueError("end must not be before the last sample")
    cols = np.array(
        [
            (s.replicas, s.cpu_request, s.cpu_usage, s.mem_request_gib, s.mem_usage_gib, s.gpus)
            for s in samples
        ],
        dtype=np.float64,
    )
    if not np.all(np.isfinite(cols)) or np.any(cols < 0):
        raise ValueError("usage samples must be finite and non-negative")
    replicas, cpu_req, cpu_use, mem_req, mem_use, gpus = cols.T
    per_hour = replicas * (
        np.maximum(cpu_req, cpu_use) * rates.vcpu_hour
        + np.maximum(mem_req, mem_use) * rates.gib_hour
        + gpus * rates.gpu_hour
    )
    hours = np.diff(t, append=end_s) / 3600.0
    return float(np.dot(per_hour, hours))


def cost_per_1000(window_cost: float, predictions: float) -> float | None:
    """Cost of 1,000 predictions over a window, or None when there were no predictions."""
    if predictions < 0 or window_cost < 0:
        raise ValueError("cost and predictions must not be negative")
    if predictions == 0:
        return None
    return window_cost / predictions * 1000.0


class BudgetState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    EXCEEDED = "exceeded"


BUDGET_WARNING_SHARE = 0.8


@dataclass(frozen=True)
class BudgetStatus:
    state: BudgetState
    share: float  # month-to-date spend / monthly budget
    month_to_date: float
    monthly_budget: float

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = str(self.state)
        return data


def budget_status(month_to_date: float, monthly_budget: float) -> BudgetStatus:
    """``ok`` below 80% of the budget, ``warning`` from 80%, ``exceeded`` from 100%."""
    if not math.isfinite(monthly_budget) or monthly_budget <= 0:
        raise ValueError("monthly_budget must be a positive amount")
    spent = _non_negative(month_to_date, "month_to_date")
    share = spent / monthly_budget
    if share >= 1.0:
        state = BudgetState.EXCEEDED
    elif share >= BUDGET_WARNING_SHARE:
        state = BudgetState.WARNING
    else:
        state = BudgetState.OK
    return BudgetStatus(state, share, spent, float(monthly_budget))
