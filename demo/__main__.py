"""`make demo` (`python -m demo`): checks the arguments, the port and the database before Django
starts, then hands over to demo.launcher. It refuses to run against a database other than its
own SQLite file."""

from __future__ import annotations

import argparse
import os
import socket
import sys

import django

DESCRIPTION = "The whole model control plane on this machine, with no servers (make demo)."


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument("--rate", type=float, default=20.0, help="demo requests per second")
    parser.add_argument("--no-serve", action="store_true", help="set up, print, and exit")
    args = parser.parse_args(argv)

    if not port_is_free(args.host, args.port) and not args.no_serve:
        print(
            f"Port {args.port} on {args.host} is in use: stop what uses it, or pass "
            f"--port (make demo ARGS='--port 8001').",
            file=sys.stderr,
        )
        return 2
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url and not database_url.startswith("sqlite"):
        print("The demo runs on its own SQLite database; unset DATABASE_URL.", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ.setdefault("MODELPLANE_DEMO", "1")
    os.environ.setdefault("PORTAL_URL", f"http://{args.host}:{args.port}")
    django.setup()
    # Only after django.setup(): the launcher imports models (not a cycle; the app registry).
    from demo.launcher import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
