"""A traffic generator for demos and soak tests: sends realistic `/predict` requests (from
serving.demo_model.sample_requests) at a steady rate to one URL on this machine, optionally
drifted. A control file, re-read every second, switches drift and rate while it runs.

It only ever targets loopback addresses and stops after --duration seconds when one is given."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import httpx

from serving.demo_model import sample_requests


def _loopback_only(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"refusing to send traffic to {host!r}: only loopback targets are allowed")


def read_control(path: Path | None, default_drift: bool, default_rate: float) -> tuple[bool, float]:
    if path is None or not path.exists():
        return default_drift, default_rate
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return default_drift, default_rate
    return bool(data.get("drift", default_drift)), float(data.get("rate", default_rate))


async def run(
    url: str, rate: float, drift: bool, control: Path | None, duration: float | None, batch: int
) -> Counter:
    _loopback_only(url)
    codes: Counter = Counter()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    started = last_report = time.monotonic()
    seed = 0
    async with httpx.AsyncClient(timeout=5.0) as client:
        in_flight: set[asyncio.Task] = set()

        async def one(instances: list[dict]) -> None:
            try:
                response = await client.post(
                    f"{url.rstrip('/')}/predict", json={"instances": instances}
                )
                codes[response.status_code] += 1
            except httpx.HTTPError as exc:
                codes[type(exc).__name__] += 1

        while not stop.is_set():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            drift_now, rate_now = read_control(control, drift, rate)
            tick_end = now + 1.0
            count = max(0, int(rate_now))
            rows = sample_requests(count * batch, drift=drift_now, seed=seed) if count else []
            seed += 1
            for i in range(count):
                if len(in_flight) < 256:  # never pile up unbounded work
                    task = asyncio.create_task(one(rows[i * batch : (i + 1) * batch]))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                await asyncio.sleep(max(0.0, (tick_end - time.monotonic()) / max(1, count - i)))
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                summary = ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str))
                print(
                    f"traffic ({'drifted' if drift_now else 'normal'}, {rate_now:g}/s): {summary}",
                    flush=True,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, tick_end - time.monotonic()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=5)
    return codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the model (or router)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--batch", type=int, default=1, help="instances per request")
    parser.add_argument("--drift", action="store_true", help="send shifted inputs")
    parser.add_argument("--control", type=Path, help="JSON file with drift/rate, re-read live")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    codes = asyncio.run(
        run(args.url, args.rate, args.drift, args.control, args.duration, args.batch)
    )
    print(json.dumps({str(k): v for k, v in codes.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
