"""The control plane's own alert rules (filled in by the rules work)."""

from __future__ import annotations


def evaluate_all() -> int:
    raise NotImplementedError
