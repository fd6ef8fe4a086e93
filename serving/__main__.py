"""Entry point of the inference service: `python -m serving --host 0.0.0.0 --port 8080`.

Verifies and loads the model package before opening the port: a digest mismatch or an unreadable
artifact exits non-zero with a clear message and never listens. Must not import
prometheus_client before PROMETHEUS_MULTIPROC_DIR is decided (it picks its mode at import).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

EXIT_CONFIG = 2
EXIT_ARTIFACT = 3


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    return args


def _fail(code: int, message: str) -> int:
    print(f"serving: refusing to start: {message}", file=sys.stderr, flush=True)
    return code


def _exit_after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    from serving.config import ConfigError, ServingSettings, resolve_artifact
    from serving.faults import FaultSettings, FaultSwitch
    from serving.packaging import PackageError, load_package

    try:
        settings = ServingSettings.from_env()
        artifact, downloaded = resolve_artifact(settings)
    except ConfigError as exc:
        return _fail(EXIT_CONFIG, str(exc))
    cleanup: list[Path] = [artifact] if downloaded else []
    try:
        try:
            model = load_package(artifact, settings.artifact_digest)
        except PackageError as exc:
            return _fail(EXIT_ARTIFACT, str(exc))
        if downloaded:
            # Workers load the verified local copy instead of downloading again.
            os.environ["MODEL_ARTIFACT_URI"] = str(artifact)

        runtime_dir = Path(tempfile.mkdtemp(prefix="serving-"))
        cleanup.append(runtime_dir)
        if args.workers > 1:
            metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            if metrics_dir:
                # Files from an earlier run would be merged into this one's counters.
                for stale in Path(metrics_dir).glob("*.db"):
                    stale.unlink()
            else:
                metrics_path = runtime_dir / "metrics"
                metrics_path.mkdir()
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_path)
            fault_file = runtime_dir / "faults"
            FaultSwitch.create_file(
                fault_file, FaultSettings(settings.fault_error_rate, settings.fault_latency_ms)
            )
            os.environ["SERVING_FAULT_STATE_FILE"] = str(fault_file)

        import uvicorn

        from serving.nodelay import HTTP_PROTOCOLS

        common = {
            "host": args.host,
            "port": args.port,
            "loop": args.loop,
            "http": HTTP_PROTOCOLS[args.http],
            "access_log": False,
            "log_level": args.log_level,
            "timeout_graceful_shutdown": int(settings.request_timeout_seconds) + 5,
        }
        if args.workers > 1:
            from serving.workers import WorkerSupervisor, reuseport_supported

            if not reuseport_supported():
                uvicorn.run(
                    "serving.app:create_app_from_env", factory=True, workers=args.workers, **common
                )
                return 0
            # One SO_REUSEPORT socket per worker: the kernel spreads connections over them
            # (uvicorn's shared socket let one worker take a whole burst of connections).
            app = {"app": "serving.app:create_app_from_env", "factory": True}
            return WorkerSupervisor({**app, **common}, args.workers).run()
        else:
            from threadpoolctl import threadpool_limits

            from serving.app import create_app
            from serving.logs import configure_logging

            configure_logging()
            threadpool_limits(limits=1)
            # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit
            # instead of the default action lets the cleanup below run and reports success.
            signal.signal(signal.SIGTERM, _exit_after_graceful_shutdown)
            uvicorn.run(create_app(settings, load_model=lambda: model), **common)
        return 0
    finally:
        for path in cleanup:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
