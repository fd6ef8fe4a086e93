"""Container health probes of the control plane image: `healthcheck.py web|worker|beat`.

Exit 0 when healthy, 1 when not, with one line on stderr. `web` asks /healthz (liveness: the
process answers; /readyz is for load balancers), `worker` pings this container's Celery node
over the broker, `beat` checks that the broker accepts a connection. It must never print a URL
or an exception message from the broker client: connection strings carry passwords.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def check_web(port: int) -> str | None:
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"/healthz answered {exc.code}"
    except OSError as exc:  # URLError, refused, timeout: all mean "not answering"
        return f"/healthz did not answer ({type(exc).__name__})"
    return None if status == 200 else f"/healthz answered {status}"


def check_worker(node: str) -> str | None:
    from controlplane.celery import app

    try:
        replies = app.control.ping(destination=[node], timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises transport-specific errors
        return f"broker unreachable ({type(exc).__name__})"
    if not any(node in reply for reply in replies):
        return f"worker {node} did not answer a ping"
    return None


def check_broker() -> str | None:
    from controlplane.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises transport-specific errors
        return f"broker unreachable ({type(exc).__name__})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck.py", description=__doc__)
    parser.add_argument("role", nargs="?", choices=("web", "worker", "beat"), default="web")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument(
        "--node",
        default=f"celery@{socket.gethostname()}",
        help="Celery node name of the worker (default: the worker's default name here)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    if args.role == "web":
        problem = check_web(args.port)
    elif args.role == "worker":
        problem = check_worker(args.node)
    else:
        problem = check_broker()
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
