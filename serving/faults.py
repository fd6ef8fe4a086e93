"""The fault switch for demos and tests: a share of predictions answers 500, and latency is added.

Only reachable when SERVING_ALLOW_FAULTS=1. State is two doubles in a buffer; with several worker
processes the buffer is a memory-mapped file that `python -m serving` creates, so one
`POST /-/faults` reaches every worker. It must never be enabled in production by default.
"""

from __future__ import annotations

import mmap
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

_LAYOUT = struct.Struct("<dd")
MAX_LATENCY_MS = 60_000


@dataclass(frozen=True)
class FaultSettings:
    error_rate: float = 0.0
    latency_ms: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}")

    def as_dict(self) -> dict[str, float | int]:
        return {"error_rate": self.error_rate, "latency_ms": self.latency_ms}


class FaultSwitch:
    def __init__(self, buffer: bytearray | mmap.mmap) -> None:
        self._buffer = buffer

    @classmethod
    def in_memory(cls, initial: FaultSettings | None = None) -> FaultSwitch:
        switch = cls(bytearray(_LAYOUT.size))
        switch.set(initial or FaultSettings())
        return switch

    @staticmethod
    def create_file(path: str | Path, initial: FaultSettings) -> None:
        """Write the shared state file (done once, by the parent process, before workers start)."""
        data = _LAYOUT.pack(initial.error_rate, float(initial.latency_ms))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    @classmethod
    def shared(cls, path: str | Path) -> FaultSwitch:
        with open(path, "r+b") as fh:
            return cls(mmap.mmap(fh.fileno(), _LAYOUT.size))

    def get(self) -> FaultSettings:
        error_rate, latency_ms = _LAYOUT.unpack_from(self._buffer, 0)
        return FaultSettings(error_rate=error_rate, latency_ms=int(latency_ms))

    def set(self, settings: FaultSettings) -> None:
        _LAYOUT.pack_into(self._buffer, 0, settings.error_rate, float(settings.latency_ms))

    def should_fail(self, error_rate: float) -> bool:
        return error_rate > 0.0 and random.random() < error_rate
